-- The version that answers when a serving one fails at Triton (0: none), kept with each
-- deployment revision so every gateway, and one started later, falls back to the same version.
-- Revisions written before this migration have none (0): gateways then fall back as before
-- (to the previous champion they saw themselves).
ALTER TABLE deployments ADD COLUMN fallback_version bigint NOT NULL DEFAULT 0;
ALTER TABLE deployment_history ADD COLUMN fallback_version bigint NOT NULL DEFAULT 0;
