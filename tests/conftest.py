"""Shared test scaffolding: quiet TensorFlow, the third-party data in ../shared/data, and the
session-scoped things several test files need (face photos, small records, one tiny model, the
mixed-precision policy). Each is built once per test session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TINY_SIZE = 64  # face crop side of every tiny model and record set of the tests
TINY_FRAMES = 4
TINY_VIDEOS = {"train": 3, "val": 2, "test": 1}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data (research-only data, never copied into the project)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"third-party test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ffpp_mini(shared_data: Path) -> Path:
    root = shared_data / "ffpp_mini"
    if not root.is_dir():
        pytest.skip(f"FaceForensics++ sample not found at {root}")
    return root


# ---------------------------------------------------------------------------------- images


@pytest.fixture(scope="session")
def grace() -> np.ndarray:
    """Grace Hopper (matplotlib's public-domain sample photo), RGB uint8."""
    import matplotlib.cbook

    from mclcr_keras.data.video import read_image

    return read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """Eileen Collins (scikit-image's public-domain sample photo), RGB uint8."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


@pytest.fixture
def mixed_bfloat16():
    """The global Keras policy set to mixed_bfloat16 for one test, then restored."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


# ------------------------------------------------------------------------- face media


@pytest.fixture(scope="session")
def heads(grace, astronaut) -> list[np.ndarray]:
    """The two public-domain face photos cropped to the head (the face fills ~55% of the side)."""
    found = []
    from mclcr_keras.data.faces import FaceAligner

    for image in (grace, astronaut):
        x0, y0, x1, y1 = FaceAligner().detect(image)[0]
        cx, cy, half = (x0 + x1) // 2, (y0 + y1) // 2, int(0.9 * (x1 - x0))
        found.append(np.ascontiguousarray(image[max(0, cy - half):cy + half,
                                                max(0, cx - half):cx + half]))
    return found


def make_video(path: Path, face: np.ndarray | None, frames: int = 6, seed: int = 0,
               size=(240, 180)) -> Path:
    """An mp4 of a real face photo jittered around a grey frame (or noise if face is None)."""
    import cv2

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    small = None
    if face is not None:
        image = face
        scale = size[1] / image.shape[0] * 0.9
        small = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    for _ in range(frames):
        if small is None:
            frame = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        else:
            frame = np.full((size[1], size[0], 3), 90 + int(rng.integers(0, 60)), np.uint8)
            dx = int(rng.integers(0, size[0] - small.shape[1] + 1))
            dy = int(rng.integers(0, size[1] - small.shape[0] + 1))
            frame[dy:dy + small.shape[0], dx:dx + small.shape[1]] = small
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path



# ------------------------------------------------------------------------- records, models


def write_tiny_faces(root: Path, videos=None, frames: int = TINY_FRAMES, size: int = TINY_SIZE):
    """Frame folders of ``root/<split>/<real|fake>/<video>/``: real = smooth shaded images, fake =
    the same with a noisy square blended into the centre (learnable in a few steps)."""
    import cv2

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / float(size)
    lo, hi = size // 4, 3 * size // 4
    for split, count in (videos or TINY_VIDEOS).items():
        for label in ("real", "fake"):
            for video in range(count):
                folder = root / split / label / f"{split}-{label}-{video}"
                folder.mkdir(parents=True)
                tint = rng.uniform(0, 40, 3)
                for frame in range(frames):
                    image = np.stack([yy, xx, (yy + xx) / 2], -1) * 200 + tint
                    if label == "fake":
                        image[lo:hi, lo:hi] += rng.normal(0, 30, (hi - lo, hi - lo, 3))
                    image += rng.normal(0, 3, image.shape)
                    rgb = np.clip(image, 0, 255).astype(np.uint8)
                    cv2.imwrite(str(folder / f"{frame:03d}.png"), rgb[..., ::-1])


@pytest.fixture(scope="session")
def tiny_records(tmp_path_factory) -> Path:
    """Records (train/val/test, both classes) of `write_tiny_faces`, via the real converter."""
    from mclcr_keras import build_records

    root = tmp_path_factory.mktemp("tiny_records")
    write_tiny_faces(root / "faces")
    out = root / "records"
    status = build_records.main(["folder", "--root", str(root / "faces"), "--out", str(out),
                                 "--crop", "none", "--size", str(TINY_SIZE), "--workers", "1",
                                 "--quiet"])
    assert status == 0
    return out


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A random-weight 64 px MC-LCR (seed 7) saved as .keras: for tests of the plumbing."""
    import keras

    from mclcr_keras.models import build_mclcr

    keras.utils.set_random_seed(7)
    model = build_mclcr(image_size=TINY_SIZE, weights=None, compile=False)
    path = tmp_path_factory.mktemp("tiny_model") / "tiny.keras"
    model.save(path)
    return path
