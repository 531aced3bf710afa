"""Where the network looks: sanity checks from the literature, on models whose answer we know."""

from __future__ import annotations

import pytest
import torch

from cnnkit.explain import METHODS, attribute, iou, randomisation_check, top_fraction_mask


@pytest.mark.parametrize("method", ["gradcam", "occlusion"])
def test_map_peaks_on_the_patch_that_decides_the_class(patch_model, method):
    """The class is decided by a bright square at a fixed place, so the map of class 1 must sit on it.

    The top 6.25% of the map (as many pixels as the patch has) must overlap the patch with IoU > 0.5
    on every image (measured: Grad-CAM 0.83-0.86, occlusion with the default 5x5 window 0.83-0.86).
    """
    model, x, y, mask = patch_model
    xs = x[y == 1][:12]
    heat = attribute(model, xs, method, target=1)
    assert heat.shape == (len(xs), 32, 32)
    fraction = mask.float().mean().item()  # keep as many pixels as the patch has
    ious = [iou(top_fraction_mask(h, fraction), mask) for h in heat]
    assert min(ious) > 0.8, ious  # README: "Grad-CAM and occlusion maps peak on the patch (IoU 0.83)"


def test_maps_change_when_the_weights_are_randomised(trained_run):
    """Adebayo et al.'s model-randomisation test on the trained LeNet-5: a map that explains the model
    must change when what the model learnt is destroyed. Measured mean Spearman rank correlation
    between trained and re-initialised maps: saliency ~0.38, Grad-CAM ~0.0."""
    from cnnkit.evaluate import run_data
    from cnnkit.explain import from_run
    from cnnkit.run import load_run

    run = load_run(trained_run)
    x = run_data(run).test.images[:12].float() / 255
    model = from_run(run)
    # README: "Spearman 0.35 for saliency, 0.01 for Grad-CAM" (a random map scores ~0; the same map 1)
    for method, readme, tol in (("saliency", 0.35, 0.1), ("gradcam", 0.01, 0.15)):
        r = randomisation_check(model, x, method, seed=0)
        mean = sum(r) / len(r)
        assert mean == pytest.approx(readme, abs=tol), (method, r)


def test_every_method_gives_a_finite_map_of_the_input_size(trained_run):
    from cnnkit.evaluate import run_data
    from cnnkit.explain import SIGNED, from_run
    from cnnkit.run import load_run

    run = load_run(trained_run)
    model = from_run(run)
    x = run_data(run).test.images[:2].float() / 255
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in METHODS:
        heat = attribute(model, x, method, target=3)
        assert heat.shape == (2, 32, 32), method
        assert torch.isfinite(heat).all(), method
        assert heat.abs().sum() > 0, method
        if method not in SIGNED:
            assert heat.min() >= 0, method
    # Explaining must not touch the model (copies are made for in-place ReLUs and hooks).
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.inplace for m in model.modules() if isinstance(m, torch.nn.ReLU))


def test_integrated_gradients_add_up_to_the_score_difference(patch_model):
    """Completeness (Sundararajan et al.): the map sums to score(x) - score(black image)."""
    model, x, y, _ = patch_model
    xs = x[y == 1][:2]
    heat = attribute(model, xs, "integrated-gradients", target=1)
    with torch.no_grad():
        diff = model(xs)[:, 1] - model(torch.zeros_like(xs))[:, 1]
    assert torch.allclose(heat.sum((1, 2)), diff, rtol=0.05, atol=0.05)


def test_unknown_method_and_layer_are_user_errors(patch_model):
    from cnnkit.errors import ConfigError, ModelError

    model, x, _, _ = patch_model
    with pytest.raises(ConfigError, match="did you mean 'gradcam'"):
        attribute(model, x[:1], "gradcamm", target=1)
    with pytest.raises(ModelError, match="no layer"):
        attribute(model, x[:1], "gradcam", target=1, layer="features.99")
