"""The model seen from a layer: composition mechanics for layer, neuron and CAM methods.

:class:`LayerSpace` wraps a model and one or more of its layers. Inside ``with space:`` one hook per layer is
registered (once per call, whatever the number of chunks) and the space runs the model in one of five modes:

* **replace** (``space(*activations, *inputs, *extras)``): the model's forward with each layer's output (or
  input) replaced by the given activation rows. As a callable this *is* the model as a function of the layer's
  activations, so a base method (IG, DeepLIFT, GradientSHAP, ablation, ...) applied to ``space`` with the
  activations as ``inputs`` and the real inputs in ``additional_forward_args`` runs in the layer's activation
  space unchanged (DESIGN section 4). The inputs travel as additional arguments, so the engine indexes the rows
  that belong to each chunk.
* **capture** (:meth:`LayerSpace.activations`): a no-grad forward that stops right after the last tapped layer
  ran (the rest of the model is not evaluated) and returns the activations of every row, chunked.
* **leaf** (:meth:`LayerSpace.grad_rows`): the activations become fresh leaves, so one forward and a backward
  through the layers *after* the tap give the activations and the gradients of the target there. With several
  layers only the first to run is cut from the graph upstream; the others stay in it (the gradient at each is
  taken at a zero probe added to it), so layers nested in or following one another each get their true
  gradient, the same as when tapped alone.
* **value** (:meth:`LayerSpace.value`): the forward stops after the layers and returns their (differentiable)
  values; neuron methods select a neuron from it.
* **through** (:meth:`LayerSpace.grad_through`): the model runs unchanged; the target's gradient at the layers is
  mapped (neuron conductance masks it to the selected neurons) and pulled back to the inputs by the layers' own
  Jacobian only, so paths that bypass the layers (skip connections, other inputs) contribute nothing.

A layer called more than once in a forward is rejected (``ValueError``) in the replace, leaf and through modes;
capture and value stop at its first call.

Activations are handled as a flat tuple of tensors: a layer with a tensor output contributes one, a layer with a
tuple output (or several inputs, with ``attribute_to_input=True``) one per element; :meth:`LayerSpace.unflatten`
gives back the per-layer form.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from .batching import measure_forward_peak, measure_saved_bytes
from .gradients import Evaluator
from .hooks import LayerTap

LayerType = nn.Module | Sequence[nn.Module]


def format_layers(layer: Any, name: str = "layer") -> tuple[list[nn.Module], bool]:
    """``(modules, was_list)``; ``layer`` is a module or a non-empty list/tuple of distinct modules."""
    was_list = isinstance(layer, (list, tuple))
    items = list(layer) if was_list else [layer]
    if not items:
        raise ValueError(f"{name} must be a torch.nn.Module or a non-empty list of modules; received an empty list")
    for i, m in enumerate(items):
        if not isinstance(m, nn.Module):
            where = f"{name}[{i}]" if was_list else name
            raise TypeError(f"{where} must be a torch.nn.Module (a layer of the model); received {type(m).__name__}")
    if len({id(m) for m in items}) != len(items):
        raise ValueError(f"{name} lists the same module more than once")
    return items, was_list


def check_layers_in_model(model: Any, layers: Sequence[nn.Module], name: str = "layer") -> None:
    """A clear error when a layer is not a submodule of ``model`` (only checkable when the model is a module)."""
    if not isinstance(model, nn.Module):
        return
    ids = {id(m) for m in model.modules()}
    for i, m in enumerate(layers):
        if id(m) not in ids:
            where = f"{name}[{i}]" if len(layers) > 1 else name
            raise ValueError(
                f"{where} ({type(m).__name__}) is not a submodule of the model; pass a module of the model, "
                "e.g. model.conv2"
            )


class _Stop(Exception):
    """Raised inside a hook to end a forward pass once every tapped layer has run."""


def _flat(value: Any, layer: nn.Module) -> tuple[list[Tensor], int | None]:
    if isinstance(value, Tensor):
        return [value], None
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, Tensor) for v in value):
        return list(value), len(value)
    raise TypeError(
        f"layer {type(layer).__name__} produced {type(value).__name__}; layer attribution needs a tensor or a "
        "tuple of tensors there (tap a submodule whose output is a tensor)"
    )


def _reused(layer: nn.Module, times: int) -> str:
    return (
        f"layer {type(layer).__name__} is called {times} or more times in one forward pass; attribution to a reused "
        "layer is ambiguous: pass a layer that runs once (e.g. give each use its own module)"
    )


def _leaf(t: Tensor) -> Tensor:
    return t.detach().requires_grad_(True) if torch.is_floating_point(t) else t


class LayerSpace(nn.Module):
    """The model as a function of the activations at ``layers`` (see the module docstring).

    Args:
        model: the model (``nn.Module`` or any callable).
        layers: a module or a list of modules of the model.
        attribute_to_input: work with each layer's input (first positional argument, or all of them) instead of
            its output.

    It is an ``nn.Module`` holding the model as a child, so the engine's guard and per-model caches treat it as
    the model; the user's modules are not modified. Use ``with space:`` around every use (registers the hooks,
    removes them on exit, also on error).
    """

    def __init__(self, model: Callable, layers: LayerType, attribute_to_input: bool = False):
        super().__init__()
        self.layers, self.was_list = format_layers(layers)
        check_layers_in_model(model, self.layers)
        if isinstance(model, nn.Module):
            self.model = model
        else:
            object.__setattr__(self, "model", model)
        self.attribute_to_input = bool(attribute_to_input)
        object.__setattr__(self, "_taps", [
            LayerTap(m, attribute_to_input=self.attribute_to_input, replace=self._transform(i))
            for i, m in enumerate(self.layers)
        ])
        self._mode = "pass"
        self._replacements: list[Any] | None = None
        self._leaves: list[Any] = [None] * len(self.layers)
        self._acts: list[Any] = [None] * len(self.layers)
        self._order: list[int] = []
        self.structure: list[int | None] | None = None
        self._depth = 0

    # -- hooks ----------------------------------------------------------------------------------------------
    def __enter__(self) -> "LayerSpace":
        if self._depth == 0:
            for tap in self._taps:
                tap.__enter__()
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            for tap in self._taps:
                tap.__exit__(*exc)
            self._mode = "pass"
            self._replacements = None
            for tap in self._taps:
                tap.values = []

    def _transform(self, i: int) -> Callable[[Any], Any]:
        def fn(value: Any) -> Any:
            mode = self._mode
            if mode in ("replace", "leaf", "through") and self._taps[i].values:
                raise ValueError(_reused(self.layers[i], 2))
            if mode == "replace":
                new = self._replacements[i]
                old, _ = _flat(value, self.layers[i])
                got, _ = _flat(new, self.layers[i])
                if len(old) != len(got) or any(o.shape != g.shape for o, g in zip(old, got)):
                    raise ValueError(
                        f"replacement for layer {type(self.layers[i]).__name__} has shape(s) "
                        f"{[tuple(g.shape) for g in got]}; the layer's {'input' if self.attribute_to_input else 'output'} "
                        f"has {[tuple(o.shape) for o in old]}"
                    )
                return new
            if mode == "leaf":
                flat, n = _flat(value, self.layers[i])
                if not any(self._leaves):
                    # the first tapped layer to run: its activations become leaves (the graph upstream is cut)
                    leaves = [_leaf(t) for t in flat]
                    self._acts[i] = leaves
                    # the model gets non-leaf copies: an in-place op after the layer (ReLU(inplace=True)) stays legal
                    given = [t.clone() if t.requires_grad else t for t in leaves]
                else:
                    # a later layer (nested in or after an earlier tapped one) must not cut the earlier layers'
                    # gradients: it stays in the graph, and the gradient at it is taken at a zero probe added to it
                    leaves = [torch.zeros_like(t, requires_grad=True) if torch.is_floating_point(t) else t for t in flat]
                    self._acts[i] = [t.detach() for t in flat]
                    with torch._C.DisableTorchFunction():  # a plain addition, unseen by rule modes (LRP, DeepLift)
                        given = [t + p if p.requires_grad else t for t, p in zip(flat, leaves)]
                self._leaves[i] = leaves
                return given[0] if n is None else type(value)(given)
            if mode == "through":
                flat, n = _flat(value, self.layers[i])
                self._leaves[i] = flat
                # the model gets copies, so an in-place op after the layer leaves the tapped value intact
                given = [t.clone() if t.requires_grad else t for t in flat]
                return given[0] if n is None else type(value)(given)
            if mode == "trace":
                if self._leaves[i] is None:
                    flat, n = _flat(value, self.layers[i])
                    self._acts[i] = flat  # the raw values, in the graph of the layers tapped before
                    self._leaves[i] = [_leaf(t) for t in flat]
                    self._order.append(i)
                    if len(self._order) == len(self.layers):
                        raise _Stop
                    given = [t.clone() if t.requires_grad else t for t in self._leaves[i]]
                    return given[0] if n is None else type(value)(given)
                return value
            if mode in ("capture", "value"):
                _flat(value, self.layers[i])
                if all(t.values for j, t in enumerate(self._taps) if j != i):
                    self._taps[i].values.append(value)
                    raise _Stop
                return value
            self._taps[i].values.clear()  # "pass": keep nothing alive
            return value

        return fn

    def _reset(self, mode: str) -> None:
        if self._depth == 0:
            raise RuntimeError("LayerSpace must be used inside `with space:`")
        self._mode = mode
        for tap in self._taps:
            tap.values = []

    def _values(self) -> list[Any]:
        out = []
        for tap, m in zip(self._taps, self.layers):
            if not tap.values:
                raise ValueError(
                    f"layer {type(m).__name__} was not called during the model's forward pass; pass a layer "
                    "that the forward uses"
                )
            if len(tap.values) > 1:
                raise ValueError(_reused(m, len(tap.values)))
            out.append(tap.values[0])
        return out

    def _flatten(self, values: list[Any]) -> tuple[Tensor, ...]:
        flat: list[Tensor] = []
        structure = []
        for v, m in zip(values, self.layers):
            f, n = _flat(v, m)
            flat.extend(f)
            structure.append(n)
        self.structure = structure
        return tuple(flat)

    def unflatten(self, flat: Sequence[Any]) -> list[Any]:
        """Per-layer values (a tensor, or a tuple for layers with several outputs/inputs) from a flat sequence."""
        if self.structure is None:
            raise RuntimeError("no activations captured yet")
        out, pos = [], 0
        for n in self.structure:
            if n is None:
                out.append(flat[pos])
                pos += 1
            else:
                out.append(tuple(flat[pos: pos + n]))
                pos += n
        return out

    def restore_form(self, flat: Sequence[Any]) -> Any:
        """Results in the layer's form: one layer -> its form (tensor or tuple); a list of layers -> a list."""
        per_layer = self.unflatten(flat)
        return per_layer if self.was_list else per_layer[0]

    @property
    def n_activations(self) -> int:
        if self.structure is None:
            raise RuntimeError("no activations captured yet")
        return sum(1 if n is None else n for n in self.structure)

    # -- modes ----------------------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``space(*flat_activations, *model_inputs, *extras, **kwargs)``: the model with the layers replaced."""
        k = self.n_activations
        if len(args) < k:
            raise ValueError(f"expected {k} activation tensors before the model inputs; received {len(args)} arguments")
        self._reset("replace")
        self._replacements = self.unflatten(args[:k])
        try:
            out = self.model(*args[k:], **kwargs)
            self._values()
        finally:
            self._mode = "pass"
            self._replacements = None
        return out

    def value(self, *args: Any, **kwargs: Any) -> list[Any]:
        """The layers' values (per layer, differentiable) for ``model(*args, **kwargs)``; the forward stops there."""
        self._reset("value")
        try:
            self.model(*args, **kwargs)
        except _Stop:
            pass
        finally:
            self._mode = "pass"
        values = self._values()
        for tap in self._taps:
            tap.values = []
        return values

    def dependent(self, ev: Evaluator, inputs: tuple[Tensor, ...]) -> bool:
        """Whether one tapped layer's value is computed from another's (a layer nested in another, or one that
        follows another), found from one forward of the first example: each layer's value is made a leaf and the
        graph of the layers that run later is searched for it. Such layers cannot be replaced at once (the later
        replacement would cut the earlier layer off), so replacement methods attribute them one at a time."""
        if len(self.layers) < 2:
            return False
        self._reset("trace")
        self._leaves = [None] * len(self.layers)
        self._acts = [None] * len(self.layers)
        self._order: list[int] = []
        try:
            ex = torch.zeros(1, dtype=torch.long)
            args, kwargs = ev.fwd.rows(ex)
            with torch.enable_grad():
                try:
                    self.model(*(x[:1] for x in inputs), *args, **kwargs)
                except _Stop:
                    pass
                for k, i in enumerate(self._order):
                    earlier = [t for j in self._order[:k] for t in self._leaves[j] if t.requires_grad]
                    later = [t.sum() for t in self._acts[i] if t.requires_grad]
                    if earlier and later and any(
                        g is not None for g in torch.autograd.grad(later, earlier, allow_unused=True)
                    ):
                        return True
            return False
        finally:
            self._mode = "pass"
            self._leaves = [None] * len(self.layers)
            self._acts = [None] * len(self.layers)
            self._order = []
            for tap in self._taps:
                tap.values = []

    def activations(self, ev: Evaluator, inputs: tuple[Tensor, ...], example_index: Tensor, tag: Any = "acts") -> tuple[Tensor, ...]:
        """Flat activations of every row (no grad), evaluated in chunks; the forward stops after the layers.

        ``ev`` supplies the extra forward arguments (indexed by ``example_index``), the batch size and the budget.
        """
        out: list[list[Tensor]] = []
        chunker = ev.chunks(example_index.shape[0], inputs, kind="forward", tag=("layer-acts", tag))
        with torch.no_grad():
            for rows in chunker:
                xs = tuple(x.index_select(0, rows.to(x.device)) for x in inputs)
                ex = example_index[rows]
                if chunker.probing:
                    with measure_forward_peak() as peak:
                        vals = self._run_value(ev, xs, ex)
                    chunker.record(ex.shape[0], peak[0])
                else:
                    vals = self._run_value(ev, xs, ex)
                out.append([v.detach() for v in self._flatten(vals)])
        return tuple(torch.cat(parts) for parts in zip(*out))

    def _run_value(self, ev: Evaluator, xs: tuple[Tensor, ...], ex: Tensor) -> list[Any]:
        args, kwargs = ev.fwd.rows(ex)
        return self.value(*xs, *args, **kwargs)

    def layer_grad(
        self, ev: Evaluator, inputs: tuple[Tensor, ...], example_index: Tensor, chunker: Any = None,
        track_inputs: bool = False,
    ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], Tensor]:
        """``(activations, gradients, scores)`` at the layers for rows ``inputs``: one forward, and a backward
        through the layers after the tap only (the activations are cut from the graph upstream).
        ``track_inputs=True`` makes the (floating-point) inputs require grad during the forward, so operations
        that look at which operands carry a gradient (LRP's :class:`SplitAdditions`) see the paths from the
        inputs that bypass the layers as they would in a backward pass to the inputs; no gradient is taken
        with respect to the inputs."""
        self._reset("leaf")
        self._leaves = [None] * len(self.layers)
        self._acts = [None] * len(self.layers)
        try:
            xs = tuple(_leaf(x) if track_inputs else x.detach() for x in inputs)
            with torch.enable_grad():
                if chunker is not None and chunker.probing:
                    with measure_saved_bytes(ev._param_ptrs) as saved:
                        score = ev.target.select(ev.run(xs, example_index), example_index)
                    chunker.record(example_index.shape[0], saved[0])
                else:
                    score = ev.target.select(ev.run(xs, example_index), example_index)
                values = self._values()  # checks every layer ran exactly once
                wrt = [t for ls in self._leaves for t in ls]
                acts = self._flatten([ls[0] if isinstance(v, Tensor) else tuple(ls) for ls, v in zip(self._acts, values)])
                diff = [t for t in wrt if t.requires_grad]
                if score.requires_grad and diff:
                    got = iter(torch.autograd.grad(score.sum(), diff, allow_unused=True))
                    grads = tuple(next(got) if t.requires_grad else None for t in wrt)
                else:
                    grads = (None,) * len(acts)
        finally:
            self._mode = "pass"
            self._leaves = [None] * len(self.layers)
            self._acts = [None] * len(self.layers)
            for tap in self._taps:
                tap.values = []
        grads = tuple(torch.zeros_like(a) if g is None else g for g, a in zip(grads, acts))
        return tuple(a.detach() for a in acts), grads, score.detach()

    def grad_through(
        self,
        ev: Evaluator,
        inputs: tuple[Tensor, ...],
        example_index: Tensor,
        grad_fn: Callable[[int, Tensor], Tensor],
        chunker: Any = None,
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        """``(input gradients, scores)`` for rows ``inputs`` where only gradient flowing *through* the layers is
        kept: ``g_k = dF/dy_k`` at the ``k``-th flat activation is mapped by ``grad_fn(k, g_k)`` (treated as a
        constant) and pulled back by the vector-Jacobian product ``sum_k grad_fn(k, g_k) . dy_k/dx``. One forward
        and two backward passes; inputs that do not reach the layers get zeros."""
        self._reset("through")
        self._leaves = [None] * len(self.layers)
        try:
            xs = tuple(x.detach().requires_grad_(True) for x in inputs)
            with torch.enable_grad():
                model_in = tuple(x.clone() for x in xs)
                if chunker is not None and chunker.probing:
                    with measure_saved_bytes(ev._param_ptrs) as saved:
                        score = ev.target.select(ev.run(model_in, example_index), example_index)
                    chunker.record(example_index.shape[0], saved[0])
                else:
                    score = ev.target.select(ev.run(model_in, example_index), example_index)
                values = self._values()  # checks every layer ran exactly once
                acts = self._flatten([ls[0] if isinstance(v, Tensor) else tuple(ls) for ls, v in zip(self._leaves, values)])
                diff = [(k, a) for k, a in enumerate(acts) if a.requires_grad]
                grads: tuple[Tensor | None, ...] = (None,) * len(xs)
                if score.requires_grad and diff:
                    g = torch.autograd.grad(score.sum(), [a for _, a in diff], allow_unused=True, retain_graph=True)
                    pulled = [(a, grad_fn(k, gk.detach())) for (k, a), gk in zip(diff, g) if gk is not None]
                    if pulled:
                        grads = torch.autograd.grad([a for a, _ in pulled], xs, grad_outputs=[v for _, v in pulled],
                                                    allow_unused=True)
        finally:
            self._mode = "pass"
            self._leaves = [None] * len(self.layers)
            for tap in self._taps:
                tap.values = []
        return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, xs)), score.detach()

    def grad_rows(
        self,
        ev: Evaluator,
        n_rows: int,
        build: Callable[[Tensor], tuple[tuple[Tensor, ...], Tensor]],
        consume: Callable[[Tensor, Tensor, tuple[Tensor, ...], tuple[Tensor, ...], Tensor], None],
        row_like: tuple[Tensor, ...],
        tag: Any = None,
        track_inputs: bool = False,
    ) -> None:
        """The chunked loop of gradients at the layers (the layer analogue of ``Evaluator.grad_rows``).

        ``build(rows) -> (input_rows, example_index)``; ``consume(rows, example_index, activations, gradients,
        scores)`` with flat tuples of the layers' activations and the target's gradients there.
        ``track_inputs``: see :meth:`layer_grad`.
        """
        chunker = ev.chunks(n_rows, row_like, kind="grad", tag=("layer-grad", tag))
        for rows in chunker:
            xs, ex = build(rows)
            acts, grads, score = self.layer_grad(ev, xs, ex, chunker, track_inputs)
            consume(rows, ex, acts, grads, score)

