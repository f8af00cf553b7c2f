"""Export a trained model as a SavedModel for TensorFlow Serving.

    python -m mclcr_keras.export --model runs/ffpp/best.keras --out serving/mclcr [--version N]

writes ``serving/mclcr/<N>/`` (TF Serving's ``<model_base>/<version>/`` layout) with the signatures
``serving_default`` (float pixels) and ``serving_bytes`` (encoded PNG/JPEG); the library is
`mclcr_keras.inference.export`, the contract ``docs/serving.md``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mclcr_keras import cli
from mclcr_keras.inference.serving_config import ServingOptions

DEFAULTS = ServingOptions()


def build_parser() -> cli.Parser:
    parser = cli.make_parser(
        "export",
        "Export a trained .keras model as a SavedModel for TensorFlow Serving, in the "
        "<model_base>/<version>/ layout. Signatures: serving_default (float pixels "
        "'images', (None, S, S, 3), RGB in [0, 255]) and serving_bytes (encoded PNG/JPEG "
        "'images_bytes', (None,) string); both return 'probability' and 'logit' (None,). "
        "Inputs are aligned face crops (see docs/serving.md).",
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
    parser.add_argument(
        "--model-card", default=None, metavar="FILE",
        help="a model_card.json written by evaluate, copied into the version's "
             "assets.extra/model_card.json",
    )
    tfs = parser.add_argument_group(
        "TF Serving files in the version's assets.extra/ (docs/serving.md)")
    tfs.add_argument(
        "--warmup-batch-sizes", default=",".join(map(str, DEFAULTS.warmup_batch_sizes)),
        metavar="N,N", help="batch sizes of the warm-up requests (tf_serving_warmup_requests; "
        "one per signature and size; needs tensorflow-serving-api), or none (default: %(default)s)")
    tfs.add_argument("--max-batch-size", type=int, default=DEFAULTS.max_batch_size,
                     help="batching_parameters.txt: largest batch, and largest request accepted "
                          "(default: %(default)s)")
    tfs.add_argument("--batch-timeout-micros", type=int, default=DEFAULTS.batch_timeout_micros,
                     help="batching_parameters.txt: wait for a fuller batch (default: %(default)s)")
    tfs.add_argument("--batch-threads", type=int, default=DEFAULTS.num_batch_threads,
                     help="batching_parameters.txt: num_batch_threads (and max_enqueued_batches); "
                          "set it to the serving host's cores (default: this machine's)")
    tfs.add_argument("--allowed-batch-sizes", default="none", metavar="N,N",
                     help="batching_parameters.txt: pad batches to these sizes, the last one "
                          "--max-batch-size (default: none, no padding)")
    tfs.add_argument("--stable-version", type=int, default=None,
                     help="models.config: the version labelled stable, the new one canary "
                          "(default: the highest other version)")
    tfs.add_argument("--serving-base-path", default=None, metavar="PATH",
                     help="models.config: base_path as the server sees it, e.g. /models/mclcr "
                          "(default: the absolute --out)")
    return parser


def serving_options(args) -> ServingOptions:
    """The `ServingOptions` of the parsed flags, validated (`UsageError`)."""
    from mclcr_keras.inference.serving_config import parse_sizes

    options = ServingOptions(
        warmup_batch_sizes=parse_sizes(args.warmup_batch_sizes, "--warmup-batch-sizes"),
        max_batch_size=args.max_batch_size, batch_timeout_micros=args.batch_timeout_micros,
        num_batch_threads=args.batch_threads,
        allowed_batch_sizes=parse_sizes(args.allowed_batch_sizes, "--allowed-batch-sizes"),
        stable_version=args.stable_version, serving_base_path=args.serving_base_path)
    options.validate()
    return options


def command(args) -> None:
    import json

    from mclcr_keras.errors import UsageError
    from mclcr_keras.inference import scorer
    from mclcr_keras.inference.card_asset import MODEL_CARD_ASSET
    from mclcr_keras.inference.export import METADATA_FILE, export_model
    from mclcr_keras.inference.warmup import INSTALL_HINT

    try:
        target = export_model(args.model, args.out, args.version, model_card=args.model_card,
                              serving=serving_options(args))
    except (FileNotFoundError, FileExistsError, ValueError) as error:  # model, version, file
        raise UsageError(str(error)) from None

    record = json.loads((target / METADATA_FILE).read_text())
    size, tfs = record["image_size"], record["tf_serving"]
    print(f"SavedModel written to {target}")
    if args.model_card:
        print(f"  model card: {target / MODEL_CARD_ASSET}")
    print(f"  warm-up requests: {target / tfs['warmup_requests']} (batch sizes "
          f"{tfs['warmup_batch_sizes']}, both signatures)" if tfs["warmup_requests"] else
          "  warm-up requests: none written" + ("" if args.warmup_batch_sizes.strip().lower()
                                                in ("", "none") else f" ({INSTALL_HINT})"))
    print(f"  batching: {target / tfs['batching_parameters']}; roll-out: "
          f"{target / tfs['models_config']} (stable {tfs['stable_version']})")
    print(f"  {scorer.PIXELS_SIGNATURE}: {scorer.PIXELS_INPUT} float32 (None, {size}, {size}, 3)"
          " -> probability, logit (None,)")
    print(f"  {scorer.BYTES_SIGNATURE}: {scorer.BYTES_INPUT} string (None,) PNG/JPEG"
          " -> probability, logit (None,)")
    print(f"Serve it: docker run -p 8501:8501 --mount type=bind,source={target.parent.resolve()},"
          f"target=/models/{target.parent.name} -e MODEL_NAME={target.parent.name} "
          "-t tensorflow/serving")


def check(args) -> None:
    """--out can be written and the model exists (before TensorFlow loads; `export_model` checks
    the rest)."""
    import os

    from mclcr_keras.errors import UsageError
    from mclcr_keras.files import check_output_dir

    check_output_dir(args.out, "--out")
    serving_options(args)
    if not os.path.exists(args.model):
        raise UsageError(f"model not found: {args.model}")
    if args.model_card is not None:
        from mclcr_keras.inference.card_asset import read_model_card

        try:
            read_model_card(args.model_card)
        except (FileNotFoundError, ValueError) as error:
            raise UsageError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.export``; returns the exit status."""
    return cli.run(build_parser(), command, argv, check=check)


if __name__ == "__main__":
    sys.exit(main())
