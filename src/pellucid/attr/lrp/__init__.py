"""Layer-wise relevance propagation: rules as data, composites, canonizers, LRP and LayerLRP."""
from .canonizers import Canonizer, MergeBatchNorm, SplitAdditions, canonized
from .composites import (
    Composite, epsilon_alpha2_beta1, epsilon_composite, epsilon_gamma_box, epsilon_plus, epsilon_plus_flat,
)
from .lrp import LRP, LayerLRP, lrp_rules
from .rules import AlphaBeta, Epsilon, Flat, Gamma, Part, Pass, Rule, Term, WSquare, ZBox, ZPlus

__all__ = [
    "AlphaBeta", "Canonizer", "Composite", "Epsilon", "Flat", "Gamma", "LRP", "LayerLRP", "MergeBatchNorm", "Part",
    "Pass", "Rule", "SplitAdditions", "Term", "WSquare", "ZBox", "ZPlus", "canonized", "epsilon_alpha2_beta1",
    "epsilon_composite", "epsilon_gamma_box", "epsilon_plus", "epsilon_plus_flat", "lrp_rules",
]
