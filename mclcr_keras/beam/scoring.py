"""Batch scoring on Apache Beam: ``python -m mclcr_keras.predict --engine beam`` (docs/predict.md).

The same files, faces, tracks and verdicts as the local `mclcr_keras.inference.predict`; only
the model calls are Beam's ``RunInference``:

1. the inputs are expanded at launch (`expand_paths`: directories as predict expands them, globs
   and ``gs://`` patterns through Beam's filesystems), numbered in that order, and spread over
   the workers (``Reshuffle``);
2. `CropFiles`: each file's faces and tracks, as predict finds them
   (`mclcr_keras.inference.predict.outline_file`, predict's cropper, one per DoFn instance);
   one element per face crop keyed ``(file, track, frame)``, and the file's skeleton (its
   `FileResult` without scores). A file that fails (missing, unreadable, faceless, too large)
   goes to the dead-letter output too;
3. ``RunInference`` with `mclcr_keras.beam.model_handler.ScorerHandler` (Beam's TensorFlow
   model handler on the project's scorer), ``--batch-size`` crops per call; a batch the model
   fails on is a dead letter of each of its files;
4. `Verdicts`: per file (``CoGroupByKey`` with its skeleton), its scores into the verdict by
   `mclcr_keras.inference.results.score_keyed`, the code local predict uses;
5. one writer: ``OUT``, one line per input, in input order, each exactly the file's entry of
   ``predict --json`` (failed files with their ``error``), and a second one: the dead letters,
   ``{path, kind, error}`` per failed file, in `failures_path` (``OUT.failures.jsonl``).

Example:

```python
options = PredictOptions(["gs://bucket/videos/*.mp4"], model="gs://bucket/serving/mclcr/1",
                         json_lines="gs://bucket/scores.jsonl")
files, failed = score_files(options, ["--runner=DataflowRunner", "--project=p", ...])
```
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from mclcr_keras.beam import fs
from mclcr_keras.beam.options import pipeline_options, quiet_beam
from mclcr_keras.data.media import media_kind
from mclcr_keras.errors import UsageError
from mclcr_keras.inference.predict import (
    PredictOptions,
    expand_inputs,
    make_cropper,
    outline_file,
)
from mclcr_keras.inference.results import FileResult, failed_result, score_keyed
from mclcr_keras.inference.verdicts import (
    failure_row,
    failures_path,
    json_lines,
    summary_line,
    threshold_for,
)

logger = logging.getLogger(__name__)

FILES, FAILED, SCORES, MODEL_ERRORS = "files", "failed", "scores", "model_errors"
_GLOB = re.compile(r"[*?\[]")

__all__ = ["CropFiles", "Verdicts", "check", "expand_paths", "score_files", "summary"]


# ------------------------------------------------------------------------------ launch


def check(options: PredictOptions, pipeline_args: Sequence[str] = (), workers: int | None = None,
          verbose: bool = False):
    """The one-line `UsageError` of what ``--engine beam`` cannot run; else the pipeline options.

    Needs ``json_lines``; refuses ``--json`` and ``--explain`` (a report of every file, and
    Grad-CAM figures, are the local engine's); Beam's own flags are checked by Beam.
    """
    if not options.json_lines:
        raise UsageError("--engine beam needs --json-lines OUT (where the results go)")
    if options.json:
        raise UsageError("--json is the local engine's report; with --engine beam use "
                         "--json-lines (the same per-file entries, one per line)")
    if options.explain:
        raise UsageError("--explain is not supported with --engine beam (use the local engine)")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    options.validate(remote=True)
    quiet_beam(verbose)
    return pipeline_options(pipeline_args, workers or os.cpu_count() or 1, verbose)


def expand_paths(inputs: Sequence[str]) -> list[str]:
    """The files to score, in order: local files and directories as `predict` expands them;
    a glob (``clips/*.mp4``, ``gs://bucket/videos/**``) or a folder on a Beam filesystem
    (``gs://bucket/videos``: a prefix that is no file) stands for the image and video files it
    matches, sorted (the pattern itself, to be reported as missing, when none). Duplicates are
    dropped.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.png", "a.mp4", "notes.txt"):
    ...     _ = (folder / name).write_bytes(b"x")
    >>> [os.path.basename(p) for p in expand_paths([f"{folder}/*", f"{folder}/b.png"])]
    ['a.mp4', 'b.png']
    """
    paths: list[str] = []
    for item in inputs:
        if fs.is_local(item) and (os.path.exists(item) or not _GLOB.search(item)):
            paths.extend(expand_inputs([item]))
            continue
        try:
            if _GLOB.search(item) or item.endswith("/") or not fs.exists(item):
                pattern = item if _GLOB.search(item) else item.rstrip("/") + "/**"
                found = [p for p in fs.match(pattern) if media_kind(p) is not None]
                paths.extend(found or [item])
            else:
                paths.append(item)
        except Exception as error:  # an unknown scheme, no credentials
            raise UsageError(f"INPUT {item}: {_reason(error)}") from None
    return list(dict.fromkeys(paths))


def _reason(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def launch_model(model: str):
    """The model loaded here at launch (its crop size and threshold; a check that it loads)."""
    from mclcr_keras.beam.model_handler import local_model
    from mclcr_keras.inference.scorer import load_scorer

    try:
        with local_model(model) as path:
            return load_scorer(path)
    except Exception as error:  # any loader failure is one line for the user
        raise UsageError(f"cannot load --model {model}: {_reason(error)}") from None


# ------------------------------------------------------------------------------ the pipeline


class CropFiles(beam.DoFn):
    """``(index, path)`` -> ``((index, track_id, frame_index), crop)`` per face crop to score;
    the file's skeleton ``(index, FileResult)`` on the `FILES` output; ``(index, failure row)``
    on `FAILED` for a file that cannot be scored."""

    def __init__(self, options: PredictOptions, image_size: int):
        self.options = options
        self.image_size = image_size

    def setup(self):
        # predict's cropper: one FaceAligner (dlib's models) for this DoFn instance.
        self.cropper = make_cropper(self.options, self.image_size)

    def outline(self, path: str):
        if fs.is_local(path):
            return outline_file(path, self.cropper)
        try:
            if not fs.exists(path):
                return FileResult(path=path, error="file not found"), []
            with fs.local_copy(path) as local:  # OpenCV reads local files only
                result, crops = outline_file(local, self.cropper)
        except Exception as error:  # one odd file must not end the run
            return failed_result(path, error), []
        result.path = path
        return result, crops

    def process(self, element):
        index, path = element
        result, crops = self.outline(path)
        keys = [(index, track.track_id, frame) for track in result.tracks for frame in track.frames]
        yield from zip(keys, crops)
        yield beam.pvalue.TaggedOutput(FILES, (index, result))
        if result.error:
            yield beam.pvalue.TaggedOutput(FAILED, (index, failure_row(result)))


def crop_score(element):
    """``((index, track_id, frame), PredictionResult)`` -> ``(index, ((track_id, frame),
    (probability, logit)))``."""
    (index, track_id, frame), prediction = element
    return index, ((track_id, frame), prediction.inference)


def model_errors(failure) -> list[tuple[int, str]]:
    """A batch the model failed on (RunInference's dead letter: ``(batch, (type, repr,
    traceback))``) -> ``(index, reason)`` per file of the batch."""
    batch, (_, _, trace) = failure
    last = (trace[-1].strip().splitlines() or ["unknown error"])[0] if trace else "unknown error"
    return sorted({(key[0], f"model failed: {last}") for key, _ in batch})


class Verdicts(beam.DoFn):
    """``(index, {FILES: [skeleton], SCORES: [...], MODEL_ERRORS: [...]})`` -> ``(index,
    report entry)``; a file the model failed on also ``(index, failure row)`` on `FAILED`."""

    def __init__(self, aggregate: str, threshold: float):
        self.aggregate = aggregate
        self.threshold = threshold

    def process(self, element):
        index, grouped = element
        result = grouped[FILES][0]
        if not result.error:
            errors = sorted(grouped[MODEL_ERRORS])
            if errors:
                result.error, result.tracks = errors[0], []
            else:
                score_keyed(result, dict(grouped[SCORES]), self.aggregate, self.threshold)
            if result.error:
                yield beam.pvalue.TaggedOutput(FAILED, (index, failure_row(result)))
        yield index, result.to_json()


def write_rows(rows: list, path: str) -> None:
    """``(index, row)`` pairs -> JSON lines in index order (input order), one file, atomically."""
    fs.write_bytes(path, json_lines(row for _, row in sorted(rows, key=lambda r: r[0]))
                   .encode("utf-8"))


def build(pipeline, paths: Sequence[str], options: PredictOptions, model: str, image_size: int,
          threshold: float) -> None:
    """The scoring pipeline on ``pipeline`` (see the module doc); ``model``: what workers load."""
    from mclcr_keras.beam.model_handler import ScorerHandler

    settings = dataclasses.replace(options, inputs=(), json=None, json_lines=None, explain=None)
    files = (pipeline
             | "Inputs" >> beam.Create(list(enumerate(paths)))
             | "Spread" >> beam.Reshuffle()
             | "Faces" >> beam.ParDo(CropFiles(settings, image_size)).with_outputs(
                 FILES, FAILED, main="crops"))
    handler = KeyedModelHandler(ScorerHandler(model, options.batch_size))
    scored, dead = files.crops | "Model" >> RunInference(handler).with_exception_handling()
    grouped = {FILES: files[FILES],
               SCORES: scored | "Scores" >> beam.Map(crop_score),
               MODEL_ERRORS: dead.failed_inferences | "ModelErrors" >> beam.FlatMap(model_errors)}
    verdicts = (grouped
                | "ByFile" >> beam.CoGroupByKey()
                | "Verdicts" >> beam.ParDo(Verdicts(options.aggregate, threshold)).with_outputs(
                    FAILED, main="entries"))
    _ = (verdicts.entries
         | "AllEntries" >> beam.combiners.ToList()
         | "WriteLines" >> beam.Map(write_rows, options.json_lines))
    _ = ((files[FAILED], verdicts[FAILED])
         | "DeadLetters" >> beam.Flatten()
         | "AllFailures" >> beam.combiners.ToList()
         | "WriteFailures" >> beam.Map(write_rows, failures_path(options.json_lines)))


def score_files(options: PredictOptions, pipeline_args: Sequence[str] = (),
                workers: int | None = None, verbose: bool = False) -> tuple[int, int]:
    """Scores ``options.inputs`` on Beam into ``options.json_lines``; returns ``(files,
    failed)``.

    Args:
        options: predict's options (``json_lines`` required; ``json``, ``explain`` refused).
        pipeline_args: Beam's flags (``--runner=DataflowRunner ...``); none: the local runner.
        workers: SDK worker processes of the local runner (default: all cores).
        verbose: keep Beam's INFO logging.

    Raises:
        UsageError: bad options, or the model cannot be loaded (nothing run).
    """
    beam_options = check(options, pipeline_args, workers, verbose)
    paths = expand_paths(options.inputs)
    scorer = launch_model(options.model)
    model = scorer.path if fs.is_local(options.model) else options.model  # what workers load
    threshold = threshold_for(options.threshold, scorer, options.model)[0]
    image_size = int(scorer.image_size)
    del scorer
    logger.info("scoring %d files on Beam (%s)", len(paths),
                beam_options.get_all_options()["runner"])
    with beam.Pipeline(options=beam_options) as pipeline:
        build(pipeline, paths, options, model, image_size, threshold)
    failures = fs.read_bytes(failures_path(options.json_lines)).decode("utf-8")
    return len(paths), len(failures.splitlines())


def summary(files: int, failed: int, options: PredictOptions) -> str:
    """The last line of a run (`mclcr_keras.inference.verdicts.summary_line`)."""
    return summary_line(files, failed, options)
