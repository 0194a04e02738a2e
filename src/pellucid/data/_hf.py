"""Loading a Hugging Face tokenizer and model from a local folder, quietly and offline."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Inside: transformers logs errors only and shows no progress bars; restored on exit."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


def load_local(tokenizer_cls: Any, model_cls: Any, path: str,
               device: str | torch.device | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from the folder ``path`` (never the hub), the model in ``eval()`` mode on ``device``."""
    with quiet_transformers():
        tokenizer = tokenizer_cls.from_pretrained(path, local_files_only=True)
        model = model_cls.from_pretrained(path, local_files_only=True)
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer
