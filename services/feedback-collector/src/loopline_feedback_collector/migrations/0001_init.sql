-- Feedback store: joined records (prediction ⋈ label), the trainer's data source.
CREATE TABLE IF NOT EXISTS labeled_predictions (
    prediction_id text PRIMARY KEY,
    model         text NOT NULL,
    version       bigint NOT NULL,
    joined_at     timestamptz NOT NULL DEFAULT now()
);
