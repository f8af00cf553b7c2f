"""MCLCR model contract: outputs and feature dimensions per variant, at the paper's 256 px."""

import keras
import numpy as np
import pytest
from references import cross_attention, sigmoid

from mclcr_keras.models import MCLCR, VARIANTS, MCLCRConfig, build_mclcr

SSRB = {"SSF_b1": 64, "SSF_b2": 128, "SSF_b3": 256}
PAPDA = {"AF": 256, "PF": 256}


def _images(size, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _expected_features(variant, global_dim=2048):
    features = {"b1": 64, "b2": 128, "b3": 256, "GF": global_dim}
    if variant == "baseline":
        return features
    if variant in ("mclcr", "no_papda", "no_supcon"):
        features.update(SSRB)
    if variant in ("mclcr", "no_ssrb", "no_supcon"):
        features.update(PAPDA)
        features.update({"amplitude": 256, "phase": 256})
    fused = sum(features[k] for k in (*SSRB, "GF", *PAPDA) if k in features)
    features.update({"F_MM": fused, "F_E": 1024})
    return features


@pytest.mark.parametrize("variant", VARIANTS)
def test_contract_at_256_px(variant):
    model = build_mclcr(variant=variant, weights=None, compile=False)
    assert isinstance(model, MCLCR) and model.config.image_size == 256
    images = _images(256, batch=2)
    outputs = model(images)
    assert set(outputs) == {"logit", "probability", "embedding"}
    assert tuple(outputs["logit"].shape) == (2, 1)
    assert tuple(outputs["probability"].shape) == (2, 1)
    assert tuple(outputs["embedding"].shape) == (2, 128)
    for value in outputs.values():
        assert value.dtype == "float32"
    logit = keras.ops.convert_to_numpy(outputs["logit"])
    probability = keras.ops.convert_to_numpy(outputs["probability"])
    embedding = keras.ops.convert_to_numpy(outputs["embedding"])
    np.testing.assert_allclose(probability, sigmoid(logit), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-5)

    expected = _expected_features(variant)
    symbolic = model.feature_extractor.output
    assert set(symbolic) == set(expected) == set(model.feature_names)
    for key, channels in expected.items():
        assert symbolic[key].shape[-1] == channels, key
    if "F_MM" in expected:
        assert symbolic["F_MM"].shape[-1] == model.config.fused_dim
    if variant == "mclcr":
        assert expected["F_MM"] == 64 + 128 + 256 + 2048 + 256 + 256
        features = model.feature_extractor(images[:1])
        assert tuple(features["b1"].shape) == (1, 125, 125, 64)
        assert tuple(features["b2"].shape) == (1, 63, 63, 128)
        assert tuple(features["b3"].shape) == (1, 32, 32, 256)
        assert tuple(features["amplitude"].shape) == (1, 256, 256)
        # The extractor shares the model's layers: its F_E gives the model's logit.
        logit_from_fe = model.get_layer("logit")(features["F_E"])
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(logit_from_fe), logit[:1], rtol=1e-4, atol=1e-5
        )


def test_block13_global_feature_at_256_px():
    model = build_mclcr(global_feature="block13", weights=None, compile=False)
    symbolic = model.feature_extractor.output
    assert symbolic["GF"].shape[-1] == 1024
    assert symbolic["F_MM"].shape[-1] == 64 + 128 + 256 + 1024 + 256 + 256
    outputs = model(_images(256, batch=1))
    assert tuple(outputs["embedding"].shape) == (1, 128)


@pytest.fixture(scope="module")
def baseline():
    return build_mclcr(MCLCRConfig.smoke(variant="baseline"), compile=False)


def test_baseline_has_no_extra_branches(baseline):
    model = baseline
    classes = {type(layer).__name__ for layer in model.layers}
    assert not classes & {"GramStyle", "PatchSpectrum", "AmpPhaseCrossAttention", "MixerBlock"}
    full = build_mclcr(MCLCRConfig.smoke(), compile=False)
    assert {"GramStyle", "PatchSpectrum", "AmpPhaseCrossAttention", "MixerBlock"} <= {
        type(layer).__name__ for layer in full.layers
    }
    # Two mixer blocks per stream, separate weights.
    mixers = [layer.name for layer in full.layers if type(layer).__name__ == "MixerBlock"]
    assert sorted(mixers) == [
        "amplitude_mixer_0", "amplitude_mixer_1", "phase_mixer_0", "phase_mixer_1"
    ]
    assert full.count_params() > model.count_params()


def test_pixels_are_rescaled_inside_the_model(baseline):
    model = baseline
    images = _images(64, batch=1)
    taps_from_model = model.feature_extractor(images)["b1"]
    taps_direct = model.backbone(images / 127.5 - 1.0)["b1"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(taps_from_model),
        keras.ops.convert_to_numpy(taps_direct),
        rtol=1e-4,
        atol=1e-4,
    )


def test_build_mclcr_arguments():
    model = build_mclcr(MCLCRConfig.smoke(), variant="no_papda")
    assert model.config.variant == "no_papda" and model.name == "no_papda"
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.optimizer.weight_decay == pytest.approx(1e-4)
    assert not build_mclcr(MCLCRConfig.smoke(), compile=False).compiled
    from_dict = build_mclcr(MCLCRConfig.smoke().to_dict(), learning_rate=0.01)
    assert float(from_dict.optimizer.learning_rate) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="variant must be one of"):
        build_mclcr(MCLCRConfig.smoke(), variant="tiny")
    with pytest.raises(ValueError, match="config must be"):
        build_mclcr("mclcr")


@pytest.mark.parametrize("attention_scale, factor", [("head", 1 / np.sqrt(256 / 4)),
                                                      ("model", 1 / np.sqrt(256))])
def test_attention_scale_against_numpy(attention_scale, factor):
    """Eq. 5's 1/sqrt(D) or each head's 1/sqrt(D/h), D = 16 * 16, h = 4, checked in NumPy."""
    config = MCLCRConfig.smoke(attention_scale=attention_scale)
    model = build_mclcr(config, compile=False)
    layer = model.get_layer("amp_phase_attention")
    rng = np.random.default_rng(5)
    layer.set_weights([rng.normal(scale=0.15, size=w.shape).astype("float32")
                       for w in layer.get_weights()])
    amplitude, phase = (rng.normal(size=(2, config.num_patches, 256)).astype("float32")
                        for _ in range(2))
    at, pt = layer([amplitude, phase])
    expected_at, expected_pt = cross_attention(amplitude, phase, layer, scale=factor)
    for got, expected in ((at, expected_at), (pt, expected_pt)):  # float32 sums over D = 256
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4,
                                   atol=1e-5 * np.abs(expected).max())
    other = 1 / np.sqrt(256) if attention_scale == "head" else 1 / np.sqrt(64)
    assert np.abs(np.asarray(at) - cross_attention(amplitude, phase, layer, other)[0]).max() > 1e-2
    # The .keras config keeps the choice; one saved without the field loads as "head".
    saved = model.get_config()
    assert MCLCR.from_config(saved).config.attention_scale == attention_scale
    if attention_scale == "head":
        del saved["config"]["attention_scale"]
        restored = MCLCR.from_config(saved)
        assert restored.get_layer("amp_phase_attention").scale is None
