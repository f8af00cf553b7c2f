"""Serve a trained MC-LCR model over HTTP: an API scoring uploaded images and videos, a page.

    python -m mclcr_keras.serve --model runs/ffpp/best.keras
    MCLCR_SERVE_TOKEN=secret python -m mclcr_keras.serve --model serving/mclcr --host 0.0.0.0

The library is `mclcr_keras.serve`; the API, limits and security notes are in ``docs/serve.md``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence

from mclcr_keras import cli
from mclcr_keras.serve.settings import TOKEN_ENV, ServeSettings

DEFAULTS = ServeSettings(model="")


def build_parser() -> cli.Parser:
    parser = cli.make_parser(
        "serve",
        "Serve a trained MC-LCR model over HTTP. POST /v1/score takes one image or video "
        "(multipart field 'file') and answers the JSON report of predict for it; GET /v1/health; "
        "GET /v1/model; GET / is a page to drop a file on. Each worker process loads the model "
        "once; faces are detected and aligned exactly as predict does.",
        details="Binds to 127.0.0.1 unless --host says otherwise. Details: docs/serve.md.",
    )
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="a .keras model (training's best.keras) or a SavedModel written by "
                             "export (<base>/<version>, or <base> for the highest version)")
    parser.add_argument("--host", default=DEFAULTS.host,
                        help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULTS.port,
                        help="TCP port (default: %(default)s; 0: any free port, printed)")
    parser.add_argument("--token", default=None,
                        help=f"require 'Authorization: Bearer TOKEN' on /v1/score and /v1/model "
                             f"(default: ${TOKEN_ENV} if set, else no token; the variable keeps "
                             "the token out of the process list)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULTS.max_upload_mb,
                        help="largest upload in MiB, refused with 413 while reading "
                             "(default: %(default)g)")
    parser.add_argument("--max-concurrent", type=int, default=DEFAULTS.max_concurrent,
                        help="scorings at the same time = worker processes, each holding the "
                             "model (default: %(default)s)")
    parser.add_argument("--queue", type=int, default=DEFAULTS.queue,
                        help="requests that may wait for a worker; beyond, 503 with Retry-After "
                             "(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULTS.timeout,
                        help="seconds a scoring may take: 504 beyond, and the worker is ended "
                             "and replaced (also the limit for the upload and the wait for a "
                             "worker; default: %(default)g)")
    parser.add_argument("--frames", type=int, default=DEFAULTS.frames,
                        help="frames sampled evenly over each video (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                        help="face crops per model call (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="FAKE when the mean fake probability is > this (default: the "
                             "model's validation threshold, as predict)")
    parser.add_argument("--crop", default=DEFAULTS.crop, choices=("detect", "none"),
                        help="detect: find and align a face (default); none: uploads are aligned "
                             "face crops")
    parser.add_argument("--margin", type=float, default=DEFAULTS.margin,
                        help="crop side / face box side (default: %(default)s)")
    parser.add_argument("--min-track-frames", type=int, default=DEFAULTS.min_track_frames,
                        help="a video's face tracks seen in fewer sampled frames are dropped "
                             "(default: %(default)s, as predict)")
    parser.add_argument("--aggregate", default=DEFAULTS.aggregate, choices=("max", "mean"),
                        help="a file's probability from its tracks' (default: %(default)s)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULTS.max_pixels, metavar="N",
                        help="an image or video frame of more pixels is refused before decoding "
                             "(default: %(default)s, as predict)")
    parser.add_argument("--max-duration", type=float, default=DEFAULTS.max_duration,
                        metavar="SECONDS", help="a longer video is sampled over its first "
                                                "SECONDS (default: %(default)s, as predict)")
    parser.add_argument("--model-card", default=None, metavar="model_card.json",
                        help="model card shown by /v1/model (default: the one an export "
                             "carries, if any)")
    parser.add_argument("--upload-dir", default=None, metavar="DIR",
                        help="folder for the per-request temporary files, deleted when each "
                             "request is done (default: the system's temporary folder)")
    return parser


def settings_from_args(args) -> ServeSettings:
    values = {k: v for k, v in vars(args).items() if k != "verbose"}
    if values["token"] is None:
        values["token"] = os.environ.get(TOKEN_ENV) or None
    return ServeSettings(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.serve``; returns the exit status."""

    def command(args) -> int:
        from mclcr_keras.serve.server import run_server

        def ready(url: str) -> None:
            print(f"serve: listening on {url} (model {args.model}; Ctrl-C to stop)", flush=True)

        verbose = bool(args.verbose)
        initializers = (functools.partial(cli.configure_logging, verbose),
                        functools.partial(cli.import_tensorflow, verbose))
        run_server(settings_from_args(args), initializers, ready)
        return cli.EXIT_OK

    return cli.run(build_parser(), command, argv, tensorflow=False,
                   check=lambda args: settings_from_args(args).validate())


if __name__ == "__main__":
    sys.exit(main())
