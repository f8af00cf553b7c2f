"""Write the small real/fake demo dataset: ``python -m mclcr_keras.demo_data OUT``.

    python -m mclcr_keras.demo_data demo/faces --videos-per-class 8 --frames-per-video 4

The dataset is made by `mclcr_keras.demo.data.make_demo_folder` (``docs/demo_data.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mclcr_keras import cli


def build_parser() -> cli.Parser:
    parser = cli.make_parser(
        "demo_data",
        "Write a small real/fake face dataset (frame folders) made from the public-domain photos "
        "shipped with matplotlib and scikit-image; fakes are self-blended images. Feed it to: "
        "python -m mclcr_keras.build_records folder --root OUT ...",
        details="Details: docs/demo_data.md.",
    )
    parser.add_argument("out", help="output folder (must not exist or be empty)")
    parser.add_argument("--videos-per-class", type=int, default=8,
                        help="videos per class and split (default 8)")
    parser.add_argument("--frames-per-video", type=int, default=4,
                        help="frames per video (default 4)")
    parser.add_argument("--size", type=int, default=320, help="frame side in pixels (default 320)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing demo folder")
    return parser


def command(args) -> None:
    from mclcr_keras.demo.data import make_demo_folder
    from mclcr_keras.errors import UsageError

    try:
        root = make_demo_folder(args.out, videos_per_class=args.videos_per_class,
                                frames_per_video=args.frames_per_video, image_size=args.size,
                                seed=args.seed, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as error:  # bad sizes, a folder in the way
        raise UsageError(str(error)) from None
    print(root)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.demo_data``; returns the exit status."""
    from mclcr_keras.files import check_output_dir

    return cli.run(build_parser(), command, argv, tensorflow=False,
                   check=lambda args: check_output_dir(args.out, "OUT"))


if __name__ == "__main__":
    sys.exit(main())
