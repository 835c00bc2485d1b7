"""Reading the parts' log files: tails for errors and ``stack logs``, and following."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO


def tail(path: Path, lines: int = 40, max_bytes: int = 256 * 1024) -> str:
    """The last ``lines`` lines of ``path`` ('' when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


def show(paths: Sequence[Path], lines: int, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    for path in paths:
        if len(paths) > 1:
            out.write(f"==> {path} <==\n")
        text = tail(path, lines)
        out.write(text + ("\n" if text else ""))
    out.flush()


def follow(paths: Sequence[Path], out: TextIO | None = None, poll_s: float = 0.25) -> None:
    """Print what is appended to ``paths`` until interrupted (prefixing the name with several)."""
    out = out or sys.stdout
    offsets = {path: path.stat().st_size if path.exists() else 0 for path in paths}
    prefix = len(paths) > 1
    try:
        while True:
            for path in paths:
                offsets[path] = _print_new(path, offsets[path], out, prefix)
            out.flush()
            time.sleep(poll_s)
    except KeyboardInterrupt:
        return


def _print_new(path: Path, offset: int, out: TextIO, prefix: bool) -> int:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size < offset:  # truncated or replaced: start again from the top
        offset = 0
    if size == offset:
        return offset
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read(size - offset)
    complete = chunk.rfind(b"\n") + 1  # hold back a partial last line for the next round
    for line in chunk[:complete].decode(errors="replace").splitlines():
        out.write(f"{path.stem:>18} | {line}\n" if prefix else line + "\n")
    return offset + complete
