"""The class-activation-map family beyond Grad-CAM, over one mechanism.

Every method looks at the activations ``A`` of one layer, arranged as maps ``(N, C, *S)`` (channels, then spatial
dims), and combines their channels with per-method weights; most use the gradients ``G = dy/dA`` of the target:

* ``GradCAMPlusPlus``: ``w_c = sum_s alpha_cs relu(G_cs)``, ``alpha = G^2 / (2 G^2 + sum_s(A_c) G^3)``;
  ``relu(sum_c w_c A_c)``. Chattopadhyay et al., 2018, arXiv:1710.11063 (the closed form for an exponential of
  the score, as commonly implemented).
* ``XGradCAM``: ``w_c = sum_s A_cs G_cs / sum_s A_cs``; ``relu(sum_c w_c A_c)``. Fu et al., 2020, arXiv:2008.02312.
* ``HiResCAM``: ``relu(sum_c G_c * A_c)`` (element-wise, no averaging). Draelos & Carin, 2020, arXiv:2011.08891.
* ``LayerCAM``: ``relu(sum_c relu(G_c) * A_c)``. Jiang et al., 2021, IEEE TIP 30, 5875-5888.
* ``ScoreCAM``: ``w = softmax_c(y(x * up(norm(A_c))))``, the target score with the input masked by each channel's
  upsampled, min-max normalised map; ``relu(sum_c w_c A_c)``. Wang et al., 2020, arXiv:1910.01279.
* ``AblationCAM``: ``w_c = (y - y_c) / y`` with ``y_c`` the score when channel ``c`` of the layer is zeroed;
  ``relu(sum_c w_c A_c)``. Desai & Ramaswamy, 2020, WACV.
* ``EigenCAM``: the maps projected on their first right singular vector, ``M v_1`` with ``M = A`` as ``(S, C)``
  per example; class-agnostic, no gradient. Muhammad & Yeasin, 2020, arXiv:2008.00299. The singular vector's
  sign is fixed so the map sums to ``>= 0``.

Gradient methods run one forward and a backward through the layers *after* the tap per chunk of examples
(:class:`~pellucid.core.layers.LayerSpace`); ScoreCAM and AblationCAM evaluate their ``N x C`` masked / ablated
rows through the engine's chunker, across examples and channels at once. ``reshape_transform`` turns a layer's
raw output into maps, e.g. a vision transformer's tokens ``(N, 1 + h*w, C)`` into ``(N, C, h, w)``
(:func:`token_grid`). ``relu_attributions`` (default True, as in the papers) applies the final ReLU.
Results have shape ``(N, 1, *S)`` (Captum's Grad-CAM shape), or ``(N, 1, *input_spatial)`` with
``upsample_to_input=True``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import check_choice
from ..core.gradients import Evaluator
from ..core.inputs import ForwardArgs, TensorOrTuple
from ..core.layers import LayerSpace, check_layers_in_model, format_layers
from ..core.targets import TargetType
from ._base import Attribution, Call
from .layer import interpolate

ReshapeTransform = Callable[[Tensor], Tensor]
INTERPOLATE_MODES = ("nearest", "linear", "bilinear", "trilinear", "bicubic", "area")


def token_grid(prefix_tokens: int | None = None, height: int | None = None, width: int | None = None) -> ReshapeTransform:
    """A ``reshape_transform`` for vision transformers: tokens ``(N, T, C)`` -> maps ``(N, C, h, w)``.

    Args:
        prefix_tokens: tokens before the patch tokens (class token, register tokens) that are dropped. ``None``
            (default): ``T - height * width`` when both are given, else 1 if ``T - 1`` is a perfect square and 0
            if ``T`` is (never both for ``T > 1``).
        height, width: the patch grid; default square (``h = w = sqrt(T - prefix_tokens)``), or the other
            side from the one given.
    """
    def transform(tokens: Tensor) -> Tensor:
        if tokens.dim() != 3:
            raise ValueError(f"token_grid expects tokens of shape (N, T, C); received {tuple(tokens.shape)}")
        t = tokens.shape[1]
        prefix = prefix_tokens
        if prefix is None:
            if height is not None and width is not None:
                prefix = t - height * width
            elif math.isqrt(t) ** 2 == t:
                prefix = 0
            elif t > 1 and math.isqrt(t - 1) ** 2 == t - 1:
                prefix = 1
            else:
                raise ValueError(
                    f"token_grid cannot infer the grid of {t} tokens (neither {t} nor {t - 1} is a square); give "
                    "prefix_tokens=, height= and width="
                )
        n = t - prefix
        h, w = height, width
        if h is None and w is None:
            h = w = math.isqrt(n)
        elif h is None:
            h = n // w
        elif w is None:
            w = n // h
        if prefix < 0 or h * w != n:
            raise ValueError(
                f"token_grid: {t} tokens do not make prefix_tokens={prefix} + a {h}x{w} grid; give prefix_tokens=, "
                "height= and width= that match"
            )
        grid = tokens[:, prefix:].reshape(tokens.shape[0], h, w, tokens.shape[2])
        return grid.permute(0, 3, 1, 2)

    return transform


def upsample(maps: Tensor, size: tuple[int, ...], mode: str = "bilinear") -> Tensor:
    """Interpolate ``(N, K, *S)`` maps to spatial ``size``; ``"linear"``/``"bilinear"``/``"trilinear"`` adapt to the
    number of spatial dims (1, 2, 3)."""
    check_choice(mode, "interpolate_mode", INTERPOLATE_MODES)
    dims = maps.dim() - 2
    if len(size) != dims:
        raise ValueError(
            f"cannot upsample {dims}-d maps {tuple(maps.shape)} to the input's spatial size {tuple(size)}: the input "
            "must have the maps' number of spatial dims after its batch and channel dims"
        )
    if mode in ("linear", "bilinear", "trilinear"):
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[dims]
    return interpolate(maps, tuple(size), mode)


def _spatial_sum(t: Tensor) -> Tensor:
    """Sum over the spatial dims of ``(N, C, *S)``, kept for broadcasting."""
    return t.sum(dim=tuple(range(2, t.dim())), keepdim=True)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(num))


def weighted_maps(weights: Tensor, maps: Tensor) -> Tensor:
    """``sum_c w_c A_c``: weights ``(N, C)`` or ``(N, C, 1, ...)``, maps ``(N, C, *S)`` -> ``(N, *S)``."""
    w = weights.reshape(weights.shape[:2] + (1,) * (maps.dim() - 2))
    return (w * maps).sum(1)


class _CAM(Attribution):
    """Shared body: capture the layer's maps (and gradients), combine them per method, post-process."""

    def __init__(self, forward_func: Callable, layer: nn.Module, reshape_transform: ReshapeTransform | None = None):
        super().__init__(forward_func)
        if isinstance(layer, (list, tuple)):
            raise TypeError(f"{type(self).__name__} takes one layer (a torch.nn.Module); received a {type(layer).__name__}")
        format_layers(layer)
        check_layers_in_model(forward_func, [layer])
        if reshape_transform is not None and not callable(reshape_transform):
            raise TypeError(
                f"reshape_transform must be a callable (activations -> (N, C, *S) maps) or None; received "
                f"{type(reshape_transform).__name__}"
            )
        self.layer = layer
        self.reshape_transform = reshape_transform

    # -- per-method mathematics -----------------------------------------------------------------------------
    def combine(self, maps: Tensor, grads: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- the mechanism -------------------------------------------------------------------------------------
    def maps(self, raw: Tensor) -> Tensor:
        """The layer's raw activations (or gradients) as ``(N, C, *S)`` maps."""
        out = self.reshape_transform(raw) if self.reshape_transform is not None else raw
        if not isinstance(out, Tensor) or out.dim() < 3:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            hint = " (pass reshape_transform=, e.g. token_grid() for transformer tokens)" if self.reshape_transform is None else ""
            raise ValueError(
                f"{type(self).__name__} needs the layer's activations as maps (N, C, *spatial); received {shape}{hint}"
            )
        return out

    def _single(self, acts: tuple[Tensor, ...]) -> Tensor:
        if len(acts) != 1:
            raise ValueError(
                f"{type(self).__name__} needs a layer with one tensor output (or input); this one has {len(acts)}"
            )
        return acts[0]

    def _cams(self, call: Call, space: LayerSpace) -> Tensor:
        """``(N, *S)`` maps before the ReLU; gradient methods: :meth:`combine` per chunk of examples."""
        parts: list[Tensor] = []

        def build(rows: Tensor):
            return tuple(x.index_select(0, rows.to(x.device)) for x in call.inputs), rows

        def consume(rows, ex, acts, grads, score) -> None:
            a, g = self.maps(self._single(acts)), self.maps(self._single(grads))
            parts.append(self.combine(a, g))

        space.grad_rows(call.ev, call.n, build, consume, call.inputs, tag=("cam", type(self).__name__))
        return torch.cat(parts)

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = True,
        upsample_to_input: bool = False,
        interpolate_mode: str = "bilinear",
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> Tensor:
        """Class activation maps ``(N, 1, *S)`` of the layer (``(N, 1, *input_spatial)`` with ``upsample_to_input``).

        Args:
            inputs, target, additional_forward_args: as in Captum (any target form, see ``pellucid.core.targets``).
            attribute_to_layer_input: use the layer's input instead of its output.
            relu_attributions: apply the final ReLU of the papers (default True).
            upsample_to_input: interpolate the maps to the spatial size of ``inputs`` (the first input's dims
                after batch and channel), with ``interpolate_mode`` (default ``"bilinear"``).
            forward_kwargs, batch_size, show_progress: pellucid extras (keyword extras, rows per model call,
                progress bar).
        """
        check_choice(interpolate_mode, "interpolate_mode", INTERPOLATE_MODES)
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
                            needs_grad=False)
        space = LayerSpace(self.forward_func, self.layer, attribute_to_layer_input)
        with call.guard, space:
            cam = self._cams(call, space)
        if relu_attributions:
            cam = F.relu(cam)
        cam = cam.unsqueeze(1)
        if upsample_to_input:
            cam = upsample(cam, tuple(call.inputs[0].shape[2:]), interpolate_mode)
        return cam


