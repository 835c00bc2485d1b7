"""``loopline stack up|down|status|logs``: the local stack from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from loopline_cli.stack import logs, table
from loopline_cli.stack.config import StackConfig
from loopline_cli.stack.errors import StackError, StartFailed
from loopline_cli.stack.layout import resolve_run_dir
from loopline_cli.stack.ports import DEFAULT_PORTS, env_var
from loopline_cli.stack.stack import Stack

ONLY_HELP = "infra, services, all (default), or part names separated by commas"


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    stack = commands.add_parser("stack", help="run Kafka, PostgreSQL, Triton and the services locally")
    stack.set_defaults(run=run)
    actions = stack.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run-dir", type=Path, default=argparse.SUPPRESS, help="state, logs and data (default .run)")

    up = actions.add_parser("up", parents=[common], help="start what is not running; wait until healthy")
    up.add_argument("--only", default="all", help=ONLY_HELP)
    up.add_argument(
        "--fsync",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="PostgreSQL durability (default on; --no-fsync for throwaway data)",
    )
    for key, port in DEFAULT_PORTS.items():
        up.add_argument(
            f"--{key}-port", dest=f"port:{key}", type=int, metavar="N", help=f"default {port}, or ${env_var(key)}"
        )
    up.set_defaults(handler=_up)

    down = actions.add_parser("down", parents=[common], help="stop services, then infrastructure")
    down.add_argument("--only", default="all", help=ONLY_HELP)
    down.set_defaults(handler=_down)

    status = actions.add_parser("status", parents=[common], help="pid, ports, health and memory of each part")
    status.add_argument("--only", default="all", help=ONLY_HELP)
    status.set_defaults(handler=_status)

    show = actions.add_parser("logs", parents=[common], help="show (or follow) the parts' logs")
    show.add_argument("name", nargs="?", help="one part (default: all)")
    show.add_argument("-f", "--follow", action="store_true")
    show.add_argument("-n", "--lines", type=int, default=40)
    show.set_defaults(handler=_logs)


def _stack(args: argparse.Namespace, **overrides: object) -> Stack:
    return Stack(StackConfig.resolve(resolve_run_dir(args.run_dir), **overrides))  # type: ignore[arg-type]


def _up(args: argparse.Namespace) -> int:
    flags = {key: getattr(args, f"port:{key}") for key in DEFAULT_PORTS}
    stack = _stack(args, flags=flags, fsync=args.fsync)
    began = time.monotonic()
    print(f"loopline stack: bringing up {args.only} in {stack.config.run_dir}", flush=True)
    results = stack.up(args.only)
    rows = [(r.name, r.outcome, r.pid, table.port_list(r.ports), table.seconds(r.seconds)) for r in results]
    print(table.render(("PART", "RESULT", "PID", "PORTS", "TIME"), rows))
    failures = [r.error for r in results if r.error is not None]
    for error in failures:
        print(error.detailed() if isinstance(error, StartFailed) else str(error), file=sys.stderr)
    verdict = "failed" if failures else "all healthy"
    print(f"{verdict} in {time.monotonic() - began:.1f}s; logs: {stack.config.layout.logs_dir}")
    return 1 if failures else 0


def _down(args: argparse.Namespace) -> int:
    stack = _stack(args)
    outcomes = stack.down(args.only)
    print(table.render(("PART", "RESULT"), outcomes))
    return 0


def _status(args: argparse.Namespace) -> int:
    rows = _stack(args).status(args.only)
    print(
        table.render(
            ("PART", "PID", "PORTS", "HEALTH", "RSS MB", "TREE RSS MB"),
            [
                (
                    r.name,
                    r.pid,
                    table.port_list(r.ports),
                    "healthy" if r.healthy else ("unhealthy" if r.pid else "stopped"),
                    table.megabytes(r.rss_mb),
                    table.megabytes(r.tree_rss_mb),
                )
                for r in rows
            ],
        )
    )
    return 0 if all(r.healthy for r in rows) else 1


def _logs(args: argparse.Namespace) -> int:
    layout = _stack(args).config.layout
    if args.name:
        paths = [layout.log_file(args.name)]
        if not paths[0].exists():
            raise StackError(f"no log for {args.name!r} in {layout.logs_dir}")
    else:
        paths = sorted(layout.logs_dir.glob("*.log"))
    logs.show(paths, args.lines)
    if args.follow:
        logs.follow(paths)
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch with stack errors turned into one line on stderr and exit status 1."""
    try:
        return int(args.handler(args))
    except StackError as error:
        print(f"loopline stack: {error}", file=sys.stderr)
        return 1
