"""The sizes of a demo run: the default preset (~5 min on 2 CPU cores) and the quick one (tests).

Example:

>>> choose_settings(quick=True, epochs=2).epochs
2
"""

from __future__ import annotations

import dataclasses

from mclcr_keras.errors import UsageError


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo run.

    Attributes:
        videos_per_class: demo videos per class and split (train, val and test alike).
        frames_per_video: frames per demo video.
        frame_size: side of the demo frames (full frames; the face is 30-42% of it).
        image_size: side of the face crops in the records, and of the model's input.
        epochs: training epochs.
        steps_per_epoch: training batches per epoch.
        batch_size: training batch (half real, half fake; a multiple of 4).
        learning_rate: AdamW learning rate.
        predict_per_class: test videos per class whose first frame goes through ``predict``.
        figure_faces_per_class: faces per class in the feature-map figure.
        tsne_points: at most this many test faces in the t-SNE figure.
        spectra_size: side of the aligned crops of the spectra figure.
        blend_ratios: opacities of the self-blended fakes (`SelfBlendConfig.blend_ratios`);
            ``None`` keeps the SBI defaults (0.25, 0.5, 0.75, 1, 1, 1).
    """

    videos_per_class: int
    frames_per_video: int
    frame_size: int
    image_size: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    learning_rate: float
    predict_per_class: int
    figure_faces_per_class: int
    tsne_points: int
    spectra_size: int
    blend_ratios: tuple[float, ...] | None = None


DEFAULT = DemoSettings(
    videos_per_class=24,
    frames_per_video=2,
    frame_size=320,
    image_size=96,
    epochs=8,
    steps_per_epoch=10,
    batch_size=16,
    learning_rate=1e-3,
    predict_per_class=2,
    figure_faces_per_class=2,
    tsne_points=200,
    spectra_size=256,
    # Fully opaque blends: random-init training of 80 steps learns them (test AUC ~0.85-0.9,
    # docs/demo.md); with the SBI mix of 0.25-1 opacities it reaches ~0.65-0.7.
    blend_ratios=(1.0,),
)

QUICK = DemoSettings(
    videos_per_class=2,
    frames_per_video=2,
    frame_size=192,
    image_size=64,
    epochs=1,
    steps_per_epoch=2,
    batch_size=8,
    learning_rate=1e-3,
    predict_per_class=1,
    figure_faces_per_class=1,
    tsne_points=40,
    spectra_size=128,
)


def choose_settings(quick: bool = False, epochs: int | None = None,
                    steps_per_epoch: int | None = None) -> DemoSettings:
    """The preset (`QUICK` or `DEFAULT`) with the given overrides.

    Raises:
        UsageError: a non-positive ``epochs`` / ``steps_per_epoch``.
    """
    settings = QUICK if quick else DEFAULT
    for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
        if value is None:
            continue
        if value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        settings = dataclasses.replace(settings, **{name: value})
    return settings
