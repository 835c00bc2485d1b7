-- Trainer schema: what a run needs to be resumed and reported.
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS request jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS metrics jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS error text NOT NULL DEFAULT '';
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS gate_passed boolean NOT NULL DEFAULT false;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS gate_reason text NOT NULL DEFAULT '';
ALTER TABLE training_runs ALTER COLUMN started_at DROP NOT NULL;
ALTER TABLE training_runs ALTER COLUMN started_at DROP DEFAULT;
CREATE INDEX IF NOT EXISTS training_runs_unfinished ON training_runs (status) WHERE status IN ('queued', 'running');
-- Request ids are unique per model (two models may both be asked "bootstrap").
ALTER TABLE training_runs DROP CONSTRAINT IF EXISTS training_runs_request_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS training_runs_model_request ON training_runs (model, request_id);