class GradCAMPlusPlus(_CAM):
    """Grad-CAM++ (Chattopadhyay et al., 2018, arXiv:1710.11063): pixel-weighted positive gradients.

    ``alpha = G^2 / (2 G^2 + sum_s(A) G^3)`` (0 where the denominator is 0), ``w_c = sum_s alpha relu(G)``,
    map ``sum_c w_c A_c``. ``forward_func``, ``layer`` and ``reshape_transform`` as in every CAM.
    """

    def combine(self, maps: Tensor, grads: Tensor) -> Tensor:
        g2 = grads.pow(2)
        alpha = _safe_div(g2, 2 * g2 + _spatial_sum(maps) * grads.pow(3))
        weights = _spatial_sum(alpha * F.relu(grads))
        return weighted_maps(weights, maps)


class XGradCAM(_CAM):
    """XGrad-CAM (Fu et al., 2020, arXiv:2008.02312): ``w_c = sum_s A G / sum_s A`` (0 where ``sum_s A = 0``)."""

    def combine(self, maps: Tensor, grads: Tensor) -> Tensor:
        return weighted_maps(_safe_div(_spatial_sum(maps * grads), _spatial_sum(maps)), maps)


class HiResCAM(_CAM):
    """HiResCAM (Draelos & Carin, 2020, arXiv:2011.08891): ``sum_c G_c * A_c`` element-wise."""

    def combine(self, maps: Tensor, grads: Tensor) -> Tensor:
        return (maps * grads).sum(1)


