"""Entrypoint: `loopline-serving-gateway` (or `python -m loopline_serving_gateway`)."""

from __future__ import annotations

import sys

from loopline_core.settings import load

from loopline_serving_gateway.settings import GatewaySettings
from loopline_serving_gateway.workers import serve_all


def main() -> None:
    sys.exit(serve_all(load(GatewaySettings)))


if __name__ == "__main__":
    main()
