"""The four public MC-LCR layers, one module each."""

from mclcr_keras.layers.amp_phase_cross_attention import AmpPhaseCrossAttention
from mclcr_keras.layers.gram_style import GramStyle
from mclcr_keras.layers.mixer_block import MixerBlock
from mclcr_keras.layers.patch_spectrum import PatchSpectrum

__all__ = ["AmpPhaseCrossAttention", "GramStyle", "MixerBlock", "PatchSpectrum"]
