"""TF Serving configuration files an export writes: batching and versioned roll-out.

`export_model` writes two text-format protos into ``<version>/assets.extra/`` (beside the warm-up
file; TF Serving ignores ``assets.extra``, and versions are immutable, so an export never rewrites
a file a running server polls):

- `BATCHING_FILE` (``batching_parameters.txt``): a ``tensorflow.serving.BatchingParameters`` for
  ``tensorflow_model_server --enable_batching --batching_parameters_file=...``; the CPU values
  are justified in ``docs/serving.md``, "Batching";
- `MODELS_CONFIG_FILE` (``models.config``): a ``tensorflow.serving.ModelServerConfig`` for
  ``--model_config_file=... --model_config_file_poll_wait_seconds=...``: the model served with
  a ``specific`` version policy, the previous version labelled ``stable`` and the new one
  ``canary`` (only ``stable``, on the new version, when the base held no other version).

`ServingOptions` holds the values (the options of ``python -m mclcr_keras.export``).

Example:

>>> options = ServingOptions(num_batch_threads=2)
>>> print(batching_parameters_text(options).split("\\n# ---\\n")[1], end="")
max_batch_size { value: 32 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 2 }
num_batch_threads { value: 2 }
>>> text = models_config_text("mclcr", "/models/mclcr", version=4, stable=3)
>>> [line.strip() for line in text.splitlines() if "versions" in line or "value" in line]
['versions: 3', 'versions: 4', 'value: 3', 'value: 4']
>>> parse_sizes("1,8", "--warmup-batch-sizes"), parse_sizes("none", "--warmup-batch-sizes")
((1, 8), ())
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from mclcr_keras.errors import UsageError

BATCHING_FILE = os.path.join("assets.extra", "batching_parameters.txt")
MODELS_CONFIG_FILE = os.path.join("assets.extra", "models.config")
STABLE_LABEL = "stable"
CANARY_LABEL = "canary"

__all__ = ["BATCHING_FILE", "CANARY_LABEL", "MODELS_CONFIG_FILE", "STABLE_LABEL",
           "ServingOptions", "batching_parameters_text", "models_config_text", "parse_sizes",
           "write_serving_configs"]


def parse_sizes(text: str, flag: str) -> tuple[int, ...]:
    """``"1,8"`` -> ``(1, 8)``; ``"none"`` or ``""`` -> ``()``. `UsageError` for anything else."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} expects e.g. 1,8 or none, got {text!r}") from None
    if any(size < 1 for size in sizes) or len(set(sizes)) != len(sizes):
        raise UsageError(f"{flag} must be distinct positive integers, got {text!r}")
    return sizes


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    """What an export writes for TF Serving besides the SavedModel (``export``'s options).

    Attributes:
        warmup_batch_sizes: batch sizes of the warm-up records, each for both signatures;
            ``()`` writes no warm-up file.
        max_batch_size: the largest batch TF Serving forms, and the largest request it accepts.
        batch_timeout_micros: how long a partial batch waits for more requests (0: never).
        num_batch_threads: threads running batches; None: this machine's CPU count.
        allowed_batch_sizes: sizes batches are padded to (increasing, the last one
            `max_batch_size`); ``()``: no padding.
        stable_version: the version labelled ``stable`` in ``models.config``; None: the highest
            other version of the base holding a SavedModel (or the new one, when none).
        serving_base_path: ``base_path`` in ``models.config`` (the base as the server sees it,
            e.g. ``/models/mclcr`` in Docker); None: the absolute path of ``--out``.
    """

    warmup_batch_sizes: tuple[int, ...] = (1, 8)
    max_batch_size: int = 32
    batch_timeout_micros: int = 0
    num_batch_threads: int | None = None
    allowed_batch_sizes: tuple[int, ...] = ()
    stable_version: int | None = None
    serving_base_path: str | None = None

    def threads(self) -> int:
        """`num_batch_threads`, or this machine's CPU count."""
        return self.num_batch_threads or os.cpu_count() or 1

    def validate(self) -> None:
        """One-line `UsageError` for a value TF Serving would refuse (before anything loads)."""
        allowed = self.allowed_batch_sizes
        checks = [
            (self.max_batch_size >= 1, f"--max-batch-size must be >= 1, got {self.max_batch_size}"),
            (self.batch_timeout_micros >= 0,
             f"--batch-timeout-micros must be >= 0, got {self.batch_timeout_micros}"),
            (self.num_batch_threads is None or self.num_batch_threads >= 1,
             f"--batch-threads must be >= 1, got {self.num_batch_threads}"),
            (not allowed or (list(allowed) == sorted(set(allowed)) and allowed[0] >= 1
                             and allowed[-1] == self.max_batch_size),
             f"--allowed-batch-sizes must increase and end with --max-batch-size "
             f"{self.max_batch_size} (TF Serving refuses it otherwise), got "
             f"{','.join(map(str, allowed))}"),
            (all(1 <= size <= self.max_batch_size for size in self.warmup_batch_sizes),
             f"--warmup-batch-sizes must lie in 1..--max-batch-size {self.max_batch_size}: a "
             "larger warm-up request is refused and the version then fails to load"),
            (self.stable_version is None or self.stable_version >= 1,
             f"--stable-version must be a positive integer, got {self.stable_version}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)


def batching_parameters_text(options: ServingOptions) -> str:
    """``batching_parameters.txt``: a text-format ``BatchingParameters``, comments first."""
    threads = options.threads()
    lines = [
        "# tensorflow.serving.BatchingParameters (text format), written by mclcr_keras.export.",
        "# Use: tensorflow_model_server --enable_batching --batching_parameters_file=THIS_FILE",
        "# CPU values (docs/serving.md, 'Batching'): a batch costs its size times one image, so",
        "# batches are never waited for (timeout 0); one batch thread per core; a queue of one",
        "# batch per thread; requests larger than max_batch_size are refused.",
        "# ---",
        f"max_batch_size {{ value: {options.max_batch_size} }}",
        f"batch_timeout_micros {{ value: {options.batch_timeout_micros} }}",
        f"max_enqueued_batches {{ value: {threads} }}",
        f"num_batch_threads {{ value: {threads} }}",
    ]
    lines += [f"allowed_batch_sizes: {size}" for size in options.allowed_batch_sizes]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def models_config_text(name: str, base_path: str, version: int, stable: int) -> str:
    """``models.config``: a text-format ``ModelServerConfig`` serving ``stable`` and ``version``.

    ``version`` is labelled ``canary`` and ``stable`` ``stable``; when they are equal, one version
    labelled ``stable``.
    """
    versions = sorted({stable, version})
    labels = [(STABLE_LABEL, stable)] + ([(CANARY_LABEL, version)] if version != stable else [])
    lines = [
        "# tensorflow.serving.ModelServerConfig (text format), written by mclcr_keras.export.",
        "# Use: tensorflow_model_server --model_config_file=THIS_FILE "
        "--model_config_file_poll_wait_seconds=60",
        "# (docs/serving.md, 'Versioned roll-out'; a label for a version not loaded yet needs",
        "# --allow_version_labels_for_unavailable_models)",
        "model_config_list {",
        "  config {",
        f"    name: {_quoted(name)}",
        f"    base_path: {_quoted(base_path)}",
        '    model_platform: "tensorflow"',
        "    model_version_policy {",
        "      specific {",
        *[f"        versions: {number}" for number in versions],
        "      }",
        "    }",
    ]
    for label, number in labels:
        lines += ["    version_labels {", f"      key: {_quoted(label)}", f"      value: {number}",
                  "    }"]
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def write_serving_configs(version_dir: str | os.PathLike, name: str, base_path: str,
                          version: int, stable: int, options: ServingOptions) -> list[Path]:
    """Writes `BATCHING_FILE` and `MODELS_CONFIG_FILE` into ``version_dir``; returns their paths.

    Example:

    ```python
    write_serving_configs(staging, "mclcr", "/models/mclcr", 4, 3, ServingOptions())
    ```
    """
    written = []
    for relative, text in ((BATCHING_FILE, batching_parameters_text(options)),
                           (MODELS_CONFIG_FILE, models_config_text(name, base_path, version,
                                                                   stable))):
        path = Path(version_dir) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
