"""A run folder, read: its settings, history, metrics, data fingerprint, checkpoints, and how far it got.

The one rule of its state: a run is finished when it was evaluated (metrics.json) with no interruption on record
after a training that ran to its end (`ran_to_the_end`). A run that started and is not finished is interrupted:
Ctrl-C, a killed process, or an evaluation that never came. It resumes from last.pt when it runs again, and no
table, figure or explanation takes it for a result. Every reader of a run folder asks here.
"""

from __future__ import annotations

import json
from pathlib import Path


def is_smoke_run(record: dict) -> bool:
    """Whether a metrics.json (or config.json) is of a smoke run (a few batches an epoch): its numbers mean nothing."""
    return bool(record.get("max_batches"))


def is_training_result(metrics: dict) -> bool:
    """Whether a metrics.json is a real result: a training run (not a checkpoint's evaluation) and no smoke run.
    An interrupted run is one too (its best epoch so far is evaluated): `Run.state` tells it apart."""
    return "epochs_run" in metrics and not is_smoke_run(metrics)


def ran_to_the_end(history: dict, epochs: int) -> bool:
    """Whether a training has nothing left to train: every epoch of its schedule ran, or it stopped early, and no
    Ctrl-C stopped it. `history` is a history.json, or the one a last.pt holds."""
    return not history.get("interrupted") and (len(history.get("epochs", [])) >= epochs
                                               or bool(history.get("stopped_early")))


class Run:
    """One run folder as it lies on disk. Each file is read when asked for, so that every answer is current."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self, name: str) -> dict | None:
        return json.loads((self.path / name).read_text()) if (self.path / name).exists() else None

    config = property(lambda self: self.read("config.json"), doc="the settings it trained with")
    history = property(lambda self: self.read("history.json"), doc="its epochs, and how its training ended")
    metrics = property(lambda self: self.read("metrics.json"), doc="its evaluation on every split")
    fingerprint = property(lambda self: (self.metrics or {}).get("dataset") or (self.config or {}).get("dataset")
                           or None, doc="the data it was trained on (data.fingerprint); None for older runs")
    best = property(lambda self: self.path / "best.pt", doc="the epoch of best tune accuracy, for inference")
    last = property(lambda self: self.path / "last.pt", doc="the last finished epoch, to resume from")
    ema = property(lambda self: self.path / "ema.pt", doc="the average of the weights (`TrainConfig.ema`)")
    smoke = property(lambda self: is_smoke_run(self.metrics or self.config or {}), doc="a smoke run's numbers")

    @property
    def trained(self) -> bool:
        """Whether its training ran to the end (`ran_to_the_end`), by history.json against config.json's epochs."""
        return (history := self.history) is not None and ran_to_the_end(history, (self.config or {}).get("epochs", 0))

    @property
    def state(self) -> str:
        """"finished", "interrupted" (started, not finished: it resumes) or "not run" (the module's rule). A folder
        without history.json (an evaluation, a hand-made run) is judged by its metrics.json alone."""
        m, started = self.metrics, [f for f in ("config.json", "history.json", "last.pt") if (self.path / f).exists()]
        if m is not None and not m.get("interrupted") and ("history.json" not in started or self.trained):
            return "finished"
        return "interrupted" if m is not None or started else "not run"

    finished = property(lambda self: self.state == "finished")
    result = property(lambda self: self.metrics if self.finished else None, doc="metrics.json, where it finished")
