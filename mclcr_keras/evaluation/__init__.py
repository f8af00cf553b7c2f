"""Evaluation: the field's protocol on a predictions table (`protocol`) and the report files of a
model on record sets (`report`)."""

from mclcr_keras.evaluation.protocol import cross_dataset_table, evaluate_predictions
from mclcr_keras.evaluation.report import evaluate, predict_records

__all__ = ["cross_dataset_table", "evaluate", "evaluate_predictions", "predict_records"]
