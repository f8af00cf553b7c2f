"""Export a trained model as a SavedModel for TensorFlow Serving.

    python -m mclcr_keras.export --model runs/ffpp/best.keras --out serving/mclcr [--version N]

writes `serving/mclcr/<N>/` (TF Serving's `<model_base>/<version>/` layout; `N` defaults to the
next integer after the existing versions, 1 for a new base) with two signatures:

| signature         | input                                       | outputs                    |
|-------------------|---------------------------------------------|----------------------------|
| `serving_default` | `images`: float32 `(None, S, S, 3)`, [0, 255] | `probability`, `logit`:  |
| `serving_bytes`   | `images_bytes`: string `(None,)`, PNG/JPEG  | float32 `(None,)` each     |

Both take **aligned face crops** (detection and alignment stay in `mclcr_keras.predict`); the bytes
signature decodes and, when needed, resizes to `S` inside the graph. The version is written to a
hidden temporary directory and renamed at the end, so TF Serving, which polls the base directory,
never sees a half-written version; an existing version is never overwritten. See `docs/serving.md`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

EXIT_ERROR = 2
METADATA_FILE = os.path.join("assets.extra", "mclcr_keras.json")

__all__ = ["build_archive", "export_model", "main", "next_version"]


def next_version(base: str | os.PathLike) -> int:
    """The version `export` picks by default: one more than the largest numbered directory, or 1.

    Every all-digit directory name counts (even an incomplete one), so a new export never lands
    on a number that is already taken.

    Example:

    >>> next_version("serving/mclcr")   # holds 1/ and 2/
    3
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

    >>> build_archive(model).write_out("serving/mclcr/1")
    """
    import keras
    import tensorflow as tf

    from mclcr_keras import serving

    size = serving._model_image_size(model.input_shape, f"model {model.name}")

    def serve_pixels(images):
        outputs = model(images, training=False)
        probability, logit = serving._probability_and_logit(outputs, f"model {model.name}")
        return {"probability": tf.reshape(probability, [-1]), "logit": tf.reshape(logit, [-1])}

    archive = keras.export.ExportArchive()
    archive.track(model)
    pixels_fn = archive.add_endpoint(
        serving.PIXELS_SIGNATURE,
        serve_pixels,
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32,
                                       name=serving.PIXELS_INPUT)],
    )

    def serve_bytes(images_bytes):
        # Calls the pixel function: the model graph is traced once and shared by both signatures.
        return pixels_fn(serving.decode_images(images_bytes, size))

    archive.add_endpoint(
        serving.BYTES_SIGNATURE,
        serve_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name=serving.BYTES_INPUT)],
    )
    return archive


def _metadata(model, model_path: str, version: int) -> dict:
    import keras
    import tensorflow as tf

    from mclcr_keras import serving

    config = getattr(model, "config", None)
    size = int(model.input_shape[1])
    return {
        "source_model": os.path.abspath(model_path),
        "version": version,
        "image_size": size,
        "model_config": config.to_dict() if hasattr(config, "to_dict") else None,
        "signatures": {
            serving.PIXELS_SIGNATURE: {
                "inputs": {serving.PIXELS_INPUT: ["float32", [None, size, size, 3]]},
                "outputs": {key: ["float32", [None]] for key in serving.OUTPUT_KEYS},
            },
            serving.BYTES_SIGNATURE: {
                "inputs": {serving.BYTES_INPUT: ["string", [None]]},
                "outputs": {key: ["float32", [None]] for key in serving.OUTPUT_KEYS},
            },
        },
        "input_contract": "aligned RGB face crops, pixels in [0, 255]",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def export_model(
    model_path: str | os.PathLike, out: str | os.PathLike, version: int | None = None
) -> Path:
    """Exports a `.keras` model to `<out>/<version>/` and returns that directory.

    Args:
        model_path: a `.keras` file.
        out: the TF Serving model base, e.g. `serving/mclcr` (created if missing).
        version: positive version number; default `next_version(out)`.

    Raises:
        FileNotFoundError: the model file is missing.
        FileExistsError: `<out>/<version>` exists already.
        ValueError: bad version, or the file is not a loadable Keras model.

    Example:

    >>> export_model("runs/ffpp/best.keras", "serving/mclcr")
    PosixPath('serving/mclcr/1')
    """
    from mclcr_keras import serving

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
    model = serving.load_keras_model(model_path)
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
        metadata.write_text(json.dumps(_metadata(model, str(model_path), version), indent=2))
        if target.exists():  # another export took the number meanwhile
            raise FileExistsError(f"{target} appeared during the export; nothing overwritten")
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s to %s", model_path, target)
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mclcr_keras.export",
        description=(
            "Export a trained .keras model as a SavedModel for TensorFlow Serving, in the "
            "<model_base>/<version>/ layout. Signatures: serving_default (float pixels "
            "'images', (None, S, S, 3), RGB in [0, 255]) and serving_bytes (encoded PNG/JPEG "
            "'images_bytes', (None,) string); both return 'probability' and 'logit' (None,). "
            "Inputs are aligned face crops (see docs/serving.md)."
        ),
    )
    parser.add_argument("--model", required=True, help="trained model, e.g. runs/ffpp/best.keras")
    parser.add_argument(
        "--out", required=True,
        help="TF Serving model base directory, e.g. serving/mclcr (its last part is the model "
             "name)",
    )
    parser.add_argument(
        "--version", type=int, default=None,
        help="version number (default: next integer after the existing versions, or 1); "
             "an existing version is never overwritten",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m mclcr_keras.export`; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        target = export_model(args.model, args.out, args.version)
    except (OSError, ValueError) as error:  # missing model, version taken, disk, bad file
        print(f"export: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    from mclcr_keras import serving

    size = json.loads((target / METADATA_FILE).read_text())["image_size"]
    print(f"SavedModel written to {target}")
    print(f"  {serving.PIXELS_SIGNATURE}: {serving.PIXELS_INPUT} float32 (None, {size}, {size}, 3)"
          " -> probability, logit (None,)")
    print(f"  {serving.BYTES_SIGNATURE}: {serving.BYTES_INPUT} string (None,) PNG/JPEG"
          " -> probability, logit (None,)")
    print(f"Serve it: docker run -p 8501:8501 --mount type=bind,source={target.parent.resolve()},"
          f"target=/models/{target.parent.name} -e MODEL_NAME={target.parent.name} "
          "-t tensorflow/serving")
    return 0


if __name__ == "__main__":
    sys.exit(main())
