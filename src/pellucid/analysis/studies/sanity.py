"""``study sanity``: Kokhlikyan, Miglani, Alsallakh, Martin & Reblitz-Richardson, 2021, "Investigating sanity
checks for saliency maps with image and text classification", arXiv:2106.07475.

Trains an image CNN (conv-ReLU-maxpool x2, two linear layers) on 24x24 procedural shape images and a text CNN
(conv1d-ReLU-max over time-linear over 16-d embeddings) on a synthetic key-token task (:mod:`pellucid.data`), and
explains test examples with Saliency (no input multiplier) and InputXGradient, IntegratedGradients, DeepLift
(with it):

(a) cascading model-parameter randomisation (Adebayo et al., 2018, arXiv:1810.03292): similarity (Spearman of
    |attributions|, Spearman, SSIM for images) between the trained model's attribution and that of the model with
    its layers re-initialised from the top down;
(b) the input-multiplier imprint: Spearman of |attribution| with |input| for the trained and the fully randomised
    model; methods that multiply by the input keep resembling the input when the model is destroyed;
(c) infidelity and max-sensitivity (Yeh et al., 2019, arXiv:1901.09392) on the model and on smoothed copies
    (ReLU -> Softplus(beta), max pooling -> LogSumExp pooling with r = beta), with each model's test accuracy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attr import DeepLift, InputXGradient, IntegratedGradients, Saliency
from ...data import evaluate, make_sequences, make_shapes, train_quick
from ..sanity import randomisation_check, smoothing_check
from ._output import StudyOutput, Table

TITLE = "sanity: randomisation checks and smoothing (Kokhlikyan et al. 2021, arXiv:2106.07475)"

METHODS = {"Saliency": Saliency, "InputXGradient": InputXGradient, "IntegratedGradients": IntegratedGradients,
           "DeepLift": DeepLift}
MULTIPLIES_INPUT = {"Saliency": False, "InputXGradient": True, "IntegratedGradients": True, "DeepLift": True}


class ImageCNN(nn.Module):
    """(N, 3, 24, 24) -> 4 classes: two conv-ReLU-maxpool stages and a two-layer ReLU head."""

    def __init__(self, n_classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(32 * 6 * 6, 64)
        self.fc2 = nn.Linear(64, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        return self.fc2(self.relu(self.fc1(x.flatten(1))))


class TextCNN(nn.Module):
    """Kim (2014)-style text CNN over embeddings ``(N, L, D)``: conv1d (width 3) - ReLU - max over time - linear.
    The embedding table lives outside, so attributions are taken with respect to the embeddings."""

    def __init__(self, dim: int = 16, channels: int = 32, n_classes: int = 2):
        super().__init__()
        self.conv = nn.Conv1d(dim, channels, 3, padding=1)
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, emb: Tensor) -> Tensor:
        h = F.relu(self.conv(emb.transpose(1, 2)))
        return self.fc(F.adaptive_max_pool1d(h, 1).flatten(1))


def image_task(fast: bool, seed: int) -> tuple[nn.Module, Tensor, Tensor, float]:
    """The trained image CNN, its test images and labels, and its test accuracy."""
    data = make_shapes(n=800 if fast else 2400, size=24, object_size=(6, 9), seed=seed)
    train, test = data.split(data.images.shape[0] - 200)
    torch.manual_seed(seed)
    model = ImageCNN()
    train_quick(model, train.images, train.labels, epochs=3 if fast else 16, lr=5e-3, seed=seed)
    return model, test.images, test.labels, evaluate(model, test.images, test.labels)


def text_task(fast: bool, seed: int) -> tuple[nn.Module, Tensor, Tensor, float]:
    """The trained text CNN, the test sequences' embeddings and labels, and its test accuracy."""
    data = make_sequences(n=1200 if fast else 3000, length=16, vocab=64, seed=seed)
    torch.manual_seed(seed)
    embedding = nn.Embedding(64, 16)
    model = TextCNN()
    n_train = data.ids.shape[0] - 300
    train_quick(nn.Sequential(embedding, model), data.ids[:n_train], data.labels[:n_train],
                epochs=3 if fast else 8, seed=seed)
    with torch.no_grad():
        emb = embedding(data.ids[n_train:])
    return model, emb, data.labels[n_train:], evaluate(model, emb, data.labels[n_train:])


def _kwargs(fast: bool) -> dict[str, dict]:
    return {"IntegratedGradients": {"n_steps": 16 if fast else 32}}


