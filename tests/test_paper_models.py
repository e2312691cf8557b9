"""The AlexNet and MobileNet variants of Hewitt & Gunes (2018), checked against the authors' Keras JSON.

The expected counts are worked out by hand, layer by layer, from friggog/Emosic M_VGG/C_ARCH.json
(commit 9148468), M_ALEX/C_ARCH.json and M_MOB/C_ARCH.json (commit f84c236), as Keras counts them:
Conv2D/Dense without bias are k*k*c_in*c_out (in*out) weights, DepthwiseConv2D is 9 per channel, the output
Dense has a bias, and each BatchNormalization has 4 per channel (gamma, beta trainable; moving mean and
variance non-trainable). In PyTorch the moving statistics are the BN buffers running_mean/running_var.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facial_expression.config import TrainConfig
from facial_expression.models import MODEL_NAMES, AlexNetVar, MobileNetVar, build_model, forward_flops, model_options
from facial_expression.models.alexnet_var import CONVS, _pooled
from facial_expression.models.alexnet_var import DENSE as ALEX_WIDTH
from facial_expression.models.mobilenet_var import BLOCKS, STEM
from facial_expression.models.mobilenet_var import Conv2dSame

JSON_CLASSES = 8  # dense_3 (ALEX, VGG) and dense_1 (MOB) have 8 units: AffectNet's 8 expressions

# --- by hand from the JSON --------------------------------------------------------------------------------
# M_VGG: 10 x Conv2D 3x3 (no bias) + BN, 2 x Dense 1024 (no bias) + BN, Dense C (bias)
VGG_CONV = 9 * (3 * 16 + 16 * 16 + 16 * 32 + 32 * 32 + 32 * 64 + 64 * 64 + 64 * 128 + 3 * 128 * 128)  # 587,952
VGG_BN_CHANNELS = 2 * (16 + 32 + 64 + 128 + 128) + 2 * 1024  # 2,784
VGG_DENSE = 2048 * 1024 + 1024 * 1024  # flatten 128 x 4 x 4


def alexnet_var_keras_param_count(num_classes: int, input_size: int = 128) -> dict[str, int]:
    """The closed-form parameter count as Keras reports it: BN has 2 trainable and 2 non-trainable per channel."""
    weights, bn, c_in = 0, 0, 3
    for width, k in CONVS:
        weights += k * k * c_in * width
        bn += width
        c_in = width
    flat = CONVS[-1][0] * _pooled(input_size, len(CONVS)) ** 2
    weights += flat * ALEX_WIDTH + ALEX_WIDTH * ALEX_WIDTH + (ALEX_WIDTH + 1) * num_classes
    bn += 2 * ALEX_WIDTH
    return {"trainable": weights + 2 * bn, "non_trainable": 2 * bn, "total": weights + 4 * bn}


def mobilenet_var_keras_param_count(num_classes: int) -> dict[str, int]:
    """The closed-form parameter count as Keras reports it: BN has 2 trainable and 2 non-trainable per channel.

    It does not depend on the input size (global average pooling)."""
    weights, bn, c_in = 3 * 3 * 3 * STEM, STEM, STEM
    for width, _ in BLOCKS:
        weights += 3 * 3 * c_in + c_in * width  # depthwise 3x3, pointwise 1x1
        bn += c_in + width
        c_in = width
    weights += (c_in + 1) * num_classes
    return {"trainable": weights + 2 * bn, "non_trainable": 2 * bn, "total": weights + 4 * bn}



def keras_vgg(c):
    return {"trainable": VGG_CONV + VGG_DENSE + 2 * VGG_BN_CHANNELS + 1025 * c, "non_trainable": 2 * VGG_BN_CHANNELS}


# M_ALEX: Conv2D 9x9x3x16, 7x7x16x32, 5x5x32x64, 3x3x64x128, 3x3x128x128 (no bias) + BN each,
# 2 x Dense 1024 (no bias) + BN, Dense C (bias)
ALEX_CONV = 81 * 3 * 16 + 49 * 16 * 32 + 25 * 32 * 64 + 9 * 64 * 128 + 9 * 128 * 128  # 301,360
ALEX_BN_CHANNELS = 16 + 32 + 64 + 128 + 128 + 2 * 1024  # 2,416
ALEX_DENSE = 2048 * 1024 + 1024 * 1024  # flatten 128 x 4 x 4


def keras_alex(c):
    return {"trainable": ALEX_CONV + ALEX_DENSE + 2 * ALEX_BN_CHANNELS + 1025 * c,
            "non_trainable": 2 * ALEX_BN_CHANNELS}


# M_MOB: Conv2D 3x3x3x32 + BN, 13 x (DepthwiseConv2D 3x3 + BN, Conv2D 1x1 + BN), GAP, Dense C (bias)
MOB_IN = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024)  # input channels of the 13 blocks
MOB_OUT = MOB_IN[1:] + (1024,)
MOB_CONV = 27 * 32 + sum(9 * i + i * o for i, o in zip(MOB_IN, MOB_OUT))  # 3,206,976
MOB_BN_CHANNELS = 32 + sum(i + o for i, o in zip(MOB_IN, MOB_OUT))  # 10,944


def keras_mob(c):
    return {"trainable": MOB_CONV + 2 * MOB_BN_CHANNELS + 1025 * c, "non_trainable": 2 * MOB_BN_CHANNELS}


def keras_count(model: nn.Module) -> dict[str, int]:
    """Parameters as Keras reports them: PyTorch's parameters, plus BN moving mean and variance."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    moving = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return {"trainable": trainable, "non_trainable": moving}


