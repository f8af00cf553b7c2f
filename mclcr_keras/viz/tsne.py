"""Fig. 7: t-SNE of the `F_E` embeddings (the 1024-d encoder output), coloured by method.

Points are chosen per method (stratified, evenly spaced through each method's frames, so many
videos are covered) before the model runs, so a large test split costs one decode pass and
``max_points`` forward passes. t-SNE is scikit-learn's (PCA init, fixed ``random_state``, one
thread), with perplexity ``min(30, (n - 1) / 3)`` so that small sets work too.

Example:

```python
plot_tsne(model, "records/ffpp", "fig7.png", split="test", max_points=1000)
plot_tsne(model, (faces, methods), "fig7.png")
```
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mclcr_keras.models.saving import model_image_size
from mclcr_keras.viz._common import (
    DEFAULT_DPI,
    feature_extractor,
    new_figure,
    save_figure,
    stack_images,
)

logger = logging.getLogger(__name__)

FEATURE = "F_E"
REAL_METHODS = frozenset({"original", "real", "pristine", "youtube", "actors"})
REAL_COLOR = "#2b2b2b"
FAKE_COLORS = ("tab:red", "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown",
               "tab:pink", "tab:olive", "tab:cyan")


def _as_str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def stratified_indices(groups: Sequence[str], max_points: int) -> np.ndarray:
    """Sorted indices of at most ``max_points`` items, ``max_points // n_groups`` per group,
    evenly spaced through each group's items (all of a group that has fewer).

    Example:

    >>> stratified_indices(["a"] * 6 + ["b"] * 2, 4).tolist()
    [0, 5, 6, 7]
    """
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise ValueError(f"max_points must be a positive integer, received {max_points!r}")
    groups = np.asarray([_as_str(g) for g in groups])
    names = sorted(set(groups.tolist()))
    if not names:
        return np.zeros(0, np.int64)
    quota = max(1, max_points // len(names))
    chosen = []
    for name in names:
        members = np.flatnonzero(groups == name)
        if len(members) > quota:
            members = members[np.unique(np.rint(np.linspace(0, len(members) - 1, quota))
                                        .astype(np.int64))]
        chosen.append(members)
    return np.sort(np.concatenate(chosen))[:max_points]


def embed(model, images: np.ndarray, batch_size: int = 32, key: str = FEATURE) -> np.ndarray:
    """``feature_extractor(images)[key]`` in batches, as a float32 ``(B, D)`` array.

    Example:

    ```python
    embed(model, faces).shape   # (8, 1024) for 8 faces
    ```
    """
    extractor = feature_extractor(model, (key,))
    batch = stack_images(images, model_image_size(model))
    parts = [
        np.asarray(extractor(batch[i : i + batch_size], training=False)[key], np.float32)
        for i in range(0, len(batch), batch_size)
    ]
    return np.concatenate(parts)


def _record_metadata(records_dir, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Methods and labels of every record of a split, in `make_dataset(training=False)` order."""
    import tensorflow as tf

    from mclcr_keras.data.records import list_shards
    from mclcr_keras.data.schema import parse_example

    methods, labels = [], []
    records = tf.data.TFRecordDataset(list_shards(records_dir, split)).batch(512)
    for batch in records.map(parse_example):
        methods.extend(_as_str(m) for m in batch["method"].numpy())
        labels.extend(batch["label"].numpy().tolist())
    return np.asarray(methods), np.asarray(labels, np.int64)


