"""The hardware policy (amp dtype, GradScaler, backends) with faked GPUs, the loader's device order, and cost."""

import warnings

import pytest
import torch

from facial_expression import runtime
from facial_expression.data import augment as augment_module
from facial_expression.data.cache import ImageSet
from facial_expression.data.loader import BatchLoader
from facial_expression.models import build_model, estimate_epoch_seconds, forward_flops

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.fixture
def fake_gpu(monkeypatch):
    """Pretend the CUDA device has a given compute capability; no real GPU is touched."""
    def set_capability(cap):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"Fake GPU {cap[0]}.{cap[1]}")
        # what the old policy trusted: True even on a T4, where bf16 is emulated
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    return set_capability


@pytest.mark.parametrize("cap, dtype", [((6, 0), torch.float16), ((7, 5), torch.float16),
                                        ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_picks_bf16_only_with_native_support(fake_gpu, cap, dtype):
    fake_gpu(cap)
    assert runtime.amp_dtype(CUDA) is dtype
    assert runtime.amp_dtype(CUDA, None) is dtype  # None means auto
    assert runtime.needs_grad_scaler(CUDA, dtype) is (dtype == torch.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler("cuda") only warns without CUDA
        scaler = runtime.make_grad_scaler(CUDA, dtype)
    assert isinstance(scaler, torch.amp.GradScaler) if dtype == torch.float16 else scaler is None


@pytest.mark.parametrize("cap", [(6, 0), (7, 5)])
def test_explicit_bf16_below_ampere_warns_but_obeys(fake_gpu, cap):
    fake_gpu(cap)
    with pytest.warns(UserWarning, match="emulated"):
        assert runtime.amp_dtype(CUDA, "bf16") is torch.bfloat16


def test_explicit_choices_on_cuda(fake_gpu):
    fake_gpu((8, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # native bf16: no warning
        assert runtime.amp_dtype(CUDA, "bf16") is torch.bfloat16
    assert runtime.amp_dtype(CUDA, "fp16") is torch.float16
    assert runtime.amp_dtype(CUDA, "off") is None


def test_no_scaler_off_cuda_or_without_fp16():
    assert runtime.make_grad_scaler(CPU, torch.bfloat16) is None
    assert runtime.make_grad_scaler(CPU, None) is None
    assert runtime.make_grad_scaler(CUDA, torch.bfloat16) is None
    assert runtime.make_grad_scaler(CUDA, None) is None
    assert not runtime.needs_grad_scaler(CPU, torch.float16)


@pytest.mark.parametrize("fast, dtype", [(True, torch.bfloat16), (False, None)])
def test_cpu_policy(monkeypatch, fast, dtype):
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: fast)
    assert runtime.amp_dtype(CPU) is dtype
    assert runtime.amp_dtype(CPU, "bf16") is torch.bfloat16  # explicit: obeyed
    assert runtime.amp_dtype(CPU, "off") is None
    with pytest.raises(ValueError, match="fp16.*not supported on the CPU"):
        runtime.amp_dtype(CPU, "fp16")
    info = runtime.describe_hardware(CPU)
    assert info["amp"] == ("bf16" if fast else "off") and info["capability"] is None
    assert info["amp_reason"].startswith("CPU with" if fast else "CPU without bf16 hardware")


@pytest.mark.parametrize("device", [CPU, CUDA])
def test_unknown_amp_lists_the_choices(fake_gpu, device):
    fake_gpu((7, 5))
    with pytest.raises(ValueError, match="auto, off, bf16, fp16"):
        runtime.amp_dtype(device, "fp8")


@pytest.mark.parametrize("cap, amp, reason", [
    ((7, 5), "fp16", "fp16 + GradScaler: no native bf16 below capability 8.0"),
    ((8, 0), "bf16", "native bf16 (capability 8.0)")])
def test_describe_hardware_on_a_fake_gpu(fake_gpu, cap, amp, reason):
    fake_gpu(cap)
    info = runtime.describe_hardware(CUDA)
    assert info["device"] == f"Fake GPU {cap[0]}.{cap[1]}"
    assert info["capability"] == f"{cap[0]}.{cap[1]}"
    assert (info["amp"], info["amp_reason"]) == (amp, reason)
    assert info["torch"] == torch.__version__


def test_configure_backends_is_a_no_op_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert runtime.configure_backends(CPU) == {}
    assert torch.backends.cudnn.benchmark is False


def test_configure_backends_on_cuda():
    # saved and restored by hand: cuBLAS's flags are not plain attributes that monkeypatch can undo
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        torch.backends.cudnn.benchmark = torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        assert runtime.configure_backends(CUDA) == {"cudnn.benchmark": True, "cuda.matmul.allow_tf32": True,
                                                    "cudnn.allow_tf32": True}
        assert torch.backends.cudnn.benchmark and torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) = saved


@pytest.mark.parametrize("backend", ["v2", "batched"])
def test_loader_moves_uint8_to_the_device_before_augmenting(monkeypatch, backend):
    # the meta device stands in for a GPU: what matters is where augmentation sees the batch
    seen = []

    def record(images):
        seen.append((images.device.type, images.dtype))
        return augment_module.to_unit_float(images)
    data = ImageSet(images=torch.zeros(6, 3, 32, 32, dtype=torch.uint8), labels=torch.zeros(6, dtype=torch.long),
                    classes=("a", "b"), paths=[""] * 6)
    loader = BatchLoader(data, 3, shuffle=True, augment="standard", device="meta", backend=backend)
    if backend == "batched":
        monkeypatch.setattr(augment_module.BatchAugment, "__call__", lambda self, images: record(images))
    else:
        loader.transform = record  # per image, through augment_batch
    batches = list(loader)
    assert len(batches) == 2 and all(x.device.type == "meta" == y.device.type for x, y in batches)
    assert seen and set(seen) == {("meta", torch.uint8)}


def test_forward_flops_of_light_vgg_by_hand():
    # multiply-adds of the paper's table at 128 x 128: (side, c_in, c_out) of the ten 3x3 convs, then the dense layers
    convs = [(128, 3, 16), (128, 16, 16), (64, 16, 32), (64, 32, 32), (32, 32, 64), (32, 64, 64),
             (16, 64, 128), (16, 128, 128), (8, 128, 128), (8, 128, 128)]
    macs = sum(side * side * c_out * c_in * 9 for side, c_in, c_out in convs)
    macs += 2048 * 1024 + 1024 * 1024 + 1024 * 8
    model = build_model("light-vgg", 8)
    assert forward_flops(model) == 2 * macs == 473_448_448  # FlopCounterMode: 2 FLOPs per multiply-add
    assert model.training  # its mode is restored
    with torch.device("meta"):  # shapes only: what the report uses, without allocating VGG16's weights
        assert forward_flops(build_model("light-vgg", 8)) == 2 * macs


def test_epoch_estimate_is_linear_in_images():
    model = build_model("light-vgg", 8)
    one = estimate_epoch_seconds(model, 1000, "T4")
    assert estimate_epoch_seconds(model, 3000, "t4") == pytest.approx(3 * one)
    assert one == pytest.approx(3 * 473_448_448 * 1000 / 20e12)
    assert estimate_epoch_seconds(model, 1000, "A100") < one < estimate_epoch_seconds(model, 1000, "P100")
    with pytest.raises(ValueError, match="unknown gpu"):
        estimate_epoch_seconds(model, 1000, "TPU")
