"""The validation of every epoch: precise BatchNorm statistics, the objective on balanced batches,
the AUC and the threshold on every frame.

`EpochValidation` runs at the end of each epoch, before any other callback sees the epoch's logs:

1. **Precise BN** (``--precise-bn-batches N``, default `PRECISE_BN_BATCHES`): the moving mean and
   variance of every BatchNormalization layer are recomputed with the epoch's final weights on N
   fixed training batches (`mclcr_keras.models.recompute_batchnorm_statistics`). The moving
   averages Keras keeps (momentum 0.99, ~100 batches) lag weights that change fast, as they do
   from random initialisation; validation, the checkpoint, ``best.keras`` and everything exported
   from it then use statistics of the weights they hold.
2. **The objective** (``val_loss``, ``val_bce``, ``val_supcon``, ``val_accuracy``) on batches of
   B/2 real + B/2 fake faces in a fixed order (`make_dataset(training=False, balanced=True)`),
   so the figures compare with the training ones; ``ReduceLROnPlateau`` watches this
   ``val_loss``, as the paper's schedule does.
3. **The AUC and the threshold** on every frame of the split once: ``val_auc`` (exact, scikit-learn
   on the probabilities, which selects ``best.keras``) and ``val_threshold`` (the EER point,
   `mclcr_keras.metrics.choose_threshold`), kept with ``best.keras`` in ``threshold.json``.

With ``--validation-steps N``, the first N balanced batches serve for the objective and for the
AUC (a subset of the split in which both classes are equal).

Example:

```python
validation = EpochValidation(val_balanced, balanced_steps, val_full, full_steps, full_labels,
                             bn_batches=train_fixed.take(32))
model.fit(train, callbacks=[validation, guard, plateau, csv_logger, checkpoint], ...)
```
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import keras
import numpy as np

from mclcr_keras.metrics import THRESHOLD_CRITERIA, choose_threshold

logger = logging.getLogger(__name__)

# Training batches whose statistics become the BatchNorm layers' inference statistics.
PRECISE_BN_BATCHES = 32
# The criterion of the threshold stored with best.keras (evaluate's default too), and its log key.
THRESHOLD_CRITERION = THRESHOLD_CRITERIA[0]
THRESHOLD_KEY = "val_threshold"


class EpochValidation(keras.callbacks.Callback):
    """Validates after every epoch and adds ``val_*`` entries to the epoch's logs.

    Place it first in the callback list: the NaN guard, the learning-rate schedule, the CSV log
    and the checkpoint then see the validation figures.

    Args:
        balanced: batches of ``(images, labels)``, half real and half fake, a fixed order.
        balanced_steps: batches of ``balanced`` per validation.
        full: ``(images, labels)`` batches scored for the AUC and the threshold: every frame
            of the split once (or the balanced subset).
        full_steps: batches of ``full``.
        full_labels: the labels of ``full``'s frames in order (int 0/1).
        bn_batches: training batches for precise BN (an iterable over ``(images, labels)`` that
            can be iterated again each epoch, e.g. a ``tf.data.Dataset``), or `None` to keep
            Keras' moving averages.
    """

    def __init__(self, balanced, balanced_steps: int, full, full_steps: int,
                 full_labels: np.ndarray, bn_batches: Iterable | None = None):
        super().__init__()
        self.balanced, self.balanced_steps = balanced, balanced_steps
        self.full, self.full_steps = full, full_steps
        self.full_labels = np.asarray(full_labels, np.int64)
        self.bn_batches = bn_batches
        self._precise = None

    def on_epoch_end(self, epoch, logs=None):
        from sklearn.metrics import roc_auc_score

        from mclcr_keras.models.batchnorm import PreciseBatchNorm

        if logs is None:
            return
        if self.bn_batches is not None:
            if self._precise is None:
                self._precise = PreciseBatchNorm(self.model)
            self._precise(self.bn_batches)
        values = self.model.evaluate(self.balanced, steps=self.balanced_steps, verbose=0,
                                     return_dict=True)
        logs.update({f"val_{name}": float(value) for name, value in values.items()})
        images = self.full.map(lambda x, y: x)
        outputs = self.model.predict(images, steps=self.full_steps, verbose=0)
        probability = np.asarray(outputs["probability"], np.float64).reshape(-1)
        if probability.shape != self.full_labels.shape:
            raise RuntimeError(f"the validation pass scored {probability.size} frames, "
                               f"expected {self.full_labels.size}")
        logs["val_auc"] = float(roc_auc_score(self.full_labels, probability))
        logs[THRESHOLD_KEY] = choose_threshold(self.full_labels, probability,
                                                 THRESHOLD_CRITERION)
        logger.info("epoch %d: val_loss %.4f (bce %.4f, supcon %.4f) on balanced batches; "
                    "val_auc %.4f on %d frames, EER threshold %.4f", epoch + 1,
                    logs["val_loss"], logs["val_bce"], logs["val_supcon"], logs["val_auc"],
                    probability.size, logs[THRESHOLD_KEY])
