"""Parts of the drift benchmark (``python -m loadtests.bench_drift``)."""
