import numpy as np
import pytest

from facial_expression.evaluation import compute_metrics, roc_curves

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
