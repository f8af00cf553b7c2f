"""Data: the TFRecord schema (`schema`), the shards (`records`), the tf.data readers (`pipeline`),
and everything upstream of the records (sources, media, faces, crops, the writer).

The exports are resolved lazily (PEP 562): ``from mclcr_keras.data import make_dataset`` imports
`pipeline` (hence TensorFlow) on first use, while importing a TensorFlow-free submodule such as
``mclcr_keras.data.faces`` or ``mclcr_keras.data.video`` does not load TensorFlow (the converter's
worker processes rely on this).
"""

from mclcr_keras.lazy import lazy_exports

_EXPORTS = {
    "CorruptShardError": "records",
    "count_records": "records",
    "list_shards": "records",
    "make_dataset": "pipeline",
    "scan_shard": "records",
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

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
