"""Paper figures (mclcr_keras.viz): Fig. 3 arrays against numpy.fft, Fig. 6 maps against the
model's taps, Fig. 7 embeddings against the model on decoded records, PNGs of the expected size,
the image helpers, CLI errors (exit 2, one line). The model is the shared `tiny_model_path`."""

import os

import cv2
import numpy as np
import pytest

from mclcr_keras.data import schema
from mclcr_keras.viz import (
    align_faces,
    align_pair,
    patch_mosaic,
    patch_spectra_arrays,
    patch_spectra_figure,
    plot_feature_maps,
    plot_patch_spectra,
    plot_tsne,
    read_rgb,
    records_embeddings,
    stratified_indices,
    summed_feature_maps,
    tsne_figure,
    tsne_points,
)
from mclcr_keras.viz.__main__ import main

P = 16
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def photos(grace, astronaut) -> list[np.ndarray]:
    """The public-domain face photos shipped with matplotlib and scikit-image (RGB uint8)."""
    return [grace, astronaut]


def face_crops(photos: list[np.ndarray], size: int) -> list[np.ndarray]:
    """Rough square face regions of the two photos (no detector needed)."""
    hopper, astronaut = photos
    crops = [hopper[40:340, 90:390], astronaut[20:220, 140:340]]
    return [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops]


