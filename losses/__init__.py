from losses.dynamic_multi_hot import dynamic_multi_hot_target, multi_hot_bce

__all__ = ["dynamic_multi_hot_target", "multi_hot_bce"]
