"""Xception with the MC-LCR taps (paper Table 1), found by structure.

`keras.applications.Xception` names its residual `add` layers with a per-process counter (`add`,
`add_1`, ... become `add_12`, ... on a second build), so no tap may depend on an auto-generated
name. The taps use the fixed `blockN_*` names that `keras.applications` gives its layers, and
block 13's output is found as the input of `block14_sepconv1`.

Taps (post-ReLU unless noted; spatial sizes for a 256 px input):

| key    | layer                                            | shape             |
|--------|--------------------------------------------------|-------------------|
| b1     | `block1_conv2_act`                               | 125 x 125 x 64    |
| b2     | `block3_sepconv1_act` (ReLU of block 2's output) | 63 x 63 x 128     |
| b3     | `block4_sepconv1_act` (ReLU of block 3's output) | 32 x 32 x 256     |
| global | `block14_sepconv2_act` (or block 13's output)    | 8 x 8 x 2048/1024 |
"""

from __future__ import annotations

import os

import keras

TAP_LAYERS = {"b1": "block1_conv2_act", "b2": "block3_sepconv1_act", "b3": "block4_sepconv1_act"}
TAP_CHANNELS = {"b1": 64, "b2": 128, "b3": 256}


class BackboneWeightsError(ValueError):
    """The Xception weights could not be obtained (download failed or file unreadable)."""


def _xception(weights: str | None) -> keras.Model:
    # A spatially undefined input lets Keras accept inputs below its 71 px minimum (the tests use
    # 64 px); the MC-LCR model fixes the size with its own Input.
    kwargs = {"include_top": False, "input_shape": (None, None, 3)}
    if weights is None:
        return keras.applications.Xception(weights=None, **kwargs)
    if weights == "imagenet":
        try:
            return keras.applications.Xception(weights="imagenet", **kwargs)
        except Exception as error:  # any download / cache failure (offline, proxy, bad hash)
            reason = " ".join(str(error).split())[:200]
            raise BackboneWeightsError(
                "Could not download the ImageNet weights of Xception "
                f"({type(error).__name__}: {reason}); use weights=None (`--weights none`) "
                "or the path of a local Xception .h5 weights file "
                "(xception_weights_tf_dim_ordering_tf_kernels_notop.h5)."
            ) from None
    if not os.path.isfile(weights):
        raise BackboneWeightsError(
            f"Xception weights file not found: {weights!r}; use weights='imagenet', weights=None "
            "(`--weights none`) or the path of an existing .h5 file."
        )
    try:
        return keras.applications.Xception(weights=weights, **kwargs)
    except Exception as error:
        reason = " ".join(str(error).split())[:200]
        raise BackboneWeightsError(
            f"Could not load Xception weights from {weights!r} ({type(error).__name__}: "
            f"{reason}); expected Xception (include_top=False) weights in Keras .h5 format."
        ) from None


def global_feature_tensor(xception: keras.Model, global_feature: str = "block14"):
    """The symbolic tensor GF is pooled from, found by structure.

    Args:
        xception: a `keras.applications.Xception(include_top=False)` model.
        global_feature: `"block14"` (last ReLU, 2048 ch) or `"block13"` (block 13's residual
            sum, the input of `block14_sepconv1`, 1024 ch).
    """
    if global_feature == "block14":
        return xception.get_layer("block14_sepconv2_act").output
    if global_feature == "block13":
        return xception.get_layer("block14_sepconv1").input
    raise ValueError(
        f"global_feature must be 'block14' or 'block13'; got {global_feature!r}"
    )


def build_backbone(
    weights: str | None = None,
    global_feature: str = "block14",
    sync_batchnorm: bool = False,
    bn_momentum: float | None = None,
    name: str = "xception_taps",
) -> keras.Model:
    """Xception (include_top=False) returning the MC-LCR taps as a dict.

    Args:
        weights: `"imagenet"`, `None` or a local `.h5` weights path (see `MCLCRConfig.weights`).
            A failed download raises `BackboneWeightsError` with a one-line message.
        global_feature: `"block14"` or `"block13"`, see `global_feature_tensor`.
        sync_batchnorm: compute the BatchNormalization batch statistics over all replicas of a
            `tf.distribute` strategy (Keras' `synchronized=True`) instead of per replica.
        bn_momentum: momentum of the BatchNormalization moving statistics; `None` keeps
            keras.applications' 0.99 (PyTorch's default corresponds to 0.9).
        name: name of the returned model.

    Returns:
        A `keras.Model` mapping images scaled to [-1, 1], `(B, H, W, 3)`, to
        `{"b1", "b2", "b3", "global"}` feature maps (see the module docstring).

    Example:

    >>> taps = build_backbone(weights=None)
    >>> sorted(taps.output.keys())
    ['b1', 'b2', 'b3', 'global']
    """
    xception = _xception(weights)
    for layer in xception.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # Both attributes are read at call time and kept by get_config.
            if sync_batchnorm:
                layer.synchronized = True
            if bn_momentum is not None:
                layer.momentum = float(bn_momentum)
    outputs = {key: xception.get_layer(layer).output for key, layer in TAP_LAYERS.items()}
    outputs["global"] = global_feature_tensor(xception, global_feature)
    return keras.Model(xception.input, outputs, name=name)
