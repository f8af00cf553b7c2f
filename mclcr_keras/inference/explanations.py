"""``predict --explain DIR``: one explanation figure per scored file, drawn by
`mclcr_keras.viz.explain.explain_tracks` from the file's tracks (per track: its best frame, the
face box there, the aligned crop, its per-frame probabilities and frame indices; the threshold).

The figure needs gradients, so it needs the Keras model (`KerasScorer.model`): ``--explain``
with an exported SavedModel is refused before any work. The figure of ``clips/a.mp4`` is
``DIR/a.mp4.png`` (``a.mp4-2.png`` when another input of the run has the same name); its path is
the file's ``explanation`` in the JSON report.

Example:

>>> figure_name("clips/a.mp4", {"a.mp4.png"})
'a.mp4-2.png'
"""

from __future__ import annotations

import os

__all__ = ["explain_file", "figure_name", "track_dicts"]


def figure_name(path: str, taken: set[str]) -> str:
    """``<file name>.png``, numbered when a figure of the run already has that name."""
    base = os.path.basename(os.path.normpath(path)) or "input"
    name, number = f"{base}.png", 1
    while name in taken:
        number += 1
        name = f"{base}-{number}.png"
    return name


def track_dicts(result) -> list[dict]:
    """The tracks of a scored `FileResult` in the form `explain_tracks` reads (needs
    ``best_rgb``: score with the frames kept, i.e. ``PredictOptions.explain`` set)."""
    tracks = []
    for track in result.tracks:
        if track.best_rgb is None:
            raise ValueError(f"track {track.track_id} of {result.path} kept no frame to show")
        box = track.boxes[track.frames.index(track.best_frame)]
        tracks.append({"track_id": track.track_id, "frames": track.frames,
                       "probabilities": track.probabilities, "probability": track.probability,
                       "best": {"frame_index": track.best_frame, "frame": track.best_rgb,
                                "box": box, "crop": track.best_crop}})
    return tracks


def explain_file(result, scorer, threshold: float, folder: str, taken: set[str],
                 how: str = "max") -> str:
    """Writes the explanation figure of one scored file into ``folder``; returns its path.

    Args:
        result: a scored `mclcr_keras.inference.results.FileResult` (frames kept).
        scorer: a `KerasScorer` (its ``model`` is explained).
        threshold: the threshold the file was called with.
        folder: the ``--explain`` folder (created if needed).
        taken: figure names already written in this run (updated).
        how: the track aggregation, for the title.
    """
    from mclcr_keras.viz.explain import explain_tracks

    os.makedirs(folder, exist_ok=True)
    name = figure_name(result.path, taken)
    taken.add(name)
    sign = ">" if result.label == "FAKE" else "<="
    title = (f"{os.path.basename(result.path)}: {result.label} (P(fake) {result.probability:.3f} "
             f"{sign} {threshold:.3f}; {how} of {result.tracks_kept} track"
             f"{'s' if result.tracks_kept != 1 else ''})")
    path = os.path.join(folder, name)
    explain_tracks(scorer.model, track_dicts(result), threshold, path, title=title)
    return path
