"""The report's analytic answers, checked numerically (questions 1, 3 and 4)."""

import pytest
import torch
import torch.nn.functional as F

from facial_expression.analytic import (OneDCNN, dilated_as_ordinary, dilated_output_size, equivariance_demo,
                                        one_d_closed_form_gradients, one_d_param_count)


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


@pytest.mark.parametrize("padding,pool,stride", [(0, 2, 2), (1, 2, 1), (2, 3, 3)])
def test_q3_other_readings_of_the_figure(padding, pool, stride):
    conv_len = 785 + 2 * padding - 1
    pool_len = (conv_len - pool) // stride + 1
    assert one_d_param_count(785, 8, padding, 2, pool, stride) == 3 + (pool_len + 1) * 8 + 9


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


def test_q4_receptive_field_of_one_kxk_conv_is_k():
    k = 5
    x = torch.zeros(1, 1, 11, 11, requires_grad=True)
    y = F.conv2d(x, torch.ones(1, 1, k, k))
    y[0, 0, 3, 3].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).sum().item()
    assert rows == k
