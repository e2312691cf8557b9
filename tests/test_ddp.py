"""Training one run in two processes (torchrun, DistributedDataParallel, gloo on the CPU) on the 8-class fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from course_fixture import make_course_dataset

from facial_expression.checkpoint import read_checkpoint
from facial_expression.data import BatchLoader, ImageSet
from facial_expression.runtime import shuffle_generator

HERE = Path(__file__).resolve().parent
RUN_FILES = {"config.json", "history.json", "metrics.json", "best.pt", "last.pt", "predictions.npz",
             "split_stats.json", "classification_report.txt"}


def faces(n: int) -> ImageSet:
    return ImageSet(images=torch.zeros(n, 3, 4, 4, dtype=torch.uint8), labels=torch.arange(n) % 8,
                    classes=tuple("abcdefgh"), paths=[""] * n)


@pytest.mark.parametrize("n, batch, max_batches", [(80, 8, None), (83, 8, None), (83, 5, 3)])
def test_shards_are_disjoint_and_cover_the_epoch(n, batch, max_batches):
    data = faces(n)
    ranks = [BatchLoader(data, batch, shuffle=True, seed=4, drop_last=True, max_batches=max_batches, rank=r,
                         world_size=2) for r in (0, 1)]
    for epoch in (0, 1):
        shards = []
        for loader in ranks:
            loader.set_epoch(epoch)
            shards.append(loader.epoch_indices().tolist())
        assert len(shards[0]) == len(shards[1]) == len(ranks[0]) * batch  # the same number of steps in each
        assert not set(shards[0]) & set(shards[1])
        if max_batches is None:  # all faces but those of a last partial step, each once
            assert n - len(shards[0] + shards[1]) < 2 * batch
    one = BatchLoader(data, 8, shuffle=True, seed=4)
    one.set_epoch(1)  # one process: the order of before, unchanged
    assert torch.equal(one.epoch_indices(), torch.randperm(n, generator=shuffle_generator(4, 1)))


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    """tests/ddp_worker.py under torchrun: a run interrupted after epoch 1 and resumed, and the same run straight."""
    root = tmp_path_factory.mktemp("ddp")
    data = make_course_dataset(root / "course", per_class=12, val_per_class=2)  # 96 train faces: 80 train, 16 tune
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent / "src"), str(HERE), os.environ.get("PYTHONPATH", "")])}
    env.pop("FER_THREADS", None)  # torchrun's processes share the cores out (runtime.set_threads)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "ddp_worker.py"), str(data), str(root / "runs"), str(root / "logs")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    logs = [json.loads((root / "logs" / f"rank{k}.json").read_text()) for k in (0, 1)]
    return root / "runs", logs, r.stdout


def test_two_processes_finish_and_record_the_world_size(two_process_runs):
    runs, _, out = two_process_runs
    for run in ("interrupted", "straight"):
        config = json.loads((runs / run / "config.json").read_text())
        assert config["world_size"] == 2 and config["augment_backend"] == "batched"
        history = json.loads((runs / run / "history.json").read_text())
        assert [e["epoch"] for e in history["epochs"]] == [1, 2] and not history["interrupted"]
        assert history["hardware"].startswith("2 x ")
        assert read_checkpoint(runs / run / "last.pt")["config"]["world_size"] == 2
    assert out.count("2 processes: batch 8 per process, 16 faces per step") == 3  # rank 0 alone prints


def test_every_training_face_is_read_once_per_epoch_across_the_processes(two_process_runs):
    _, logs, _ = two_process_runs
    for epoch in ("0", "1"):
        shards = [log["faces"]["straight"][epoch] for log in logs]
        assert len(shards[0]) == len(shards[1]) == 40
        assert sorted(shards[0] + shards[1]) == list(range(80))  # the 80 train faces, each once
    assert logs[0]["faces"]["straight"]["0"] != logs[0]["faces"]["straight"]["1"]  # reshuffled per epoch


def test_rank_zero_alone_writes_the_run_folder_once_and_completely(two_process_runs):
    runs, logs, _ = two_process_runs
    assert logs[1]["writes"] == []
    straight = [Path(p).relative_to(runs / "straight").as_posix() for run, p in logs[0]["writes"] if run == "straight"]
    assert straight.count("config.json") == 1 and straight.count("metrics.json") == 1
    assert RUN_FILES <= {p.name for p in (runs / "straight").iterdir()}
    assert any((runs / "straight" / "figures").iterdir())


def test_a_resumed_two_process_run_continues_the_schedule(two_process_runs):
    runs, logs, out = two_process_runs
    assert "resumed from" in out and logs[0]["faces"]["resumed"].keys() == {"1"}  # only epoch 2 trained again
    resumed, straight = (json.loads((runs / r / "history.json").read_text())["epochs"] for r in ("interrupted",
                                                                                                 "straight"))
    for a, b in zip(resumed, straight):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    a, b = (read_checkpoint(runs / r / "last.pt") for r in ("interrupted", "straight"))
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 2 * 5  # 5 steps per epoch and process
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"])


def test_one_process_takes_a_finished_two_process_run_but_does_not_resume_an_unfinished_one(tiny_dataset, tmp_path):
    """A notebook opening the 2-GPU run of its folder: finished, it is used as it is; half done, it is refused."""
    from facial_expression.errors import FERError
    from facial_expression.training import fit
    from test_training import tiny_run
    cfg, splits, model, opts = tiny_run(tiny_dataset)
    fit(model, splits, cfg, tmp_path / "run", opts, progress=False)
    for name in ("best.pt", "last.pt"):  # as a 2-process run writes them
        ckpt = torch.load(tmp_path / "run" / name, weights_only=False)
        ckpt["config"]["world_size"] = 2
        torch.save(ckpt, tmp_path / "run" / name)
    history = fit(model, splits, cfg, tmp_path / "run", opts, progress=False)
    assert len(history.epochs) == 2  # nothing trained again
    assert json.loads((tmp_path / "run" / "config.json").read_text())["world_size"] == 2
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    ckpt["epoch"], ckpt["history"]["epochs"] = 1, ckpt["history"]["epochs"][:1]
    torch.save(ckpt, tmp_path / "run" / "last.pt")
    with pytest.raises(FERError, match=r"other settings \(world_size\)"):
        fit(model, splits, cfg, tmp_path / "run", opts, progress=False)


@pytest.mark.parametrize("device, gpus, per_machine, expected", [
    ("cuda", 2, 2, "nccl"), ("cuda", 4, 2, "nccl"), ("cuda", 1, 2, "gloo"), ("cpu", 0, 2, "gloo")])
def test_process_group_backend_and_each_process_its_own_gpu(monkeypatch, device, gpus, per_machine, expected):
    """NCCL where every process has a GPU (Kaggle's T4 x2), gloo where two share one (a one-GPU check) or on the CPU."""
    from facial_expression import runtime
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setenv("WORLD_SIZE", str(per_machine))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(per_machine))
    assert runtime.process_group_backend(torch.device(device)) == expected
    monkeypatch.setenv("LOCAL_RANK", "1")
    if gpus:
        assert runtime.pick_device("auto") == torch.device("cuda", 1 % gpus)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert runtime.pick_device("cpu") == torch.device("cpu")
    if gpus:
        assert runtime.pick_device("auto") == torch.device("cuda")  # one process: as before
