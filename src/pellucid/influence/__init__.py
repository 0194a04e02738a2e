"""Training-data influence with Captum's names (``captum.influence``): TracIn from checkpoints.

* :class:`TracInCP`: ``TracIn(z, z') = sum_c lr_c * grad_theta L(z; theta_c) . grad_theta L(z'; theta_c)`` over
  the parameters of the whole model or of chosen layers (Pruthi et al. 2020, "Estimating training data influence
  by tracing gradient descent", arXiv:2002.08484), per-example gradients vectorised with ``torch.func``.
* :class:`TracInCPFast`: the same restricted to the weight of the final fully-connected layer, where the gradient
  is the outer product ``dL/dout x input`` and the dot product factorises (paper, section 3.2).
* :class:`TracInCPFastRandProj`: :class:`TracInCPFast` with per-example embeddings (optionally randomly projected,
  paper p. 15) kept in memory so that repeated queries are one matrix product; exact top-k, no Annoy needed.

Influence scores ``(n_test, n_train)``; ``k=`` returns :class:`KMostInfluentialResults` (proponents: highest,
opponents: lowest); :meth:`self_influence` gives ``TracIn(z, z)`` (high for mislabelled examples). The model is
left exactly as it came: checkpoints are loaded into it and its original state is restored afterwards.
"""
from ._common import KMostInfluentialResults, load_flexible_state_dict
from .tracin import TracInCP, TracInCPBase
from .tracin_fast import TracInCPFast, TracInCPFastRandProj

__all__ = [
    "KMostInfluentialResults", "TracInCP", "TracInCPBase", "TracInCPFast", "TracInCPFastRandProj",
    "load_flexible_state_dict",
]
