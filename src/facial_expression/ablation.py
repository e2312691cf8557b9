"""The ablation of part (d): one change at a time on the plain LightVGG of P5_c, then the combination.

Every row is a full run (`run_experiment`) on the whole training split with the same schedule; the
tune split picks the epoch and decides which changes help, and validation/ is evaluated once per
finished run. Finished runs are not trained again and an interrupted one resumes (`runs.Run`), so an
interrupted study resumes where it stopped. The tables are built from the saved results, never typed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .config import TrainConfig
from .data import load_splits
from .data.fingerprint import mismatch
from .errors import FERError
from .evaluation import LATENCY_REPEATS, measure_latencies, save_json
from .experiment import by_tta, run_experiment
from .models import build_model, count_parameters, model_options
from .runs import Run

PLAIN = "plain (part c)"  # the plain LightVGG's row in the final tables
PARAM_BUDGET = 3_750_000  # the paper's LightVGG budget (Hewitt & Gunes 2018)
LATENCY_FILE = "latency.json"  # in the screening folder: each row's CPU latency, all measured in one call

# row name -> (what changes, TrainConfig overrides on top of the plain LightVGG of P5_c)
CHANGES: dict[str, tuple[str, dict]] = {
    "plain": ("the paper's LightVGG, as in part (c)", {}),
    "batch_norm": ("batch-norm after every conv and dense layer", {"batch_norm": True}),
    "gaussian_dropout": ("Gaussian dropout 0.2 after each pool", {"gaussian_dropout": 0.2}),
    "class_weights": ("class-balanced (inverse-frequency) loss", {"class_weights": True}),
    "label_smoothing": ("label smoothing 0.1", {"label_smoothing": 0.1}),
    "trivial_augment": ("TrivialAugmentWide and random erasing", {"augment": "trivial"}),
    "mixup_cutmix": ("MixUp or CutMix per batch (alpha 0.4)", {"mix": "both", "mix_alpha": 0.4}),
    "adamw_cosine": ("AdamW (decay 0.05), cosine with 1 warm-up epoch",
                     {"optimizer": "adamw", "weight_decay": 0.05, "schedule": "cosine"}),
    "gap_head": ("global-average-pooling head", {"head": "gap"}),
    "face_mask": ("soft face ellipse on the input (CAM: border)", {"mask": True}),
    "photometric": ("strong colour jitter, grey-scale (CAM: photo style)", {"augment": "photometric"}),
}


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


def config_differences(run_dir: str | Path, changes: list[str], **settings) -> dict[str, tuple]:
    """The settings in which the run saved in `run_dir` differs from the plain LightVGG with `changes` and
    `settings`, at the run's own epochs and seed, as name -> (saved, expected); where it ran, its precision
    and batch limit aside."""
    saved = Run(run_dir).config
    expected = row_config(changes, **{**settings, "epochs": saved["epochs"], "seed": saved["seed"]})
    return expected.differences(saved, ignore={"data", "out", "max_batches", "amp", "device"})


def run_rows(rows: dict[str, list[str]], root: str | Path, epochs: int, seeds=(0,), data: str | None = None,
             progress: bool = True, dirs: dict[str, str | Path] | None = None, **settings) -> list[Path]:
    """Train every row (name -> list of changes) for every seed into root/<name>_seed<seed>/, or into
    dirs["<name>_seed<seed>"] where given.

    Finished rows are skipped; an interrupted one resumes from its last.pt. A row interrupted here (Ctrl-C) stops
    the call. Returns the finished run folders.
    """
    root, done, splits_by_seed = Path(root), [], {}
    for seed in seeds:
        for name, changes in rows.items():
            out = Path((dirs or {}).get(f"{name}_seed{seed}", root / f"{name}_seed{seed}"))
            if Run(out).finished:
                print(f"{out.name}: finished earlier, skipped")
                done.append(out)
                continue
            cfg = row_config(changes, epochs=epochs, seed=seed, data=data, out=str(out), **settings)
            if seed not in splits_by_seed:
                splits_by_seed[seed] = load_splits(data, cfg.resolved_input_size(), cfg.tune_fraction, seed,
                                                   progress=progress, classes=cfg.classes)
            classes = len(splits_by_seed[seed].classes)
            n = count_parameters(build_model("light-vgg", classes, **model_options(cfg)))["total"]
            if n > PARAM_BUDGET:
                raise FERError(f"{name}: {n:,} parameters is over the {PARAM_BUDGET:,} budget")
            print(f"== {out.name}: {', '.join(changes) or 'plain'} ({epochs} epoch{'s' if epochs != 1 else ''}, "
                  f"seed {seed})", flush=True)
            if run_experiment(cfg, progress=progress, splits=splits_by_seed[seed]).history.interrupted:
                return done  # Ctrl-C: stop here; the next call resumes this row
            done.append(out)
    return done


def measure_row_latencies(root: str | Path, rows: dict[str, list[str]], n_classes: int,
                          smoke: bool = False) -> dict[str, float]:
    """Single-image CPU latency (ms) of each row's architecture (name -> changes), measured in one call,
    interleaved, on random weights (speed does not depend on them); rows of one architecture share one
    measurement. Saved as root/latency.json, from which the tables take their ratios: each run's own
    measurement, taken at the end of its training, compares runs timed at different moments. A saved
    measurement is kept while it covers every row with the architecture it timed, so that rerunning a
    notebook on another machine leaves the committed ratios as they were; a row whose architecture
    changed (a new `improved`) has everything measured again. Delete latency.json to measure again."""
    cfgs = {name: row_config(changes) for name, changes in rows.items()}
    arch = {name: architecture(cfg, n_classes) for name, cfg in cfgs.items()}
    saved = _load_latency(root)
    if any(saved.get(name, {}).get("architecture") != a for name, a in arch.items()):
        models = {a: build_model("light-vgg", n_classes, **model_options(cfgs[name])).eval()
                  for name, a in arch.items()}
        ms = measure_latencies({a: (m, m.input_size) for a, m in models.items()}, "cpu",
                               *LATENCY_REPEATS["smoke" if smoke else "run"])
        saved = {name: {"ms": ms[a]["median_ms"], "architecture": a} for name, a in arch.items()}
        save_json(saved, Path(root) / LATENCY_FILE)
    return {name: saved[name]["ms"] for name in rows}


def architecture(cfg: TrainConfig, n_classes: int) -> str:
    """The model a config builds, as one line ("batch_norm=False, ..., classes=7"): what latency depends on."""
    return ", ".join(f"{k}={v}" for k, v in sorted(model_options(cfg).items())) + f", classes={n_classes}"


def _load_latency(root: str | Path) -> dict[str, dict]:
    """latency.json as {row: {"ms", "architecture"}}; a file of an older commit ({row: ms}) has no architecture,
    so that `measure_row_latencies` measures it again."""
    path = Path(root) / LATENCY_FILE
    saved = json.loads(path.read_text()) if path.exists() else {}
    return {name: row if isinstance(row, dict) else {"ms": row, "architecture": None} for name, row in saved.items()}


def row_latencies(root: str | Path) -> dict[str, float]:
    """Each row's CPU ms that `measure_row_latencies` saved under root ({} before it ran)."""
    return {name: row["ms"] for name, row in _load_latency(root).items()}


