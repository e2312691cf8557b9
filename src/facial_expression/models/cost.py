"""Compute cost: FLOPs of one forward pass, and a rough epoch time on a given GPU from them."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError

# Assumed *sustained* training throughput in TFLOP/s (not the datasheet peak), at the precision the
# runtime picks there: small convnets at batch 64 keep only a fraction of the tensor cores busy.
SUSTAINED_TFLOPS = {
    "T4": 20.0,     # fp16 + GradScaler; 65 peak
    "P100": 8.0,    # fp16 or fp32, no tensor cores; 19 / 9.3 peak
    "A100": 100.0,  # bf16; 312 peak
    "H100": 250.0,  # bf16; ~990 peak (SXM)
    "H200": 250.0,  # as H100: same compute, more memory
    "cpu": 0.2,     # 2 cores with bf16 autocast: 172 LightVGG images/s (0.24) on the project's AMD EPYC
}
# one forward, then backward through activations and weights, each about as costly as the forward
TRAIN_FLOPS_PER_FORWARD = 3


def forward_flops(model: nn.Module, input_size: int | None = None) -> int:
    """FLOPs of one forward pass on one image (2 per multiply-add), counted in eval mode on the CPU, or on the
    meta device for a model built there (`with torch.device("meta"): ...`: shapes only, no memory)."""
    size = input_size or model.input_size
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    counted_on = device if device.type == "meta" else torch.device("cpu")
    was_training = model.training
    model.to(counted_on).eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, 3, size, size, device=counted_on))
    finally:
        model.train(was_training).to(device)
    return int(counter.get_total_flops())


def estimate_epoch_seconds(model: nn.Module, n_images: int, gpu: str = "T4", input_size: int | None = None) -> float:
    """An estimate, not a measurement: seconds of one training epoch over `n_images` on `gpu`.

    3 x the forward FLOPs per image, divided by the assumed sustained throughput in SUSTAINED_TFLOPS.
    Leaves out data loading, evaluation passes and launch overheads; with frozen layers (VGG16's default
    freeze='features') most of the backward pass is skipped, so it then overestimates by up to ~3x.
    """
    key = {k.lower(): k for k in SUSTAINED_TFLOPS}.get(gpu.lower())
    if key is None:
        raise ConfigError(f"unknown gpu {gpu!r}; choose one of {', '.join(SUSTAINED_TFLOPS)}")
    flops = TRAIN_FLOPS_PER_FORWARD * forward_flops(model, input_size) * n_images
    return flops / (SUSTAINED_TFLOPS[key] * 1e12)
