import copy
import json
from pathlib import Path

import pytest
import torch

from facial_expression import training
from facial_expression.checkpoint import (VERSION, TrainingState, load_checkpoint, read_checkpoint, resume_problem,
                                         upgrade)
from facial_expression.config import SAMPLE_RESULTS_DIR, TrainConfig
from facial_expression.data.fingerprint import dataset_fingerprint
from facial_expression.errors import FERError
from facial_expression.training import fit
from test_training import same_weights, tiny_run


def interrupt_at_call(monkeypatch, n: int) -> list[str]:
    """Make train_one_epoch raise KeyboardInterrupt on its n-th call; returns the epoch labels it was called with."""
    calls, original = [], training.train_one_epoch

    def train(*a, **k):
        calls.append(k["desc"])
        if len(calls) == n:
            raise KeyboardInterrupt
        return original(*a, **k)
    monkeypatch.setattr(training, "train_one_epoch", train)
    return calls


def as_version_1(path: Path) -> None:
    """Rewrite a checkpoint as the code before format version 2 wrote it: no version, epochs from 0."""
    ckpt = torch.load(path, weights_only=False)
    del ckpt["version"]
    ckpt["epoch"] -= 1
    for key in ("ema",):  # version 1 knew no EMA
        ckpt.pop(key, None)
    ckpt["config"].pop("ema")
    torch.save(ckpt, path)


def test_resume_refuses_changed_epochs_data_classes_or_settings(tiny_dataset, tmp_path):
    cfg, splits, model, opts = tiny_run(tiny_dataset)
    fp = dataset_fingerprint(splits.layout, splits)
    fit(model, splits, cfg, tmp_path / "run", opts, progress=False, dataset=fp)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"]["files_sha1"] == fp["files_sha1"]
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=False)["dataset"] == fp

    longer = TrainConfig(**{**cfg.to_dict(), "epochs": 3})
    with pytest.raises(FERError, match="2-epoch schedule and 3 epochs were asked for.*--no-resume"):
        fit(model, splits, longer, tmp_path / "run", opts, progress=False, dataset=fp)
    other = dict(fp, files_sha1="0" * 16)
    with pytest.raises(FERError, match="trained on other data: the image files differ"):
        fit(model, splits, cfg, tmp_path / "run", opts, progress=False, dataset=other)
    with_ema = TrainConfig(**{**cfg.to_dict(), "ema": 0.99, "lr": 0.1})
    with pytest.raises(FERError, match=r"other settings \(ema, lr\)"):
        fit(model, splits, with_ema, tmp_path / "run", opts, progress=False, dataset=fp)
    state = read_checkpoint(tmp_path / "run" / "last.pt")
    assert "classes" in resume_problem(state, cfg, ["a", "b", "c", "d"], fp)
    patient = TrainConfig(**{**cfg.to_dict(), "patience": 3, "eval_batch_size": 7})
    assert resume_problem(state, patient, splits.classes, fp) is None  # these may change on resume
    assert resume_problem(state, cfg, splits.classes, fp) is None  # same run: resumes (nothing left)


def test_resume_continues_from_the_next_epoch_with_the_same_weights(tiny_dataset, tmp_path, monkeypatch):
    cfg, splits, model, opts = tiny_run(tiny_dataset, ema=0.9)
    straight = fit(model, splits, cfg, tmp_path / "straight", opts, progress=False)

    interrupt_at_call(monkeypatch, 2)  # epoch 1, then "Ctrl-C" in epoch 2
    _, _, model1, _ = tiny_run(tiny_dataset, ema=0.9)
    h = fit(model1, splits, cfg, tmp_path / "resumed", opts, progress=False)
    assert h.interrupted and [r["epoch"] for r in h.epochs] == [1]
    assert json.loads((tmp_path / "resumed" / "history.json").read_text())["interrupted"] is True
    assert read_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    assert not (tmp_path / "resumed" / "ema.pt").exists()  # written when training ends, not when interrupted

    monkeypatch.undo()
    calls = interrupt_at_call(monkeypatch, 0)  # count the epochs run, interrupt none
    _, _, model2, _ = tiny_run(tiny_dataset, ema=0.9)
    h2 = fit(model2, splits, cfg, tmp_path / "resumed", opts, progress=False)
    assert calls == ["epoch 2/2"] and not h2.interrupted
    assert [r["epoch"] for r in h2.epochs] == [1, 2]
    assert h2.best_epoch == straight.best_epoch == read_checkpoint(tmp_path / "resumed" / "best.pt")["epoch"]
    for (n, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), n
    ema_straight, _ = load_checkpoint(tmp_path / "straight" / "ema.pt")
    ema_resumed, _ = load_checkpoint(tmp_path / "resumed" / "ema.pt")
    for (n, a), b in zip(ema_straight.state_dict().items(), ema_resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), n


