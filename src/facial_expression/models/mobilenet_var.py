"""The MobileNet variant of Hewitt & Gunes, "CNN-based Facial Affect Analysis on Mobile Devices" (2018).

Translated from the authors' Keras code, repository friggog/Emosic:

- M_MOB/C_ARCH.json at commit f84c23633bbea424b8a2f18a5298ff770423213b, the exported classifier
  (Keras 2.1.2): every layer, filter count, kernel size, stride, padding, use_bias, the 128 x 128 x 3 input
  and the 8-way softmax output.
- CNN/net.py at commit 2e5e3eec3e0d6b49c082c5e9ffeec119fe3c3883, `mobilenet_style_model` (alpha = 1) and
  `depth_conv_block`: the same layers, plus a Dropout(`dropout`, default 0) after the global pooling.

It is MobileNet v1 (Howard et al. 2017) at width 1 with plain ReLU and no bias anywhere but the output:

    Conv2D 3x3, 32 filters, stride 2, 'same' -> BatchNormalization -> ReLU            128 -> 64
    13 x [DepthwiseConv2D 3x3, stride s, 'same' -> BN -> ReLU -> Conv2D 1x1, d filters -> BN -> ReLU]
         (d, s) = (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), 5 x (512, 1),
                  (1024, 2), (1024, 1)                                                 64 -> 4
    GlobalAveragePooling2D (1024) -> Dense num_classes (with bias); softmax in Keras, logits here

Keras counts 3,237,064 parameters for 8 classes (3,215,176 trainable + 21,888 non-trainable BN moving
statistics); here the trainable ones are parameters and the moving statistics are BN buffers.

What had to be interpreted:

- 'same' padding with stride 2: TensorFlow pads asymmetrically, (k - s) rows and columns split with the
  extra one after, i.e. (0, 1) for a 3x3 kernel on an even side; PyTorch's padding=1 would pad (1, 1) and
  shift every sampled position by one pixel. `Conv2dSame` pads as TensorFlow does, from the actual input
  side. Stride-1 3x3 and 1x1 convolutions pad symmetrically in both frameworks.
- DepthwiseConv2D (depth_multiplier 1) is Conv2d(c, c, 3, groups=c): 9 weights per channel.
- Dropout: net.py's `train` removes Dropout layers before writing C_ARCH.json, and the net.py default is
  0, so there is none by default (`dropout=0.0`); a rate > 0 adds one after the pooling, as net.py does.
- Keras BatchNormalization is epsilon 1e-3 and momentum 0.99, i.e. PyTorch eps=1e-3, momentum=0.01.
- Initialisation: Keras used Glorot uniform; here Kaiming (fan_out for convolutions, as torchvision's
  MobileNets, and fan_in for the dense layer), as LightVGG, the project's convention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .alexnet_var import KERAS_BN
from .common import check_batch, kaiming_init

STEM = 32
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))  # (pointwise filters, stride)


class Conv2dSame(nn.Conv2d):
    """A Conv2d with Keras/TensorFlow 'same' padding: output side ceil(side / stride), padded like TF.

    Stride 1 with an odd kernel is the symmetric k // 2 of nn.Conv2d; otherwise the total padding
    max((ceil(n / s) - 1) * s + k - n, 0) is split with the odd one after (bottom and right).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True):
        self._dynamic = stride != 1 or kernel_size % 2 == 0
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=0 if self._dynamic else kernel_size // 2, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._dynamic:
            pads = []
            for n, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
                total = max((math.ceil(n / s) - 1) * s + k - n, 0)
                pads += [total // 2, total - total // 2]  # F.pad: (left, right, top, bottom)
            x = F.pad(x, pads)
        return super().forward(x)


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [Conv2dSame(c_in, c_out, kernel, stride, groups=groups, bias=False),
            nn.BatchNorm2d(c_out, **KERAS_BN), nn.ReLU()]


class MobileNetVar(nn.Module):
    """The paper's 128 x 128 MobileNet variant (MobileNet v1, width 1), about 3.2M parameters."""

    def __init__(self, num_classes: int, input_size: int = 128, dropout: float = 0.0):
        super().__init__()
        if input_size < 32:
            raise ConfigError(f"MobileNetVar needs an input size of at least 32 (5 strides of 2), got {input_size}")
        self.input_size = input_size
        blocks, c_in = [nn.Sequential(*_conv_bn_relu(3, STEM, 3, 2))], STEM
        for width, stride in BLOCKS:
            blocks.append(nn.Sequential(*_conv_bn_relu(c_in, c_in, 3, stride, groups=c_in),  # depthwise
                                        *_conv_bn_relu(c_in, width, 1)))  # pointwise
            c_in = width
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            *([nn.Dropout(dropout)] if dropout > 0 else []),
            nn.Linear(c_in, num_classes),
        )
        kaiming_init(self)

    @property
    def cam_layer(self) -> nn.Module:
        """The last ReLU (after the last pointwise convolution): a 4 x 4 map at 128 x 128 input."""
        return self.features[-1][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(self, x)
        return self.classifier(self.features(x))
