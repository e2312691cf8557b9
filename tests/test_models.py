import pytest
import torch
from torch import nn

from facial_expression.config import TrainConfig
from facial_expression.errors import WeightsUnavailableError
from facial_expression.models import LightVGG, build_model, count_parameters, summary
from facial_expression.models.light_vgg import DENSE, WIDTHS
from facial_expression.models import vgg16 as vgg16_module
from facial_expression.training import make_optimizer


def light_vgg_param_count(num_classes: int, input_size: int = 128) -> int:
    """The closed-form parameter count of the plain (paper) variant."""
    convs, c_in = 0, 3
    for width in WIDTHS:
        convs += (9 * c_in + 1) * width + (9 * width + 1) * width
        c_in = width
    flat = WIDTHS[-1] * (input_size // 32) ** 2
    return convs + (flat + 1) * DENSE + (DENSE + 1) * DENSE + (DENSE + 1) * num_classes



def test_plain_light_vgg_matches_the_paper_exactly():
    model = build_model("light-vgg", 8)
    assert count_parameters(model)["total"] == 3_744_664 == light_vgg_param_count(8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 128, 128, 128, 128]
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(2048, 1024), (1024, 1024), (1024, 8)]


@pytest.mark.parametrize("num_classes", [2, 7, 8])
@pytest.mark.parametrize("options", [{}, {"batch_norm": True, "dropout": 0.5, "gaussian_dropout": 0.2}])
def test_light_vgg_output_shape(num_classes, options):
    model = build_model("light-vgg", num_classes, **options).eval()
    assert model(torch.rand(2, 3, 128, 128)).shape == (2, num_classes)
    if not options:
        assert count_parameters(model)["total"] == light_vgg_param_count(num_classes)


def test_cam_layer_gives_an_8x8_map():
    model = build_model("light-vgg", 7)
    out = {}
    model.cam_layer.register_forward_hook(lambda m, i, o: out.setdefault("a", o))
    model(torch.rand(1, 3, 128, 128))
    assert out["a"].shape == (1, 128, 8, 8)


@pytest.mark.parametrize("shape", [(1, 3, 96, 96), (1, 1, 128, 128), (3, 128, 128)])
def test_wrong_input_size_is_a_clear_error(shape):
    with pytest.raises(ValueError, match=r"LightVGG expects a batch of shape \(N, 3, 128, 128\)"):
        build_model("light-vgg", 7)(torch.rand(*shape))


def test_unknown_model_and_bad_options():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", 7)
    with pytest.raises(ValueError, match="divisible by 32"):
        LightVGG(7, input_size=100)
    with pytest.raises(ValueError, match="unknown freeze 'some'"):
        build_model("vgg16", 7, weights=None, freeze="some")


def _backward(model, size):
    model.train()
    model(torch.rand(4, 3, size, size)).sum().backward()
    return {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("options", [{}, {"batch_norm": True, "dropout": 0.5, "gaussian_dropout": 0.2}])
def test_light_vgg_every_parameter_gets_a_gradient(options):
    grads = _backward(build_model("light-vgg", 7, **options), 128)
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values())


@pytest.mark.parametrize("freeze,first_trainable", [("none", "features.0.weight"),
                                                    ("features", "classifier.0.weight"),
                                                    ("all-but-last-block", "features.24.weight")])
