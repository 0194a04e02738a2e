"""Memory budget, batch-size resolution and the chunker."""
import pytest
import torch

import pellucid
from pellucid.core.batching import (DEFAULT_MAX_ROWS, PROBE_ROWS, Chunker, get_memory_budget, parse_bytes,
                                    resolve_batch_size, set_memory_budget)


@pytest.mark.parametrize("text,value", [
    ("512MB", 512 * 1024**2), ("2 GiB", 2 * 1024**3), ("1.5g", int(1.5 * 1024**3)), ("100", 100), ("64k", 65536),
    ("3KB", 3072), (4096, 4096), (1e6, 1_000_000),
])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("bad", ["lots", "-5MB", "0", 0, -1, "5 XB"])
def test_parse_bytes_errors(bad):
    with pytest.raises(ValueError, match="budget must be"):
        parse_bytes(bad)
    with pytest.raises(TypeError, match="received bool"):
        parse_bytes(True)


def test_set_memory_budget_function_and_context_manager():
    assert pellucid.set_memory_budget is set_memory_budget
    before = get_memory_budget()
    try:
        set_memory_budget("64MB")
        assert get_memory_budget() == 64 * 1024**2
        with set_memory_budget("1KB"):
            assert get_memory_budget() == 1024
            with set_memory_budget(2048):
                assert get_memory_budget() == 2048
            assert get_memory_budget() == 1024
        assert get_memory_budget() == 64 * 1024**2
    finally:
        set_memory_budget(None)
    assert get_memory_budget() == before or get_memory_budget() >= 64 * 1024**2
    # the automatic default: at least 64 MiB, at most 2 GiB
    assert 64 * 1024**2 <= get_memory_budget() <= 2 * 1024**3


def test_context_manager_restores_after_exception():
    with set_memory_budget(None):
        with pytest.raises(RuntimeError):
            with set_memory_budget("1KB"):
                raise RuntimeError
        assert get_memory_budget() != 1024


def test_resolve_batch_size():
    assert resolve_batch_size() is None
    assert resolve_batch_size(8) == 8
    assert resolve_batch_size(None, internal_batch_size=5) == 5
    assert resolve_batch_size(5, internal_batch_size=5) == 5
    with pytest.raises(ValueError, match="conflicting batch sizes"):
        resolve_batch_size(4, internal_batch_size=5)
    with pytest.raises(ValueError, match="internal_batch_size must be a positive int.*received 0"):
        resolve_batch_size(None, internal_batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int.*received 2.5"):
        resolve_batch_size(2.5)


def sizes(chunker):
    return [len(r) for r in chunker]


def test_chunker_batch_size_and_coverage():
    c = Chunker(None, 10, ("k",), 4, batch_size=3)
    chunks = list(c)
    assert [len(r) for r in chunks] == [3, 3, 3, 1]
    assert torch.equal(torch.cat(chunks), torch.arange(10))
    assert not c.probing


def test_chunker_probe_then_budget():
    model = torch.nn.Linear(1, 1)
    with set_memory_budget(1000):
        c = Chunker(model, 100, ("probe-test",), input_row_bytes=10)
        it = iter(c)
        first = next(it)
        assert len(first) == PROBE_ROWS and c.probing
        c.record(len(first), 8 * 60)  # 60 bytes/row measured + 4 * 10 for the inputs = 100 bytes/row
        assert c.row_bytes == 100 and not c.probing
        rest = [len(r) for r in it]
        assert rest[0] == 10 and sum(rest) == 92
        # the figure is cached per model and key: no probe next time
        assert Chunker(model, 5, ("probe-test",), 10).row_bytes == 100
        assert Chunker(model, 5, ("other",), 10).row_bytes is None
    with set_memory_budget(1):  # tiny budget: one row per call, never zero
        assert sizes(Chunker(model, 3, ("probe-test",), 10)) == [1, 1, 1]
    with set_memory_budget("100GB"):
        assert Chunker(model, 1000, ("probe-test",), 10).size() == DEFAULT_MAX_ROWS
