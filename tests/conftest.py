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
