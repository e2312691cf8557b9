"""The report's analytic answers, checked numerically (questions 1, 3 and 4)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facial_expression.analytic import equivariance_demo


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


def test_q1_stride1_conv_is_equivariant_away_from_the_borders():
    demo = equivariance_demo()
    assert demo["conv_interior_max_error"] < 1e-5
    assert demo["conv_border_max_error"] > 1e-2  # zero padding breaks it at the borders
    assert demo["pool_shift2_interior_max_error"] < 1e-5  # a shift by the pool stride survives
    assert demo["pool_shift1_relative_error"] > 0.05  # a shift by 1 is not a shift of the pooled map


@pytest.mark.parametrize("m", [1, 4, 16])
def test_q3_parameter_count_matches_the_model(m):
    model = OneDCNN(785, m)
    assert sum(p.numel() for p in model.parameters()) == one_d_param_count(785, m) == 395 * m + 4
    assert model.pool_len == 393


def torch_one_d_cnn(n_inputs, m, padding, kernel, pool, stride):
    """Question 3's network under one reading of the figure, built from PyTorch layers (FC1's width is what
    PyTorch's pooling actually outputs, not a formula)."""
    features = nn.Sequential(nn.Conv1d(1, 1, kernel, padding=padding), nn.ReLU(), nn.AvgPool1d(pool, stride),
                             nn.Flatten())
    pool_len = features(torch.zeros(1, 1, n_inputs)).shape[1]
    return nn.Sequential(features, nn.Linear(pool_len, m), nn.ReLU(), nn.Linear(m, 1), nn.Sigmoid()), pool_len


@pytest.mark.parametrize("padding,pool,stride,per_m", [(1, 2, 2, 395), (0, 2, 2, 394), (1, 2, 1, 787),
                                                       (0, 2, 1, 785), (2, 3, 3, 264), (1, 3, 2, 394)])
@pytest.mark.parametrize("m", [1, 8, 100])
def test_q3_other_readings_of_the_figure(padding, pool, stride, per_m, m):
    model, pool_len = torch_one_d_cnn(785, m, padding, 2, pool, stride)
    counted = sum(p.numel() for p in model.parameters())
    assert one_d_param_count(785, m, padding, 2, pool, stride) == counted
    assert counted == per_m * m + 4  # the report's totals: 395H+4, 394H+4 (no or one-sided padding), 787H+4 (stride 1)
    assert model(torch.randn(3, 1, 785)).shape == (3, 1)
    if pool == stride:  # the project's own network agrees with PyTorch's layers too
        ours = OneDCNN(785, m, padding, pool)
        assert ours.pool_len == pool_len and sum(p.numel() for p in ours.parameters()) == counted
        assert ours(torch.randn(3, 785)).shape == (3,)


