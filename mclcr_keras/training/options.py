"""`TrainConfig`: every option of a training run, with the paper's defaults, and a smoke preset.

Paper defaults (Wang et al. 2022, arXiv 2110.03290, Section 4.1): AdamW (learning rate 1e-3,
weight decay 1e-4), 50 epochs, batches of 8 real + 8 fake faces, ReduceLROnPlateau(val_loss,
factor 0.5, patience 5). ``python -m mclcr_keras.train`` fills a `TrainConfig` from its command
line; `TrainConfig.smoke` is the tiny run the tests and the demo use. `TrainConfig.validate`
raises `mclcr_keras.errors.UsageError` with one line before TensorFlow is imported.

Example:

>>> config = TrainConfig(records="records/ffpp", out="runs/ffpp")
>>> config.epochs, config.batch_size, config.learning_rate, config.weight_decay
(50, 16, 0.001, 0.0001)
>>> TrainConfig.smoke("records/demo", "runs/demo").image_size
64
>>> TrainConfig("records/ffpp", "runs/ffpp", batch_size=6).validate()  # doctest: +ELLIPSIS
Traceback (most recent call last):
  ...
mclcr_keras.errors.UsageError: --batch-size must be a multiple of 4 (...); got 6
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any

from mclcr_keras.data.schema import LABEL_NAMES, shard_pattern
from mclcr_keras.data.splits import TRAIN, VAL
from mclcr_keras.errors import UsageError
from mclcr_keras.files import check_output_dir
from mclcr_keras.models.config import ATTENTION_SCALES, VARIANTS
from mclcr_keras.training.distribute import cluster_source

DISTRIBUTE = ("none", "mirrored", "multiworker")
# The paper's schedule (Section 4.1).
REDUCE_LR = {"monitor": "val_loss", "factor": 0.5, "patience": 5}
# Options that may change between the runs of one run folder: train longer, or on other hardware
# (XLA compiles the same step; it does not change the math beyond float rounding).
RESUMABLE_CHANGES = ("epochs", "distribute", "jit_compile")
# Options added after run folders were first written, with the value those runs used: an older
# config.json without the key is read as holding this value when a resume compares options.
ADDED_OPTIONS = {"flip": True, "attention_scale": "head", "precise_bn_batches": 0,
                 "bn_momentum": None, "jit_compile": False}


@dataclasses.dataclass
class TrainConfig:
    """One training run (or its resumption) of an MC-LCR model.

    Attributes:
        records: records folder holding ``train/`` and ``val/`` (build_records' ``out``).
        out: the run folder: new, empty, or an earlier run of the same options to resume.
        variant: model variant (paper Table 5 ablations, `mclcr_keras.models.config.VARIANTS`).
        epochs: total number of epochs.
        batch_size: global batch, half real and half fake; a multiple of 4.
        image_size: face crop side in pixels, a multiple of 16.
        weights: Xception initialisation: ``imagenet``, ``none`` or a local ``.h5`` file.
        distribute: ``none``, ``mirrored`` (all local GPUs or CPUs) or ``multiworker``
            (the cluster of ``TF_CONFIG`` or of a Slurm job step,
            `mclcr_keras.training.distribute.cluster_source`).
        mixed_precision: mixed_float16 on GPU, mixed_bfloat16 on CPU.
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
        steps_per_epoch: training batches per epoch (``None``: one pass over the smaller class).
        validation_steps: validate on the first N batches of ``val`` (``None``: all of it).
        seed: seed for weights, dropout and the data order (``None``: random).
        flip: mirror training images left-right at random (not in the paper; ``--no-flip``
            turns it off). The data order and the other draws stay those of the same seed.
        attention_scale: logits of the amplitude-phase attention scaled per head,
            1/sqrt(D/h) (``head``), or by 1/sqrt(D) as Eq. 5 prints it (``model``).
        precise_bn_batches: training batches on which BatchNorm's inference statistics are
            recomputed after every epoch, before validation and the checkpoint (0: keep Keras'
            moving averages; `mclcr_keras.training.validation`).
        bn_momentum: momentum of every BatchNorm layer's moving averages (``None``: Keras'
            0.99).
        jit_compile: compile the train, test and predict steps with XLA (``False``: Keras'
            ``"auto"``, which is XLA on a single GPU and not on a CPU or under tf.distribute);
            ``--distribute none`` only: XLA cannot compile the distributed step.
    """

    records: str
    out: str
    variant: str = "mclcr"
    epochs: int = 50
    batch_size: int = 16
    image_size: int = 256
    weights: str = "imagenet"
    distribute: str = "none"
    mixed_precision: bool = False
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    seed: int | None = None
    flip: bool = True
    attention_scale: str = "head"
    precise_bn_batches: int = 32
    bn_momentum: float | None = None
    jit_compile: bool = False

    @classmethod
    def smoke(cls, records: str, out: str, **overrides) -> TrainConfig:
        """A run that checks the chain in seconds: 64 px, random weights, 1 epoch of 2 steps,
        precise BN on 2 batches."""
        values = dict(image_size=64, weights="none", epochs=1, batch_size=8, steps_per_epoch=2,
                      validation_steps=1, seed=0, precise_bn_batches=2)
        values.update(overrides)
        return cls(records=records, out=out, **values)

    def validate(self) -> None:
        """Checks that need no TensorFlow: one-line `UsageError` for the first problem."""
        positive = ("epochs", "batch_size", "image_size", "steps_per_epoch", "validation_steps")
        for name in positive:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, "
                                 f"got {value!r}")
        if not isinstance(self.precise_bn_batches, int) or self.precise_bn_batches < 0:
            raise UsageError(f"--precise-bn-batches must be an integer >= 0 (0 turns it off), "
                             f"got {self.precise_bn_batches!r}")
        if self.bn_momentum is not None and not 0.0 <= self.bn_momentum < 1.0:
            raise UsageError(f"--bn-momentum must be in [0, 1), got {self.bn_momentum}")
        if self.variant not in VARIANTS:
            raise UsageError(f"--variant must be one of {VARIANTS}, got {self.variant!r}")
        if not isinstance(self.flip, bool):
            raise UsageError(f"flip must be True or False (--no-flip turns it off), "
                             f"got {self.flip!r}")
        if self.attention_scale not in ATTENTION_SCALES:
            raise UsageError(f"--attention-scale must be one of {ATTENTION_SCALES}, "
                             f"got {self.attention_scale!r}")
        if self.distribute not in DISTRIBUTE:
            raise UsageError(f"--distribute must be one of {DISTRIBUTE}, got {self.distribute!r}")
        if self.batch_size % 4:
            raise UsageError(
                f"--batch-size must be a multiple of 4 (half real, half fake, each half of the "
                f"batch balanced); got {self.batch_size}"
            )
        if self.image_size % 16 or self.image_size < 32:
            raise UsageError(
                f"--image-size must be a multiple of 16 (the patch size) and >= 32; "
                f"got {self.image_size}"
            )
        if self.learning_rate <= 0:
            raise UsageError(f"--learning-rate must be > 0; got {self.learning_rate}")
        if self.weight_decay < 0:
            raise UsageError(f"--weight-decay must be >= 0; got {self.weight_decay}")
        weights = self.weights
        if weights.lower() not in ("imagenet", "none"):
            if not weights.endswith((".h5", ".hdf5")):
                raise UsageError(
                    f"--weights must be 'imagenet', 'none' or the path of an Xception .h5 "
                    f"weights file; got {weights!r}"
                )
            if not os.path.isfile(weights):
                raise UsageError(f"--weights file not found: {weights}")
        if not isinstance(self.jit_compile, bool):
            raise UsageError(f"jit_compile must be True or False, got {self.jit_compile!r}")
        if self.jit_compile and self.distribute != "none":
            raise UsageError(
                f"--jit-compile needs --distribute none, got {self.distribute}: XLA cannot "
                "compile the distributed train step (the cross-replica all-gather of the SupCon "
                "batch, variables on several devices); see docs/training.md"
            )
        if self.distribute == "multiworker":
            cluster_source()
        check_output_dir(self.out, "--out")
        check_records(self.records)

    def record(self) -> dict[str, Any]:
        """The options as stored in ``config.json`` (``"training"``) and compared on resume."""
        weights = self.weights
        if weights.lower() in ("imagenet", "none"):
            weights = weights.lower()
        else:
            weights = os.path.abspath(weights)
        records = self.records if "://" in self.records else os.path.abspath(self.records)
        values = dataclasses.asdict(self)
        del values["out"]
        values.update(records=records, weights=weights, mixed_precision=bool(self.mixed_precision))
        return values

    def model_values(self) -> dict[str, Any]:
        """`MCLCRConfig` fields set by this run (the rest keep the paper's defaults)."""
        weights = self.record()["weights"]
        return {
            "image_size": self.image_size,
            "variant": self.variant,
            "weights": None if weights == "none" else weights,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "attention_scale": self.attention_scale,
            "bn_momentum": self.bn_momentum,
        }


def check_records(records: str) -> None:
    """The records folder has the training and the validation split (local folders only).

    Raises:
        UsageError: a missing folder, split or class, as one line.
    """
    if "://" in records:
        return  # remote storage: the pipeline reports what is missing
    if not os.path.isdir(records):
        raise UsageError(f"--records {records} is not a directory")
    split_dir = os.path.join(records, TRAIN)
    if not os.path.isdir(split_dir):
        raise UsageError(
            f"no training split in --records {records} (expected {split_dir}/ with real-* and "
            "fake-*.tfrecord shards, as written by python -m mclcr_keras.build_records)"
        )
    val_dir = os.path.join(records, VAL)
    if not os.path.isdir(val_dir):
        raise UsageError(
            f"no validation split in --records {records} (expected {val_dir}/): training "
            "chooses best.keras and lowers the learning rate on the validation split only, "
            "never on test; build records with a val split (build_records writes "
            "train/val/test)"
        )
    for split in (TRAIN, VAL):
        for label_name in LABEL_NAMES:
            if not glob.glob(shard_pattern(records, split, label_name)):
                raise UsageError(
                    f"no {label_name} shards ({label_name}-NNNNN-of-NNNNN.tfrecord) in "
                    f"{os.path.join(records, split)}: both classes are needed in the "
                    f"{split} split"
                )
