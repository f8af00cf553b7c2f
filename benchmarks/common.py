"""What the benchmarks share: the machine line, the JSON dump, a timed train step.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import time


def machine() -> dict:
    """The load average and the CPU count, recorded beside every figure."""
    return {"load_average": os.getloadavg(), "cpu_count": os.cpu_count()}


def finish(result: dict, json_path: str | None) -> int:
    """Prints the machine line of ``result`` (see `machine`), writes it as JSON if asked."""
    print(f"(load average {', '.join(f'{v:.1f}' for v in result['load_average'])} on "
          f"{result['cpu_count']} CPUs)")
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


def timed_train_step(model, images, labels) -> tuple[float, float]:
    """Wall and CPU seconds of one compiled ``train_on_batch`` (the loss read back)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    logs = model.train_on_batch(images, labels, return_dict=True)
    float(logs["loss"])  # synchronise
    return time.perf_counter() - start, time.process_time() - start_cpu
