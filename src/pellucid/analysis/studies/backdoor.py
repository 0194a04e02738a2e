"""Input-agnostic saliency finds a planted backdoor (Akhtar & Jalwana 2023, arXiv:2303.17836).

Two small CNNs are trained on the procedural shapes: one on data where 10% of the images carry a 3x3 checkerboard
trigger in the bottom-right corner relabelled to class 0 (a backdoor), and a clean twin. For every class the
input-agnostic map is computed from noise alone (no data); the backdoor scan ranks classes by how concentrated
their maps are. Expected: the backdoored class's map localises the trigger (IoU with the trigger mask >= 0.5), the
scan ranks it first, and the clean model shows no such concentration.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ...data import SHAPE_CLASSES, SimpleCNN, add_trigger, evaluate, make_shapes, train_quick
from ..agnostic import backdoor_scan, class_saliency, saliency_iou
from ._output import StudyOutput, Table

TITLE = "Backdoor signatures in input-agnostic saliency maps (Akhtar & Jalwana 2023)"
TRIGGER_LABEL, TRIGGER_SIZE, SIZE = 0, 3, 32


def _train(n: int, epochs: int, seed: int, trigger_fraction: float) -> torch.nn.Module:
    data = make_shapes(n, seed=seed + 1, trigger_fraction=trigger_fraction, trigger_label=TRIGGER_LABEL,
                       trigger_size=TRIGGER_SIZE)
    torch.manual_seed(seed)
    model = SimpleCNN(3, len(SHAPE_CLASSES))
    train_quick(model, data.images, data.labels, epochs=epochs, lr=3e-3, seed=seed)
    return model.eval()


def trigger_mask(size: int = SIZE, trigger_size: int = TRIGGER_SIZE) -> torch.Tensor:
    """Boolean ``(size, size)`` mask of the trigger as :func:`pellucid.data.add_trigger` plants it."""
    mask = torch.zeros(size, size, dtype=torch.bool)
    start = size - trigger_size - 1
    mask[start:start + trigger_size, start:start + trigger_size] = True
    return mask


def run(out: Path, fast: bool, seed: int, log: Callable[[str], None]) -> StudyOutput:
    n_train, epochs, iterations = (1200, 6, 60) if fast else (2000, 8, 300)
    log(f"training a backdoored and a clean CNN ({n_train} images, {epochs} epochs each)")
    models = {"backdoored": _train(n_train, epochs, seed, 0.1), "clean": _train(n_train, epochs, seed, 0.0)}
    test = make_shapes(400, seed=seed + 7)
    others = test.labels != TRIGGER_LABEL
    mask = trigger_mask()
    summary: dict = {"trigger_label": TRIGGER_LABEL, "iterations": iterations, "models": {}}
    rows, values, figures_maps = [], [], {}
    for name, model in models.items():
        acc = evaluate(model, test.images, test.labels)
        with torch.no_grad():
            asr = float((model(add_trigger(test.images[others], size=TRIGGER_SIZE)).argmax(1) == TRIGGER_LABEL)
                        .float().mean())
        log(f"{name}: clean accuracy {acc:.3f}, triggered images sent to class {TRIGGER_LABEL}: {asr:.3f}; scanning")
        scan = backdoor_scan(model, range(len(SHAPE_CLASSES)), (3, SIZE, SIZE), seed=seed, iterations=iterations)
        iou = saliency_iou(scan.maps[TRIGGER_LABEL].saliency, mask)
        iou_shift = saliency_iou(scan.maps[TRIGGER_LABEL].saliency, mask, translate=True)
        pasted = {}  # each class's candidate trigger pasted into clean images of the other classes
        for c, (top, left, w) in scan.windows.items():
            images = test.images[test.labels != c].clone()
            images[:, :, top:top + w, left:left + w] = scan.triggers[c]
            with torch.no_grad():
                pasted[SHAPE_CLASSES[c]] = float((model(images).argmax(1) == c).float().mean())
        adam = class_saliency(model, TRIGGER_LABEL, (3, SIZE, SIZE), seed=seed, iterations=iterations,
                              optimizer="adam")
        iou_adam = saliency_iou(adam.saliency, mask)
        summary["models"][name] = {
            "clean_accuracy": acc, "attack_success_rate": asr, "ranking": scan.ranking,
            "scores": {SHAPE_CLASSES[c]: s for c, s in scan.scores.items()},
            "fooling_rates": {SHAPE_CLASSES[c]: f for c, f in scan.fooling_rates.items()},
            "candidate_trigger_windows": {SHAPE_CLASSES[c]: list(w) for c, w in scan.windows.items()},
            "trigger_iou_class0": iou, "trigger_iou_class0_translated": iou_shift,
            "trigger_iou_class0_adam": iou_adam, "candidate_trigger_success": pasted,
            "top_ranked_class": SHAPE_CLASSES[scan.ranking[0]],
        }
        rows.append(name)
        values.append([acc, asr, iou, iou_shift, iou_adam, pasted[SHAPE_CLASSES[TRIGGER_LABEL]],
                       *[scan.scores[c] for c in range(len(SHAPE_CLASSES))]])
        figures_maps[name] = scan
    bd, clean = summary["models"]["backdoored"], summary["models"]["clean"]
    summary["backdoor_ranked_first"] = bd["ranking"][0] == TRIGGER_LABEL
    summary["backdoor_iou_goal_met"] = max(bd["trigger_iou_class0"], bd["trigger_iou_class0_translated"]) >= 0.5
    summary["clean_max_score"] = max(clean["scores"].values())
    summary["backdoor_class_score"] = bd["scores"][SHAPE_CLASSES[TRIGGER_LABEL]]
    table = Table("Backdoor scan (scores: concentration of each class's map in its best window; 1 = uniform)",
                  rows, ["clean acc", "attack success", "IoU class 0", "IoU shifted", "IoU (Adam)",
                         "patch success",
                         *[f"score {c}" for c in SHAPE_CLASSES]], values)
    square = SHAPE_CLASSES[TRIGGER_LABEL]
    notes = [
        f"Backdoored model: the class-{TRIGGER_LABEL} map's top pixels overlap the planted trigger with IoU "
        f"{bd['trigger_iou_class0']:.2f} at its planted place and {bd['trigger_iou_class0_translated']:.2f} at the best "
        f"shift (goal >= 0.5: {'met' if summary['backdoor_iou_goal_met'] else 'NOT met'}; Adam accumulation: "
        f"{bd['trigger_iou_class0_adam']:.2f}). The CNN ends in global max pooling, so its trigger works wherever it "
        "appears and the map is free to draw it anywhere; pasting the map's candidate patch into clean images of "
        f"other classes sends {bd['candidate_trigger_success'][square]:.0%} of them to class {square!r} "
        f"(clean twin: {clean['candidate_trigger_success'][square]:.0%}).",
        f"The scan ranks {bd['top_ranked_class']!r} first "
        f"({'the planted class' if summary['backdoor_ranked_first'] else 'not the planted class'}).",
        f"Clean twin: highest concentration {summary['clean_max_score']:.2f} against "
        f"{summary['backdoor_class_score']:.2f} for the backdoored class.",
    ]
    figures = {}
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, len(SHAPE_CLASSES), figsize=(2.4 * len(SHAPE_CLASSES), 5))
        for row, (name, scan) in enumerate(figures_maps.items()):
            for c in range(len(SHAPE_CLASSES)):
                ax = axes[row, c]
                ax.imshow(scan.maps[c].saliency.numpy(), cmap="magma")
                top, left, w = scan.windows[c]
                ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), w, w, fill=False, color="cyan", lw=1))
                ax.set_title(f"{name}: {SHAPE_CLASSES[c]}\nscore {scan.scores[c]:.1f}", fontsize=8)
                ax.axis("off")
        figures["class_maps"] = fig
    except ImportError:
        notes.append("matplotlib is not installed: no figure")
    return StudyOutput(summary, [table], figures, notes)
