"""Score images and videos with a trained MC-LCR model (``.keras`` file or exported SavedModel).

    python -m mclcr_keras.predict --model runs/ffpp/best.keras clip.mp4 face.jpg
    python -m mclcr_keras.predict --model serving/mclcr/1 videos/ --json predictions.json

Every input goes through exactly the converter's cropping (``build_records.crop_input``): a video
gives ``--frames`` frames sampled evenly over its whole length, decoded sequentially, one face
tracked across them (dlib detection, 5-point similarity alignment, margin 1.3, crop side = the
model's input size); an image gives one frame. Each aligned crop is scored by the model, in
batches; the file's fake probability is the mean of its frame probabilities (the video-level
aggregation of ``mclcr_keras.metrics``), and it is called FAKE when that mean is ``> --threshold``.

Output: one table row per file on stdout (as soon as it is scored), a summary line, and with
``--json`` a JSON report with per-frame scores (``docs/predict.md``). A missing, unreadable or
faceless file gets a row saying why; the other files are still scored.

Exit status: 0 every file scored; 3 some files could not be scored (listed with their reason);
2 nothing scored (bad arguments, or the model cannot be loaded).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_FAILED_INPUTS = 3
VIDEO = "video"
IMAGE = "image"
# cropper(kind, paths) -> (frames, sampled, failure), see make_cropper.
Cropper = Callable[[str, tuple[str, ...]], tuple]


class UsageError(Exception):
    """A problem the user must fix; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"predict: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m mclcr_keras.predict",
        description=(
            "Score images and videos for face forgery with a trained MC-LCR model. Faces are "
            "detected and aligned exactly as build_records does (videos: --frames frames sampled "
            "evenly, one tracked face); each aligned crop is scored and the file's fake "
            "probability is the mean over its frames."
        ),
        epilog=(
            "Exit status: 0 every file scored; 3 some files could not be scored (missing, "
            "unreadable, no face: see their rows); 2 nothing done (bad arguments or model). "
            "Details: docs/predict.md."
        ),
    )
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="image or video files; a directory stands for the images and videos "
                             "under it (recursively, sorted)")
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="a .keras model (train.py's best.keras) or a SavedModel written by "
                             "export.py: its <base>/<version> directory, or <base> for the "
                             "highest version")
    parser.add_argument("--frames", type=int, default=30,
                        help="frames sampled evenly over each video (default: 30, as "
                             "build_records)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="face crops per model call (default: 16)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="a file is FAKE when its mean fake probability is > this "
                             "(default: 0.5)")
    parser.add_argument("--crop", default="detect", choices=("detect", "none"),
                        help="detect: find and align a face (default); none: inputs already are "
                             "aligned face crops, only resized to the model's input size")
    parser.add_argument("--margin", type=float, default=1.3,
                        help="crop side / face box side; use the value the records were built "
                             "with (default: 1.3)")
    parser.add_argument("--json", metavar="OUT.json",
                        help="also write a JSON report with per-frame scores to this file "
                             "(default: no JSON, table only)")
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    checks = [
        (args.frames >= 1, f"--frames must be >= 1, got {args.frames}"),
        (args.batch_size >= 1, f"--batch-size must be >= 1, got {args.batch_size}"),
        (0.0 <= args.threshold <= 1.0, f"--threshold must be in [0, 1], got {args.threshold}"),
        (args.margin >= 1.0, f"--margin must be >= 1.0, got {args.margin}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    if not os.path.exists(args.model):
        raise UsageError(f"--model {args.model} does not exist")
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise UsageError(f"--json {args.json}: folder {folder} does not exist")
        if os.path.isdir(args.json):
            raise UsageError(f"--json {args.json} is a directory")


# ------------------------------------------------------------------------------ inputs


@dataclasses.dataclass
class FileResult:
    """The outcome for one input file (one row of the table, one entry of the JSON)."""

    path: str
    kind: str | None = None
    probability: float | None = None
    label: str | None = None
    frames_sampled: int = 0
    faces_found: int = 0
    frame_scores: list[dict] = dataclasses.field(default_factory=list)
    error: str | None = None

    @property
    def frames_scored(self) -> int:
        return len(self.frame_scores)

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "kind": self.kind,
            "status": "failed" if self.error else "ok",
            "probability": self.probability,
            "label": self.label,
            "frames_sampled": self.frames_sampled,
            "faces_found": self.faces_found,
            "frames_scored": self.frames_scored,
            "frame_scores": self.frame_scores,
            "error": self.error,
        }


def media_kind(path: str) -> str | None:
    """``"video"`` or ``"image"`` from the file extension; ``None`` when it is neither."""
    from mclcr_keras.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    suffix = os.path.splitext(path)[1].lower()
    if suffix in VIDEO_EXTENSIONS:
        return VIDEO
    if suffix in IMAGE_EXTENSIONS:
        return IMAGE
    return None


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """The input paths with every directory replaced by the images and videos under it.

    Files given explicitly are kept whatever their extension (they get a row, scored or not); a
    directory contributes its media files recursively, sorted, and stays as itself (to be reported
    as failed) when it holds none. Duplicates are dropped, first occurrence kept.

    Example:
        >>> expand_inputs(["clip.mp4", "missing.png"])
        ['clip.mp4', 'missing.png']
    """
    paths: list[str] = []
    for item in inputs:
        if not os.path.isdir(item):
            paths.append(item)
            continue
        found = []
        for folder, subfolders, files in os.walk(item):
            subfolders.sort()
            found.extend(os.path.join(folder, name) for name in sorted(files)
                         if media_kind(name) is not None)
        paths.extend(found or [item])
    return list(dict.fromkeys(paths))


# ------------------------------------------------------------------------------ cropping


def make_cropper(args: argparse.Namespace, size: int) -> Cropper:
    """``cropper(kind, paths)``: `build_records.crop_input` with the options of ``args``, a
    `FaceAligner` of the model's input ``size`` and ``--margin``."""
    from mclcr_keras import build_records
    from mclcr_keras.data.faces import FaceAligner

    aligner = FaceAligner(size=size, margin=args.margin)
    return functools.partial(build_records.crop_input, aligner=aligner, num_frames=args.frames,
                             crop=args.crop, size=size)


def crop_file(path: str, cropper: Cropper) -> tuple[FileResult, list]:
    """Sampled frames -> aligned face crops of one file, with the converter's own function.

    Args:
        path: an image or video file.
        cropper: see `make_cropper`.

    Returns:
        ``(result, crops)``: ``result`` has ``kind``, ``frames_sampled``, ``faces_found`` and
        ``error`` filled in; ``crops`` is ``[(frame_index, rgb uint8, box), ...]``.
    """
    result = FileResult(path=path)
    if not os.path.exists(path):
        result.error = "file not found"
        return result, []
    if os.path.isdir(path):
        result.error = "directory holds no image or video files"
        return result, []
    kind = media_kind(path)
    # An unknown extension: try it as an image, then as a video.
    kinds = [kind] if kind else [IMAGE, VIDEO]
    for candidate in kinds:
        frames, sampled, failure = cropper(candidate, (path,))
        if not failure or sampled:
            break
    if kind is None and failure and not sampled:
        result.error = "not a decodable image or video (unknown extension)"
        return result, []
    result.kind = candidate
    result.frames_sampled = sampled
    result.faces_found = len(frames)
    if failure:
        result.error = failure
        return result, []
    return result, [(index, rgb, box) for index, rgb, box, _ in frames]


# ------------------------------------------------------------------------------ scoring


def score_crops(scorer, images, batch_size: int):
    """Fake probabilities and logits, ``(N,)`` each, of ``(N, S, S, 3)`` uint8 face crops."""
    import numpy as np

    return scorer.predict(np.asarray(images, dtype=np.float32), batch_size=batch_size)


def score_file(path: str, cropper: Cropper, scorer, batch_size: int,
               threshold: float) -> FileResult:
    """Crop one file as build_records does and score it: mean of the frame probabilities."""
    import numpy as np

    result, crops = crop_file(path, cropper)
    if result.error:
        return result
    probabilities, logits = score_crops(scorer, np.stack([c[1] for c in crops]), batch_size)
    result.frame_scores = [
        {"frame_index": index, "probability": float(p), "logit": float(z), "box": box}
        for (index, _, box), p, z in zip(crops, probabilities, logits)
    ]
    result.probability = float(np.mean(probabilities))
    result.label = "FAKE" if result.probability > threshold else "REAL"
    return result


# ------------------------------------------------------------------------------ output


class Table:
    """Rows printed as files are scored: file, verdict, probability, frames, faces, status."""

    def __init__(self, paths: Sequence[str], stream=None):
        self.stream = stream or sys.stdout
        self.width = max([len("FILE")] + [len(p) for p in paths])

    def _line(self, *cells: str) -> None:
        file, verdict, probability, scored, faces, status = cells
        print(f"{file:<{self.width}}  {verdict:<7}  {probability:>7}  {scored:>6}  {faces:>13}  "
              f"{status}", file=self.stream, flush=True)

    def header(self) -> None:
        self._line("FILE", "VERDICT", "P(FAKE)", "SCORED", "FACES/SAMPLED", "STATUS")

    def row(self, result: FileResult) -> None:
        faces = f"{result.faces_found}/{result.frames_sampled}"
        if result.error:
            self._line(result.path, "-", "-", "0", faces, f"failed: {result.error}")
        else:
            self._line(result.path, result.label, f"{result.probability:.4f}",
                       str(result.frames_scored), faces, "ok")


def write_json(path: str, results: Sequence[FileResult], args: argparse.Namespace,
               image_size: int) -> None:
    """The JSON report: options, a summary, and one entry per file (``docs/predict.md``)."""
    report = {
        "model": args.model,
        "threshold": args.threshold,
        "frames": args.frames,
        "crop": args.crop,
        "margin": args.margin,
        "image_size": image_size,
        "summary": {"files": len(results),
                    "scored": sum(r.error is None for r in results),
                    "failed": sum(r.error is not None for r in results)},
        "files": [r.to_json() for r in results],
    }
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)


