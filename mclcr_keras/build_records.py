"""Convert FaceForensics++, Celeb-DF v2, DFDC or a folder of videos/images into sharded TFRecords
of aligned face crops.

    python -m mclcr_keras.build_records ffpp --root /data/FF++ --out records/ffpp \\
        --splits-dir /data/FF++/splits
    python -m mclcr_keras.build_records celebdf --root /data/Celeb-DF-v2 --out records/celebdf
    python -m mclcr_keras.build_records dfdc --root /data/dfdc --out records/dfdc --resume
    python -m mclcr_keras.build_records folder --root my_faces --out records/mine --crop none
    # a Slurm array of K tasks, then one merge:
    python -m mclcr_keras.build_records ffpp ... --num-partitions K --partition $SLURM_ARRAY_TASK_ID
    python -m mclcr_keras.build_records merge --out records/ffpp

Output (``records/README.md``): ``OUT/<split>/<real|fake>-NNNNN-of-NNNNN.tfrecord``,
``manifest.csv`` (a row per frame), ``videos.csv`` (a row per input), ``failures.csv`` and
``dataset.json``. Exit status: 0 all inputs converted, 3 finished but some inputs failed (listed in
``failures.csv``), 2 nothing done (bad arguments, bad layout, output directory in the way).

Design (``docs/build_records.md``): worker processes (``spawn``) decode, detect, align and
PNG-encode; they never import TensorFlow. The parent serializes ``tf.train.Example``s, writes every
shard under a temporary name and journals it once durable, so ``--resume`` after a crash or
``kill -9`` ends with the same shards as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_FAILED_INPUTS = 3
SOURCES = ("ffpp", "celebdf", "dfdc", "folder")
WORK = ".work"
CONFIG = "config.json"
# Options that change the records: a resumed build must use the same values.
CONTENT_OPTIONS = ("source", "root", "compression", "methods", "splits_dir", "split_fractions",
                   "dataset_name", "frames", "size", "margin", "image_format", "jpeg_quality",
                   "crop", "shard_mb", "num_partitions", "partition")


class UsageError(Exception):
    """A problem the user must fix; printed as one line, exit status 2."""


# ------------------------------------------------------------------------------ arguments


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"build_records: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m mclcr_keras.build_records",
        description=(
            "Turn a face-forgery dataset into sharded TFRecords of aligned face crops "
            "(30 frames per video, dlib detection, 5-point alignment, 256 px, lossless PNG). "
            "SOURCE is the layout of --root: ffpp (FaceForensics++ official layout), celebdf "
            "(Celeb-DF v2), dfdc (DFDC parts with metadata.json), folder "
            "(ROOT/[<split>/]<real|fake>/... of videos, images or frame folders). "
            "'merge' joins the outputs of --num-partitions runs under --out."
        ),
        epilog=(
            "Exit status: 0 every input converted; 3 finished, but some inputs failed "
            "(see OUT/failures.csv); 2 nothing done (bad arguments or layout, or an output "
            "directory in the way). Details: docs/build_records.md, records/README.md."
        ),
    )
    parser.add_argument("source", metavar="SOURCE", choices=SOURCES + ("merge",),
                        help="ffpp | celebdf | dfdc | folder | merge")
    parser.add_argument("--root", help="dataset root folder (not needed for merge)")
    parser.add_argument("--out", required=True, help="output folder, e.g. records/ffpp")
    group = parser.add_argument_group("source options")
    group.add_argument("--compression", default="c23", choices=("c23", "c40", "raw"),
                       help="ffpp: which compression to read (default: c23)")
    group.add_argument("--methods", default="Deepfakes,Face2Face,FaceSwap,NeuralTextures",
                       help="ffpp: comma-separated methods (also FaceShifter, DeepFakeDetection; "
                            "default: %(default)s)")
    group.add_argument("--splits-dir",
                       help="ffpp: folder with the official train.json, val.json, test.json "
                            "(without it: a deterministic hash split of the pairs, 720/140/140); "
                            "celebdf: folder with List_of_testing_videos.txt (default: --root)")
    group.add_argument("--split-fractions", default="0.72,0.14,0.14",
                       help="train,val,test proportions of every hash-based split "
                            "(default: %(default)s, FF++'s official proportions)")
    group.add_argument("--dataset-name", default="folder",
                       help="folder: the 'dataset' field of the records (default: folder)")
    group = parser.add_argument_group("crop options")
    group.add_argument("--frames", type=int, default=30,
                       help="frames sampled evenly over each video (default: 30)")
    group.add_argument("--size", type=int, default=256, help="crop side in pixels (default: 256)")
    group.add_argument("--margin", type=float, default=1.3,
                       help="crop side / face box side (default: 1.3)")
    group.add_argument("--crop", default="detect", choices=("detect", "none"),
                       help="detect: find and align a face; none: inputs are already face "
                            "crops, only resized to --size (default: detect)")
    group.add_argument("--image-format", default="png", choices=("png", "jpeg"),
                       help="encoding of the crops in the records (default: png, lossless)")
    group.add_argument("--jpeg-quality", type=int, default=95,
                       help="JPEG quality with --image-format jpeg (default: 95)")
    group = parser.add_argument_group("run options")
    group.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="worker processes (default: all cores, here %(default)s)")
    group.add_argument("--shard-mb", type=float, default=128.0,
                       help="target shard size in MB (default: 128)")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted build in --out (same options)")
    group.add_argument("--overwrite", action="store_true",
                       help="delete an existing build_records output in --out first")
    group.add_argument("--num-partitions", type=int, default=1,
                       help="split the inputs into K partitions (e.g. a Slurm array)")
    group.add_argument("--partition", type=int,
                       help="which partition (0..K-1) this run converts, into "
                            "OUT/parts/part-<i>-of-<K>; then run 'merge --out OUT'")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    if args.source == "merge":
        return
    if not args.root:
        raise UsageError(f"--root is required for source {args.source}")
    if not os.path.isdir(args.root):
        raise UsageError(f"--root {args.root} is not a directory")
    if args.splits_dir is not None and not os.path.isdir(args.splits_dir):
        raise UsageError(f"--splits-dir {args.splits_dir} is not a directory")
    checks = [
        (args.frames >= 1, f"--frames must be >= 1, got {args.frames}"),
        (args.size >= 16, f"--size must be >= 16, got {args.size}"),
        (args.margin >= 1.0, f"--margin must be >= 1.0, got {args.margin}"),
        (args.workers >= 1, f"--workers must be >= 1, got {args.workers}"),
        (1 <= args.jpeg_quality <= 100, f"--jpeg-quality must be in 1..100, got "
                                        f"{args.jpeg_quality}"),
        (args.shard_mb > 0, f"--shard-mb must be > 0, got {args.shard_mb}"),
        (args.num_partitions >= 1, f"--num-partitions must be >= 1, got {args.num_partitions}"),
        (not (args.resume and args.overwrite), "--resume and --overwrite exclude each other"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    if args.num_partitions > 1 and args.partition is None:
        raise UsageError(f"--num-partitions {args.num_partitions} needs --partition "
                         f"0..{args.num_partitions - 1}")
    if args.partition is not None and not 0 <= args.partition < args.num_partitions:
        raise UsageError(f"--partition must be in 0..{args.num_partitions - 1}, "
                         f"got {args.partition}")


# ------------------------------------------------------------------ worker side (no TensorFlow)

_WORKER: dict = {}


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies (so ``kill -9`` of the CLI leaves no orphans)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def init_worker(options: dict, parent_pid: int | None = None, single_thread: bool = True) -> None:
    """Sets up a conversion process: the face aligner and the crop options.

    Args:
        options: ``frames``, ``size``, ``margin``, ``crop``, ``image_format``, ``jpeg_quality``.
        parent_pid: the CLI's pid; a worker exits when it is orphaned.
        single_thread: limit OpenCV to one thread (one process per core already).
    """
    if parent_pid is not None:
        _die_with_parent()
    import cv2

    if single_thread:
        cv2.setNumThreads(1)
    from mclcr_keras.data import faces

    _WORKER.clear()
    _WORKER.update(options)
    _WORKER["parent_pid"] = parent_pid
    _WORKER["aligner"] = faces.FaceAligner(size=options["size"], margin=options["margin"])


def _resize(rgb, size: int):
    import cv2

    height, width = rgb.shape[:2]
    if (height, width) == (size, size):
        return rgb
    shrink = size < max(height, width)
    return cv2.resize(rgb, (size, size),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _frames_of(kind: str, paths: Sequence[str], num_frames: int) -> Iterator[tuple[int, object]]:
    """(frame_index, rgb) of the sampled frames of a video, an image, or a folder of frames."""
    from mclcr_keras.data import video

    if kind == "video":
        yield from video.read_frames(paths[0], num_frames)
        return
    if kind == "image":
        yield 0, video.read_image(paths[0])
        return
    readable = 0
    for index in video.sample_indices(len(paths), num_frames):
        try:
            rgb = video.read_image(paths[index])
        except video.MediaError as error:
            logger.warning("%s: %s; frame skipped", paths[index], error)
            continue
        readable += 1
        yield index, rgb
    if not readable:
        raise video.MediaError(f"no readable image among the {len(paths)} frames of the folder")


def _failure_reason(error: Exception) -> str:
    first_line = (str(error).splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"


def crop_input(kind: str, paths: Sequence[str], aligner, num_frames: int,
               crop: str = "detect", size: int = 256) -> tuple[list[tuple], int, str | None]:
    """Aligned face crops of one input: the converter's per-input cropping (also `predict`'s).

    Args:
        kind: ``"video"``, ``"image"`` or ``"frames"`` (a folder of frame images).
        paths: the input's file(s), as in `mclcr_keras.data.sources.Item`.
        aligner: a `mclcr_keras.data.faces.FaceAligner` (unused with ``crop="none"``).
        num_frames: frames sampled evenly over a video or frame folder.
        crop: ``"detect"`` (detect, track and align one face) or ``"none"`` (resize whole frames).
        size: crop side with ``crop="none"`` (the aligner's size otherwise).

    Returns:
        ``(frames, sampled, failure)``: ``frames`` is ``[(frame_index, rgb uint8 (S, S, 3), box,
        landmarks)]`` with ``box``/``landmarks`` lists in frame pixels (``landmarks`` ``None``
        with ``crop="none"``); ``sampled`` the number of frames read; ``failure`` ``None`` or
        the reason the input gave no crop (then ``frames`` is empty).

    Example:

    >>> frames, sampled, failure = crop_input("video", ["clip.mp4"], FaceAligner(), 30)
    """
    from mclcr_keras.data import video

    frames: list[tuple] = []
    sampled = 0
    previous = None
    try:
        for index, rgb in _frames_of(kind, paths, num_frames):
            sampled += 1
            if crop == "none":
                image = _resize(rgb, size)
                box, landmarks = [0, 0, int(rgb.shape[1]), int(rgb.shape[0])], None
            else:
                face = aligner(rgb, previous)
                if face is None:
                    continue
                previous = face.box
                image, box = face.image, [int(v) for v in face.box]
                landmarks = [[float(x), float(y)] for x, y in face.landmarks]
            frames.append((int(index), image, box, landmarks))
    except video.MediaError as error:
        return [], sampled, str(error)
    except Exception as error:  # one odd input must not end a day-long job
        return [], sampled, _failure_reason(error)
    if not frames:
        return [], sampled, f"no face found in any of the {sampled} sampled frames"
    return frames, sampled, None


def convert_item(task: tuple[str, tuple[str, ...]]) -> dict:
    """Turns one input into encoded face crops (runs in a worker set up by `init_worker`).

    Args:
        task: ``(kind, paths)`` of a `mclcr_keras.data.sources.Item`.

    Returns:
        ``{"frames": [(frame_index, image_bytes, box, landmarks)], "sampled": n,
        "failure": None | reason}``; ``box``/``landmarks`` are lists (frame pixels).
    """
    from mclcr_keras.data import schema

    parent = _WORKER.get("parent_pid")
    if parent is not None and os.getppid() != parent:
        os._exit(1)  # orphaned: the CLI is gone
    kind, paths = task
    frames, sampled, failure = crop_input(kind, paths, _WORKER["aligner"], _WORKER["frames"],
                                          _WORKER["crop"], _WORKER["size"])
    if failure:
        return {"frames": [], "sampled": sampled, "failure": failure}
    try:
        encoded = [(index, schema.encode_image(image, _WORKER["image_format"],
                                               _WORKER["jpeg_quality"]), box, landmarks)
                   for index, image, box, landmarks in frames]
    except Exception as error:
        return {"frames": [], "sampled": sampled, "failure": _failure_reason(error)}
    return {"frames": encoded, "sampled": sampled, "failure": None}


# ------------------------------------------------------------------------------ parent side


def _crop_options(args: argparse.Namespace) -> dict:
    return {"frames": args.frames, "size": args.size, "margin": args.margin, "crop": args.crop,
            "image_format": args.image_format, "jpeg_quality": args.jpeg_quality}


def _start(tasks: list, args: argparse.Namespace) -> tuple[Iterator[dict], Callable[[], None]]:
    """Starts converting: returns the results in task order and a function that stops the work.

    With ``--workers 1`` (or a single task) the conversion runs lazily in this process;
    otherwise every task is submitted at once to ``spawn``ed worker processes, which start working
    before this call returns.
    """
    options = _crop_options(args)
    if args.workers == 1 or len(tasks) <= 1:
        init_worker(options, None, single_thread=False)
        return (convert_item(task) for task in tasks), lambda: None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # A worker that dies (e.g. a native crash) breaks the executor with an error instead of
    # hanging like multiprocessing.Pool; --resume then carries on from the journal.
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(min(args.workers, len(tasks)), mp_context=context,
                                   initializer=init_worker,
                                   initargs=(options, os.getpid(), True))
    results = executor.map(convert_item, tasks, chunksize=1)
    return results, lambda: executor.shutdown(wait=True, cancel_futures=True)


def _is_build_output(path: str) -> bool:
    from mclcr_keras.data import manifest

    return any(os.path.exists(os.path.join(path, name))
               for name in (WORK, manifest.DATASET_JSON, manifest.PARTS_DIR))


def _prepare_out(target: str, args: argparse.Namespace) -> None:
    if not os.path.isdir(target):
        if os.path.exists(target):
            raise UsageError(f"--out {target} exists and is not a directory")
        os.makedirs(target)
        return
    if not os.listdir(target):
        return
    if args.overwrite:
        if not _is_build_output(target):
            raise UsageError(f"refusing to delete {target}: it is not a build_records output")
        shutil.rmtree(target)
        os.makedirs(target)
        return
    if not args.resume:
        raise UsageError(f"output directory {target} is not empty; pass --resume to finish an "
                         f"interrupted build there or --overwrite to replace it")
    if not _is_build_output(target):
        raise UsageError(f"cannot resume in {target}: it is not a build_records output")


def _content_config(args: argparse.Namespace) -> dict:
    values = vars(args)
    config = {name: values[name] for name in CONTENT_OPTIONS}
    for name in ("root", "splits_dir"):
        if config[name]:
            config[name] = os.path.abspath(config[name])
    return config


def _check_resume_config(work_dir: str, config: dict) -> None:
    from mclcr_keras.data import manifest

    path = os.path.join(work_dir, CONFIG)
    if os.path.isfile(path):
        previous = manifest.read_json(path)
        changed = [name for name in CONTENT_OPTIONS if previous.get(name) != config.get(name)]
        if changed:
            name = changed[0]
            raise UsageError(
                f"cannot resume: --{name.replace('_', '-')} was {previous.get(name)!r}, now "
                f"{config.get(name)!r}; use the same options or a new --out")
    else:
        manifest.write_json(path, config)


def _rows(item, result: dict) -> tuple[dict, list[dict]]:
    from mclcr_keras.data import manifest

    common = {"split": item.split, "label": item.label, "dataset": item.dataset,
              "method": item.method, "compression": item.compression, "video_id": item.video_id}
    video = dict(common, key=item.key, input=item.input, frames_sampled=result["sampled"],
                 frames_with_face=len(result["frames"]),
                 status="failed" if result["failure"] else "ok")
    frames = [dict(common, frame_index=index, box=manifest.format_box(box),
                   landmarks=manifest.format_landmarks(landmarks))
              for index, _, box, landmarks in result["frames"]]
    return video, frames


def _summary(info: dict, out: str) -> str:
    totals = info["counts"]["totals"]
    inputs = totals["videos"] + totals["failed"]
    shards = sum(len(v) for by_label in info["shards"].values() for v in by_label.values())
    text = (f"build_records: converted {totals['videos']} of {inputs} inputs: "
            f"{totals['frames']} frames in {shards} shards under {out}; "
            f"{totals['failed']} failed")
    if totals["failed"]:
        text += f" (see {os.path.join(out, 'failures.csv')})"
    text += f"; {totals['frames_without_face']} sampled frames had no face"
    return text


def _exit_status(info: dict) -> int:
    return EXIT_FAILED_INPUTS if info["counts"]["totals"]["failed"] else EXIT_OK


def build(args: argparse.Namespace) -> int:
    """Runs a conversion (one partition, or the whole job) and returns the exit status."""
    from mclcr_keras.data import manifest, sources, splits

    try:
        fractions = splits.parse_fractions(args.split_fractions)
    except ValueError as error:
        raise UsageError(str(error)) from None
    options: dict = {"fractions": fractions}
    if args.source == "ffpp":
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        options.update(compression=args.compression, methods=methods,
                       splits_dir=args.splits_dir)
    elif args.source == "celebdf":
        options.update(splits_dir=args.splits_dir)
    elif args.source == "folder":
        options.update(dataset=args.dataset_name)
    try:
        items = sources.list_items(args.source, args.root, **options)
    except sources.SourceError as error:
        raise UsageError(str(error)) from None
    target = args.out
    if args.num_partitions > 1:
        target = manifest.partition_dir(args.out, args.partition, args.num_partitions)
    _prepare_out(target, args)
    if args.resume and os.path.isfile(os.path.join(target, manifest.DATASET_JSON)) \
            and not os.path.exists(os.path.join(target, WORK)):
        info = manifest.read_json(os.path.join(target, manifest.DATASET_JSON))
        print(_summary(info, target) + " (already complete)")
        return _exit_status(info)
    if args.num_partitions > 1:
        items = [i for i in items if splits.partition_of(i.key, args.num_partitions)
                 == args.partition]
    return _convert(items, target, args)


def _convert(items: list, target: str, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mclcr_keras.data import manifest, schema, shards

    work_dir = os.path.join(target, WORK)
    os.makedirs(work_dir, exist_ok=True)
    _check_resume_config(work_dir, _content_config(args))
    journal = shards.Journal(work_dir)
    if shards.is_finalizing(work_dir):  # interrupted while renaming: every input is done
        journal.close()
        return _finish(target, work_dir, journal, args, time.time())
    streams = shards.ShardStreams(work_dir, journal, int(args.shard_mb * (1 << 20)))
    todo = [item for item in items if item.key not in journal.done]
    if len(todo) < len(items):
        logger.info("resuming: %d of %d inputs already done", len(items) - len(todo), len(items))
    started = time.time()
    tasks = [(item.kind, item.paths) for item in todo]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), unit="video",
               disable=args.quiet, desc="build_records", dynamic_ncols=True)
    results, stop = _start(tasks, args)
    try:
        # TensorFlow loads with the first encode_example, while the workers already convert.
        for item, result in zip(todo, results):
            video, frames = _rows(item, result)
            if result["failure"]:
                logger.warning("%s: %s", item.input, result["failure"])
                streams.add_failure(video, {"input": item.input, "reason": result["failure"],
                                            **{k: video[k] for k in manifest.FAILURE_COLUMNS
                                               if k in video}})
            else:
                serialized = [schema.encode_example(image, item.label, item.video_id,
                                                    item.method, item.dataset, index)
                              for index, image, _, _ in result["frames"]]
                streams.add_video(item.split, item.label_name, video,
                                  list(zip(frames, serialized)))
            bar.update(1)
        streams.close()
    finally:
        stop()
        bar.close()
        journal.close()
    return _finish(target, work_dir, journal, args, started)


def _finish(target: str, work_dir: str, journal, args: argparse.Namespace,
            started: float) -> int:
    """Final shard names, tables, dataset.json; removes the work directory."""
    from mclcr_keras.data import manifest, schema, shards

    frames, videos, failures, shard_names = shards.finalize(target, work_dir, journal,
                                                           schema.shard_name)
    arguments = dict(_content_config(args), workers=args.workers)
    info = manifest.dataset_info(frames, videos, failures, shard_names, arguments,
                                 schema.SCHEMA_VERSION)
    # Conversion time of this run (after a resume: of the last run only).
    info["seconds"] = round(time.time() - started, 1)
    manifest.write_tables(target, frames, videos, failures, info)
    shutil.rmtree(work_dir)
    print(_summary(info, target))
    return _exit_status(info)


def merge(args: argparse.Namespace) -> int:
    """Merges the partitions under ``--out`` and returns the exit status."""
    from mclcr_keras.data import manifest, schema

    try:
        info = manifest.merge_partitions(args.out, schema.shard_name)
    except manifest.MergeError as error:
        raise UsageError(str(error)) from None
    print(_summary(info, args.out))
    return _exit_status(info)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.build_records``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        _check_arguments(args)
        if args.source == "merge":
            return merge(args)
        return build(args)
    except UsageError as error:
        print(f"build_records: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("build_records: interrupted; rerun with --resume to finish", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
