"""Data: the TFRecord schema (`schema`) and the tf.data readers (`pipeline`).

The exports are resolved lazily (PEP 562): ``from mclcr_keras.data import make_dataset`` imports
`pipeline` (hence TensorFlow) on first use, while importing a TensorFlow-free submodule such as
``mclcr_keras.data.faces`` or ``mclcr_keras.data.video`` does not load TensorFlow (the converter's
worker processes rely on this).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CorruptShardError": "pipeline",
    "count_records": "pipeline",
    "list_shards": "pipeline",
    "make_dataset": "pipeline",
    "scan_shard": "pipeline",
    "FEATURE_SPEC": "schema",
    "LABEL_NAMES": "schema",
    "METADATA_KEYS": "schema",
    "SCHEMA_VERSION": "schema",
    "decode_image": "schema",
    "encode_example": "schema",
    "encode_image": "schema",
    "parse_example": "schema",
    "parse_shard_name": "schema",
    "shard_name": "schema",
    "shard_pattern": "schema",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    submodule = _EXPORTS.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
