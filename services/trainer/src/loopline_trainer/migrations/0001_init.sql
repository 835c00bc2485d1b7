-- Trainer schema: training runs, one per request id.
CREATE TABLE IF NOT EXISTS training_runs (
    run_id      text PRIMARY KEY,
    request_id  text NOT NULL UNIQUE,
    model       text NOT NULL,
    status      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
