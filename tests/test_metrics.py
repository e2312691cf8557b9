import json
import time

import numpy as np
import pytest
import torch

from facial_expression import evaluation
from facial_expression.evaluation import (compute_metrics, measure_latencies, roc_curves,
                                         saved_latencies, timed)

CLASSES = ["a", "b", "c"]


def test_perfect_predictions_give_auc_one_and_a_diagonal_matrix():
    y = np.array([0, 1, 2, 2, 1, 0])
    probs = np.eye(3)[y] * 0.9 + 0.05
    m = compute_metrics(y, probs, CLASSES)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["cohen_kappa"] == 1.0
    assert m["macro_auc"] == 1.0 and m["micro_auc"] == 1.0
    assert np.array_equal(m["confusion_matrix"], np.diag([2, 2, 2]))


def test_hand_computed_case():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), pred] = 0.8
    m = compute_metrics(y, probs, CLASSES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert sum(map(sum, m["confusion_matrix"])) == len(y) == m["n"]
    # class b: precision 2/3, recall 1 -> F1 0.8; class a: 1/2, 1/2 -> 0.5; class c: 1, 1/2 -> 2/3
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["per_class"]["a"]["support"] == 2


def test_absent_class_has_no_auc_and_is_left_out_of_the_macro_mean():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1]])
    m = compute_metrics(y, probs, CLASSES)
    assert m["per_class"]["c"]["auc"] is None
    assert set(roc_curves(y, probs, CLASSES)) == {"a", "b"}
    assert m["macro_auc"] == pytest.approx(1.0)


class _Sleep(torch.nn.Module):
    """A model that takes a known time per pass."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.weight = seconds, torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        time.sleep(self.seconds)
        return x.mean() + self.weight


def test_latencies_of_several_models_are_measured_interleaved():
    """Each round times every model once, in turn: the order of calls alternates between them."""
    calls = []
    fast, slow = _Sleep(0.001), _Sleep(0.004)
    fast.register_forward_hook(lambda *a: calls.append("fast"))
    slow.register_forward_hook(lambda *a: calls.append("slow"))
    t = measure_latencies({"fast": (fast, 8), "slow": (slow, 16)}, "cpu", repeats=5, warmup=1)
    assert calls == ["fast", "slow"] * 6
    assert t["fast"]["repeats"] == t["slow"]["repeats"] == 5
    assert 1 <= t["fast"]["median_ms"] < t["slow"]["median_ms"] and t["slow"]["median_ms"] >= 4


def test_a_group_of_architectures_is_timed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    """`timed` times a group together once, one model per architecture, and reads it back while the same
    architectures are asked for with as many threads and no more passes; another architecture is timed again."""
    cache = tmp_path / "latency.json"
    fast, slow = _Sleep(0.001), _Sleep(0.004)
    fast.architecture, slow.architecture = "fast net", "slow net"
    calls = []
    slow.register_forward_hook(lambda *a: calls.append("slow"))
    first = timed({"a": (fast, 8), "b": (slow, 8), "b again": (slow, 8)}, cache, repeats=3, warmup=0)
    assert len(calls) == 3 and first["b"] == first["b again"] > first["a"] >= 1  # one architecture, timed once
    group = json.loads(cache.read_text())["groups"]
    assert group == [{"device": "cpu", "threads": torch.get_num_threads(), "repeats": 3,
                      "ms": {"fast net": first["a"], "slow net": first["b"]}}]

    def no_timing(*a):
        raise AssertionError("timed again")

    monkeypatch.setattr(evaluation, "measure_latencies", no_timing)
    assert timed({"x": (slow, 8), "y": (fast, 8)}, cache, repeats=3) == {"x": first["b"], "y": first["a"]}
    assert timed({"x": (slow, 8)}, cache, repeats=2) == {"x": first["b"]}  # a subset of the group, fewer passes
    assert saved_latencies(cache, {"x": "slow net"}, threads=None) == {"x": first["b"]}  # what the tables read
    assert saved_latencies(cache, {"x": "slow net"}, threads=torch.get_num_threads() + 1) is None
    other = _Sleep(0.002)
    other.architecture = "other net"
    for models, repeats in ({"x": (slow, 8)}, 4), ({"x": (slow, 8), "z": (other, 8)}, 3):  # more passes; a new net
        with pytest.raises(AssertionError, match="timed again"):
            timed(models, cache, repeats=repeats)

    monkeypatch.undo()
    again = timed({"x": (slow, 8), "z": (other, 8)}, cache, repeats=3, warmup=0)
    assert len(calls) == 6 and [set(g["ms"]) for g in json.loads(cache.read_text())["groups"]] == [
        {"fast net", "slow net"}, {"slow net", "other net"}]
    assert saved_latencies(cache, {"x": "slow net"}) == {"x": again["x"]}  # the latest group that timed it