def run(out: Path, fast: bool, seed: int, log: Callable[[str], None]) -> StudyOutput:
    from ...viz import plot_randomisation
    from ...viz._common import pyplot

    plt = pyplot()
    n = 8 if fast else 32
    samples = 4 if fast else 10
    betas = (10.0,) if fast else (5.0, 20.0, 100.0)
    summary: dict[str, Any] = {"n_examples": n, "n_perturb_samples": samples, "betas": list(betas),
                               "accuracy": {}, "randomisation": {}, "smoothing": {}}
    tables: list[Table] = []
    figures: dict[str, Any] = {}
    notes: list[str] = []
    for task, make in (("image", image_task), ("text", text_task)):
        model, x_test, y_test, acc = make(fast, seed)
        summary["accuracy"][task] = acc
        log(f"{task}: test accuracy {acc:.3f}")
        x, target = x_test[:n], y_test[:n].tolist()
        sims = ("spearman_abs", "spearman", "ssim") if task == "image" else ("spearman_abs", "spearman")
        rnd = randomisation_check(model, METHODS, x, target, similarity=sims, seed=seed, attribute_kwargs=_kwargs(fast))
        summary["randomisation"][task] = rnd
        layers = rnd["Saliency"]["layers"]
        for measure in sims:
            tables.append(Table(f"{task}: cascading randomisation, {measure} to the trained model's map "
                                "(mean over examples; 1 = unchanged)", list(METHODS), [f"+{l}" for l in layers],
                                [rnd[m][measure] for m in METHODS]))
        tables.append(Table(f"{task}: input imprint, Spearman(|attribution|, |input|)", list(METHODS),
                            ["trained", "all layers randomised"],
                            [[rnd[m]["imprint_original"], rnd[m]["imprint_randomised"]] for m in METHODS]))
        fig, ax = plot_randomisation({m: [1.0] + rnd[m]["spearman_abs"] for m in METHODS},
                                     layers=["none"] + [f"+{l}" for l in layers],
                                     ylabel="Spearman |attr| vs trained")
        ax.set_title(f"{task}: cascading randomisation")
        ax.set_ylim(-0.1, 1.05)
        figures[f"randomisation_{task}"] = fig

        sm = smoothing_check(model, METHODS, x, target, betas=betas, n_perturb_samples=samples, seed=seed,
                             attribute_kwargs=_kwargs(fast), accuracy=lambda m: evaluate(m, x_test, y_test))
        summary["smoothing"][task] = sm
        variants = sm["variants"]
        for metric, title in (("infidelity", "infidelity (normalised)"), ("sensitivity_max", "max-sensitivity")):
            tables.append(Table(f"{task}: {title}, original vs smoothed (mean over examples; lower is better)",
                                list(METHODS) + ["(test accuracy)"], variants,
                                [[sm[m][v][metric] for v in variants] for m in METHODS]
                                + [[sm["accuracy"][v] for v in variants]]))
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
        names = list(METHODS)
        width = 0.8 / len(variants)
        for a, metric in zip(axes, ("infidelity", "sensitivity_max")):
            for j, v in enumerate(variants):
                a.bar([i + j * width for i in range(len(names))], [max(sm[m][v][metric], 1e-12) for m in names],
                      width, label=v)
            a.set_xticks([i + width * (len(variants) - 1) / 2 for i in range(len(names))], names, rotation=20,
                         fontsize=7)
            a.set_yscale("log")
            a.set_title(f"{task}: {metric}")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        figures[f"smoothing_{task}"] = fig

        # what reproduces: imprint of input-multiplier methods; smoothing lowers infidelity / sensitivity
        mult = [m for m in METHODS if MULTIPLIES_INPUT[m]]
        imp_mult = sum(rnd[m]["imprint_randomised"] for m in mult) / len(mult)
        imp_sal = rnd["Saliency"]["imprint_randomised"]
        last_sal = rnd["Saliency"]["spearman_abs"][-1]
        last_mult = sum(rnd[m]["spearman_abs"][-1] for m in mult) / len(mult)
        smoothed = [v for v in variants if v != "original"]
        better_sens = sum(sm[m][v]["sensitivity_max"] < sm[m]["original"]["sensitivity_max"] for m in METHODS
                          for v in smoothed)
        better_inf = sum(sm[m][v]["infidelity"] < sm[m]["original"]["infidelity"] for m in METHODS for v in smoothed)
        total = len(METHODS) * len(smoothed)
        summary.setdefault("claims", {})[task] = {
            "imprint_randomised_input_multiplier": imp_mult, "imprint_randomised_saliency": imp_sal,
            "randomised_similarity_input_multiplier": last_mult, "randomised_similarity_saliency": last_sal,
            "smoothing_lowers_sensitivity": f"{better_sens}/{total}", "smoothing_lowers_infidelity": f"{better_inf}/{total}",
        }
        notes.append(
            f"{task}: with every layer randomised, the input-multiplier methods' maps still correlate with the input "
            f"(Spearman |attr| vs |input| {imp_mult:.3f} on average, Saliency {imp_sal:.3f}) and with the trained "
            f"model's maps ({last_mult:.3f} vs Saliency {last_sal:.3f}): the imprint the paper describes "
            f"{'reproduces' if imp_mult > imp_sal and last_mult > last_sal else 'does not reproduce'}. Smoothing "
            f"lowered max-sensitivity in {better_sens}/{total} and infidelity in {better_inf}/{total} "
            f"method x strength cases (the paper: both improve).")
    if fast:
        notes.append("Fast mode: few examples and perturbations and one smoothing strength; the numbers test the "
                     "pipeline only.")
    return StudyOutput(summary, tables, figures, notes)
