"""`BuildOptions`: every option of a conversion to records, with the converter's defaults.

``python -m mclcr_keras.build_records`` fills one from its command line; a notebook or a pipeline
builds one directly. `BuildOptions.validate` raises `mclcr_keras.errors.UsageError` with one line
for a bad value before anything is read or written.

Example:

```python
options = BuildOptions("folder", root="my_faces", out="records/mine", crop="none")
options.validate()  # raises mclcr_keras.errors.UsageError for a bad value
```
"""

from __future__ import annotations

import dataclasses
import os

from mclcr_keras.data import storage
from mclcr_keras.data.crops import CROP_MODES
from mclcr_keras.data.schema import IMAGE_FORMATS
from mclcr_keras.data.sources import FFPP_DEFAULT_METHODS
from mclcr_keras.data.sources.ffpp import FFPP_COMPRESSIONS
from mclcr_keras.data.storage import ENGINES
from mclcr_keras.errors import UsageError
from mclcr_keras.files import check_output_dir

MERGE = "merge"
# Options that change the records: a resumed build must use the same values.
CONTENT_OPTIONS = ("source", "root", "compression", "methods", "splits_dir", "split_fractions",
                   "dataset_name", "frames", "size", "margin", "image_format", "jpeg_quality",
                   "crop", "shard_mb", "num_partitions", "partition")


@dataclasses.dataclass
class BuildOptions:
    """A conversion of one source layout (or the merge of partitions) into ``out``.

    Attributes:
        source: ``ffpp``, ``celebdf``, ``dfdc``, ``folder`` (`mclcr_keras.data.sources`) or
            ``merge`` (join the outputs of ``num_partitions`` runs under ``out``).
        root: the dataset root (not used by ``merge``).
        out: the output folder.
        compression: ffpp: which compression to read.
        methods: ffpp: comma-separated manipulation methods.
        splits_dir: ffpp: the official split files; celebdf: the test list's folder.
        split_fractions: ``"train,val,test"`` proportions of every hash-based split.
        dataset_name: folder: the records' ``dataset`` field.
        frames: frames sampled evenly over each video.
        size: crop side in pixels.
        margin: crop side / face box side.
        crop: ``detect`` (find and align a face) or ``none`` (inputs are crops; resize only).
        image_format: ``png`` (lossless) or ``jpeg``.
        jpeg_quality: JPEG quality with ``image_format="jpeg"``.
        workers: conversion processes.
        shard_mb: target shard size in MB.
        resume: continue an interrupted build in ``out`` (same options).
        overwrite: delete an earlier build_records output in ``out`` first.
        num_partitions: split the inputs into this many partitions (a Slurm array).
        partition: which partition this run converts.
        quiet: no progress bar.
        engine: ``local`` (worker processes here) or ``beam`` (`mclcr_keras.beam.records`).
        pipeline_args: Beam's pipeline options (``engine="beam"`` only).
    """

    source: str
    root: str | None = None
    out: str = ""
    compression: str = "c23"
    methods: str = ",".join(FFPP_DEFAULT_METHODS)
    splits_dir: str | None = None
    split_fractions: str = "0.72,0.14,0.14"
    dataset_name: str = "folder"
    frames: int = 30
    size: int = 256
    margin: float = 1.3
    crop: str = "detect"
    image_format: str = "png"
    jpeg_quality: int = 95
    workers: int = os.cpu_count() or 1
    shard_mb: float = 128.0
    resume: bool = False
    overwrite: bool = False
    num_partitions: int = 1
    partition: int | None = None
    quiet: bool = False
    engine: str = "local"
    pipeline_args: tuple[str, ...] = ()

    @property
    def is_merge(self) -> bool:
        return self.source == MERGE

    def validate(self) -> None:
        """One-line `UsageError` for the first bad value; checks no file but ``root``."""
        if not self.out:
            raise UsageError("--out is required")
        remote = [(flag, path) for flag, path in (("--out", self.out), ("--root", self.root),
                                                   ("--splits-dir", self.splits_dir))
                  if path and storage.scheme_of(path)]
        if remote and self.engine != "beam":
            raise UsageError(f"{remote[0][0]} {remote[0][1]}: paths on other filesystems need "
                             f"--engine beam")
        remote_paths = {flag for flag, _ in remote}  # checked by the Beam engine, which can
        if "--out" not in remote_paths:
            check_output_dir(self.out, "--out")
        if self.is_merge:
            return
        if not self.root:
            raise UsageError(f"--root is required for source {self.source}")
        if "--root" not in remote_paths and not os.path.isdir(self.root):
            raise UsageError(f"--root {self.root} is not a directory")
        if self.splits_dir is not None and "--splits-dir" not in remote_paths \
                and not os.path.isdir(self.splits_dir):
            raise UsageError(f"--splits-dir {self.splits_dir} is not a directory")
        checks = [
            (self.compression in FFPP_COMPRESSIONS,
             f"--compression must be one of {FFPP_COMPRESSIONS}, got {self.compression!r}"),
            (self.crop in CROP_MODES, f"--crop must be one of {CROP_MODES}, got {self.crop!r}"),
            (self.image_format in IMAGE_FORMATS,
             f"--image-format must be one of {IMAGE_FORMATS}, got {self.image_format!r}"),
            (self.frames >= 1, f"--frames must be >= 1, got {self.frames}"),
            (self.size >= 16, f"--size must be >= 16, got {self.size}"),
            (self.margin >= 1.0, f"--margin must be >= 1.0, got {self.margin}"),
            (self.workers >= 1, f"--workers must be >= 1, got {self.workers}"),
            (1 <= self.jpeg_quality <= 100, f"--jpeg-quality must be in 1..100, got "
                                            f"{self.jpeg_quality}"),
            (self.shard_mb > 0, f"--shard-mb must be > 0, got {self.shard_mb}"),
            (self.num_partitions >= 1,
             f"--num-partitions must be >= 1, got {self.num_partitions}"),
            (not (self.resume and self.overwrite), "--resume and --overwrite exclude each other"),
            (self.engine in ENGINES, f"--engine must be one of {ENGINES}, got {self.engine!r}"),
            (self.engine == "beam" or not self.pipeline_args,
             f"arguments after -- are Beam pipeline options: they need --engine beam "
             f"(got {' '.join(self.pipeline_args)})"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        if self.num_partitions > 1 and self.partition is None:
            raise UsageError(f"--num-partitions {self.num_partitions} needs --partition "
                             f"0..{self.num_partitions - 1}")
        if self.partition is not None and not 0 <= self.partition < self.num_partitions:
            raise UsageError(f"--partition must be in 0..{self.num_partitions - 1}, "
                             f"got {self.partition}")

    def crop_options(self) -> dict:
        """What a conversion worker needs (`mclcr_keras.data.writer.workers.init_worker`)."""
        return {"frames": self.frames, "size": self.size, "margin": self.margin,
                "crop": self.crop, "image_format": self.image_format,
                "jpeg_quality": self.jpeg_quality}

    def content_config(self) -> dict:
        """The options that shape the records (`CONTENT_OPTIONS`), paths made absolute."""
        values = dataclasses.asdict(self)
        config = {name: values[name] for name in CONTENT_OPTIONS}
        for name in ("root", "splits_dir"):
            if config[name]:
                config[name] = storage.abspath(config[name])
        return config
