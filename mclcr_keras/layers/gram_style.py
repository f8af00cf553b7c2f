"""GramStyle: the self-similarity (SSRB) feature of MC-LCR, computed in O(HWC)."""


import keras
from keras import ops


def _check_rank4(shape) -> None:
    if len(shape) != 4:
        raise ValueError(
            f"GramStyle expects a rank-4 input (batch, height, width, channels); "
            f"received shape {tuple(shape)}"
        )


def explicit_gram_style(x):
    """Row mean of the explicit Gram matrix, O(H*W*C^2); reference and benchmark path only.

    Args:
        x: tensor `(B, H, W, C)`.

    Returns:
        float32 tensor `(B, C)` with `mean_j G_ij`, `G = F^T F / (H*W)`, `F` = x as `(B, HW, C)`.

    Example:
        >>> import numpy as np
        >>> tuple(explicit_gram_style(np.ones((1, 4, 4, 3), "float32")).shape)
        (1, 3)
    """
    x = ops.cast(ops.convert_to_tensor(x), "float32")
    _check_rank4(x.shape)
    shape = ops.shape(x)
    features = ops.reshape(x, (shape[0], -1, shape[3]))
    positions = ops.cast(shape[1] * shape[2], "float32")
    gram = ops.einsum("bki,bkj->bij", features, features) / positions
    return ops.mean(gram, axis=-1)


@keras.saving.register_keras_serializable(package="mclcr_keras")
class GramStyle(keras.layers.Layer):
    """Row mean of the spatially normalised Gram matrix of a feature map (MC-LCR's SSRB).

    For a feature map reshaped to `F` in R^{HW x C}, the Gram matrix is `G = F^T F / (HW)` and the
    style feature is `SSF_i = mean_j G_ij`. Because
    `mean_j G_ij = (1/HW) sum_k F_ki m_k` with `m_k` the channel mean at position `k`, the layer
    never forms `G`: it costs O(HWC) instead of O(HWC^2). The sums run in float32 (also under a
    mixed precision policy; input autocasting is off so float32 inputs are not rounded first) and
    the result is cast to the layer's compute dtype.

    Reference: Wang et al., "MC-LCR: Multi-modal contrastive classification by locally correlated
    representations for effective face forgery detection", KBS 2022 (arXiv:2110.03290), Sec. 3.1.

    Args:
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:
        >>> import numpy as np
        >>> layer = GramStyle()
        >>> tuple(layer(np.random.rand(2, 32, 32, 64).astype("float32")).shape)
        (2, 64)
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.supports_masking = False

    def build(self, input_shape):
        _check_rank4(input_shape)
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        channel_mean = ops.mean(x, axis=-1, keepdims=True)  # m_k, (B, H, W, 1)
        ssf = ops.mean(x * channel_mean, axis=(1, 2))  # (1/HW) sum_k F_ki m_k
        return ops.cast(ssf, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        _check_rank4(input_shape)
        return (input_shape[0], input_shape[3])

    def get_config(self):
        return super().get_config()
