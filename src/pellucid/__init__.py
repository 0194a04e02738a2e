"""pellucid: model interpretability for PyTorch.

Attribution methods (``pellucid.attr``) on one engine (``pellucid.core``) with memory-budgeted batching.
"""
from . import attr, core, metrics, models  # viz, data and report need optional extras: import them explicitly
from .core.batching import get_memory_budget, set_memory_budget

__version__ = "0.1.0"
__all__ = ["attr", "core", "metrics", "models", "get_memory_budget", "set_memory_budget", "__version__"]
