"""Where each artifact of a demo run lives, and the marker file that makes a folder a demo run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

MARKER = "demo.json"


@dataclasses.dataclass
class Paths:
    """Where each artifact of a demo run lives (all under ``root``)."""

    root: Path

    @property
    def faces(self) -> Path:
        return self.root / "faces"

    @property
    def records(self) -> Path:
        return self.root / "records"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def best_model(self) -> Path:
        return self.run / "best.keras"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def serving_base(self) -> Path:
        return self.root / "serving" / "mclcr"

    @property
    def saved_model(self) -> Path:
        return self.serving_base / "1"

    @property
    def predict_json(self) -> Path:
        return self.root / "predict" / "predictions.json"

    @property
    def figures(self) -> Path:
        return self.root / "figures"
