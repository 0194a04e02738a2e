"""``from pellucid.attr._utils.lrp_rules import EpsilonRule`` as ``from captum.attr._utils.lrp_rules import ...``.
The rules live in :mod:`pellucid.attr.lrp.propagation` (also exported from :mod:`pellucid.attr`)."""
from ..lrp.propagation import Alpha1_Beta0_Rule, EpsilonRule, GammaRule, IdentityRule, PropagationRule

__all__ = ["Alpha1_Beta0_Rule", "EpsilonRule", "GammaRule", "IdentityRule", "PropagationRule"]
