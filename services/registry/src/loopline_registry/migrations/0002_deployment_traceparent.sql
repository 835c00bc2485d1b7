-- The W3C traceparent of the request that made each deployment revision, so the
-- rollout controller's later steps on that deployment continue the same trace.
-- Revisions written before this migration have none ('').
ALTER TABLE deployment_history ADD COLUMN traceparent text NOT NULL DEFAULT '';
