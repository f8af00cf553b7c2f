"""Evaluation: the field's protocol on a predictions table (`protocol`) and the report files of a
model on record sets (`report`).

The exports resolve lazily (PEP 562), so ``from mclcr_keras.evaluation import evaluate_predictions``
(pandas and NumPy only) imports no TensorFlow; ``evaluate`` and ``predict_records`` load it.
"""

from mclcr_keras.lazy import lazy_exports

_EXPORTS = {
    "cross_dataset_table": "protocol",
    "evaluate_predictions": "protocol",
    "evaluate": "report",
    "predict_records": "report",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
