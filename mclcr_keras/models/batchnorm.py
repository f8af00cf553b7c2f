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
import numpy as np

logger = logging.getLogger(__name__)


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of `model`, nested models included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


class PreciseBatchNorm:
    """Recomputes a model's BatchNorm statistics on batches, as often as needed (one trace).

    Each BatchNorm layer's momentum is set to 0 while a compiled training-mode forward pass runs
    on each batch, so after a batch its moving mean and variance are that batch's statistics;
    their plain average over the batches (float64) becomes the layer's moving mean and variance,
    and the momenta are restored. Weights other than the moving statistics do not change. The
    forward pass is traced once per instance: keep one instance for a whole training.

    Example:

    ```python
    precise = PreciseBatchNorm(model)
    precise(train_ds.take(32))   # 32; again after each epoch
    ```
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self.layers = batchnorm_layers(model)
        self._forward = None

    def _compiled_forward(self):
        if self._forward is None:
            import tensorflow as tf

            model = self.model

            def forward(images):
                model(images, training=True)

            self._forward = tf.function(forward, reduce_retracing=True)
        return self._forward

    def __call__(self, batches: Iterable) -> int:
        """Sets the statistics from ``batches`` (images, or ``(images, labels, ...)`` tuples).

        Returns:
            The number of batches used.

        Raises:
            ValueError: no batch (the statistics are left as they were).
        """
        layers = self.layers
        momenta = [layer.momentum for layer in layers]
        saved = [(keras.ops.convert_to_numpy(layer.moving_mean),
                  keras.ops.convert_to_numpy(layer.moving_variance)) for layer in layers]
        sums = [(np.zeros_like(mean, np.float64), np.zeros_like(var, np.float64))
                for mean, var in saved]
        count = 0
        done = False
        try:
            for layer in layers:
                layer.momentum = 0.0
            forward = self._compiled_forward()
            for batch in batches:
                forward(batch[0] if isinstance(batch, (tuple, list)) else batch)
                count += 1
                for (mean_sum, var_sum), layer in zip(sums, layers):
                    mean_sum += keras.ops.convert_to_numpy(layer.moving_mean)
                    var_sum += keras.ops.convert_to_numpy(layer.moving_variance)
            if count == 0:
                raise ValueError("recomputing BatchNorm statistics needs at least one batch; "
                                 "got none")
            results = [(m / count, v / count) for m, v in sums]
            done = True
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum
            for layer, (mean, var) in zip(layers, results if done else saved):
                layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
                layer.moving_variance.assign(var.astype(layer.moving_variance.dtype))
        logger.info("recomputed %d BatchNorm layers' statistics on %d batches", len(layers),
                    count)
        return count


def recompute_batchnorm_statistics(model: keras.Model, batches: Iterable) -> int:
    """Set each BatchNorm's moving mean/variance to the average of its batch statistics.

    The model runs in training mode on every batch (weights unchanged; dropout is irrelevant to
    the statistics before it); after the loop the moving averages hold the plain mean of the
    batches' statistics (`PreciseBatchNorm`, which a training keeps to trace only once).

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
    return PreciseBatchNorm(model)(batches)
