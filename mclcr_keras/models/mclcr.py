"""The MC-LCR model (Wang et al. 2022, arXiv 2110.03290, Sections 3.1-3.4) and `build_mclcr`.

`MCLCR` is a functional `keras.Model` subclass (keras-hub style): `__init__` creates the layers,
wires the functional graph from `images` to `{"logit", "probability", "embedding"}`, and keeps the
`MCLCRConfig`, which is all `get_config` stores, so `.keras` files round-trip. Its `train_step` /
`test_step` compute `alpha * SupCon + (1 - alpha) * BCE` (see `mclcr_keras.models.objective`).

Example:

```python
from mclcr_keras.models import build_mclcr

model = build_mclcr(weights=None)            # paper defaults, 256 px, compiled with AdamW
outputs = model(images)                      # images: (B, 256, 256, 3) float pixels in [0, 255]
features = model.feature_extractor(images)   # dict: b1, SSF_b1, GF, AF, PF, F_E, ...
```
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from mclcr_keras.layers import AmpPhaseCrossAttention, GramStyle, MixerBlock, PatchSpectrum
from mclcr_keras.models.backbone import build_backbone
from mclcr_keras.models.config import MCLCRConfig
from mclcr_keras.models.objective import flat_labels, replica_objective, scale_for_replicas

OUTPUT_KEYS = ("logit", "probability", "embedding")


def _replicas() -> int:
    """Replicas of the strategy the model is being built under (1 outside any strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def _frequency_branch(images, config: MCLCRConfig) -> dict[str, Any]:
    """PatchSpectrum -> Dense embeddings -> cross attention -> Mixer x depth -> LN -> GAP."""
    amplitude, phase = PatchSpectrum(config.patch_size, name="patch_spectrum")(images)
    dim = config.token_dim
    streams = {
        "amplitude": keras.layers.Dense(dim, name="amplitude_embedding")(amplitude),
        "phase": keras.layers.Dense(dim, name="phase_embedding")(phase),
    }
    attended = AmpPhaseCrossAttention(
        num_heads=config.num_heads, scale=config.attention_logit_scale, name="amp_phase_attention"
    )([streams["amplitude"], streams["phase"]])
    pooled = {}
    for stream, tokens, key in zip(("amplitude", "phase"), attended, ("AF", "PF")):
        for depth in range(config.mixer_depth):
            tokens = MixerBlock(
                tokens_mlp_dim=config.tokens_mlp_dim,
                channels_mlp_dim=config.channels_mlp_dim,
                name=f"{stream}_mixer_{depth}",
            )(tokens)
        tokens = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{stream}_norm")(tokens)
        pooled[key] = keras.layers.GlobalAveragePooling1D(name=f"{stream}_pool")(tokens)
    return {"amplitude": amplitude, "phase": phase, **pooled}


@keras.saving.register_keras_serializable(package="mclcr_keras")
class MCLCR(keras.Model):
    """MC-LCR face-forgery detector: Xception + SSRB Gram features + amplitude/phase branch.

    Input: RGB face crops `(B, S, S, 3)`, float pixels in [0, 255] (S = `config.image_size`);
    the rescaling to Xception's [-1, 1] happens inside the model. Output: a dict with `logit`
    `(B, 1)`, `probability` `(B, 1)` (sigmoid, float32) and `embedding` `(B, projection_dim)`
    (L2-normalised, float32). `feature_extractor` gives the intermediate features.

    Reference: Wang, Jiang, Jin, Li, Cui, "MC-LCR: Multi-modal contrastive classification by
    locally correlated representations for effective face forgery detection", Knowledge-Based
    Systems 2022 (arXiv:2110.03290).

    Args:
        config: an `MCLCRConfig` or its `to_dict()`; default `MCLCRConfig()`.
        load_backbone_weights: load `config.weights` into Xception. `from_config` passes False
            (the weights come from the saved file, and ImageNet may be unreachable there).
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:

    >>> import numpy as np
    >>> model = MCLCR(MCLCRConfig.smoke())
    >>> sorted(model(np.zeros((2, 64, 64, 3), "float32")).keys())
    ['embedding', 'logit', 'probability']
    """

    def __init__(
        self,
        config: MCLCRConfig | dict | None = None,
        load_backbone_weights: bool = True,
        **kwargs,
    ):
        if config is None:
            config = MCLCRConfig()
        elif isinstance(config, dict):
            config = MCLCRConfig.from_dict(config)
        elif not isinstance(config, MCLCRConfig):
            raise ValueError(f"config must be an MCLCRConfig or a dict; got {type(config)}")
        kwargs.setdefault("name", config.variant)

        # === Layers and functional graph ===
        weights = config.weights if load_backbone_weights else None
        backbone = build_backbone(
            weights,
            config.global_feature,
            sync_batchnorm=config.sync_batchnorm and _replicas() > 1,
            bn_momentum=config.bn_momentum,
        )
        size = config.image_size
        images = keras.Input((size, size, 3), name="images")
        scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(images)
        taps = backbone(scaled)
        features = {key: taps[key] for key in ("b1", "b2", "b3")}
        features["GF"] = keras.layers.GlobalAveragePooling2D(name="global_pool")(taps["global"])

        if config.variant == "baseline":
            head_input = keras.layers.Dropout(config.dropout, name="dropout")(features["GF"])
            encoded = features["GF"]  # the (untrained) embedding head projects GF itself
        else:
            fused = []
            if config.use_ssrb:
                for key in ("b1", "b2", "b3"):
                    features[f"SSF_{key}"] = GramStyle(name=f"gram_style_{key}")(taps[key])
                    fused.append(features[f"SSF_{key}"])
            fused.append(features["GF"])
            if config.use_papda:
                features.update(_frequency_branch(images, config))
                fused.extend([features["AF"], features["PF"]])
            features["F_MM"] = keras.layers.Concatenate(name="fusion")(fused)
            dropped = keras.layers.Dropout(config.dropout, name="dropout")(features["F_MM"])
            encoded = keras.layers.Dense(config.encoder_dim, name="encoder")(dropped)
            features["F_E"] = encoded
            head_input = encoded

        # The heads run in float32 under mixed precision: the logit feeds BCE, z feeds SupCon.
        logit = keras.layers.Dense(1, dtype="float32", name="logit")(head_input)
        probability = keras.layers.Activation("sigmoid", dtype="float32", name="probability")(
            logit
        )
        projected = keras.layers.Dense(config.projection_dim, dtype="float32", name="projection")(
            encoded
        )
        embedding = keras.layers.UnitNormalization(axis=-1, dtype="float32", name="embedding")(
            projected
        )
        outputs = {"logit": logit, "probability": probability, "embedding": embedding}
        super().__init__(inputs=images, outputs=outputs, **kwargs)

        # === Config and training state ===
        self.config = config
        self.backbone = backbone
        self._feature_tensors = features
        self._feature_model = None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.bce_tracker = keras.metrics.Mean(name="bce")
        self.supcon_tracker = keras.metrics.Mean(name="supcon")
        self.accuracy_metric = keras.metrics.BinaryAccuracy(name="accuracy")
        self.auc_metric = keras.metrics.AUC(name="auc")

    # ------------------------------------------------------------------ features
    @property
    def feature_names(self) -> tuple[str, ...]:
        """Keys of `feature_extractor`'s output for this variant."""
        return tuple(self._feature_tensors)

    @property
    def feature_extractor(self) -> keras.Model:
        """A `keras.Model` sharing this model's layers: images -> dict of intermediate features.

        Keys (those of the variant): `b1`, `b2`, `b3` (Xception tap maps), `GF` (pooled global
        feature), `SSF_b1`, `SSF_b2`, `SSF_b3` (Gram style features), `amplitude`, `phase`
        (patch spectra, `(B, N, P*P)`), `AF`, `PF` (pooled frequency features), `F_MM` (fused
        feature) and `F_E` (encoder output). The baseline has `b1`-`b3` and `GF` only.
        """
        if self._feature_model is None:
            model = keras.Model(self.input, dict(self._feature_tensors), name="features")
            object.__setattr__(self, "_feature_model", model)  # not a tracked sub-model
        return self._feature_model

    # ------------------------------------------------------------------ training
    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [
            self.loss_tracker,
            self.bce_tracker,
            self.supcon_tracker,
            self.accuracy_metric,
            self.auc_metric,
        ]

    def compile(self, optimizer=None, loss=None, metrics=None, **kwargs) -> None:
        """`keras.Model.compile`, defaulting to the paper's AdamW; the loss is built in.

        Args:
            optimizer: a Keras optimizer; `None` means `default_optimizer(self.config)`.
            loss, metrics: must be `None`: the model trains on
                `alpha * SupCon + (1 - alpha) * BCE` and tracks loss/bce/supcon/accuracy/auc.
            **kwargs: other `compile` arguments (`jit_compile`, `steps_per_execution`, ...).
        """
        if loss is not None or metrics is not None:
            raise ValueError(
                "MCLCR computes its own loss (alpha * SupCon + (1 - alpha) * BCE) and metrics; "
                f"compile it without loss/metrics (got loss={loss!r}, metrics={metrics!r})"
            )
        if optimizer is None:
            optimizer = default_optimizer(self.config)
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Re-compile from `get_compile_config()` when a `.keras` file is loaded."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)  # so its saved state can be loaded

    def _objective(self, labels, outputs):
        return replica_objective(
            labels,
            outputs["logit"],
            outputs["embedding"],
            alpha=self.config.effective_alpha,
            temperature=self.config.temperature,
            denominator=self.config.supcon_denominator,
        )

    def _update_metrics(self, labels, outputs, parts) -> dict[str, tf.Tensor]:
        batch = parts["batch"]
        self.loss_tracker.update_state(parts["loss"], sample_weight=batch)
        self.bce_tracker.update_state(parts["bce"], sample_weight=batch)
        self.supcon_tracker.update_state(parts["supcon"], sample_weight=batch)
        labels = tf.reshape(flat_labels(labels), (-1, 1))
        self.accuracy_metric.update_state(labels, outputs["probability"])
        self.auc_metric.update_state(labels, outputs["probability"])
        return {metric.name: metric.result() for metric in self.metrics}

    @staticmethod
    def _unpack(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError("MCLCR.fit/evaluate need (images, labels) batches; got no labels")
        if sample_weight is not None:
            raise ValueError(
                "MCLCR does not support sample_weight/class_weight: batches are class-balanced "
                "(the SupCon term has no per-sample weighting)"
            )
        return x, y

    def train_step(self, data):
        x, y = self._unpack(data)
        with tf.GradientTape() as tape:
            outputs = self(x, training=True)
            objective, parts = self._objective(y, outputs)
            if self.losses:
                objective = objective + scale_for_replicas(tf.add_n(self.losses))
            scaled = self.optimizer.scale_loss(objective)
        trainable = self.trainable_weights
        gradients = tape.gradient(scaled, trainable)
        self.optimizer.apply(gradients, trainable)
        return self._update_metrics(y, outputs, parts)

    def test_step(self, data):
        x, y = self._unpack(data)
        outputs = self(x, training=False)
        _, parts = self._objective(y, outputs)
        return self._update_metrics(y, outputs, parts)

    # ------------------------------------------------------------------ serialisation
    def get_config(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None) -> MCLCR:
        config = dict(config)
        return cls(
            config=config.pop("config"),
            load_backbone_weights=False,
            name=config.get("name"),
            trainable=config.get("trainable", True),
        )


def default_optimizer(config: MCLCRConfig) -> keras.optimizers.Optimizer:
    """AdamW with the config's learning rate and weight decay (paper: 1e-3, 1e-4)."""
    return keras.optimizers.AdamW(
        learning_rate=config.learning_rate, weight_decay=config.weight_decay
    )


def build_mclcr(
    config: MCLCRConfig | dict | None = None, compile: bool = True, **overrides: Any
) -> MCLCR:
    """Build (and by default compile) an MC-LCR model.

    Args:
        config: an `MCLCRConfig`, its dict form, or `None` for the paper defaults.
        compile: compile with `default_optimizer(config)` (AdamW 1e-3, weight decay 1e-4).
        **overrides: `MCLCRConfig` fields replacing those of `config`, e.g. `weights=None`.

    Returns:
        An `MCLCR` model. Build it inside `strategy.scope()` to train under `tf.distribute`.

    Example:

    >>> model = build_mclcr(image_size=64, weights=None, variant="no_papda")
    >>> model.config.fused_dim
    2496
    """
    if config is None:
        config = MCLCRConfig(**overrides)
    elif isinstance(config, dict):
        config = MCLCRConfig.from_dict({**config, **overrides})
    elif isinstance(config, MCLCRConfig):
        config = config.replace(**overrides) if overrides else config
    else:
        raise ValueError(f"config must be an MCLCRConfig, a dict or None; got {type(config)}")
    model = MCLCR(config)
    if compile:
        model.compile()
    return model
