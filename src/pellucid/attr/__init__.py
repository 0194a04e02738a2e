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

# perturbation methods (issue 3)
from .feature_ablation import FeatureAblation
from .feature_permutation import FeaturePermutation
from .kernel_shap import KernelShap
from .lime import Lime, get_exp_kernel_similarity_function
from .lime_base import LimeBase
from .occlusion import Occlusion
from .shapley import ShapleyValueSampling, ShapleyValues
from .surrogate import (Lasso, LinearRegression, Ridge, SkLearnLasso, SkLearnLinearModel, SkLearnLinearRegression,
                        SkLearnRidge)

__all__ += [
    "FeatureAblation", "FeaturePermutation", "KernelShap", "Lasso", "Lime", "LimeBase", "LinearRegression", "Occlusion",
    "Ridge", "ShapleyValueSampling", "ShapleyValues",
    "SkLearnLasso", "SkLearnLinearModel", "SkLearnLinearRegression", "SkLearnRidge", "get_exp_kernel_similarity_function",
]

# CAM family and LRP (issue 4)
from .cam import AblationCAM, EigenCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM, token_grid
from .lrp import LRP, Alpha1_Beta0_Rule, Composite, EpsilonRule, GammaRule, IdentityRule, LayerLRP, PropagationRule

__all__ += [
    "Alpha1_Beta0_Rule", "EpsilonRule", "GammaRule", "IdentityRule", "PropagationRule",
    "AblationCAM", "Composite", "EigenCAM", "GradCAMPlusPlus", "HiResCAM", "LRP", "LayerCAM", "LayerLRP",
    "ScoreCAM", "XGradCAM", "token_grid",
]

# layer and neuron methods (issue 4): compositions of the methods above
from .conductance import InternalInfluence, LayerConductance
from .grad_cam import GuidedGradCam, LayerGradCam
from .layer import (
    LayerActivation, LayerAttribution, LayerDeepLift, LayerDeepLiftShap, LayerGradientShap, LayerGradientXActivation,
    LayerIntegratedGradients,
)
from .layer_perturbation import LayerFeatureAblation, LayerFeaturePermutation
from .neuron import (
    NeuronConductance, NeuronDeconvolution, NeuronDeepLift, NeuronDeepLiftShap, NeuronFeatureAblation, NeuronGradient,
    NeuronGradientShap, NeuronGuidedBackprop, NeuronIntegratedGradients,
)

__all__ += [
    "GuidedGradCam", "InternalInfluence", "LayerActivation", "LayerAttribution", "LayerConductance", "LayerDeepLift",
    "LayerDeepLiftShap", "LayerFeatureAblation", "LayerFeaturePermutation", "LayerGradCam", "LayerGradientShap",
    "LayerGradientXActivation", "LayerIntegratedGradients", "NeuronConductance", "NeuronDeconvolution",
    "NeuronDeepLift", "NeuronDeepLiftShap", "NeuronFeatureAblation", "NeuronGradient", "NeuronGradientShap",
    "NeuronGuidedBackprop", "NeuronIntegratedGradients",
]

# Captum's helpers: streaming statistics, baseline helpers, interpretable embedding layer (issue 14)
from .baselines import ProductBaselines, TokenReferenceBase
from .interpretable_embedding import (
    InterpretableEmbeddingBase, configure_interpretable_embedding_layer, interpretable_embedding_layer,
    remove_interpretable_embedding_layer,
)
from .summarizer import (
    MSE, ClassSummarizer, CommonStats, Count, Max, Mean, Min, Stat, StatValue, StdDev, Sum, Summarizer,
    SummarizerSingleTensor, Var,
)

__all__ += [
    "ClassSummarizer", "CommonStats", "Count", "InterpretableEmbeddingBase", "MSE", "Max", "Mean", "Min",
    "ProductBaselines", "Stat", "StatValue", "StdDev", "Sum", "Summarizer", "SummarizerSingleTensor",
    "TokenReferenceBase", "Var", "configure_interpretable_embedding_layer", "interpretable_embedding_layer",
    "remove_interpretable_embedding_layer",
]

# base class of the neuron methods (for isinstance checks and subclassing, as Captum's NeuronAttribution)
from .neuron import NeuronAttribution

__all__ += ["NeuronAttribution"]


# dataset-level attribution (issue 13) lives in pellucid.jobs, which sits above attr: exported lazily, so that
# importing pellucid.attr does not import pellucid.jobs
def __getattr__(name: str):
    if name in ("DataLoaderAttribution", "InputRole"):
        from ..jobs import dataloader_attribution

        return getattr(dataloader_attribution, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# LLM attribution (issue 14): Captum's LLMAttribution API; transformers is imported only by the models it is given
from .llm import (
    InterpretableInput, LLMAttribution, LLMAttributionResult, LLMGradientAttribution, TextTemplateInput,
    TextTokenInput,
)

__all__ += [
    "InterpretableInput", "LLMAttribution", "LLMAttributionResult", "LLMGradientAttribution", "TextTemplateInput",
    "TextTokenInput",
]