def records_embeddings(
    model, records_dir: str | os.PathLike, split: str = "test", max_points: int = 1000,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`F_E` of a stratified sample of a split's records (see `stratified_indices`).

    One pass reads only the metadata; a second pass (`make_dataset`, evaluation order) decodes
    images until the last chosen record and runs the model on the chosen ones only.

    Returns:
        ``(embeddings (n, D), methods (n,), labels (n,))``.

    Example:

    ```python
    emb, methods, labels = records_embeddings(model, "records/ffpp")
    ```
    """
    from mclcr_keras.data.pipeline import make_dataset

    all_methods, all_labels = _record_metadata(records_dir, split)
    if len(all_methods) == 0:
        raise ValueError(f"split {split!r} of {records_dir} holds no records")
    chosen = stratified_indices(all_methods, max_points)
    wanted = set(chosen.tolist())
    last = int(chosen[-1])
    size = model_image_size(model)
    dataset = make_dataset(records_dir, split, batch_size=64, training=False, image_size=size,
                           with_metadata=True)
    pending: list[np.ndarray] = []
    embeddings: list[np.ndarray] = []
    offset = 0
    for images, _, metadata in dataset:
        count = int(images.shape[0])
        rows = [i for i in range(count) if offset + i in wanted]
        for i in rows:
            method = _as_str(metadata["method"][i].numpy())
            if method != all_methods[offset + i]:
                raise RuntimeError(
                    f"record {offset + i} of {records_dir}/{split}: method {method!r} in the "
                    f"pipeline, {all_methods[offset + i]!r} in the metadata pass"
                )
        if rows:
            pending.append(images.numpy()[rows])
        if sum(len(p) for p in pending) >= batch_size:
            embeddings.append(embed(model, np.concatenate(pending), batch_size))
            pending = []
        offset += count
        if offset > last:
            break
    if pending:
        embeddings.append(embed(model, np.concatenate(pending), batch_size))
    logger.info("embedded %d of %d records of %s/%s", len(chosen), len(all_methods), records_dir,
                split)
    return np.concatenate(embeddings), all_methods[chosen], all_labels[chosen]


def dataset_embeddings(model, dataset, max_points: int = 1000, batch_size: int = 32):
    """`F_E` of a whole `tf.data.Dataset`, then a stratified sample of ``max_points``.

    The dataset yields ``(images, labels, metadata)`` (``make_dataset(with_metadata=True)``;
    the method comes from ``metadata["method"]``) or ``(images, labels)`` (methods ``"real"`` /
    ``"fake"``). It is consumed entirely: ``take()`` a part of a large one first, or pass the
    records directory to `plot_tsne`, which samples before running the model.

    Returns:
        ``(embeddings (n, D), methods (n,), labels (n,))``.
    """
    embeddings, methods, labels = [], [], []
    for element in dataset:
        if not isinstance(element, (tuple, list)) or len(element) not in (2, 3):
            raise ValueError("the dataset must yield (images, labels) or (images, labels, "
                             "metadata) batches")
        images, batch_labels = np.asarray(element[0]), np.asarray(element[1]).reshape(-1)
        if len(element) == 3:
            batch_methods = [_as_str(m) for m in np.asarray(element[2]["method"]).reshape(-1)]
        else:
            batch_methods = ["fake" if y >= 0.5 else "real" for y in batch_labels]
        embeddings.append(embed(model, images, batch_size))
        methods.extend(batch_methods)
        labels.extend((batch_labels >= 0.5).astype(np.int64).tolist())
    if not embeddings:
        raise ValueError("the dataset is empty")
    chosen = stratified_indices(methods, max_points)
    return np.concatenate(embeddings)[chosen], np.asarray(methods)[chosen], \
        np.asarray(labels, np.int64)[chosen]


def default_perplexity(count: int) -> float:
    """scikit-learn's default 30, lowered to ``(count - 1) / 3`` (at least 1) for small sets.

    Example:

    >>> default_perplexity(1000), default_perplexity(31)
    (30.0, 10.0)
    """
    return float(min(30.0, max(1.0, (count - 1) / 3.0)))


def tsne_points(embeddings: np.ndarray, perplexity: float | None = None,
                random_state: int = 0) -> np.ndarray:
    """2-D t-SNE of ``(n, D)`` embeddings (scikit-learn, PCA init, fixed seed).

    Example:

    >>> tsne_points(np.random.default_rng(0).normal(size=(20, 8))).shape
    (20, 2)
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    embeddings = np.asarray(embeddings, np.float64)
    if embeddings.ndim != 2 or len(embeddings) < 4:
        raise ValueError(f"t-SNE needs an (n >= 4, D) array of embeddings, received shape "
                         f"{embeddings.shape}")
    if not np.isfinite(embeddings).all():
        raise ValueError("embeddings contain NaN or infinite values")
    count = len(embeddings)
    perplexity = default_perplexity(count) if perplexity is None else float(perplexity)
    if not 0 < perplexity < count:
        raise ValueError(f"perplexity must be in (0, {count}) for {count} points, "
                         f"received {perplexity}")
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=random_state)
    # One BLAS/OpenMP thread: on a busy CPU the threaded Barnes-Hut loop spins and runs ~5x
    # slower (measured: 1000 points, 118 s threaded vs 22 s single-threaded on 2 shared cores).
    with threadpool_limits(limits=1):
        return tsne.fit_transform(embeddings)


