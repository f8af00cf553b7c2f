"""Gradient explanations of one MC-LCR logit: Grad-CAM on Xception's last block and the
frequency branch's per-patch saliency.

Both are gradients of the **logit** (the pre-sigmoid fake score, output ``logit``) of each crop,
computed in inference mode (``training=False``: BatchNorm moving statistics, no dropout), so a
crop's logit depends on that crop only and one backward pass of the batch's summed logits gives
every crop's own gradient.

- **Grad-CAM** (Selvaraju et al., ICCV 2017). ``A`` is the feature map GF is pooled from, the
  input of the model's ``global_pool`` layer: ``block14_sepconv2_act`` (Xception's last block,
  ``(S/32) x (S/32) x 2048``; block 13's output with ``global_feature="block13"``). Channel
  weights ``alpha_k = mean_{y,x} d logit / d A[y, x, k]``; map ``ReLU(sum_k alpha_k A[:, :, k])``,
  resized bilinearly (half-pixel centres, no antialiasing) to ``S x S``, then divided by its own
  maximum, so each map lies in [0, 1] with maximum 1; a map that is zero everywhere (no position
  pushes the logit up) stays zero. The divisor is returned as ``grad_cam_peak``: for the
  ``baseline`` variant (logit = w . GAP(A) + b) the un-normalised map is the CAM of Zhou et al.
  and, before the ReLU, its sum over the ``h x w`` positions is ``logit - b``.
- **Frequency saliency.** ``amplitude`` and ``phase`` are the two ``(N, P*P)`` token sets that
  the model's ``PatchSpectrum`` layer outputs (before the Dense embeddings). For patch ``n``:
  ``|g_amp[n]| = ||d logit / d amplitude[n, :]||_2`` and the same for the phase, and the combined
  saliency ``sqrt(|g_amp[n]|^2 + |g_phase[n]|^2)`` (the norm of the gradient w.r.t. both token
  vectors of the patch), laid out as the ``G x G`` grid of the patches (``G = S / P``, row-major
  as in `PatchSpectrum`). Not normalised: logit units per unit of token. Amplitudes are fractions
  of the grey level (/255, /P^2) and phases radians, so the combined norm mixes two scales; both
  parts are kept (`explain_crops`). Variants without the frequency branch (``baseline``,
  ``no_papda``) give ``None``.

Gradients describe the model's local sensitivity around this input, not proof of a manipulation.

Example:

```python
model = load_model("runs/a/best.keras")
maps = grad_cam(model, crops)                 # (B, S, S) in [0, 1]
grid = frequency_saliency(model, crops)       # (B, S/16, S/16), or None for the baseline
parts = explain_crops(model, crops)           # both, the amplitude / phase parts, the logits
```
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mclcr_keras.models.saving import model_image_size
from mclcr_keras.viz._common import stack_images

# The layer whose input is Xception's last feature map (MCLCR: GF = global_pool(taps["global"])).
GRAD_CAM_POOL = "global_pool"
FREQUENCY_LAYER = "patch_spectrum"


def _check_model(model) -> None:
    names = {layer.name for layer in getattr(model, "layers", ())}
    missing = [name for name in ("logit", GRAD_CAM_POOL) if name not in names]
    if missing:
        raise ValueError(
            f"{type(model).__name__} has no layer(s) {missing}: explanations need the MC-LCR "
            "Keras model (a .keras file loaded with mclcr_keras.models.load_model), not an "
            "exported SavedModel"
        )


def has_frequency_branch(model) -> bool:
    """Whether the model has the PatchSpectrum branch (not ``baseline`` / ``no_papda``)."""
    return any(layer.name == FREQUENCY_LAYER for layer in model.layers)


def _explainer(model):
    """images -> {"global": A, "logit", ["amplitude", "phase"]}, sharing the model's layers."""
    import keras

    outputs = {"global": model.get_layer(GRAD_CAM_POOL).input,
               "logit": model.get_layer("logit").output}
    if has_frequency_branch(model):
        outputs["amplitude"], outputs["phase"] = model.get_layer(FREQUENCY_LAYER).output
    return keras.Model(model.input, outputs, name="explainer")


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, received {batch_size!r}")


def cam_from_gradients(activations: np.ndarray, gradients: np.ndarray, size: int):
    """Grad-CAM maps from ``(B, h, w, C)`` activations and their logit gradients.

    Returns:
        ``(maps, peaks)``: ``(B, size, size)`` float32 in [0, 1] (each divided by its maximum, an
        all-zero map stays zero) and the ``(B,)`` maxima they were divided by.
    """
    import tensorflow as tf

    weights = gradients.mean(axis=(1, 2), keepdims=True)                # (B, 1, 1, C)
    cam = np.maximum((weights * activations).sum(axis=-1), 0.0)          # (B, h, w)
    resized = tf.image.resize(cam[..., None].astype(np.float32), (size, size),
                              method="bilinear", antialias=False).numpy()[..., 0]
    resized = np.maximum(resized, 0.0)
    peaks = resized.reshape(len(resized), -1).max(axis=1)
    divisor = np.where(peaks > 0.0, peaks, 1.0)[:, None, None]
    return (resized / divisor).astype(np.float32), peaks.astype(np.float32)


