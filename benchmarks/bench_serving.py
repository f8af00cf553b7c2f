"""Exported SavedModel batch latency against the Keras model on the same batch (goal: <= 1.1).

One process builds (or loads) a model, saves it as `.keras`, exports it with
`mclcr_keras.inference.export.export_model` (what `python -m mclcr_keras.export` runs), reloads both
the way they are used in production, and times, on the same float32 batch:

- `saved_model`: `tf.saved_model.load(dir).signatures["serving_default"](images=x)`, the
  function TF Serving runs for a REST/gRPC predict call;
- `keras_predict_on_batch`: `keras.models.load_model(path).predict_on_batch(x)`, the batch
  inference call of a Keras user (a compiled `tf.function`, outputs as NumPy). **The ratio's
  denominator.**
- `keras_tf_function`: `tf.function(lambda x: model(x, training=False))` with a fixed input
  signature, which `mclcr_keras.inference.scorer.KerasScorer` uses (shown for reference);
- `saved_model_bytes`: the `serving_bytes` signature on the same batch PNG-encoded (decode +
  model; shown for reference, not in the ratio).

Every contender's outputs are fetched as NumPy (the same synchronisation for all). Warm-up calls
are excluded; then the contenders are called in interleaved rounds (the order rotates each
round) and the median per contender is reported, so background load on a shared machine hits
all of them alike.

    python benchmarks/bench_serving.py                          # 256 px, batch 16, weights=None
    python benchmarks/bench_serving.py --rounds 40 --model runs/ffpp/best.keras
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time

logger = logging.getLogger(__name__)

GOAL = 1.1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="SavedModel vs Keras batch latency, measured side by side (goal <= 1.1)."
    )
    parser.add_argument("--model", default=None,
                        help="an existing .keras file (default: a fresh build_mclcr, weights=None)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--variant", default="mclcr", help="variant of the fresh model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per contender")
    parser.add_argument("--rounds", type=int, default=20, help="timed interleaved rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser


def _contenders(keras_model, loaded, batch, encoded):
    import tensorflow as tf

    size = keras_model.input_shape[1]
    pixels_signature = loaded.signatures["serving_default"]
    bytes_signature = loaded.signatures["serving_bytes"]
    spec = tf.TensorSpec([None, size, size, 3], tf.float32)
    compiled = tf.function(lambda x: keras_model(x, training=False), input_signature=[spec])
    x = tf.constant(batch)
    strings = tf.constant(encoded)

    return {
        "saved_model": lambda: pixels_signature(images=x)["probability"].numpy(),
        "keras_predict_on_batch": lambda: keras_model.predict_on_batch(batch)["probability"],
        "keras_tf_function": lambda: compiled(x)["probability"].numpy(),
        "saved_model_bytes": lambda: bytes_signature(images_bytes=strings)["probability"].numpy(),
    }


def run(args: argparse.Namespace) -> dict:
    """Builds/exports in a temporary directory, measures, cleans up; returns the figures."""
    work = tempfile.mkdtemp(prefix="bench_serving_")
    try:
        return _measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(args: argparse.Namespace, work: str) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from mclcr_keras.data import schema
    from mclcr_keras.inference import export
    from mclcr_keras.models import build_mclcr
    from mclcr_keras.models.saving import load_model

    model_path = args.model
    if model_path is None:
        keras.utils.set_random_seed(args.seed)
        model = build_mclcr(image_size=args.image_size, weights=None, variant=args.variant,
                            compile=False)
        model_path = os.path.join(work, "model.keras")
        model.save(model_path)
        del model
    started = time.perf_counter()
    version_dir = export.export_model(model_path, os.path.join(work, "serving", "mclcr"))
    export_seconds = time.perf_counter() - started

    keras_model = load_model(model_path)
    loaded = tf.saved_model.load(str(version_dir))
    size = int(keras_model.input_shape[1])
    rng = np.random.default_rng(args.seed)
    crops = rng.integers(0, 256, (args.batch_size, size, size, 3), dtype=np.uint8)
    batch = crops.astype(np.float32)
    encoded = [schema.encode_image(crop) for crop in crops]
    contenders = _contenders(keras_model, loaded, batch, encoded)

    reference = contenders["keras_predict_on_batch"]().ravel()
    for name, call in contenders.items():
        error = float(np.max(np.abs(call().ravel() - reference)))
        if error > 1e-4:
            raise RuntimeError(f"{name} disagrees with the Keras model by {error:.2e}")
        for _ in range(args.warmup):
            call()

    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(values) for name, values in times.items()}
    quartiles = {name: statistics.quantiles(values, n=4)[::2] if len(values) > 1
                 else [values[0], values[0]] for name, values in times.items()}
    base = medians["keras_predict_on_batch"]
    return {
        "image_size": size,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "model": args.model or f"build_mclcr(variant={args.variant!r}, weights=None)",
        "export_seconds": round(export_seconds, 1),
        "median_seconds": {name: round(value, 4) for name, value in medians.items()},
        "quartile_seconds": {name: [round(v, 4) for v in pair]
                             for name, pair in quartiles.items()},
        "ratio_saved_model_vs_keras_predict_on_batch": medians["saved_model"] / base,
        "ratio_saved_model_vs_keras_tf_function": (
            medians["saved_model"] / medians["keras_tf_function"]
        ),
        "goal": GOAL,
        "threads": {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()},
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = run(args)
    print(f"MC-LCR {result['image_size']} px, batch {result['batch_size']}, "
          f"{result['rounds']} interleaved rounds after {result['warmup']} warm-up calls, median:")
    base = result["median_seconds"]["keras_predict_on_batch"]
    for name, seconds in result["median_seconds"].items():
        low, high = result["quartile_seconds"][name]
        print(f"  {name:24s} {seconds * 1000:9.1f} ms   {seconds / base:5.2f}x   "
              f"(quartiles {low * 1000:.1f}-{high * 1000:.1f} ms)")
    ratio = result["ratio_saved_model_vs_keras_predict_on_batch"]
    verdict = "meets" if ratio <= GOAL else "misses"
    print(f"SavedModel / Keras predict_on_batch = {ratio:.3f} ({verdict} the goal <= {GOAL}); "
          f"SavedModel / Keras tf.function = "
          f"{result['ratio_saved_model_vs_keras_tf_function']:.3f}")
    print(f"(export took {result['export_seconds']} s; load average "
          f"{', '.join(f'{v:.1f}' for v in result['threads']['load_average'])} on "
          f"{result['threads']['cpu_count']} CPUs)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
