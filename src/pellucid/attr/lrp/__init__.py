"""Layer-wise relevance propagation: rules as data, composites, canonizers, LRP and LayerLRP."""
from .canonizers import Canonizer, MergeBatchNorm, SplitAdditions, canonized
from .composites import (
    Composite, epsilon_alpha2_beta1, epsilon_composite, epsilon_gamma_box, epsilon_plus, epsilon_plus_flat,
)
from .lrp import LRP, LayerLRP, lrp_rules
from .propagation import Alpha1_Beta0_Rule, EpsilonRule, GammaRule, IdentityRule, PropagationRule
from .rules import AlphaBeta, Epsilon, Flat, Gamma, Part, Pass, Rule, Term, WSquare, ZBox, ZPlus

__all__ = [
    "Alpha1_Beta0_Rule", "AlphaBeta", "Canonizer", "Composite", "Epsilon", "EpsilonRule", "Flat", "Gamma",
    "GammaRule", "IdentityRule", "LRP", "LayerLRP", "MergeBatchNorm", "Part", "Pass", "PropagationRule", "Rule",
    "SplitAdditions", "Term", "WSquare", "ZBox", "ZPlus", "canonized", "epsilon_alpha2_beta1",
    "epsilon_composite", "epsilon_gamma_box", "epsilon_plus", "epsilon_plus_flat", "lrp_rules",
]
