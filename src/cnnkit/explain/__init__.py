"""Explain: what a network learned, where it looks, and how easily it is fooled.

- what it learned: :func:`layer_filters` (first-layer kernels, next to :func:`gabor_bank`),
  :func:`feature_maps`, :func:`top_activations` (Zeiler and Fergus), :func:`class_visualisation`
  (Simonyan et al.), :func:`style_transfer` (Gatys et al., Gram matrices);
- where it looks: :func:`attribute` with ``saliency``, ``gradcam``, ``guided-backprop``,
  ``deconvnet``, ``occlusion`` or ``integrated-gradients`` (Captum), and the sanity check
  :func:`randomisation_check` (Adebayo et al.);
- how easily it is fooled: :func:`fgsm`, :func:`pgd`, :func:`robustness_curve`.

All of it works on images in [0, 1]: wrap a trained network with :func:`pixel_model` (or
:func:`from_run` for a loaded run) so the normalisation happens inside the model. Example::

    run = cnnkit.load_run("runs/lenet5-digits")
    model = from_run(run)
    heat = attribute(model, x, "gradcam", target=3)   # N x H x W, x in [0, 1]
    x_adv = fgsm(model, x, y, eps=8 / 255)
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> submodule defining it. Loaded on first use (PEP 562), so `cnnkit --help` and the
# CLI parsers do not pay for matplotlib and Captum until a command actually runs.
_EXPORTS: dict[str, str] = {
    "PixelModel": "_common",
    "class_index": "_common",
    "from_run": "_common",
    "load_image": "_common",
    "pixel_model": "_common",
    "predict_proba": "_common",
    "without_inplace": "_common",
    "ATTACKS": "adversarial",
    "RobustnessCurve": "adversarial",
    "attack": "adversarial",
    "fgsm": "adversarial",
    "parse_eps_list": "adversarial",
    "pgd": "adversarial",
    "robustness_curve": "adversarial",
    "METHODS": "attribution",
    "SIGNED": "attribution",
    "attribute": "attribution",
    "gradcam": "attribution",
    "gradcam_layer": "attribution",
    "iou": "attribution",
    "occlusion": "attribution",
    "randomisation_check": "attribution",
    "randomized_copy": "attribution",
    "rank_correlation": "attribution",
    "top_fraction_mask": "attribution",
    "dream": "commands",
    "explain_image": "commands",
    "fool_image": "commands",
    "robustness_report": "commands",
    "show_feature_maps": "commands",
    "show_filters": "commands",
    "show_top_activations": "commands",
    "style_transfer_files": "commands",
    "ReceptiveField": "features",
    "TopActivations": "features",
    "feature_maps": "features",
    "gabor_bank": "features",
    "layer_filters": "features",
    "receptive_field": "features",
    "top_activations": "features",
    "plot_adversarial": "plots",
    "plot_attribution": "plots",
    "plot_class_visualisations": "plots",
    "plot_feature_maps": "plots",
    "plot_filters": "plots",
    "plot_robustness": "plots",
    "plot_style_transfer": "plots",
    "plot_top_activations": "plots",
    "ClassVisualisation": "synthesis",
    "StyleTransferResult": "synthesis",
    "class_visualisation": "synthesis",
    "feature_network": "synthesis",
    "gram_matrix": "synthesis",
    "style_transfer": "synthesis",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # cache: later look-ups are ordinary attribute reads
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "ATTACKS",
    "METHODS",
    "SIGNED",
    "ClassVisualisation",
    "PixelModel",
    "ReceptiveField",
    "RobustnessCurve",
    "StyleTransferResult",
    "TopActivations",
    "attack",
    "attribute",
    "class_index",
    "class_visualisation",
    "dream",
    "explain_image",
    "feature_maps",
    "feature_network",
    "fgsm",
    "fool_image",
    "from_run",
    "gabor_bank",
    "gradcam",
    "gradcam_layer",
    "gram_matrix",
    "iou",
    "layer_filters",
    "load_image",
    "occlusion",
    "parse_eps_list",
    "pgd",
    "pixel_model",
    "plot_adversarial",
    "plot_attribution",
    "plot_class_visualisations",
    "plot_feature_maps",
    "plot_filters",
    "plot_robustness",
    "plot_style_transfer",
    "plot_top_activations",
    "predict_proba",
    "randomisation_check",
    "randomized_copy",
    "rank_correlation",
    "receptive_field",
    "robustness_curve",
    "robustness_report",
    "show_feature_maps",
    "show_filters",
    "show_top_activations",
    "style_transfer",
    "style_transfer_files",
    "top_activations",
    "top_fraction_mask",
    "without_inplace",
]
