"""AmpPhaseCrossAttention: the amplitude/phase cross attention of MC-LCR (Eq. 5-8)."""


import keras


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@keras.saving.register_keras_serializable(package="mclcr_keras")
class AmpPhaseCrossAttention(keras.layers.Layer):
    """Cross attention between the amplitude and phase patch embeddings.

    With `E_as`, `E_ps` the amplitude and phase embeddings, `(B, N, D)` each:

    - `AT = E_as + MHA_a(query=LN_p(E_ps), key=value=LN_a(E_as))`
    - `PT = E_ps + MHA_p(query=LN_a(E_as), key=value=LN_p(E_ps))`

    `LN_a`, `LN_p` are two LayerNorms and `MHA_a`, `MHA_p` two `keras.layers.MultiHeadAttention`
    with separate weights. Each stream's attention is queried by the other modality and attends
    over its own (pre-normalised) tokens, with a residual connection to its own input.

    Reference: Wang et al., "MC-LCR: Multi-modal contrastive classification by locally correlated
    representations for effective face forgery detection", KBS 2022 (arXiv:2110.03290),
    Sec. 3.3, Eq. 5-8.

    Args:
        num_heads: int, number of attention heads.
        key_dim: int or None, size of each head's query/key projection; `None` means
            `D // num_heads` (then D must be divisible by `num_heads`).
        dropout: float in [0, 1), dropout on the attention probabilities.
        layer_norm_epsilon: float, epsilon of the two LayerNorms.
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
        self.num_heads = num_heads
        self.key_dim = key_dim
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
        self.amplitude_attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=key_dim,
            dropout=self.dropout,
            output_shape=dim,
            dtype=self.dtype_policy,
            name="amplitude_attention",
        )
        self.phase_attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=key_dim,
            dropout=self.dropout,
            output_shape=dim,
            dtype=self.dtype_policy,
            name="phase_attention",
        )
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
            }
        )
        return config
