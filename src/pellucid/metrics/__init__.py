"""Evaluation metrics and sanity checks for attributions.

Every metric returns one value per example (``(N,)``) and carries metadata in ``fn.info``
(:class:`MetricInfo`: name, ``higher_is_better``, category, supported inputs, paper). :func:`evaluate` tabulates
methods x metrics. Perturbation metrics evaluate all examples x perturbations through the engine's batcher.
"""
from ._base import MetricInfo
from ._features import gaussian_blur, patch_mask, pixel_mask
from ._imputation import noisy_linear_imputation
from .complexity import complexity, effective_complexity, sparseness
from .evaluate import Table, evaluate
from .faithfulness import (comprehensiveness, deletion_auc, deletion_curve, faithfulness_correlation,
                           gaussian_perturbation, infidelity, infidelity_perturb_func_decorator, insertion_auc,
                           insertion_curve, monotonicity, region_perturbation, road, sufficiency)
from .localisation import pointing_game, relevance_mass_accuracy, relevance_rank_accuracy, top_k_intersection
from .randomisation import (RandomisationResult, default_layers, model_parameter_randomisation,
                            parameter_randomisation, random_logit)
from .robustness import avg_sensitivity, default_perturb_func, local_lipschitz_estimate, sensitivity_max
from .similarity import cosine, pearson, spearman, spearman_abs, ssim, top_k_overlap

ALL_METRICS = [
    infidelity, deletion_auc, insertion_auc, region_perturbation, faithfulness_correlation, monotonicity, road,
    sufficiency, comprehensiveness, sensitivity_max, avg_sensitivity, local_lipschitz_estimate, sparseness,
    complexity, effective_complexity, pointing_game, relevance_mass_accuracy, relevance_rank_accuracy,
    top_k_intersection, parameter_randomisation, random_logit,
]

__all__ = [
    "ALL_METRICS", "MetricInfo", "RandomisationResult", "Table", "avg_sensitivity", "comprehensiveness", "complexity",
    "cosine", "default_layers", "default_perturb_func", "deletion_auc", "deletion_curve", "effective_complexity",
    "evaluate", "faithfulness_correlation", "gaussian_blur", "gaussian_perturbation", "infidelity",
    "infidelity_perturb_func_decorator", "insertion_auc",
    "insertion_curve", "local_lipschitz_estimate", "model_parameter_randomisation", "monotonicity",
    "noisy_linear_imputation", "parameter_randomisation", "patch_mask", "pearson", "pixel_mask", "pointing_game",
    "random_logit", "region_perturbation", "relevance_mass_accuracy", "relevance_rank_accuracy", "road",
    "sensitivity_max", "sparseness", "spearman", "spearman_abs", "ssim", "sufficiency", "top_k_intersection",
    "top_k_overlap",
]
