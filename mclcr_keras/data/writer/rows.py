"""One converted input -> its table rows and serialized examples: shared by every engine (the
local converter in `mclcr_keras.data.writer.build`, the Beam pipeline in
`mclcr_keras.beam.records`), so both write the same bytes.

Example:

```python
result = Converter(options.crop_options()).convert(item.kind, item.paths)
video, frames = rows(item, result)            # videos.csv row, manifest rows (no shard yet)
examples = serialize(item, result)            # tf.train.Example bytes, in frame order
failure = failure_row(item, video, result["failure"])   # failures.csv row of a failed input
```
"""

from __future__ import annotations

from mclcr_keras.data import schema
from mclcr_keras.data.writer import tables


def rows(item, result: dict) -> tuple[dict, list[dict]]:
    """The ``videos.csv`` row and the ``manifest.csv`` rows (without ``shard``) of an input."""
    common = {"split": item.split, "label": item.label, "dataset": item.dataset,
              "method": item.method, "compression": item.compression, "video_id": item.video_id}
    video = dict(common, key=item.key, input=item.input, frames_sampled=result["sampled"],
                 frames_with_face=len(result["frames"]),
                 status="failed" if result["failure"] else "ok")
    frames = [dict(common, frame_index=index, box=tables.format_box(box),
                   landmarks=tables.format_landmarks(landmarks))
              for index, _, box, landmarks in result["frames"]]
    return video, frames


def serialize(item, result: dict) -> list[bytes]:
    """The input's ``tf.train.Example``s, in frame order (imports TensorFlow)."""
    return [schema.encode_example(image, item.label, item.video_id, item.method, item.dataset,
                                  index)
            for index, image, _, _ in result["frames"]]


def failure_row(item, video: dict, reason: str) -> dict:
    """The ``failures.csv`` row of an input that gave no record."""
    return {"input": item.input, "reason": reason,
            **{k: video[k] for k in tables.FAILURE_COLUMNS if k in video}}


def refused(reason: str) -> dict:
    """The conversion result of an input refused without being read (e.g. a contradiction)."""
    return {"frames": [], "sampled": 0, "failure": reason}
