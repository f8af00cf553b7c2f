"""Train-step time with and without XLA (`train --jit-compile`), side by side in one run.

For each image size, one process builds the same MC-LCR twice with the training loop's
`mclcr_keras.training.loop.build_model` (random weights, the paper's AdamW), once with
``jit_compile`` and once without, and feeds both the same balanced batch through their compiled
`train_on_batch` step. The first step of each (trace, and for XLA the compilation) is timed on
its own; after untimed warm-up steps the two step in interleaved rounds whose order alternates,
so background load on a shared machine hits both alike. Reports the median step in wall and in
CPU time (all threads) and the ratio XLA / default per size, and checks that the first step's
loss agrees (dropout off in this benchmark: XLA draws other dropout masks, docs/training.md).
Then it times single layers of Xception's kind (forward + gradients, with and without XLA) to
show where the difference comes from.

    python benchmarks/bench_jit.py                                  # 64 and 128 px, batch 16
    python benchmarks/bench_jit.py --sizes 64 128 --warmup 2 --steps 7 --json jit_bench.json
    python benchmarks/bench_jit.py --layers-only                    # the per-layer part only
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time

import common

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="MC-LCR train-step time with XLA (--jit-compile) / without, per image size.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128],
                        help="image sizes in pixels, multiples of 16 (default: 64 128)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--variant", default="mclcr")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
    parser.add_argument("--steps", type=int, default=7, help="timed interleaved rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers-only", action="store_true",
                        help="only time the single layers (no model)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser


def time_layers(repeats: int = 5) -> dict[str, dict[str, float]]:
    """Median ms of forward + gradients of one layer on 16 x 32 x 32 x 256, default vs XLA."""
    import keras
    import tensorflow as tf

    x = tf.random.uniform((16, 32, 32, 256), seed=1)
    layers = {
        "DepthwiseConv2D 3x3": keras.layers.DepthwiseConv2D(3, padding="same"),
        "Conv2D 3x3 256->256": keras.layers.Conv2D(256, 3, padding="same"),
        "Conv2D 1x1 256->256": keras.layers.Conv2D(256, 1),
        "BatchNormalization": keras.layers.BatchNormalization(),
    }
    results = {}
    for name, layer in layers.items():
        layer.build(x.shape)

        def step(images, layer=layer):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(images, training=True) ** 2)
            return tape.gradient(loss, layer.trainable_variables)

        row = {}
        for key, jit in (("default_ms", False), ("xla_ms", True)):
            function = tf.function(step, jit_compile=jit)
            function(x)  # trace (and compile)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                [g.numpy() for g in function(x)]
                times.append(time.perf_counter() - start)
            row[key] = 1000 * statistics.median(times)
        row["ratio"] = row["xla_ms"] / row["default_ms"]
        results[name] = row
    return results


def _batch(image_size: int, batch_size: int, seed: int):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    labels = np.arange(batch_size) % 2  # real, fake, real, ...: as the training stream
    return tf.constant(images), tf.constant(labels.astype("float32"))


def time_size(image_size: int, args) -> dict:
    import keras
    import tensorflow as tf

    from mclcr_keras.models import MCLCRConfig
    from mclcr_keras.training.loop import build_model

    values = MCLCRConfig(image_size=image_size, weights=None, variant=args.variant,
                         dropout=0.0).to_dict()
    images, labels = _batch(image_size, args.batch_size, args.seed)
    models, first = {}, {}
    for name, jit in (("default", False), ("xla", True)):
        keras.utils.set_random_seed(args.seed)
        model = build_model(values, "", None, tf.distribute.get_strategy(), jit_compile=jit)
        assert bool(model.jit_compile) is jit, (name, model.jit_compile)
        start = time.perf_counter()
        logs = model.train_on_batch(images, labels, return_dict=True)
        first[name] = {"seconds": time.perf_counter() - start, "loss": float(logs["loss"])}
        logger.info("%d px %s: first step (trace%s) %.1f s, loss %.6f", image_size, name,
                    " + XLA compile" if jit else "", first[name]["seconds"], first[name]["loss"])
        models[name] = model

    def step(name: str) -> tuple[float, float]:
        return common.timed_train_step(models[name], images, labels)

    for _ in range(args.warmup):
        for name in models:
            step(name)
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for round_index in range(args.steps):
        for name in (("default", "xla") if round_index % 2 == 0 else ("xla", "default")):
            seconds, cpu_seconds = step(name)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
        logger.info("%d px round %d: %s", image_size, round_index,
                    {n: round(t[-1], 3) for n, t in wall.items()})
    rows = {name: {"median_s": statistics.median(wall[name]), "min_s": min(wall[name]),
                   "max_s": max(wall[name]), "cpu_median_s": statistics.median(cpu[name]),
                   "first_step_s": first[name]["seconds"], "first_loss": first[name]["loss"]}
            for name in models}
    return {
        "rows": rows,
        "ratio": rows["xla"]["median_s"] / rows["default"]["median_s"],
        "cpu_ratio": rows["xla"]["cpu_median_s"] / rows["default"]["cpu_median_s"],
        "first_loss_rel_diff": abs(first["xla"]["loss"] - first["default"]["loss"])
        / abs(first["default"]["loss"]),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.warmup < 0 or args.steps < 1 or any(s % 16 or s < 32 for s in args.sizes):
        print("error: --warmup must be >= 0, --steps >= 1, --sizes multiples of 16 >= 32",
              file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    sizes = {} if args.layers_only else {size: time_size(size, args) for size in args.sizes}
    layers = time_layers()
    figures = {
        "machine": f"{_cpu_name()}, {os.cpu_count()} CPU cores, "
                   f"{len(tf.config.list_physical_devices('GPU'))} GPU",
        "tensorflow": tf.__version__,
        "variant": args.variant,
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "steps": args.steps,
        "load_average": [load_before, os.getloadavg()[0]],
        "wall_s": time.perf_counter() - start,
        "sizes": sizes,
        "layers": layers,
    }
    if sizes:
        print(f"\nTrain step of {args.variant}, batch {args.batch_size}, weights=None, dropout "
              f"0; median of {args.steps} interleaved rounds after {args.warmup} warm-up steps:")
        print(f"{'size':>5} {'default s':>10} {'XLA s':>8} {'XLA / default':>14} "
              f"{'CPU ratio':>10} {'first step s (default / XLA)':>30} "
              f"{'1st-loss rel diff':>18}")
    for size, row in sizes.items():
        d, x = row["rows"]["default"], row["rows"]["xla"]
        firsts = f"{d['first_step_s']:.1f} / {x['first_step_s']:.1f}"
        print(f"{size:>5} {d['median_s']:>10.3f} {x['median_s']:>8.3f} {row['ratio']:>14.3f} "
              f"{row['cpu_ratio']:>10.3f} {firsts:>30} {row['first_loss_rel_diff']:>18.2e}")
    print("\nOne layer, forward + gradients, 16 x 32 x 32 x 256 (median ms):")
    for name, row in layers.items():
        print(f"{name:<22} default {row['default_ms']:8.1f}  XLA {row['xla_ms']:8.1f}  "
              f"ratio {row['ratio']:6.2f}")
    print(f"{figures['machine']}; TensorFlow {tf.__version__}; load average "
          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
