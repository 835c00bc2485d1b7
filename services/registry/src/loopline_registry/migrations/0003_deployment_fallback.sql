-- The version that answers when a serving one fails at Triton, kept with each deployment
-- revision so every gateway, and one started later, falls back to the same version: 0 for
-- none. NULL: not recorded (revisions written before this migration, and the canary steps
-- that follow them until a promotion): gateways then keep the previous champion they saw
-- themselves, as before.
ALTER TABLE deployments ADD COLUMN fallback_version bigint;
ALTER TABLE deployment_history ADD COLUMN fallback_version bigint;