def test_a_resumed_optimizer_keeps_this_machines_adam_kernel():
    """last.pt of the per-tensor loop (torch's CPU default, or an older commit) resumes with the fused kernel
    that make_optimizer chose here, its step count where that kernel keeps it; the next step is the loop's."""
    torch.manual_seed(0)
    model, x = torch.nn.Linear(4, 3), torch.randn(8, 4)
    saved_opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(2):
        saved_opt.zero_grad()
        model(x).square().mean().backward()
        saved_opt.step()
    saved = copy.deepcopy({"state_dict": model.state_dict(), "optimizer": saved_opt.state_dict(),
                           "history": training.History().__dict__, "epoch": 1})  # as read from last.pt
    twin = torch.nn.Linear(4, 3)
    state = TrainingState(twin, training.make_optimizer(twin, TrainConfig(lr=0.1)), history=training.History())
    state.restore(saved)
    assert state.optimizer.param_groups[0]["fused"] is training._fused_adam(twin)
    for opt, m in ((saved_opt, model), (state.optimizer, twin)):
        opt.zero_grad()
        m(x).square().mean().backward()
        opt.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model.parameters(), twin.parameters()))


def test_a_zero_based_version_1_checkpoint_still_loads_and_resumes(tiny_dataset, tmp_path, monkeypatch):
    cfg, splits, model, opts = tiny_run(tiny_dataset)
    interrupt_at_call(monkeypatch, 2)
    fit(model, splits, cfg, tmp_path / "old", opts, progress=False)  # epoch 1 finished
    for name in ("best.pt", "last.pt"):
        as_version_1(tmp_path / "old" / name)
    assert torch.load(tmp_path / "old" / "last.pt", weights_only=False)["epoch"] == 0  # as old files say

    rebuilt, ckpt = load_checkpoint(tmp_path / "old" / "best.pt")
    assert ckpt["version"] == VERSION and ckpt["epoch"] == 1 == ckpt["history"]["best_epoch"]
    monkeypatch.undo()
    calls = interrupt_at_call(monkeypatch, 0)
    _, _, model2, _ = tiny_run(tiny_dataset)
    h = fit(model2, splits, cfg, tmp_path / "old", opts, progress=False)
    assert calls == ["epoch 2/2"] and [r["epoch"] for r in h.epochs] == [1, 2]
    assert read_checkpoint(tmp_path / "old" / "last.pt")["epoch"] == 2
    assert torch.load(tmp_path / "old" / "last.pt", weights_only=False)["version"] == VERSION


@pytest.mark.parametrize("run", ["light_vgg", "ablation/long60/plain_long_seed1"])
def test_committed_sample_checkpoints_count_epochs_from_1(run):
    path = SAMPLE_RESULTS_DIR / run / "best.pt"
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    model, ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == ckpt["history"]["best_epoch"]  # written 0-based, read 1-based
    assert model(torch.rand(1, 3, model.input_size, model.input_size)).shape == (1, len(ckpt["classes"]))


def test_unknown_versions_and_missing_files_are_refused(tmp_path):
    assert upgrade({"epoch": 4, "version": VERSION})["epoch"] == 4
    assert upgrade({"epoch": 4})["epoch"] == 5
    with pytest.raises(FERError, match="newer than this code"):
        upgrade({"epoch": 4, "version": VERSION + 1})
    with pytest.raises(FERError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_best_and_last_hold_what_each_is_for(tiny_dataset, tmp_path):
    cfg, splits, model, opts = tiny_run(tiny_dataset, epochs=1)
    fit(model, splits, cfg, tmp_path / "run", opts, progress=False)
    best, last = (torch.load(tmp_path / "run" / n, weights_only=False) for n in ("best.pt", "last.pt"))
    assert {"optimizer", "scheduler", "scaler", "ema"} <= set(last) and last["ema"] is None
    assert not {"optimizer", "scheduler", "scaler", "ema"} & set(best)
    assert best["model_options"].get("weights") is None and same_weights(best["state_dict"], last["state_dict"])
    assert not list((tmp_path / "run").glob("*.tmp"))  # written atomically
