"""Rerunning over finished runs changes none of their numbers: a finished run's evaluation comes from the
predictions it saved, and latencies are read from the group that timed the same architectures."""

import json
import warnings

import numpy as np

from facial_expression import evaluation
from facial_expression.config import TrainConfig
from facial_expression.data import SkippedFilesWarning
from facial_expression.experiment import model_cards, run_experiment


def test_a_finished_run_is_not_evaluated_again(tiny_dataset, tmp_path, capsys):
    cfg = TrainConfig(model="light-vgg", input_size=32, epochs=1, batch_size=8, amp="off", tune_fraction=0.25,
                      data=str(tiny_dataset), out=str(tmp_path / "run"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        first = run_experiment(cfg, progress=False)
        saved = (tmp_path / "run" / "metrics.json").stat().st_mtime_ns
        again = run_experiment(cfg, progress=False)
        assert "was evaluated when it finished" in capsys.readouterr().out
        assert (tmp_path / "run" / "metrics.json").stat().st_mtime_ns == saved
        assert again.metrics == first.metrics and set(again.predictions) == {"train", "tune", "validation"}
        assert all(np.array_equal(again.predictions[s][0], first.predictions[s][0]) for s in first.predictions)
        (tmp_path / "run" / "metrics.json").unlink()  # evaluated again, and written again
        run_experiment(cfg, progress=False)
    assert (tmp_path / "run" / "metrics.json").exists()


def test_model_cards_keep_the_latencies_of_the_same_architectures(tmp_path, monkeypatch):
    runs = [(tmp_path / "none", "LightVGG", ("light-vgg", 3, {"input_size": 32}))]
    cache = tmp_path / "latency.json"
    measured = model_cards(runs, cache, smoke=True)[0]["cpu_latency_ms"]
    calls = []
    monkeypatch.setattr(evaluation, "measure_latencies",
                        lambda models, *a: calls.append(1) or {i: {"median_ms": 99.0} for i in models})
    renamed = [(tmp_path / "none", "LightVGG, renamed", runs[0][2])]  # a card's name is not what is timed
    assert model_cards(renamed, cache, smoke=True)[0]["cpu_latency_ms"] == measured and not calls
    other = [(tmp_path / "none", "LightVGG, 4 classes", ("light-vgg", 4, {"input_size": 32}))]
    assert model_cards(other, cache, smoke=True)[0]["cpu_latency_ms"] == 99.0 and calls  # another architecture
    assert len(json.loads(cache.read_text())["groups"]) == 2
