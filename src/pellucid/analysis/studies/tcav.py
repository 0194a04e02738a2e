"""TCAV on the procedural shapes: does each class's prediction depend on its own shape concept?

The shapes CNN (``pellucid.data.shapes_cnn``) is probed at two layers with one concept per shape class (images of
that shape from fresh data) against several random concepts (images of mixed classes). For every (concept,
class) pair the TCAV sign score is averaged over the random sets and tested against random-vs-random scores
(Kim et al. 2018, arXiv:1711.11279, section 3.3; Bonferroni over the pairs). Expected: the diagonal (concept =
class) is high and significant, off-diagonal pairs are not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, TensorDataset

from ...concept import TCAV, Concept, tcav_significance
from ...data import SHAPE_CLASSES, make_shapes, shapes_cnn
from ._output import StudyOutput, Table

TITLE = "TCAV: shape concepts in the shapes CNN (Kim et al. 2018)"


def _concept(cid: int, name: str, images: torch.Tensor) -> Concept:
    return Concept(cid, name, DataLoader(TensorDataset(images), batch_size=64))


def run(out: Path, fast: bool, seed: int, log: Callable[[str], None]) -> StudyOutput:
    n_train, epochs, n_concept, n_random = (1200, 4, 30, 5) if fast else (2000, 6, 60, 10)
    layers = ["conv2", "features"]
    log(f"training the shapes CNN ({n_train} images, {epochs} epochs)")
    trained = shapes_cnn(n_train=n_train, n_test=200, epochs=epochs, seed=seed)
    model = trained.model
    pool = make_shapes(len(SHAPE_CLASSES) * n_concept * 3 + n_concept * (n_random + 1), seed=seed + 100)
    concepts = []
    for k, name in enumerate(SHAPE_CLASSES):
        idx = (pool.labels == k).nonzero()[:n_concept, 0]
        concepts.append(_concept(k, name, pool.images[idx]))
    gen = torch.Generator().manual_seed(seed)
    randoms = []
    for r in range(n_random + 1):
        idx = torch.randperm(len(pool), generator=gen)[:n_concept]
        randoms.append(_concept(100 + r, f"random{r}", pool.images[idx]))
    tcav = TCAV(model, layers)
    test = trained.test
    sign = {layer: torch.zeros(len(SHAPE_CLASSES), len(SHAPE_CLASSES)) for layer in layers}
    pvals = {layer: torch.ones(len(SHAPE_CLASSES), len(SHAPE_CLASSES)) for layer in layers}
    above_random = {layer: torch.zeros(len(SHAPE_CLASSES), len(SHAPE_CLASSES), dtype=torch.bool) for layer in layers}
    n_tests = len(SHAPE_CLASSES) ** 2
    for t, cls in enumerate(SHAPE_CLASSES):
        inputs = test.images[test.labels == t][:50]
        sets = [[c, r] for c in concepts for r in randoms[1:]] + [[randoms[0], r] for r in randoms[1:]]
        scores = tcav.interpret(inputs, sets, target=t)
        for layer in layers:
            rand = [float(scores[f"{randoms[0].id}-{r.id}"][layer]["sign_count"][0]) for r in randoms[1:]]
            for c in concepts:
                runs = [float(scores[f"{c.id}-{r.id}"][layer]["sign_count"][0]) for r in randoms[1:]]
                sign[layer][c.id, t] = sum(runs) / len(runs)
                test_result = tcav_significance(runs, rand, n_tests=n_tests)
                pvals[layer][c.id, t] = test_result["p_value"]
                above_random[layer][c.id, t] = test_result["concept_mean"] > test_result["random_mean"]
    summary: dict = {"test_accuracy": trained.test_score, "layers": {}, "classes": list(SHAPE_CLASSES),
                     "random_sets": n_random, "concept_images": n_concept}
    tables = []
    for layer in layers:
        diag = sign[layer].diagonal()
        off = sign[layer][~torch.eye(len(SHAPE_CLASSES), dtype=torch.bool)]
        significant = (pvals[layer] < 0.05 / n_tests) & above_random[layer]  # significantly *above* random
        summary["layers"][layer] = {
            "sign_count": sign[layer].tolist(), "p_value": pvals[layer].tolist(),
            "diagonal_mean": float(diag.mean()), "off_diagonal_mean": float(off.mean()),
            "diagonal_significant": int(significant.diagonal().sum()),
            "off_diagonal_significant": int(significant.sum() - significant.diagonal().sum()),
        }
        tables.append(Table(f"TCAV sign score at {layer} (rows: concept, columns: class; mean over {n_random} "
                            "random sets)", [f"concept {c}" for c in SHAPE_CLASSES],
                            [f"class {c}" for c in SHAPE_CLASSES], sign[layer].tolist()))
    notes = [f"test accuracy {trained.test_score:.3f}."]
    for layer in layers:
        s = summary["layers"][layer]
        notes.append(f"{layer}: own-shape concepts score {s['diagonal_mean']:.2f} on average (significantly above "
                     f"random-vs-random for {s['diagonal_significant']}/4 classes), other concepts "
                     f"{s['off_diagonal_mean']:.2f} ({s['off_diagonal_significant']}/12 significantly above random; "
                     "two-sided t-test, Bonferroni alpha 0.05/16).")
    figures = {}
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.6))
        for ax, layer in zip(axes, layers):
            im = ax.imshow(sign[layer].numpy(), vmin=0, vmax=1, cmap="viridis")
            ax.set_xticks(range(4), SHAPE_CLASSES, rotation=30)
            ax.set_yticks(range(4), SHAPE_CLASSES)
            ax.set_xlabel("class")
            ax.set_ylabel("concept")
            ax.set_title(f"TCAV sign score, {layer}")
        fig.colorbar(im, ax=list(axes))
        figures["tcav_scores"] = fig
    except ImportError:
        notes.append("matplotlib is not installed: no figure")
    return StudyOutput(summary, tables, figures, notes)
