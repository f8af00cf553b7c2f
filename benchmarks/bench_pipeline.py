"""Training pipeline throughput against bare decoding of the same records (goal: ratio >= 0.8).

Both read the same shards with the same parallelism and are timed side by side in one run, in
interleaved windows (median over windows):

- bare: TFRecordDataset(all shards, num_parallel_reads) -> parse -> decode_image -> batch;
- pipeline: ``make_dataset(records, split, batch_size)`` (training: balanced, shuffled, flipped,
  float32, header scan and per-shard record count check).

Without ``--records`` it writes synthetic 256 px PNG faces first: crops of the astronaut's face
(scikit-image sample data) with random scale, shift, rotation, source resolution, brightness and
light noise, so PNG size and decode cost are those of real aligned face crops (75-94 KB, mean
83 KB per image; build_records' 256 px crops of ffpp_mini measure 63-83 KB, mean 73 KB).

    python benchmarks/bench_pipeline.py                      # synthetic records, 256 px
    python benchmarks/bench_pipeline.py --records records/ffpp --split train
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time

logger = logging.getLogger(__name__)


def synthetic_face(rng, size: int):
    """A face crop like the converter's: the astronaut's face (a real photo) aligned with jitter."""
    import cv2
    import numpy as np
    from skimage import data

    photo = data.astronaut()  # face roughly at rows 20-220, columns 140-330
    centre = np.array([120.0, 235.0]) + rng.normal(0, 8, 2)
    side = 200 * rng.uniform(0.85, 1.2)
    angle = rng.uniform(-12, 12)
    matrix = cv2.getRotationMatrix2D((centre[1], centre[0]), angle, size / side)
    matrix[:, 2] += np.array([size / 2, size / 2]) - centre[::-1]
    crop = cv2.warpAffine(photo, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
    # Faces in 480p-1080p video are often smaller than the crop: resample through a random
    # smaller size, as the aligner's upscaling does, then a little codec noise.
    source = int(size / rng.uniform(1.5, 3.0))
    crop = cv2.resize(cv2.resize(crop, (source, source), interpolation=cv2.INTER_AREA),
                      (size, size), interpolation=cv2.INTER_LINEAR)
    crop = crop.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15)
    crop += rng.normal(0, 0.4, crop.shape)
    return np.clip(crop, 0, 255).astype(np.uint8)


def write_records(root: str, split: str, per_class: int, shards: int, size: int, seed: int) -> int:
    """Writes ``per_class`` synthetic faces per class into ``shards`` shards; returns bytes."""
    import numpy as np
    import tensorflow as tf

    from mclcr_keras.data import schema

    rng = np.random.default_rng(seed)
    split_dir = os.path.join(root, split)
    os.makedirs(split_dir, exist_ok=True)
    total = 0
    for label, name in enumerate(schema.LABEL_NAMES):
        for index in range(shards):
            path = os.path.join(split_dir, schema.shard_name(name, index, shards))
            with tf.io.TFRecordWriter(path) as writer:
                for i in range(index, per_class, shards):
                    png = schema.encode_image(synthetic_face(rng, size))
                    writer.write(schema.encode_example(png, label, f"{name}{i // 30:04d}",
                                                       "synthetic", "bench", i % 30))
            total += os.path.getsize(path)
    return total


def bare_decode(records: str, split: str, batch_size: int, num_parallel_reads: int):
    """The reference: read, parse and decode the same shards, nothing else."""
    import tensorflow as tf

    from mclcr_keras.data import schema
    from mclcr_keras.data.records import list_shards

    files = list_shards(records, split)

    def decode(record):
        return schema.decode_image(schema.parse_example(record)["image"])

    ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(num_parallel_reads, len(files)))
    ds = ds.repeat().map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def measure(datasets: dict, batch_size: int, batches: int, repeats: int, warmup: int) -> dict:
    """Per pipeline: images/s and CPU-ms per image in ``repeats`` interleaved windows.

    Each window runs on a fresh iterator, warmed up first and deleted afterwards: a paused
    tf.data iterator keeps decoding in the background until its buffers are full, which would
    steal CPU from the pipeline being timed and hand the paused one a head start. The order
    alternates (A B, B A, ...) so a drift in machine load hits both alike. CPU time is the whole
    process's (all tf.data threads), a figure that other programs on the machine barely move.
    """
    rates: dict[str, list[float]] = {name: [] for name in datasets}
    cpu_ms: dict[str, list[float]] = {name: [] for name in datasets}
    names = list(datasets)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            iterator = iter(datasets[name])
            for _ in range(warmup):
                next(iterator)
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(batches):
                next(iterator)
            images = batches * batch_size
            rates[name].append(images / (time.perf_counter() - start))
            cpu_ms[name].append(1000 * (time.process_time() - start_cpu) / images)
            del iterator
    return {"rates": rates, "cpu_ms": cpu_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", help="existing records root (default: write synthetic ones)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--per-class", type=int, default=600, help="synthetic images per class")
    parser.add_argument("--shards", type=int, default=4, help="synthetic shards per class")
    parser.add_argument("--size", type=int, default=256, help="synthetic and output image size")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=30, help="batches per timed window")
    parser.add_argument("--repeats", type=int, default=6, help="timed windows per pipeline")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batches per pipeline")
    parser.add_argument("--num-parallel-reads", type=int, default=8)
    parser.add_argument("--shuffle-buffer", type=int, default=1024)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from mclcr_keras.data import pipeline
    from mclcr_keras.data.records import count_records

    workdir = None
    try:
        records = args.records
        if records is None:
            workdir = tempfile.mkdtemp(prefix="bench_pipeline_")
            records = workdir
            start = time.perf_counter()
            size = write_records(records, args.split, args.per_class, args.shards, args.size, 0)
            logger.info("wrote %d synthetic %d px PNG faces (%.0f KB each) in %.1f s",
                        2 * args.per_class, args.size, size / 2 / args.per_class / 1024,
                        time.perf_counter() - start)
        counts = count_records(records, args.split)
        image_size = args.size
        train = pipeline.make_dataset(
            records, args.split, batch_size=args.batch_size, image_size=image_size,
            shuffle_buffer=args.shuffle_buffer, num_parallel_reads=args.num_parallel_reads,
        )
        bare = bare_decode(records, args.split, args.batch_size, args.num_parallel_reads)
        result = measure(
            {"bare_decode": bare, "pipeline": train},
            args.batch_size, args.batches, args.repeats, args.warmup,
        )
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f"bench_pipeline: error: {error}", file=sys.stderr)
        return 2
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"records: {counts}  batch {args.batch_size}  windows {args.repeats} x {args.batches} "
          f"batches  cpus {os.cpu_count()}  load average {load}  tf {tf.__version__}")
    rates, cpu_ms = result["rates"], result["cpu_ms"]
    median = statistics.median
    for name in ("bare_decode", "pipeline"):
        windows = " ".join(f"{r:.0f}" for r in rates[name])
        print(f"{name:12s} {median(rates[name]):7.1f} images/s median  "
              f"{median(cpu_ms[name]):6.2f} CPU-ms/image  (windows: {windows})")
    pair_ratios = [p / b for p, b in zip(rates["pipeline"], rates["bare_decode"])]
    ratio = median(rates["pipeline"]) / median(rates["bare_decode"])
    print(f"ratio pipeline / bare_decode images/s = {ratio:.3f} (median of window pairs "
          f"{median(pair_ratios):.3f}; goal >= 0.8)")
    cpu_ratio = median(cpu_ms["bare_decode"]) / median(cpu_ms["pipeline"])
    print(f"CPU efficiency bare CPU-ms / pipeline CPU-ms per image = {cpu_ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
