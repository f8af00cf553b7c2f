"""Inputs identified by content: the same bytes under two labels, or twice under one label.

Two inputs are the same when their files have the same SHA-256 (a frame folder: the same frames in
the same order). Only files whose sizes collide are read, so a dataset without duplicates costs one
``stat`` per file. Duplicates are found over the whole listing, before any partition is taken, so
a partitioned build finds them across partitions too.

- The same content labelled real and fake is a contradiction: every input of the group fails
  (a row of ``failures.csv`` each), and none is converted.
- The same content under one label (possibly in two splits) is converted once, as the first input
  in listing order (sorted by dataset, method and video id); the others are skipped and listed
  in ``dataset.json`` (``"duplicates"``).

Example:

```python
kept, conflicts, duplicates = find_duplicates(items)
# conflicts: [(item, "same content as real/a.png, labelled real and fake")]
# duplicates: [{"input": ..., "same_as": ..., "label": "fake", "split": ...}]
```
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from mclcr_keras.data import storage

logger = logging.getLogger(__name__)

def _sizes(item) -> tuple[int, ...] | None:
    try:
        return tuple(storage.getsize(path) for path in item.paths)
    except OSError:
        return None  # missing or unreadable: the conversion reports it


def _digest(item) -> str | None:
    try:
        digests = [storage.sha256(path) for path in item.paths]
    except OSError:
        return None
    return digests[0] if len(digests) == 1 else hashlib.sha256(
        "".join(digests).encode()).hexdigest()


def find_duplicates(items: Sequence, threads: int = 8) -> tuple[list, list, list[dict]]:
    """Splits ``items`` (in listing order) into the inputs to convert, the contradictions and the
    skipped duplicates.

    Returns:
        ``(kept, conflicts, duplicates)``: ``kept`` the items to convert, in order; ``conflicts``
        ``[(item, reason)]`` for every input whose content also appears under the other label;
        ``duplicates`` one dict per skipped input (``key``, ``input``, ``same_as``, ``label``,
        ``split``).
    """
    by_size: dict[tuple, list] = defaultdict(list)
    for item in items:
        sizes = _sizes(item)
        if sizes and any(sizes):
            by_size[sizes].append(item)
    candidates = [item for group in by_size.values() if len(group) > 1 for item in group]
    if not candidates:
        return list(items), [], []
    with ThreadPoolExecutor(max(1, threads)) as pool:  # hashing releases the GIL
        digests = dict(zip((item.key for item in candidates), pool.map(_digest, candidates)))
    groups: dict[str, list] = defaultdict(list)
    for item in items:
        digest = digests.get(item.key)
        if digest is not None:
            groups[digest].append(item)
    failed: dict[str, str] = {}
    skipped: dict[str, dict] = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        if len({item.label for item in group}) > 1:
            for item in group:
                other = next(o for o in group if o.label != item.label)
                failed[item.key] = (f"same content as {other.input}, labelled real and fake: "
                                    "neither is converted")
            continue
        first = group[0]
        for item in group[1:]:
            skipped[item.key] = {"key": item.key, "input": item.input, "same_as": first.input,
                                 "label": item.label_name, "split": item.split}
    conflicts = [(item, failed[item.key]) for item in items if item.key in failed]
    kept = [item for item in items if item.key not in failed and item.key not in skipped]
    duplicates = [skipped[item.key] for item in items if item.key in skipped]
    if conflicts:
        logger.warning("%d inputs have the same content as an input of the other label; they "
                       "are refused (failures.csv)", len(conflicts))
    if duplicates:
        logger.warning("%d inputs repeat the content of an earlier input of the same label; "
                       "each content is converted once (dataset.json 'duplicates')",
                       len(duplicates))
    return kept, conflicts, duplicates
