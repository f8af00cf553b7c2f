"""Independent NumPy references for the tests: each formula once, in float64, from its source.

Nothing here calls `mclcr_keras`: a test computes its expected value with these functions and the
weights it reads from the layer under test (anything with the named attributes: a Keras
`LayerNormalization` has `gamma`, `beta`, `epsilon`; a `Dense` has `kernel`, `bias`). Import them
with ``from references import ...`` (``tests/`` is on ``sys.path`` through the rootdir conftest).

- `layer_norm`, `dense`, `gelu`, `tanh_gelu`, `sigmoid`: the building blocks.
- `mixer_block`: one MLP-Mixer layer (Tolstikhin et al. 2021), token mixing then channel mixing.
- `multi_head_attention`, `cross_attention`: scaled dot-product attention (Vaswani et al. 2017)
  and the amplitude-phase cross attention of MC-LCR (pre-norm, residual).
- `supcon`, `supcon_per_anchor`: a NumPy port of SupContrast's `SupConLoss` (HobbitLong,
  ``losses.py``, contrast_mode="all"); `supcon_eq13`, `supcon_eq13_per_anchor`: the MC-LCR
  paper's Eq. 13 as printed.
- `binary_cross_entropy`: the mean BCE of logits.
- `patch_spectra`: per-patch `numpy.fft.fft2` of the BT.601 grayscale image, row-major patches.
- `gram_style`: the explicit Gram matrix of a feature map, averaged over one axis.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma


def _f64(value) -> np.ndarray:
    return np.asarray(value, np.float64)


# ------------------------------------------------------------------------------ building blocks


def layer_norm(x, norm) -> np.ndarray:
    """LayerNormalization over the last axis with ``norm``'s gamma, beta and epsilon."""
    x = _f64(x)
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * _f64(norm.gamma) + _f64(norm.beta)


def dense(x, layer) -> np.ndarray:
    """``x @ kernel + bias`` over the last axis."""
    return _f64(x) @ _f64(layer.kernel) + _f64(layer.bias)


def gelu(x) -> np.ndarray:
    """The exact GELU, ``x * Phi(x)``."""
    x = _f64(x)
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def tanh_gelu(x) -> np.ndarray:
    """The tanh approximation of GELU (Hendrycks & Gimpel), to show the exact one is used."""
    x = _f64(x)
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-_f64(x)))


# ------------------------------------------------------------------------------ MLP-Mixer


def mixer_block(x, block, activation=gelu) -> np.ndarray:
    """One Mixer layer with ``block``'s sublayers, token by token and channel by channel.

    ``block`` has ``token_norm``, ``token_dense_1``, ``token_dense_2`` (the MLP over the N tokens
    of each channel) and ``channel_norm``, ``channel_dense_1``, ``channel_dense_2``.
    """
    x = _f64(x)
    normed = layer_norm(x, block.token_norm)
    y = np.empty_like(x)
    for b in range(x.shape[0]):
        for d in range(x.shape[2]):
            column = normed[b, :, d]  # the N values of channel d
            hidden = activation(dense(column, block.token_dense_1))
            y[b, :, d] = x[b, :, d] + dense(hidden, block.token_dense_2)
    hidden = activation(dense(layer_norm(y, block.channel_norm), block.channel_dense_1))
    return y + dense(hidden, block.channel_dense_2)


# ------------------------------------------------------------------------------ attention


def multi_head_attention(query, value, mha, scale=None) -> np.ndarray:
    """Scaled dot-product attention per head with the kernels and biases of a Keras
    `MultiHeadAttention` (``query_dense``, ``key_dense``, ``value_dense``: ``(D, H, K)``;
    ``output_dense``: ``(H, K, D)``); keys and values both come from ``value``. The logits are
    multiplied by ``scale``, ``None`` meaning 1/sqrt(K)."""

    def project(x, layer):
        return np.einsum("bnd,dhk->bnhk", _f64(x), _f64(layer.kernel)) + _f64(layer.bias)

    q = project(query, mha.query_dense)
    k = project(value, mha.key_dense)
    v = project(value, mha.value_dense)
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[-1])
    scores = np.einsum("bqhk,bmhk->bhqm", q, k) * scale
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probabilities = scores / scores.sum(axis=-1, keepdims=True)
    context = np.einsum("bhqm,bmhv->bqhv", probabilities, v)
    out = mha.output_dense
    return np.einsum("bqhv,hvd->bqd", context, _f64(out.kernel)) + _f64(out.bias)


def cross_attention(amplitude, phase, layer, scale=None):
    """MC-LCR's amplitude-phase cross attention: each stream queries the other, pre-norm,
    residual. ``layer`` has ``amplitude_norm``, ``phase_norm``, ``amplitude_attention`` (queries
    from the phase) and ``phase_attention`` (queries from the amplitude); ``scale`` multiplies
    the logits (``None``: 1/sqrt(key_dim)). Returns ``(AT, PT)``."""
    amplitude, phase = _f64(amplitude), _f64(phase)
    amplitude_normed = layer_norm(amplitude, layer.amplitude_norm)
    phase_normed = layer_norm(phase, layer.phase_norm)
    at = amplitude + multi_head_attention(phase_normed, amplitude_normed,
                                          layer.amplitude_attention, scale)
    pt = phase + multi_head_attention(amplitude_normed, phase_normed, layer.phase_attention,
                                      scale)
    return at, pt


