"""PatchSpectrum: per-patch 2-D Fourier amplitude and phase of a face image (MC-LCR, Eq. 2-4)."""


import keras
import tensorflow as tf
from keras import ops

# ITU-R BT.601 luma weights, the usual RGB -> grayscale conversion.
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


@keras.saving.register_keras_serializable(package="mclcr_keras")
class PatchSpectrum(keras.layers.Layer):
    """Splits a grayscale image into P x P patches and returns each patch's 2-D spectrum.

    The input holds RGB pixels in [0, 255]. The layer converts them to grayscale
    `0.299 R + 0.587 G + 0.114 B` divided by 255, cuts the image into `N = H*W/P^2`
    non-overlapping patches in row-major order (patch `r * (W/P) + c` is the block at row `r`,
    column `c`), takes `F = fft2d(patch) / P^2` of each one, and returns the amplitude `|F|` and
    the phase `atan2(Im F, Re F)` (0 for an exactly zero coefficient), both flattened row-major
    to `P*P` values. The FFT always runs
    in float32/complex64 (input autocasting is off, so pixels are not rounded to a low precision
    dtype first); the outputs are cast to the layer's compute dtype.

    Reference: Wang et al., "MC-LCR: Multi-modal contrastive classification by locally correlated
    representations for effective face forgery detection", KBS 2022 (arXiv:2110.03290),
    Sec. 3.3, Eq. 2-4.

    Args:
        patch_size: int, side P of the square patches; H and W must be multiples of it.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Returns:
        A tuple `(amplitude, phase)`, each of shape `(B, H*W/P^2, P*P)`.

    Example:
        >>> import numpy as np
        >>> amplitude, phase = PatchSpectrum(patch_size=16)(np.zeros((2, 64, 64, 3), "float32"))
        >>> tuple(amplitude.shape)
        (2, 16, 256)
    """

    def __init__(self, patch_size: int = 16, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if (
            isinstance(patch_size, bool)
            or not isinstance(patch_size, int)
            or patch_size < 1
        ):
            raise ValueError(
                f"`patch_size` must be a positive integer; received patch_size={patch_size!r}"
            )
        self.patch_size = patch_size

    def _check_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] != 3:
            raise ValueError(
                "PatchSpectrum expects RGB images of shape (batch, height, width, 3); "
                f"received shape {tuple(input_shape)}"
            )
        for size in input_shape[1:3]:
            if size is not None and size % self.patch_size != 0:
                raise ValueError(
                    f"Image height and width must be multiples of patch_size={self.patch_size}; "
                    f"received shape {tuple(input_shape)}"
                )

    def build(self, input_shape):
        self._check_shape(input_shape)
        self.built = True

    def call(self, inputs):
        p = self.patch_size
        x = ops.cast(inputs, "float32")
        r, g, b = _GRAY_WEIGHTS
        gray = (r * x[..., 0] + g * x[..., 1] + b * x[..., 2]) / 255.0  # (B, H, W)
        shape = tf.shape(gray)
        batch, rows, cols = shape[0], shape[1] // p, shape[2] // p
        patches = tf.reshape(gray, (batch, rows, p, cols, p))
        patches = tf.transpose(patches, (0, 1, 3, 2, 4))  # (B, rows, cols, P, P)
        patches = tf.reshape(patches, (batch, rows * cols, p, p))
        spectrum = tf.signal.fft2d(tf.complex(patches, tf.zeros_like(patches)))
        spectrum = spectrum / tf.complex(float(p * p), 0.0)
        amplitude = tf.math.abs(spectrum)
        real, imag = tf.math.real(spectrum), tf.math.imag(spectrum)
        # atan2's gradient is 0/0 at an exactly zero coefficient (every AC term of a flat
        # patch); evaluate it at (1, 0) there instead: phase 0, finite gradient.
        nonzero = real * real + imag * imag > 0.0
        phase = tf.math.atan2(
            tf.where(nonzero, imag, tf.zeros_like(imag)),
            tf.where(nonzero, real, tf.ones_like(real)),
        )
        amplitude = tf.reshape(amplitude, (batch, rows * cols, p * p))
        phase = tf.reshape(phase, (batch, rows * cols, p * p))
        return (
            ops.cast(amplitude, self.compute_dtype),
            ops.cast(phase, self.compute_dtype),
        )

    def compute_output_shape(self, input_shape):
        self._check_shape(input_shape)
        height, width = input_shape[1], input_shape[2]
        patches = None
        if height is not None and width is not None:
            patches = (height // self.patch_size) * (width // self.patch_size)
        shape = (input_shape[0], patches, self.patch_size * self.patch_size)
        return (shape, shape)

    def get_config(self):
        config = super().get_config()
        config.update({"patch_size": self.patch_size})
        return config
