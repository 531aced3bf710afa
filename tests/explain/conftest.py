"""Fixtures of the explain tests: a tiny CNN trained in-test on a "where is the patch" dataset."""

from __future__ import annotations

import pytest
import torch
from torch import nn

# The class-1 images carry a bright 8x8 square with its top-left corner here; nothing else differs.
PATCH_TOP, PATCH_LEFT, PATCH = 6, 18, 8


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine two threads per process oversubscribe the
    cores and made these small models ~5x slower (measured on style transfer)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def patch_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """32x32 gray noise in [0, 0.6]; every second image (class 1) has a bright square at a fixed place."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 32, 32, generator=g) * 0.6
    y = torch.arange(n) % 2
    k = int((y == 1).sum())
    x[y == 1, :, PATCH_TOP : PATCH_TOP + PATCH, PATCH_LEFT : PATCH_LEFT + PATCH] = 0.75 + 0.25 * torch.rand(k, 1, PATCH, PATCH, generator=g)
    return x, y


def patch_mask() -> torch.Tensor:
    m = torch.zeros(32, 32, dtype=torch.bool)
    m[PATCH_TOP : PATCH_TOP + PATCH, PATCH_LEFT : PATCH_LEFT + PATCH] = True
    return m


@pytest.fixture(scope="session")
def patch_model():
    """``(model, test images, test labels, patch mask)``: a two-conv CNN (global average pooling head)
    trained for 50 Adam steps on 512 images; 100% test accuracy.

    In-place ReLUs on purpose: cnnkit's models have them and the explanations must cope.
    """
    from cnnkit.explain import PixelModel

    x, y = patch_images(512, seed=0)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2),
    )  # fmt: skip
    model = PixelModel(net, [0.4], [0.25])
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        i = torch.randint(0, len(x), (64,), generator=g)
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt = patch_images(200, seed=1)
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean())
    assert acc > 0.95, f"the patch CNN did not learn the task ({acc:.2%})"
    return model, xt, yt, patch_mask()
