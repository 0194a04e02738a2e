"""``study padding``: Alsallakh et al., 2020, "Mind the Pad - CNNs can develop blind spots", arXiv:2010.02178.

A small CNN (:class:`StridedCNN`: :class:`~pellucid.data.SimpleCNN` with its max-poolings replaced by stride-2
convolutions, where padding matters) is trained on the procedural small-object images
(:func:`~pellucid.data.make_shapes`, flipped at random so that the data have no preferred side) at an *uneven*
input size (32: both stride-2 layers read their top/left padding but not their bottom/right one) and an *even* one
(33 = 2^5 + 1: every layer pads evenly), each with zero and with symmetric (mirror) padding. For each of the four
models it measures the lopsidedness the paper attributes to uneven zero padding: the mean 3x3 filters' left/right
and top/bottom mass, the mean feature maps' border skew, and a blind-spot sweep (the object pasted at every
location of a flat background, the probability of its class recorded). Foveation maps of the architecture show
how many convolution paths start at each pixel for every padding mode.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ...data import evaluate, make_shapes, train_quick
from ...data.shapes import SHAPE_CLASSES, _glyph
from ..blind_spots import blind_spot_sweep, map_asymmetry, mean_feature_maps, mean_filters, plot_maps
from ..padding import PADDING_MODES, foveation_map, padding_report, swap_padding
from ._output import StudyOutput, Table

TITLE = "padding: uneven padding and blind spots (Alsallakh et al. 2020, arXiv:2010.02178)"

SIZES = {"uneven": 32, "even": 33}
PADDINGS = ("zeros", "symmetric")


class StridedCNN(nn.Module):
    """``(N, C, H, W) -> (N, n_classes)``: conv(3x3) - ReLU, two conv(3x3, stride 2, padding 1) - ReLU, conv(3x3)
    - ReLU, global max pooling, linear head (SimpleCNN with stride-2 convolutions in place of max pooling)."""

    def __init__(self, in_channels: int = 3, n_classes: int = 4, width: int = 16):
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU()
        self.conv3, self.relu3 = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU()
        self.conv4, self.relu4 = nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU()
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        x = self.relu4(self.conv4(self.relu3(self.conv3(x))))
        return self.head(x.amax(dim=(2, 3)))


RELUS = ("relu1", "relu2", "relu3", "relu4")


def border_skew(m: Tensor) -> float:
    """``(mean(first row) + mean(first column) - mean(last row) - mean(last column)) / (2 mean|M|)``: positive when
    the top/left border of a map is stronger than the bottom/right one, 0 for a flip-symmetric map."""
    m = m.double()
    scale = 2 * m.abs().mean()
    if scale == 0:
        return float("nan")
    return float((m[0].mean() + m[:, 0].mean() - m[-1].mean() - m[:, -1].mean()) / scale)


def _flipped(images: Tensor, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    out = images.clone()
    h = torch.rand(images.shape[0], generator=g) < 0.5
    v = torch.rand(images.shape[0], generator=g) < 0.5
    out[h] = out[h].flip(-1)
    out[v] = out[v].flip(-2)
    return out


def _four_flips(images: Tensor) -> Tensor:
    return torch.cat([images, images.flip(-1), images.flip(-2), images.flip(-1, -2)])


def run(out: Path, fast: bool, seed: int, log: Callable[[str], None]) -> StudyOutput:
    n_train, n_test, epochs = (400, 100, 2) if fast else (2000, 600, 8)
    summary: dict = {"sizes": SIZES, "paddings": list(PADDINGS), "n_train": n_train, "epochs": epochs,
                     "paper": "arXiv:2010.02178"}
    figures: dict = {}
    notes: list[str] = []

    # padding arithmetic of the architecture at both sizes
    arch = StridedCNN()
    reports = {k: padding_report(arch, s, suggest=2 if k == "uneven" else 0) for k, s in SIZES.items()}
    for k, r in reports.items():
        log(r.text())
    summary["padding_report"] = {k: r.to_dict() for k, r in reports.items()}

    # foveation: how many paths start at each pixel, per padding mode, at both sizes
    fov = {f"{m} {s}": foveation_map(arch, s, m) for s in SIZES.values() for m in PADDING_MODES}
    summary["foveation"] = {k: {"min_over_max": float(v.min() / v.max()),
                                "top_left_over_bottom_right": float(v[0, 0] / v[-1, -1]) if v[-1, -1] > 0 else None,
                                "border_skew": border_skew(v)} for k, v in fov.items()}
    figures["foveation"] = plot_maps(fov, ncols=len(PADDING_MODES), cmap="magma",
                                     title="foveation: convolution paths per input pixel")[0]

    # train the four models
    variants: dict[str, dict] = {}
    models: dict[str, nn.Module] = {}
    stim_class = SHAPE_CLASSES.index("plus")
    for size_name, size in SIZES.items():
        data = make_shapes(n_train + n_test, size=size, seed=seed)
        train, test = data.split(n_train)
        x_train = _flipped(train.images, seed)
        x_test = _flipped(test.images, seed + 1)
        probe = _four_flips(test.images[: 64 if fast else 256])  # flip-symmetric input distribution
        background = torch.full((3, size, size), float(train.images.mean()))
        side = 7
        stimulus = torch.full((3, side, side), 0.95)
        mask = _glyph("plus", side)
        for padding in PADDINGS:
            name = f"{size_name} {size}, {padding}"
            torch.manual_seed(seed)
            model = swap_padding(StridedCNN(), padding)
            log_t = train_quick(model, x_train, train.labels, epochs=epochs, lr=5e-3, seed=seed)
            acc = evaluate(model, x_test, test.labels)
            filters = {f.name: f for f in mean_filters(model)}
            maps = mean_feature_maps(model, list(RELUS), probe)
            sweep = blind_spot_sweep(model, background, stimulus, stim_class, mask=mask, score="probability",
                                     stride=2 if fast else 1)
            models[name] = model
            variants[name] = {
                "size": size, "padding": padding, "uneven_layers": len(reports[size_name].uneven_layers),
                "test_accuracy": acc, "train_seconds": log_t.seconds,
                "filter_lr_asymmetry": {n: f.lr_asymmetry for n, f in filters.items()},
                "filter_tb_asymmetry": {n: f.tb_asymmetry for n, f in filters.items()},
                "feature_map_border_skew": {n: border_skew(m) for n, m in maps.items()},
                "feature_map_asymmetry": {n: map_asymmetry(m) for n, m in maps.items()},
                "sweep": {"mean": float(sweep.mean()), "min": float(sweep.min()),
                          "blind_fraction": float((sweep < 0.5).double().mean()), "border_skew": border_skew(sweep)},
                "_maps": maps, "_sweep": sweep, "_filters": filters,
            }
            log(f"{name}: test accuracy {acc:.3f} ({log_t.seconds:.1f} s)")

    # tables
    strided = ("conv2", "conv3")
    cols = ["accuracy", "uneven layers", "filter L/R asym", "filter T/B asym", "map border skew",
            "sweep mean p", "sweep blind frac", "sweep border skew"]
    rows, values = [], []
    for name, v in variants.items():
        rows.append(name)
        values.append([
            v["test_accuracy"], v["uneven_layers"],
            sum(v["filter_lr_asymmetry"][n] for n in strided) / len(strided),
            sum(v["filter_tb_asymmetry"][n] for n in strided) / len(strided),
            sum(v["feature_map_border_skew"][n] for n in RELUS) / len(RELUS),
            v["sweep"]["mean"], v["sweep"]["blind_fraction"], v["sweep"]["border_skew"],
        ])
    table = Table("padding: four models (asymmetries of the stride-2 layers conv2, conv3; skew > 0: top/left "
                  "stronger)", rows, cols, values)
    fcols = list(PADDING_MODES)
    ftable = Table("foveation: min/max paths per pixel (1 = uniform)", [f"input {s}" for s in SIZES.values()], fcols,
                   [[summary["foveation"][f"{m} {s}"]["min_over_max"] for m in fcols] for s in SIZES.values()])

    # figures
    figures["mean_feature_maps"] = plot_maps(
        {f"{n}\n{l}": v["_maps"][l] for n, v in variants.items() for l in RELUS}, ncols=len(RELUS),
        title="mean activation over flip-symmetric test images")[0]
    figures["mean_filters"] = plot_maps(
        {f"{n}\n{l}": v["_filters"][l].filter for n, v in variants.items() for l in v["_filters"]}, ncols=4,
        cmap="Greys", title="mean |3x3 filter| per layer")[0]
    figures["blind_spot_sweep"] = plot_maps({n: v["_sweep"] for n, v in variants.items()}, ncols=2, cmap="RdYlGn",
                                            title="p(plus) with a plus pasted at each top-left position")[0]

    # what reproduces
    u = variants[f"uneven {SIZES['uneven']}, zeros"]
    others = [v for k, v in variants.items() if k != f"uneven {SIZES['uneven']}, zeros"]

    def mean_abs(vals):
        return sum(abs(x) for x in vals) / len(vals)

    u_filter = mean_abs([u["filter_lr_asymmetry"][n] for n in strided] + [u["filter_tb_asymmetry"][n] for n in strided])
    o_filter = max(mean_abs([v["filter_lr_asymmetry"][n] for n in strided] + [v["filter_tb_asymmetry"][n] for n in strided])
                   for v in others)
    u_skew = mean_abs(list(u["feature_map_border_skew"].values()))
    o_skew = max(mean_abs(list(v["feature_map_border_skew"].values())) for v in others)
    claims = {
        "filters_most_asymmetric_when_uneven_zero": u_filter > o_filter,
        "feature_maps_most_skewed_when_uneven_zero": u_skew > o_skew,
        "uneven_zero_filter_asymmetry": u_filter, "max_other_filter_asymmetry": o_filter,
        "uneven_zero_map_skew": u_skew, "max_other_map_skew": o_skew,
    }
    summary["claims"] = claims
    for key, what, a, b in (("filters_most_asymmetric_when_uneven_zero", "mean |asymmetry| of the stride-2 layers' "
                             "mean filters", u_filter, o_filter),
                            ("feature_maps_most_skewed_when_uneven_zero", "mean |border skew| of the mean feature maps",
                             u_skew, o_skew)):
        verdict = "reproduces" if claims[key] else "does not reproduce"
        notes.append(f"The paper's claim that uneven zero padding makes the network lopsided {verdict} here for the "
                     f"{what}: {a:.3f} for the uneven zero-padded model against at most {b:.3f} for the other three.")
    fz_u, fz_e = summary["foveation"][f"zeros {SIZES['uneven']}"], summary["foveation"][f"zeros {SIZES['even']}"]
    notes.append(f"Foveation: with zero padding the border pixels enter fewer convolution paths (min/max "
                 f"{fz_u['min_over_max']:.2f} at {SIZES['uneven']}); at the uneven size the counts lean to the "
                 f"top/left (border skew {fz_u['border_skew']:.3f} against {fz_e['border_skew']:.3f} at "
                 f"{SIZES['even']}); see the foveation table for the other modes.")
    if fast:
        notes.append("Fast mode: small data and few epochs; the numbers are for testing the pipeline, not conclusions.")
    summary["variants"] = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in variants.items()}
    return StudyOutput(summary, [table, ftable], figures, notes)
