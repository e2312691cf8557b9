"""One rule for "is this run finished?" (runs.Run): every reader names or resumes an interrupted run, and P5_d never
explains an interrupted part (c) run."""

import json

import pytest
from test_checkpoint import interrupt_at_call

from facial_expression.study import same_data_runs
from facial_expression.config import SAMPLE_RESULTS_DIR, light_vgg_config
from facial_expression.errors import FERError
from facial_expression.experiment import model_cards, run_experiment, trained_model
from facial_expression.runs import Run

FP = {"classes": ["a", "b"], "files_sha1": "1", "files": {"train": 2}, "name": "course"}


def write_run(folder, epochs_run=2, epochs=2, interrupted=False, stopped_early=False, metrics=True, **extra):
    """A run folder as fit and run_experiment leave it: config.json, history.json and (where evaluated) metrics.json."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"epochs": epochs, "seed": 0, "dataset": FP, **extra}))
    (folder / "history.json").write_text(json.dumps({"epochs": [{}] * epochs_run, "interrupted": interrupted,
                                                     "stopped_early": stopped_early}))
    if metrics:
        (folder / "metrics.json").write_text(json.dumps({"epochs_run": epochs_run, "interrupted": interrupted,
                                                         "dataset": FP, **extra}))
    return folder


def test_a_run_is_finished_interrupted_or_not_run_by_one_rule(tmp_path):
    assert Run(tmp_path / "nothing").state == "not run"
    assert Run(write_run(tmp_path / "done")).finished
    assert Run(write_run(tmp_path / "early", epochs_run=1, stopped_early=True)).finished
    assert Run(write_run(tmp_path / "smoke", max_batches=2)).smoke
    for name, kw in {"ctrl_c": {"epochs_run": 1, "interrupted": True},  # evaluated at its best epoch so far
                     "killed": {"epochs_run": 1, "metrics": False},  # no record of how it ended
                     "not_evaluated": {"metrics": False}}.items():
        run = Run(write_run(tmp_path / name, **kw))
        assert run.state == "interrupted" and run.result is None, name
    assert Run(tmp_path / "not_evaluated").trained and not Run(tmp_path / "killed").trained
    # the ablation's tables leave an interrupted run out, and say so
    assert same_data_runs([tmp_path / "done", tmp_path / "ctrl_c"]) == [tmp_path / "done"]
    card = model_cards([(tmp_path / "ctrl_c", "LightVGG", None), (tmp_path / "nothing", "VGG16", None)],
                       tmp_path / "latency.json")
    assert [c["status"] for c in card] == ["interrupted", "not trained yet"]


def test_the_committed_example_runs_read_finished():
    runs = sorted({p.parent for p in SAMPLE_RESULTS_DIR.rglob("config.json")})
    assert len(runs) > 20 and all(Run(r).finished and not Run(r).smoke for r in runs)


def test_p5_d_names_and_resumes_an_interrupted_part_c_run_and_never_explains_it(tiny_dataset, tmp_path, capsys,
                                                                               monkeypatch):
    part_c = light_vgg_config(tiny_dataset, tmp_path / "results", epochs=2, batch_size=8, input_size=32,
                              max_batches=1, amp="off")
    out = tmp_path / "results" / "light_vgg"
    interrupt_at_call(monkeypatch, 2)  # P5_c: epoch 1, then Ctrl-C in epoch 2; its best epoch so far is evaluated
    assert run_experiment(part_c, progress=False).history.interrupted
    assert (out / "metrics.json").exists() and (out / "best.pt").exists() and Run(out).state == "interrupted"

    monkeypatch.undo()
    calls = interrupt_at_call(monkeypatch, 0)  # count the epochs P5_d trains
    model, ckpt = trained_model(part_c, "P5_c's LightVGG", progress=False)
    said = capsys.readouterr().out
    assert "P5_c's LightVGG in" in said and "was interrupted" in said and "using P5_c's LightVGG" not in said
    assert calls == ["epoch 2/2"]  # resumed from last.pt, not trained again
    assert Run(out).finished and json.loads((out / "metrics.json").read_text())["epochs_run"] == 2
    assert ckpt["epoch"] == Run(out).metrics["best_epoch"]

    monkeypatch.undo()
    again = light_vgg_config(tiny_dataset, tmp_path / "again", epochs=2, batch_size=8, input_size=32,
                             max_batches=1, amp="off")
    interrupt_at_call(monkeypatch, 2)
    run_experiment(again, progress=False)
    monkeypatch.undo()
    interrupt_at_call(monkeypatch, 1)  # Ctrl-C while P5_d resumes it: refused, not explained
    with pytest.raises(FERError, match="was interrupted again, and an unfinished model is not explained"):
        trained_model(again, "P5_c's LightVGG", progress=False)