class LayerCAM(_CAM):
    """LayerCAM (Jiang et al., 2021, IEEE TIP): ``sum_c relu(G_c) * A_c`` element-wise."""

    def combine(self, maps: Tensor, grads: Tensor) -> Tensor:
        return (F.relu(grads) * maps).sum(1)


class EigenCAM(_CAM):
    """Eigen-CAM (Muhammad & Yeasin, 2020, arXiv:2008.00299): first principal direction of the maps, no gradient.

    Per example the maps are a matrix ``M`` of shape ``(S, C)`` (positions x channels, not centred, as in the
    paper); the result is ``M v_1`` with ``v_1`` the first right singular vector, signed so the map sums to
    ``>= 0``. Class-agnostic: ``target`` is accepted for a uniform API and ignored.
    """

    def _cams(self, call: Call, space: LayerSpace) -> Tensor:
        check_index_targets(call)
        acts = self.maps(self._single(space.activations(call.ev, call.inputs, torch.arange(call.n), tag="eigen-cam")))
        m = acts.flatten(2).transpose(1, 2)  # (N, S, C)
        # an example with NaN/Inf activations (NaN inputs) gets a NaN map; the others' decompositions are unaffected
        finite = torch.isfinite(m).flatten(1).all(1)
        _, _, vh = torch.linalg.svd(torch.where(finite.reshape(-1, 1, 1), m, torch.zeros_like(m)), full_matrices=False)
        proj = m @ vh[:, 0, :].unsqueeze(-1)  # (N, S, 1)
        sign = torch.where(proj.sum(dim=(1, 2), keepdim=True) < 0, -1.0, 1.0).to(proj.dtype)
        proj = torch.where(finite.reshape(-1, 1, 1), proj * sign, torch.full_like(proj, float("nan")))
        return proj.reshape((acts.shape[0],) + tuple(acts.shape[2:]))


