-- Join state (pending predictions and labels), the feedback store (joined records),
-- label changes and expiry counts. The skeleton's placeholder table is replaced.
DROP TABLE IF EXISTS labeled_predictions;

CREATE TABLE IF NOT EXISTS predictions (
    prediction_id text NOT NULL,
    version       bigint NOT NULL,
    variant       int NOT NULL,
    model         text NOT NULL,
    served_at     timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    payload       bytea NOT NULL,
    expired       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (prediction_id, version, variant)
);
CREATE INDEX IF NOT EXISTS predictions_unlabelled ON predictions (received_at) WHERE NOT expired;

CREATE TABLE IF NOT EXISTS labels (
    prediction_id text PRIMARY KEY,
    event_time    timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    label_value   text NOT NULL,
    payload       bytea NOT NULL,
    revision      int NOT NULL DEFAULT 0,
    matched       boolean NOT NULL DEFAULT false,
    expired       boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS labels_unmatched ON labels (received_at) WHERE NOT matched AND NOT expired;

CREATE TABLE IF NOT EXISTS label_changes (
    prediction_id  text NOT NULL,
    revision       int NOT NULL,
    old_value      text NOT NULL,
    new_value      text NOT NULL,
    old_event_time timestamptz NOT NULL,
    new_event_time timestamptz NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (prediction_id, revision)
);

-- The feedback store: one row per prediction_id + version + variant, the latest revision.
CREATE TABLE IF NOT EXISTS joined (
    prediction_id   text NOT NULL,
    version         bigint NOT NULL,
    variant         int NOT NULL,
    model           text NOT NULL,
    revision        int NOT NULL,
    event_id        text NOT NULL,
    task            text NOT NULL,
    served_at       timestamptz NOT NULL,
    joined_at       timestamptz NOT NULL,
    label_delay_ms  bigint NOT NULL,
    correct         boolean NOT NULL,
    predicted_class int,
    label_class     int,
    log_loss        double precision,
    error           double precision NOT NULL,
    payload         bytea NOT NULL,
    PRIMARY KEY (prediction_id, version, variant)
);
CREATE INDEX IF NOT EXISTS joined_model_time ON joined (model, version, served_at);

-- Labels whose type does not fit the model's outputs (wrong label type), kept with the reason.
CREATE TABLE IF NOT EXISTS rejected (
    prediction_id text NOT NULL,
    version       bigint NOT NULL,
    variant       int NOT NULL,
    reason        text NOT NULL,
    rejected_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (prediction_id, version, variant)
);

CREATE TABLE IF NOT EXISTS expiry_counts (
    kind  text PRIMARY KEY,  -- 'predictions' | 'labels'
    count bigint NOT NULL DEFAULT 0
);
