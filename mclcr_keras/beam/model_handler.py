"""The model of ``predict --engine beam`` behind Beam's ``RunInference`` (`ScorerHandler`).

Kept apart from `mclcr_keras.beam.scoring` because Beam's TensorFlow model handler imports
TensorFlow (and tensorflow_hub) when it is imported: the pipeline module stays light, so that
``predict --engine beam`` checks its arguments before TensorFlow is loaded.

`local_model` makes a model on any Beam filesystem (``gs://bucket/serving/mclcr/1``) a local path:
a directory (a SavedModel, or a model base with numbered versions) is copied file by file, a
``.keras`` file with its siblings of the same stem (its ``best.threshold.json``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence

from mclcr_keras import quiet_tf

# TensorFlow imported without its native start-up lines when TF_CPP_MIN_LOG_LEVEL asks for quiet
# (predict sets it unless --verbose; Beam's worker processes inherit it).
quiet_tf.import_tensorflow(verbose=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0")

import numpy as np  # noqa: E402
from apache_beam.ml.inference.base import PredictionResult  # noqa: E402
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy  # noqa: E402

from mclcr_keras.beam import fs  # noqa: E402

__all__ = ["ScorerHandler", "local_model", "score_batch"]


@contextlib.contextmanager
def local_model(path: str) -> Iterator[str]:
    """A local path holding the model at ``path``: ``path`` itself when it is local, else a
    temporary copy (deleted on exit; the scorer holds the model in memory once loaded)."""
    if fs.is_local(path):
        yield path
        return
    folder = tempfile.mkdtemp(prefix="mclcr_model_")
    try:
        base = path.rstrip("/")
        name = base.rsplit("/", 1)[-1]
        found = fs.match(f"{base}/**")  # a directory: everything under it
        if found:
            copies = [(source, os.path.join(folder, name, source[len(base) + 1:]))
                      for source in found]
        else:  # a file: it and its siblings of the same stem (the threshold sidecar)
            stem = base.rsplit(".", 1)[0] if "." in name else base
            copies = [(source, os.path.join(folder, source.rsplit("/", 1)[-1]))
                      for source in fs.match(f"{stem}.*")]
        if not copies:
            raise FileNotFoundError(f"model not found: {path}")
        for source, target in copies:
            fs.write_bytes(target, fs.read_bytes(source))
        yield os.path.join(folder, name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def score_batch(scorer, batch: Sequence[np.ndarray], inference_args=None,
                model_id: str | None = None) -> list[PredictionResult]:
    """The handler's ``inference_fn``: one `Scorer.predict` call on the stacked crops (uint8
    ``(S, S, 3)``, cast to float32 pixels as predict's crops are); per crop, ``inference`` is
    ``(probability, logit)``. The crop itself is not carried on (``example`` is ``None``)."""
    probabilities, logits = scorer.predict(np.stack(batch), batch_size=len(batch))
    return [PredictionResult(None, (float(p), float(z)), model_id)
            for p, z in zip(probabilities, logits)]


class ScorerHandler(TFModelHandlerNumpy):
    """Beam's TensorFlow model handler (batching, one model per worker process, metrics) on the
    project's scorer: `load_model` returns a `mclcr_keras.inference.scorer.Scorer` of ``model``
    (an export or a ``.keras`` file, local or on a Beam filesystem), `score_batch` calls it.

    Args:
        model: the model's path, as ``predict --model``.
        batch_size: face crops per model call; Beam batches ``batch_size`` crops (fewer at the
            end of a bundle), of any files.
    """

    def __init__(self, model: str, batch_size: int):
        super().__init__(model, inference_fn=score_batch, min_batch_size=batch_size,
                         max_batch_size=batch_size)

    def load_model(self):
        # Beam's own loader is tf.keras.models.load_model(hub.resolve(uri)): Keras 3 loads only
        # .keras/.h5 files and refuses a SavedModel (it points to keras.layers.TFSMLayer). The
        # project's scorer calls the export's serving_default signature, exactly as predict does,
        # and loads .keras files too.
        from mclcr_keras.inference.scorer import load_scorer

        with local_model(self._model_uri) as path:
            return load_scorer(path)

    def get_metrics_namespace(self) -> str:
        return "mclcr_predict"
