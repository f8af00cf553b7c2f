"""Score aligned face crops with a trained model: a `.keras` file or an exported SavedModel.

`load_scorer(path)` returns a `Scorer` with one interface for both formats, so evaluation and
prediction accept either:

- a `.keras` file (training's `best.keras` / `last.keras`), loaded by
  `mclcr_keras.models.saving.load_model`;
- a SavedModel written by `python -m mclcr_keras.export`: the version directory
  (`serving/mclcr/3/`) or the model base directory (`serving/mclcr/`, the highest numbered
  version is used, as TF Serving does). Its `serving_default` signature is called.

The serving contract (see `docs/serving.md`): inputs are **aligned face crops** (face detection and
alignment stay in Python, `mclcr_keras.inference.predict`), RGB float pixels in [0, 255] of shape
`(B, S, S, 3)`, with `S` read from the model (`scorer.image_size`); outputs are the fake
probability and the logit, one float32 per image.

Example:

```python
scorer = load_scorer("runs/ffpp/best.keras")            # or "serving/mclcr"
probabilities, logits = scorer.predict(faces)           # faces: (B, S, S, 3) in [0, 255]
```
"""

from __future__ import annotations

import abc
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from mclcr_keras.data import schema
from mclcr_keras.models.saving import load_model, model_image_size, stored_threshold

logger = logging.getLogger(__name__)

PIXELS_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
PIXELS_INPUT = "images"
BYTES_INPUT = "images_bytes"
OUTPUT_KEYS = ("probability", "logit")
# What export writes beside the SavedModel: signatures, model config, the val threshold.
METADATA_FILE = os.path.join("assets.extra", "mclcr_keras.json")

__all__ = [
    "BYTES_INPUT",
    "BYTES_SIGNATURE",
    "PIXELS_INPUT",
    "PIXELS_SIGNATURE",
    "KerasScorer",
    "SavedModelScorer",
    "Scorer",
    "decode_images",
    "find_saved_model",
    "load_scorer",
    "saved_model_versions",
]


# --- shared image decoding (also inside the exported `serving_bytes` signature) -------------