@pytest.mark.parametrize("kernel", [1, 3, 4])
def test_q3_param_count_for_other_kernel_widths(kernel):
    model, _ = torch_one_d_cnn(100, 5, 1, kernel, 2, 2)
    assert one_d_param_count(100, 5, 1, kernel, 2, 2) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("y", [0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_q3_closed_form_gradients_equal_autograd(y, seed):
    torch.manual_seed(seed)
    model = OneDCNN(785, 12).double()
    with torch.no_grad():
        model.conv.bias.fill_(0.1)  # keep most ReLUs active so that every path is exercised
    x = torch.randn(1, 785, dtype=torch.float64)
    z = model(x)
    cost = F.binary_cross_entropy(z, torch.tensor([y], dtype=torch.float64))
    cost.backward()
    closed = one_d_closed_form_gradients(model, x, y)
    torch.testing.assert_close(closed["W_C"], model.conv.weight.grad.flatten(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(closed["W_A"], model.fc1.weight.grad, rtol=1e-10, atol=1e-12)
    assert closed["W_A"].abs().sum() > 0


@pytest.mark.parametrize("m,n,f,d", [(20, 20, 3, 2), (17, 23, 3, 3), (30, 12, 2, 4), (15, 15, 5, 1), (40, 31, 4, 5)])
def test_q4_dilated_output_size_and_equivalence(m, n, f, d):
    torch.manual_seed(m * n + f + d)
    x = torch.randn(1, 1, m, n, dtype=torch.float64)
    k = torch.randn(f, f, dtype=torch.float64)
    dilated = F.conv2d(x, k.view(1, 1, f, f), dilation=d)
    assert tuple(dilated.shape[-2:]) == dilated_output_size(m, n, f, d)
    trimmed = dilated_as_ordinary(k, d)
    assert trimmed.shape == (d * (f - 1) + 1,) * 2
    torch.testing.assert_close(F.conv2d(x, trimmed.view(1, 1, *trimmed.shape)), dilated)
    full = dilated_as_ordinary(k, d, trim=False)  # DF x DF: its trailing zeros need D-1 extra rows/cols
    assert full.shape == (d * f, d * f)
    padded = F.pad(x, (0, d - 1, 0, d - 1))
    torch.testing.assert_close(F.conv2d(padded, full.view(1, 1, d * f, d * f)), dilated)
    assert F.conv2d(x, full.view(1, 1, d * f, d * f)).shape[-1] == n - d * f + 1


def input_gradient(layers, size=41):
    """Autograd's gradient of one central output unit of a stack of stride-1, unpadded convolutions with respect to
    the input: nonzero exactly where that unit reads. `layers` are (K, D) pairs or ready K x K kernels."""
    torch.manual_seed(0)
    x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    y = x
    for layer in layers:
        if isinstance(layer, torch.Tensor):
            y = F.conv2d(y, layer.view(1, 1, *layer.shape))
        else:  # positive weights: no gradient can cancel out by chance
            k, d = layer
            y = F.conv2d(y, torch.rand(1, 1, k, k, dtype=torch.float64) + 0.1, dilation=d)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    return x.grad[0, 0]


def extent(grad):
    """Height and width of the nonzero region of a gradient map."""
    rows, cols = torch.nonzero(grad.abs().sum(1)).flatten(), torch.nonzero(grad.abs().sum(0)).flatten()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def receptive_field_from_output_sizes(layers, size=41):
    """The receptive field the project's `dilated_output_size` implies: every output unit of a stride-1 stack reads
    a window of the same size, so input size - output size + 1."""
    m = n = size
    for k, d in layers:
        m, n = dilated_output_size(m, n, k, d)
    return size - m + 1, size - n + 1


@pytest.mark.parametrize("layers", [[(5, 1)], [(3, 1)] * 4, [(3, 2)], [(2, 4)], [(3, 1), (3, 2), (3, 4)],
                                    [(5, 3), (2, 1)]])
def test_q4_receptive_field_of_a_conv_stack(layers):
    rf = extent(input_gradient(layers))
    assert rf == receptive_field_from_output_sizes(layers)
    assert rf[0] == rf[1] == 1 + sum(d * (k - 1) for k, d in layers)  # q4.tex: L(K-1)+1, and D(K-1)+1 dilated


@pytest.mark.parametrize("k,d", [(3, 2), (2, 4), (5, 3)])
def test_q4_dilated_kernel_reads_the_same_pixels_as_the_kron_kernel(k, d):
    torch.manual_seed(k * d)
    kernel = torch.rand(k, k, dtype=torch.float64) + 0.1
    ordinary = dilated_as_ordinary(kernel, d)
    x = torch.zeros(1, 1, 41, 41, dtype=torch.float64, requires_grad=True)
    F.conv2d(x, kernel.view(1, 1, k, k), dilation=d)[0, 0, 10, 10].backward()
    dilated_grad, x.grad = x.grad.clone(), None
    grad = input_gradient([ordinary])
    # output unit (10, 10) reads the input from (10, 10) on: its gradient there holds the taps
    taps = dilated_grad[0, 0][10:10 + ordinary.shape[0], 10:10 + ordinary.shape[1]]
    torch.testing.assert_close(taps, ordinary)  # the dilated conv's taps are K' = K kron A, trimmed
    assert int((dilated_grad != 0).sum()) == k * k == int((grad != 0).sum())
    assert extent(grad) == tuple(ordinary.shape) == (d * (k - 1) + 1,) * 2
