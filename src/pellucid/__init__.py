"""pellucid: model interpretability for PyTorch.

Attribution methods (``pellucid.attr``) on one engine (``pellucid.core``) with memory-budgeted batching.
"""
from .core.batching import get_memory_budget, set_memory_budget

__version__ = "0.1.0"
__all__ = ["get_memory_budget", "set_memory_budget", "__version__"]
