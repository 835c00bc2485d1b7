-- Registry schema: the system of record for models, versions, aliases, datasets,
-- training runs, artifacts, deployments, the audit log and the event outbox.
-- Times are the registry's clock at the change (the handlers pass them in).

CREATE TABLE IF NOT EXISTS models (
    name         text PRIMARY KEY,
    description  text NOT NULL DEFAULT '',
    task         text NOT NULL DEFAULT 'classification',
    tags         jsonb NOT NULL DEFAULT '{}',
    gate_metric  text,
    gate_higher_is_better boolean,
    gate_margin  double precision,
    last_version bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT ''
);

CREATE TABLE artifacts (
    sha256     text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    format     text NOT NULL CHECK (format IN ('torchscript', 'onnx')),
    uri        text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL
);

CREATE TABLE datasets (
    name         text PRIMARY KEY,
    description  text NOT NULL DEFAULT '',
    last_version bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    created_by   text NOT NULL
);

CREATE TABLE dataset_versions (
    dataset        text NOT NULL REFERENCES datasets (name),
    version        bigint NOT NULL CHECK (version > 0),
    content_sha256 text NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    row_count      bigint NOT NULL CHECK (row_count >= 0),
    window_start   timestamptz,
    window_end     timestamptz,
    query          text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    created_by     text NOT NULL,
    PRIMARY KEY (dataset, version)
);

CREATE TABLE training_runs (
    id             text PRIMARY KEY,
    model          text NOT NULL REFERENCES models (name),
    status         text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    params         jsonb NOT NULL DEFAULT '{}',
    code_version   text NOT NULL DEFAULT '',
    environment    jsonb NOT NULL DEFAULT '{}',
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    failure_reason text NOT NULL DEFAULT '',
    created_by     text NOT NULL
);

CREATE TABLE run_inputs (
    run_id  text NOT NULL REFERENCES training_runs (id),
    dataset text NOT NULL,
    version bigint NOT NULL,
    role    text NOT NULL,
    PRIMARY KEY (run_id, dataset, version),
    FOREIGN KEY (dataset, version) REFERENCES dataset_versions (dataset, version)
);

CREATE TABLE run_metrics (
    run_id text NOT NULL REFERENCES training_runs (id),
    name   text NOT NULL,
    step   bigint NOT NULL,
    value  double precision NOT NULL,
    at     timestamptz NOT NULL,
    PRIMARY KEY (run_id, name, step)
);

CREATE TABLE model_versions (
    model             text NOT NULL REFERENCES models (name),
    version           bigint NOT NULL CHECK (version > 0),
    artifact_sha256   text NOT NULL REFERENCES artifacts (sha256),
    signature         jsonb NOT NULL DEFAULT '{}',
    params            jsonb NOT NULL DEFAULT '{}',
    metrics           jsonb NOT NULL DEFAULT '{}',
    tags              jsonb NOT NULL DEFAULT '{}',
    status            text NOT NULL CHECK (status IN ('candidate', 'staged', 'production', 'archived')),
    run_id            text REFERENCES training_runs (id),
    reference_profile bytea NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    created_by        text NOT NULL,
    PRIMARY KEY (model, version)
);

CREATE TABLE evaluations (
    model          text NOT NULL,
    version        bigint NOT NULL,
    holdout_sha256 text NOT NULL CHECK (holdout_sha256 ~ '^[0-9a-f]{64}$'),
    metrics        jsonb NOT NULL,
    seq            bigserial,
    PRIMARY KEY (model, version, holdout_sha256),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);

CREATE TABLE aliases (
    model   text NOT NULL REFERENCES models (name),
    alias   text NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);

CREATE TABLE alias_history (
    seq              bigserial PRIMARY KEY,
    model            text NOT NULL,
    alias            text NOT NULL,
    version          bigint NOT NULL,
    previous_version bigint NOT NULL DEFAULT 0,
    moved_at         timestamptz NOT NULL,
    actor            text NOT NULL,
    reason           text NOT NULL DEFAULT '',
    gate_overridden  boolean NOT NULL DEFAULT false,
    rollback         boolean NOT NULL DEFAULT false
);
CREATE INDEX alias_history_at ON alias_history (model, alias, moved_at);

CREATE TABLE deployments (
    model           text PRIMARY KEY REFERENCES models (name),
    revision        bigint NOT NULL CHECK (revision > 0),
    splits          jsonb NOT NULL,
    shadow_versions bigint[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL,
    updated_by      text NOT NULL,
    reason          text NOT NULL DEFAULT ''
);

CREATE TABLE deployment_history (
    model           text NOT NULL,
    revision        bigint NOT NULL,
    splits          jsonb NOT NULL,
    shadow_versions bigint[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL,
    updated_by      text NOT NULL,
    reason          text NOT NULL DEFAULT '',
    PRIMARY KEY (model, revision)
);
CREATE INDEX deployment_history_at ON deployment_history (model, updated_at);

-- Append-only: every mutating action, with who, before, after, reason and trace.
CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL,
    actor    text NOT NULL,
    action   text NOT NULL,
    target   text NOT NULL,
    model    text NOT NULL DEFAULT '',
    before   jsonb,
    after    jsonb,
    reason   text NOT NULL DEFAULT '',
    trace_id text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_model ON audit_log (model, id);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

-- Events written in the same transaction as the change; the relay publishes them
-- in seq order and marks them, re-sending with the same event_id after a crash.
CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    topic        text NOT NULL,
    key          text NOT NULL,
    type         text NOT NULL,
    subject      text NOT NULL DEFAULT '',
    payload      bytea NOT NULL,
    traceparent  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;

CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    result      text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE api_keys (
    name       text PRIMARY KEY,
    key_hash   text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    role       text NOT NULL CHECK (role IN ('reader', 'trainer', 'operator', 'admin')),
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    revoked_at timestamptz
);
