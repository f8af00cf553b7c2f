"""Evaluate a trained model on one or several record sets (the field's protocol).

    python -m mclcr_keras.evaluate --model runs/ffpp/best.keras \\
        --records records/ffpp --records records/celebdf --split test --out runs/ffpp/eval

writes ``metrics.json``, ``predictions.csv``, ``val_predictions.csv`` (the val frames the
threshold is chosen on), ``roc.png``, ``reliability.png``, ``model_card.json`` and
``model_card.md``, with several record sets ``cross_dataset.csv``, and with ``--compare-paper``
``paper_comparison.csv``, with ``--perturb`` ``robustness.csv`` and ``robustness.png``
(`mclcr_keras.evaluation.report`; ``docs/evaluation.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mclcr_keras import cli
from mclcr_keras.evaluation.options import DEFAULTS, EvaluateOptions


def build_parser() -> cli.Parser:
    parser = cli.make_parser(
        "evaluate",
        "Score every frame of a split of one or several record sets and write metrics.json "
        "(frame ACC/AUC/EER/AP with Brier score and ECE, video AUC/ACC at a threshold chosen on "
        "the val split and at 0.5, bootstrap 95% "
        "intervals of both AUCs, per-method AUC), predictions.csv (one row per frame), "
        "val_predictions.csv (the val frames the threshold is chosen on), roc.png, "
        "reliability.png, and with several --records a cross-dataset table (cross_dataset.csv). "
        "See docs/evaluation.md.",
    )
    parser.add_argument(
        "--model", required=True,
        help="a .keras file or an exported SavedModel (serving/mclcr or serving/mclcr/<version>)",
    )
    parser.add_argument(
        "--records", required=True, action="extend", nargs="+", metavar="DIR",
        help="record set root(s) from build_records; repeat (or list several) for a "
             "cross-dataset table, e.g. --records records/ffpp --records records/celebdf",
    )
    parser.add_argument(
        "--split", default=DEFAULTS.split,
        help="split to evaluate (default: %(default)s). Select checkpoints on val, during "
             "training",
    )
    parser.add_argument("--out", required=True, help="output directory for the report files")
    parser.add_argument(
        "--name", action="extend", nargs="+", default=None, metavar="NAME",
        help="one display name per --records, in order (default: the directory names)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                        help="frames per model call (default: %(default)s)")
    parser.add_argument(
        "--threshold", type=float, default=DEFAULTS.threshold,
        help="a fixed probability above which a frame/video counts as fake, for ACC; no val "
             "scoring (default: chosen on the val split of the first --records, or of "
             "--threshold-records, and applied to every record set)",
    )
    parser.add_argument(
        "--threshold-criterion", default=DEFAULTS.threshold_criterion, metavar="CRITERION",
        help="how the threshold is chosen on val: eer (where FPR = FNR) or balanced_acc "
             "(highest balanced accuracy) (default: %(default)s)",
    )
    parser.add_argument(
        "--threshold-records", default=DEFAULTS.threshold_records, metavar="DIR",
        help="record set whose val split sets the threshold (default: the first --records); "
             "its val scores go to val_predictions.csv",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=DEFAULTS.bootstrap, metavar="N",
        help="resamples of the 95%% intervals of frame and video AUC; videos are resampled "
             "(real and fake separately), 0 turns the intervals off (default: %(default)s)",
    )
    parser.add_argument(
        "--bootstrap-seed", type=int, default=DEFAULTS.bootstrap_seed, metavar="SEED",
        help="seed of the bootstrap resamples (default: %(default)s)",
    )
    parser.add_argument(
        "--perturb", action="extend", nargs="+", default=None, metavar="SPEC",
        help="robustness sweep: score every record set again under each NAME:S1,S2,... and "
             "write robustness.csv and robustness.png; jpeg:Q (quality 1-100), blur:SIGMA "
             "(pixels, <= 32), noise:SIGMA (0-255 units), resize:F (0 < F < 1, down and back "
             "up), h264:CRF (0-51, needs PyAV), e.g. --perturb jpeg:90,70,50,30 blur:1,2,3 "
             "noise:5,10,20 resize:0.5,0.25",
    )
    parser.add_argument(
        "--compare-paper", action="store_true",
        help="print each number of the run beside the paper's (Wang et al. 2022, Tables 3-6; "
             "FF++ c40 of one method -> Table 3, FF++ c23/c40 of the four methods -> Tables 4-5, "
             "Celeb-DF -> Tables 4 and 6; the model's variant picks the rows) and write "
             "paper_comparison.csv",
    )
    return parser


def options_from_args(args) -> EvaluateOptions:
    return EvaluateOptions(split=args.split, batch_size=args.batch_size,
                           threshold=args.threshold,
                           threshold_criterion=args.threshold_criterion,
                           threshold_records=args.threshold_records, bootstrap=args.bootstrap,
                           bootstrap_seed=args.bootstrap_seed,
                           perturb=tuple(args.perturb or DEFAULTS.perturb),
                           compare_paper=args.compare_paper)


def command(args) -> None:
    import dataclasses

    import pandas as pd
    import tensorflow as tf

    from mclcr_keras.errors import UsageError, op_error_summary
    from mclcr_keras.evaluation import report as reporting
    from mclcr_keras.evaluation.val_threshold import describe

    try:
        report = reporting.evaluate(
            args.model, args.records, args.out, names=args.name,
            **dataclasses.asdict(options_from_args(args)),
        )
    except (FileNotFoundError, ValueError) as error:  # checked before any frame is scored
        raise UsageError(cli.one_line(error)) from None
    except tf.errors.OpError as error:  # e.g. a corrupt shard found while scoring
        raise cli.Failure(op_error_summary(error.message)) from None
    print(f"{args.split} split, model {args.model}, {describe(report['threshold'])}:")
    table = pd.DataFrame.from_dict(report["cross_dataset"], orient="index").rename_axis("name")
    print(reporting.format_table(table))
    if args.compare_paper:
        from mclcr_keras.evaluation.paper import format_comparison

        print("beside the paper (percent; difference = run - paper):")
        print(format_comparison(report["paper"]["rows"]))
    written = reporting.written_files(args.out, len(args.records),
                                      val_scored=report["threshold"]["split"] is not None,
                                      perturb=bool(args.perturb),
                                      compare_paper=args.compare_paper)
    print("wrote " + ", ".join(str(path) for path in written))


def check(args) -> None:
    """--out can be written, the record sets and the model exist: before TensorFlow loads and
    before any frame is scored (`evaluate` checks the splits and names)."""
    import os

    from mclcr_keras.errors import UsageError
    from mclcr_keras.files import check_output_dir

    options_from_args(args).validate()
    check_output_dir(args.out, "--out")
    for records in args.records:
        if "://" not in records and not os.path.isdir(records):
            raise UsageError(f"records directory not found: {records}")
    extra = args.threshold_records
    if extra and "://" not in extra and not os.path.isdir(extra):
        raise UsageError(f"--threshold-records directory not found: {extra}")
    if "://" not in args.model and not os.path.exists(args.model):
        raise UsageError(f"model not found: {args.model}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.evaluate``; returns the exit status."""
    return cli.run(build_parser(), command, argv, check=check)


if __name__ == "__main__":
    sys.exit(main())