def check_index_targets(call: Call) -> None:
    """Out-of-range index targets raise (as in every method) for a method that never evaluates the output: one
    no-grad forward of the first example gives the output's shape, against which every example's target is
    checked. ``None`` and callable targets are not checked."""
    target = call.ev.target
    if target.index is None:
        return
    first = torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        out = call.ev.run(tuple(x[:1] for x in call.inputs), first)
    if isinstance(out, Tensor) and out.dim() > 0:
        target.select(out.expand((call.n,) + tuple(out.shape[1:])), torch.arange(call.n))


class _PerturbedCAM(_CAM):
    """ScoreCAM / AblationCAM: ``N x C`` perturbed forward passes, chunked across examples and channels."""

    def row_weights(self, call: Call, space: LayerSpace, raw: Tensor, maps: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _cams(self, call: Call, space: LayerSpace) -> Tensor:
        raw = self._single(space.activations(call.ev, call.inputs, torch.arange(call.n), tag=type(self).__name__))
        maps = self.maps(raw)
        return weighted_maps(self.row_weights(call, space, raw, maps), maps)


class ScoreCAM(_PerturbedCAM):
    """Score-CAM (Wang et al., 2020, arXiv:1910.01279): weights from the scores of channel-masked inputs.

    Each channel's map is upsampled to the input's spatial size (bilinear), min-max normalised to ``[0, 1]``
    per example (a constant map gives a zero mask) and multiplies the input (broadcast over its channels); the
    target scores of the ``N x C`` masked inputs, softmax-normalised over channels, weight the maps. Needs one
    input tensor shaped ``(N, channels, *S_in)`` with as many spatial dims as the maps.
    """

    def _cams(self, call: Call, space: LayerSpace) -> Tensor:
        if len(call.inputs) != 1:
            raise ValueError(f"ScoreCAM masks one input tensor; received a tuple of {len(call.inputs)} inputs")
        return super()._cams(call, space)

    def row_weights(self, call: Call, space: LayerSpace, raw: Tensor, maps: Tensor) -> Tensor:
        x = call.inputs[0]
        if x.dim() != maps.dim():
            raise ValueError(
                f"ScoreCAM masks the input with the layer's maps {tuple(maps.shape)}; the input must be (N, channels, "
                f"*spatial) with {maps.dim() - 2} spatial dims; received {tuple(x.shape)}"
            )
        n, c = maps.shape[:2]
        size = tuple(x.shape[2:])
        scores = torch.empty(n * c, dtype=x.dtype, device=x.device)
        chunker = call.ev.chunks(n * c, (x,), kind="forward", tag=("score-cam", id(self.layer)))
        for rows in chunker:
            ex, ch = rows // c, rows % c
            m = maps[ex.to(maps.device), ch.to(maps.device)].unsqueeze(1)  # (rows, 1, *S)
            up = upsample(m.to(x.dtype), size, "bilinear").flatten(1)
            lo, hi = up.min(1, keepdim=True).values, up.max(1, keepdim=True).values
            mask = _safe_div(up - lo, (hi - lo).expand_as(up)).reshape((-1, 1) + size)
            xr = x.index_select(0, ex.to(x.device)) * mask.to(x.device)
            scores[rows.to(x.device)] = call.ev.scores((xr,), ex, chunker).to(x.dtype)
        return torch.softmax(scores.reshape(n, c), dim=1).to(maps.dtype)


def channel_index(raw_shape: tuple[int, ...], reshape_transform: ReshapeTransform | None) -> tuple[Tensor, int]:
    """For each element of one example's raw activation, the map channel it becomes (-1: not in any map).

    Found by passing element numbers through ``reshape_transform``, which must therefore only rearrange
    (select, reshape, permute) its input. Returns ``(index of shape raw_shape, C)``.
    """
    numel = math.prod(raw_shape)
    numbers = torch.arange(numel, dtype=torch.float64).reshape((1,) + tuple(raw_shape))
    if reshape_transform is None:
        if len(raw_shape) < 2:
            raise ValueError(f"AblationCAM needs (N, C, *spatial) activations; received per-example shape {raw_shape}")
        c = raw_shape[0]
        return torch.arange(c).reshape((c,) + (1,) * (len(raw_shape) - 1)).expand(raw_shape), c
    out = reshape_transform(numbers)
    if out.dim() < 3 or torch.any(out != out.round()) or out.min() < 0 or out.max() >= numel:
        raise ValueError(
            "AblationCAM: reshape_transform must only rearrange the activations (select, reshape, permute) so "
            "channels can be ablated in the layer's own layout"
        )
    c = out.shape[1]
    index = torch.full((numel,), -1, dtype=torch.long)
    chan = torch.arange(c).reshape((c,) + (1,) * (out.dim() - 2)).expand(out.shape[1:])
    index[out[0].long().flatten()] = chan.flatten()
    return index.reshape(raw_shape), c


class AblationCAM(_PerturbedCAM):
    """Ablation-CAM (Desai & Ramaswamy, 2020, WACV): ``w_c = (y - y_c) / y``, ``y_c`` with channel ``c`` zeroed.

    The ablation happens in the layer's own layout (with a ``reshape_transform``, every raw element that maps to
    channel ``c``); where ``y = 0`` the weight is ``y - y_c``. ``N x C`` ablated forward passes, chunked.
    """

    def row_weights(self, call: Call, space: LayerSpace, raw: Tensor, maps: Tensor) -> Tensor:
        index, c = channel_index(tuple(raw.shape[1:]), self.reshape_transform)
        index = index.to(raw.device)
        n = raw.shape[0]
        ex_all = torch.arange(n)
        y = call.ev.all_scores(call.inputs, ex_all, tag="ablation-cam-y")
        fwd = ForwardArgs(tuple(call.inputs) + tuple(call.ev.fwd.args), call.ev.fwd.kwargs, n)
        ev = Evaluator(space, call.ev.target, n=n, batch_size=call.ev.batch_size, show_progress=call.ev.show_progress,
                       desc=type(self).__name__, fwd=fwd)
        scores = torch.empty(n * c, dtype=y.dtype, device=y.device)
        chunker = call.ev.chunks(n * c, (raw,), kind="forward", tag=("ablation-cam", id(self.layer)))
        for rows in chunker:
            ex, ch = rows // c, rows % c
            keep = (index.unsqueeze(0) != ch.to(raw.device).reshape((-1,) + (1,) * index.dim())).to(raw.dtype)
            ablated = raw.index_select(0, ex.to(raw.device)) * keep
            scores[rows.to(y.device)] = ev.scores((ablated,), ex, chunker)
        drop = y.unsqueeze(1) - scores.reshape(n, c)
        weights = torch.where(y.unsqueeze(1) != 0, drop / torch.where(y != 0, y, torch.ones_like(y)).unsqueeze(1), drop)
        return weights.to(maps.dtype)
