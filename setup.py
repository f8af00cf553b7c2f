"""Packaging for mclcr_keras (runtime dependencies live in requirements.txt)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
# Apache Beam 2.69 is the first release that allows protobuf 6 (TensorFlow 2.21's); Beam's
# TensorFlow model handler (RunInference) imports tensorflow_hub.
BEAM = ["apache-beam>=2.69,<3", "tensorflow-hub>=0.16"]


def _requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="mclcr_keras",
    version="0.1.0",
    description=(
        "MC-LCR face forgery detection (Wang et al., 2022) in Keras 3 / TensorFlow: "
        "model, TFRecord converter, training, evaluation and TF Serving export."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["mclcr_keras", "mclcr_keras.*"]),
    include_package_data=True,
    # The paper's Tables 3-6 (evaluate --compare-paper), read with importlib.resources.
    package_data={"mclcr_keras.evaluation": ["paper_results.csv"],
                  # The service's page (python -m mclcr_keras.serve): plain HTML, JS and CSS.
                  "mclcr_keras.serve": ["static/*.html", "static/*.js", "static/*.css"]},
    python_requires=">=3.10",
    install_requires=_requirements(),
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
            "ruff>=0.6",
            "av>=14",  # the H.264 perturbation of evaluate --perturb (tests/test_robustness.py)
            # python -m mclcr_keras.serve and its client (tests/test_serve.py)
            "fastapi>=0.115", "uvicorn>=0.29", "python-multipart>=0.0.18", "httpx>=0.27",
            "tensorflow-serving-api==2.21.*",  # export's warm-up file (tests/test_serving_files.py)
            *BEAM,  # build_records / predict --engine beam (tests/test_beam_*.py)
        ],
        # build_records --engine beam, predict --engine beam (docs/beam.md).
        "beam": BEAM,
        # export's TF Serving warm-up requests (PredictionLog protos); same release as TensorFlow.
        "serving": ["tensorflow-serving-api==2.21.*"],
        # python -m mclcr_keras.serve: the HTTP scoring service (docs/serve.md).
        "serve": ["fastapi>=0.115", "uvicorn>=0.29", "python-multipart>=0.0.18"],
        # evaluate --perturb h264:CRF,...: PyAV's wheels include libx264 (OpenCV's do not).
        "robustness": ["av>=14"],
        "gpu": ["tensorflow[and-cuda]==2.21.*"],
    },
    license="Apache-2.0",
)
