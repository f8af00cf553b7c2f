"""The paper's figures (Wang et al. 2022, arXiv 2110.03290) as PNG files.

- Fig. 3, `plot_patch_spectra`: patch-wise amplitude and phase spectra of a real face, its fake
  and their residual, computed with the model's own `PatchSpectrum` layer.
- Fig. 6, `plot_feature_maps`: channel-summed feature maps of Xception blocks 1-3 (b1, b2, b3).
- Fig. 7, `plot_tsne`: t-SNE of the `F_E` embeddings coloured by manipulation method.
- `roc_curve_plot`: the ROC curves of an evaluation report (``roc.png``).
- `reliability_plot`: the reliability diagram of an evaluation report (``reliability.png``).
- `robustness_plot`: AUC against perturbation severity (``robustness.png``, ``evaluate --perturb``).
- `explain_tracks` / `explanation_figure`: the ``predict --explain`` figure of one file (best
  frame, crop, `grad_cam`, `frequency_saliency` per face track; P(fake) timeline).

Figures are drawn on pyplot-free matplotlib `Figure` objects (Agg), so nothing needs a display
and the global pyplot state is untouched. The command line is ``python -m mclcr_keras.viz``
(see `mclcr_keras.viz.__main__`); the design choices are in ``docs/figures.md``.

Example:

```python
from mclcr_keras.viz import plot_feature_maps, plot_patch_spectra, plot_tsne

plot_patch_spectra(real_frame, fake_frame, "fig3.png", align=True)
plot_feature_maps(model, [real_face, fake_face], "fig6.png")
plot_tsne(model, "records/ffpp", "fig7.png", split="test", max_points=1000)
```
"""

from mclcr_keras.viz._common import align_faces, load_model, read_rgb
from mclcr_keras.viz.explain import explain_tracks, explanation_figure, plot_explanation
from mclcr_keras.viz.feature_maps import feature_maps_figure, plot_feature_maps, summed_feature_maps
from mclcr_keras.viz.reliability import reliability_plot
from mclcr_keras.viz.robustness import robustness_plot
from mclcr_keras.viz.roc import roc_curve_plot
from mclcr_keras.viz.saliency import explain_crops, frequency_saliency, grad_cam
from mclcr_keras.viz.spectra import (
    align_pair,
    crop_to_patches,
    patch_mosaic,
    patch_spectra_arrays,
    patch_spectra_figure,
    plot_patch_spectra,
)
from mclcr_keras.viz.tsne import (
    dataset_embeddings,
    default_perplexity,
    embed,
    plot_tsne,
    records_embeddings,
    stratified_indices,
    tsne_figure,
    tsne_points,
)

__all__ = [
    "align_faces",
    "align_pair",
    "crop_to_patches",
    "dataset_embeddings",
    "default_perplexity",
    "embed",
    "explain_crops",
    "explain_tracks",
    "explanation_figure",
    "feature_maps_figure",
    "frequency_saliency",
    "grad_cam",
    "load_model",
    "patch_mosaic",
    "patch_spectra_arrays",
    "patch_spectra_figure",
    "plot_explanation",
    "plot_feature_maps",
    "plot_patch_spectra",
    "plot_tsne",
    "read_rgb",
    "records_embeddings",
    "reliability_plot",
    "robustness_plot",
    "roc_curve_plot",
    "stratified_indices",
    "summed_feature_maps",
    "tsne_figure",
    "tsne_points",
]
