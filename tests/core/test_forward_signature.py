"""The forward-signature check is cached per function, never across different forwards."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pellucid.core.errors import check_forward_arguments


class One(nn.Module):
    def forward(self, x):
        return x


class Two(nn.Module):
    def forward(self, x, scale):
        return x * scale


def test_cached_signatures_keep_each_model_apart():
    x = (torch.ones(2, 3),)
    for _ in range(2):  # the second round reads the cache
        check_forward_arguments(One(), x, (), {})
        check_forward_arguments(Two(), x, (2.0,), {})
        with pytest.raises(TypeError, match="additional_forward_args"):
            check_forward_arguments(One(), x, (2.0,), {})
        with pytest.raises(TypeError, match="forward_kwargs"):
            check_forward_arguments(Two(), x, (), {"nope": 1})
    plain = lambda a, b: a  # noqa: E731 - a plain callable model
    check_forward_arguments(plain, x, (1,), {})
    with pytest.raises(TypeError):
        check_forward_arguments(plain, x, (), {})
