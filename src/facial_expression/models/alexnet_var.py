"""The AlexNet variant of Hewitt & Gunes, "CNN-based Facial Affect Analysis on Mobile Devices" (2018).

Translated from the authors' Keras code, repository friggog/Emosic:

- M_ALEX/C_ARCH.json at commit f84c23633bbea424b8a2f18a5298ff770423213b, the exported classifier
  (Keras 2.1.2): every layer, filter count, kernel size, stride, padding, use_bias, the dense widths, the
  GaussianDropout rate, the 128 x 128 x 3 input and the 8-way softmax output.
- CNN/net.py at commit 2e5e3eec3e0d6b49c082c5e9ffeec119fe3c3883
  (and net.py at 914846862b1bb91d7c655f4e4c851304a9861dd3),
  `alexnet_style_model`: the same layers, plus a Dropout(0.5) after each hidden dense block.

The layers (channels_last in Keras, channels_first here), at 128 x 128:

    5 conv blocks: Conv2D (9x9 16, 7x7 32, 5x5 64, 3x3 128, 3x3 128 filters; stride 1; 'same'; no bias)
                   -> BatchNormalization -> ReLU -> MaxPooling2D 2x2 'same' -> GaussianDropout(0.2)
                   128 -> 64 -> 32 -> 16 -> 8 -> 4
    Flatten (128 x 4 x 4 = 2048)
    2 x [Dense 1024 (no bias) -> BatchNormalization -> ReLU -> Dropout(0.5)]
    Dense num_classes (with bias); softmax in Keras, logits here (CrossEntropyLoss applies it)

Keras counts 3,464,952 parameters for 8 classes (3,460,120 trainable + 4,832 non-trainable BN moving
statistics); here the trainable ones are parameters and the moving statistics are BN buffers.

What had to be interpreted:

- Dropout(0.5): net.py's `train` removes every Dropout layer before it writes C_ARCH.json, so the JSON has
  none; the model it trained had them (net.py). They are on by default here (`dropout=0.5`); they have no
  parameters, so the counts are the JSON's either way.
- Keras BatchNormalization is epsilon 1e-3 and momentum 0.99 (moving = 0.99 moving + 0.01 batch), i.e.
  PyTorch eps=1e-3, momentum=0.01; PyTorch's defaults (1e-5, 0.1) differ. The Keras values are used.
- 'same' max pooling: no padding for an even side (all of them at 128); for an odd side Keras pads one at
  the end, which is what MaxPool2d(ceil_mode=True) does. Stride-1 'same' convolutions with odd kernels
  pad k // 2 on each side in both frameworks.
- Initialisation: Keras used Glorot uniform; here Kaiming (fan_out for convolutions, fan_in for dense),
  as LightVGG, the project's convention.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .common import GaussianDropout, check_batch, kaiming_init

CONVS = ((16, 9), (32, 7), (64, 5), (128, 3), (128, 3))  # (filters, kernel) of the 5 blocks
DENSE = 1024
KERAS_BN = {"eps": 1e-3, "momentum": 0.01}  # Keras BatchNormalization(epsilon=1e-3, momentum=0.99)


def _pooled(size: int, times: int) -> int:
    """The side after `times` 2x2 'same' poolings: ceil(size / 2) each time."""
    for _ in range(times):
        size = -(-size // 2)
    return size


class AlexNetVar(nn.Module):
    """The paper's 128 x 128 AlexNet variant, about 3.46M parameters."""

    def __init__(self, num_classes: int, input_size: int = 128, gaussian_dropout: float = 0.2,
                 dropout: float = 0.5):
        super().__init__()
        if input_size < 32:
            raise ConfigError(f"AlexNetVar needs an input size of at least 32 (5 pools), got {input_size}")
        self.input_size = input_size
        blocks, c_in = [], 3
        for width, k in CONVS:
            block = [nn.Conv2d(c_in, width, k, padding=k // 2, bias=False), nn.BatchNorm2d(width, **KERAS_BN),
                     nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            if gaussian_dropout > 0:
                block.append(GaussianDropout(gaussian_dropout))
            blocks.append(nn.Sequential(*block))
            c_in = width
        self.features = nn.Sequential(*blocks)
        flat = CONVS[-1][0] * _pooled(input_size, len(CONVS)) ** 2
        dense = []
        for d_in in (flat, DENSE):
            dense += [nn.Linear(d_in, DENSE, bias=False), nn.BatchNorm1d(DENSE, **KERAS_BN), nn.ReLU()]
            if dropout > 0:
                dense.append(nn.Dropout(dropout))
        self.classifier = nn.Sequential(nn.Flatten(), *dense, nn.Linear(DENSE, num_classes))
        kaiming_init(self)

    @property
    def cam_layer(self) -> nn.Module:
        """The ReLU of block 5, before its pooling: an 8 x 8 map at 128 x 128 input."""
        return next(m for m in self.features[-1] if isinstance(m, nn.ReLU))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(self, x)
        return self.classifier(self.features(x))
