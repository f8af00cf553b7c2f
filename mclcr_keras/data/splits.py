"""Deterministic split and partition rules shared by every source of the converter.

Everything here hashes strings with SHA-1 (never Python's salted ``hash``), so the same input gives
the same split on every machine, in every process and in every run.

Example:

>>> hash_split("dfdc/aaqaifqrwn")            # one of "train", "val", "test"
'test'
>>> partition_of("ffpp/Deepfakes/519_515", 4)  # 0..3
2
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

from mclcr_keras.data import storage

SPLITS = ("train", "val", "test")
TRAIN, VAL, TEST = SPLITS
# FaceForensics++'s official split has 720 / 140 / 140 of its 1000 originals.
DEFAULT_FRACTIONS = (0.72, 0.14, 0.14)


def stable_fraction(key: str) -> float:
    """Maps a string to a number in [0, 1), uniformly and identically on every machine.

    Example:

    >>> 0.0 <= stable_fraction("celebdf/id7") < 1.0
    True
    """
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def parse_fractions(text: str) -> tuple[float, float, float]:
    """Parses ``"0.72,0.14,0.14"`` (train, val, test; non-negative, normalized to sum 1).

    Raises:
        ValueError: not three non-negative numbers with a positive sum.
    """
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--split-fractions must be three numbers 'train,val,test', got {text!r}")
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise ValueError(
            f"--split-fractions must be three non-negative numbers 'train,val,test', got {text!r}"
        )
    total = sum(values)
    return (values[0] / total, values[1] / total, values[2] / total)


def hash_split(key: str, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """Split of a group key by hash: train/val/test with the given proportions.

    Everything that must stay together (a real video and its fakes, an identity) shares the key.

    Example:

    >>> hash_split("ffpp/000") in SPLITS
    True
    """
    value = stable_fraction(key)
    train, val, _ = fractions
    if value < train:
        return "train"
    if value < train + val:
        return "val"
    return "test"


def partition_of(key: str, num_partitions: int) -> int:
    """Partition (0..K-1) that converts an item: a hash of its key, so partitions need no
    coordinator and no shared listing order.

    Example:

    >>> partition_of("ffpp/original/519", 1)
    0
    """
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    return int(stable_fraction("partition/" + key) * num_partitions)


def load_ffpp_splits(splits_dir: str | os.PathLike) -> tuple[dict[str, str], dict[str, str]]:
    """Reads FaceForensics++'s official ``train.json``, ``val.json``, ``test.json``.

    Each file is a list of pairs ``[a, b]``: originals ``a`` and ``b`` and the fakes ``a_b`` and
    ``b_a`` belong to that split.

    Returns:
        ``(original_split, fake_split)``: id -> split for originals (``"519"``) and for fakes
        (``"519_515"``).

    Raises:
        FileNotFoundError: a split file is missing (the message names it).
        ValueError: a file is not a list of id pairs, or an id appears in two splits.
    """
    original_split: dict[str, str] = {}
    fake_split: dict[str, str] = {}
    for split in SPLITS:
        path = os.path.join(os.fspath(splits_dir), f"{split}.json")
        if not storage.isfile(path):
            raise FileNotFoundError(f"missing FF++ split file {path}")
        try:
            with storage.open_text(path) as handle:
                pairs = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read FF++ split file {path}: {error}") from None
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(i, str) for i in p)
            for p in pairs
        ):
            raise ValueError(f"FF++ split file {path} is not a list of [id, id] pairs")
        for a, b in pairs:
            for vid in (a, b):
                if original_split.get(vid, split) != split:
                    raise ValueError(
                        f"FF++ id {vid} is in both {original_split[vid]} and {split} split files"
                    )
                original_split[vid] = split
            fake_split[f"{a}_{b}"] = split
            fake_split[f"{b}_{a}"] = split
    return original_split, fake_split
