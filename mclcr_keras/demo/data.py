"""A small real-vs-fake demo dataset made at run time, with no download.

Real "videos" are short frame sequences synthesised from the two public-domain face photos that
ship inside packages we already depend on: Grace Hopper (matplotlib's sample data, a U.S. Navy
photo) and Eileen Collins (``skimage.data.astronaut()``, a NASA photo). Each video places the face
with its own random similarity transform (rotation within +/-10 degrees, size, position, optional
mirror), colour and brightness, and moves it slightly from frame to frame. Fake videos are made the
same way and then every frame is self-blended (`mclcr_keras.demo.sbi.self_blend`, Shiohara &
Yamasaki 2022) inside the 68-point landmark hull, with one manipulation per video. Both classes get
the same sensor noise afterwards, so only the blending tells them apart.

Layout written (the ``folder`` source of ``build_records``)::

    OUT/<train|val|test>/<real|fake>/<video_id>/<frame>.png
    OUT/demo_data.json            parameters, sources and licences, one entry per video

Only two identities exist, so the splits share identities (not videos): this is a smoke-test
dataset for the whole chain, not a benchmark. See ``docs/demo_data.md``.

Example (in Python, or the same from the command line)::

    root = make_demo_folder("demo/faces", videos_per_class=8, frames_per_video=4)

    python -m mclcr_keras.demo_data demo/faces --videos-per-class 8 --frames-per-video 4
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from mclcr_keras.data.schema import LABEL_NAMES
from mclcr_keras.data.splits import SPLITS
from mclcr_keras.demo.sbi import SelfBlendConfig, self_blend

logger = logging.getLogger(__name__)

INFO_FILE = "demo_data.json"


@dataclasses.dataclass(frozen=True)
class DemoSource:
    """A face photo and its dlib detection (mirrored copies are separate sources).

    Attributes:
        name: short id used in video ids, e.g. ``"grace_hopper"`` or ``"astronaut-mirror"``.
        rgb: ``(H, W, 3)`` uint8 photo.
        box: dlib face box ``(x0, y0, x1, y1)``.
        landmarks: ``(68, 2)`` dlib landmarks.
        origin: where the photo comes from and its licence.
    """

    name: str
    rgb: np.ndarray
    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    origin: str


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read matplotlib's sample image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


_PHOTOS = (
    ("grace_hopper", _grace_hopper,
     "matplotlib sample data grace_hopper.jpg; U.S. Navy photograph, public domain"),
    ("astronaut", _astronaut,
     "scikit-image skimage.data.astronaut(); NASA photograph of Eileen Collins, public domain"),
)


@functools.lru_cache(maxsize=1)
def _default_sources() -> tuple[DemoSource, ...]:
    return tuple(demo_sources())


def demo_sources(aligner=None) -> list[DemoSource]:
    """The shipped face photos, each also mirrored, with dlib boxes and 68-point landmarks.

    Args:
        aligner: a ``mclcr_keras.data.faces.FaceAligner`` (a default one when ``None``).

    Raises:
        RuntimeError: if dlib finds no face in a photo (would mean a broken install).
    """
    from mclcr_keras.data.faces import FaceAligner

    aligner = aligner or FaceAligner()
    sources = []
    for name, load, origin in _PHOTOS:
        photo = load()
        for suffix, rgb in (("", photo), ("-mirror", np.ascontiguousarray(photo[:, ::-1]))):
            boxes = aligner.detect(rgb)
            if not boxes:
                raise RuntimeError(f"dlib found no face in the demo photo {name}{suffix}")
            box = tuple(int(v) for v in boxes[0])
            landmarks = aligner.landmarks(rgb, box, points=68)
            sources.append(DemoSource(name + suffix, rgb, box, landmarks, origin))
    return sources


@dataclasses.dataclass(frozen=True)
class _VideoPlan:
    source: int
    angle: float
    face_px: float
    center: tuple[float, float]
    drift: tuple[float, float, float]  # px/frame in x, y; degrees/frame
    gain: tuple[float, float, float]
    brightness: float
    contrast: float
    noise: float


def _plan_video(rng: np.random.Generator, source: int, size: int) -> _VideoPlan:
    return _VideoPlan(
        source=source,
        angle=float(rng.uniform(-10.0, 10.0)),
        face_px=float(rng.uniform(0.30, 0.42) * size),
        center=(float(size * rng.uniform(0.42, 0.58)), float(size * rng.uniform(0.40, 0.55))),
        drift=(float(rng.uniform(-3, 3)), float(rng.uniform(-2, 2)), float(rng.uniform(-1, 1))),
        gain=tuple(float(g) for g in rng.uniform(0.9, 1.1, size=3)),
        brightness=float(rng.uniform(-20.0, 20.0)),
        contrast=float(rng.uniform(0.85, 1.15)),
        noise=float(rng.uniform(1.0, 3.0)),
    )


def _frame_matrix(plan: _VideoPlan, src: DemoSource, frame: int, rng) -> np.ndarray:
    """Similarity transform photo -> frame: the face box centre goes to the planned position."""
    box_center = ((src.box[0] + src.box[2]) / 2.0, (src.box[1] + src.box[3]) / 2.0)
    box_side = float(src.box[2] - src.box[0])
    jitter = rng.normal(0.0, 0.6, size=3)
    angle = float(np.clip(plan.angle + plan.drift[2] * frame + jitter[2], -10.0, 10.0))
    scale = plan.face_px / box_side * (1.0 + 0.01 * jitter[0])
    matrix = cv2.getRotationMatrix2D(box_center, angle, scale)
    matrix[0, 2] += plan.center[0] + plan.drift[0] * frame + jitter[0] - box_center[0]
    matrix[1, 2] += plan.center[1] + plan.drift[1] * frame + jitter[1] - box_center[1]
    return matrix


def _render(plan: _VideoPlan, src: DemoSource, matrix: np.ndarray, size: int) -> np.ndarray:
    frame = cv2.warpAffine(src.rgb, matrix, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    mean = frame.mean()
    frame = (frame - mean) * plan.contrast + mean + plan.brightness
    frame *= np.asarray(plan.gain, np.float32)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def _add_noise(frame: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = frame.astype(np.float32) + rng.normal(0.0, sigma, frame.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def make_demo_folder(
    out_dir: str | Path,
    *,
    videos_per_class: int = 8,
    frames_per_video: int = 4,
    image_size: int = 320,
    seed: int = 0,
    overwrite: bool = False,
    sbi_config: SelfBlendConfig | None = None,
) -> Path:
    """Writes the demo dataset (folder layout for ``build_records folder``) and returns its root.

    Every split gets ``videos_per_class`` real and as many fake videos, alternating over the four
    sources (two photos, each also mirrored) so that the classes hold the same identities.

    Args:
        out_dir: output root; must not exist or be empty (see ``overwrite``).
        videos_per_class: videos per class and split (>= 1).
        frames_per_video: PNG frames per video (>= 1).
        image_size: side of the square frames in pixels (>= 128); faces are 30-42% of it.
        seed: everything is a deterministic function of the seed.
        overwrite: replace an existing demo folder (one holding ``demo_data.json``); other
            non-empty folders are never deleted.
        sbi_config: parameters of the self-blended fakes (e.g. ``SelfBlendConfig(blend_ratios=
            (1.0,))`` for easier fakes); the paper-like defaults when ``None``.

    Returns:
        ``Path(out_dir)``.

    Example:

    ```python
    make_demo_folder("/tmp/demo", videos_per_class=2, frames_per_video=2)   # PosixPath('/tmp/demo')
    ```
    """
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be >= 1, got {videos_per_class}")
    if frames_per_video < 1:
        raise ValueError(f"frames_per_video must be >= 1, got {frames_per_video}")
    if image_size < 128:
        raise ValueError(f"image_size must be >= 128, got {image_size}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (overwrite and (out / INFO_FILE).is_file()):
            raise FileExistsError(
                f"{out} exists and is not empty; choose a new folder"
                + (" (it is not a demo folder, so overwrite will not delete it)" if overwrite
                   else " or pass overwrite=True / --overwrite")
            )
    sbi_config = sbi_config or SelfBlendConfig()
    start = time.perf_counter()
    sources = _default_sources()
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    videos = []
    for s, split in enumerate(SPLITS):
        for label, cls in enumerate(LABEL_NAMES):
            for k in range(videos_per_class):
                rng = np.random.default_rng([seed, s, label, k])
                src_index = k % len(sources)
                src = sources[src_index]
                plan = _plan_video(rng, src_index, image_size)
                blend_seed = int(rng.integers(2**31))
                video_id = f"{split}-{src.name}-{k:02d}" + ("-sbi" if label else "")
                folder = partial / split / cls / video_id
                folder.mkdir(parents=True)
                for f in range(frames_per_video):
                    matrix = _frame_matrix(plan, src, f, rng)
                    frame = _render(plan, src, matrix, image_size)
                    if label == 1:
                        # One manipulation per video: the same blend seed for every frame.
                        lm = src.landmarks @ matrix[:, :2].T + matrix[:, 2]
                        frame, _ = self_blend(frame, lm, np.random.default_rng(blend_seed),
                                              sbi_config)
                    _write_png(folder / f"{f:04d}.png", _add_noise(frame, plan.noise, rng))
                videos.append({"split": split, "label": cls, "video_id": video_id,
                               "source": src.name, "frames": frames_per_video,
                               **dataclasses.asdict(plan)})
    info = {
        "seed": seed,
        "videos_per_class": videos_per_class,
        "frames_per_video": frames_per_video,
        "image_size": image_size,
        "sources": {src.name: src.origin for src in sources},
        "fakes": "self-blended images (Shiohara & Yamasaki, CVPR 2022), mclcr_keras.demo.sbi",
        "sbi_config": dataclasses.asdict(sbi_config),
        "videos": videos,
    }
    (partial / INFO_FILE).write_text(json.dumps(info, indent=1))
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    logger.info("demo dataset: %d videos x %d frames in %s (%.1f s)", len(videos),
                frames_per_video, out, time.perf_counter() - start)
    return out
