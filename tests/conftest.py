"""Shared fixtures: quiet TensorFlow, locate the optional third-party data in ../shared/data."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
