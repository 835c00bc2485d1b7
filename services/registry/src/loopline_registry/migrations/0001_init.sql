-- Registry schema: models first; versions, aliases, deployments, audit and the
-- outbox arrive with the registry issue.
CREATE TABLE IF NOT EXISTS models (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    task        text NOT NULL DEFAULT 'classification',
    created_at  timestamptz NOT NULL DEFAULT now()
);
