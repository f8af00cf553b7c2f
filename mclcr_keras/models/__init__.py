"""The MC-LCR model: configuration, Xception taps, the Keras model and its builder."""

from mclcr_keras.models.backbone import BackboneWeightsError, build_backbone
from mclcr_keras.models.batchnorm import recompute_batchnorm_statistics
from mclcr_keras.models.config import VARIANTS, MCLCRConfig
from mclcr_keras.models.mclcr import MCLCR, build_mclcr, default_optimizer

__all__ = [
    "MCLCR",
    "VARIANTS",
    "BackboneWeightsError",
    "MCLCRConfig",
    "build_backbone",
    "build_mclcr",
    "default_optimizer",
    "recompute_batchnorm_statistics",
]
