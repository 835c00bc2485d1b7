"""`make bench`: runs every benchmark module in this folder (bench_*.py), in order.

Each module exposes ``main() -> int``; results go to $BENCH_OUT (default .run/bench/).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import loadtests


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(loadtests.__path__) if m.name.startswith("bench_"))
    if not names:
        print("no benchmarks yet")
        return 0
    failed = 0
    for name in names:
        print(f"== {name}")
        failed += importlib.import_module(f"loadtests.{name}").main() != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
