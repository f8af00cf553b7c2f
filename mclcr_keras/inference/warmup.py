"""TF Serving's warm-up file of an export: ``assets.extra/tf_serving_warmup_requests``.

TensorFlow Serving replays this file when it loads a version, before the version takes traffic, so
no client pays the first call's lazy initialisation (about 6x a steady call of the 256 px model on
CPU; `docs/serving.md`, "Warm-up requests"). The file is a TFRecord of `PredictionLog` protos
(``tensorflow_serving.apis.prediction_log_pb2``, from the ``tensorflow-serving-api`` package, the
``serving`` extra): one ``PredictLog`` per signature and batch size, whose ``PredictRequest``
names the model and the signature and carries the inputs as ``TensorProto``s:

- ``serving_default``: ``images``, float32 ``(B, S, S, 3)`` pixels in [0, 255];
- ``serving_bytes``: ``images_bytes``, string ``(B,)``, the PNGs of the same crops.

The crops are synthetic (`warmup_crops`: smooth colour waves, deterministic, distinct per image):
warm-up exercises shapes and kernels, not the answer, and a test replays every record against the
SavedModel and the Keras model. TF Serving refuses a file of more than `MAX_WARMUP_RECORDS`
records, and a warm-up request that fails makes the version fail to load.

Example:

>>> crops = warmup_crops(16, 3)
>>> crops.shape, crops.dtype.name, bool((crops[0] != crops[1]).any())
((3, 16, 16, 3), 'uint8', True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# TF Serving's names: the file it looks for inside the version, and its record limit
# (saved_model_warmup_util.cc, WarmupConsts::kMaxNumRecords).
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000
DEFAULT_WARMUP_BATCH_SIZES = (1, 8)
INSTALL_HINT = "pip install tensorflow-serving-api (the package's 'serving' extra)"

__all__ = ["DEFAULT_WARMUP_BATCH_SIZES", "MAX_WARMUP_RECORDS", "WARMUP_FILE", "prediction_logs",
           "serving_api_available", "warmup_crops", "write_warmup"]


def serving_api_available() -> bool:
    """Whether ``tensorflow-serving-api`` (its ``prediction_log_pb2``) can be imported."""
    try:
        from tensorflow_serving.apis import prediction_log_pb2  # noqa: F401
    except ImportError:
        return False
    return True


def warmup_crops(image_size: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` deterministic synthetic crops ``(count, S, S, 3)`` uint8: smooth colour waves.

    Smooth, so their PNGs stay small; each image has its own frequencies and phases, so a batch
    whose items were mixed up would not pass the replay test.
    """
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 2.0 * np.pi, image_size, dtype=np.float64)
    y, x = np.meshgrid(grid, grid, indexing="ij")
    crops = np.empty((count, image_size, image_size, 3), np.uint8)
    for index in range(count):
        fx, fy, phase = rng.uniform(0.5, 3.0, 3), rng.uniform(0.5, 3.0, 3), rng.uniform(0, 6.3, 3)
        waves = np.sin(fx * x[..., None] + fy * y[..., None] + phase)
        crops[index] = np.round(127.5 + 120.0 * waves).astype(np.uint8)
    return crops


def prediction_logs(model_name: str, image_size: int, batch_sizes: Sequence[int]) -> list:
    """The warm-up `PredictionLog`s: for each batch size, one per signature (pixels, then bytes).

    Raises:
        ImportError: ``tensorflow-serving-api`` is not installed.
        ValueError: more records than TF Serving reads (`MAX_WARMUP_RECORDS`).
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from mclcr_keras.data.schema import encode_image
    from mclcr_keras.inference import scorer

    if 2 * len(batch_sizes) > MAX_WARMUP_RECORDS:
        raise ValueError(f"{2 * len(batch_sizes)} warm-up records: TF Serving reads at most "
                         f"{MAX_WARMUP_RECORDS}")
    logs = []
    for seed, batch in enumerate(batch_sizes):
        crops = warmup_crops(image_size, batch, seed)
        inputs = {
            scorer.PIXELS_SIGNATURE: (scorer.PIXELS_INPUT, crops.astype(np.float32)),
            scorer.BYTES_SIGNATURE: (scorer.BYTES_INPUT,
                                     np.array([encode_image(crop) for crop in crops], object)),
        }
        for signature, (name, value) in inputs.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            logs.append(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup(version_dir: str | os.PathLike, model_name: str, image_size: int,
                 batch_sizes: Sequence[int]) -> Path:
    """Writes `WARMUP_FILE` in ``version_dir`` (`prediction_logs` as a TFRecord); returns it.

    Example:

    ```python
    write_warmup("serving/mclcr/.export-3-...", "mclcr", 256, (1, 8))   # 4 records
    ```
    """
    import tensorflow as tf

    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in prediction_logs(model_name, image_size, batch_sizes):
            writer.write(log.SerializeToString())
    return path
