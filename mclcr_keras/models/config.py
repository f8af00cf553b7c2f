"""`MCLCRConfig`: every hyper-parameter of the MC-LCR model and its training loss in one object.

Defaults follow the paper (Wang et al. 2022, arXiv 2110.03290): Table 1 for the dimensions,
Section 4.1 for the optimisation. `MCLCRConfig.smoke()` is the tiny variant the tests use.

Example:

```python
from mclcr_keras.models import MCLCRConfig, build_mclcr

config = MCLCRConfig(variant="no_papda", weights=None)
model = build_mclcr(config)
```
"""

from __future__ import annotations

import dataclasses
from typing import Any

VARIANTS = ("mclcr", "no_ssrb", "no_papda", "no_supcon", "baseline")
GLOBAL_FEATURES = {"block14": 2048, "block13": 1024}
SUPCON_DENOMINATORS = ("all", "negatives")
# "head": logits scaled by 1/sqrt(key_dim) = 1/sqrt(D / num_heads) (Keras' MultiHeadAttention);
# "model": by 1/sqrt(D), D = patch_size ** 2, as Eq. 5 of the paper prints it.
ATTENTION_SCALES = ("head", "model")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass
class MCLCRConfig:
    """Configuration of an MC-LCR model (architecture + loss + optimiser).

    Args:
        image_size: side of the square RGB face crop, pixels in [0, 255]. Must be a multiple of
            `patch_size`.
        patch_size: side P of the patches of the frequency branch; token width D = P * P.
        mixer_depth: number of `MixerBlock`s per stream (amplitude and phase).
        num_heads: heads of the amplitude-phase cross attention; must divide P * P.
        attention_scale: factor of the cross attention's logits: `"head"` = 1/sqrt(D / num_heads)
            (1/8 with the paper's P = 16 and 4 heads; the scaled dot product of each head, as
            Keras' MultiHeadAttention computes it) or `"model"` = 1/sqrt(D) (1/16), Eq. 5 as
            printed. Configs saved before this field existed load as `"head"`.
        tokens_mlp_dim: hidden width of the token-mixing MLP.
        channels_mlp_dim: hidden width of the channel-mixing MLP.
        dropout: dropout rate on the fused feature F_MM, in [0, 1).
        encoder_dim: width of F_E = Dense(encoder_dim)(F_MM).
        projection_dim: width of the L2-normalised contrastive embedding z.
        alpha: weight of the SupCon loss, L = alpha * SupCon + (1 - alpha) * BCE.
        temperature: SupCon temperature.
        supcon_denominator: `"all"` (Khosla et al.) or `"negatives"` (paper Eq. 13 as printed).
        global_feature: `"block14"` (GAP of Xception's last ReLU, 2048 channels) or `"block13"`
            (GAP of block 13's output, 1024 channels, as in the paper's Table 1).
        variant: `"mclcr"`, `"no_ssrb"`, `"no_papda"`, `"no_supcon"` or `"baseline"` (Table 5).
        weights: Xception initialisation: `"imagenet"`, `None` (random) or the path of a local
            Keras weights file (`.h5` / `.weights.h5`). The string `"none"` means `None`.
        learning_rate: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        sync_batchnorm: when the model is built under a `tf.distribute` strategy with several
            replicas, Xception's BatchNormalization uses the statistics of the global batch
            (so a distributed step equals the single-device step). No effect on one device.
        bn_momentum: momentum of Xception's BatchNormalization moving statistics; `None` keeps
            keras.applications' 0.99. 0.9 (PyTorch's default, used by DeepfakeBench's Xception)
            lets the inference statistics follow a short training from scratch.

    Example:

    >>> MCLCRConfig.smoke().image_size
    64
    """

    image_size: int = 256
    patch_size: int = 16
    mixer_depth: int = 2
    num_heads: int = 4
    attention_scale: str = "head"
    tokens_mlp_dim: int = 256
    channels_mlp_dim: int = 256
    dropout: float = 0.5
    encoder_dim: int = 1024
    projection_dim: int = 128
    alpha: float = 0.5
    temperature: float = 0.1
    supcon_denominator: str = "all"
    global_feature: str = "block14"
    variant: str = "mclcr"
    weights: str | None = "imagenet"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    sync_batchnorm: bool = True
    bn_momentum: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.weights, str) and self.weights.strip().lower() == "none":
            self.weights = None
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise a one-line `ValueError` naming the first invalid field and its value."""
        positive_ints = (
            "image_size", "patch_size", "mixer_depth", "num_heads", "tokens_mlp_dim",
            "channels_mlp_dim", "encoder_dim", "projection_dim",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"MCLCRConfig.{name} must be a positive integer; got {value!r}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"MCLCRConfig.image_size must be a multiple of patch_size={self.patch_size}; "
                f"got image_size={self.image_size}"
            )
        if self.image_size < 32:
            raise ValueError(
                f"MCLCRConfig.image_size must be at least 32 (Xception's strides); "
                f"got {self.image_size}"
            )
        token_dim = self.patch_size * self.patch_size
        if token_dim % self.num_heads:
            raise ValueError(
                f"MCLCRConfig.num_heads must divide patch_size**2={token_dim}; "
                f"got num_heads={self.num_heads}"
            )
        if self.attention_scale not in ATTENTION_SCALES:
            raise ValueError(
                f"MCLCRConfig.attention_scale must be one of {ATTENTION_SCALES}; "
                f"got {self.attention_scale!r}"
            )
        if not _is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MCLCRConfig.dropout must be in [0, 1); got {self.dropout!r}")
        if not _is_number(self.alpha) or not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"MCLCRConfig.alpha must be in [0, 1]; got {self.alpha!r}")
        if not _is_number(self.temperature) or self.temperature <= 0:
            raise ValueError(
                f"MCLCRConfig.temperature must be a positive number; got {self.temperature!r}"
            )
        if self.supcon_denominator not in SUPCON_DENOMINATORS:
            raise ValueError(
                f"MCLCRConfig.supcon_denominator must be one of {SUPCON_DENOMINATORS}; "
                f"got {self.supcon_denominator!r}"
            )
        if self.global_feature not in GLOBAL_FEATURES:
            raise ValueError(
                f"MCLCRConfig.global_feature must be one of {tuple(GLOBAL_FEATURES)}; "
                f"got {self.global_feature!r}"
            )
        if self.variant not in VARIANTS:
            raise ValueError(f"MCLCRConfig.variant must be one of {VARIANTS}; got {self.variant!r}")
        if self.weights is not None and not isinstance(self.weights, str):
            raise ValueError(
                "MCLCRConfig.weights must be 'imagenet', None or a path to a .h5 weights file; "
                f"got {self.weights!r}"
            )
        if isinstance(self.weights, str) and self.weights != "imagenet":
            if not self.weights.endswith((".h5", ".hdf5")):
                raise ValueError(
                    "MCLCRConfig.weights must be 'imagenet', None or a path to a .h5 weights "
                    f"file; got {self.weights!r}"
                )
        if not isinstance(self.sync_batchnorm, bool):
            raise ValueError(
                f"MCLCRConfig.sync_batchnorm must be True or False; got {self.sync_batchnorm!r}"
            )
        if self.bn_momentum is not None and (
            not _is_number(self.bn_momentum) or not 0.0 <= self.bn_momentum < 1.0
        ):
            raise ValueError(
                f"MCLCRConfig.bn_momentum must be None or in [0, 1); got {self.bn_momentum!r}"
            )
        if not _is_number(self.learning_rate) or self.learning_rate <= 0:
            raise ValueError(
                f"MCLCRConfig.learning_rate must be a positive number; got {self.learning_rate!r}"
            )
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(
                f"MCLCRConfig.weight_decay must be a number >= 0; got {self.weight_decay!r}"
            )

    # ------------------------------------------------------------------ derived values
    @property
    def token_dim(self) -> int:
        """D = P * P, width of the frequency tokens (and of AF, PF)."""
        return self.patch_size * self.patch_size

    @property
    def attention_logit_scale(self) -> float | None:
        """The cross attention's logit factor: `None` (Keras' 1/sqrt(key_dim)) or 1/sqrt(D)."""
        return None if self.attention_scale == "head" else self.token_dim ** -0.5

    @property
    def num_patches(self) -> int:
        """N = (image_size / P) ** 2, number of frequency tokens."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def global_dim(self) -> int:
        """Channels of GF: 2048 (block14) or 1024 (block13)."""
        return GLOBAL_FEATURES[self.global_feature]

    @property
    def use_ssrb(self) -> bool:
        return self.variant in ("mclcr", "no_papda", "no_supcon")

    @property
    def use_papda(self) -> bool:
        return self.variant in ("mclcr", "no_ssrb", "no_supcon")

    @property
    def effective_alpha(self) -> float:
        """SupCon weight actually used: 0 for the `no_supcon` and `baseline` variants."""
        return 0.0 if self.variant in ("no_supcon", "baseline") else float(self.alpha)

    @property
    def fused_dim(self) -> int:
        """Width of F_MM = concat(SSF_b1, SSF_b2, SSF_b3, GF, AF, PF) for this variant."""
        dim = self.global_dim
        if self.variant == "baseline":
            return dim
        if self.use_ssrb:
            dim += 64 + 128 + 256
        if self.use_papda:
            dim += 2 * self.token_dim
        return dim

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MCLCRConfig:
        """Inverse of `to_dict`; unknown keys raise a one-line `ValueError`."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"Unknown MCLCRConfig field(s): {unknown}")
        return cls(**values)

    def replace(self, **changes: Any) -> MCLCRConfig:
        """A copy with `changes` applied (validated)."""
        return self.from_dict({**self.to_dict(), **changes})

    @classmethod
    def smoke(cls, **changes: Any) -> MCLCRConfig:
        """The tiny configuration for tests: 64 px, random Xception, paper dimensions otherwise.

        Example: `pytest tests/test_model.py` builds `MCLCRConfig.smoke()` models.
        """
        values: dict[str, Any] = {"image_size": 64, "weights": None}
        values.update(changes)
        return cls(**values)
