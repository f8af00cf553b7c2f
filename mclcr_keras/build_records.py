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
``dataset.json``. The converter itself is `mclcr_keras.data.writer.build`; exit statuses are those
of ``docs/cli.md``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mclcr_keras import cli
from mclcr_keras.data.sources import SOURCES
from mclcr_keras.data.storage import ENGINES
from mclcr_keras.data.writer.options import MERGE, BuildOptions

DEFAULTS = BuildOptions(source="folder")


def build_parser() -> cli.Parser:
    parser = cli.make_parser(
        "build_records",
        "Turn a face-forgery dataset into sharded TFRecords of aligned face crops "
        "(30 frames per video, dlib detection, 5-point alignment, 256 px, lossless PNG). "
        "SOURCE is the layout of --root: ffpp (FaceForensics++ official layout), celebdf "
        "(Celeb-DF v2), dfdc (DFDC parts with metadata.json), folder "
        "(ROOT/[<split>/]<real|fake>/... of videos, images or frame folders). "
        "'merge' joins the outputs of --num-partitions runs under --out.",
        exits=(cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_USAGE, cli.EXIT_PARTIAL,
               cli.EXIT_INTERRUPTED),
        details="Failed inputs are listed in OUT/failures.csv. Details: docs/build_records.md, "
                "records/README.md.",
    )
    parser.add_argument("source", metavar="SOURCE", choices=SOURCES + (MERGE,),
                        help="ffpp | celebdf | dfdc | folder | merge")
    parser.add_argument("--root", help="dataset root folder (not needed for merge)")
    parser.add_argument("--out", required=True, help="output folder, e.g. records/ffpp")
    group = parser.add_argument_group("source options")
    group.add_argument("--compression", default=DEFAULTS.compression, choices=("c23", "c40", "raw"),
                       help="ffpp: which compression to read (default: %(default)s)")
    group.add_argument("--methods", default=DEFAULTS.methods,
                       help="ffpp: comma-separated methods (also FaceShifter, DeepFakeDetection; "
                            "default: %(default)s)")
    group.add_argument("--splits-dir",
                       help="ffpp: folder with the official train.json, val.json, test.json "
                            "(without it: a deterministic hash split of the pairs, 720/140/140); "
                            "celebdf: folder with List_of_testing_videos.txt (default: --root)")
    group.add_argument("--split-fractions", default=DEFAULTS.split_fractions,
                       help="train,val,test proportions of every hash-based split "
                            "(default: %(default)s, FF++'s official proportions)")
    group.add_argument("--dataset-name", default=DEFAULTS.dataset_name,
                       help="folder: the 'dataset' field of the records (default: %(default)s)")
    group = parser.add_argument_group("crop options")
    group.add_argument("--frames", type=int, default=DEFAULTS.frames,
                       help="frames sampled evenly over each video (default: %(default)s)")
    group.add_argument("--size", type=int, default=DEFAULTS.size,
                       help="crop side in pixels (default: %(default)s)")
    group.add_argument("--margin", type=float, default=DEFAULTS.margin,
                       help="crop side / face box side (default: %(default)s)")
    group.add_argument("--crop", default=DEFAULTS.crop, choices=("detect", "none"),
                       help="detect: find and align a face; none: inputs are already face "
                            "crops, only resized to --size (default: %(default)s)")
    group.add_argument("--image-format", default=DEFAULTS.image_format, choices=("png", "jpeg"),
                       help="encoding of the crops in the records (default: png, lossless)")
    group.add_argument("--jpeg-quality", type=int, default=DEFAULTS.jpeg_quality,
                       help="JPEG quality with --image-format jpeg (default: %(default)s)")
    group = parser.add_argument_group("run options")
    group.add_argument("--workers", type=int, default=DEFAULTS.workers,
                       help="worker processes (default: all cores, here %(default)s)")
    group.add_argument("--shard-mb", type=float, default=DEFAULTS.shard_mb,
                       help="target shard size in MB (default: 128)")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted build in --out (same options)")
    group.add_argument("--overwrite", action="store_true",
                       help="delete an existing build_records output in --out first")
    group.add_argument("--num-partitions", type=int, default=DEFAULTS.num_partitions,
                       help="split the inputs into K partitions (e.g. a Slurm array)")
    group.add_argument("--partition", type=int,
                       help="which partition (0..K-1) this run converts, into "
                            "OUT/parts/part-<i>-of-<K>; then run 'merge --out OUT'")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    group.add_argument("--engine", default=DEFAULTS.engine, choices=ENGINES,
                       help="local: worker processes on this machine (default); beam: an "
                            "Apache Beam pipeline, on Beam's local runner with --workers "
                            "processes or on the runner named after -- (docs/beam.md)")
    cli.accept_passthrough(parser, "Beam with --engine beam, e.g. -- --runner=DataflowRunner "
                                   "--project=P --region=R --temp_location=gs://B/tmp "
                                   "--setup_file=./setup.py")
    return parser


def options_from_args(args) -> BuildOptions:
    values = {key: value for key, value in vars(args).items() if key != "verbose"}
    return BuildOptions(**values)


def command(args) -> int:
    from mclcr_keras.data.writer import build

    options = options_from_args(args)
    if options.engine == "beam":
        from mclcr_keras.beam.options import require_beam

        require_beam()
        from mclcr_keras.beam import records

        info = records.build(options)
    else:
        info = build.build(options)
    print(build.summary(info, build.output_dir(options)))
    return cli.EXIT_PARTIAL if build.failed_inputs(info) else cli.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.build_records``; returns the exit status."""
    return cli.run(build_parser(), command, argv,
                   check=lambda args: options_from_args(args).validate(),
                   interrupted="rerun with --resume to finish")


if __name__ == "__main__":
    sys.exit(main())
