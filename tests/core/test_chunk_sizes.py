"""Chunk sizes chosen by the batcher: equal chunks without a short tail, within the budget and the time cap."""
from __future__ import annotations

import math

import pytest
import torch

from pellucid.core import batching
from pellucid.core.batching import DEFAULT_MAX_ROWS, TAIL_SLACK, Chunker


def chunks(n_rows: int, row_bytes: int | None, batch_size: int | None = None, budget: int = 10**9) -> list[torch.Tensor]:
    with batching.set_memory_budget(budget):
        c = Chunker(None, n_rows, ("test",), 4, batch_size=batch_size)
        c.row_bytes = row_bytes
        return list(c)


@pytest.mark.parametrize("n_rows", [1, 16, 63, 64, 65, 80, 81, 100, 400, 800, 1001])
def test_cached_cost_gives_equal_chunks_covering_every_row_once(n_rows):
    got = chunks(n_rows, row_bytes=1000)
    assert torch.equal(torch.cat(got), torch.arange(n_rows))
    sizes = [len(c) for c in got]
    largest = DEFAULT_MAX_ROWS + int(DEFAULT_MAX_ROWS * TAIL_SLACK)
    assert max(sizes) <= largest
    assert max(sizes) - min(sizes) <= 1  # no short tail
    assert len(sizes) == (1 if n_rows <= DEFAULT_MAX_ROWS else math.ceil(n_rows / largest))


def test_budget_limits_chunks_below_the_time_cap():
    row_bytes = 10**6
    budget = 40 * row_bytes  # 40 rows fit
    sizes = [len(c) for c in chunks(130, row_bytes, budget=budget)]
    assert sum(sizes) == 130 and max(sizes) <= 40 and max(sizes) - min(sizes) <= 1


def test_batch_size_is_exact_and_probe_comes_first():
    assert [len(c) for c in chunks(70, None, batch_size=32)] == [32, 32, 6]
    first = chunks(70, None)[0]  # no cached cost: a probe chunk first
    assert len(first) == batching.PROBE_ROWS
