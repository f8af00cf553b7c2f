"""The model card an export carries: ``assets.extra/model_card.json`` (``export --model-card``).

``evaluate`` writes ``model_card.json`` (`mclcr_keras.evaluation.model_card`); `read_model_card`
checks such a file and returns its bytes, which `mclcr_keras.inference.export.export_model`
copies unchanged into the version directory (TF Serving ignores ``assets.extra``). No TensorFlow,
so ``export`` checks the file before TensorFlow loads.

Example:

>>> import json, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "card.json")
>>> _ = open(path, "w").write(json.dumps({"model_details": {"name": "MC-LCR"}}))
>>> read_model_card(path)[:16]
b'{"model_details"'
>>> _ = open(path, "w").write("[1, 2]")
>>> read_model_card(path)
Traceback (most recent call last):
...
ValueError: --model-card ... is not a model card: expected a JSON object with a 'model_details' ...
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MODEL_CARD_ASSET = os.path.join("assets.extra", "model_card.json")

__all__ = ["MODEL_CARD_ASSET", "read_model_card"]


def read_model_card(path: str | os.PathLike) -> bytes:
    """The bytes of a model card file (``evaluate``'s ``model_card.json``), checked.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not UTF-8 JSON, or not an object with a ``model_details`` object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--model-card {path} not found (evaluate writes model_card.json "
                                "into its --out)")
    data = path.read_bytes()
    try:
        card = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"--model-card {path} is not JSON: {error}") from None
    if not isinstance(card, dict) or not isinstance(card.get("model_details"), dict):
        raise ValueError(f"--model-card {path} is not a model card: expected a JSON object with a "
                         "'model_details' object (evaluate writes model_card.json)")
    return data
