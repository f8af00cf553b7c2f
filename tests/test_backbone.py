"""Xception taps found by structure; weight loading (ImageNet offline, local .h5 files)."""


import h5py
import keras
import numpy as np
import pytest
from keras.src.applications import xception as keras_xception
from keras.src.legacy.saving import legacy_h5_format

from mclcr_keras.models import BackboneWeightsError, build_backbone
from mclcr_keras.models.backbone import TAP_CHANNELS


def _tap_values(model, images):
    return {key: keras.ops.convert_to_numpy(value) for key, value in model(images).items()}


def _add_names(model):
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]


@pytest.fixture(scope="module")
def backbone():
    return build_backbone(weights=None)


def test_taps_shapes_and_channels_at_paper_size(backbone):
    model = backbone
    channels = {key: t.shape[-1] for key, t in model.output.items()}
    assert channels == {**TAP_CHANNELS, "global": 2048}
    out = model(np.zeros((1, 256, 256, 3), "float32"))
    assert tuple(out["b1"].shape) == (1, 125, 125, 64)
    assert tuple(out["b2"].shape) == (1, 63, 63, 128)
    assert tuple(out["b3"].shape) == (1, 32, 32, 256)
    assert tuple(out["global"].shape) == (1, 8, 8, 2048)


def test_taps_are_post_relu_block_outputs(backbone):
    model = backbone
    out = model(np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype("float32"))
    for key in ("b1", "b2", "b3", "global"):
        values = np.asarray(out[key])
        assert values.min() >= 0.0 and values.max() > 0.0, key


def test_building_twice_gives_the_same_taps_although_add_names_change():
    first = build_backbone(weights=None)
    second = build_backbone(weights=None)
    # Keras' per-process counter renames the residual adds on every build ...
    assert _add_names(first) != _add_names(second)
    # ... while the taps stay the same layers with the same shapes.
    for model in (first, second):
        producers = {key: t._keras_history.operation.name for key, t in model.output.items()}
        assert producers == {
            "b1": "block1_conv2_act",
            "b2": "block3_sepconv1_act",
            "b3": "block4_sepconv1_act",
            "global": "block14_sepconv2_act",
        }
    # Same weights, same taps: the values agree (a tap on another layer of the same shape would
    # not).
    second.set_weights(first.get_weights())
    images = np.random.default_rng(2).uniform(-1, 1, (1, 96, 96, 3)).astype("float32")
    expected = _tap_values(first, images)
    for key, values in _tap_values(second, images).items():
        np.testing.assert_array_equal(values, expected[key], err_msg=key)


def test_block13_global_feature_is_the_residual_sum_feeding_block14():
    for _ in range(2):  # twice: must not depend on the add layer's counter name
        model = build_backbone(weights=None, global_feature="block13")
        tensor = model.output["global"]
        producer = tensor._keras_history.operation
        assert isinstance(producer, keras.layers.Add)
        assert tuple(tensor.shape) == (None, None, None, 1024)
        out = model(np.zeros((1, 256, 256, 3), "float32"))
        assert tuple(out["global"].shape) == (1, 8, 8, 1024)
    with pytest.raises(ValueError, match="block12"):
        build_backbone(weights=None, global_feature="block12")


def test_imagenet_download_failure_is_one_line_error(monkeypatch, tmp_path):
    real_get_file = keras_xception.file_utils.get_file

    def unreachable_get_file(fname, origin, **kwargs):
        # Keep Keras' own download code; point it at a closed local port and an empty cache so
        # the test fails fast and never finds a cached file.
        kwargs["cache_dir"] = str(tmp_path)
        return real_get_file(fname, "http://127.0.0.1:9/" + fname, **kwargs)

    monkeypatch.setattr(keras_xception.file_utils, "get_file", unreachable_get_file)
    with pytest.raises(BackboneWeightsError) as info:
        build_backbone(weights="imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Could not download the ImageNet weights of Xception (")
    # The cause (Keras' download error for the unreachable address) is quoted, shortened ...
    assert "http://127.0.0.1:9/xception_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    # ... and the remedies are named: no weights, or a local copy of that file.
    assert "use weights=None (`--weights none`)" in message
    assert "local Xception .h5 weights file" in message
    assert message.endswith("(xception_weights_tf_dim_ordering_tf_kernels_notop.h5).")
    assert len(message) < 500
    # Raised `from None`: the report is this one line, not Keras' chained traceback.
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_weights_file_is_one_line_error(tmp_path):
    missing = str(tmp_path / "nope.h5")
    with pytest.raises(BackboneWeightsError) as info:
        build_backbone(weights=missing)
    assert str(info.value) == (
        f"Xception weights file not found: {missing!r}; use weights='imagenet', weights=None "
        "(`--weights none`) or the path of an existing .h5 file."
    )


def test_corrupt_weights_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(BackboneWeightsError) as info:
        build_backbone(weights=str(bad))
    message = str(info.value)
    assert "\n" not in message and len(message) < 500
    assert message.startswith(f"Could not load Xception weights from {str(bad)!r} (")
    assert message.endswith("expected Xception (include_top=False) weights in Keras .h5 format.")
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.fixture(scope="module")
def random_xception():
    """Xception (include_top=False) with random normal weights, none of them Keras' init."""
    source = keras.applications.Xception(
        include_top=False, weights=None, input_shape=(None, None, 3)
    )
    rng = np.random.default_rng(1)
    source.set_weights([rng.normal(size=w.shape).astype("float32") for w in source.weights])
    return source


@pytest.mark.parametrize("filename", ["xception.weights.h5", "xception_notop.h5"])
def test_local_weights_file_is_loaded(tmp_path, filename, random_xception):
    source = random_xception
    path = tmp_path / filename
    if filename.endswith(".weights.h5"):
        source.save_weights(path)  # Keras 3 format
    else:
        # The layout of Keras' downloadable ImageNet files (legacy HDF5, loaded by topology).
        with h5py.File(path, "w") as handle:
            legacy_h5_format.save_weights_to_hdf5_group(handle, source)
    model = build_backbone(weights=str(path))
    assert len(model.weights) == len(source.weights) == 234
    for loaded, expected in zip(model.weights, source.weights):
        assert loaded.path.split("/")[-1] == expected.path.split("/")[-1]
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(loaded), keras.ops.convert_to_numpy(expected)
        )
