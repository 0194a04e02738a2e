"""Robustness: adversarial attacks and robustness metrics with Captum's names (``captum.robust``).

* :class:`FGSM` (Goodfellow et al. 2015, arXiv:1412.6572) and :class:`PGD` (Madry et al. 2018, arXiv:1706.06083),
  targeted or untargeted, L-infinity or L2 balls, input masks and value bounds.
* :class:`AttackComparator`: a metric under several attacks/augmentations, streaming summaries over batches.
* :class:`MinParamPerturbation`: the smallest value of an attack parameter that changes the prediction.
"""
from .attack_comparator import AttackComparator
from .fgsm import FGSM
from .min_param_perturbation import MinParamPerturbation
from .perturbation import Perturbation
from .pgd import PGD

__all__ = ["AttackComparator", "FGSM", "MinParamPerturbation", "PGD", "Perturbation"]
