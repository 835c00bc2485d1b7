-- Detector state per consumed partition, with the next offset it has applied: both
-- written in one transaction, so state and position never disagree.
CREATE TABLE IF NOT EXISTS partition_checkpoints (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    state       bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Decisions saved with the state that made them, published afterwards.
CREATE TABLE IF NOT EXISTS outbox (
    event_id   text PRIMARY KEY,
    group_id   text NOT NULL,
    topic      text NOT NULL,
    partition  integer NOT NULL,
    seq        bigserial,
    target     text NOT NULL,
    key        text NOT NULL,
    subject    text NOT NULL,
    kind       text NOT NULL,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS outbox_by_partition ON outbox (group_id, topic, partition, seq);
