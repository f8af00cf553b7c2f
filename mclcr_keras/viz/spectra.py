"""Fig. 3: patch-wise amplitude and phase spectra of a real face, its fake and their residual.

The spectra come from `mclcr_keras.layers.PatchSpectrum`, the layer the model's frequency branch
uses (grayscale / 255, P x P patches in row-major order, ``fft2d / P^2``). For display, each
patch's P x P spectrum is ``fftshift``-ed (zero frequency in its centre) and put back where the
patch sits in the image, so an H x W face gives an H x W mosaic of (H/P) x (W/P) little spectra.

Residual row: the pixel residual is ``|gray(fake) - gray(real)|`` (what the layer sees, in
0-255 units); the amplitude residual is ``|A_fake - A_real|`` and the phase residual the wrapped
difference ``|angle(exp(i (phi_fake - phi_real)))|`` in [0, pi], both per coefficient. Where a
patch is identical in the two images its residual is exactly zero.

Example:

```python
spectra = patch_spectra_arrays(real_rgb, fake_rgb, patch_size=16)
plot_patch_spectra(real_rgb, fake_rgb, "fig3.png", align=True)
```
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mclcr_keras.viz._common import DEFAULT_DPI, check_rgb, new_figure, save_figure, to_uint8
from mclcr_keras.viz.patches import check_patch_size, crop_to_patches, patch_mosaic

ROWS = ("real", "fake", "residual")
_GRAY = np.array([0.299, 0.587, 0.114], np.float32)


def align_pair(
    real_rgb: np.ndarray, fake_rgb: np.ndarray, size: int = 256, aligner=None
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned face crops of a real frame and its fake, cut with the same transform.

    The face and its 5 landmarks are found in the real frame only (as build_records would), and
    the same similarity transform warps both frames, so pixels the manipulation left untouched
    are identical in the two crops and their residual is zero.

    Args:
        real_rgb, fake_rgb: ``(H, W, 3)`` uint8 frames of the same size.
        size: side of the crops (ignored when ``aligner`` is given).
        aligner: a `mclcr_keras.data.faces.FaceAligner`; default ``FaceAligner(size=size)``.

    Returns:
        ``(real_crop, fake_crop)``, uint8 ``(size, size, 3)``.

    Example:

    ```python
    real_crop, fake_crop = align_pair(real_frame, fake_frame)
    ```
    """
    from mclcr_keras.data.faces import FaceAligner

    real, fake = to_uint8(check_rgb(real_rgb, "real")), to_uint8(check_rgb(fake_rgb, "fake"))
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake frames must have the same shape, received {real.shape} and {fake.shape}"
        )
    aligner = aligner or FaceAligner(size=size)
    box = aligner.find(real)
    if box is None:
        raise ValueError(f"no face found in the real image (shape {real.shape})")
    face = aligner.align(real, box)
    matrix = aligner.transform(face.landmarks)
    return face.image, aligner.warp(fake, matrix)


def _wrapped_abs(delta: np.ndarray) -> np.ndarray:
    """|delta| wrapped to [0, pi] (exactly 0 where delta is 0)."""
    return np.abs((delta + np.pi) % (2.0 * np.pi) - np.pi)