def patch_norms(gradients: np.ndarray, grid: int) -> np.ndarray:
    """``(B, N, P*P)`` token gradients -> ``(B, grid, grid)`` L2 norms per patch (row-major).

    >>> patch_norms(np.array([[[3.0, 4.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]]), 2)
    array([[[5., 1.],
            [1., 0.]]], dtype=float32)
    """
    norms = np.sqrt(np.sum(np.square(gradients, dtype=np.float64), axis=-1))
    return norms.reshape(len(gradients), grid, grid).astype(np.float32)


def explain_crops(
    model, crops: np.ndarray | Sequence[np.ndarray], batch_size: int = 8
) -> dict[str, np.ndarray | None]:
    """Grad-CAM and frequency saliency of each crop's logit, from one forward/backward pass.

    Args:
        model: the MC-LCR Keras model (any variant).
        crops: aligned face crops, ``(B, S, S, 3)`` or a list of ``(H, W, 3)`` RGB in [0, 255]
            (other sizes are centre-cropped to a square and resized to the model's S).
        batch_size: crops per pass.

    Returns:
        ``logit`` ``(B,)``, ``probability`` ``(B,)``, ``grad_cam`` ``(B, S, S)`` in [0, 1],
        ``grad_cam_peak`` ``(B,)`` (the divisor of each map), and ``frequency``,
        ``frequency_amplitude``, ``frequency_phase`` ``(B, G, G)`` (``None`` without the
        frequency branch). See the module docstring for what each one is.
    """
    import tensorflow as tf

    _check_model(model)
    _check_batch_size(batch_size)
    size = model_image_size(model)
    batch = stack_images(crops, size)
    explainer = _explainer(model)
    frequency = "amplitude" in explainer.output
    grid = size // model.get_layer(FREQUENCY_LAYER).patch_size if frequency else 0
    keys = ["global"] + (["amplitude", "phase"] if frequency else [])
    parts: dict[str, list[np.ndarray]] = {
        key: [] for key in ("logit", "grad_cam", "grad_cam_peak", "amplitude", "phase")}
    for start in range(0, len(batch), batch_size):
        images = tf.constant(batch[start : start + batch_size])
        with tf.GradientTape() as tape:
            # Watching the input records the weight-free PatchSpectrum ops too, so its output
            # tokens are tensors the tape can differentiate with respect to.
            tape.watch(images)
            out = explainer(images, training=False)
            total = tf.reduce_sum(tf.cast(out["logit"], tf.float32))
        grads = tape.gradient(total, [out[key] for key in keys])
        grads = dict(zip(keys, (np.asarray(g, np.float32) for g in grads)))
        maps, peaks = cam_from_gradients(np.asarray(out["global"], np.float32),
                                         grads["global"], size)
        parts["logit"].append(np.asarray(out["logit"], np.float32)[:, 0])
        parts["grad_cam"].append(maps)
        parts["grad_cam_peak"].append(peaks)
        for key in keys[1:]:
            parts[key].append(patch_norms(grads[key], grid))
    logit = np.concatenate(parts["logit"])
    result: dict[str, np.ndarray | None] = {
        "logit": logit,
        "probability": (1.0 / (1.0 + np.exp(-logit.astype(np.float64)))).astype(np.float32),
        "grad_cam": np.concatenate(parts["grad_cam"]),
        "grad_cam_peak": np.concatenate(parts["grad_cam_peak"]),
        "frequency": None, "frequency_amplitude": None, "frequency_phase": None,
    }
    if frequency:
        amplitude, phase = np.concatenate(parts["amplitude"]), np.concatenate(parts["phase"])
        result["frequency_amplitude"], result["frequency_phase"] = amplitude, phase
        result["frequency"] = np.sqrt(np.square(amplitude) + np.square(phase))
    return result


def grad_cam(model, crops: np.ndarray | Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
    """Grad-CAM of each crop's logit on Xception's last block, ``(B, S, S)`` in [0, 1].

    See the module docstring (layer, weighting, bilinear resize, per-map normalisation).

    Example:

    ```python
    maps = grad_cam(load_model("runs/a/best.keras"), crops)   # crops: (B, 256, 256, 3)
    maps.shape, maps.max()                                     # (B, 256, 256), 1.0
    ```
    """
    return explain_crops(model, crops, batch_size)["grad_cam"]


def frequency_saliency(
    model, crops: np.ndarray | Sequence[np.ndarray], batch_size: int = 8
) -> np.ndarray | None:
    """Per-patch ``sqrt(|d logit/d amplitude_n|^2 + |d logit/d phase_n|^2)``, ``(B, G, G)``.

    ``G = S / P`` patches per side; ``None`` for a variant without the frequency branch. The
    amplitude and phase parts are in `explain_crops`.

    Example:

    ```python
    grid = frequency_saliency(model, crops)   # 256 px, P = 16: (B, 16, 16)
    ```
    """
    return explain_crops(model, crops, batch_size)["frequency"]
