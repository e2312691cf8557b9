"""Question 1's equivariance demonstration and its figure (questions 3 and 4 are checked in tests/test_analytic.py)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from .plots import STYLE, TEXT_WIDTH


# ----------------------------------------------------------------------------------------- question 1
def shift2d(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate the last two dims by (dy, dx), filling with zeros (no wrap-around)."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def equivariance_demo(size: int = 48, kernel: int = 5, shift: tuple[int, int] = (3, 5), seed: int = 0) -> dict:
    """Shift an input and compare f(Tx) with T f(x) for a stride-1 conv and for conv + 2x2 max-pool.

    Returns the maps and the largest errors in the interior (away from the borders) and overall.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, size, size, generator=g)
    conv = nn.Conv2d(1, 4, kernel, padding=kernel // 2)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        conv.bias.zero_()
        dy, dx = shift

        def f(t):
            return torch.relu(conv(t))

        def pooled(t):
            return F.max_pool2d(f(t), 2)

        err_conv = (f(shift2d(x, dy, dx)) - shift2d(f(x), dy, dx)).abs().amax(1)[0]
        margin = kernel // 2 + max(abs(dy), abs(dx))
        interior = err_conv[margin:-margin, margin:-margin]
        # shifting by 2 moves the pooled map by exactly 1; shifting by 1 moves it by "half a cell"
        err_even = (pooled(shift2d(x, 2, 2)) - shift2d(pooled(x), 1, 1)).abs().amax(1)[0]
        odd = pooled(shift2d(x, 1, 1))
        err_odd = torch.minimum((odd - pooled(x)).abs(), (odd - shift2d(pooled(x), 1, 1)).abs()).amax(1)[0]
        scale = pooled(x).abs().max()
    m = margin // 2 + 1
    return {
        "input": x[0, 0], "shifted": shift2d(x, dy, dx)[0, 0], "error_conv": err_conv,
        "error_pool_even": err_even, "error_pool_odd": err_odd,
        "conv_interior_max_error": float(interior.max()), "conv_border_max_error": float(err_conv.max()),
        "pool_shift2_interior_max_error": float(err_even[m:-m, m:-m].max()),
        "pool_shift1_relative_error": float(err_odd[m:-m, m:-m].max() / scale),
    }


def equivariance_figure(demo: dict):
    """Input, shifted input, and |f(Tx) - T f(x)| for conv, and for conv + pool (shift 2 and 1)."""
    panels = [("input x", demo["input"]), ("T x\n(shift 3, 5)", demo["shifted"]),
              ("conv\n|f(Tx) − T f(x)|", demo["error_conv"]),
              ("conv + pool\nshift 2", demo["error_pool_even"]), ("conv + pool\nshift 1", demo["error_pool_odd"])]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(TEXT_WIDTH, 1.9))
        for ax, (title, img) in zip(axes, panels):
            im = ax.imshow(img.numpy(), cmap="magma")
            ax.set_title(title)
            ax.axis("off")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        fig.tight_layout(pad=0.2, w_pad=0.3)
    return fig
