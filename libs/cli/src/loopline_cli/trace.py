"""``loopline trace <trace-id>``: one trace as a tree, from the spans every service writes locally.

Each service appends its finished spans as JSON lines to
``<run-dir>/traces/<service>.jsonl`` (loopline_core.telemetry). This command
gathers the spans of one trace from all those files, nests them by parent,
and prints service, name, duration and the key attributes; spans linked to
other traces (a retrain linked to the drift that caused it) name them, so the
chain can be followed trace by trace.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
#: Attributes worth a line in the tree (others are left out to keep it readable).
KEY_ATTRIBUTES = ("model", "version", "variant", "prediction_id", "request_id", "run_id", "event_type",
                  "messaging.destination.name", "messaging.kafka.message.key", "rpc.method", "http.route",
                  "http.status_code", "rpc.grpc.status_code", "loopline.model", "loopline.version",
                  "loopline.request_id", "loopline.reason", "error")


class TraceError(Exception):
    """A trace that cannot be shown: the message names why."""


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    service: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any]
    links: list[dict[str, str]]
    children: list[Span] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e6


def check_trace_id(value: str) -> str:
    trace_id = value.strip().lower()
    if not _TRACE_ID.fullmatch(trace_id) or trace_id == "0" * 32:
        raise TraceError(f"trace id must be 32 hexadecimal digits (not all zero), got {value!r}")
    return trace_id


def read_spans(files: Iterable[Path], trace_id: str, *, errors: TextIO | None = None) -> list[Span]:
    """The spans of one trace, plus any span that links to it (so callers can show who continues it)."""
    found: list[Span] = []
    errors = errors or sys.stderr
    for path in files:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if trace_id not in line:  # cheap filter before parsing: the files grow long
                    continue
                try:
                    raw = json.loads(line)
                    span = Span(raw["trace_id"], raw["span_id"], raw.get("parent_span_id"), raw["name"],
                                raw.get("service") or path.stem, int(raw["start_ns"]), int(raw["end_ns"]),
                                raw.get("status", "UNSET"), dict(raw.get("attributes") or {}),
                                list(raw.get("links") or []))
                except (ValueError, KeyError, TypeError) as exc:
                    print(f"trace: skipping {path}:{number}: not a span record ({exc})", file=errors)
                    continue
                found.append(span)
    return found


def build_tree(spans: list[Span], trace_id: str) -> list[Span]:
    """Roots of the trace (spans whose parent is absent), children ordered by start time."""
    own = {s.span_id: s for s in spans if s.trace_id == trace_id}
    roots: list[Span] = []
    for span in sorted(own.values(), key=lambda s: s.start_ns):
        parent = own.get(span.parent_span_id or "")
        (parent.children if parent is not None else roots).append(span)
    return roots


def _attributes(span: Span) -> str:
    shown = [f"{k}={span.attributes[k]}" for k in KEY_ATTRIBUTES if k in span.attributes]
    return " ".join(shown)


def render(spans: list[Span], trace_id: str) -> Iterator[str]:
    roots = build_tree(spans, trace_id)
    own = [s for s in spans if s.trace_id == trace_id]
    if not own:
        raise TraceError(f"no span of trace {trace_id} in the local trace files")
    start = min(s.start_ns for s in own)
    end = max(s.end_ns for s in own)
    services = sorted({s.service for s in own})
    yield (f"trace {trace_id}: {len(own)} spans, {len(services)} services ({', '.join(services)}), "
           f"{(end - start) / 1e6:.1f} ms")

    def walk(span: Span, prefix: str, last: bool) -> Iterator[str]:
        branch = "└─ " if last else "├─ "
        offset = (span.start_ns - start) / 1e6
        status = "" if span.status in ("UNSET", "OK") else f" [{span.status}]"
        attrs = _attributes(span)
        yield (f"{prefix}{branch}{span.service}: {span.name} {span.duration_ms:.1f} ms (+{offset:.1f} ms)"
               f"{status}{'  ' + attrs if attrs else ''}")
        inner = prefix + ("   " if last else "│  ")
        for link in span.links:
            if link.get("trace_id") != trace_id:
                yield f"{inner}↳ linked from trace {link.get('trace_id')} span {link.get('span_id')}"
        for i, child in enumerate(span.children):
            yield from walk(child, inner, i == len(span.children) - 1)

    for i, root in enumerate(roots):
        if root.parent_span_id:
            yield f"(parent span {root.parent_span_id} not recorded locally)"
        yield from walk(root, "", i == len(roots) - 1)
    followers = sorted({s.trace_id for s in spans if s.trace_id != trace_id
                        and any(link.get("trace_id") == trace_id for link in s.links)})
    for other in followers:
        yield f"continued in trace {other} (loopline trace {other})"


def trace_files(run_dir: Path) -> list[Path]:
    folder = run_dir / "traces"
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise TraceError(f"no span files under {folder} (services write <service>.jsonl there while they run)")
    return files


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("trace", help="show one trace as a tree from the local span files")
    parser.add_argument("trace_id", help="32 hexadecimal digits")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from loopline_cli.stack.layout import resolve_run_dir

    try:
        trace_id = check_trace_id(args.trace_id)
        files = trace_files(resolve_run_dir(args.run_dir))
        for line in render(read_spans(files, trace_id), trace_id):
            print(line)
    except TraceError as exc:
        print(f"trace: {exc}", file=sys.stderr)
        return 2
    return 0
