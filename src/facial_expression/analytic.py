"""Numerical checks behind the report's analytic answers (questions 1, 3 and 4)."""

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


# ----------------------------------------------------------------------------------------- question 3
class OneDCNN(nn.Module):
    """Question 3's network: pad 1, CONV1 (1x2, ReLU), AVGPOOL (2, stride 2), FC1 (M, ReLU), sigmoid unit."""

    def __init__(self, n_inputs: int = 785, m: int = 16, padding: int = 1, pool: int = 2):
        super().__init__()
        self.padding, self.pool = padding, pool
        self.conv = nn.Conv1d(1, 1, 2, padding=padding)
        conv_len = n_inputs + 2 * padding - 2 + 1
        self.pool_len = (conv_len - pool) // pool + 1
        self.fc1 = nn.Linear(self.pool_len, m)
        self.out = nn.Linear(m, 1)

    def forward(self, x: torch.Tensor, keep: dict | None = None) -> torch.Tensor:
        c = torch.relu(self.conv(x.view(-1, 1, x.shape[-1])))
        a = F.avg_pool1d(c, self.pool, self.pool).flatten(1)
        f = torch.relu(self.fc1(a))
        z = torch.sigmoid(self.out(f)).squeeze(1)
        if keep is not None:
            keep.update(c=c.flatten(1), a=a, f=f, z=z)
        return z


def one_d_param_count(n_inputs: int = 785, m: int = 16, padding: int = 1, kernel: int = 2, pool: int = 2,
                      stride: int = 2) -> int:
    """Closed form: (k + 1) + (L_pool + 1) M + (M + 1), L_pool = floor((N + 2p - k + 1 - P) / S) + 1."""
    conv_len = n_inputs + 2 * padding - kernel + 1
    pool_len = (conv_len - pool) // stride + 1
    return (kernel + 1) + (pool_len + 1) * m + (m + 1)


def one_d_closed_form_gradients(model: OneDCNN, x: torch.Tensor, y: float) -> dict[str, torch.Tensor]:
    """dCost/dW^C and dCost/dW^A of one sample from the report's formulas (binary cross-entropy)."""
    keep: dict = {}
    with torch.no_grad():
        model(x, keep)
        c, a, f, z = keep["c"][0], keep["a"][0], keep["f"][0], keep["z"][0]
        delta_z = z - y                                           # sigmoid + cross-entropy
        delta_f = delta_z * model.out.weight[0] * (f > 0)         # through W^Z and FC1's ReLU
        grad_wa = torch.outer(delta_f, a)                         # dC/dW^A_ji = delta_f_j a_i
        delta_a = model.fc1.weight.T @ delta_f                    # dC/da_i
        delta_c = torch.zeros_like(c)
        delta_c[: 2 * len(a)] = delta_a.repeat_interleave(2) / 2  # average pool of 2: 1/2 to each input
        delta_s = delta_c * (c > 0)                               # CONV1's ReLU
        xp = F.pad(x.flatten(), (model.padding, model.padding))
        grad_wc = torch.stack([(delta_s * xp[k:k + len(c)]).sum() for k in range(2)])
    return {"W_C": grad_wc, "W_A": grad_wa}


# ----------------------------------------------------------------------------------------- question 4
def dilated_output_size(m: int, n: int, f: int, d: int) -> tuple[int, int]:
    """Output of an F x F kernel with dilation D on an M x N input, stride 1, no padding."""
    return m - d * f + d, n - d * f + d


def dilation_selector(d: int) -> torch.Tensor:
    """A (D x D) with a single 1 in the top-left corner, so that kron(K, A) spreads K's taps D apart."""
    a = torch.zeros(d, d, dtype=torch.float64)
    a[0, 0] = 1
    return a


def dilated_as_ordinary(kernel: torch.Tensor, d: int, trim: bool = True) -> torch.Tensor:
    """K' = K kron A (DF x DF); with `trim`, its D-1 trailing zero rows and columns are removed."""
    k = torch.kron(kernel.double(), dilation_selector(d))
    return k[: k.shape[0] - (d - 1), : k.shape[1] - (d - 1)] if trim else k
