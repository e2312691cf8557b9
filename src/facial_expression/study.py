"""Part (d): rows of changes on the plain LightVGG of part (c), trained per seed, chosen on tune, compared on
validation over seeds.

A row is a name, its changes (CHANGES), its schedule and seed (`Row`); every row is a full run (`run_experiment`)
on the whole training split, within the paper's parameter budget. A `Study` is rows under a folder, run until done
or out of budget; two studies use the same rows, runs, selection rule (`beat`) and comparison over seeds
(`seed_runs`):

- the screening (ablation/screen10, `screening`): each change alone for 10 epochs, seed 0 (`screening_table`);
  the changes that gain on tune are `helpful_changes`;
- the second study (ablation/long60, `SecondStudy`): full-schedule rows with an EMA of their weights, within a
  budget of training fixed beforehand (`SecondStudy.rules`), the final row confirmed on a second seed, compared
  with part (c)'s plain model on seeds 0 and 1 (light_vgg, ablation/final30/plain_seed1) and delivered
  (light_vgg_final).

The tune split picks the epoch, the weights and the rows; validation/ is evaluated every epoch for the curves, and
no choice reads it. Finished runs are not trained again and an interrupted one resumes (`runs.Run`), so an
interrupted study resumes where it stopped. The tables are built from the saved results, never typed.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import shutil
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .config import LONG_EPOCHS, MIN_GAIN, TrainConfig
from .data.fingerprint import check_same_dataset, dataset_fingerprint, mismatch
from .data.splits import load_splits
from .errors import FERError
from .evaluation import LATENCY_FILE, LATENCY_REPEATS, FlipTTA, saved_latencies, timed
from .experiment import by_tta, evaluate_splits, run_experiment
from .models import architecture, build_model, count_parameters, model_options
from .runs import Run
from .runtime import amp_dtype, pick_device

PARAM_BUDGET = 3_750_000  # the paper's LightVGG budget (Hewitt & Gunes 2018)
# `load_run`'s metrics as the screening's and the seeds' tables name them, in their order
METRICS = {"tune_accuracy": "tune acc.", "tune_accuracy_flip_tta": "tune acc. +flip", "val_accuracy": "val. acc.",
           "val_accuracy_flip_tta": "val. acc. +flip", "val_macro_f1": "val. macro-F1",
           "val_macro_auc": "val. macro-AUC"}

# row name -> (what changes, TrainConfig overrides on top of the plain LightVGG of P5_c)
CHANGES: dict[str, tuple[str, dict]] = {
    "plain": ("the paper's light VGG, as in part (c)", {}),
    "batch_norm": ("batch-norm after every conv and dense layer", {"batch_norm": True}),
    "gaussian_dropout": ("Gaussian dropout 0.2 after each pool", {"gaussian_dropout": 0.2}),
    "class_weights": ("class-balanced (inverse-frequency) loss", {"class_weights": True}),
    "label_smoothing": ("label smoothing 0.1", {"label_smoothing": 0.1}),
    "trivial_augment": ("TrivialAugment and random erasing", {"augment": "trivial"}),
    "mixup_cutmix": ("MixUp or CutMix per batch (alpha 0.4)", {"mix": "both", "mix_alpha": 0.4}),
    "adamw_cosine": ("AdamW (decay 0.05), cosine with 1 warm-up epoch",
                     {"optimizer": "adamw", "weight_decay": 0.05, "schedule": "cosine"}),
    "gap_head": ("global-average-pooling head", {"head": "gap"}),
    "face_mask": ("soft face ellipse on the input (CAM: border)", {"mask": True}),
    "photometric": ("strong colour jitter, grey-scale (CAM: photo style)", {"augment": "photometric"}),
}

# The second study: a short screen favours fast starters and penalises regularisers, whose benefit shows late.
EMA_DECAY = 0.999  # per optimiser step: about 10 epochs of 98 steps
SWEEP_EPOCHS = 10
SWEEP_LRS = (1e-3, 3e-3)  # batch-norm's own learning rate; 1e-3 is the screening's batch_norm row
BUDGET = 10.0  # plain 30-epoch runs
# a training step's cost against the plain model's: median epoch times of the committed runs on one CPU,
# 47.3 s against 31.2 s (10-epoch screen) and 42.4 s against 31.9 s (30 epochs)
STEP_COST = {"batch_norm": 1.4}
TARGET = 0.03  # validation accuracy the improved model must gain over the plain one, mean over 2 seeds
VARIANTS = ("raw", "raw + flip", "EMA", "EMA + flip")
SELECTABLE = ("raw", "EMA")  # flip TTA runs the network twice per face: measured, shown, never selected
MAX_LATENCY = 1.5  # its CPU latency against the plain model's, measured in the same run
DELIVERED = "light_vgg_final"  # the model part (d) delivers, in the results folder


def row_config(changes: list[str] | tuple[str, ...], **settings) -> TrainConfig:
    """The plain LightVGG config with the named changes applied, then `settings` (epochs, seed, out...).

    Where two changes set the same setting (the augmentation policies), the first one listed wins;
    `helpful_changes` lists the larger tune gain first.
    """
    overrides: dict = {}
    for name in changes:
        if name not in CHANGES:
            raise FERError(f"unknown change {name!r}; choose from {', '.join(CHANGES)}")
        for key, value in CHANGES[name][1].items():
            overrides.setdefault(key, value)
    return TrainConfig(model="light-vgg", **{**overrides, **settings})


@dataclass(frozen=True)
class Row:
    """One run of a study: a name, the changes on the plain LightVGG, its schedule, learning rate and seed, and
    whether it records an EMA of its weights (the second study's rows do)."""

    name: str
    changes: tuple[str, ...] = ()
    epochs: int = LONG_EPOCHS
    lr: float | None = None  # None: the plain model's
    ema: bool = True
    seed: int = 0

    @property
    def folder(self) -> str:
        return f"{self.name}_seed{self.seed}"

    def cost(self) -> float:
        """In plain 30-epoch runs."""
        return self.epochs / 30 * math.prod(STEP_COST.get(c, 1.0) for c in self.changes)

    def config(self, **settings) -> TrainConfig:
        """`row_config` of its changes at its epochs and seed, with `settings`, then its own learning rate and EMA."""
        own = {**({"lr": self.lr} if self.lr is not None else {}), **({"ema": EMA_DECAY} if self.ema else {})}
        return row_config(self.changes, epochs=self.epochs, seed=self.seed, **{**settings, **own})


def screening(rows: dict[str, list[str]], root: str | Path, epochs: int, seeds=(0,),
              dirs: dict[str, str | Path] | None = None) -> Study:
    """The screening as a study: every row (name -> list of changes) for every seed, without EMA, into
    root/<name>_seed<seed>/ or dirs["<name>_seed<seed>"]; no budget."""
    return Study(root, [Row(name, tuple(changes), epochs, ema=False, seed=seed) for seed in seeds
                        for name, changes in rows.items()], dirs=dirs)


def measure_row_latencies(root: str | Path, rows: dict[str, list[str]], n_classes: int, smoke: bool = False,
                          **settings) -> dict[str, float]:
    """Single-image CPU latency (ms) of each row's architecture (name -> changes, with `settings`), on random
    weights, timed together through `latency_cache(root)` (`timed`), where the tables take their ratios from: each
    run's own measurement, taken after its training, compares runs timed at different moments."""
    models = {name: build_model("light-vgg", n_classes, **model_options(row_config(changes, **settings))).eval()
              for name, changes in rows.items()}
    return timed({name: (m, m.input_size) for name, m in models.items()}, latency_cache(root), "cpu",
                 *LATENCY_REPEATS["smoke" if smoke else "run"])


def latency_cache(root: str | Path) -> Path:
    """The screening's latency cache: its results folder's where `study_dirs` puts it, else its own folder's."""
    results = Path(root).parent.parent
    return (results if study_dirs(results)["screen"] == Path(root) else Path(root)) / LATENCY_FILE


def run_architecture(run_dir: str | Path) -> str:
    """The `architecture` of the model a finished run trained, from its settings and classes."""
    run = Run(run_dir)
    cfg = TrainConfig.from_dict(run.config)
    return architecture(cfg.model, len(run.metrics["classes"]), model_options(cfg))


def load_run(run_dir: str | Path, variant: str = "raw") -> dict:
    """One finished run as a flat dict: its seed, size, speed and wall time, and the tune and validation metrics
    of its raw weights as reported (per-class F1 too) or of their average ("EMA"), without and with flip TTA."""
    run = Run(run_dir)
    m, raw = run.metrics, variant == "raw"
    shown, flip = (m["splits"], by_tta(m)["flip_tta"]) if raw else (m["ema"]["no_tta"], m["ema"].get("flip_tta", {}))
    val = m if raw else shown["validation"]
    return {"seed": run.config["seed"], "best_epoch": m["best_epoch"], "parameters": m["parameters"]["total"],
            "cpu_latency_ms": m.get("cpu_latency_ms"), "wall_minutes": m["wall_seconds"] / 60,
            "tune_accuracy": shown["tune"]["accuracy"], "tune_accuracy_flip_tta": flip.get("tune", {}).get("accuracy"),
            "val_accuracy": val["accuracy"], "val_accuracy_flip_tta": flip.get("validation", {}).get("accuracy"),
            "val_macro_f1": val.get("macro_f1", np.nan), "val_macro_auc": val.get("macro_auc", np.nan)}


def variants(run_dir: str | Path) -> dict[str, dict[str, float]]:
    """Tune and validation accuracy of a finished run's variants: raw weights or EMA, without or with flip TTA."""
    m = Run(run_dir).result
    if m is None:
        return {}
    raw, ema = by_tta(m), m.get("ema", {})
    measured = {"raw": raw["no_tta"], "raw + flip": raw["flip_tta"],
                "EMA": ema.get("no_tta", {}), "EMA + flip": ema.get("flip_tta", {})}
    out = {name: {s: splits[s]["accuracy"] for s in ("tune", "validation") if s in splits}
           for name, splits in measured.items()}
    return {k: out[k] for k in VARIANTS if out.get(k)}


def best_variant(run_dir: str | Path) -> tuple[str, dict[str, float]]:
    """The SELECTABLE variant with the highest tune accuracy (raw weights win a tie)."""
    v = {k: a for k, a in variants(run_dir).items() if k in SELECTABLE}
    if not v:
        raise FERError(f"{run_dir} has no finished run")
    name = max(v, key=lambda k: (v[k]["tune"], -SELECTABLE.index(k)))
    return name, v[name]


def beat(tune: dict, baseline, min_gain: float = MIN_GAIN) -> list:
    """Both studies' selection rule: the rows whose tune accuracy (`tune`: row -> accuracy) beats the baseline's by
    more than `min_gain`, the largest first."""
    return sorted((r for r in tune if r != baseline and tune[r] - tune[baseline] > min_gain), key=tune.get,
                  reverse=True)


def same_data_runs(dirs, reference: dict | None = None) -> list[Path]:
    """The finished runs among `dirs` trained on the reference's data (by default the first finished run's).

    An interrupted run, and a run on other data (another dataset, class set or file list), is left out with one
    line saying so: it resumes when it runs again, and results of different datasets are never averaged or compared.
    """
    runs, kept = [Run(d) for d in dirs], []
    reference = reference or next((r.fingerprint for r in runs if r.finished), None)
    for run in runs:
        why = "interrupted (it resumes when it runs again)" if run.state == "interrupted" else None
        if run.finished and (other := mismatch(reference, run.fingerprint)):
            why = f"trained on other data ({other})"
        if why:
            print(f"left out {run.path}: {why}")
        elif run.finished:
            kept.append(run.path)
    return kept


def seed_runs(groups: dict[str, tuple[list, str]]) -> dict[str, list[dict | None]]:
    """Each model's runs (name -> (run folders, "raw" or "EMA")) as `load_run` records of that variant, in the order
    given; None for a run that has not finished or that saw other data than the first finished one of all
    (`same_data_runs` says which and why). What both studies' comparisons over seeds are made of."""
    reference = next((r.fingerprint for dirs, _ in groups.values() for r in map(Run, dirs) if r.finished), None)
    out = {}
    for name, (dirs, variant) in groups.items():
        kept = same_data_runs(dirs, reference)
        out[name] = [load_run(d, variant) if Path(d) in kept else None for d in dirs]
    return out


def screening_table(root: str | Path, baseline: str = "plain", reference: dict | None = None) -> pd.DataFrame:
    """One row per change (seed 0 runs under root), with its tune and validation effect against the
    plain row; 'tune Δ' is what the selection uses. Runs on other data than `reference` (by default the
    plain row's) are left out."""
    dirs = sorted(Path(root).glob("*_seed0"), key=lambda d: (d.name != f"{baseline}_seed0", d.name))
    dirs = same_data_runs(dirs, reference)
    # one call must have timed every row shown, or each run's own measurement is used
    rows, latency = [], saved_latencies(latency_cache(root), {d: run_architecture(d) for d in dirs}) or {}
    for run_dir in dirs:
        name = run_dir.name.removesuffix("_seed0")
        r = load_run(run_dir)
        rows.append({"row": name, "change": CHANGES[name][0] if name in CHANGES else name,
                     "parameters": r["parameters"], "CPU ms": latency.get(run_dir, r["cpu_latency_ms"]),
                     "best epoch": r["best_epoch"], **{label: r[key] for key, label in METRICS.items()},
                     "minutes": r["wall_minutes"]})
    if not rows:
        raise FERError(f"no finished runs under {root}")
    table = pd.DataFrame(rows).set_index("row")
    if baseline in table.index:
        table.insert(table.columns.get_loc("tune acc.") + 1, "tune Δ",
                     table["tune acc."] - table.loc[baseline, "tune acc."])
        table.insert(table.columns.get_loc("val. acc.") + 1, "val. Δ",
                     table["val. acc."] - table.loc[baseline, "val. acc."])
        order = [baseline] + table.drop(index=baseline).sort_values("tune Δ", ascending=False).index.tolist()
        table = table.loc[order]
    return table


def helpful_changes(table: pd.DataFrame, min_gain: float = 0.0) -> list[str]:
    """The screening's changes that `beat` the plain row on tune by more than `min_gain`, largest gain first."""
    return [name for name in beat(table["tune acc."].to_dict(), "plain", min_gain) if name in CHANGES]


def seeds_table(groups: dict[str, list[str | Path]]) -> pd.DataFrame:
    """Mean ± standard deviation over seeds for each model (name -> its run folders).

    Every run must share the data of the first finished one; others are left out with one line each.
    """
    rows = []
    for name, runs in seed_runs({name: (dirs, "raw") for name, dirs in groups.items()}).items():
        if not (runs := [r for r in runs if r]):
            continue
        row = {"model": name, "seeds": ", ".join(str(r["seed"]) for r in runs), "parameters": runs[0]["parameters"],
               "CPU ms": float(np.mean([r["cpu_latency_ms"] for r in runs if r["cpu_latency_ms"] is not None]
                                       or [np.nan]))}
        for key, label in METRICS.items():
            if any(r.get(key) is None for r in runs):
                continue  # runs evaluated before flip TTA was measured
            values = np.array([r[key] for r in runs])
            row[label] = f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0:.4f}"
            row[label + " mean"] = values.mean()
        row["minutes per run"] = float(np.mean([r["wall_minutes"] for r in runs]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def study_dirs(results: str | Path) -> dict[str, Path]:
    """Where the studies live under a results folder: the screening, part (c)'s plain model and its second seed."""
    results = Path(results)
    return {"screen": results / "ablation" / "screen10", "plain": results / "light_vgg",
            "plain_seed1": results / "ablation" / "final30" / "plain_seed1"}


def _pct(v) -> str:
    """A fraction in % with one decimal, "–" where it was not measured."""
    return "–" if pd.isna(v) else f"{100 * v:.1f}"


def screened(root: str | Path) -> pd.DataFrame | None:
    """`screening_table` of the screening under root; None before any of its runs has finished."""
    return screening_table(root) if any(Run(p.parent).finished for p in Path(root).glob("*/metrics.json")) else None


def screening_summary(t: pd.DataFrame) -> pd.DataFrame:
    """A `screening_table` ready to print (accuracies in %, gains in points)."""
    gain = lambda v: f"{100 * v:+.1f}"  # noqa: E731
    df = pd.DataFrame({"change": t["change"], "M params": t["parameters"].map(lambda v: f"{v / 1e6:.3f}"),
                       "latency": (t["CPU ms"] / t["CPU ms"].iloc[0]).map(lambda v: f"{v:.2f}×"),
                       "tune": t["tune acc."].map(_pct), "tune Δ": t["tune Δ"].map(gain),
                       "val.": t["val. acc."].map(_pct), "val. Δ": t["val. Δ"].map(gain),
                       "val. flip": t["val. acc. +flip"].map(_pct), "val. F1": t["val. macro-F1"].map(_pct),
                       "val. AUC": t["val. macro-AUC"].map(lambda v: f"{v:.3f}")})
    df.index.name = "row"
    return df


def _sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


def budget_check(model, plain, parameters: int, cache: str | Path, smoke: bool = False) -> tuple[dict, float]:
    """The paper's budget for a delivered model: its parameters, and its single-image CPU latency (alone and with
    flip TTA) against the plain model's, timed together, interleaved, through `cache` (`timed`). The check and the
    model's ms."""
    size, repeats = model.input_size, LATENCY_REPEATS["smoke" if smoke else "run"]
    ms = timed({"plain": (plain, plain.input_size), "delivered": (model, size),
                "delivered + flip": (FlipTTA(model), size)}, cache, "cpu", *repeats)
    budget = {"parameters": parameters, "max_parameters": PARAM_BUDGET, "input_size": size,
              "latency_ratio": ms["delivered"] / ms["plain"], "max_latency_ratio": MAX_LATENCY,
              "flip_latency_ratio": ms["delivered + flip"] / ms["plain"], "plain_cpu_latency_ms": ms["plain"]}
    budget["within"] = parameters <= PARAM_BUDGET and budget["latency_ratio"] <= MAX_LATENCY
    return budget, ms["delivered"]


class Study:
    """Rows of changes on the plain LightVGG, run per seed under `root`: what is planned, what is done, what comes
    next and what it costs in plain 30-epoch runs (`Row.cost`). A study of fixed rows is the screening
    (`screening`); `SecondStudy` plans its rows as earlier ones finish. Finished rows are not trained again, an
    interrupted one resumes, and a row that would overrun the budget is not started."""

    def __init__(self, root: str | Path, rows=(), budget: float = math.inf,
                 dirs: dict[str, str | Path] | None = None):
        self.root, self.rows, self.budget, self.dirs = Path(root), list(rows), budget, dict(dirs or {})

    def plan(self) -> list[Row]:
        """Every row known so far, in the order they run."""
        return list(self.rows)

    def extra(self) -> list[Row]:
        """The rows run beyond the budget."""
        return []

    def path(self, row: Row) -> Path:
        return Path(self.dirs.get(row.folder, self.root / row.folder))

    def done(self, row: Row) -> bool:
        return Run(self.path(row)).finished

    def spent(self) -> float:
        """The budget used by the runs this study trained (runs reused from elsewhere, and the extra rows, cost
        nothing)."""
        extras = self.extra()
        return self._spent([r for r in self.plan() if r not in extras])

    def _spent(self, rows: list[Row]) -> float:
        return sum(r.cost() for r in rows if self.done(r) and self.path(r).parent == self.root)

    def todo(self) -> list[Row]:
        return [r for r in self.plan() if not self.done(r)]

    def run(self, data=None, max_batches: int | None = None, workers: int = 1, **settings) -> list[Path]:
        """Train the missing rows until the study is complete or the next row would overrun the budget; returns
        the finished run folders (`findings.study_findings` says what is left).

        With workers > 1 (a large GPU), the rows whose settings are already known train at the same time, each
        in its own process; a row that depends on others (the second study's bn_long and final rows) starts
        once they finish.
        """
        if done := [self.path(r).name for r in self.plan() if self.done(r)]:
            print(f"finished earlier, skipped: {', '.join(done)}")
        if workers == 1:
            while rows := self._startable([], 1):
                self._train(rows[0], data, max_batches, True, settings)
                if not self.done(rows[0]):
                    break  # interrupted (Ctrl-C): it resumes on the next call
        else:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                running: dict[Future, Row] = {}
                while True:
                    for row in self._startable(list(running.values()), workers - len(running)):
                        running[pool.submit(self._train, row, data, max_batches, False, settings)] = row
                    if not running:
                        break
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        del running[future]
                        future.result()  # a row that failed stops the study with its error
        return [self.path(r) for r in self.plan() if self.done(r)]

    def _startable(self, running: list[Row], slots: int) -> list[Row]:
        """Up to `slots` missing rows, in plan order, that fit the budget beside the rows running."""
        committed, rows, extras = self.spent() + sum(r.cost() for r in running), [], self.extra()
        for row in (r for r in self.todo() if r not in running):
            extra = row in extras
            if len(rows) == slots or (not extra and committed + row.cost() > self.budget + 1e-9):
                break
            rows.append(row)
            committed += 0 if extra else row.cost()
        return rows

    def _train(self, row: Row, data, max_batches: int | None, progress: bool, settings: dict) -> None:
        """Train one row (`Row.config` with `settings`) into `path(row)`, within the paper's parameter budget; an
        interrupted run resumes from its last.pt."""
        out = self.path(row)
        cfg = row.config(data=data, out=str(out), max_batches=max_batches, **settings)
        splits = load_splits(data, cfg.resolved_input_size(), cfg.tune_fraction, row.seed, progress=progress,
                             classes=cfg.classes)
        n = count_parameters(build_model("light-vgg", len(splits.classes), **model_options(cfg)))["total"]
        if n > PARAM_BUDGET:
            raise FERError(f"{row.name}: {n:,} parameters is over the {PARAM_BUDGET:,} budget")
        print(f"== {out.name}: {', '.join(row.changes) or 'plain'} ({row.epochs} epoch{'s' if row.epochs != 1 else ''}"
              f", seed {row.seed})", flush=True)
        run_experiment(cfg, progress=progress, splits=splits)

    def table(self, rows: list[Row] | None = None) -> pd.DataFrame:
        """One line per finished run: schedule, cost, tune accuracy of each variant, the variant tune selects
        and its validation accuracy, wall time and machine."""
        lines, extras = [], self.extra()
        for r in self.plan() if rows is None else rows:
            if not self.done(r):
                continue
            m, v = Run(self.path(r)).result, variants(self.path(r))
            chosen, _ = best_variant(self.path(r))
            lines.append({"row": r.name, "seed": r.seed, "changes": ", ".join(r.changes) or "none",
                          "epochs": r.epochs, "lr": r.lr if r.lr is not None else TrainConfig.lr,
                          "cost": 0.0 if self.path(r).parent != self.root or r in extras else r.cost(),
                          **{f"tune, {k}": v[k]["tune"] for k in VARIANTS if k in v},
                          "selected": chosen, **{f"validation, {k}": v[k]["validation"] for k in SELECTABLE if k in v},
                          "minutes": m["wall_seconds"] / 60, "machine": m.get("device", "")})
        return pd.DataFrame(lines)

    def table_text(self) -> pd.DataFrame:
        """`table` as the README and the report print it: accuracies in %, "–" where a variant was not measured,
        cost, minutes and learning rate as short text; without the changes column."""
        t = self.table()
        if t.empty:
            return t
        pct = [c for c in t.columns if c.startswith(("tune, ", "validation, "))]
        return t.drop(columns=["changes"]).assign(**{c: t[c].map(_pct) for c in pct},
                                                  cost=t["cost"].map("{:.2f}".format),
                                                  minutes=t["minutes"].map("{:.0f}".format),
                                                  lr=t["lr"].map("{:g}".format))


class SecondStudy(Study):
    """The second study under `root` (results/ablation/long60), a `Study` whose later rows (batch-norm's learning
    rate, the final row) follow from the results of earlier ones.

    1. `plain_long`, `smoothing_long`: the plain LightVGG and label smoothing 0.1 for LONG_EPOCHS epochs, each
       recording an EMA of its weights; flip TTA is measured on every finished run, so one run answers the longer
       schedule, EMA and TTA.
    2. `bn_lr<lr>`: batch-norm for SWEEP_EPOCHS epochs at each of SWEEP_LRS (the screening's batch-norm row is
       reused); `bn_long` runs at the best of them on tune.
    3. `final_row`, chosen on tune, is trained again with seed 1 and compared (`final_comparison`) with part (c)'s
       plain model, and `deliver` writes it as a run of its own (light_vgg_final), the paper's budget checked.

    `fer ablation --study long` finishes the study from where it stopped, on any machine; `--workers N` trains the
    rows whose settings are known side by side. `findings.study_findings` says where it stands.
    """

    target = TARGET

    def __init__(self, results: str | Path, root: str | Path | None = None, budget: float = BUDGET,
                 long_epochs: int = LONG_EPOCHS, sweep_epochs: int = SWEEP_EPOCHS,
                 part_c_epochs: int = TrainConfig.epochs):
        self.results = Path(results)
        super().__init__(root or self.results / "ablation" / f"long{long_epochs}", budget=budget)
        self.long_epochs, self.sweep_epochs, self.part_c_epochs = long_epochs, sweep_epochs, part_c_epochs

    delivered = property(lambda self: Run(self.results / DELIVERED), doc="the delivered model's run folder")

    def rules(self) -> dict:
        """The numbers of its protocol, fixed before any run (`findings.protocol` says them in words)."""
        return {"long_epochs": self.long_epochs, "sweep_epochs": self.sweep_epochs, "ema_decay": EMA_DECAY,
                "param_budget": PARAM_BUDGET, "max_latency": MAX_LATENCY, "min_gain": MIN_GAIN,
                "target": self.target, "budget": self.budget, "bn_step_cost": STEP_COST["batch_norm"]}

    @property
    def part_c_seed1(self) -> Row:
        """Part (c)'s plain model with seed 1, at part (c)'s epochs and learning rate where it has run, for the final
        comparison (run beyond the budget where it is missing)."""
        saved = Run(study_dirs(self.results)["plain"]).config or {}
        return Row("plain", (), saved.get("epochs", self.part_c_epochs), saved.get("lr"), ema=False, seed=1)

    def path(self, row: Row) -> Path:
        if row == self.part_c_seed1:
            return study_dirs(self.results)["plain_seed1"]
        if row.name == f"bn_lr{SWEEP_LRS[0]:g}" and self._reusable_screen_row():
            return study_dirs(self.results)["screen"] / "batch_norm_seed0"
        return super().path(row)

    def _reusable_screen_row(self) -> bool:
        """Whether the screening's batch-norm row is the sweep's first row (same settings, where it ran aside)."""
        run = Run(study_dirs(self.results)["screen"] / "batch_norm_seed0")
        if not run.finished:
            return False
        expected = row_config(["batch_norm"], lr=SWEEP_LRS[0], epochs=self.sweep_epochs, seed=run.config["seed"])
        return not expected.differences(run.config, ignore={"data", "out", "max_batches", "amp", "device"})

    def first_rows(self) -> list[Row]:
        long = [Row("plain_long", (), self.long_epochs), Row("smoothing_long", ("label_smoothing",), self.long_epochs)]
        return long + [Row(f"bn_lr{lr:g}", ("batch_norm",), self.sweep_epochs, lr, ema=False) for lr in SWEEP_LRS]

    def bn_row(self) -> Row | None:
        sweep = [r for r in self.first_rows() if r.name.startswith("bn_lr")]
        if not all(self.done(r) for r in sweep):
            return None
        best = max(sweep, key=lambda r: best_variant(self.path(r))[1]["tune"])
        return Row("bn_long", ("batch_norm",), self.long_epochs, best.lr)

    def long_rows(self) -> list[Row]:
        bn = self.bn_row()
        return [r for r in self.first_rows() if r.ema] + ([bn] if bn else [])

    def final_row(self) -> Row | None:
        """The row to confirm on a second seed: the best candidate on tune that the budget left can confirm.

        Candidates, in order: the combination of the long rows that `beat` plain_long on tune (two new seeds), each
        such row by its tune accuracy (seed 1 only), then plain_long itself. Where none fits, the first one (the
        budget then stops the study and says what it needs). None until every long row has run.
        """
        choice = self._choice()
        return None if choice is None else choice[0]

    def passed_over(self) -> list[Row]:
        """The candidates ahead of the final row whose second seed did not fit in the budget left."""
        choice = self._choice()
        return [] if choice is None else choice[1]

    def _choice(self) -> tuple[Row, list[Row]] | None:
        """(the final row, the candidates passed over for it), or None until every long row has run."""
        rows = self.long_rows()
        if len(rows) < 3 or not all(self.done(r) for r in rows):
            return None
        winners = beat({r: best_variant(self.path(r))[1]["tune"] for r in rows}, rows[0])
        candidates = [(w, w.cost()) for w in winners] + [(rows[0], rows[0].cost())]
        if len(winners) > 1:
            changes = tuple(c for r in rows[1:] if r in winners for c in r.changes)
            lr = next((r.lr for r in winners if r.lr is not None), None)
            combined = Row("combined_long", changes, self.long_epochs, lr)
            candidates.insert(0, (combined, 2 * combined.cost()))
        left = self.budget - self._spent(self.first_rows() + rows[-1:])  # every row before the final one (bn_long)
        fits = [k for k, (_, cost) in enumerate(candidates) if cost <= left + 1e-9]
        k = fits[0] if fits else 0
        return candidates[k][0], [row for row, _ in candidates[:k]]

    def baseline(self) -> Row | None:
        """The plain row's second seed, when the final row is another: the comparison at the same schedule and
        seeds. It is run beyond the budget, which the protocol fixed before this comparison was asked for."""
        final = self.final_row()
        return None if final is None or not final.changes else Row("plain_long", (), self.long_epochs, seed=1)

    def extra(self) -> list[Row]:
        """The plain row's second seed (`baseline`) and part (c)'s (`part_c_seed1`), for the final comparison."""
        return [r for r in (self.baseline(), self.part_c_seed1) if r is not None]

    def plan(self) -> list[Row]:
        """Every row known so far, in the order they run; later rows appear once earlier ones have finished."""
        rows = self.first_rows()
        if (bn := self.bn_row()) is not None:
            rows.append(bn)
        if (final := self.final_row()) is not None:
            rows += [r for r in (final, replace(final, seed=1), self.baseline(), self.part_c_seed1)
                     if r is not None and r not in rows]
        return rows

    def deliver(self, data=None, device: str = "auto") -> Path | None:
        """The final row's seed-0 model, in the variant tune selected (raw or EMA weights), as a run folder of its
        own (RESULTS/light_vgg_final): best.pt, its settings, history and split statistics, metrics and figures of
        every split, and the paper's budget checked: parameters, and the CPU latency against part (c)'s plain
        model, measured interleaved in this call (the flip-TTA variant's beside it). None until the final
        comparison exists. A delivery of the same runs (their history.json unchanged) is kept; another replaces
        it whole, written aside first so that a failure leaves no half-built folder."""
        if self.final_comparison() is None:
            return None
        src, plain_dir, out = self.path(self.final_row()), study_dirs(self.results)["plain"], self.delivered.path
        variant, _ = best_variant(src)
        weights, plain_weights = src / ("ema.pt" if variant == "EMA" else "best.pt"), plain_dir / "best.pt"
        source = {"run": os.path.relpath(src, self.results), "variant": variant,  # and which training of each:
                  "run_history_sha1": _sha1(src / "history.json"),
                  "plain_history_sha1": _sha1(plain_dir / "history.json")}
        if (Run(out).result or {}).get("delivered_from") == source:
            return out
        for path in (weights, plain_weights):
            if not path.exists():
                raise FERError(f"cannot deliver {src.name}: {path} is missing (checkpoints are not in git; train "
                               "the row again or copy the file there)")
        ckpt = read_checkpoint(weights)
        cfg, trained = TrainConfig.from_dict(ckpt["config"]), Run(src).result
        splits = load_splits(data or cfg.data, cfg.resolved_input_size(), cfg.tune_fraction, cfg.seed,
                             classes=cfg.classes)
        check_same_dataset(Run(src).fingerprint, dataset_fingerprint(splits.layout, splits), f"the model in {src}")
        tmp = out.with_name(f".{out.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_checkpoint(ckpt, tmp / "best.pt")
        for name in ("config.json", "history.json", "split_stats.json"):
            shutil.copyfile(src / name, tmp / name)
        model, _ = load_checkpoint(tmp / "best.pt", "cpu")
        budget, ms = budget_check(model, load_checkpoint(plain_weights, "cpu")[0], trained["parameters"]["total"],
                                  self.results / LATENCY_FILE, bool(cfg.max_batches))
        extra = {k: trained[k] for k in ("model", "parameters", "best_epoch", "epochs_run", "wall_seconds", "device",
                                         "amp", "interrupted", "max_batches", "dataset") if k in trained}
        if variant == "EMA":
            extra["best_epoch"] = trained["epochs_run"]  # the average at the end of training
        extra |= {"data": str(splits.layout.root), "cpu_latency_ms": ms, "delivered_from": source, "budget": budget}
        dev = pick_device(device)
        evaluate_splits(model.to(dev), dict(splits.items()), tmp, splits.classes, cfg.eval_batch_size,
                        amp_dtype(dev, cfg.amp), cfg.max_batches, extra)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        return out

    def table(self) -> pd.DataFrame:
        """`Study.table` without part (c)'s second seed, which is the comparison's, not a row of this study."""
        return super().table([r for r in self.plan() if r != self.part_c_seed1])

    def final_comparison(self) -> pd.DataFrame | None:
        """Validation accuracy of seeds 0 and 1, their mean and std, and the mean macro-F1: the plain LightVGG of
        part (c) (30 epochs, raw weights, as reported there), then the plain row and the final row at the same
        schedule, each with the weights (raw or EMA) that its seed-0 run selected on tune. `gain` is against the
        plain row at the same schedule. None until the final row's two seeds and part (c)'s exist; the plain
        row's second seed (the baseline, beyond the budget) is NaN until it has run."""
        final = self.final_row()
        if final is None:
            return None
        part_c = self.part_c_seed1
        groups = {f"plain, {part_c.epochs} epochs (part c)": ([study_dirs(self.results)["plain"], self.path(part_c)],
                                                              "raw")}
        for row in ([Row("plain_long", (), self.long_epochs)] if final.changes else []) + [final]:
            dirs = [self.path(replace(row, seed=s)) for s in (0, 1)]
            if not Run(dirs[0]).result:
                return None
            variant = best_variant(dirs[0])[0]
            groups[model_name(row, variant)] = (dirs, variant)
        lines, baseline = {}, list(groups)[1] if len(groups) == 3 else None
        for name, runs in seed_runs(groups).items():
            if runs[0] is None or (runs[1] is None and name != baseline):
                return None
            done = [r for r in runs if r]  # the baseline's seed 1 may be missing
            acc = [r["val_accuracy"] if r else np.nan for r in runs]
            lines[name] = {"seed 0": acc[0], "seed 1": acc[1], "mean": np.mean([r["val_accuracy"] for r in done]),
                           "std": np.std(acc, ddof=1) if runs[1] else np.nan,
                           "macro-F1": np.mean([r["val_macro_f1"] for r in done])}
        table = pd.DataFrame(lines).T
        table["gain"] = table["mean"] - table["mean"].iloc[-2]
        table.index.name = "model"
        table.attrs["part_c_epochs"] = part_c.epochs
        return table


CHANGE_NAMES = {"label_smoothing": "label smoothing", "batch_norm": "batch-norm"}


def model_name(row: Row, variant: str = "raw") -> str:
    """A row as the report names it: its changes (or "plain"), "+ EMA" for averaged weights, and its schedule."""
    parts = [CHANGE_NAMES.get(c, c.replace("_", " ")) for c in row.changes] or ["plain"]
    return " + ".join(parts + (["EMA"] if variant.startswith("EMA") else [])) + f", {row.epochs} epochs"
