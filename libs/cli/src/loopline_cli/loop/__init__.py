"""The closed-loop demo: a replayable traffic source, and the report of a run."""
