"""Process-wide logging set-up for service entrypoints."""

from __future__ import annotations

import logging
import os


def setup_logging(service_name: str) -> None:
    level = os.environ.get("LOOPLINE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s {service_name} %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(max(logging.getLevelName(level), logging.WARNING))
