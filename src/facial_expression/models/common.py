"""What the light networks share: their initialisation, the check of an input batch and Gaussian dropout."""

from __future__ import annotations

import torch
from torch import nn


def kaiming_init(model: nn.Module) -> None:
    """Kaiming normal init as torchvision's VGG (fan_out for convolutions, fan_in for dense layers), zero
    biases, batch-norm 1 and 0. With PyTorch's default init the plain LightVGG stayed at chance on our sample."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def check_batch(model: nn.Module, x: torch.Tensor) -> None:
    """A ValueError unless `x` is a batch of RGB images at the model's input size."""
    size = model.input_size
    if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"{type(model).__name__} expects a batch of shape (N, 3, {size}, {size}), "
                         f"got {tuple(x.shape)}")


class GaussianDropout(nn.Module):
    """Keras' GaussianDropout: multiply by noise N(1, rate / (1 - rate)) while training."""

    def __init__(self, rate: float):
        super().__init__()
        self.std = (rate / (1.0 - rate)) ** 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0:
            return x
        return x * (1.0 + self.std * torch.randn_like(x))
