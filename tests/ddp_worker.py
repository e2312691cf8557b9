"""Run by tests/test_ddp.py under torchrun: three 2-process runs of LightVGG in one launch (torch is imported once).

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py DATA RUNS LOGS

RUNS/interrupted: 2 epochs, Ctrl-C (a KeyboardInterrupt in every process) as epoch 2 starts, then the same
command again, which resumes it; RUNS/straight: the same 2 epochs without a stop. Each process writes
LOGS/rank<r>.json: the training faces (indices into the train split) it read in each run and epoch, and every file or
folder it created, opened for writing or renamed under RUNS (from Python's audit hooks, so nothing is missed).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def main(data: str, runs: str, logs: str) -> None:
    runs_dir, rank = str(Path(runs).resolve()), int(os.environ["RANK"])
    log = {"writes": [], "faces": {}}
    label = {"run": None}

    def under_runs(path) -> bool:
        return isinstance(path, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(path)).startswith(runs_dir)

    def audit(event, args):
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
            if writes and under_runs(path):
                log["writes"].append([label["run"], os.fsdecode(path)])
        elif event in ("os.rename", "os.mkdir") and under_runs(args[-3 if event == "os.rename" else 0]):
            log["writes"].append([label["run"], os.fsdecode(args[1] if event == "os.rename" else args[0])])

    sys.addaudithook(audit)

    from facial_expression import training
    from facial_expression.config import TrainConfig
    from facial_expression.data import BatchLoader
    from facial_expression.experiment import run_experiment
    from facial_expression.runtime import end_distributed

    epoch_indices = BatchLoader.epoch_indices

    def recorded(self):
        order = epoch_indices(self)
        if self.shuffle:  # the training loader's, not evaluation's
            log["faces"].setdefault(label["run"], {})[str(self.epoch)] = order.tolist()
        return order
    BatchLoader.epoch_indices = recorded

    seed_epoch, stop = training.seed_epoch, {"at": None}

    def ctrl_c(seed, epoch, rank=0):
        if epoch == stop["at"]:
            raise KeyboardInterrupt
        seed_epoch(seed, epoch, rank)
    training.seed_epoch = ctrl_c

    def run(name: str, folder: str, stop_at: int | None = None):
        label["run"], stop["at"] = name, stop_at
        cfg = TrainConfig(model="light-vgg", data=data, out=str(Path(runs) / folder), epochs=2, batch_size=8,
                          input_size=32, tune_fraction=0.16, eval_batch_size=64)
        return run_experiment(cfg, progress=False).history

    try:
        first = run("interrupted", "interrupted", stop_at=1)  # the 0-based index of epoch 2
        assert first.interrupted and len(first.epochs) == 1, first
        run("resumed", "interrupted")
        run("straight", "straight")
    finally:
        end_distributed()
        Path(logs).mkdir(parents=True, exist_ok=True)
        (Path(logs) / f"rank{rank}.json").write_text(json.dumps(log))


if __name__ == "__main__":
    main(*sys.argv[1:4])
