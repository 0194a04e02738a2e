"""Concept-based interpretability with Captum's names (``captum.concept``): TCAV.

Testing with Concept Activation Vectors (Kim et al. 2018, "Interpretability beyond feature attribution:
quantitative testing with concept activation vectors", arXiv:1711.11279): a linear classifier separates a layer's
activations on examples of a concept from those on other (e.g. random) examples; its weight vector, the CAV, is a
direction in the layer's space; the TCAV score of a class is the fraction of its inputs whose class score
increases along that direction. :func:`tcav_significance` tests scores against random-concept runs (section 3.3).
"""
from .classifier import Classifier, DefaultClassifier
from .concept import CAV, Concept, ConceptInterpreter, concepts_to_str
from .tcav import TCAV, tcav_significance

__all__ = [
    "CAV", "Classifier", "Concept", "ConceptInterpreter", "DefaultClassifier", "TCAV", "concepts_to_str",
    "tcav_significance",
]
