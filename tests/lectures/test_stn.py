"""The spatial transformer: identity at start, registered like any model, trainable, shown by explain."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import cnnkit
from cnnkit.cli import main
from cnnkit.errors import ModelError
from cnnkit.explain.distort import affine
from cnnkit.models.stn import SpatialTransformer


def test_registered_and_starts_as_the_identity():
    assert {"stn_lenet5", "stn_lenet1"} <= set(cnnkit.list_models(family="stn"))
    model = cnnkit.create_model("stn_lenet5", num_classes=10, in_chans=1, input_size=40).eval()
    assert model.info.classifier == "net.classifier.5" and model.info.input_size == (1, 40, 40)
    x = torch.rand(3, 1, 40, 40)
    with torch.no_grad():
        assert torch.allclose(model.stn(x), x, atol=1e-5)  # zero weights + identity bias: input unchanged
        plain = model.net(x)
        assert torch.allclose(model(x), plain, atol=1e-5)
    model.reset_classifier(4)  # transfer learning reaches the wrapped classifier
    assert model(x).shape == (3, 4)


@pytest.mark.slow
def test_the_localisation_net_learns_to_undo_a_rotation():
    """Trained only to match the upright image, the block learns the inverse rotation of its input."""
    torch.manual_seed(0)
    stn = SpatialTransformer(1, (32, 32))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    upright = (
        ((xx.abs() < 0.15) | ((yy + 0.7).abs() < 0.12) & (xx.abs() < 0.6))
        .float()[None, None]
        .repeat(8, 1, 1, 1)
    )
    tilted = affine(upright, rotate=30.0)
    before = float((stn(tilted) - upright).pow(2).mean().detach())
    opt = torch.optim.Adam(stn.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        loss = (stn(tilted) - upright).pow(2).mean()
        loss.backward()
        opt.step()
    after = float(loss.detach())
    assert after < 0.35 * before
    a, b = stn.theta(tilted[:1])[0, 0, :2].tolist()
    assert abs(b) > 0.25  # an off-diagonal term: the grid turned (sin 30 deg = 0.5)


def test_explain_method_stn_shows_the_transformed_image(stn_run, tmp_path, capsys):
    img = tmp_path / "digit.png"
    Image.fromarray((torch.rand(32, 32) * 255).byte().numpy(), mode="L").save(img)
    out = tmp_path / "stn.png"
    assert main(["explain", str(stn_run), str(img), "--method", "stn", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "affine map:" in text and "written to" in text
    with Image.open(out) as im:
        assert im.format == "PNG"


def test_explain_method_stn_on_a_model_without_one_is_one_line(trained_run, tmp_path, capsys):
    img = tmp_path / "digit.png"
    Image.fromarray((torch.rand(32, 32) * 255).byte().numpy(), mode="L").save(img)
    assert (
        main(["explain", str(trained_run), str(img), "--method", "stn", "-o", str(tmp_path / "s.png")]) == 2
    )
    err = capsys.readouterr().err
    assert "has no spatial transformer" in err and "stn_lenet5" in err and "Traceback" not in err


def test_find_stn_names_the_model():
    from cnnkit.explain.stn_view import find_stn

    with pytest.raises(ModelError, match="'lenet5' has no spatial transformer"):
        find_stn(cnnkit.create_model("lenet5", num_classes=10, in_chans=1))
