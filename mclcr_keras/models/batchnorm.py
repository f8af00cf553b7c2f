"""Recompute BatchNorm's inference statistics with the current weights ("precise BN").

BatchNormalization keeps an exponential moving average of batch statistics taken while the
weights were changing. After a short or fast training (e.g. from random weights) that average
lags the final weights and inference outputs suffer, although the training-mode outputs are good.
Recomputing the statistics with the final weights fixes this (Wu & Johnson, "Rethinking 'Batch'
in BatchNorm", 2021, Sec. 3; `PreciseBN` in pycls / detectron2).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import keras

logger = logging.getLogger(__name__)


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of `model`, nested models included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def recompute_batchnorm_statistics(model: keras.Model, batches: Iterable) -> int:
    """Set each BatchNorm's moving mean/variance to the average of its batch statistics.

    The model runs in training mode on every batch (weights unchanged; dropout is irrelevant to
    the statistics before it), and batch `n` enters the moving averages with momentum
    `1 - 1/n`, so after the loop they hold the plain mean over the batches. The layers'
    momentum is restored afterwards.

    Args:
        model: a Keras model (e.g. an `MCLCR`).
        batches: an iterable of image batches (or `(images, labels)` tuples), e.g. a few dozen
            training batches.

    Returns:
        The number of batches used.

    Example:

    ```python
    used = recompute_batchnorm_statistics(model, (x for x, _ in train_ds.take(20)))  # 20
    ```
    """
    layers = batchnorm_layers(model)
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for batch in batches:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            count += 1
            for layer in layers:
                layer.momentum = 1.0 - 1.0 / count
            model(images, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if count == 0:
        raise ValueError("recompute_batchnorm_statistics needs at least one batch; got none")
    logger.info("recomputed %d BatchNorm layers' statistics on %d batches", len(layers), count)
    return count
