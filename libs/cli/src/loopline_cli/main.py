"""``loopline``: the platform's command line.

Each command group is a module with ``register(commands)``, which adds its
parser and sets ``run`` (the group's dispatcher, which turns the group's errors
into exit statuses) and ``handler`` defaults. Add a group by listing its
``register`` in COMMAND_GROUPS.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from loopline_cli import demo, trace
from loopline_cli.stack import cli as stack_cli
from loopline_registry import cli as models_cli

COMMAND_GROUPS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (  # type: ignore[type-arg]
    stack_cli.register,
    demo.register,
    trace.register,
    models_cli.register_cli,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loopline", description="Loopline, the closed-loop MLOps platform")
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="state, logs and data of the local stack ($LOOPLINE_RUN_DIR, .run)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMAND_GROUPS:
        register(commands)
    return parser


def with_local_admin_key(args: argparse.Namespace) -> argparse.Namespace:
    """``loopline models`` without ``--api-key`` or $LOOPLINE_API_KEY uses the admin key of the
    local stack (``<run-dir>/secrets/admin.key``), when there is one: what the README promises."""
    if getattr(args, "command", None) == "models" and not args.api_key:
        from loopline_cli.stack.layout import resolve_run_dir
        from loopline_cli.stack.secrets import admin_key_file

        try:
            args.api_key = admin_key_file(resolve_run_dir(args.run_dir)).read_text().strip()
        except OSError:
            pass  # no local stack: the registry answers UNAUTHENTICATED, naming the missing key
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = with_local_admin_key(build_parser().parse_args(argv))
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`loopline stack status | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
