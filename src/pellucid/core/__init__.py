"""pellucid's engine: inputs, targets, batching, hooks, guard, gradients, paths (and later perturbation plans)."""
from .batching import Chunker, get_memory_budget, resolve_batch_size, set_memory_budget
from .gradients import Evaluator
from .guard import ModelGuard
from .hooks import FunctionRules, LayerTap, override_grad
from .inputs import ForwardArgs, format_baselines, format_distribution, format_inputs, restore_form
from .paths import path_points
from .targets import Target

__all__ = [
    "Chunker", "Evaluator", "ForwardArgs", "FunctionRules", "LayerTap", "ModelGuard", "Target",
    "format_baselines", "format_distribution", "format_inputs", "get_memory_budget", "override_grad",
    "path_points", "resolve_batch_size", "restore_form", "set_memory_budget",
]
