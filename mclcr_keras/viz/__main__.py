"""Command line for the paper's figures: ``python -m mclcr_keras.viz {spectra,features,tsne}``.

Examples::

    python -m mclcr_keras.viz spectra --real frame.png --fake frame_df.png --out fig3.png --align
    python -m mclcr_keras.viz features --model runs/a/best.keras --images r.png f.png \\
        --titles real Deepfakes --out fig6.png
    python -m mclcr_keras.viz tsne --model runs/a/best.keras --records records/ffpp \\
        --split test --out fig7.png --max-points 1000

Bad input (missing file, no face, wrong model) prints one line on stderr and exits with 2 (the
codes of ``docs/cli.md``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mclcr_keras import cli
from mclcr_keras.errors import UsageError
from mclcr_keras.files import check_output_file


def build_parser() -> cli.Parser:
    parser = cli.make_parser(
        "viz",
        "Draw the MC-LCR paper's figures as PNG files: patch spectra (Fig. 3), "
        "block 1-3 feature maps (Fig. 6) and the t-SNE of F_E embeddings (Fig. 7).",
        verbose=False,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dpi", type=int, default=150, help="PNG resolution (default 150)")
    cli.add_verbose(common)
    sub = parser.add_subparsers(parser_class=cli.Parser, dest="command", required=True,
                                metavar="{spectra,features,tsne}")

    spectra = sub.add_parser(
        "spectra", parents=[common],
        help="Fig. 3: patch amplitude/phase spectra of a real face, its fake, residual",
        description="Fig. 3: patch-wise amplitude (log) and phase spectra of a real face, its "
        "fake and their residual, computed with the model's PatchSpectrum layer.",
    )
    spectra.add_argument("--real", required=True, help="real image (face crop or full frame)")
    spectra.add_argument("--fake", required=True, help="its fake, same size as --real")
    spectra.add_argument("--out", required=True, help="output PNG")
    spectra.add_argument("--align", action="store_true",
                         help="detect and align the face in the real frame and cut both images "
                         "with the same transform (use for full frames)")
    spectra.add_argument("--patch-size", type=int, default=16, help="patch side P (default 16)")
    spectra.add_argument("--image-size", type=int, default=256,
                         help="aligned crop size with --align (default 256)")
    spectra.add_argument("--names", nargs=2, default=("real", "fake"), metavar=("REAL", "FAKE"),
                         help="row labels, e.g. --names original Deepfakes")

    features = sub.add_parser(
        "features", parents=[common], help="Fig. 6: summed feature maps of Xception blocks 1-3",
        description="Fig. 6: for each image, the channel sum of |activations| of the taps b1, "
        "b2, b3 of an MC-LCR model.",
    )
    features.add_argument("--model", required=True, help="trained model (.keras)")
    features.add_argument("--images", required=True, nargs="+", help="face images (2-8 read best)")
    features.add_argument("--out", required=True, help="output PNG")
    features.add_argument("--titles", nargs="+", help="one label per image (default: file names)")
    features.add_argument("--align", action="store_true",
                          help="detect and align the face in each image first (full frames)")
    features.add_argument("--overlay", action="store_true", help="draw the maps over the faces")
    features.add_argument("--per-image-scale", action="store_true",
                          help="one colour scale per map instead of one per block")

    tsne = sub.add_parser(
        "tsne", parents=[common], help="Fig. 7: t-SNE of F_E embeddings coloured by method",
        description="Fig. 7: t-SNE of the F_E embeddings of a records split, at most "
        "--max-points faces sampled evenly per method.",
    )
    tsne.add_argument("--model", required=True, help="trained model (.keras)")
    tsne.add_argument("--records", required=True, help="records directory (from build_records)")
    tsne.add_argument("--split", default="test", help="split to embed (default test)")
    tsne.add_argument("--out", required=True, help="output PNG")
    tsne.add_argument("--max-points", type=int, default=1000, help="faces to embed (default 1000)")
    tsne.add_argument("--perplexity", type=float, default=None,
                      help="t-SNE perplexity (default min(30, (n - 1) / 3))")
    tsne.add_argument("--seed", type=int, default=0, help="t-SNE random_state (default 0)")
    tsne.add_argument("--batch-size", type=int, default=32)
    return parser


def _check_out(path: str) -> None:
    if not path.lower().endswith(".png"):
        raise UsageError(f"--out must be a .png file, received {path}")
    check_output_file(path, "--out")


def _spectra(args) -> str:
    from mclcr_keras.viz import plot_patch_spectra, read_rgb

    _check_out(args.out)
    real, fake = read_rgb(args.real), read_rgb(args.fake)
    return plot_patch_spectra(real, fake, args.out, patch_size=args.patch_size, align=args.align,
                              image_size=args.image_size, names=tuple(args.names), dpi=args.dpi)


def _features(args) -> str:
    from pathlib import Path

    from mclcr_keras.models.saving import model_image_size
    from mclcr_keras.viz import align_faces, load_model, plot_feature_maps, read_rgb

    _check_out(args.out)
    titles = args.titles or [Path(p).stem for p in args.images]
    if len(titles) != len(args.images):
        raise UsageError(f"--titles has {len(titles)} labels for {len(args.images)} images")
    images = [read_rgb(path) for path in args.images]
    model = load_model(args.model)
    if args.align:
        images = align_faces(images, args.images, model_image_size(model))
    return plot_feature_maps(model, images, args.out, titles=titles, overlay=args.overlay,
                             shared_scale=not args.per_image_scale, dpi=args.dpi)


def _tsne(args) -> str:
    from mclcr_keras.data.records import list_shards
    from mclcr_keras.viz import load_model, plot_tsne
    from mclcr_keras.viz._common import check_model_path

    _check_out(args.out)
    check_model_path(args.model)
    list_shards(args.records, args.split)  # a missing split fails before the model loads
    model = load_model(args.model)
    return plot_tsne(model, args.records, args.out, split=args.split, max_points=args.max_points,
                     perplexity=args.perplexity, random_state=args.seed,
                     batch_size=args.batch_size, dpi=args.dpi)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.viz``; returns the exit status."""
    commands = {"spectra": _spectra, "features": _features, "tsne": _tsne}

    def command(args) -> None:
        try:
            path = commands[args.command](args)
        except (ValueError, OSError) as error:  # unreadable image, no face, wrong model or split
            raise UsageError(cli.one_line(error)) from None
        print(f"wrote {path}")

    return cli.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
