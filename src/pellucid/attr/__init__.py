"""Attribution methods. Captum-compatible names, keywords and return shapes."""
from ._base import Attribution
from .deeplift import DeepLift, DeepLiftShap
from .gradient_shap import GradientShap
from .guided_backprop import Deconvolution, GuidedBackprop
from .integrated_gradients import IntegratedGradients
from .noise_tunnel import NoiseTunnel
from .saliency import InputXGradient, Saliency
from .split_integrated_gradients import SplitDetails, SplitIntegratedGradients

__all__ = [
    "Attribution", "Deconvolution", "DeepLift", "DeepLiftShap", "GradientShap", "GuidedBackprop",
    "InputXGradient", "IntegratedGradients", "NoiseTunnel", "Saliency", "SplitDetails", "SplitIntegratedGradients",
]
