"""The full MC-LCR model learns a local up-sampling artifact on synthetic textures.

"Real" images are smooth random colour fields with per-pixel sensor-like noise. "Fake" ones have
one 32 x 32 region (random position) replaced by its 2x down-sampled copy up-sampled again with
nearest neighbour, as a face-swap blend leaves behind. Every training step draws fresh images,
so the model cannot memorise; held-out AUC (sklearn) on other images must be clearly above chance.
"""

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mclcr_keras.models import MCLCRConfig, build_mclcr, recompute_batchnorm_statistics

SIZE, REGION, NOISE = 64, 32, 12.0
STEPS, BATCH = 32, 16


def _box_blur(images, k):
    pad = np.pad(images, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)), mode="reflect")
    c = np.pad(np.cumsum(np.cumsum(pad, 1), 2), ((0, 0), (1, 0), (1, 0), (0, 0)))
    return (c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]) / k**2


def synthetic_faces(n, rng):
    """`n` images (half fake, alternating labels starting with real) and their labels."""
    low = rng.normal(size=(n, SIZE // 8, SIZE // 8, 3))
    images = 128 + 40 * _box_blur(np.kron(low, np.ones((1, 8, 8, 1))), 7)
    images += rng.normal(0, NOISE, images.shape)
    labels = np.arange(n) % 2
    for i in np.flatnonzero(labels):
        y, x = 2 * rng.integers(0, (SIZE - REGION) // 2 + 1, size=2)
        region = images[i, y : y + REGION, x : x + REGION]
        low_res = region.reshape(REGION // 2, 2, REGION // 2, 2, 3).mean(axis=(1, 3))
        images[i, y : y + REGION, x : x + REGION] = low_res.repeat(2, 0).repeat(2, 1)
    return np.clip(images, 0, 255).astype("float32"), labels


def test_artifact_is_invisible_to_global_statistics():
    # The classes have the same mean brightness: the model must look at local structure.
    images, labels = synthetic_faces(256, np.random.default_rng(5))
    means = images.mean(axis=(1, 2, 3))
    assert roc_auc_score(labels, means) == pytest.approx(0.5, abs=0.1)


@pytest.mark.slow
def test_full_model_learns_upsampling_artifact():
    keras.utils.set_random_seed(0)
    model = build_mclcr(MCLCRConfig.smoke(image_size=SIZE), compile=False)
    assert model.config.variant == "mclcr"
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=STEPS)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4))

    train_rng = np.random.default_rng(1)
    held_out, held_out_labels = synthetic_faces(128, np.random.default_rng(2))
    for _ in range(STEPS):
        model.train_on_batch(*synthetic_faces(BATCH, train_rng))
    # Moving BatchNorm averages lag the weights after 32 steps from scratch; recompute them.
    recompute_batchnorm_statistics(model, (synthetic_faces(32, train_rng) for _ in range(6)))
    after = model.predict(held_out, batch_size=64, verbose=0)["probability"].ravel()

    auc = roc_auc_score(held_out_labels, after)
    print(f"held-out AUC after {STEPS} steps: {auc:.3f}")
    assert auc > 0.75, auc
