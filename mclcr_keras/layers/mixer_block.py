"""MixerBlock: one MLP-Mixer layer (token mixing then channel mixing), MC-LCR Eq. 9-10."""


import keras
from keras import ops


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@keras.saving.register_keras_serializable(package="mclcr_keras")
class MixerBlock(keras.layers.Layer):
    """One MLP-Mixer layer over a `(B, N, D)` token sequence.

    - token mixing: `y = x + T(W2 GELU(W1 T(LN1(x))))`, an MLP along the token axis
      (N -> tokens_mlp_dim -> N) shared across channels, `T` swapping the N and D axes;
    - channel mixing: `out = y + W4 GELU(W3 LN2(y))`, an MLP along the channel axis
      (D -> channels_mlp_dim -> D) shared across tokens.

    The two halves have their own LayerNorm. GELU is the exact (erf) form, as in PyTorch's
    `nn.GELU` and timm's Mixer (the original JAX code uses flax's tanh approximation; the two
    differ by < 1e-3). Dropout, if any, follows each GELU and each MLP's output projection.

    Reference: Wang et al., "MC-LCR: Multi-modal contrastive classification by locally correlated
    representations for effective face forgery detection", KBS 2022 (arXiv:2110.03290),
    Eq. 9-10; Tolstikhin et al., "MLP-Mixer: An all-MLP architecture for vision", NeurIPS 2021.

    Args:
        tokens_mlp_dim: int, hidden width of the token-mixing MLP.
        channels_mlp_dim: int, hidden width of the channel-mixing MLP.
        dropout: float in [0, 1), dropout rate inside both MLPs.
        layer_norm_epsilon: float, epsilon of the two LayerNorms.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:
        >>> import numpy as np
        >>> block = MixerBlock(tokens_mlp_dim=256, channels_mlp_dim=256)
        >>> tuple(block(np.random.rand(2, 16, 256).astype("float32")).shape)
        (2, 16, 256)
    """

    def __init__(
        self,
        tokens_mlp_dim: int = 256,
        channels_mlp_dim: int = 256,
        dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (("tokens_mlp_dim", tokens_mlp_dim),
                           ("channels_mlp_dim", channels_mlp_dim)):
            if not _is_positive_int(value):
                raise ValueError(f"`{arg}` must be a positive integer; received {arg}={value!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); received dropout={dropout!r}")
        if not isinstance(layer_norm_epsilon, (int, float)) or layer_norm_epsilon <= 0:
            raise ValueError(
                "`layer_norm_epsilon` must be a positive number; "
                f"received layer_norm_epsilon={layer_norm_epsilon!r}"
            )
        self.tokens_mlp_dim = tokens_mlp_dim
        self.channels_mlp_dim = channels_mlp_dim
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon

        policy = self.dtype_policy
        self.token_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="token_norm"
        )
        self.token_dense_1 = keras.layers.Dense(tokens_mlp_dim, dtype=policy, name="token_dense_1")
        self.token_dense_2 = None  # output width N is only known in build()
        self.channel_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="channel_norm"
        )
        self.channel_dense_1 = keras.layers.Dense(
            channels_mlp_dim, dtype=policy, name="channel_dense_1"
        )
        self.channel_dense_2 = None  # output width D is only known in build()
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=policy, name="dropout")

    def _check_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "MixerBlock expects (batch, tokens, channels) with known tokens and channels; "
                f"received shape {tuple(input_shape)}"
            )

    def build(self, input_shape):
        self._check_shape(input_shape)
        batch, tokens, channels = input_shape
        policy = self.dtype_policy
        self.token_dense_2 = keras.layers.Dense(tokens, dtype=policy, name="token_dense_2")
        self.channel_dense_2 = keras.layers.Dense(channels, dtype=policy, name="channel_dense_2")
        self.token_norm.build(input_shape)
        self.token_dense_1.build((batch, channels, tokens))
        self.token_dense_2.build((batch, channels, self.tokens_mlp_dim))
        self.channel_norm.build(input_shape)
        self.channel_dense_1.build(input_shape)
        self.channel_dense_2.build((batch, tokens, self.channels_mlp_dim))
        self.built = True

    def _mlp(self, x, dense_1, dense_2, training):
        x = ops.gelu(dense_1(x), approximate=False)
        x = self.dropout_layer(x, training=training)
        x = dense_2(x)
        return self.dropout_layer(x, training=training)

    def call(self, inputs, training=None):
        x = ops.transpose(self.token_norm(inputs), (0, 2, 1))  # (B, D, N)
        x = self._mlp(x, self.token_dense_1, self.token_dense_2, training)
        y = inputs + ops.transpose(x, (0, 2, 1))
        x = self._mlp(self.channel_norm(y), self.channel_dense_1, self.channel_dense_2, training)
        return y + x

    def compute_output_shape(self, input_shape):
        self._check_shape(input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "tokens_mlp_dim": self.tokens_mlp_dim,
                "channels_mlp_dim": self.channels_mlp_dim,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
