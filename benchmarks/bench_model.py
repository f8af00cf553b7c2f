"""Train-step time of each MC-LCR variant relative to the Xception baseline (goal: mclcr <= 1.25).

One process builds every variant (`build_mclcr(variant=..., weights=None)`, compiled with the
default AdamW), feeds each the same batch through its compiled `train_on_batch` function, and
times the steps in interleaved rounds (the order rotates each round) after untimed warm-up
steps, so background load on a shared machine hits every variant alike. Both wall time and the
process's CPU time (all threads) are reported; on a loaded machine the CPU time is the steadier
measure of the work a step does. It reports the median
step time per variant and its ratio to `baseline`, then times `GramStyle`'s O(HWC) path against
the explicit Gram matrix (`explicit_gram_style`) on the three tap shapes of a 256 px batch.

    python benchmarks/bench_model.py                              # 256 px, batch 16
    python benchmarks/bench_model.py --warmup 3 --steps 5 --json model_bench.json
    python benchmarks/bench_model.py --variants baseline mclcr --jit-compile
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time

import common

from mclcr_keras.models.config import VARIANTS as MODEL_VARIANTS

logger = logging.getLogger(__name__)

GOAL = 1.25
# The reference first, then every variant of the package (TensorFlow-free import).
VARIANTS = ("baseline", *(v for v in MODEL_VARIANTS if v != "baseline"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="MC-LCR train-step time per variant relative to the Xception baseline "
        f"(goal mclcr/baseline <= {GOAL}), and GramStyle O(HWC) vs explicit Gram."
    )
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                        help="variants to time (baseline is always included)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant")
    parser.add_argument("--steps", type=int, default=5, help="timed interleaved rounds")
    parser.add_argument("--gram-repeats", type=int, default=10, help="timed calls per Gram path")
    parser.add_argument("--jit-compile", action="store_true", help="compile steps with XLA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser


def _batch(image_size: int, batch_size: int, seed: int):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    labels = np.arange(batch_size) % 2  # balanced, as the training pipeline yields
    return tf.constant(images), tf.constant(labels.astype("float32"))


def time_variants(args) -> dict[str, dict[str, float]]:
    """Median train-step seconds per variant, measured in interleaved rounds."""
    from mclcr_keras.models import build_mclcr

    variants = ["baseline"] + [v for v in args.variants if v != "baseline"]
    images, labels = _batch(args.image_size, args.batch_size, args.seed)
    models = {}
    for variant in variants:
        start = time.perf_counter()
        model = build_mclcr(variant=variant, image_size=args.image_size, weights=None,
                            compile=False)
        model.compile(jit_compile=args.jit_compile)
        models[variant] = model
        logger.info("built %s in %.1f s", variant, time.perf_counter() - start)

    def step(variant: str) -> tuple[float, float]:
        return common.timed_train_step(models[variant], images, labels)

    for round_index in range(args.warmup):
        for variant in variants:
            seconds, _ = step(variant)
            logger.info("warm-up %d %s: %.2f s", round_index, variant, seconds)
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    cpu: dict[str, list[float]] = {variant: [] for variant in variants}
    for round_index in range(args.steps):
        shift = round_index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            seconds, cpu_seconds = step(variant)
            times[variant].append(seconds)
            cpu[variant].append(cpu_seconds)
        logger.info("round %d: %s", round_index,
                    {v: round(t[-1], 2) for v, t in times.items()})
    base = statistics.median(times["baseline"])
    base_cpu = statistics.median(cpu["baseline"])
    return {
        variant: {
            "median_s": statistics.median(values),
            "min_s": min(values),
            "max_s": max(values),
            "ratio": statistics.median(values) / base,
            "cpu_median_s": statistics.median(cpu[variant]),
            "cpu_ratio": statistics.median(cpu[variant]) / base_cpu,
            "params": models[variant].count_params(),
        }
        for variant, values in times.items()
    }


def time_gram(args) -> dict[str, dict[str, float]]:
    """Median seconds of GramStyle vs explicit_gram_style on the tap shapes of the batch."""
    import numpy as np
    import tensorflow as tf

    from mclcr_keras.layers import GramStyle
    from mclcr_keras.layers.gram_style import explicit_gram_style
    from mclcr_keras.models import build_backbone

    backbone = build_backbone(weights=None)
    images, _ = _batch(args.image_size, args.batch_size, args.seed)
    taps = backbone(images / 127.5 - 1.0)
    layer = GramStyle()
    fast = tf.function(lambda x: layer(x))
    explicit = tf.function(lambda x: explicit_gram_style(x))
    results = {}
    for key in ("b1", "b2", "b3"):
        feature = tf.constant(taps[key])
        np.testing.assert_allclose(fast(feature).numpy(), explicit(feature).numpy(),
                                   rtol=1e-3, atol=1e-4)
        times = {"fast": [], "explicit": []}
        for _ in range(2):  # warm-up
            fast(feature).numpy()
            explicit(feature).numpy()
        for repeat in range(args.gram_repeats):
            order = ("fast", "explicit") if repeat % 2 == 0 else ("explicit", "fast")
            for name in order:
                function = fast if name == "fast" else explicit
                start = time.perf_counter()
                function(feature).numpy()
                times[name].append(time.perf_counter() - start)
        fast_s = statistics.median(times["fast"])
        explicit_s = statistics.median(times["explicit"])
        results[key] = {
            "shape": list(feature.shape),
            "fast_ms": 1000 * fast_s,
            "explicit_ms": 1000 * explicit_s,
            "ratio": fast_s / explicit_s,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.warmup < 0 or args.steps < 1 or args.gram_repeats < 1:
        print("error: --warmup must be >= 0, --steps and --gram-repeats >= 1", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    variants = time_variants(args)
    gram = time_gram(args)
    figures = {
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "steps": args.steps,
        "jit_compile": args.jit_compile,
        "load_average": [load_before, os.getloadavg()[0]],
        "wall_s": time.perf_counter() - start,
        "variants": variants,
        "gram": gram,
    }
    print(f"\nTrain step, {args.image_size} px, batch {args.batch_size}, weights=None, "
          f"median of {args.steps} interleaved rounds after {args.warmup} warm-up steps:")
    print(f"{'variant':<10} {'median s':>9} {'min s':>7} {'max s':>7} {'/ baseline':>11} "
          f"{'CPU s':>7} {'CPU / baseline':>15}")
    for variant, row in variants.items():
        print(f"{variant:<10} {row['median_s']:>9.2f} {row['min_s']:>7.2f} {row['max_s']:>7.2f} "
              f"{row['ratio']:>11.3f} {row['cpu_median_s']:>7.2f} {row['cpu_ratio']:>15.3f}")
    if "mclcr" in variants:
        verdict = "meets" if variants["mclcr"]["ratio"] <= GOAL else "misses"
        print(f"mclcr / baseline = {variants['mclcr']['ratio']:.3f} wall, "
              f"{variants['mclcr']['cpu_ratio']:.3f} CPU time ({verdict} goal <= {GOAL})")
    print("\nGramStyle O(HWC) vs explicit Gram (median ms):")
    for key, row in gram.items():
        print(f"{key} {tuple(row['shape'])}: {row['fast_ms']:.2f} vs {row['explicit_ms']:.2f} "
              f"-> ratio {row['ratio']:.3f}")
    print(f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} (shared machine)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
