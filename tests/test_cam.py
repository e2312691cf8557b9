import numpy as np
import torch

from facial_expression.cam import compute_cams, ffhq_mask, photo_style_check, photo_style_summary, select_samples
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


def test_comparison_grid_and_shortcut_summary_on_the_same_faces(tiny_dataset):
    import warnings
    import matplotlib.pyplot as plt
    from facial_expression.cam import comparison_grid, select_samples, shortcut_summary
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
    summary = shortcut_summary(other, data)
    assert 0 <= summary["border"] <= 1 and 0 <= summary["accuracy_fp32"] <= 1
    assert not any("ffhq" in k for k in summary)  # no photo-style check on data without FFHQ files


def test_ffhq_mask_marks_the_ffhq_files_by_name_only():
    paths = ["/d/happy/ffhq_00012.png", "/ffhq/sad/img_3.jpg", "FFHQ_7.png", "/d/sad/x.png"]
    assert ffhq_mask(paths).tolist() == [True, False, True, False]
    assert ffhq_mask([]).dtype == bool and ffhq_mask([]).shape == (0,)


def test_photo_style_check_and_summary_split_the_same_files():
    classes = ("happy", "neutral", "sad")
    paths = ["ffhq_1.png", "a.png", "ffhq_2.png", "b.png", "ffhq_3.png", "c.png"]
    y_true = np.array([0, 0, 2, 2, 2, 1])
    y_pred = np.array([0, 1, 0, 2, 1, 1])
    table = photo_style_check(paths, y_true, y_pred, classes)
    assert table.loc["sad", "ffhq_images"] == 2 and table.loc["sad", "other_images"] == 1
    assert table.loc["sad", "accuracy_ffhq"] == 0.0 and table.loc["sad", "accuracy_other"] == 1.0
    summary = photo_style_summary(paths, y_true, y_pred, classes)
    assert summary["ffhq_other_classes"] == 2 and summary["ffhq_other_predicted_happy_neutral"] == 1.0
    assert summary["nonffhq_other_classes"] == 1 and summary["nonffhq_other_predicted_happy_neutral"] == 0.0
