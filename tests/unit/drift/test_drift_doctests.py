"""The docstring examples of the domain are tests too."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import loopline_drift_detector.domain as domain

MODULES = sorted(m.name for m in pkgutil.iter_modules(domain.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name: str) -> None:
    module = importlib.import_module(f"loopline_drift_detector.domain.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_most_modules_show_an_example() -> None:
    def examples(name: str) -> int:
        module = importlib.import_module(f"loopline_drift_detector.domain.{name}")
        return sum(len(t.examples) for t in doctest.DocTestFinder().find(module))

    without = [n for n in MODULES if examples(n) == 0]
    assert set(without) <= {"detector", "stream"}, without
