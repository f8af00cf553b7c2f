"""Running the demo's stages: the output folder, the timeline, ``demo.json`` and the summary.

Example:

```python
prepare_out(Path("mclcr_demo"), overwrite=False)
summary = run(Path("mclcr_demo"), QUICK, seed=0)
```
"""

from __future__ import annotations

import dataclasses
import resource
import shlex
import shutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from mclcr_keras.demo.paths import MARKER, Paths
from mclcr_keras.demo.settings import DemoSettings
from mclcr_keras.errors import UsageError
from mclcr_keras.files import write_json

PROG = "python -m mclcr_keras.demo"
STAGES = 8


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes:d}:{seconds:02d}"


class Timeline:
    """Stage headers with the elapsed time, and per-stage wall and CPU seconds."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.start_wall = time.perf_counter()
        self.start_cpu = _cpu_seconds()
        self.stages: list[dict] = []
        self._open: dict | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_wall

    def cpu(self) -> float:
        return _cpu_seconds() - self.start_cpu

    def begin(self, number: int, title: str) -> None:
        self.end()
        self._open = {"stage": number, "title": title, "wall_start": self.elapsed(),
                      "cpu_start": self.cpu()}
        print(f"\n=== [{_clock(self.elapsed())} elapsed] stage {number}/{STAGES}: {title} ===",
              file=self.stream, flush=True)

    def end(self) -> None:
        if self._open is None:
            return
        stage = self._open
        stage["wall_s"] = round(self.elapsed() - stage.pop("wall_start"), 2)
        stage["cpu_s"] = round(self.cpu() - stage.pop("cpu_start"), 2)
        self.stages.append(stage)
        self._open = None


def prepare_out(out: Path, overwrite: bool) -> None:
    """Creates ``out``, or empties an earlier demo run there with ``overwrite``.

    Raises:
        UsageError: ``out`` is a file, or a non-empty folder that may not be replaced.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(
                f"--out {out} exists and is not empty; pass --overwrite to replace an earlier "
                "demo run there, or choose another --out"
            )
        if not (out / MARKER).is_file():
            raise UsageError(
                f"--out {out} is not empty and holds no {MARKER} of a demo run; --overwrite only "
                "replaces demo output, so choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _metric(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_summary(paths: Paths, results: dict, timeline: Timeline, stream=None) -> None:
    """The artifacts, the key metrics and the time of each stage."""
    stream = stream or sys.stdout
    root = paths.root
    lines = [f"\n=== demo finished in {_clock(timeline.elapsed())} (wall), "
             f"{timeline.cpu():.0f} s CPU ==="]
    artifacts = [
        ("demo frames", paths.faces),
        ("records", paths.records),
        ("training run", paths.run),
        ("best model", paths.best_model),
        ("test metrics", paths.eval / "metrics.json"),
        ("test predictions", paths.eval / "predictions.csv"),
        ("ROC curve", paths.eval / "roc.png"),
        ("SavedModel (TF Serving)", paths.saved_model),
        ("predict report", paths.predict_json),
    ]
    if "figures" in results:
        artifacts += [(f"figure: {name}", Path(path)) for name, path in
                      results["figures"].items()]
    artifacts.append(("this summary", root / MARKER))
    width = max(len(name) for name, _ in artifacts)
    lines.append("Artifacts:")
    lines += [f"  {name:<{width}}  {path}" for name, path in artifacts]
    train, evaluation = results.get("train", {}), results.get("evaluate", {})
    frame, video = evaluation.get("frame", {}), evaluation.get("video", {})
    lines.append("Metrics (test split, best.keras; random init, short training, two identities: "
                 "a smoke test, not a benchmark):")
    lines.append(f"  training: {train.get('epochs')} epochs, best val AUC "
                 f"{_metric(train.get('best_val_auc'))} (epoch {train.get('best_epoch')})")
    lines.append(f"  frame: AUC {_metric(frame.get('auc'))}  ACC {_metric(frame.get('acc'))}  "
                 f"EER {_metric(frame.get('eer'))}  AP {_metric(frame.get('ap'))}  "
                 f"({frame.get('n')} faces)")
    lines.append(f"  video: AUC {_metric(video.get('auc'))}  ACC {_metric(video.get('acc'))}  "
                 f"({video.get('n_videos')} videos)")
    if "predict" in results:
        lines.append(f"  predict: {results['predict']['correct']} of "
                     f"{len(results['predict']['files'])} full frames called correctly")
    lines.append("Time per stage (wall / CPU seconds):")
    lines += [f"  {s['stage']}. {s['title']:<56} {s['wall_s']:7.1f} / {s['cpu_s']:7.1f}"
              for s in timeline.stages]
    print("\n".join(lines), file=stream, flush=True)


def run(out: Path, settings: DemoSettings, *, seed: int = 0, figures: bool = True,
        quick: bool = False, argv: Sequence[str] = ()) -> dict:
    """Runs every stage into ``out`` (already prepared) and returns the summary dict.

    Args:
        out: output folder (see `prepare_out`).
        settings: sizes of the run (`DEFAULT`, `QUICK` or a variant).
        seed: seed of the demo data, the training and the figures.
        figures: run stage 7.
        quick: recorded in ``demo.json``.
        argv: the command-line arguments, recorded in ``demo.json``.

    Raises:
        StageError: a tool exited with an unexpected status or a check failed.
    """
    from mclcr_keras.demo import stages

    timeline = Timeline()
    paths = Paths(out)
    summary = {"status": "running", "quick": quick, "seed": seed,
               "settings": dataclasses.asdict(settings), "out": str(out.resolve()),
               "command": " ".join([PROG, *map(shlex.quote, map(str, argv))])}
    write_json(out / MARKER, summary, default=str)
    results: dict = {}
    steps = [
        ("demo data (public-domain photos + self-blended fakes)",
         "data", lambda: stages.stage_data(paths, settings, seed)),
        (f"build_records (dlib faces -> {settings.image_size} px PNG TFRecords)",
         "records", lambda: stages.stage_records(paths, settings)),
        (f"train ({settings.epochs} x {settings.steps_per_epoch} steps, {settings.image_size} px)",
         "train", lambda: stages.stage_train(paths, settings, seed)),
        ("evaluate on the test split", "evaluate", lambda: stages.stage_evaluate(paths)),
        ("export SavedModel + reload check", "export",
         lambda: stages.stage_export(paths, settings)),
        ("predict on full demo frames", "predict", lambda: stages.stage_predict(paths, settings)),
    ]
    if figures:
        steps.append(("figures (Fig. 3, 6, 7)", "figures",
                      lambda: stages.stage_figures(paths, settings, seed)))
    try:
        for number, (title, key, action) in enumerate(steps, start=1):
            timeline.begin(number, title)
            results[key] = action()
        if not figures:
            timeline.begin(7, "figures: skipped (--skip-figures)")
        timeline.begin(STAGES, "summary")
        timeline.end()
    except BaseException as error:
        timeline.end()
        summary.update(status="failed", results=results, stages=timeline.stages,
                       wall_s=round(timeline.elapsed(), 1), cpu_s=round(timeline.cpu(), 1),
                       error=f"{type(error).__name__}: {error}",
                       traceback=traceback.format_exc())
        write_json(out / MARKER, summary, default=str)
        raise
    summary.update(status="ok", results=results, stages=timeline.stages,
                   wall_s=round(timeline.elapsed(), 1), cpu_s=round(timeline.cpu(), 1))
    write_json(out / MARKER, summary, default=str)
    print_summary(paths, results, timeline)
    return summary