def patch_spectra_arrays(
    real_rgb: np.ndarray, fake_rgb: np.ndarray, patch_size: int = 16
) -> dict:
    """The arrays of Fig. 3, computed with `PatchSpectrum` (no alignment, no resizing).

    Args:
        real_rgb, fake_rgb: ``(H, W, 3)`` RGB images with pixels in [0, 255], same shape, H and
            W multiples of ``patch_size``.
        patch_size: side P of the patches (the model's default is 16).

    Returns:
        ``{"patch_size": P, "grid": (H/P, W/P), "real": row, "fake": row, "residual": row}``;
        each row is a dict with ``image`` (uint8 RGB for real/fake, float32 ``|gray(fake) -
        gray(real)|`` in 0-255 for the residual), ``amplitude`` and ``phase`` ``(N, P*P)`` as
        the layer returns them (residual: ``|A_f - A_r|`` and wrapped ``|phi_f - phi_r|``),
        ``amplitude_mosaic`` and ``phase_mosaic`` ``(H, W)`` (`patch_mosaic`, fftshifted), and
        ``mean_amplitude`` ``(P, P)`` (fftshifted mean over patches), and ``changed`` ``(N,)``
        (whether any pixel of the patch differs between fake and real).

    Example:

    >>> arrays = patch_spectra_arrays(np.zeros((32, 32, 3)), np.ones((32, 32, 3)), 16)
    >>> arrays["real"]["amplitude_mosaic"].shape, arrays["grid"]
    ((32, 32), (2, 2))
    """
    from mclcr_keras.layers import PatchSpectrum

    check_patch_size(patch_size)
    real, fake = check_rgb(real_rgb, "real"), check_rgb(fake_rgb, "fake")
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, received {real.shape} and {fake.shape}"
        )
    height, width = real.shape[:2]
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image height and width must be multiples of patch_size={patch_size}, received "
            f"shape {real.shape} (crop with crop_to_patches or align the faces)"
        )
    grid = (height // patch_size, width // patch_size)
    amplitude, phase = PatchSpectrum(patch_size=patch_size)(np.stack([real, fake]))
    amplitude, phase = np.asarray(amplitude), np.asarray(phase)

    p = patch_size
    diff = np.any(real != fake, axis=-1).reshape(grid[0], p, grid[1], p)
    changed = diff.any(axis=(1, 3)).reshape(-1)
    residual_image = np.abs((fake - real) @ _GRAY)
    sources = {
        "real": (to_uint8(real), amplitude[0], phase[0]),
        "fake": (to_uint8(fake), amplitude[1], phase[1]),
        "residual": (
            residual_image,
            np.abs(amplitude[1] - amplitude[0]),
            _wrapped_abs(phase[1] - phase[0]),
        ),
    }
    result: dict = {"patch_size": p, "grid": grid}
    for name, (image, amp, pha) in sources.items():
        result[name] = {
            "image": image,
            "amplitude": amp,
            "phase": pha,
            "amplitude_mosaic": patch_mosaic(amp, grid),
            "phase_mosaic": patch_mosaic(pha, grid),
            "mean_amplitude": np.fft.fftshift(amp.mean(axis=0).reshape(p, p)),
            "changed": changed,
        }
    return result


def _log_norm(*arrays: np.ndarray):
    """LogNorm over the positive values of ``arrays``, spanning at most 6 decades."""
    from matplotlib.colors import LogNorm

    positive = np.concatenate([a[a > 0].ravel() for a in arrays])
    if positive.size == 0:
        return LogNorm(vmin=1e-6, vmax=1.0)
    vmax = float(positive.max())
    vmin = max(float(np.percentile(positive, 1.0)), vmax * 1e-6)
    return LogNorm(vmin=min(vmin, vmax / 10.0), vmax=vmax)


def _log_colorbar(fig, image, ax, label: str):
    """Colour bar of a LogNorm image: decade labels only, or 4 labelled ticks over < 2 decades."""
    from matplotlib.ticker import NullFormatter

    bar = fig.colorbar(image, ax=ax, shrink=0.85, label=label)
    vmin, vmax = image.norm.vmin, image.norm.vmax
    if vmax / vmin < 100.0:
        ticks = np.geomspace(vmin, vmax, 4)
        bar.set_ticks(ticks, labels=[f"{t:.1e}" for t in ticks])
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    return bar


def _cmap(name: str):
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return cmap.with_extremes(bad=cmap(0.0))  # exact zeros (log scale): lowest colour, not white


def patch_spectra_figure(
    spectra: dict,
    names: tuple[str, str] = ("real", "fake"),
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
):
    """The Fig. 3 matplotlib Figure: rows real / fake / residual; columns image, amplitude
    mosaic (log), phase mosaic, mean amplitude spectrum over patches (log).

    Args:
        spectra: the output of `patch_spectra_arrays`.
        names: row labels for the real and the fake image (e.g. ``("original", "Deepfakes")``).
        title: figure title (a default naming the patch size otherwise).
        dpi: figure resolution.

    Example:

    ```python
    fig = patch_spectra_figure(patch_spectra_arrays(real, fake))
    ```
    """
    from matplotlib.colors import Normalize, PowerNorm
    from matplotlib.ticker import MaxNLocator

    p, (rows, cols) = spectra["patch_size"], spectra["grid"]
    aspect = cols / rows
    fig = new_figure(4 * 3.0 * min(max(aspect, 0.75), 1.6) + 1.6, 3 * 2.9, dpi)
    axes = fig.subplots(3, 4)
    face = [spectra[k]["amplitude_mosaic"] for k in ("real", "fake")]
    mean = [spectra[k]["mean_amplitude"] for k in ("real", "fake")]
    norms = {
        "amplitude": _log_norm(*face),
        "mean": _log_norm(*mean),
        "phase": Normalize(-np.pi, np.pi),
    }
    residual = spectra["residual"]
    residual_norms = {
        "amplitude": _log_norm(residual["amplitude_mosaic"]),
        "mean": _log_norm(residual["mean_amplitude"]),
        "phase": PowerNorm(0.5, 0.0, np.pi),  # square-root scale: small shifts stay visible
    }
    labels = {"real": names[0], "fake": names[1], "residual": "residual"}
    half = p // 2
    extent = (-half - 0.5, p - half - 0.5, p - half - 0.5, -half - 0.5)
    n_changed = int(residual["changed"].sum())
    for i, key in enumerate(ROWS):
        row, is_res = spectra[key], key == "residual"
        nrm = residual_norms if is_res else norms
        ax = axes[i, 0]
        if is_res:
            im = ax.imshow(row["image"], cmap="gray", vmin=0.0, vmax=max(row["image"].max(), 1.0))
            fig.colorbar(im, ax=ax, shrink=0.85, label="|Δ gray| (0-255)")
            ax.set_title(f"|Δ gray|: {n_changed}/{rows * cols} patches changed")
        else:
            ax.imshow(row["image"])
            ax.set_title(f"{labels[key]} face ({row['image'].shape[1]}x{row['image'].shape[0]})")
        ax.set_ylabel(labels[key], fontsize="large", fontweight="bold")
        ax.set_xlabel("x (px)")

        ax = axes[i, 1]
        im = ax.imshow(row["amplitude_mosaic"], cmap=_cmap("inferno"), norm=nrm["amplitude"],
                       interpolation="nearest")
        _log_colorbar(fig, im, ax, "|ΔA|" if is_res else "amplitude |F|")
        ax.set_title(("amplitude residual" if is_res else "amplitude") + f", {p}x{p} patches")
        ax.set_xlabel("x (px); each patch fftshifted")

        ax = axes[i, 2]
        im = ax.imshow(row["phase_mosaic"], cmap="magma" if is_res else "twilight",
                       norm=nrm["phase"], interpolation="nearest")
        bar = fig.colorbar(im, ax=ax, shrink=0.85, label="|Δφ| (rad)" if is_res else "phase (rad)")
        if not is_res:
            bar.set_ticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], labels=["-π", "-π/2", "0",
                                                                            "π/2", "π"])
        else:
            bar.set_ticks([0, np.pi / 16, np.pi / 4, np.pi / 2, np.pi],
                          labels=["0", "π/16", "π/4", "π/2", "π"])
        ax.set_title("phase residual (wrapped, √ scale)" if is_res else "phase")
        ax.set_xlabel("x (px); each patch fftshifted")

        ax = axes[i, 3]
        im = ax.imshow(row["mean_amplitude"], cmap=_cmap("inferno"), norm=nrm["mean"],
                       extent=extent, interpolation="nearest")
        _log_colorbar(fig, im, ax, "mean |ΔA|" if is_res else "mean |F|")
        ax.set_title("mean amplitude residual" if is_res else "mean amplitude over patches")
        ticks = sorted({-half, -half // 2, 0, half // 2, p - half - 1})
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xlabel("u (cycles / patch)")
        ax.set_ylabel("v (cycles / patch)")
        for ax in axes[i, :3]:
            ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(4, integer=True))
            ax.tick_params(labelsize="small")
    fig.suptitle(
        title or f"Patch-wise Fourier spectra of {names[0]} and {names[1]} "
        f"(PatchSpectrum, P={p}; amplitudes on a log scale)",
        fontsize="x-large",
    )
    return fig


def plot_patch_spectra(
    real_rgb: np.ndarray,
    fake_rgb: np.ndarray,
    path: str | os.PathLike,
    patch_size: int = 16,
    align: bool = False,
    image_size: int = 256,
    names: tuple[str, str] = ("real", "fake"),
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
    aligner=None,
) -> Path:
    """Writes Fig. 3 (patch amplitude / phase spectra of a real face, its fake and the residual).

    Args:
        real_rgb, fake_rgb: ``(H, W, 3)`` RGB images in [0, 255] of the same size: full frames
            (with ``align=True``) or face crops.
        path: output PNG.
        patch_size: P of `PatchSpectrum` (the model uses 16).
        align: detect and align the face in the real frame and cut both frames with that same
            transform (`align_pair`); otherwise the images are used as they are, centre-cropped
            to multiples of ``patch_size``.
        image_size: side of the aligned crops (``align=True`` only).
        names: row labels for the two images.
        title: figure title.
        dpi: PNG resolution.
        aligner: optional `FaceAligner` to use with ``align=True``.

    Returns:
        The path written.

    Example:

    ```python
    plot_patch_spectra(real_frame, fake_frame, "fig3.png", align=True)
    ```
    """
    check_patch_size(patch_size)
    if align:
        real, fake = align_pair(real_rgb, fake_rgb, size=image_size, aligner=aligner)
    else:
        real, fake = check_rgb(real_rgb, "real"), check_rgb(fake_rgb, "fake")
        if real.shape != fake.shape:
            raise ValueError(
                f"real and fake must have the same shape, received {real.shape} and {fake.shape}"
            )
        real, fake = crop_to_patches(real, patch_size), crop_to_patches(fake, patch_size)
    spectra = patch_spectra_arrays(real, fake, patch_size)
    fig = patch_spectra_figure(spectra, names=names, title=title, dpi=dpi)
    return save_figure(fig, path, dpi)
