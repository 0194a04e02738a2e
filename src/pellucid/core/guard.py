"""The model-state guard: whatever happens inside, the model leaves as it came in."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .errors import input_mismatch_note


class ModelGuard:
    """Context manager that records and restores a model's state.

    Restores every module's ``training`` flag, every parameter's ``requires_grad``, every buffer's value (e.g.
    BatchNorm statistics updated by a model left in training mode), and removes any hook handle
    registered through :meth:`add_handle`. By default the parameters are frozen (``requires_grad=False``) inside
    the block: attribution differentiates with respect to inputs or activations only, and frozen parameters spare
    autograd the memory of weight-gradient buffers. Parameters are never written, so their values need no copy.

    With ``inputs`` (the user's input tensors) given, a ``RuntimeError`` leaving the block (e.g. torch's "Input type
    (double) and bias type (float) should be the same" from inside the model) is re-raised unchanged, with a note
    (``add_note``, Python >= 3.11) naming ``inputs`` when their device or dtype differs from the model's
    parameters.
    """

    def __init__(self, model: Any, freeze_parameters: bool = True, inputs: Any = None):
        self.model = model
        self.freeze = freeze_parameters
        self.inputs = inputs
        self._handles: list = []

    def __enter__(self) -> "ModelGuard":
        modules = all_modules(self.model) if isinstance(self.model, nn.Module) else []
        self._modes = [(m, m.training) for m in modules]
        # parameters and buffers of every module, each once (one walk of the modules, as parameters() would do)
        params: dict[int, Any] = {}
        buffers: dict[int, Any] = {}
        for m in modules:
            for p in m._parameters.values():
                if p is not None:
                    params.setdefault(id(p), p)
            for b in m._buffers.values():
                if b is not None:
                    buffers.setdefault(id(b), b)
        self._grads = [(p, p.requires_grad) for p in params.values()]
        # buffers change when a module runs in training mode (BatchNorm running statistics): keep a copy
        self._buffers = [(b, b.detach().clone()) for b in buffers.values()]
        if self.freeze:
            for p, flag in self._grads:
                if flag:
                    p.requires_grad_(False)
        return self

    def add_handle(self, handle: Any) -> None:
        self._handles.append(handle)

    def __exit__(self, exc_type: Any = None, exc: BaseException | None = None, tb: Any = None) -> None:
        if isinstance(exc, RuntimeError) and self.inputs is not None and hasattr(exc, "add_note"):
            note = input_mismatch_note(self.model, self.inputs)
            if note is not None and note not in getattr(exc, "__notes__", ()):
                exc.add_note(note)
        for h in reversed(self._handles):
            h.remove()
        self._handles.clear()
        for p, flag in self._grads:
            if p.requires_grad != flag:
                p.requires_grad_(flag)
        for m, mode in self._modes:
            if m.training is not mode:  # nn.Module.__setattr__ is slow: set only what changed
                m.training = mode
        with torch.no_grad():
            for b, saved in self._buffers:  # kernels such as batch_norm update in place without a version bump
                if not torch.equal(b, saved):
                    b.copy_(saved)
        self._buffers = []


def all_modules(model: nn.Module) -> list[nn.Module]:
    """Every module of ``model``, each once (what ``list(model.modules())`` gives, in breadth-first order): a
    plain walk of the ``_modules`` dicts, several times faster than ``modules()``, which builds every name."""
    out, seen, i = [model], {id(model)}, 0
    while i < len(out):
        for m in out[i]._modules.values():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                out.append(m)
        i += 1
    return out


def model_device(model: Any, default: torch.device | None = None) -> torch.device | None:
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return default
