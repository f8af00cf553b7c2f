"""The MC-LCR model: configuration, Xception taps, the Keras model and its builder.

The exports resolve lazily (PEP 562): ``from mclcr_keras.models.config import VARIANTS`` imports no
TensorFlow, ``from mclcr_keras.models import build_mclcr`` imports it on first use.
"""

from mclcr_keras.lazy import lazy_exports

_EXPORTS = {
    "BackboneWeightsError": "backbone",
    "build_backbone": "backbone",
    "recompute_batchnorm_statistics": "batchnorm",
    "VARIANTS": "config",
    "MCLCRConfig": "config",
    "MCLCR": "mclcr",
    "build_mclcr": "mclcr",
    "default_optimizer": "mclcr",
    "load_model": "saving",
    "model_image_size": "saving",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
