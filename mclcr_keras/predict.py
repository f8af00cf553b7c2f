"""Score images and videos with a trained MC-LCR model (``.keras`` file or exported SavedModel).

    python -m mclcr_keras.predict --model runs/ffpp/best.keras clip.mp4 face.jpg
    python -m mclcr_keras.predict --model serving/mclcr/1 videos/ --json predictions.json
    python -m mclcr_keras.predict --engine beam --model serving/mclcr/1 'videos/**' \
        --json-lines scores.jsonl [-- <Beam pipeline options>]

Faces are detected and aligned exactly as build_records does; the library is
`mclcr_keras.inference.predict` (``--engine beam``: `mclcr_keras.beam.scoring`), the report
format ``docs/predict.md``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mclcr_keras import cli
from mclcr_keras.data.storage import ENGINES
from mclcr_keras.errors import UsageError
from mclcr_keras.inference.predict import PredictOptions

DEFAULTS = PredictOptions(inputs=(), model="")
# Arguments of the tool that are not PredictOptions.
NOT_OPTIONS = ("verbose", "engine", "workers", cli.PASSTHROUGH)


def build_parser() -> cli.Parser:
    parser = cli.make_parser(
        "predict",
        "Score images and videos for face forgery with a trained MC-LCR model. Faces are "
        "aligned exactly as build_records aligns them (videos: --frames frames sampled "
        "evenly); every face is tracked across the frames, each track scored (mean over its "
        "frames), and the file called by its most suspicious track (--aggregate).",
        exits=(cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_USAGE, cli.EXIT_PARTIAL,
               cli.EXIT_INTERRUPTED),
        details="Files that cannot be scored (missing, unreadable, no face) get a row saying "
                "why. Details: docs/predict.md.",
    )
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="image or video files; a directory stands for the images and videos "
                             "under it (recursively, sorted); with --engine beam also globs and "
                             "gs:// paths ('clips/*.mp4', 'gs://b/videos/**')")
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="a .keras model (training's best.keras) or a SavedModel written by "
                             "export: its <base>/<version> directory, or <base> for the "
                             "highest version")
    parser.add_argument("--frames", type=int, default=DEFAULTS.frames,
                        help="frames sampled evenly over each video (default: %(default)s, as "
                             "build_records)")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                        help="face crops per model call (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="a file is FAKE when its fake probability is > this (default: "
                             "the threshold chosen on the validation split that the model "
                             "carries: best.threshold.json beside a .keras file, or an export's "
                             "metadata; 0.5 for a model without one)")
    parser.add_argument("--crop", default=DEFAULTS.crop, choices=("detect", "none"),
                        help="detect: find and align a face (default); none: inputs already are "
                             "aligned face crops, only resized to the model's input size")
    parser.add_argument("--margin", type=float, default=DEFAULTS.margin,
                        help="crop side / face box side; use the value the records were built "
                             "with (default: %(default)s)")
    parser.add_argument("--json", metavar="OUT.json",
                        help="also write a JSON report with per-track and per-frame scores to "
                             "this file (default: no JSON, table only)")
    parser.add_argument("--json-lines", metavar="OUT.jsonl",
                        help="also write each file's entry of the JSON report as one line of "
                             "this file, in input order, and the failed files to "
                             "OUT.failures.jsonl (required with --engine beam)")
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: score here, file after file (default); beam: an Apache "
                             "Beam pipeline (RunInference), on this machine's cores or on the "
                             "runner given after --")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="--engine beam on the local runner: worker processes (default: "
                             "all cores)")
    parser.add_argument("--min-track-frames", type=int, default=DEFAULTS.min_track_frames,
                        metavar="N",
                        help="drop a video's face tracks seen in fewer than N sampled frames "
                             "(capped at the frames sampled; not applied to images; "
                             "default: %(default)s)")
    parser.add_argument("--aggregate", default=DEFAULTS.aggregate, choices=("max", "mean"),
                        help="file probability from its tracks': max = the most suspicious face "
                             "(default), mean = their mean")
    parser.add_argument("--explain", metavar="DIR",
                        help="also write an explanation figure per scored file into DIR (best "
                             "frame, crop, Grad-CAM, frequency saliency per track; .keras only)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULTS.max_pixels, metavar="N",
                        help="refuse, before decoding, an image whose header declares more than "
                             "N pixels and a video whose frames are larger (default: "
                             "%(default)s = 50 MP)")
    parser.add_argument("--max-duration", type=float, default=DEFAULTS.max_duration,
                        metavar="SECONDS",
                        help="sample a longer video over its first SECONDS only (at most SECONDS "
                             "x fps frames decoded; default: %(default)s)")
    cli.accept_passthrough(parser, "Beam (--engine beam)")
    return parser


def options_from_args(args) -> PredictOptions:
    return PredictOptions(**{k: v for k, v in vars(args).items() if k not in NOT_OPTIONS})


def check(args) -> None:
    """The arguments' one-line errors, before TensorFlow is imported."""
    options = options_from_args(args)
    if args.engine == "beam":
        from mclcr_keras.beam.options import require_beam

        require_beam()
        from mclcr_keras.beam import scoring

        scoring.check(options, args.pipeline_args, args.workers, args.verbose)
        return
    if args.pipeline_args:
        raise UsageError(f"arguments after -- ({' '.join(args.pipeline_args)}) are Beam pipeline "
                         "options: they need --engine beam")
    if args.workers is not None:
        raise UsageError("--workers is for --engine beam")
    options.validate()


def main(argv: Sequence[str] | None = None, scorer=None) -> int:
    """Entry point of ``python -m mclcr_keras.predict``; returns the exit status.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).
        scorer: a `mclcr_keras.inference.scorer.Scorer` already loaded from ``--model``, used
            instead of loading it again (a program that scores several sets of inputs).
    """
    from mclcr_keras.inference import predict as scoring

    def command(args) -> int:
        options = options_from_args(args)
        if args.engine == "beam":
            from mclcr_keras.beam import scoring as beam_scoring

            files, failed = beam_scoring.score_files(options, args.pipeline_args, args.workers,
                                                     args.verbose)
            print(beam_scoring.summary(files, failed, options), flush=True)
            return cli.EXIT_PARTIAL if failed else cli.EXIT_OK
        results = scoring.predict(options, scorer)
        print(scoring.summary(results, options), flush=True)
        return cli.EXIT_PARTIAL if any(r.error for r in results) else cli.EXIT_OK

    return cli.run(build_parser(), command, argv, check=check)


if __name__ == "__main__":
    sys.exit(main())
