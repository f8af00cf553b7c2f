"""The TFRecord schema: encode -> TFRecordWriter -> TFRecordDataset -> parse round trip; the
TensorFlow-free modules and lazy exports of `mclcr_keras.data`; its docstring examples."""

import doctest
import importlib
import inspect
import pkgutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mclcr_keras.data import schema


def _face(seed: int, size: int = 48) -> np.ndarray:
    """A smooth RGB image with distinct channels, so an RGB/BGR swap is caught."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    rgb = np.stack([xx * 4, yy * 3 + 10, (xx + yy) * 2], axis=-1) % 256
    rgb = rgb + rng.integers(0, 20, size=rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def test_round_trip_through_tfrecord_file(tmp_path):
    rows = [
        (_face(0), 0, "000", "original", "ffpp", 0),
        (_face(1, size=40), 1, "000_003", "Deepfakes", "ffpp", 29),
        (_face(2), 1, "id/ü-é", "NeuralTextures", "celebdf", 123456789012),
    ]
    path = tmp_path / schema.shard_name("fake", 0, 1)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for rgb, label, vid, method, ds, idx in rows:
            png = schema.encode_image(rgb)
            writer.write(schema.encode_example(png, label, vid, method, ds, idx))

    got = [schema.parse_example(r) for r in tf.data.TFRecordDataset(str(path))]
    assert len(got) == len(rows)
    for feats, (rgb, label, vid, method, ds, idx) in zip(got, rows):
        assert set(feats) == {"image", "label", "video_id", "method", "dataset", "frame_index"}
        assert feats["label"].dtype == tf.int64 and int(feats["label"]) == label
        assert feats["video_id"].numpy().decode("utf-8") == vid
        assert feats["method"].numpy().decode() == method
        assert feats["dataset"].numpy().decode() == ds
        assert int(feats["frame_index"]) == idx
        pixels = schema.decode_image(feats["image"])
        assert pixels.dtype == tf.uint8
        np.testing.assert_array_equal(pixels.numpy(), rgb)  # PNG is pixel exact, RGB order kept


def test_batched_parse_and_jpeg_decode():
    rgb = _face(3, size=64)
    blobs = [
        schema.encode_example(schema.encode_image(rgb, "jpeg", jpeg_quality=98), i % 2, f"v{i}",
                              "m", "d", i)
        for i in range(4)
    ]
    feats = schema.parse_example(tf.constant(blobs))
    assert feats["label"].shape == (4,)
    np.testing.assert_array_equal(feats["label"].numpy(), [0, 1, 0, 1])
    np.testing.assert_array_equal(feats["frame_index"].numpy(), [0, 1, 2, 3])
    pixels = schema.decode_image(feats["image"][0]).numpy()
    assert pixels.shape == (64, 64, 3)
    # Lossy but close, and in RGB order: the channel-swapped image is much further away.
    err = np.abs(pixels.astype(int) - rgb.astype(int)).mean()
    err_swapped = np.abs(pixels.astype(int) - rgb[..., ::-1].astype(int)).mean()
    assert err < 6.0 and err_swapped > 5 * err, (err, err_swapped)
    # The JPEG bytes really are JPEG (SOI marker), PNG bytes PNG.
    assert schema.encode_image(rgb, "jpeg")[:2] == b"\xff\xd8"
    assert schema.encode_image(rgb)[:8] == b"\x89PNG\r\n\x1a\n"


def test_shard_names():
    assert schema.SCHEMA_VERSION == 1
    assert schema.LABEL_NAMES == ("real", "fake")
    assert schema.shard_name("real", 0, 4) == "real-00000-of-00004.tfrecord"
    assert schema.shard_name("fake", 12, 100) == "fake-00012-of-00100.tfrecord"
    assert schema.parse_shard_name("/x/train/fake-00012-of-00100.tfrecord") == ("fake", 12, 100)
    assert schema.shard_pattern("/r", "val", "real") == "/r/val/real-*-of-*.tfrecord"
    with pytest.raises(ValueError, match="'other'"):
        schema.shard_name("other", 0, 1)
    with pytest.raises(ValueError, match="index=4, count=4"):
        schema.shard_name("real", 4, 4)
    with pytest.raises(ValueError, match="not a shard name"):
        schema.parse_shard_name("real-1-of-4.tfrecord")


def test_bad_inputs_raise_with_value():
    png = schema.encode_image(_face(0))
    with pytest.raises(ValueError, match="got 2"):
        schema.encode_example(png, 2, "v", "m", "d", 0)
    with pytest.raises(ValueError, match="got -1"):
        schema.encode_example(png, 0, "v", "m", "d", -1)
    with pytest.raises(ValueError, match="non-empty"):
        schema.encode_example(b"", 0, "v", "m", "d", 0)
    with pytest.raises(ValueError, match="float32"):
        schema.encode_image(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="'bmp'"):
        schema.encode_image(np.zeros((8, 8, 3), np.uint8), "bmp")


def _imports_tensorflow(code: str) -> bool:
    """Whether running ``code`` in a fresh interpreter leaves TensorFlow in ``sys.modules``."""
    completed = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint('tensorflow' in sys.modules)"],
        capture_output=True, text=True, timeout=120, check=True)
    return completed.stdout.strip().splitlines()[-1] == "True"


def test_tensorflow_free_submodules_do_not_import_tensorflow():
    # The converter's workers and the layout listing import these; the package exports must not
    # pull TensorFlow in.
    assert not _imports_tensorflow(
        "import mclcr_keras.data.faces, mclcr_keras.data.video, mclcr_keras.data.crops\n"
        "import mclcr_keras.data.alignment, mclcr_keras.data.media, mclcr_keras.data.splits\n"
        "import mclcr_keras.data.sources, mclcr_keras.data.writer.workers\n"
        "import mclcr_keras.data.writer.options, mclcr_keras.data.writer.tables\n"
        "import mclcr_keras.data.writer.merge, mclcr_keras.data.writer.shards")
    # The schema's OpenCV-only functions do not need it either.
    assert not _imports_tensorflow(
        "import numpy as np\nfrom mclcr_keras.data import schema\n"
        "assert schema.encode_image(np.zeros((8, 8, 3), np.uint8))[:4] == b'\\x89PNG'\n"
        "assert schema.shard_name('real', 0, 1) == 'real-00000-of-00001.tfrecord'")
    # The lazy exports still resolve, to the submodules' objects.
    import mclcr_keras.data as data
    from mclcr_keras.data import count_records, list_shards, make_dataset, pipeline, records

    assert make_dataset is pipeline.make_dataset and data.encode_image is schema.encode_image
    assert count_records is records.count_records and list_shards is records.list_shards
    assert data.CorruptShardError is records.CorruptShardError and data.schema is schema
    assert set(data.__all__) <= set(dir(data)) and "make_dataset" in data.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        data.nope


def test_examples_serialize_with_sorted_feature_keys():
    # Deterministic serialization: map entries in key order, whatever the process's hash seed.
    blob = schema.encode_example(schema.encode_image(_face(4, size=16)), 1, "v", "m", "d", 7)
    keys = ["dataset", "frame_index", "image", "label", "method", "video_id"]
    positions = [blob.find(b"\n" + bytes([len(k)]) + k.encode()) for k in keys]
    assert -1 not in positions and positions == sorted(positions), positions
    assert blob == tf.train.Example.FromString(blob).SerializeToString(deterministic=True)


def _data_modules():
    import mclcr_keras.data as data

    names = [m.name for m in pkgutil.walk_packages(data.__path__, "mclcr_keras.data.")]
    return [importlib.import_module(name) for name in ["mclcr_keras.data", *names]]


def test_docstring_examples_of_the_data_package_run():
    # Every ">>>" example under mclcr_keras/data runs as a doctest (examples that need files are
    # plain code blocks instead); none is skipped.
    modules = _data_modules()
    assert {"mclcr_keras.data.writer.build", "mclcr_keras.data.sources.ffpp"} <= {
        m.__name__ for m in modules}
    attempted = 0
    for module in modules:
        assert "doctest: +SKIP" not in inspect.getsource(module), module.__name__
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False)
        assert result.failed == 0, f"{module.__name__}: {result.failed} example(s) failed"
        attempted += result.attempted
    assert attempted >= 20
