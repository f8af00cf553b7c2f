"""The TFRecord format of mclcr_keras: the one module that both writes and parses records.

A record is a serialized ``tf.train.Example`` holding one aligned face crop:

| feature       | type   | meaning                                              |
|---------------|--------|------------------------------------------------------|
| ``image``     | bytes  | encoded PNG (default, lossless) or JPEG crop, RGB    |
| ``label``     | int64  | 0 real, 1 fake                                       |
| ``video_id``  | bytes  | video id, unique within (dataset, method)            |
| ``method``    | bytes  | manipulation method (``"original"`` for real videos) |
| ``dataset``   | bytes  | source dataset, e.g. ``"ffpp"``                      |
| ``frame_index`` | int64 | index of the frame in its video                     |

Shards live at ``<records_dir>/<split>/<real|fake>-NNNNN-of-NNNNN.tfrecord``, one set per split
and class, so balanced sampling needs no filtering.

Importing this module imports neither TensorFlow nor OpenCV (the converter's workers and the
layout listing rely on it): `encode_image` imports OpenCV, and the functions that need TensorFlow
(`encode_example`, `parse_example`, `decode_image`, ``FEATURE_SPEC``) import it, on first use.
`encode_example` serializes deterministically (map entries in key order), so equal records are
equal bytes in every process.

Example:

>>> rgb = np.zeros((8, 8, 3), np.uint8)
>>> blob = encode_example(encode_image(rgb), 1, "000_003", "Deepfakes", "ffpp", 0)
>>> feats = parse_example(blob)
>>> int(feats["label"]), feats["method"].numpy().decode()
(1, 'Deepfakes')
>>> tuple(decode_image(feats["image"]).shape)
(8, 8, 3)
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

SCHEMA_VERSION = 1
LABEL_NAMES = ("real", "fake")
SHARD_SUFFIX = ".tfrecord"
IMAGE_FORMATS = ("png", "jpeg")
METADATA_KEYS = ("video_id", "method", "dataset", "frame_index")

_SHARD_RE = re.compile(r"^(real|fake)-(\d{5})-of-(\d{5})\.tfrecord$")


def _tf():
    """TensorFlow, imported on first use (see the module docstring)."""
    import tensorflow

    return tensorflow


def _feature_spec() -> dict:
    """The parsing spec of a record (``FEATURE_SPEC``), built once TensorFlow is needed."""
    global _FEATURE_SPEC
    if _FEATURE_SPEC is None:
        tf = _tf()
        _FEATURE_SPEC = {
            "image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
            "video_id": tf.io.FixedLenFeature([], tf.string),
            "method": tf.io.FixedLenFeature([], tf.string),
            "dataset": tf.io.FixedLenFeature([], tf.string),
            "frame_index": tf.io.FixedLenFeature([], tf.int64),
        }
    return _FEATURE_SPEC


_FEATURE_SPEC: dict | None = None


def __getattr__(name: str):
    if name == "FEATURE_SPEC":
        return _feature_spec()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def encode_example(
    image: bytes,
    label: int,
    video_id: str,
    method: str,
    dataset: str,
    frame_index: int,
) -> bytes:
    """Serializes one face crop and its metadata to a ``tf.train.Example``.

    Args:
        image: encoded PNG/JPEG bytes (see `encode_image`).
        label: 0 real, 1 fake.
        video_id: video id, unique within (dataset, method).
        method: manipulation method, e.g. ``"Deepfakes"`` or ``"original"``.
        dataset: source dataset name, e.g. ``"ffpp"``.
        frame_index: index of the frame in its video (>= 0).

    Returns:
        The serialized example, ready for ``tf.io.TFRecordWriter.write``; deterministic (the
        same arguments give the same bytes in every process).

    Example:

    >>> blob = encode_example(encode_image(np.zeros((4, 4, 3), np.uint8)), 0, "000",
    ...                       "original", "ffpp", 12)
    >>> int(parse_example(blob)["frame_index"])
    12
    """
    if not isinstance(image, (bytes, bytearray)) or not image:
        raise ValueError(f"image must be non-empty encoded bytes, got {type(image).__name__}")
    if int(label) not in (0, 1):
        raise ValueError(f"label must be 0 (real) or 1 (fake), got {label!r}")
    if int(frame_index) < 0:
        raise ValueError(f"frame_index must be >= 0, got {frame_index!r}")
    train = _tf().train

    def bytes_feature(value: bytes):
        return train.Feature(bytes_list=train.BytesList(value=[value]))

    def int64_feature(value: int):
        return train.Feature(int64_list=train.Int64List(value=[int(value)]))

    feature = {
        "image": bytes_feature(bytes(image)),
        "label": int64_feature(label),
        "video_id": bytes_feature(str(video_id).encode("utf-8")),
        "method": bytes_feature(str(method).encode("utf-8")),
        "dataset": bytes_feature(str(dataset).encode("utf-8")),
        "frame_index": int64_feature(frame_index),
    }
    example = train.Example(features=train.Features(feature=feature))
    # Protobuf writes map entries in an order that changes from process to process; sorted keys
    # make a resumed build's shards byte-identical to an uninterrupted run's.
    return example.SerializeToString(deterministic=True)


def encode_image(rgb: np.ndarray, image_format: str = "png", jpeg_quality: int = 95) -> bytes:
    """Encodes an RGB uint8 image (H, W, 3) to PNG (lossless) or JPEG bytes with OpenCV.

    Args:
        rgb: uint8 array of shape (H, W, 3) in RGB channel order.
        image_format: ``"png"`` or ``"jpeg"``.
        jpeg_quality: JPEG quality 1-100 (ignored for PNG).

    Example:

    >>> encode_image(np.zeros((256, 256, 3), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    import cv2

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(
            f"rgb must be a uint8 array of shape (H, W, 3), got {rgb.dtype} {rgb.shape}"
        )
    fmt = image_format.lower()
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality!r}")
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    return buf.tobytes()


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses serialized examples: a scalar string gives scalars, a (N,) batch gives (N,) tensors.

    Example:

    >>> blob = encode_example(encode_image(np.zeros((4, 4, 3), np.uint8)), 0, "000",
    ...                       "original", "ffpp", 12)
    >>> int(parse_example(blob)["label"])
    0
    >>> parse_example([blob, blob])["frame_index"].shape.as_list()
    [2]
    """
    tf = _tf()
    serialized = tf.convert_to_tensor(serialized, dtype=tf.string)
    if serialized.shape.rank == 0:
        return tf.io.parse_single_example(serialized, _feature_spec())
    return tf.io.parse_example(serialized, _feature_spec())


def decode_image(bytes_tensor: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """Decodes one encoded PNG or JPEG image to a uint8 tensor of shape (H, W, channels).

    Example:

    >>> pixels = decode_image(encode_image(np.full((6, 4, 3), 7, np.uint8)))
    >>> pixels.dtype.name, tuple(pixels.shape), int(pixels[0, 0, 0])
    ('uint8', (6, 4, 3), 7)
    """
    tf = _tf()
    image = tf.io.decode_image(bytes_tensor, channels=channels, dtype=tf.uint8,
                               expand_animations=False)
    image.set_shape([None, None, channels])
    return image


def shard_name(label_name: str, index: int, count: int) -> str:
    """File name of shard ``index`` of ``count`` of a class: ``real-00000-of-00004.tfrecord``.

    Example:

    >>> shard_name("fake", 2, 4)
    'fake-00002-of-00004.tfrecord'
    """
    if label_name not in LABEL_NAMES:
        raise ValueError(f"label_name must be one of {LABEL_NAMES}, got {label_name!r}")
    if not 0 <= int(index) < int(count) or int(count) > 99999:
        raise ValueError(f"need 0 <= index < count <= 99999, got index={index}, count={count}")
    return f"{label_name}-{int(index):05d}-of-{int(count):05d}{SHARD_SUFFIX}"


def parse_shard_name(name: str) -> tuple[str, int, int]:
    """Inverse of `shard_name`: ``"real-00001-of-00004.tfrecord"`` -> ``("real", 1, 4)``."""
    match = _SHARD_RE.match(os.path.basename(name))
    if not match:
        raise ValueError(f"not a shard name (<real|fake>-NNNNN-of-NNNNN.tfrecord): {name!r}")
    return match.group(1), int(match.group(2)), int(match.group(3))


def shard_pattern(records_dir: str | os.PathLike, split: str, label_name: str) -> str:
    """Glob pattern of a class's shards in a split: ``<records_dir>/<split>/real-*-of-*.tfrecord``.

    Example:

    >>> shard_pattern("records/ffpp", "train", "real")
    'records/ffpp/train/real-*-of-*.tfrecord'
    """
    if label_name not in LABEL_NAMES:
        raise ValueError(f"label_name must be one of {LABEL_NAMES}, got {label_name!r}")
    return os.path.join(os.fspath(records_dir), split, f"{label_name}-*-of-*{SHARD_SUFFIX}")
