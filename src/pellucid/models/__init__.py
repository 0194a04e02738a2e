"""Model transforms used by analyses: smoothing (ReLU -> Softplus, max pooling -> LogSumExp pooling)."""
from .smoothing import AdaptiveLogSumExpPool, LogSumExpPool, SmoothedModel, lse_pool, smooth, smoothing_rules

__all__ = ["AdaptiveLogSumExpPool", "LogSumExpPool", "SmoothedModel", "lse_pool", "smooth", "smoothing_rules"]