def decode_images(images_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes a batch of encoded images to float32 pixels `(B, S, S, 3)` in [0, 255].

    PNG, JPEG, BMP or (first frame of) GIF; grayscale and RGBA become RGB. An image whose size is
    not `S x S` is resized exactly as `mclcr_keras.data.make_dataset` does (bilinear, antialiased,
    clipped to [0, 255]), so a crop scores the same served as bytes or read from the records.

    Args:
        images_bytes: `(B,)` tf.string tensor of encoded images.
        image_size: side `S` of the model's input.

    Example:

    >>> png = schema.encode_image(np.full((32, 32, 3), 200, np.uint8))
    >>> pixels = decode_images(tf.constant([png, png]), 16)   # resized from 32 px
    >>> pixels.shape, pixels.dtype.name, round(float(pixels[0, 0, 0, 0]), 3)
    (TensorShape([2, 16, 16, 3]), 'float32', 200.0)
    """

    def decode_one(encoded: tf.Tensor) -> tf.Tensor:
        image = schema.decode_image(encoded)
        shape = tf.shape(image)
        stored_size = tf.logical_and(tf.equal(shape[0], image_size), tf.equal(shape[1], image_size))
        image = tf.cond(
            stored_size,
            lambda: tf.cast(image, tf.float32),
            lambda: tf.clip_by_value(
                tf.image.resize(image, [image_size, image_size], antialias=True), 0.0, 255.0
            ),
        )
        return tf.ensure_shape(image, [image_size, image_size, 3])

    images_bytes = tf.convert_to_tensor(images_bytes, dtype=tf.string)
    return tf.map_fn(
        decode_one,
        images_bytes,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )


# --- locating and loading models ------------------------------------------------------------

def saved_model_versions(base: str | os.PathLike) -> list[int]:
    """Numbered version directories of a TF Serving model base that hold a SavedModel, sorted.

    Example:

    ```python
    saved_model_versions("serving/mclcr")   # [1, 2]: 1/ and 2/ hold a saved_model.pb
    ```
    """
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted(
        int(child.name)
        for child in base.iterdir()
        if child.name.isdigit() and (child / "saved_model.pb").is_file()
    )


def find_saved_model(path: str | os.PathLike) -> Path | None:
    """The SavedModel directory `path` designates, or None.

    `path` itself when it holds `saved_model.pb`; otherwise, for a TF Serving model base
    (`serving/mclcr` with `1/`, `2/`, ...), its highest numbered version, as TF Serving serves.
    """
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = saved_model_versions(path)
    return path / str(versions[-1]) if versions else None


# --- the scoring interface -------------------------------------------------------------------

class Scorer(abc.ABC):
    """Scores batches of aligned face crops; see `load_scorer`.

    Attributes:
        path: the file or directory the model was loaded from.
        kind: `"keras"` or `"saved_model"`.
        image_size: side `S` of the square RGB crops the model takes.
        threshold: the decision threshold chosen on the validation split for this model,
            ``{"value", "criterion", "split", ...}``, from the ``.keras`` file's sidecar
            (`mclcr_keras.models.saving.stored_threshold`) or the SavedModel's metadata; `None`
            when the model carries none.
    """

    kind: str = ""

    def __init__(self, path: str | os.PathLike, image_size: int,
                 threshold: dict | None = None):
        self.path = str(path)
        self.image_size = int(image_size)
        self.threshold = threshold

    @abc.abstractmethod
    def _score(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One batch `(b, S, S, 3)` float32 -> (probability, logit), any shape with b elements."""

    def predict(self, images, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Fake probabilities and logits of face crops.

        Args:
            images: `(B, S, S, 3)` RGB pixels in [0, 255] (float or uint8; NumPy or tf.Tensor).
            batch_size: images per model call (bounds memory for long inputs).

        Returns:
            `(probabilities, logits)`, each float32 NumPy `(B,)`.

        Example:

        ```python
        probabilities, logits = scorer.predict(np.zeros((2, 256, 256, 3), np.uint8))
        ```
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        images = tf.convert_to_tensor(images)
        size = self.image_size
        if images.shape.rank != 4 or tuple(images.shape[1:]) != (size, size, 3):
            raise ValueError(
                f"images must have shape (B, {size}, {size}, 3), got {tuple(images.shape)}"
            )
        if images.dtype != tf.float32:
            images = tf.cast(images, tf.float32)
        probabilities, logits = [], []
        for start in range(0, int(images.shape[0]), batch_size):
            probability, logit = self._score(images[start:start + batch_size])
            probabilities.append(np.reshape(np.asarray(probability, np.float32), -1))
            logits.append(np.reshape(np.asarray(logit, np.float32), -1))
        if not probabilities:
            return np.zeros((0,), np.float32), np.zeros((0,), np.float32)
        return np.concatenate(probabilities), np.concatenate(logits)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, image_size={self.image_size})"


def probability_and_logit(outputs, where: str) -> tuple[tf.Tensor, tf.Tensor]:
    if not isinstance(outputs, dict) or "logit" not in outputs:
        keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
        raise ValueError(f"{where}: expected outputs with a 'logit' key, got {keys}")
    logit = tf.cast(outputs["logit"], tf.float32)
    probability = outputs.get("probability")
    probability = tf.sigmoid(logit) if probability is None else tf.cast(probability, tf.float32)
    return probability, logit


class KerasScorer(Scorer):
    """A Keras model (`.keras` file) called in inference mode through one compiled function."""

    kind = "keras"

    def __init__(self, model, path: str | os.PathLike = "<in memory>"):
        threshold = stored_threshold(path) if os.path.isfile(path) else None
        super().__init__(path, model_image_size(model.input_shape, f"model {path}"), threshold)
        self.model = model
        spec = tf.TensorSpec([None, self.image_size, self.image_size, 3], tf.float32)
        # One trace for every batch size (the last evaluation batch is smaller).
        self._call = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def _score(self, images):
        return probability_and_logit(self._call(images), f"model {self.path}")


class SavedModelScorer(Scorer):
    """A SavedModel, called through its `serving_default` signature (float pixels)."""

    kind = "saved_model"

    def __init__(self, directory: str | os.PathLike):
        directory = Path(directory)
        try:
            self._loaded = tf.saved_model.load(str(directory))
        except Exception as error:
            reason = (str(error).strip() or type(error).__name__).splitlines()[0]
            raise ValueError(f"could not load SavedModel {directory}: {reason}") from None
        signatures = self._loaded.signatures
        if PIXELS_SIGNATURE not in signatures:
            raise ValueError(
                f"SavedModel {directory} has no {PIXELS_SIGNATURE!r} signature "
                f"(has {sorted(signatures)})"
            )
        self._signature = signatures[PIXELS_SIGNATURE]
        inputs = self._signature.structured_input_signature[1]
        if len(inputs) != 1:
            raise ValueError(
                f"SavedModel {directory}: {PIXELS_SIGNATURE} must take one input, "
                f"got {sorted(inputs)}"
            )
        (self._input_name, spec), = inputs.items()
        if spec.dtype != tf.float32:
            raise ValueError(
                f"SavedModel {directory}: {PIXELS_SIGNATURE} input {self._input_name!r} must be "
                f"float32 pixels, got {spec.dtype.name}"
            )
        size = model_image_size(spec.shape.as_list(), f"SavedModel {directory}")
        super().__init__(directory, size, _exported_threshold(directory))

    def _score(self, images):
        outputs = self._signature(**{self._input_name: images})
        return probability_and_logit(outputs, f"SavedModel {self.path}")


def _exported_threshold(directory: Path) -> dict | None:
    """The ``threshold`` record of an export's metadata (`None`: absent, or an older export)."""
    import json

    try:
        metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    record = metadata.get("threshold") if isinstance(metadata, dict) else None
    return record if isinstance(record, dict) and "value" in record else None


def load_scorer(path: str | os.PathLike) -> Scorer:
    """Loads a `.keras` file or an exported SavedModel behind the `Scorer` interface.

    Args:
        path: a `.keras` file, a SavedModel directory (`serving/mclcr/3`), or a TF Serving model
            base (`serving/mclcr`: its highest numbered version is loaded).

    Returns:
        A `KerasScorer` or a `SavedModelScorer`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is neither format, or loading fails (one line naming the path).

    Example:

    ```python
    scorer = load_scorer("serving/mclcr")
    scorer.kind, scorer.image_size   # ('saved_model', 256)
    ```
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if path.is_dir():
        directory = find_saved_model(path)
        if directory is None:
            raise ValueError(
                f"{path} is a directory without saved_model.pb and without numbered SavedModel "
                "versions; expected a .keras file or an exported SavedModel"
            )
        scorer: Scorer = SavedModelScorer(directory)
    else:
        scorer = KerasScorer(load_model(path), path)
    logger.info("loaded %s model %s (image size %d)", scorer.kind, scorer.path, scorer.image_size)
    return scorer
