"""Explanations (mclcr_keras.viz.saliency, mclcr_keras.viz.explain): Grad-CAM against a per-crop
GradientTape recomputation and, for the baseline, against the closed-form CAM of its linear head;
frequency saliency against a head model fed the tokens as inputs and against central finite
differences; the figure's PNG, texts and timeline for 1 and 2 tracks and a one-frame track."""

import io

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mclcr_keras.models import MCLCRConfig, build_mclcr, load_model
from mclcr_keras.viz import (
    explain_crops,
    explain_tracks,
    explanation_figure,
    frequency_saliency,
    grad_cam,
    plot_explanation,
)

SIZE, P = 64, 16
G = SIZE // P
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRACE_BOX, ASTRONAUT_BOX = [90, 40, 390, 340], [140, 20, 340, 220]


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return load_model(tiny_model_path)


@pytest.fixture(scope="module")
def baseline():
    keras.utils.set_random_seed(3)
    return build_mclcr(MCLCRConfig.smoke(variant="baseline"), compile=False)


def cut(image, box):
    x0, y0, x1, y1 = box
    return cv2.resize(image[y0:y1, x0:x1], (SIZE, SIZE), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def crops(grace, astronaut) -> np.ndarray:
    return np.stack([cut(grace, GRACE_BOX), cut(astronaut, ASTRONAUT_BOX)])


def reference_cam(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Selvaraju et al. in NumPy + OpenCV: mean-gradient weights, ReLU, bilinear, / max."""
    weights = gradients.mean(axis=(0, 1))
    cam = np.maximum(np.tensordot(activations, weights, axes=([2], [0])), 0.0)
    up = cv2.resize(cam.astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    return up / up.max() if up.max() > 0 else up


# ------------------------------------------------------------------------------- Grad-CAM
def test_grad_cam_matches_a_per_crop_gradient_tape(model, crops):
    # The last block's activation is the backbone's "global" tap, which GF is pooled from.
    assert model.backbone.output["global"]._keras_history[0].name == "block14_sepconv2_act"
    sub = keras.Model(model.input, [model.get_layer("global_pool").input,
                                    model.get_layer("logit").output])
    maps = grad_cam(model, crops)
    assert maps.shape == (2, SIZE, SIZE) and maps.dtype == np.float32
    for crop, got in zip(crops, maps):
        with tf.GradientTape() as tape:
            activations, logit = sub(crop[None].astype(np.float32), training=False)
        gradients = tape.gradient(logit, activations)[0].numpy()
        assert activations.shape[1:] == (2, 2, 2048)  # block14_sepconv2_act at 64 px
        expected = reference_cam(activations[0].numpy(), gradients)
        assert expected.max() == pytest.approx(1.0)
        np.testing.assert_allclose(got, expected, atol=2e-5)
        assert got.min() >= 0.0 and got.max() == pytest.approx(1.0)


def test_baseline_grad_cam_is_the_cam_of_its_linear_head(baseline, crops):
    """Baseline: logit = w . GAP(A) + b, so d logit / dA = w / (h w) and Grad-CAM = CAM."""
    kernel = baseline.get_layer("logit").kernel
    original = kernel.numpy()
    activations = keras.Model(baseline.input, baseline.get_layer("global_pool").input)(
        crops.astype(np.float32), training=False).numpy()
    area = activations.shape[1] * activations.shape[2]
    bias = float(baseline.get_layer("logit").bias.numpy()[0])
    w = np.random.default_rng(0).normal(0.0, 1.0, original.shape).astype(np.float32)
    try:
        for kernel_value in (np.abs(w), w):  # all positions push the logit up; mixed signs
            kernel.assign(kernel_value)
            result = explain_crops(baseline, crops)
            raw = np.tensordot(activations, kernel_value[:, 0], axes=([3], [0])) / area
            np.testing.assert_allclose(raw.sum(axis=(1, 2)) + bias, result["logit"], atol=1e-5)
            for i in range(2):
                up = cv2.resize(np.maximum(raw[i], 0).astype(np.float32), (SIZE, SIZE))
                assert up.max() > 0 or kernel_value is w
                np.testing.assert_allclose(result["grad_cam"][i], up / max(up.max(), 1e-30),
                                           atol=2e-5)
                assert result["grad_cam_peak"][i] == pytest.approx(up.max(), rel=1e-4)
        # Every position lowers the logit (A >= 0 after the ReLU, w <= 0): the map stays zero.
        kernel.assign(-np.abs(w))
        result = explain_crops(baseline, crops)
        assert np.all(result["grad_cam"] == 0.0) and np.all(result["grad_cam_peak"] == 0.0)
    finally:
        kernel.assign(original)


@pytest.fixture(scope="module")
def explained(model, crops):
    return explain_crops(model, crops)


def test_shapes_batches_and_inputs(model, crops, explained):
    whole = explained
    single = explain_crops(model, list(crops), batch_size=1)  # a list, one crop per pass
    for key in ("logit", "grad_cam", "frequency", "frequency_amplitude", "frequency_phase"):
        np.testing.assert_allclose(single[key], whole[key], rtol=1e-4, atol=1e-6)
    expected = np.asarray(model(crops.astype(np.float32), training=False)["logit"])[:, 0]
    np.testing.assert_allclose(whole["logit"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole["probability"], 1 / (1 + np.exp(-expected)), rtol=1e-5)
    assert whole["frequency"].shape == (2, G, G) and np.all(whole["frequency"] > 0)
    np.testing.assert_allclose(whole["frequency"], np.hypot(whole["frequency_amplitude"],
                                                            whole["frequency_phase"]), rtol=1e-6)
    # A crop of another size is resized to the model's side first.
    big = cv2.resize(crops[0], (128, 128), interpolation=cv2.INTER_CUBIC)
    assert frequency_saliency(model, [big]).shape == (1, G, G)


def test_baseline_has_no_frequency_saliency(baseline, crops):
    assert frequency_saliency(baseline, crops) is None
    result = explain_crops(baseline, crops)
    assert result["frequency_amplitude"] is None and result["frequency_phase"] is None
    assert result["grad_cam"].shape == (2, SIZE, SIZE)


def test_a_model_without_the_mclcr_layers_is_refused():
    plain = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="explanations need the MC-LCR Keras model"):
        grad_cam(plain, np.zeros((1, SIZE, SIZE, 3)))


# ------------------------------------------------------------------ frequency saliency
def test_frequency_saliency_against_token_inputs_and_finite_differences(model, crops,
                                                                         explained):
    features = model.feature_extractor
    keys = ["SSF_b1", "SSF_b2", "SSF_b3", "GF", "amplitude", "phase"]
    head = keras.Model([features.output[k] for k in keys], model.get_layer("logit").output)
    values = features(crops.astype(np.float32), training=False)
    fixed = [tf.constant(values[k]) for k in keys[:4]]
    amplitude, phase = tf.constant(values["amplitude"]), tf.constant(values["phase"])
    assert amplitude.shape == (2, G * G, P * P)

    def logit(amp, ph):
        return head(fixed + [amp, ph], training=False)[:, 0]

    np.testing.assert_allclose(logit(amplitude, phase),
                               np.asarray(model(crops.astype(np.float32))["logit"])[:, 0],
                               rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch([amplitude, phase])
        total = tf.reduce_sum(logit(amplitude, phase))
    g_amp, g_phase = (g.numpy() for g in tape.gradient(total, [amplitude, phase]))
    result = explained
    norms_amp = np.linalg.norm(g_amp, axis=-1).reshape(2, G, G)
    norms_phase = np.linalg.norm(g_phase, axis=-1).reshape(2, G, G)
    np.testing.assert_allclose(result["frequency_amplitude"], norms_amp, rtol=1e-4)
    np.testing.assert_allclose(result["frequency_phase"], norms_phase, rtol=1e-4)

    # Along the unit gradient of one patch's tokens, the logit changes at the rate |g_n|.
    eps = 1e-2
    for tokens, grads, name in ((amplitude, g_amp, "amplitude"), (phase, g_phase, "phase")):
        for crop, patch in ((0, 0), (0, 5), (1, G * G - 1)):
            direction = np.zeros(tokens.shape, np.float32)
            direction[crop, patch] = grads[crop, patch] / np.linalg.norm(grads[crop, patch])
            step = tf.constant(eps * direction)
            args = {"amplitude": lambda s, t=tokens: (t + s, phase),
                    "phase": lambda s, t=tokens: (amplitude, t + s)}[name]
            slope = (logit(*args(step))[crop] - logit(*args(-step))[crop]).numpy() / (2 * eps)
            got = result[f"frequency_{name}"][crop].ravel()[patch]
            assert slope == pytest.approx(got, rel=3e-2, abs=2e-4), (name, crop, patch)


# ---------------------------------------------------------------------------- the figure
def track(track_id, image, box, frames, probabilities):
    best = frames[int(np.argmax(probabilities))]
    return {"track_id": track_id, "frames": frames, "probabilities": probabilities,
            "probability": float(np.mean(probabilities)),
            "best": {"frame_index": best, "frame": image, "box": box, "crop": cut(image, box)}}


@pytest.fixture(scope="module")
def two_tracks(grace, astronaut):
    return [track(0, grace, GRACE_BOX, [0, 8, 16, 24], [0.2, 0.9, 0.7, 0.4]),
            track(5, astronaut, ASTRONAUT_BOX, [16], [0.3])]  # one frame only


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    image = Image.open(io.BytesIO(data))
    image.verify()
    return image.size


def test_explain_tracks_writes_the_figure_for_two_tracks(model, two_tracks, tmp_path):
    before = [dict(t["best"]) for t in two_tracks]
    path = explain_tracks(model, two_tracks, 0.42, tmp_path / "out" / "clip.png",
                          title="clip.mp4: FAKE", dpi=60)
    assert path == tmp_path / "out" / "clip.png"
    assert png_size(path) == (13 * 60, int(round((3.3 * 2 + 3.0) * 60)))
    assert [sorted(b) for b in before] == [sorted(t["best"]) for t in two_tracks]  # not modified


def test_figure_contents_with_one_and_two_tracks(explained, baseline, two_tracks, tmp_path):
    maps = explained  # the same crops as the tracks' best crops
    tracks = [{**t, "best": {**t["best"], "grad_cam": maps["grad_cam"][i],
                             "frequency": maps["frequency"][i]}} for i, t in enumerate(two_tracks)]
    fig = explanation_figure(tracks, 0.42)
    assert fig._suptitle.get_text() == "FAKE: track 0 has P(fake) 0.550 > threshold 0.420"
    timeline = fig.axes[-1]
    legend = [text.get_text() for text in timeline.get_legend().get_texts()]
    assert legend == ["threshold 0.420 (above: fake)", "track 0 (P(fake) 0.550, 4 frames)",
                      "track 5 (P(fake) 0.300, 1 frame)"]
    lines = [line for line in timeline.get_lines() if line.get_label().startswith("track")]
    np.testing.assert_array_equal(lines[0].get_xdata(), [0, 8, 16, 24])
    np.testing.assert_array_equal(lines[1].get_ydata(), [0.3])
    threshold_line = timeline.get_lines()[0]
    assert list(threshold_line.get_ydata()) == [0.42, 0.42]
    overlays = [im.get_array() for ax in fig.axes for im in ax.get_images()]
    assert any(np.array_equal(a, maps["grad_cam"][1]) for a in overlays)
    assert any(np.array_equal(a, maps["frequency"][0]) for a in overlays)

    one = plot_explanation(tracks[1:], 0.5, tmp_path / "one.png", dpi=50)
    assert png_size(one) == (650, int(round(6.3 * 50)))
    again = plot_explanation(tracks[1:], 0.5, tmp_path / "again.png", dpi=50)
    assert one.read_bytes() == again.read_bytes()  # deterministic
    real = explanation_figure(tracks[1:], 0.5)
    assert real._suptitle.get_text().startswith("REAL: track 5 has P(fake) 0.300 <= ")

    base = explain_tracks(baseline, tracks[:1], 0.5, tmp_path / "baseline.png", dpi=50)
    assert png_size(base) == (650, int(round(6.3 * 50)))
    no_branch = [{**tracks[0], "best": {**tracks[0]["best"], "frequency": None}}]
    texts = [t.get_text() for ax in explanation_figure(no_branch, 0.5).axes for t in ax.texts]
    assert "no frequency branch\nin this model variant" in texts


def test_bad_tracks_are_refused(two_tracks, tmp_path):
    with pytest.raises(ValueError, match="tracks is empty"):
        explanation_figure([], 0.5)
    broken = {k: v for k, v in two_tracks[0].items() if k != "probabilities"}
    with pytest.raises(ValueError, match=r"tracks\[0\] has no probabilities"):
        explain_tracks(None, [broken], 0.5, tmp_path / "x.png")
    with pytest.raises(ValueError, match="best.grad_cam"):
        explanation_figure(two_tracks, 0.5)
    uneven = {**two_tracks[0], "frames": [0, 8]}
    with pytest.raises(ValueError, match="must be equal"):
        explain_tracks(None, [uneven], 0.5, tmp_path / "x.png")
