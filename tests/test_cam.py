import numpy as np
import torch

from facial_expression.cam import compute_cams, select_samples
from facial_expression.models import build_model


def _hooks(module):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in module.modules())


def test_light_vgg_cam_shape_range_hooks_and_no_side_effect():
    torch.manual_seed(0)
    model = build_model("light-vgg", 4)
    x = torch.rand(3, 3, 128, 128)
    before = x.clone()
    maps = compute_cams(model, x, [0, 1, 3])
    assert maps.shape == (3, 128, 128)
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert torch.equal(x, before) and not x.requires_grad
    assert _hooks(model) == 0


def test_vgg16_cam_works_with_frozen_features():
    model = build_model("vgg16", 3, weights=None, freeze="features", input_size=64)
    maps = compute_cams(model, torch.rand(2, 3, 64, 64), [0, 2])
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all()
    assert _hooks(model) == 0


def test_select_samples_is_deterministic_and_per_class():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    probs = rng.dirichlet(np.ones(3), size=30)
    picks = select_samples(y, probs, per_class=2)
    assert picks == select_samples(y, probs, per_class=2)
    for p in picks:
        assert (p["pred"] == p["true"]) == p["correct"]
        assert y[p["index"]] == p["true"]
    for c in range(3):
        right = [p for p in picks if p["true"] == c and p["correct"]]
        assert len(right) <= 2
        assert all(a["confidence"] >= b["confidence"] for a, b in zip(right, right[1:]))
