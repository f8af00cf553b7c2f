"""MCLCRConfig: paper defaults, derived dimensions, validation, JSON round trip."""

import dataclasses
import json
import subprocess
import sys

import pytest

from mclcr_keras.models import VARIANTS, MCLCRConfig
from mclcr_keras.models.config import ATTENTION_SCALES, SUPCON_DENOMINATORS


def test_paper_defaults():
    config = MCLCRConfig()
    assert (config.image_size, config.patch_size, config.mixer_depth, config.num_heads) == (
        256, 16, 2, 4
    )
    assert (config.tokens_mlp_dim, config.channels_mlp_dim) == (256, 256)
    assert (config.dropout, config.encoder_dim, config.projection_dim) == (0.5, 1024, 128)
    assert (config.alpha, config.temperature, config.supcon_denominator) == (0.5, 0.1, "all")
    assert (config.global_feature, config.variant) == ("block14", "mclcr")
    assert config.weights == "imagenet"
    assert (config.learning_rate, config.weight_decay) == (1e-3, 1e-4)
    assert (config.token_dim, config.num_patches, config.global_dim) == (256, 256, 2048)
    assert config.attention_scale == "head" and config.attention_logit_scale is None


def test_attention_scale():
    assert ATTENTION_SCALES == ("head", "model")
    assert MCLCRConfig(attention_scale="model").attention_logit_scale == 1 / 16  # 1/sqrt(P*P)
    assert MCLCRConfig(attention_scale="model", patch_size=8,
                       image_size=64).attention_logit_scale == 1 / 8
    # A config saved before the field existed loads with today's per-head scaling.
    saved = MCLCRConfig(variant="no_ssrb").to_dict()
    del saved["attention_scale"]
    assert MCLCRConfig.from_dict(saved).attention_scale == "head"
    assert MCLCRConfig.from_dict(json.loads(json.dumps(
        MCLCRConfig(attention_scale="model").to_dict()))).attention_scale == "model"


@pytest.mark.parametrize(
    "changes, fused",
    [
        ({}, 64 + 128 + 256 + 2048 + 256 + 256),
        ({"global_feature": "block13"}, 64 + 128 + 256 + 1024 + 256 + 256),
        ({"variant": "no_ssrb"}, 2048 + 512),
        ({"variant": "no_papda"}, 64 + 128 + 256 + 2048),
        ({"variant": "no_supcon"}, 3008),
        ({"variant": "baseline"}, 2048),
        ({"patch_size": 8, "image_size": 64}, 448 + 2048 + 128),
    ],
)
def test_fused_dim(changes, fused):
    assert MCLCRConfig(**changes).fused_dim == fused


def test_effective_alpha_per_variant():
    alphas = {v: MCLCRConfig(variant=v, alpha=0.3).effective_alpha for v in VARIANTS}
    assert alphas == {"mclcr": 0.3, "no_ssrb": 0.3, "no_papda": 0.3, "no_supcon": 0.0,
                      "baseline": 0.0}


def test_dict_round_trip_is_json_able():
    config = MCLCRConfig(variant="no_ssrb", weights=None, alpha=0.25, global_feature="block13")
    text = json.dumps(config.to_dict())
    assert MCLCRConfig.from_dict(json.loads(text)) == config
    assert set(config.to_dict()) == {f.name for f in dataclasses.fields(MCLCRConfig)}


def test_smoke_and_replace():
    smoke = MCLCRConfig.smoke()
    assert smoke.image_size == 64 and smoke.weights is None and smoke.num_patches == 16
    assert MCLCRConfig.smoke(dropout=0.0).dropout == 0.0
    changed = smoke.replace(variant="baseline")
    assert changed.variant == "baseline" and smoke.variant == "mclcr"


def test_weights_none_string_and_local_path():
    assert MCLCRConfig(weights="none").weights is None
    assert MCLCRConfig(weights="None").weights is None
    assert MCLCRConfig(weights="/models/xception_notop.h5").weights == "/models/xception_notop.h5"
    assert MCLCRConfig(weights="x.weights.h5").weights == "x.weights.h5"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"image_size": 250}, "multiple of patch_size=16; got image_size=250"),
        ({"image_size": 16}, "at least 32"),
        ({"image_size": 256.0}, "image_size must be a positive integer; got 256.0"),
        ({"patch_size": 0}, "patch_size must be a positive integer; got 0"),
        ({"mixer_depth": True}, "mixer_depth must be a positive integer; got True"),
        ({"num_heads": 3}, "num_heads must divide patch_size**2=256; got num_heads=3"),
        ({"dropout": 1.0}, "dropout must be in [0, 1); got 1.0"),
        ({"alpha": -0.1}, "alpha must be in [0, 1]; got -0.1"),
        ({"temperature": 0}, "temperature must be a positive number; got 0"),
        ({"supcon_denominator": "pos"},
         "supcon_denominator must be one of ('all', 'negatives'); got 'pos'"),
        ({"global_feature": "block12"}, "got 'block12'"),
        ({"variant": "full"}, "variant must be one of"),
        ({"weights": "xception.ckpt"}, "got 'xception.ckpt'"),
        ({"weights": 3}, "got 3"),
        ({"learning_rate": 0.0}, "learning_rate must be a positive number; got 0.0"),
        ({"weight_decay": -1.0}, "weight_decay must be a number >= 0; got -1.0"),
        ({"bn_momentum": 1.0}, "bn_momentum must be None or in [0, 1); got 1.0"),
        ({"sync_batchnorm": "yes"}, "sync_batchnorm must be True or False; got 'yes'"),
        ({"attention_scale": "paper"},
         "attention_scale must be one of ('head', 'model'); got 'paper'"),
        ({"attention_scale": None}, "attention_scale must be one of ('head', 'model'); got None"),
    ],
)
def test_invalid_values_raise_one_line_value_error(changes, fragment):
    with pytest.raises(ValueError) as info:
        MCLCRConfig(**changes)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_unknown_field_in_dict():
    with pytest.raises(ValueError, match=r"Unknown MCLCRConfig field\(s\): \['depth'\]"):
        MCLCRConfig.from_dict({"depth": 3})


def test_variants_and_denominators():
    assert VARIANTS == ("mclcr", "no_ssrb", "no_papda", "no_supcon", "baseline")
    assert SUPCON_DENOMINATORS == ("all", "negatives")
    for denominator in SUPCON_DENOMINATORS:
        assert MCLCRConfig(supcon_denominator=denominator).supcon_denominator == denominator


def test_config_imports_no_tensorflow():
    """TF-free tools (build_records, the option checks of train) read the config module."""
    code = ("import sys\n"
            "from mclcr_keras.models import VARIANTS, MCLCRConfig\n"
            "from mclcr_keras.models.config import SUPCON_DENOMINATORS\n"
            "MCLCRConfig.smoke().to_dict()\n"
            "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