def _load(model: str):
    """The model as a scorer (``mclcr_keras.serving.load_scorer``); any failure is a UsageError."""
    from mclcr_keras.serving import load_scorer

    try:
        return load_scorer(model)
    except Exception as error:  # any loader failure is one line for the user
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UsageError(f"cannot load --model {model}: {reason}") from None


def predict(args: argparse.Namespace, scorer=None) -> int:
    """Scores every input of ``args`` and returns the exit status (see :func:`main`)."""
    paths = expand_inputs(args.inputs)
    if scorer is None:
        scorer = _load(args.model)
    image_size = int(scorer.image_size)
    cropper = make_cropper(args, image_size)
    table = Table(paths)
    table.header()
    results = []
    for path in paths:
        try:
            result = score_file(path, cropper, scorer, args.batch_size, args.threshold)
        except Exception as error:  # one odd file must not end the run
            logger.debug("scoring %s failed", path, exc_info=True)
            reason = (str(error).strip().splitlines() or [""])[0]
            result = FileResult(path=path, error=f"{type(error).__name__}: {reason}")
        table.row(result)
        results.append(result)
    failed = [r for r in results if r.error]
    summary = f"predict: scored {len(results) - len(failed)} of {len(results)} files"
    if failed:
        summary += f"; {len(failed)} failed"
    if args.json:
        write_json(args.json, results, args, image_size)
        summary += f"; JSON report in {args.json}"
    print(summary, flush=True)
    return EXIT_FAILED_INPUTS if failed else EXIT_OK


def main(argv: Sequence[str] | None = None, scorer=None) -> int:
    """Entry point of ``python -m mclcr_keras.predict``; returns the exit status.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).
        scorer: a ``mclcr_keras.serving.Scorer`` already loaded from ``--model``, used instead
            of loading it again (a program that scores several sets of inputs in one process).

    Example:
        >>> main(["--model", "runs/ffpp/best.keras", "clip.mp4"])  # doctest: +SKIP
        0
    """
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        _check_arguments(args)
        return predict(args, scorer)
    except UsageError as error:
        print(f"predict: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("predict: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
