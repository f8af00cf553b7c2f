"""Data: the TFRecord schema (`schema`) and the tf.data readers (`pipeline`)."""

from mclcr_keras.data.pipeline import (
    CorruptShardError,
    count_records,
    list_shards,
    make_dataset,
    scan_shard,
)
from mclcr_keras.data.schema import (
    FEATURE_SPEC,
    LABEL_NAMES,
    METADATA_KEYS,
    SCHEMA_VERSION,
    decode_image,
    encode_example,
    encode_image,
    parse_example,
    parse_shard_name,
    shard_name,
    shard_pattern,
)

__all__ = [
    "CorruptShardError",
    "count_records",
    "list_shards",
    "make_dataset",
    "scan_shard",
    "FEATURE_SPEC",
    "LABEL_NAMES",
    "METADATA_KEYS",
    "SCHEMA_VERSION",
    "decode_image",
    "encode_example",
    "encode_image",
    "parse_example",
    "parse_shard_name",
    "shard_name",
    "shard_pattern",
]
