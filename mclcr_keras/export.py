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
    return parser


def command(args) -> None:
    import json

    from mclcr_keras.errors import UsageError
    from mclcr_keras.inference import scorer
    from mclcr_keras.inference.card_asset import MODEL_CARD_ASSET
    from mclcr_keras.inference.export import METADATA_FILE, export_model

    try:
        target = export_model(args.model, args.out, args.version, model_card=args.model_card)
    except (FileNotFoundError, FileExistsError, ValueError) as error:  # model, version, file
        raise UsageError(str(error)) from None

    size = json.loads((target / METADATA_FILE).read_text())["image_size"]
    print(f"SavedModel written to {target}")
    if args.model_card:
        print(f"  model card: {target / MODEL_CARD_ASSET}")
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