def load_run(run_dir: str | Path) -> dict:
    """One finished run as a flat dict: settings, validation and tune metrics, TTA, size and speed."""
    run = Run(run_dir)
    m, cfg = run.metrics, run.config
    flip = by_tta(m)["flip_tta"]
    return {
        "run": run.path.name, "seed": cfg["seed"], "epochs": m["epochs_run"], "best_epoch": m["best_epoch"],
        "parameters": m["parameters"]["total"], "cpu_latency_ms": m.get("cpu_latency_ms"),
        "tune_accuracy": m["splits"]["tune"]["accuracy"],
        "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"], "val_macro_auc": m["macro_auc"],
        "tta": bool(m.get("tta")),
        "tune_accuracy_flip_tta": flip.get("tune", {}).get("accuracy"),
        "val_accuracy_flip_tta": flip.get("validation", {}).get("accuracy"),
        "per_class_f1": {c: v["f1"] for c, v in m["per_class"].items()},
        "wall_minutes": m["wall_seconds"] / 60,
    }


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


def _grouped_runs(groups: dict[str, list[str | Path]]) -> dict[str, list[dict]]:
    """Each model's finished runs (`load_run`), all on the data of the first finished one (`same_data_runs`)."""
    reference = next((r.fingerprint for dirs in groups.values() for r in map(Run, dirs) if r.finished), None)
    return {name: [load_run(d) for d in same_data_runs(dirs, reference)] for name, dirs in groups.items()}