# ------------------------------------------------------------------------------ losses


def supcon_per_anchor(features, labels, temperature, base_temperature=None) -> np.ndarray:
    """NumPy port of SupContrast ``losses.py`` (HobbitLong, master), contrast_mode="all",
    before its final mean: the loss of every anchor, ``(n_views * bsz,)``, views stacked first.

    ``features`` is ``(bsz, dim)`` (one view) or ``(bsz, n_views, dim)``. ``base_temperature``
    defaults to ``temperature`` (as MC-LCR uses it). Anchors without a positive get a
    denominator of 1 (``torch.where(mask_pos_pairs < 1e-6, 1, mask_pos_pairs)``), hence 0.
    """
    features = _f64(features)
    if features.ndim == 2:
        features = features[:, None]
    base_temperature = temperature if base_temperature is None else base_temperature
    batch_size, n_views = features.shape[:2]
    labels = np.asarray(labels).reshape(-1, 1)
    mask = (labels == labels.T).astype(np.float64)
    contrast_feature = np.concatenate([features[:, v] for v in range(n_views)], axis=0)
    anchor_feature, anchor_count = contrast_feature, n_views
    anchor_dot_contrast = anchor_feature @ contrast_feature.T / temperature
    logits = anchor_dot_contrast - anchor_dot_contrast.max(axis=1, keepdims=True)
    mask = np.tile(mask, (anchor_count, n_views))
    logits_mask = np.ones_like(mask)
    logits_mask[np.arange(batch_size * anchor_count), np.arange(batch_size * anchor_count)] = 0
    mask = mask * logits_mask
    exp_logits = np.exp(logits) * logits_mask
    log_prob = logits - np.log(exp_logits.sum(1, keepdims=True))
    mask_pos_pairs = mask.sum(1)
    mask_pos_pairs = np.where(mask_pos_pairs < 1e-6, 1, mask_pos_pairs)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask_pos_pairs
    return -(temperature / base_temperature) * mean_log_prob_pos


def supcon(features, labels, temperature, base_temperature=None) -> float:
    """SupContrast's loss: the mean of `supcon_per_anchor` over all anchors."""
    return float(np.mean(supcon_per_anchor(features, labels, temperature, base_temperature)))


def supcon_eq13_per_anchor(z, labels, temperature) -> np.ndarray:
    """Paper Eq. 13 as printed, with loops: the denominator runs over the other classes only.

    The loss of every anchor; one without a positive or without a negative gets 0.
    """
    z = _f64(z)
    labels = np.asarray(labels).reshape(-1)
    losses = []
    for i in range(len(labels)):
        positives = [p for p in range(len(labels)) if p != i and labels[p] == labels[i]]
        negatives = [n for n in range(len(labels)) if labels[n] != labels[i]]
        if not positives or not negatives:
            losses.append(0.0)
            continue
        log_denominator = np.log(sum(np.exp(z[i] @ z[n] / temperature) for n in negatives))
        terms = [-(z[i] @ z[p] / temperature - log_denominator) for p in positives]
        losses.append(np.mean(terms))
    return np.asarray(losses)


def supcon_eq13(z, labels, temperature) -> float:
    """Eq. 13 averaged over all anchors."""
    return float(np.mean(supcon_eq13_per_anchor(z, labels, temperature)))


def binary_cross_entropy(labels, logits) -> float:
    """Mean of ``-y log sigmoid(x) - (1 - y) log(1 - sigmoid(x))``, in its stable form."""
    y = _f64(labels).reshape(-1)
    x = _f64(logits).reshape(-1)
    return float(np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))))


# ------------------------------------------------------------------------------ image features


def grayscale(images) -> np.ndarray:
    """BT.601 luma of RGB images in [0, 255], scaled to [0, 1]: ``(..., H, W)``."""
    images = _f64(images)
    weights = GRAY_WEIGHTS
    return (weights[0] * images[..., 0] + weights[1] * images[..., 1]
            + weights[2] * images[..., 2]) / 255.0


def patch_spectra(images, patch_size: int) -> np.ndarray:
    """Complex spectra ``(B, N, P*P)``: ``numpy.fft.fft2(patch) / P**2`` of the grayscale image,
    for the non-overlapping P x P patches in row-major order, each spectrum flattened row-major."""
    gray = grayscale(images)
    batch, height, width = gray.shape
    p = patch_size
    spectra = []
    for b in range(batch):
        rows = []
        for r in range(height // p):
            for c in range(width // p):
                patch = gray[b, r * p:(r + 1) * p, c * p:(c + 1) * p]
                rows.append((np.fft.fft2(patch) / p**2).reshape(-1))
        spectra.append(rows)
    return np.asarray(spectra)


def gram_style(x) -> np.ndarray:
    """``SSF_i = mean_j G_ij`` with the explicit Gram matrix ``G = F^T F / (H W)`` of the
    ``(B, H, W, C)`` feature map ``x`` (``F``: ``(B, H W, C)``)."""
    x = _f64(x)
    b, h, w, c = x.shape
    features = x.reshape(b, h * w, c)
    gram = np.einsum("bki,bkj->bij", features, features) / (h * w)
    return gram.mean(axis=-1)
