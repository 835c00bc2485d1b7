"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence


def render(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}s"


def megabytes(value: float | None) -> str | None:
    return None if value is None else f"{value:.0f}"


def port_list(ports: dict[str, int]) -> str:
    return ",".join(str(port) for port in ports.values())
