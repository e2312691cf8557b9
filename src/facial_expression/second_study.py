"""Part (d), the second study: changes that survive the full schedule, chosen on tune, confirmed on two seeds,
within a stated budget of training.

The first study (ablation.py) screened changes for 10 epochs; its winner lost on the full schedule, because a
short screen favours fast starters. This one fixes its protocol before any run (PROTOCOL) and spends at most
BUDGET plain 30-epoch runs, counted by `Row.cost`:

1. `plain_long`, `smoothing_long`: the plain LightVGG and label smoothing 0.1 for LONG_EPOCHS epochs, each
   recording an EMA of its weights in the same run; flip TTA is measured on every finished run. One run thus
   answers three questions: the longer schedule, EMA and TTA.
2. `bn_lr<lr>`: batch-norm for SWEEP_EPOCHS epochs at each of SWEEP_LRS; the screening's batch-norm row (10
   epochs at the plain learning rate, seed 0) is reused, not trained again. `bn_long` runs at the best of them
   on tune.
3. The rows that beat `plain_long` on tune are combined (`combined_long`, when more than one does); the final
   row is trained again with seed 1 and compared, mean ± std over seeds 0 and 1, with the plain LightVGG of
   part (c) (its seeds 0 and 1).
4. `Study.deliver` writes the final row's seed-0 model, raw or EMA weights as tune chose, as a run of its own
   (RESULTS/light_vgg_final) and checks the paper's budget, its CPU latency timed in one call with the plain
   model's. Flip TTA is measured on every run but never selected: two passes per face take about twice the
   latency, above the budget's 1.5x (`delivery_findings` reports the measured ratio).

Every run that exists is skipped and an interrupted one resumes from last.pt, so `fer ablation --study long`
finishes the study from where it stopped, on any machine. `--workers N` trains the rows whose settings are known
side by side (what that gained on a GPU: results/benchmarks/, `findings.gpu_findings`). A row that
would overrun the budget is not started: the command stops, says what is left and how much budget it needs
(`--budget`).
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

from .ablation import PARAM_BUDGET, config_differences, run_rows, study_dirs
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .config import MIN_GAIN, TrainConfig
from .data import load_splits
from .data.fingerprint import check_same_dataset, dataset_fingerprint
from .errors import FERError
from .evaluation import LATENCY_REPEATS, FlipTTA, measure_latencies
from .experiment import by_tta, evaluate_splits
from .findings import delivery_findings, second_study_findings
from .runs import Run
from .runtime import amp_dtype, pick_device

LONG_EPOCHS = 60  # the longer schedule: the plain model's best epoch was 29 of 30
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

PROTOCOL = (
    f"Every kept row is trained on the full schedule ({LONG_EPOCHS} epochs); batch-norm's learning rate comes from "
    f"a {SWEEP_EPOCHS}-epoch sweep on tune.",
    "Each long run records an exponential moving average of its weights (decay "
    f"{EMA_DECAY} per step) and is evaluated with and without flip test-time augmentation, so one run "
    "answers the longer schedule, EMA and TTA.",
    "Rows, and the raw or EMA weights, are selected on the tune split only; validation/ is evaluated once "
    "per finished run and selects nothing.",
    f"The delivered model keeps the paper's budget: at most {PARAM_BUDGET / 1e6:g}M parameters at 128×128 and "
    f"a CPU latency at most {MAX_LATENCY:g}× the plain model's, measured in the same run. Flip test-time "
    "augmentation runs the network twice per face, so its variants are measured and shown but never selected.",
    "The final row is the best candidate on tune that the budget left can confirm on a second seed: the "
    f"combination of the rows that beat the plain 60-epoch row by more than {100 * MIN_GAIN:g} point on tune (two "
    "new seeds), else each such row in order of tune accuracy, else the plain 60-epoch row.",
    "The final comparison is mean ± std over seeds 0 and 1 against the plain LightVGG of part (c); "
    f"the target is a gain of at least {100 * TARGET:.0f} points of validation accuracy.",
    f"Budget: at most {BUDGET:g} plain 30-epoch runs, a batch-norm step counted as "
    f"{STEP_COST['batch_norm']:g} plain steps; runs that already exist cost nothing.",
)


@dataclass(frozen=True)
class Row:
    """One run of the study: a name, the changes on the plain LightVGG, its schedule and seed."""

    name: str
    changes: tuple[str, ...] = ()
    epochs: int = LONG_EPOCHS
    lr: float | None = None  # None: the plain model's
    ema: bool = True  # record an EMA of the weights (the long rows)
    seed: int = 0

    @property
    def folder(self) -> str:
        return f"{self.name}_seed{self.seed}"

    def cost(self) -> float:
        """In plain 30-epoch runs."""
        return self.epochs / 30 * math.prod(STEP_COST.get(c, 1.0) for c in self.changes)

    def settings(self) -> dict:
        return {**({"lr": self.lr} if self.lr is not None else {}), **({"ema": EMA_DECAY} if self.ema else {})}


def _sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


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


def budget_check(model, plain, parameters: int, smoke: bool = False) -> tuple[dict, float]:
    """The paper's budget for a delivered model: its parameters, and its single-image CPU latency (alone and with
    flip TTA) against the plain model's, measured interleaved in one call. The check and the model's ms."""
    size = model.input_size
    timed = {"plain": (plain, plain.input_size), "delivered": (model, size), "delivered + flip": (FlipTTA(model), size)}
    ms = {k: v["median_ms"] for k, v in measure_latencies(timed, "cpu",
                                                          *LATENCY_REPEATS["smoke" if smoke else "run"]).items()}
    budget = {"parameters": parameters, "max_parameters": PARAM_BUDGET, "input_size": size,
              "latency_ratio": ms["delivered"] / ms["plain"], "max_latency_ratio": MAX_LATENCY,
              "flip_latency_ratio": ms["delivered + flip"] / ms["plain"], "plain_cpu_latency_ms": ms["plain"]}
    budget["within"] = parameters <= PARAM_BUDGET and budget["latency_ratio"] <= MAX_LATENCY
    return budget, ms["delivered"]


class Study:
    """The second study under `root` (results/ablation/long60): its rows, what is done, what comes next."""

    def __init__(self, results: str | Path, root: str | Path | None = None, budget: float = BUDGET,
                 long_epochs: int = LONG_EPOCHS, sweep_epochs: int = SWEEP_EPOCHS):
        self.results = Path(results)
        self.root = Path(root) if root else self.results / "ablation" / f"long{long_epochs}"
        self.budget, self.long_epochs, self.sweep_epochs = budget, long_epochs, sweep_epochs

    def path(self, row: Row) -> Path:
        if row.name == f"bn_lr{SWEEP_LRS[0]:g}" and self._reusable_screen_row():
            return study_dirs(self.results)["screen"] / "batch_norm_seed0"
        return self.root / row.folder

    def _reusable_screen_row(self) -> bool:
        """Whether the screening's batch-norm row is the sweep's first row."""
        screen = study_dirs(self.results)["screen"] / "batch_norm_seed0"
        return (Run(screen).finished and not config_differences(screen, ["batch_norm"], lr=SWEEP_LRS[0])
                and Run(screen).config["epochs"] == self.sweep_epochs)

    def done(self, row: Row) -> bool:
        return Run(self.path(row)).finished

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

        Candidates, in order: the combination of the long rows that beat plain_long on tune by more than
        MIN_GAIN (two new seeds), each such row by its tune accuracy (seed 1 only), then plain_long itself. Where
        none fits, the first one (the budget then stops the study and says what it needs). None until every long
        row has run.
        """
        rows = self.long_rows()
        if len(rows) < 3 or not all(self.done(r) for r in rows):
            return None
        tune = {r: best_variant(self.path(r))[1]["tune"] for r in rows}
        winners = sorted((r for r in rows[1:] if tune[r] > tune[rows[0]] + MIN_GAIN), key=tune.get, reverse=True)
        candidates = [(w, w.cost()) for w in winners] + [(rows[0], rows[0].cost())]
        if len(winners) > 1:
            changes = tuple(c for r in rows[1:] if r in winners for c in r.changes)
            lr = next((r.lr for r in winners if r.lr is not None), None)
            combined = Row("combined_long", changes, self.long_epochs, lr)
            candidates.insert(0, (combined, 2 * combined.cost()))
        left = self.budget - self._spent(self.first_rows() + [self.bn_row()])  # every row before the final one
        return next((row for row, cost in candidates if cost <= left + 1e-9), candidates[0][0])

    def baseline(self) -> Row | None:
        """The plain row's second seed, when the final row is another: the comparison at the same schedule and
        seeds. It is run beyond the budget, which the protocol fixed before this comparison was asked for."""
        final = self.final_row()
        return None if final is None or not final.changes else Row("plain_long", (), self.long_epochs, seed=1)

    def plan(self) -> list[Row]:
        """Every row known so far, in the order they run; later rows appear once earlier ones have finished."""
        rows = self.first_rows()
        if (bn := self.bn_row()) is not None:
            rows.append(bn)
        if (final := self.final_row()) is not None:
            rows += [r for r in (final, replace(final, seed=1), self.baseline()) if r is not None and r not in rows]
        return rows

    def spent(self) -> float:
        """The budget used by the runs this study trained (runs reused from the screening, and the baseline's
        second seed, cost nothing)."""
        baseline = self.baseline()
        return self._spent([r for r in self.plan() if r != baseline])

    def _spent(self, rows: list[Row]) -> float:
        return sum(r.cost() for r in rows if self.done(r) and self.path(r).parent == self.root)

    def todo(self) -> list[Row]:
        return [r for r in self.plan() if not self.done(r)]

    def findings(self, fmt: str = "md", compare: bool = True) -> str:
        """Where the study stands, in the words the notebook, the report and the CLI share: nothing run, what is
        left (and the budget it needs), and (with `compare`) the final comparison against the target."""
        todo = self.todo()
        return second_study_findings(self.spent(), self.budget, [r.folder for r in todo], sum(r.cost() for r in todo),
                                     self.final_comparison() if compare else None, TARGET, fmt)

    def run(self, data=None, max_batches: int | None = None, workers: int = 1, **settings) -> list[Path]:
        """Train the missing rows until the study is complete or the next row would overrun the budget; returns
        the finished run folders (`findings` says what is left).

        With workers > 1 (a large GPU), the rows whose settings are already known train at the same time, each
        in its own process; a row that depends on others (bn_long, the final rows) starts once they finish.
        """
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
        committed, rows = self.spent() + sum(r.cost() for r in running), []
        for row in (r for r in self.todo() if r not in running):
            extra = row == self.baseline()  # beyond the budget
            if len(rows) == slots or (not extra and committed + row.cost() > self.budget + 1e-9):
                break
            rows.append(row)
            committed += 0 if extra else row.cost()
        return rows

    def _train(self, row: Row, data, max_batches: int | None, progress: bool, settings: dict) -> list[Path]:
        return run_rows({row.name: list(row.changes)}, self.root, row.epochs, (row.seed,), data,
                        max_batches=max_batches, progress=progress, **settings, **row.settings())

    def deliver(self, data=None, device: str = "auto") -> Path | None:
        """The final row's seed-0 model, in the variant tune selected (raw or EMA weights), as a run folder of its
        own (RESULTS/light_vgg_final): best.pt, its settings, history and split statistics, metrics and figures of
        every split, and the paper's budget checked: parameters, and the CPU latency against part (c)'s plain
        model, measured interleaved in this call (the flip-TTA variant's beside it). None until the final
        comparison exists. A delivery of the same runs (their history.json unchanged) is kept; another replaces
        it whole, written aside first so that a failure leaves no half-built folder."""
        if self.final_comparison() is None:
            return None
        src, plain_dir, out = self.path(self.final_row()), study_dirs(self.results)["plain"], self.results / DELIVERED
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
                                  smoke=bool(cfg.max_batches))
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

    def delivery_findings(self, fmt: str = "md") -> str:
        return delivery_findings(Run(self.results / DELIVERED).result, f"{DELIVERED}/", fmt)

    def table(self) -> pd.DataFrame:
        """One line per finished run: schedule, cost, tune accuracy of each variant, the variant tune selects
        and its validation accuracy, wall time and machine."""
        lines, baseline = [], self.baseline()
        for r in self.plan():
            if not self.done(r):
                continue
            m, v = Run(self.path(r)).result, variants(self.path(r))
            chosen, _ = best_variant(self.path(r))
            lines.append({"row": r.name, "seed": r.seed, "changes": ", ".join(r.changes) or "none",
                          "epochs": r.epochs, "lr": r.lr if r.lr is not None else TrainConfig.lr,
                          "cost": 0.0 if self.path(r).parent != self.root or r == baseline else r.cost(),
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
        return t.drop(columns=["changes"]).assign(
            **{c: t[c].map(lambda v: "–" if pd.isna(v) else f"{100 * v:.1f}") for c in pct},
            cost=t["cost"].map("{:.2f}".format), minutes=t["minutes"].map("{:.0f}".format),
            lr=t["lr"].map("{:g}".format))

    def final_comparison(self) -> pd.DataFrame | None:
        """Validation accuracy of seeds 0 and 1, their mean and std, and the mean macro-F1: the plain LightVGG of
        part (c) (30 epochs, raw weights, as reported there), then the plain row and the final row at the same
        schedule, each with the weights (raw or EMA) that its seed-0 run selected on tune. `gain` is against the
        plain row at the same schedule. None until the final row's two seeds and part (c)'s exist; the plain
        row's second seed (the baseline, beyond the budget) is NaN until it has run."""
        final, d = self.final_row(), study_dirs(self.results)
        if final is None:
            return None
        groups = {"plain, 30 epochs (part c)": ([d["plain"], d["final"] / "plain_seed1"], "raw")}
        for row in ([Row("plain_long", (), self.long_epochs)] if final.changes else []) + [final]:
            dirs = [self.path(replace(row, seed=s)) for s in (0, 1)]
            if not Run(dirs[0]).result:
                return None
            groups[model_name(row, best_variant(dirs[0])[0])] = (dirs, best_variant(dirs[0])[0])
        lines, baseline = {}, list(groups)[1] if len(groups) == 3 else None
        for name, (dirs, variant) in groups.items():
            m = [Run(p).result for p in dirs]
            if m[0] is None or (m[1] is None and name != baseline):
                return None
            scores = [_variant_metrics(x, variant) if x else (np.nan, np.nan) for x in m]
            acc, f1 = [a for a, _ in scores], [f for _, f in scores]
            done = [i for i, x in enumerate(m) if x]  # the baseline's seed 1 may be missing
            lines[name] = {"seed 0": acc[0], "seed 1": acc[1], "mean": np.mean([acc[i] for i in done]),
                           "std": np.std(acc, ddof=1) if m[1] else np.nan,
                           "macro-F1": np.mean([f1[i] for i in done])}
        table = pd.DataFrame(lines).T
        table["gain"] = table["mean"] - table["mean"].iloc[-2]
        table.index.name = "model"
        return table


CHANGE_NAMES = {"label_smoothing": "label smoothing", "batch_norm": "batch-norm"}


def model_name(row: Row, variant: str = "raw") -> str:
    """A row as the report names it: its changes (or "plain"), "+ EMA" for averaged weights, and its schedule."""
    parts = [CHANGE_NAMES.get(c, c.replace("_", " ")) for c in row.changes] or ["plain"]
    return " + ".join(parts + (["EMA"] if variant.startswith("EMA") else [])) + f", {row.epochs} epochs"


def _variant_metrics(m: dict, variant: str) -> tuple[float, float]:
    """Validation accuracy and macro-F1 of one variant ("raw" or "EMA") of a finished run's metrics."""
    split = (m["ema"]["no_tta"] if variant == "EMA" else by_tta(m)["no_tta"])["validation"]
    return split["accuracy"], split.get("macro_f1", float("nan"))
