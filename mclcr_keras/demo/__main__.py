"""The whole MC-LCR chain end to end on a small built-in dataset, with no download.

    python -m mclcr_keras.demo                      # ./mclcr_demo, ~5 min on 2 CPU cores
    python -m mclcr_keras.demo --out /tmp/demo --overwrite
    python -m mclcr_keras.demo --quick              # a tiny version of every stage (tests)

Stages, each the library call behind the command-line tool a user runs by hand (the demo prints
that command before running the call in-process, `mclcr_keras.demo.stages`):

1. demo data: real face "videos" made from the public-domain photos shipped with matplotlib and
   scikit-image, and self-blended fakes (`mclcr_keras.demo.data`, also
   ``python -m mclcr_keras.demo_data``);
2. records: face detection, alignment and sharding (``python -m mclcr_keras.build_records``);
3. training at reduced size from random weights (``python -m mclcr_keras.train``);
4. evaluation on the test split (``python -m mclcr_keras.evaluate``);
5. export for TF Serving, then the SavedModel is reloaded and both signatures are compared with
   the Keras model (``python -m mclcr_keras.export``);
6. prediction on full demo frames, so faces are detected (``python -m mclcr_keras.predict``);
7. the paper's figures (``python -m mclcr_keras.viz``; skip with ``--skip-figures``);
8. a summary: where every artifact is, the metrics, the time of each stage.

Output folder ``--out`` (default ``./mclcr_demo``)::

    demo.json        settings, stage timings, metrics, artifact paths (written at start and end)
    faces/           demo frames (OUT/<split>/<real|fake>/<video>/<frame>.png)
    records/         TFRecords: <split>/<real|fake>-*.tfrecord, manifest.csv, dataset.json
    run/             config.json, history.csv, best.keras, last.keras, logs/
    eval/            metrics.json, predictions.csv, roc.png
    serving/mclcr/1/ SavedModel (signatures serving_default and serving_bytes)
    predict/         predictions.json
    figures/         fig3_patch_spectra.png, fig6_feature_maps.png, fig7_tsne.png

An existing, non-empty ``--out`` is refused; ``--overwrite`` replaces it, but only when it holds
the ``demo.json`` of an earlier demo run (no other folder is ever deleted). ImageNet weights are
not used: Keras would download them, and the demo must run offline; see ``docs/demo.md`` for what
this small run can and cannot show.

Exit status (``docs/cli.md``): 0 every stage passed; 1 a stage failed (its message says which);
2 bad arguments or an ``--out`` folder in the way; 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from mclcr_keras import cli
from mclcr_keras.demo.settings import DEFAULT, QUICK


def build_parser() -> cli.Parser:
    parser = cli.make_parser(
        "demo",
        "Run the whole MC-LCR chain on a small dataset made at run time from the public-"
        "domain face photos shipped with matplotlib and scikit-image (fakes: self-blended "
        "images): demo data -> build_records -> train -> evaluate -> export (TF Serving) -> "
        "predict -> figures. No download; about 5 minutes on 2 CPU cores.",
        details="Details: docs/demo.md.",
    )
    parser.add_argument("--out", default="mclcr_demo", metavar="DIR",
                        help="output folder (default: ./mclcr_demo); must be new or empty")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out if it holds an earlier demo run (its demo.json)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny version of every stage (64 px, 1 epoch of 2 steps; ~1 min): "
                             "checks the chain, learns nothing")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default: {DEFAULT.epochs}, --quick "
                             f"{QUICK.epochs})")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help=f"training batches per epoch (default: {DEFAULT.steps_per_epoch}, "
                             f"--quick {QUICK.steps_per_epoch})")
    parser.add_argument("--skip-figures", action="store_true",
                        help="skip stage 7 (the paper's figures)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the demo data and of training (default: 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.demo``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def command(args) -> None:
        from mclcr_keras.demo import runner
        from mclcr_keras.demo.settings import choose_settings
        from mclcr_keras.demo.stages import StageError

        settings = choose_settings(args.quick, args.epochs, args.steps_per_epoch)
        out = Path(args.out)
        runner.prepare_out(out, args.overwrite)
        print(f"MC-LCR demo into {out.resolve()} ({'quick' if args.quick else 'default'} "
              "settings; nothing is downloaded)", flush=True)
        try:
            runner.run(out, settings, seed=args.seed, figures=not args.skip_figures,
                       quick=args.quick, argv=argv)
        except StageError as error:
            raise cli.Failure(f"{error}; partial results in {out}") from None
        except Exception as error:  # a bug or a broken install: one line, the traceback saved
            raise cli.Failure(f"{type(error).__name__}: {cli.one_line(error)} (traceback in "
                              f"{out / runner.MARKER}); partial results in {out}") from None

    from mclcr_keras.files import check_output_dir

    return cli.run(build_parser(), command, argv,
                   check=lambda args: check_output_dir(args.out, "--out"),
                   interrupted="rerun with --overwrite to start again")


if __name__ == "__main__":
    sys.exit(main())