def screening_table(root: str | Path, baseline: str = "plain", reference: dict | None = None) -> pd.DataFrame:
    """One row per change (seed 0 runs under root), with its tune and validation effect against the
    plain row; 'tune Δ' is what the selection uses. Runs on other data than `reference` (by default the
    plain row's) are left out."""
    rows, latency = [], row_latencies(root)
    dirs = sorted(Path(root).glob("*_seed0"), key=lambda d: (d.name != f"{baseline}_seed0", d.name))
    dirs = same_data_runs(dirs, reference)
    if not all(d.name.removesuffix("_seed0") in latency for d in dirs):
        latency = {}  # one call must have timed every row shown, or each run's own measurement is used
    for run_dir in dirs:
        name = run_dir.name.removesuffix("_seed0")
        r = load_run(run_dir)
        rows.append({"row": name, "change": CHANGES[name][0] if name in CHANGES else name,
                     "parameters": r["parameters"], "CPU ms": latency.get(name, r["cpu_latency_ms"]),
                     "best epoch": r["best_epoch"],
                     "tune acc.": r["tune_accuracy"], "tune acc. +flip": r.get("tune_accuracy_flip_tta"),
                     "val. acc.": r["val_accuracy"], "val. acc. +flip": r.get("val_accuracy_flip_tta"),
                     "val. macro-F1": r["val_macro_f1"], "val. macro-AUC": r["val_macro_auc"],
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
    """The changes whose tune accuracy beat the plain row by more than `min_gain` (tune split only), largest
    gain first."""
    gains = table["tune Δ"].sort_values(ascending=False, kind="stable")
    return [name for name, gain in gains.items() if name in CHANGES and name != "plain" and gain > min_gain]


def seeds_table(groups: dict[str, list[str | Path]]) -> pd.DataFrame:
    """Mean ± standard deviation over seeds for each model (name -> its run folders).

    Every run must share the data of the first finished one; others are left out with one line each.
    """
    rows = []
    for name, runs in _grouped_runs(groups).items():
        if not runs:
            continue
        row = {"model": name, "seeds": ", ".join(str(r["seed"]) for r in runs), "parameters": runs[0]["parameters"],
               "CPU ms": float(np.mean([r["cpu_latency_ms"] for r in runs if r["cpu_latency_ms"] is not None]
                                       or [np.nan]))}
        for key, label in (("tune_accuracy", "tune acc."), ("tune_accuracy_flip_tta", "tune acc. +flip"),
                           ("val_accuracy", "val. acc."),
                           ("val_accuracy_flip_tta", "val. acc. +flip"),
                           ("val_macro_f1", "val. macro-F1"), ("val_macro_auc", "val. macro-AUC")):
            if any(r.get(key) is None for r in runs):
                continue  # runs evaluated before flip TTA was measured
            values = np.array([r[key] for r in runs])
            row[label] = f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0:.4f}"
            row[label + " mean"] = values.mean()
        row["minutes per run"] = float(np.mean([r["wall_minutes"] for r in runs]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def per_class_f1(groups: dict[str, list[str | Path]]) -> pd.DataFrame:
    """Validation F1 per class, mean over each model's seeds: classes x models."""
    return pd.DataFrame({name: pd.DataFrame([r["per_class_f1"] for r in runs]).mean()
                         for name, runs in _grouped_runs(groups).items() if runs})


def study_dirs(results: str | Path) -> dict[str, Path]:
    """Where the study lives under a results folder: the screening, the 30-epoch runs, the delivered model."""
    results = Path(results)
    return {"screen": results / "ablation" / "screen10", "final": results / "ablation" / "final30",
            "improved": results / "light_vgg_improved", "plain": results / "light_vgg"}


def final_groups(results: str | Path) -> dict[str, list[Path]]:
    """The two models of the final comparison and their run folders (seed 0, seed 1)."""
    d = study_dirs(results)
    return {PLAIN: [d["plain"], d["final"] / "plain_seed1"],
            "improved": [d["improved"], d["final"] / "improved_seed1"]}


def _pct(v) -> str:
    return "–" if v is None or v != v else f"{100 * v:.1f}"


def screening_summary(root: str | Path) -> pd.DataFrame | None:
    """The screening table ready to print (accuracies in %, gains in points); None before any run."""
    if not any(Run(p.parent).finished for p in Path(root).glob("*/metrics.json")):
        return None
    t = screening_table(root)
    gain = lambda v: f"{100 * v:+.1f}"  # noqa: E731
    df = pd.DataFrame({"change": t["change"], "M params": t["parameters"].map(lambda v: f"{v / 1e6:.3f}"),
                       "latency": (t["CPU ms"] / t["CPU ms"].iloc[0]).map(lambda v: f"{v:.2f}×"),
                       "tune": t["tune acc."].map(_pct), "tune Δ": t["tune Δ"].map(gain),
                       "val.": t["val. acc."].map(_pct), "val. Δ": t["val. Δ"].map(gain),
                       "val. flip": t["val. acc. +flip"].map(_pct), "val. F1": t["val. macro-F1"].map(_pct),
                       "val. AUC": t["val. macro-AUC"].map(lambda v: f"{v:.3f}")})
    df.index.name = "row"
    return df


def final_summary(results: str | Path) -> pd.DataFrame | None:
    """The seeds comparison ready to print; None until every run of `final_groups` has finished."""
    groups = final_groups(results)
    if not all(Run(p).finished for dirs in groups.values() for p in dirs):
        return None
    t = seeds_table(groups)
    cols = [c for c in ("seeds", "parameters", "CPU ms", "tune acc.", "tune acc. +flip", "val. acc.",
                        "val. acc. +flip", "val. macro-F1", "val. macro-AUC") if c in t.columns]
    t = t[cols].copy()
    latency = row_latencies(study_dirs(results)["screen"])
    if {"plain", "improved"} <= set(latency):  # measured in one call: a fair ratio
        t["CPU ms"] = [latency["plain"] if name == PLAIN else latency["improved"] for name in t.index]
    t["parameters"] = t["parameters"].map(lambda v: f"{int(v):,}")
    t["CPU ms"] = (t["CPU ms"] / t["CPU ms"].iloc[0]).map(lambda v: f"{v:.2f}×")
    return t.rename(columns={"CPU ms": "latency"})