def test_hand_counts_are_the_known_totals():
    assert keras_vgg(8) == {"trainable": 3_747_448, "non_trainable": 5_568}  # Keras: 3,753,016 total
    assert keras_alex(8) == {"trainable": 3_460_120, "non_trainable": 4_832}  # Keras: 3,464,952 total
    # MobileNet v1 1.0 without its top is 3,228,864 (21,888 non-trainable) in keras.applications, plus 8,200
    assert keras_mob(8) == {"trainable": 3_215_176, "non_trainable": 21_888}  # Keras: 3,237,064 total


@pytest.mark.parametrize("num_classes", [JSON_CLASSES, 7, 2])
def test_light_vgg_with_the_keras_options_matches_m_vgg(num_classes):
    """Our reading of the JSON, checked on the model that exists: M_VGG is LightVGG with BN and GaussianDropout."""
    model = build_model("light-vgg", num_classes, batch_norm=True, gaussian_dropout=0.2, dropout=0.5)
    assert keras_count(model) == keras_vgg(num_classes)


@pytest.mark.parametrize("num_classes", [JSON_CLASSES, 7, 2])
def test_alexnet_var_parameter_count_is_the_keras_one(num_classes):
    model = build_model("alexnet-var", num_classes)
    assert keras_count(model) == keras_alex(num_classes)
    expected = alexnet_var_keras_param_count(num_classes)
    assert (expected["trainable"], expected["non_trainable"]) == tuple(keras_alex(num_classes).values())
    if num_classes == 8:
        assert sum(keras_count(model).values()) == 3_464_952


@pytest.mark.parametrize("num_classes", [JSON_CLASSES, 7, 2])
def test_mobilenet_var_parameter_count_is_the_keras_one(num_classes):
    model = build_model("mobilenet-var", num_classes)
    assert keras_count(model) == keras_mob(num_classes)
    expected = mobilenet_var_keras_param_count(num_classes)
    assert (expected["trainable"], expected["non_trainable"]) == tuple(keras_mob(num_classes).values())
    if num_classes == 8:
        assert sum(keras_count(model).values()) == 3_237_064


def test_alexnet_var_layers_are_the_json_layers():
    model = AlexNetVar(8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.bias is None) for c in convs] == [
        (16, 9, 1, True), (32, 7, 1, True), (64, 5, 1, True), (128, 3, 1, True), (128, 3, 1, True)]
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features, d.bias is not None) for d in dense] == [
        (2048, 1024, False), (1024, 1024, False), (1024, 8, True)]
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert len(bns) == 7 and all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)


