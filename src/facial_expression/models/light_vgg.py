"""The light VGG of Hewitt & Gunes, "CNN-based Facial Affect Analysis on Mobile Devices" (2018).

5 blocks of 2 x conv3x3 (16, 32, 64, 128, 128 filters, same padding, ReLU) + maxpool 2x2, then
flatten (2048 at 128 x 128), 2 x dense 1024 with ReLU, and a dense output. The options are the
training details of the authors' Keras code and the changes of our ablation (a global-average-pooling
head, a fixed face mask); with all of them off this is exactly the paper's table.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from ..config import HEADS, check_choice
from ..errors import ConfigError
from .common import GaussianDropout, check_batch, kaiming_init

WIDTHS = (16, 32, 64, 128, 128)
DENSE = 1024


def face_mask(size: int, width: float = 0.42, height: float = 0.48, edge: float = 0.06) -> torch.Tensor:
    """A soft ellipse, 1 on the face and 0 in the corners: semi-axes `width` and `height` of the side,
    a linear fade of `edge` sides. It removes background and hair, a candidate fix where Grad-CAM maps put more
    mass on the border ring than its share of the area (43.75 %, what a uniform map gives)."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    r = torch.sqrt((x / width) ** 2 + (y / height) ** 2)  # 1 on the ellipse
    return ((1 - r) / edge * min(width, height) + 1).clamp(0, 1).view(1, 1, size, size)


def _conv(c_in: int, c_out: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    return layers + [nn.ReLU()]


def _dense(d_in: int, d_out: int, batch_norm: bool, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(d_in, d_out, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(d_out))
    layers.append(nn.ReLU())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


class LightVGG(nn.Module):
    """The paper's 128 x 128 VGG variant, about 3.7M parameters."""

    def __init__(self, num_classes: int, input_size: int = 128, batch_norm: bool = False,
                 dropout: float = 0.0, gaussian_dropout: float = 0.0, head: str = "dense",
                 mask: bool = False):
        super().__init__()
        if input_size % 32:
            raise ConfigError(f"LightVGG needs an input size divisible by 32 (5 pools), got {input_size}")
        check_choice("head", head, HEADS)
        self.input_size = input_size
        # a buffer, so it moves with the model and is saved in the state dict; no parameters
        self.register_buffer("mask", face_mask(input_size) if mask else None)
        blocks, c_in = [], 3
        for width in WIDTHS:
            block = _conv(c_in, width, batch_norm) + _conv(width, width, batch_norm) + [nn.MaxPool2d(2)]
            if gaussian_dropout > 0:
                block.append(GaussianDropout(gaussian_dropout))
            blocks.append(nn.Sequential(*block))
            c_in = width
        self.features = nn.Sequential(*blocks)
        flat = WIDTHS[-1] * (input_size // 32) ** 2
        if head == "dense":  # the paper: flatten, 2 x dense 1024, output
            self.classifier = nn.Sequential(
                nn.Flatten(),
                *_dense(flat, DENSE, batch_norm, dropout),
                *_dense(DENSE, DENSE, batch_norm, dropout),
                nn.Linear(DENSE, num_classes),
            )
        else:  # global average pooling, then the output layer: about 3.4M parameters fewer
            self.classifier = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                *([nn.Dropout(dropout)] if dropout > 0 else []),
                nn.Linear(WIDTHS[-1], num_classes),
            )
        kaiming_init(self)  # with PyTorch's default init the plain network stayed at chance

    @property
    def cam_layer(self) -> nn.Module:
        """The last ReLU of block 5: an 8 x 8 map at 128 x 128 input."""
        return self.features[-1][[i for i, m in enumerate(self.features[-1]) if isinstance(m, nn.ReLU)][-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(self, x)
        if self.mask is not None:
            x = x * self.mask
        return self.classifier(self.features(x))


OURS = "ours (PyTorch layers)"  # the architecture table's column of our layers


def architecture_table(model: LightVGG):
    """The paper's layers next to ours: output shape and parameter count per block."""
    rows, size = [], model.input_size
    for i, width in enumerate(WIDTHS):
        size //= 2
        block = model.features[i]
        convs = [m for m in block if isinstance(m, nn.Conv2d)]
        norm = ", BatchNorm2d" if any(isinstance(m, nn.BatchNorm2d) for m in block) else ""
        rows.append({"block": f"conv block {i + 1}",
                     "paper (Hewitt & Gunes 2018)": f"2 × conv 3×3×{width}, maxpool 2×2",
                     OURS: f"{len(convs)} × (Conv2d 3×3{norm}, ReLU), MaxPool2d",
                     "output": f"{size}×{size}×{width}",  # H×W×C, as the assignment writes it
                     "parameters": sum(p.numel() for p in block.parameters())})
    dense = [m for m in model.classifier if isinstance(m, nn.Linear)]
    for j, lin in enumerate(dense):
        last = j == len(dense) - 1
        rows.append({"block": "output" if last else f"dense {j + 1}",
                     "paper (Hewitt & Gunes 2018)": "dense 8 (softmax)" if last else "dense 1024, ReLU",
                     OURS: f"Linear({lin.in_features}, {lin.out_features})" + ("" if last else ", ReLU"),
                     "output": str(lin.out_features),
                     "parameters": sum(p.numel() for p in lin.parameters())})
    other = sum(p.numel() for p in model.classifier.parameters()) - sum(r["parameters"] for r in rows[len(WIDTHS):])
    if other:
        rows.append({"block": "batch-norm (dense)", "paper (Hewitt & Gunes 2018)": "-", OURS: "BatchNorm1d",
                     "output": "", "parameters": other})
    table = pd.DataFrame(rows).set_index("block")
    table.loc["total"] = ["", "", "", int(table["parameters"].sum())]
    return table
