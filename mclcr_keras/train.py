"""Train MC-LCR on TFRecords: ``python -m mclcr_keras.train --records DIR --out RUN_DIR``.

    python -m mclcr_keras.train --records records/ffpp --out runs/ffpp_mclcr
    python -m mclcr_keras.train --records records/ffpp --out runs/ffpp_no_ssrb --variant no_ssrb
    python -m mclcr_keras.train --records records/demo --out runs/demo --image-size 64 \\
        --weights none --epochs 2 --batch-size 8

The defaults are the paper's (`mclcr_keras.training.options.TrainConfig`); the run is
`mclcr_keras.training.loop.train`. See ``docs/training.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Sequence

from mclcr_keras import cli
from mclcr_keras.models.config import ATTENTION_SCALES, VARIANTS
from mclcr_keras.training.distribute import SLURM_PORT_BASE, SLURM_PORT_SPAN, SLURM_PORT_VARIABLE
from mclcr_keras.training.options import DISTRIBUTE, TrainConfig

DEFAULTS = TrainConfig(records="", out="")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def build_parser() -> cli.Parser:
    parser = cli.make_parser(
        "train",
        "Train an MC-LCR face-forgery detector on records written by "
        "`python -m mclcr_keras.build_records`. Uses the 'train' split for training and the "
        "'val' split for the learning-rate schedule and for choosing best.keras (highest "
        "validation AUC); never the 'test' split. Rerun the same command to resume an "
        "interrupted run.",
        exits=(cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_USAGE, cli.EXIT_DIVERGED,
               cli.EXIT_INTERRUPTED),
        details="Writes to RUN_DIR: config.json, history.csv, logs/ (tensorboard --logdir "
                "RUN_DIR/logs), last.keras, best.keras, state.json, checkpoints/. Details: "
                "docs/training.md.",
    )
    d = DEFAULTS
    parser.add_argument("--records", required=True, metavar="DIR",
                        help="records folder holding train/ and val/ (build_records --out)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help="run folder: new, empty, or an earlier run to resume")
    parser.add_argument("--variant", default=d.variant, choices=VARIANTS,
                        help="model variant (paper Table 5 ablations; default: %(default)s)")
    parser.add_argument("--epochs", type=_positive_int, default=d.epochs,
                        help="total number of epochs (default: %(default)s, as in the paper)")
    parser.add_argument("--batch-size", type=_positive_int, default=d.batch_size,
                        help="global batch size, half real and half fake; a multiple of 4 "
                             "(default: %(default)s = 8 real + 8 fake, as in the paper)")
    parser.add_argument("--image-size", type=_positive_int, default=d.image_size,
                        help="face crop side in pixels, a multiple of 16 (default: %(default)s)")
    parser.add_argument("--weights", default=d.weights, metavar="imagenet|none|PATH",
                        help="Xception initialisation: 'imagenet' (Keras download), 'none' "
                             "(random) or a local Xception notop .h5 file (default: imagenet)")
    parser.add_argument("--distribute", default=d.distribute, choices=DISTRIBUTE,
                        help="none: one device; mirrored: all local GPUs (or CPUs) with "
                             "tf.distribute.MirroredStrategy; multiworker: "
                             "MultiWorkerMirroredStrategy on the cluster of TF_CONFIG or, "
                             "without it, of the Slurm job step (srun; first port: "
                             f"${SLURM_PORT_VARIABLE}, default {SLURM_PORT_BASE} + job id mod "
                             f"{SLURM_PORT_SPAN}) (default: none)")
    parser.add_argument("--jit-compile", action="store_true",
                        help="compile the train step (and validation) with XLA; with "
                             "--distribute none only (default: Keras' choice: XLA on a single "
                             "GPU, not on CPU)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="mixed_float16 on GPU, mixed_bfloat16 on CPU")
    parser.add_argument("--learning-rate", type=_finite_float, default=d.learning_rate,
                        help="AdamW learning rate (default: %(default)s)")
    parser.add_argument("--weight-decay", type=_finite_float, default=d.weight_decay,
                        help="AdamW weight decay (default: %(default)s)")
    parser.add_argument("--steps-per-epoch", type=_positive_int, default=None,
                        help="training batches per epoch (default: 2 x the frames of the "
                             "smaller class // batch size, i.e. one pass over that class)")
    parser.add_argument("--validation-steps", type=_positive_int, default=None,
                        help="validate on the first N batches of the val split (the same ones "
                             "every epoch; default: the whole split)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for weights, dropout and the data order (default: random)")
    parser.add_argument("--no-flip", dest="flip", action="store_false", default=d.flip,
                        help="do not mirror training images left-right at random (the flip is "
                             "not in the paper; default: flip, as in earlier runs)")
    parser.add_argument("--attention-scale", default=d.attention_scale,
                        choices=ATTENTION_SCALES,
                        help="amplitude-phase attention logits times 1/sqrt(D/heads) ('head', "
                             "1/8 at P=16, 4 heads) or 1/sqrt(D) ('model', 1/16, Eq. 5 as "
                             "printed) (default: %(default)s)")
    parser.add_argument("--precise-bn-batches", type=int, default=d.precise_bn_batches,
                        metavar="N",
                        help="after every epoch, recompute BatchNorm's inference statistics on N "
                             "fixed training batches before validating and saving (0: keep "
                             "Keras' moving averages) (default: %(default)s)")
    parser.add_argument("--bn-momentum", type=_finite_float, default=None,
                        help="momentum of BatchNorm's moving averages (default: Keras' 0.99)")
    return parser


def artifacts(outcome) -> str:
    """What a finished run wrote, one line per file."""
    from mclcr_keras.training import run_dir as files

    state, folder = outcome.state, outcome.run_dir
    lines = [f"train: done: {state.epochs_done} epochs in {folder}"]
    if state.best_checkpoint:
        lines.append(f"  best.keras    {os.path.join(folder, files.BEST_MODEL)} "
                     f"(epoch {state.best_epoch}, val_auc {state.best_val_auc:.4f})")
    else:
        lines.append("  best.keras    not written: the validation AUC was never finite")
    lines += [
        f"  last.keras    {os.path.join(folder, files.LAST_MODEL)} (epoch {state.epochs_done})",
        f"  history.csv   {os.path.join(folder, files.HISTORY_FILE)}",
        f"  config.json   {os.path.join(folder, files.CONFIG_FILE)}",
        f"  TensorBoard   tensorboard --logdir {os.path.join(folder, files.LOG_DIR)}",
    ]
    return "\n".join(lines)


def config_from_args(args) -> TrainConfig:
    return TrainConfig(**{k: v for k, v in vars(args).items() if k != "verbose"})


def command_line(argv: Sequence[str]) -> str:
    return " ".join([cli.PROG_PREFIX + "train", *(shlex.quote(str(a)) for a in argv)])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.train``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def command(args) -> int:
        from mclcr_keras.training import loop

        config = config_from_args(args)
        try:
            outcome = loop.train(config, command_line(argv))
        except loop.TrainingDiverged as error:
            raise cli.Failure(str(error), cli.EXIT_DIVERGED) from None
        except loop.TrainingFailed as error:
            raise cli.Failure(str(error), cli.EXIT_FAILED) from None
        if outcome.already_done:
            print(f"train: {outcome.run_dir} already completed {outcome.state.epochs_done} of "
                  f"{outcome.epochs} epochs; nothing to do")
        if not outcome.chief:
            print(f"train: done on this worker; the chief wrote {outcome.run_dir}")
        else:
            print(artifacts(outcome))
        return cli.EXIT_OK

    return cli.run(build_parser(), command, argv,
                   check=lambda args: config_from_args(args).validate(),
                   interrupted="rerun the same command to resume after the last completed epoch")


if __name__ == "__main__":
    sys.exit(main())
