import numpy as np
import pytest
import torch

from facial_expression import cam
from facial_expression.cam import compute_cams, region_shares, select_samples
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


def test_comparison_grid_and_split_maps_on_the_same_faces(tiny_dataset):
    import warnings
    import matplotlib.pyplot as plt
    from facial_expression.cam import comparison_grid
    from facial_expression.shortcuts import SplitMaps
    from facial_expression.data import SkippedFilesWarning, load_folder
    from facial_expression.evaluation import predict
    from facial_expression.models import build_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        data = load_folder(tiny_dataset / "validation", 32, ("angry", "happy", "sad"), progress=False)
    torch.manual_seed(0)
    plain = build_model("light-vgg", 3, input_size=32).eval()
    other = build_model("light-vgg", 3, input_size=32, head="gap", mask=True).eval()
    probs, labels = predict(plain, data)
    picks = select_samples(labels, probs, per_class=1)
    fig = comparison_grid({"plain": plain, "improved": other}, data, picks)
    assert fig.axes[0].get_title().startswith("true\n") and len(fig.axes) == 3 * len(picks)
    plt.close(fig)
    fig = comparison_grid({"plain": plain, "improved": other}, data, picks, groups=2)
    assert len(fig.axes) == 6 * -(-len(picks) // 2)
    plt.close(fig)
    maps = SplitMaps.compute(plain, data)
    assert (maps.probs == probs).all() and (maps.labels == labels).all() and maps.cams.shape == (len(labels), 32, 32)
    table = maps.region_table()
    assert list(table.index) == ["angry", "happy", "sad", "all", "standard error", "uniform map (area share)"]
    # the standard error of the mean share: two 8 x 8 maps, one even (border 28/64) and one inside the ring (0)
    two = np.zeros((2, 8, 8), np.float32)
    two[0], two[1, 1:7, 1:7] = 1, 1
    assert region_shares(two, spread=True)["border"] == pytest.approx(np.std([28 / 64, 0], ddof=1) / np.sqrt(2))
    assert table.loc["uniform map (area share)", "border"] == pytest.approx(1 - (24 / 32) ** 2)
    summary = maps.summary()
    assert summary == {k: table.loc["all", k] for k in ("border", "eyes_band", "mouth_band")}
    assert not maps.has_second_source()  # no photo-style check on data without FFHQ files


def _counting(monkeypatch, name: str) -> list:
    """Replace cam.<name> by a subclass that records each construction."""
    built, original = [], getattr(cam, name)

    class Counting(original):
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(cam, name, Counting)
    return built


def test_vgg16_cam_layer_is_the_last_relu_of_features():
    model = build_model("vgg16", 3, weights=None, freeze="features", input_size=64)
    assert model.cam_layer is model.features[29] and isinstance(model.cam_layer, torch.nn.ReLU)
    out = {}
    hook = model.cam_layer.register_forward_hook(lambda m, i, o: out.setdefault("a", o))
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    hook.remove()
    assert out["a"].shape == (1, 512, 4, 4)  # 1/16 of the side: before block 5's pool


def test_an_open_grad_cam_can_be_passed_and_its_hooks_go_with_its_with_block():
    from pytorch_grad_cam import GradCAM
    torch.manual_seed(0)
    model = build_model("light-vgg", 3, input_size=32).train()
    x = torch.rand(4, 3, 32, 32)
    fresh = compute_cams(model, x, [0, 1, 2, 0])
    assert model.training  # the mode is restored although building a GradCAM switches it to eval
    with GradCAM(model=model, target_layers=[model.cam_layer]) as open_cam:
        parts = [compute_cams(model, x[k:k + 1], [t], cam=open_cam) for k, t in enumerate([0, 1, 2, 0])]
        assert _hooks(model) > 0
    assert _hooks(model) == 0
    np.testing.assert_allclose(np.concatenate(parts), fresh, atol=1e-4)  # batch of 1 vs 4: float noise


def test_cam_analysis_builds_one_grad_cam_for_both_targets(tiny_dataset, monkeypatch):
    import warnings
    from facial_expression.cam import cam_analysis
    from facial_expression.data import SkippedFilesWarning, load_folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        data = load_folder(tiny_dataset / "validation", 32, ("angry", "happy", "sad"), progress=False)
    torch.manual_seed(0)
    model = build_model("light-vgg", 3, input_size=32)
    built = _counting(monkeypatch, "GradCAM")
    out = cam_analysis(model, data, per_class=2)
    n = len(out["picks"])
    assert n > 1 and len(built) == 1
    assert out["cams_pred"].shape == out["cams_true"].shape == (n, 32, 32)
    right = [i for i, p in enumerate(out["picks"]) if p["correct"]]  # same class: the same map twice
    np.testing.assert_allclose(out["cams_pred"][right], out["cams_true"][right], atol=1e-4)
    # each face carries where its map of the predicted class lies (the report's words on single faces)
    assert all(p["regions"] == region_shares(out["cams_pred"][i][None]) for i, p in enumerate(out["picks"]))
    # and each wrong face where its map of the true class lies (the third panel of its row)
    assert all(p["regions_true"] == region_shares(out["cams_true"][i][None]) if not p["correct"] else
               "regions_true" not in p for i, p in enumerate(out["picks"]))
