"""Export a trained model as a SavedModel for TensorFlow Serving.

`export_model("runs/ffpp/best.keras", "serving/mclcr")` (``python -m mclcr_keras.export``) writes
`serving/mclcr/<N>/` (TF Serving's `<model_base>/<version>/` layout; `N` defaults to the next
integer after the existing versions, 1 for a new base) with two signatures:

| signature         | input                                       | outputs                    |
|-------------------|---------------------------------------------|----------------------------|
| `serving_default` | `images`: float32 `(None, S, S, 3)`, [0, 255] | `probability`, `logit`:  |
| `serving_bytes`   | `images_bytes`: string `(None,)`, PNG/JPEG  | float32 `(None,)` each     |

Both take **aligned face crops** (detection and alignment stay in `mclcr_keras.inference.predict`);
the bytes signature decodes and, when needed, resizes to `S` inside the graph. The version is
written to a hidden temporary directory and renamed at the end, so TF Serving, which polls the base
directory, never sees a half-written version; an existing version is never overwritten. Its
`assets.extra/` also holds TF Serving's warm-up requests (`mclcr_keras.inference.warmup`), a
`batching_parameters.txt` and a `models.config` (`mclcr_keras.inference.serving_config`). See
`docs/serving.md`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from mclcr_keras.inference import scorer, serving_config, warmup
from mclcr_keras.inference.card_asset import MODEL_CARD_ASSET, read_model_card
from mclcr_keras.inference.scorer import METADATA_FILE
from mclcr_keras.inference.serving_config import ServingOptions
from mclcr_keras.models.saving import load_model, model_image_size, stored_threshold

logger = logging.getLogger(__name__)

__all__ = ["METADATA_FILE", "build_archive", "compare_export", "export_model", "next_version"]


def next_version(base: str | os.PathLike) -> int:
    """The version `export` picks by default: one more than the largest numbered directory, or 1.

    Every all-digit directory name counts (even an incomplete one), so a new export never lands
    on a number that is already taken.

    Example:

    ```python
    next_version("serving/mclcr")   # 3 when it holds 1/ and 2/; 1 for a new base
    ```
    """
    base = Path(base)
    numbers = [int(c.name) for c in base.iterdir() if c.is_dir() and c.name.isdigit()] \
        if base.is_dir() else []
    return max(numbers, default=0) + 1


def build_archive(model):
    """A `keras.export.ExportArchive` with the pixel and bytes signatures of `model`.

    Args:
        model: a Keras model taking `(None, S, S, 3)` pixels and returning a dict with `logit`
            (and `probability`), e.g. `MCLCR`.

    Returns:
        The archive, ready for `write_out(directory)`.

    Example:

    ```python
    build_archive(model).write_out("serving/mclcr/1")
    ```
    """
    import keras
    import tensorflow as tf

    size = model_image_size(model.input_shape, f"model {model.name}")

    def serve_pixels(images):
        outputs = model(images, training=False)
        probability, logit = scorer.probability_and_logit(outputs, f"model {model.name}")
        return {"probability": tf.reshape(probability, [-1]), "logit": tf.reshape(logit, [-1])}

    # No `archive.track(model)`: it stores the Keras variables, whose checkpoint entries are
    # distinct from the tf.Variables the endpoints capture, so every weight was written twice
    # (variables/ 2.0x the weights). The collections below hold those captured tf.Variables
    # themselves: one entry each, still reachable as `loaded.variables` (docs/serving.md).
    archive = keras.export.ExportArchive()
    pixels_fn = archive.add_endpoint(
        scorer.PIXELS_SIGNATURE,
        serve_pixels,
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32,
                                       name=scorer.PIXELS_INPUT)],
    )

    def serve_bytes(images_bytes):
        # Calls the pixel function: the model graph is traced once and shared by both signatures.
        return pixels_fn(scorer.decode_images(images_bytes, size))

    archive.add_endpoint(
        scorer.BYTES_SIGNATURE,
        serve_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name=scorer.BYTES_INPUT)],
    )
    for name, weights in (("variables", model.weights),
                          ("trainable_variables", model.trainable_weights),
                          ("non_trainable_variables", model.non_trainable_weights)):
        archive.add_variable_collection(name, [weight.value for weight in weights])
    return archive


def _metadata(model, model_path: str, version: int) -> dict:
    import keras
    import tensorflow as tf

    config = getattr(model, "config", None)
    size = model_image_size(model)
    return {
        "source_model": os.path.abspath(model_path),
        "version": version,
        "image_size": size,
        "model_config": config.to_dict() if hasattr(config, "to_dict") else None,
        "signatures": {
            scorer.PIXELS_SIGNATURE: {
                "inputs": {scorer.PIXELS_INPUT: ["float32", [None, size, size, 3]]},
                "outputs": {key: ["float32", [None]] for key in scorer.OUTPUT_KEYS},
            },
            scorer.BYTES_SIGNATURE: {
                "inputs": {scorer.BYTES_INPUT: ["string", [None]]},
                "outputs": {key: ["float32", [None]] for key in scorer.OUTPUT_KEYS},
            },
        },
        "input_contract": "aligned RGB face crops, pixels in [0, 255]",
        # The decision threshold chosen on val for this model (training's sidecar), or None.
        "threshold": stored_threshold(model_path),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _stable_version(out: Path, version: int, requested: int | None) -> int:
    """The version labelled stable: `requested` (checked), else the highest other one, else
    `version` itself."""
    others = [number for number in scorer.saved_model_versions(out) if number != version]
    if requested is None:
        return max(others, default=version)
    if requested != version and requested not in others:
        raise ValueError(f"--stable-version {requested}: {out / str(requested)} holds no "
                         "SavedModel")
    return requested


def _write_serving_files(staging: Path, out: Path, version: int, stable: int, size: int,
                         serving: ServingOptions) -> dict:
    """Warm-up requests and the two config files, into the staging directory; what was written
    (relative paths), for the metadata."""
    name = out.resolve().name
    base_path = serving.serving_base_path or str(out.resolve())
    configs = serving_config.write_serving_configs(staging, name, base_path, version, stable,
                                                   serving)
    written = None
    if serving.warmup_batch_sizes and not warmup.serving_api_available():
        logger.warning("no %s written: %s", warmup.WARMUP_FILE, warmup.INSTALL_HINT)
    elif serving.warmup_batch_sizes:
        warmup.write_warmup(staging, name, size, serving.warmup_batch_sizes)
        written = warmup.WARMUP_FILE
    return {
        "warmup_requests": written,
        "warmup_batch_sizes": list(serving.warmup_batch_sizes) if written else [],
        "batching_parameters": str(configs[0].relative_to(staging)),
        "models_config": str(configs[1].relative_to(staging)),
        "model_name": name, "serving_base_path": base_path, "stable_version": stable,
    }


def export_model(
    model_path: str | os.PathLike, out: str | os.PathLike, version: int | None = None,
    model_card: str | os.PathLike | None = None, serving: ServingOptions | None = None,
) -> Path:
    """Exports a `.keras` model to `<out>/<version>/` and returns that directory.

    Args:
        model_path: a `.keras` file.
        out: the TF Serving model base, e.g. `serving/mclcr` (created if missing).
        version: positive version number; default `next_version(out)`.
        model_card: a ``model_card.json`` written by ``evaluate``, copied byte for byte into
            ``assets.extra/model_card.json`` (`mclcr_keras.inference.card_asset`).
        serving: the TF Serving files written into ``assets.extra/`` (warm-up requests,
            batching parameters, ``models.config``); default `ServingOptions()`.

    Raises:
        FileNotFoundError: the model file (or the model card) is missing.
        FileExistsError: `<out>/<version>` exists already.
        ValueError: bad version, a model card that is not one, a ``stable_version`` without a
            SavedModel in `out`, or the file is not a loadable Keras model.
        UsageError: a bad `ServingOptions` value.

    Example:

    ```python
    export_model("runs/ffpp/best.keras", "serving/mclcr")   # PosixPath('serving/mclcr/1')
    ```
    """
    model_path = Path(model_path)
    out = Path(out)
    if version is None:
        version = next_version(out)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    target = out / str(version)
    if target.exists():
        raise FileExistsError(
            f"{target} exists; TF Serving versions are immutable: pick another --version or omit "
            "it to use the next free number"
        )
    if not model_path.exists():
        raise FileNotFoundError(f"model not found: {model_path}")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory")
    card = read_model_card(model_card) if model_card is not None else None
    serving = serving or ServingOptions()
    serving.validate()
    stable = _stable_version(out, version, serving.stable_version)
    model = load_model(model_path)
    archive = build_archive(model)

    out.mkdir(parents=True, exist_ok=True)
    # A non-numeric hidden name: TF Serving ignores it until the final rename.
    # (mkdir, not mkdtemp: the version directory keeps the umask's permissions, readable by a
    # TF Serving container running as another user.)
    staging = out / f".export-{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        archive.write_out(str(staging), verbose=False)
        metadata = staging / METADATA_FILE
        metadata.parent.mkdir(parents=True, exist_ok=True)
        record = _metadata(model, str(model_path), version)
        record["tf_serving"] = _write_serving_files(staging, out, version, stable,
                                                    record["image_size"], serving)
        metadata.write_text(json.dumps(record, indent=2))
        if card is not None:  # inside the staging directory: the rename publishes it too
            (staging / MODEL_CARD_ASSET).write_bytes(card)
        if target.exists():  # another export took the number meanwhile
            raise FileExistsError(f"{target} appeared during the export; nothing overwritten")
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s to %s", model_path, target)
    return target


def compare_export(version_dir: str | os.PathLike, model_path: str | os.PathLike,
                   crops) -> tuple[list[str], dict[str, float]]:
    """Reloads an exported version and compares both signatures with the Keras model.

    Args:
        version_dir: ``<base>/<version>`` written by `export_model`.
        model_path: the ``.keras`` file it was exported from.
        crops: ``(B, S, S, 3)`` uint8 aligned face crops; the bytes signature gets their PNGs.

    Returns:
        ``(signature names, {signature: max |probability difference| against the Keras model})``.

    Example:

    ```python
    names, differences = compare_export("serving/mclcr/1", "runs/ffpp/best.keras", crops)
    names, differences   # (['serving_bytes', 'serving_default'], {'serving_default': 6e-08, ...})
    ```
    """
    import numpy as np
    import tensorflow as tf

    from mclcr_keras.data.schema import encode_image

    keras_probability, _ = scorer.load_scorer(model_path).predict(crops)
    loaded = tf.saved_model.load(str(version_dir))
    outputs = {
        scorer.PIXELS_SIGNATURE: loaded.signatures[scorer.PIXELS_SIGNATURE](
            **{scorer.PIXELS_INPUT: tf.constant(crops, tf.float32)}),
        scorer.BYTES_SIGNATURE: loaded.signatures[scorer.BYTES_SIGNATURE](
            **{scorer.BYTES_INPUT: tf.constant([encode_image(crop) for crop in crops])}),
    }
    differences = {
        name: float(np.max(np.abs(result["probability"].numpy() - keras_probability)))
        for name, result in outputs.items()
    }
    return sorted(loaded.signatures.keys()), differences
