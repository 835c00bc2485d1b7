"""The demo's report: accuracy over time, detection and recovery times, before/during/after."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Outcome:
    """One answered request once its label is known: seconds since the scenario began."""

    at_s: float
    correct: bool
    version: int


@dataclass(frozen=True)
class Summary:
    before: float
    during: float
    after: float
    detection_delay_s: float | None
    recovery_s: float | None
    recovered: bool


def accuracy_series(outcomes: Sequence[Outcome], bucket_s: float) -> list[tuple[float, float, int]]:
    """(bucket start, accuracy, count) per time bucket, empty buckets left out."""
    if bucket_s <= 0:
        raise ValueError(f"bucket_s must be positive, got {bucket_s}")
    buckets: dict[int, list[bool]] = {}
    for o in outcomes:
        buckets.setdefault(int(o.at_s // bucket_s), []).append(o.correct)
    return [(k * bucket_s, sum(v) / len(v), len(v)) for k, v in sorted(buckets.items())]


def _accuracy(outcomes: Sequence[Outcome]) -> float:
    return sum(o.correct for o in outcomes) / len(outcomes) if outcomes else float("nan")


def summarize(outcomes: Sequence[Outcome], *, change_s: float, detected_s: float | None,
              promoted_s: float | None, tolerance: float = 0.03, settle_s: float = 0.0) -> Summary:
    """Accuracy before the change, between change and the new champion at 100%, and after it.

    ``settle_s`` leaves out the first seconds after promotion (requests in flight on the old split).
    Recovered: a new champion at 100% and accuracy after within ``tolerance`` of before.
    """
    before = _accuracy([o for o in outcomes if o.at_s < change_s])
    end = promoted_s if promoted_s is not None else float("inf")
    during = _accuracy([o for o in outcomes if change_s <= o.at_s < end])
    after = _accuracy([o for o in outcomes if promoted_s is not None and o.at_s >= promoted_s + settle_s])
    recovered = promoted_s is not None and after == after and after >= before - tolerance
    return Summary(before, during, after, None if detected_s is None else detected_s - change_s,
                   None if promoted_s is None else promoted_s - change_s, recovered)


def text_chart(series: Sequence[tuple[float, float, int]], *, height: int = 10, marks: dict[str, float] | None = None,
               bucket_s: float = 1.0) -> str:
    """Accuracy per bucket as columns of '█' (0.5 at the bottom, 1.0 at the top); marks label times."""
    if not series:
        return "(no labelled outcomes)"
    lines = []
    for row in range(height, 0, -1):
        level = 0.5 + 0.5 * (row - 0.5) / height
        label = f"{0.5 + 0.5 * row / height:4.2f} |" if row in (height, 1) or row == height // 2 else "     |"
        lines.append(label + "".join("█" if acc >= level else " " for _, acc, _ in series))
    lines.append("     +" + "-" * len(series))
    for name, at in (marks or {}).items():
        column = min(int(at // bucket_s), len(series) - 1) if series else 0
        lines.append("      " + " " * max(column, 0) + f"^ {name} ({at:.0f}s)")
    return "\n".join(lines)


def png_chart(series: Sequence[tuple[float, float, int]], path: Path, marks: dict[str, float]) -> bool:
    """Writes the PNG plot when matplotlib is installed; False when it is not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot([t for t, _, _ in series], [a for _, a, _ in series], marker=".")
    for name, at in marks.items():
        ax.axvline(at, linestyle="--", color="grey")
        ax.text(at, 0.52, name, rotation=90, va="bottom")
    ax.set(xlabel="seconds", ylabel="accuracy", ylim=(0.5, 1.0), title="Loopline demo: accuracy over time")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