def tsne_figure(points: np.ndarray, methods: Sequence[str], labels: Sequence[int] | None = None,
                title: str | None = None, dpi: int = DEFAULT_DPI):
    """The Fig. 7 matplotlib Figure: one colour per method, the real class first, in dark grey.

    Args:
        points: ``(n, 2)`` t-SNE coordinates.
        methods: method of each point.
        labels: 0 real / 1 fake per point; default: real when the method is one of
            `REAL_METHODS` (``original``, ``real``, ...).
        title: figure title.
        dpi: figure resolution.

    Example:

    ```python
    fig = tsne_figure(points, ["original", "Deepfakes", ...])
    ```
    """
    points = np.asarray(points, np.float64)
    methods = np.asarray([_as_str(m) for m in methods])
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(methods):
        raise ValueError(f"points must be (n, 2) with one method each, received {points.shape} "
                         f"and {len(methods)} methods")
    if labels is None:
        labels = np.array([0 if m.lower() in REAL_METHODS else 1 for m in methods])
    labels = np.asarray(labels).reshape(-1)
    real_names = sorted(set(methods[labels == 0].tolist()))
    fake_names = sorted(set(methods[labels != 0].tolist()) - set(real_names))
    fig = new_figure(8.2, 6.4, dpi)
    ax = fig.add_subplot(1, 1, 1)
    groups = [(name, REAL_COLOR, "o", "real") for name in real_names]
    groups += [(name, FAKE_COLORS[i % len(FAKE_COLORS)], "^", "fake")
               for i, name in enumerate(fake_names)]
    for name, color, marker, kind in groups:
        mask = methods == name
        ax.scatter(points[mask, 0], points[mask, 1], s=18, c=color, marker=marker, alpha=0.75,
                   linewidths=0, label=f"{name} ({kind}, n={int(mask.sum())})")
    ax.set_xlabel("t-SNE dimension 1")
    ax.set_ylabel("t-SNE dimension 2")
    ax.grid(True, alpha=0.25)
    ax.legend(title="method", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
              markerscale=1.6, frameon=False)
    ax.set_title(title or f"t-SNE of F_E embeddings ({len(points)} faces)", loc="left")
    return fig


def plot_tsne(
    model,
    data,
    path: str | os.PathLike,
    split: str = "test",
    max_points: int = 1000,
    perplexity: float | None = None,
    random_state: int = 0,
    batch_size: int = 32,
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Writes Fig. 7: t-SNE of the `F_E` embeddings of faces, coloured by method.

    Args:
        model: an `MCLCR` model with the `F_E` feature (not the ``baseline`` variant).
        data: a records directory (with ``split``), a `tf.data.Dataset` of
            ``(images, labels[, metadata])`` batches, or a tuple ``(images, methods)`` /
            ``(images, methods, labels)`` of arrays.
        path: output PNG.
        split: records split when ``data`` is a directory.
        max_points: at most this many faces, sampled evenly per method.
        perplexity: t-SNE perplexity; default `default_perplexity` of the number of points.
        random_state: t-SNE seed (the layout is reproducible for a given seed).
        batch_size: images per forward pass.
        title: figure title.
        dpi: PNG resolution.

    Returns:
        The path written.

    Example:

    ```python
    plot_tsne(model, "records/ffpp", "fig7.png", split="test", max_points=500)
    ```
    """
    import tensorflow as tf

    feature_extractor(model, (FEATURE,))  # fail before reading any data
    if isinstance(data, (str, os.PathLike)):
        embeddings, methods, labels = records_embeddings(model, data, split, max_points,
                                                         batch_size)
        source = f"{os.fspath(data)} [{split}]"
    elif isinstance(data, tf.data.Dataset):
        embeddings, methods, labels = dataset_embeddings(model, data, max_points, batch_size)
        source = "dataset"
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        images, methods = data[0], np.asarray([_as_str(m) for m in data[1]])
        if len(images) != len(methods):
            raise ValueError(f"got {len(images)} images and {len(methods)} methods")
        labels = None if len(data) == 2 else np.asarray(data[2]).reshape(-1)
        chosen = stratified_indices(methods, max_points)
        embeddings = embed(model, [images[i] for i in chosen], batch_size)
        methods = methods[chosen]
        labels = None if labels is None else labels[chosen]
        source = "images"
    else:
        raise ValueError("data must be a records directory, a tf.data.Dataset or a tuple "
                         f"(images, methods[, labels]); received {type(data).__name__}")
    points = tsne_points(embeddings, perplexity, random_state)
    used = default_perplexity(len(points)) if perplexity is None else perplexity
    fig = tsne_figure(points, methods, labels, dpi=dpi, title=title or (
        f"t-SNE of F_E embeddings: {len(points)} faces, perplexity {used:.3g}\n{source}"))
    return save_figure(fig, path, dpi)
