from losses.class_weights import balanced_binary_weights, welt_binary_weights, welt_class_weights
from losses.dynamic_multi_hot import (
    dynamic_multi_hot_target,
    multi_hot_bce,
    multi_hot_bce_terms,
    shift_kept,
)
from losses.span_targets import dynamic_type_bce_sum, dynamic_type_target, masked_bce_sum

__all__ = [
    "balanced_binary_weights",
    "dynamic_multi_hot_target",
    "dynamic_type_bce_sum",
    "dynamic_type_target",
    "masked_bce_sum",
    "multi_hot_bce",
    "multi_hot_bce_terms",
    "shift_kept",
    "welt_binary_weights",
    "welt_class_weights",
]