def test_vgg16_frozen_parameters_get_no_gradient(freeze, first_trainable):
    model = build_model("vgg16", 5, weights=None, freeze=freeze, input_size=32)
    grads = _backward(model, 32)
    names = list(grads)
    start = names.index(first_trainable)
    assert all(grads[n] is None for n in names[:start])
    assert all(grads[n] is not None for n in names[start:])
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def _overfit(model, size, steps, lr):
    """Train on 16 images of 4 classes (class-tinted noise) without regularisation; final eval loss."""
    torch.manual_seed(0)
    y = torch.arange(16) % 4
    x = torch.rand(16, 3, size, size) * 0.3
    for i in range(16):
        x[i, y[i] % 3] += 0.5 + 0.2 * (y[i] // 3)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    opt = make_optimizer(model, TrainConfig(lr=lr, head_lr_mult=1.0))  # the package's Adam, one learning rate
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        model.train()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return loss_fn(model(x), y).item(), (model(x).argmax(1) == y).float().mean().item()


def test_light_vgg_overfits_a_tiny_batch():
    torch.manual_seed(0)
    loss, acc = _overfit(build_model("light-vgg", 4), 128, steps=40, lr=3e-4)
    assert loss < 0.05 and acc == 1.0


def test_vgg16_overfits_a_tiny_batch():
    torch.manual_seed(0)
    # Random frozen features separate the classes only weakly, so the head needs more steps than
    # LightVGG; 25 Adam steps take the loss from ln 4 = 1.39 to well under 0.2.
    loss, acc = _overfit(build_model("vgg16", 4, weights=None, freeze="features", input_size=32), 32,
                         steps=25, lr=2e-4)
    assert loss < 0.2 and acc == 1.0


def test_imagenet_weights_unavailable_is_a_clear_error(monkeypatch):
    from urllib.error import URLError

    def offline(*a, **k):
        raise URLError("no network")
    monkeypatch.delenv(vgg16_module.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(vgg16_module.VGG16_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(WeightsUnavailableError, match="--weights PATH"):
        build_model("vgg16", 7, weights="imagenet")
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        build_model("vgg16", 7, weights="/nowhere/vgg16.pth")


def test_vgg16_loads_weights_from_a_local_file(tmp_path, monkeypatch):
    from torchvision.models import vgg16
    reference = vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("vgg16", 7, weights=str(path))
    assert torch.equal(model.features[0].weight, reference.features[0].weight)
    assert torch.equal(model.classifier[0].weight, reference.classifier[0].weight)
    monkeypatch.setenv(vgg16_module.WEIGHTS_ENV, str(path))  # "imagenet" then reads the env variable
    assert torch.equal(build_model("vgg16", 7, weights="imagenet").features[2].weight,
                       reference.features[2].weight)


def test_summary_reports_counts():
    text = str(summary(build_model("light-vgg", 8)))
    assert "3,744,664" in text


def test_gap_head_cuts_the_dense_layers_and_keeps_the_cam_layer():
    model = build_model("light-vgg", 7, head="gap")
    # the five conv blocks of the paper, then 128 -> 7; the 2048 -> 1024 -> 1024 head is gone
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(128, 7)]
    assert count_parameters(model)["total"] == light_vgg_param_count(7) - (2048 * 1024 + 1024 + 1024 * 1024 + 1024
                                                                          + 1024 * 7 + 7) + 128 * 7 + 7
    assert model(torch.rand(2, 3, 128, 128)).shape == (2, 7)
    with pytest.raises(ValueError, match="unknown head"):
        build_model("light-vgg", 7, head="attention")


def test_face_mask_is_a_fixed_buffer_that_hides_the_corners():
    from facial_expression.models.light_vgg import face_mask
    mask = face_mask(128)
    assert mask.shape == (1, 1, 128, 128) and 0 <= mask.min() and mask.max() == 1
    assert mask[0, 0, 64, 64] == 1 and mask[0, 0, 0, 0] == 0 and mask[0, 0, 127, 127] == 0
    assert torch.equal(mask, mask.flip(-1))  # symmetric, so flips and flip TTA agree
    model = build_model("light-vgg", 7, mask=True).eval()
    assert count_parameters(model)["total"] == light_vgg_param_count(7)  # a buffer, not a parameter
    assert "mask" in model.state_dict()
    x = torch.rand(1, 3, 128, 128)
    corners = x.clone()
    corners[..., :4, :4] = 0.5  # changing only what the mask hides changes nothing
    assert torch.equal(model(x), model(corners))
