"""The pellucid side of the side-by-side benchmark: the same worker protocol as :mod:`captum_worker` (see
:mod:`_worker`), building each ``(model, method)`` case as the ``bench_*.py`` scripts do. Both libraries are timed
in worker processes of the same shape, started afresh every round, so neither side is timed in a process that
has done more (model building, lower-bound measurements, other cases) than the other."""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _worker import serve  # noqa: E402


def build(model_name: str, method: str) -> Callable[[], Any]:
    from bench_captum import all_cases

    found = [c for c in all_cases([model_name], {method}) if c.method == method and c.model == model_name]
    if not found:
        raise KeyError(method)
    return found[0].call


if __name__ == "__main__":
    serve(build)
