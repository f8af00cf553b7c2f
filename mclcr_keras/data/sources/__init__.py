"""Dataset layouts -> a sorted list of `Item`s (one per video, image or frame folder).

Each item knows its split, label, dataset, method, compression, video id and input path(s); the
converter (`mclcr_keras.data.writer.build`) turns items into face crops. One module per layout:

- `ffpp`: FaceForensics++ official layout
  (``original_sequences/youtube/<c>/videos/*.mp4``, ``manipulated_sequences/<method>/<c>/videos``),
  split by the official ``train/val/test.json`` or, without them, by a hash of the pair of
  originals (720/140/140 proportions).
- `celebdf`: Celeb-DF v2 (``Celeb-real``, ``YouTube-real``, ``Celeb-synthesis``); test = the
  official ``List_of_testing_videos.txt``; the rest train, with identities held out for val.
- `dfdc`: DFDC parts (``*/metadata.json`` beside the mp4 files), split by a hash of the original
  video so that a real video and its fakes never straddle splits.
- `folder`: ``ROOT/[<split>/]<real|fake>/...`` of videos, images, or one folder of frames per
  video; split by hash (of the ``group`` in an optional ``ROOT/labels.csv``) without split folders.

A new layout is a module here with a ``<name>_items(root, **options) -> list[Item]`` function,
registered in `LAYOUTS` (and its options in `mclcr_keras.data.writer.options`). The rules are
written down in ``docs/build_records.md``.

Example:

```python
items = list_items("ffpp", "/data/FaceForensics", splits_dir="/data/FaceForensics/splits")
items[0].key, items[0].split, items[0].label  # ('ffpp/Deepfakes/000_003', 'train', 1)
```
"""

from __future__ import annotations

from mclcr_keras.data import storage
from mclcr_keras.data.sources.base import KINDS, Item, SourceError
from mclcr_keras.data.sources.celebdf import celebdf_items
from mclcr_keras.data.sources.dfdc import dfdc_items
from mclcr_keras.data.sources.ffpp import FFPP_DEFAULT_METHODS, FFPP_METHODS, ffpp_items
from mclcr_keras.data.sources.folder import folder_items

LAYOUTS = {"ffpp": ffpp_items, "celebdf": celebdf_items, "dfdc": dfdc_items,
           "folder": folder_items}
SOURCES = tuple(LAYOUTS)

__all__ = ["FFPP_DEFAULT_METHODS", "FFPP_METHODS", "KINDS", "LAYOUTS", "SOURCES", "Item",
           "SourceError", "celebdf_items", "dfdc_items", "ffpp_items", "folder_items",
           "list_items"]


def list_items(source: str, root: str, **options) -> list[Item]:
    """Lists the items of a source layout (``ffpp``, ``celebdf``, ``dfdc`` or ``folder``).

    Args:
        source: layout name, one of `SOURCES`.
        root: dataset root folder.
        **options: forwarded to `ffpp_items`, `celebdf_items`, `dfdc_items` or `folder_items`.

    Raises:
        SourceError: unknown source, missing root, or a layout problem.
    """
    if source not in LAYOUTS:
        raise SourceError(f"unknown source {source!r}; choose one of {list(SOURCES)}")
    try:
        found = storage.isdir(root)
    except OSError as error:
        raise SourceError(str(error)) from None
    if not found:
        raise SourceError(f"--root {root} is not a directory")
    return LAYOUTS[source](storage.abspath(root), **options)