def test_mobilenet_var_layers_are_the_json_layers():
    model = MobileNetVar(8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 27 and all(c.bias is None for c in convs)
    depthwise = [c for c in convs if c.groups > 1]
    assert len(depthwise) == 13 and all(c.groups == c.in_channels == c.out_channels for c in depthwise)
    assert [c.stride[0] for c in depthwise] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    pointwise = [c for c in convs[1:] if c.groups == 1]
    assert [c.out_channels for c in pointwise] == list(MOB_OUT)
    assert [type(m) for m in model.classifier] == [nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear]


@pytest.mark.parametrize("n", [8, 7, 128])
def test_same_padding_is_tensorflows(n):
    """Stride 2, 3x3: TF pads (0, 1) on an even side and (1, 1) on an odd one; the output side is ceil(n / 2)."""
    torch.manual_seed(0)
    conv = Conv2dSame(2, 3, 3, stride=2, bias=False)
    x = torch.randn(1, 2, n, n)
    pad = (0, 1, 0, 1) if n % 2 == 0 else (1, 1, 1, 1)
    expected = F.conv2d(F.pad(x, pad), conv.weight, stride=2)
    assert conv(x).shape[-1] == math.ceil(n / 2)
    torch.testing.assert_close(conv(x), expected)


@pytest.mark.parametrize("name", ["alexnet-var", "mobilenet-var"])
def test_output_shape_at_the_models_input_size(name):
    size = TrainConfig(model=name).resolved_input_size()
    assert size == 128  # batch_input_shape [null, 128, 128, 3] in both JSONs
    model = build_model(name, 8, **model_options(TrainConfig(model=name))).eval()
    assert model.input_size == size
    assert model(torch.rand(3, 3, size, size)).shape == (3, 8)
    assert forward_flops(model) > 1e8
    with pytest.raises(ValueError, match=r"expects a batch of shape \(N, 3, 128, 128\)"):
        model(torch.rand(1, 3, 96, 96))


@pytest.mark.parametrize("name", ["alexnet-var", "mobilenet-var"])
def test_every_trainable_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = build_model(name, 8).train()
    model(torch.rand(4, 3, 128, 128)).logsumexp(1).sum().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n


@pytest.mark.parametrize("name", ["alexnet-var", "mobilenet-var"])
def test_overfits_a_tiny_batch(name):
    """16 synthetic faces with fixed labels: the loss on them goes near zero within a few dozen Adam steps.

    With the dropout layers off (AlexNetVar's GaussianDropout 0.2 and Dropout 0.5; MobileNetVar has none by
    default): on noise images their noise keeps the training loss near chance, which tests nothing."""
    torch.manual_seed(0)
    x, y = torch.rand(16, 3, 128, 128), torch.arange(16) % 8
    model = build_model(name, 8, dropout=0.0, **({"gaussian_dropout": 0.0} if name == "alexnet-var" else {}))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(40):
        model.train()
        loss = F.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    assert first > 1.0 and loss.item() < 0.05, (first, loss.item())


@pytest.mark.parametrize("name,side", [("alexnet-var", 8), ("mobilenet-var", 4)])
def test_grad_cam_works_on_the_cam_layer(name, side):
    from facial_expression.cam import compute_cams
    torch.manual_seed(0)
    model = build_model(name, 8).train()
    seen = {}

    def record(module, inputs, output):  # returns None: the output is left alone
        seen.setdefault("shape", tuple(output.shape))

    hook = model.cam_layer.register_forward_hook(record)
    maps = compute_cams(model, torch.rand(3, 3, 128, 128), [0, 3, 7])
    hook.remove()
    assert seen["shape"][-2:] == (side, side)
    assert maps.shape == (3, 128, 128) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert model.training  # compute_cams restores the mode


def test_build_model_by_name():
    assert {"alexnet-var", "mobilenet-var"} <= set(MODEL_NAMES)
    assert isinstance(build_model("alexnet-var", 8), AlexNetVar)
    assert isinstance(build_model("mobilenet-var", 8), MobileNetVar)
    with pytest.raises(ValueError, match="at least 32"):
        build_model("alexnet-var", 8, input_size=16)
