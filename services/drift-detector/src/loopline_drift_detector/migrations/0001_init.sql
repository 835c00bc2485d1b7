-- Detector checkpoints per (model, version, stream).
CREATE TABLE IF NOT EXISTS detector_checkpoints (
    model      text NOT NULL,
    version    bigint NOT NULL,
    stream     text NOT NULL,
    state      bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, version, stream)
);