def numpy_patch_spectra(rgb: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: fftshifted |F| and angle(F) of each P x P patch, tiled in place."""
    gray = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    amplitude, phase = np.zeros_like(gray), np.zeros_like(gray)
    for r in range(gray.shape[0] // p):
        for c in range(gray.shape[1] // p):
            block = (slice(r * p, (r + 1) * p), slice(c * p, (c + 1) * p))
            spectrum = np.fft.fft2(gray[block]) / p**2
            amplitude[block] = np.fft.fftshift(np.abs(spectrum))
            phase[block] = np.fft.fftshift(np.angle(spectrum))
    return amplitude, phase


def wrapped(delta: np.ndarray) -> np.ndarray:
    return np.abs((delta + np.pi) % (2 * np.pi) - np.pi)


def check_against_numpy(arrays: dict, real: np.ndarray, fake: np.ndarray) -> None:
    ref = {"real": numpy_patch_spectra(real, P), "fake": numpy_patch_spectra(fake, P)}
    for key in ("real", "fake"):
        amp, pha = ref[key]
        np.testing.assert_allclose(arrays[key]["amplitude_mosaic"], amp, atol=2e-6)
        reliable = amp > 1e-4  # phase of a tiny coefficient is float32 noise
        assert wrapped(arrays[key]["phase_mosaic"] - pha)[reliable].max() < 2e-3
        rows, cols = real.shape[0] // P, real.shape[1] // P
        mean = amp.reshape(rows, P, cols, P).mean(axis=(0, 2))
        np.testing.assert_allclose(arrays[key]["mean_amplitude"], mean, atol=2e-6)
    np.testing.assert_allclose(
        arrays["residual"]["amplitude_mosaic"], np.abs(ref["fake"][0] - ref["real"][0]), atol=4e-6
    )
    gray = np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(
        arrays["residual"]["image"], np.abs((fake.astype(float) - real) @ gray), atol=1e-3
    )


def changed_blocks(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """(rows, cols) bool: does any pixel of the patch differ (numpy, from the pixels)."""
    rows, cols = real.shape[0] // P, real.shape[1] // P
    diff = np.any(real != fake, axis=-1)
    return diff.reshape(rows, P, cols, P).any(axis=(1, 3))


def check_residual_zero_outside(arrays: dict, changed: np.ndarray) -> None:
    """Residual spectra are exactly zero on unchanged patches and non-zero on changed ones."""
    rows, cols = changed.shape
    for key in ("amplitude_mosaic", "phase_mosaic"):
        blocks = arrays["residual"][key].reshape(rows, P, cols, P).max(axis=(1, 3))
        assert np.all(blocks[~changed] == 0.0), key
    amp_blocks = arrays["residual"]["amplitude_mosaic"].reshape(rows, P, cols, P).max(axis=(1, 3))
    assert np.all(amp_blocks[changed] > 0.0)
    np.testing.assert_array_equal(arrays["residual"]["changed"], changed.reshape(-1))


def png_shape(path) -> tuple[int, int]:
    assert open(path, "rb").read(8) == PNG_MAGIC
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None
    assert 0.02 < np.mean(image.min(axis=2) < 200) < 0.95  # drawn, not blank
    return image.shape[:2]


def expected_px(fig, dpi: int) -> tuple[int, int]:
    width, height = fig.get_size_inches()
    return int(round(height * dpi)), int(round(width * dpi))


# --------------------------------------------------------------------------- Fig. 3
def test_patch_mosaic_places_patches_row_major():
    spectra = np.arange(6 * 4, dtype=float).reshape(6, 4)  # 6 patches of 2 x 2, grid 2 x 3
    mosaic = patch_mosaic(spectra, (2, 3), shift=False)
    assert mosaic.shape == (4, 6)
    np.testing.assert_array_equal(mosaic[2:4, 2:4], spectra[4].reshape(2, 2))  # row 1, col 1
    shifted = patch_mosaic(spectra, (2, 3))
    np.testing.assert_array_equal(shifted[0:2, 4:6], np.fft.fftshift(spectra[2].reshape(2, 2)))
    with pytest.raises(ValueError, match=r"N = 2 x 2.*\(6, 4\)"):
        patch_mosaic(spectra, (2, 2))


def test_spectra_synthetic_match_numpy_and_residual(photos, tmp_path):
    rng = np.random.default_rng(0)
    hopper = photos[0]
    real = hopper[100:180, 150:246].copy()  # 80 x 96: not square, to catch a transposed tiling
    fake = real.copy()
    fake[20:43, 37:60] = rng.integers(0, 256, (23, 23, 3))  # touches patches (1..2, 2..3)
    arrays = patch_spectra_arrays(real, fake, P)
    assert arrays["grid"] == (5, 6)
    assert arrays["real"]["amplitude"].shape == (30, P * P)
    check_against_numpy(arrays, real, fake)
    changed = changed_blocks(real, fake)
    assert changed.sum() == 4 and changed[1:3, 2:4].all()
    check_residual_zero_outside(arrays, changed)

    # Non-multiple sizes are centre-cropped; the PNG has the figure's size at the given dpi.
    path = plot_patch_spectra(hopper[:90, :100], hopper[:90, :100], tmp_path / "a" / "f3.png",
                              dpi=60)
    cropped = hopper[5:85, 2:98]
    fig = patch_spectra_figure(patch_spectra_arrays(cropped, cropped), dpi=60)
    assert png_shape(path) == expected_px(fig, 60)


def test_spectra_bad_arguments(tmp_path):
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="patch_size must be a positive integer, received 0"):
        plot_patch_spectra(image, image, tmp_path / "x.png", patch_size=0)
    with pytest.raises(ValueError, match=r"same shape.*\(32, 32, 3\).*\(32, 48, 3\)"):
        patch_spectra_arrays(image, np.zeros((32, 48, 3)))
    with pytest.raises(ValueError, match=r"multiples of patch_size=16.*\(40, 32, 3\)"):
        patch_spectra_arrays(np.zeros((40, 32, 3)), np.zeros((40, 32, 3)))
    with pytest.raises(ValueError, match=r"\[0, 255\].*300"):
        patch_spectra_arrays(np.full((32, 32, 3), 300.0), image)
    with pytest.raises(ValueError, match="must end in .png"):
        plot_patch_spectra(image, image, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="no face found"):
        align_pair(image, image)


@pytest.mark.shared_data
def test_spectra_on_ffpp_deepfakes_frame(shared_data):
    """Full 640x480 FF++ frame: the Deepfakes pixels differ only inside the mask."""
    from mclcr_keras.data.video import read_image

    folder = shared_data / "ffpp_frames"
    real = read_image(folder / "ex_original.png")
    fake = read_image(folder / "ex_deepfakes.png")
    mask = read_image(folder / "ex_deepfakes_mask.png").max(axis=-1) > 0
    arrays = patch_spectra_arrays(real, fake, P)
    assert arrays["grid"] == (30, 40)
    check_against_numpy(arrays, real, fake)
    changed = changed_blocks(real, fake)
    mask_blocks = mask.reshape(30, P, 40, P).any(axis=(1, 3))
    assert changed.sum() >= 20 and np.all(mask_blocks[changed])  # changes only under the mask
    check_residual_zero_outside(arrays, changed)


@pytest.mark.shared_data
def test_spectra_aligned_ffpp_figure(shared_data, tmp_path):
    """Both frames are cut with the transform found on the real one: outside the (warped,
    dilated) manipulation mask the crops are identical, so the residual spectra are zero."""
    from mclcr_keras.data.faces import FaceAligner
    from mclcr_keras.data.video import read_image

    folder = shared_data / "ffpp_frames"
    real = read_image(folder / "ex_original.png")
    fake = read_image(folder / "ex_deepfakes.png")
    mask = read_image(folder / "ex_deepfakes_mask.png")
    aligner = FaceAligner(size=256)
    real_crop, fake_crop = align_pair(real, fake, aligner=aligner)
    face = aligner.align(real, aligner.find(real))
    np.testing.assert_array_equal(real_crop, face.image)
    warped = aligner.warp(mask, aligner.transform(face.landmarks)).max(axis=-1) > 0
    near_mask = cv2.dilate(warped.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    outside = ~near_mask.reshape(16, P, 16, P).any(axis=(1, 3))
    arrays = patch_spectra_arrays(real_crop, fake_crop, P)
    changed = changed_blocks(real_crop, fake_crop)
    assert outside.sum() >= 40 and changed.sum() >= 40
    assert not np.any(changed & outside)
    check_residual_zero_outside(arrays, changed)

    path = plot_patch_spectra(real_crop, fake_crop, tmp_path / "fig3.png",
                              names=("original", "Deepfakes"), dpi=60)
    fig = patch_spectra_figure(arrays, dpi=60)
    assert png_shape(path) == expected_px(fig, 60)


# --------------------------------------------------------------------------- Fig. 6 / 7 model
@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    """The shared random 64 px MC-LCR, loaded by Keras itself."""
    import keras

    import mclcr_keras.models.mclcr  # noqa: F401  (registers the custom classes)

    return keras.models.load_model(tiny_model_path, compile=False)


@pytest.fixture(scope="module")
def tiny_model_file(tiny_model_path):
    return tiny_model_path


def test_feature_maps_match_channel_sums(tiny_model, photos, tmp_path):
    faces = face_crops(photos, 80)  # 80 px: resized to the model's 64 inside
    fake = faces[0].copy()
    fake[20:60, 20:60] = cv2.GaussianBlur(fake[20:60, 20:60], (9, 9), 3)
    images = [faces[0], fake, faces[1]]
    maps = summed_feature_maps(tiny_model, images, batch_size=2)
    batch = np.stack([cv2.resize(i, (64, 64), interpolation=cv2.INTER_AREA) for i in images])
    np.testing.assert_allclose(maps["images"], batch.astype(np.float32), atol=0.51)
    features = tiny_model.feature_extractor(maps["images"])
    for block, channels, side in (("b1", 64, 29), ("b2", 128, 15), ("b3", 256, 8)):
        taps = np.asarray(features[block])
        assert taps.shape == (3, side, side, channels)
        assert maps[block].shape == (3, side, side)
        np.testing.assert_allclose(maps[block], np.sum(taps, axis=-1), rtol=1e-5, atol=1e-4)
        assert taps.min() >= 0.0  # post-ReLU taps: the absolute value changes nothing
    assert not np.allclose(maps["b1"][0], maps["b1"][1])  # the blurred region shows

    path = plot_feature_maps(tiny_model, images, tmp_path / "fig6.png",
                             titles=["real", "blurred", "astronaut"], dpi=80)
    from mclcr_keras.viz import feature_maps_figure

    assert png_shape(path) == expected_px(feature_maps_figure(maps, dpi=80), 80)
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        plot_feature_maps(tiny_model, images, tmp_path / "x.png", titles=["a", "b"])


def test_feature_maps_need_an_mclcr_model():
    import keras

    plain = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="Sequential has no feature_extractor"):
        summed_feature_maps(plain, np.zeros((1, 32, 32, 3)))


def write_records(root, photos, split: str = "test") -> dict[str, int]:
    """A real/fake split of 64 px faces: 12 original, 10 Deepfakes + 10 FaceSwap (2 shards)."""
    rng = np.random.default_rng(1)
    faces = face_crops(photos, 96)
    counts = {"original": 12, "Deepfakes": 10, "FaceSwap": 10}
    shards = {"real": [], "fake": []}
    for method, count in counts.items():
        for i in range(count):
            base = faces[i % 2]
            y, x = rng.integers(0, 16, 2)
            image = np.ascontiguousarray(base[y : y + 64, x : x + 64])
            if method == "Deepfakes":
                image[16:48, 16:48] = faces[1 - i % 2][y + 16 : y + 48, x + 16 : x + 48]
            elif method == "FaceSwap":
                image[16:48, 16:48] = cv2.GaussianBlur(image[16:48, 16:48], (7, 7), 2)
            label = 0 if method == "original" else 1
            blob = schema.encode_example(schema.encode_image(image), label, f"{method}_{i // 5}",
                                         method, "toy", i)
            shards["real" if label == 0 else "fake"].append(blob)
    split_dir = root / split
    split_dir.mkdir(parents=True)
    import tensorflow as tf

    for name, blobs in shards.items():
        with tf.io.TFRecordWriter(str(split_dir / schema.shard_name(name, 0, 1))) as writer:
            for blob in blobs:
                writer.write(blob)
    return counts


def test_tsne_embeddings_from_records(tiny_model, photos, tmp_path):
    import tensorflow as tf

    counts = write_records(tmp_path / "records", photos)
    embeddings, methods, labels = records_embeddings(tiny_model, tmp_path / "records", "test",
                                                     max_points=24)
    names, per_method = np.unique(methods, return_counts=True)
    assert names.tolist() == ["Deepfakes", "FaceSwap", "original"]
    assert per_method.tolist() == [8, 8, 8]
    np.testing.assert_array_equal(labels, (methods != "original").astype(int))
    # Independent path: decode the chosen records with OpenCV and run the model on them.
    rows = []
    for shard in ("real", "fake"):
        path = tmp_path / "records" / "test" / schema.shard_name(shard, 0, 1)
        for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            example = tf.train.Example.FromString(raw)
            feats = example.features.feature
            image = cv2.imdecode(np.frombuffer(feats["image"].bytes_list.value[0], np.uint8), 1)
            rows.append((feats["method"].bytes_list.value[0].decode(), image[..., ::-1]))
    chosen = stratified_indices([m for m, _ in rows], 24)
    np.testing.assert_array_equal(methods, [rows[i][0] for i in chosen])
    expected = tiny_model.feature_extractor(
        np.stack([rows[i][1] for i in chosen]).astype(np.float32))["F_E"]
    np.testing.assert_allclose(embeddings, np.asarray(expected), rtol=1e-4, atol=1e-4)
    assert sum(counts.values()) == len(rows)

    points = tsne_points(embeddings, random_state=0)
    assert points.shape == (24, 2) and np.isfinite(points).all()
    np.testing.assert_allclose(tsne_points(embeddings, random_state=0), points)
    fig = tsne_figure(points, methods, labels)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["original (real, n=8)", "Deepfakes (fake, n=8)", "FaceSwap (fake, n=8)"]
    with pytest.raises(ValueError, match="perplexity must be in"):
        tsne_points(embeddings, perplexity=24)


def test_plot_tsne_from_arrays(tiny_model, photos, tmp_path):
    faces = face_crops(photos, 64)
    rng = np.random.default_rng(2)
    images = [np.clip(faces[i % 2] + rng.normal(0, 6, faces[0].shape), 0, 255) for i in range(12)]
    methods = ["real", "NeuralTextures", "Face2Face"] * 4
    path = plot_tsne(tiny_model, (np.stack(images), methods), tmp_path / "fig7.png", dpi=60)
    assert png_shape(path) == (round(6.4 * 60), round(8.2 * 60))
    with pytest.raises(ValueError, match="needs an .n >= 4, D. array"):
        plot_tsne(tiny_model, (np.stack(images[:3]), methods[:3]), tmp_path / "x.png")


def test_stratified_indices_even_per_method():
    groups = ["a"] * 10 + ["b"] * 3 + ["c"] * 7
    chosen = stratified_indices(groups, 9)
    assert chosen.tolist() == [0, 4, 9, 10, 11, 12, 13, 16, 19]
    with pytest.raises(ValueError, match="max_points must be a positive integer, received 0"):
        stratified_indices(groups, 0)


# --------------------------------------------------------------------------- CLI
def run_cli(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, command: str, *fragments: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"viz {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


def test_cli_spectra_and_features(tiny_model_file, photos, tmp_path, capsys):
    faces = face_crops(photos, 96)
    real_path, fake_path = tmp_path / "real.png", tmp_path / "fake.png"
    fake = faces[0].copy()
    fake[32:64, 32:64] = 255 - fake[32:64, 32:64]
    cv2.imwrite(str(real_path), faces[0][..., ::-1])
    cv2.imwrite(str(fake_path), fake[..., ::-1])
    out = tmp_path / "fig3.png"
    code, stdout, _ = run_cli(["spectra", "--real", real_path, "--fake", fake_path, "--out", out,
                               "--names", "original", "inverted", "--dpi", "50"], capsys)
    assert code == 0 and f"wrote {out}" in stdout
    assert png_shape(out)[0] > 300

    out6 = tmp_path / "fig6.png"
    code, stdout, err = run_cli(["features", "--model", tiny_model_file, "--images", real_path,
                                 fake_path, "--out", out6, "--overlay", "--dpi", "50"], capsys)
    assert code == 0, err
    assert png_shape(out6)[1] > 300


def test_cli_tsne(tiny_model_file, photos, tmp_path, capsys):
    write_records(tmp_path / "records", photos)
    out = tmp_path / "fig7.png"
    code, stdout, err = run_cli(["tsne", "--model", tiny_model_file, "--records",
                                 tmp_path / "records", "--max-points", "15", "--out", out,
                                 "--dpi", "60"], capsys)
    assert code == 0, err
    assert png_shape(out) == (round(6.4 * 60), round(8.2 * 60))


def test_cli_errors_are_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.png"
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((48, 48, 3), 128, np.uint8))
    other = tmp_path / "b.png"
    cv2.imwrite(str(other), np.full((32, 48, 3), 128, np.uint8))
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")

    cases = [
        (["spectra", "--real", missing, "--fake", image, "--out", tmp_path / "o.png"],
         ["missing.png", "file not found"]),
        (["spectra", "--real", garbage, "--fake", image, "--out", tmp_path / "o.png"],
         ["garbage.png", "not an image: unknown format"]),
        (["spectra", "--real", image, "--fake", other, "--out", tmp_path / "o.png"],
         ["same shape", "(48, 48, 3)", "(32, 48, 3)"]),
        (["spectra", "--real", image, "--fake", image, "--out", tmp_path / "o.png", "--align"],
         ["no face found"]),
        (["spectra", "--real", image, "--fake", image, "--out", tmp_path / "o.jpg"],
         ["--out must be a .png", "o.jpg"]),
        (["features", "--model", tmp_path / "none.keras", "--images", image,
          "--out", tmp_path / "o.png"], ["model file not found", "none.keras"]),
        (["features", "--model", image, "--images", image, "--out", tmp_path / "o.png"],
         ["expected a .keras model file"]),
        (["features", "--model", tmp_path / "m.keras", "--images", image, other,
          "--titles", "one", "--out", tmp_path / "o.png"], ["--titles has 1 labels for 2"]),
        (["tsne", "--model", tmp_path / "none.keras", "--records", tmp_path,
          "--out", tmp_path / "o.png"], ["model file not found"]),
    ]
    for argv, fragments in cases:
        code, _, err = run_cli(argv, capsys)
        assert code == 2, argv
        one_line_error(err, argv[0], *fragments)
    assert not os.path.exists(tmp_path / "o.png")
    code, out, err = run_cli(["spectra", "--real", image], capsys)  # --fake, --out missing
    assert code == 2 and out == ""
    one_line_error(err, "spectra", "the following arguments are required: --fake, --out")


def test_cli_tsne_missing_split(tmp_path, capsys):
    (tmp_path / "m.keras").write_bytes(b"")  # never loaded: the split is checked first
    code, _, err = run_cli(["tsne", "--model", tmp_path / "m.keras", "--records", tmp_path,
                            "--split", "val", "--out", tmp_path / "o.png"], capsys)
    assert code == 2
    one_line_error(err, "tsne", "split directory not found", "val")


# --------------------------------------------------------------------------- image helpers
def test_read_rgb_is_rgb_and_names_unreadable_files(grace, tmp_path):
    path = tmp_path / "grace.png"
    cv2.imwrite(str(path), grace[..., ::-1])  # OpenCV writes BGR
    image = read_rgb(path)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, grace)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"bad.png: not an image: unknown format"):
        read_rgb(tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"missing.png: .*file not found"):
        read_rgb(tmp_path / "missing.png")


def test_align_faces_crops_each_face_or_names_the_image(grace, astronaut):
    from mclcr_keras.data.faces import FaceAligner

    faces = align_faces([grace, astronaut], ["grace", "astronaut"], 64)
    aligner = FaceAligner(size=64)  # the same detector and alignment, image by image
    for face, image in zip(faces, (grace, astronaut)):
        assert face.shape == (64, 64, 3) and face.dtype == np.uint8
        np.testing.assert_array_equal(face, aligner(image).image)
    blank = np.full((120, 120, 3), 128, np.uint8)
    with pytest.raises(ValueError, match=r"^blank: no face found$"):
        align_faces([grace, blank], ["grace", "blank"], 64)
