"""Pieces of the gateway benchmark (loadtests/bench_gateway.py)."""
