"""AmpPhaseCrossAttention: the amplitude/phase cross attention of MC-LCR (Eq. 5-8)."""


import math

import keras


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_positive_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


class _ScaledMultiHeadAttention(keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` with logits multiplied by `scale`, not 1/sqrt(key_dim).

    Keras keeps the factor in `_inverse_sqrt_key_dim`, read by every path of `_compute_attention`
    (the fused `ops.dot_product_attention` one and the explicit one). The weights, their names
    and everything else are those of the stock layer.
    """

    def __init__(self, scale: float, **kwargs):
        super().__init__(**kwargs)
        if not hasattr(self, "_inverse_sqrt_key_dim"):  # a Keras that moved the factor
            raise RuntimeError(
                "this Keras version's MultiHeadAttention has no `_inverse_sqrt_key_dim`: "
                "AmpPhaseCrossAttention(scale=...) cannot set the attention scale; use scale=None"
            )
        self._inverse_sqrt_key_dim = float(scale)


@keras.saving.register_keras_serializable(package="mclcr_keras")
class AmpPhaseCrossAttention(keras.layers.Layer):
    """Cross attention between the amplitude and phase patch embeddings.

    With `E_as`, `E_ps` the amplitude and phase embeddings, `(B, N, D)` each:

    - `AT = E_as + MHA_a(query=LN_p(E_ps), key=value=LN_a(E_as))`
    - `PT = E_ps + MHA_p(query=LN_a(E_as), key=value=LN_p(E_ps))`

    `LN_a`, `LN_p` are two LayerNorms and `MHA_a`, `MHA_p` two `keras.layers.MultiHeadAttention`
    with separate weights. Each stream's attention is queried by the other modality and attends
    over its own (pre-normalised) tokens, with a residual connection to its own input.

    Each head's logits are `q . k * scale`: Keras' `1/sqrt(key_dim)` by default (the scaled
    dot-product of Vaswani et al., per head), or a given `scale`; Eq. 5 of the paper prints
    `1/sqrt(D)`, D the embedding width, which is `scale=D ** -0.5`.

    Reference: Wang et al., "MC-LCR: Multi-modal contrastive classification by locally correlated
    representations for effective face forgery detection", KBS 2022 (arXiv:2110.03290),
    Sec. 3.3, Eq. 5-8.

    Args:
        num_heads: int, number of attention heads.
        key_dim: int or None, size of each head's query/key projection; `None` means
            `D // num_heads` (then D must be divisible by `num_heads`).
        dropout: float in [0, 1), dropout on the attention probabilities.
        layer_norm_epsilon: float, epsilon of the two LayerNorms.
        scale: positive float or None, factor of the attention logits; `None` means
            `1 / sqrt(key_dim)` (Keras' `MultiHeadAttention`, unchanged).
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Returns:
        A tuple `(AT, PT)`, each with the shape of the inputs.

    Example:
        >>> import numpy as np
        >>> layer = AmpPhaseCrossAttention(num_heads=4)
        >>> e = np.random.rand(2, 16, 256).astype("float32")
        >>> at, pt = layer([e, e])
        >>> tuple(at.shape)
        (2, 16, 256)
    """

    def __init__(
        self,
        num_heads: int = 4,
        key_dim: int | None = None,
        dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        scale: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not _is_positive_int(num_heads):
            raise ValueError(
                f"`num_heads` must be a positive integer; received num_heads={num_heads!r}"
            )
        if key_dim is not None and not _is_positive_int(key_dim):
            raise ValueError(
                f"`key_dim` must be a positive integer or None; received key_dim={key_dim!r}"
            )
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); received dropout={dropout!r}")
        if not isinstance(layer_norm_epsilon, (int, float)) or layer_norm_epsilon <= 0:
            raise ValueError(
                "`layer_norm_epsilon` must be a positive number; "
                f"received layer_norm_epsilon={layer_norm_epsilon!r}"
            )
        if scale is not None and not _is_positive_number(scale):
            raise ValueError(
                f"`scale` must be a positive number or None; received scale={scale!r}"
            )
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = None if scale is None else float(scale)
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon

        self.amplitude_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="amplitude_norm"
        )
        self.phase_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="phase_norm"
        )
        self.amplitude_attention = None
        self.phase_attention = None

    def _check_shapes(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not all(isinstance(s, (list, tuple)) for s in input_shape)
        ):
            raise ValueError(
                "AmpPhaseCrossAttention expects a list of two tensors [E_as, E_ps]; "
                f"received input shape {input_shape}"
            )
        amplitude_shape, phase_shape = (tuple(s) for s in input_shape)
        if len(amplitude_shape) != 3 or amplitude_shape[1:] != phase_shape[1:]:
            raise ValueError(
                "E_as and E_ps must both be (batch, tokens, dim) with equal tokens and dim; "
                f"received shapes {amplitude_shape} and {phase_shape}"
            )
        dim = amplitude_shape[-1]
        if dim is None:
            raise ValueError(
                f"The embedding dim must be known; received shapes {amplitude_shape}"
            )
        if self.key_dim is None and dim % self.num_heads != 0:
            raise ValueError(
                f"The embedding dim must be divisible by num_heads={self.num_heads} when "
                f"key_dim is None; received dim {dim} (shape {amplitude_shape})"
            )
        return amplitude_shape, phase_shape

    def build(self, input_shape):
        amplitude_shape, phase_shape = self._check_shapes(input_shape)
        dim = amplitude_shape[-1]
        key_dim = self.key_dim or dim // self.num_heads
        attention, extra = keras.layers.MultiHeadAttention, {}
        if self.scale is not None:
            attention, extra = _ScaledMultiHeadAttention, {"scale": self.scale}
        settings = dict(num_heads=self.num_heads, key_dim=key_dim, dropout=self.dropout,
                        output_shape=dim, dtype=self.dtype_policy, **extra)
        self.amplitude_attention = attention(name="amplitude_attention", **settings)
        self.phase_attention = attention(name="phase_attention", **settings)
        self.amplitude_norm.build(amplitude_shape)
        self.phase_norm.build(phase_shape)
        self.amplitude_attention.build(phase_shape, amplitude_shape, amplitude_shape)
        self.phase_attention.build(amplitude_shape, phase_shape, phase_shape)
        self.built = True

    def call(self, inputs, training=None):
        amplitude, phase = inputs
        amplitude_normed = self.amplitude_norm(amplitude)
        phase_normed = self.phase_norm(phase)
        amplitude_out = amplitude + self.amplitude_attention(
            query=phase_normed,
            value=amplitude_normed,
            key=amplitude_normed,
            training=training,
        )
        phase_out = phase + self.phase_attention(
            query=amplitude_normed,
            value=phase_normed,
            key=phase_normed,
            training=training,
        )
        return amplitude_out, phase_out

    def compute_output_shape(self, input_shape):
        amplitude_shape, phase_shape = self._check_shapes(input_shape)
        return amplitude_shape, phase_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "scale": self.scale,
            }
        )
        return config
