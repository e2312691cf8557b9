"""`fer report-tables`: turn a results folder into the LaTeX tables, macros and figures that the report inputs.

No number in the report is typed by hand: each comes from a json file of the results folder given (and only
that folder) through this module, and every sentence that states a finding is generated from those numbers by
findings.py (macros such as \\LightFindings). A result that does not exist is written as "not run" with the reason.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from . import findings
from .analytic import equivariance_demo, equivariance_figure
from .config import REPORT_DIR, RESULTS_DIR, TrainConfig, light_vgg_config, vgg16_config
from .data import statistics_table
from .data.fingerprint import results_dataset
from .errors import FERError
from .experiment import trained_fields
from .findings import settings_table
from .models import architecture_table, build_model, count_parameters
from .plots import draw_run_figures, save_figure
from .runs import Run, is_smoke_run
from .study import DELIVERED, EMA_DECAY, SecondStudy, screened, screening_summary, study_dirs
from .text import PERCENT_KEYS, join, label, latex_table, tex_escape
from .training import History

NOT_RUN = "not run"


def _load(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.exists() else None


def _macro(name: str, value) -> str:
    return rf"\newcommand{{\{name}}}{{{tex_escape(value)}}}"


def experiment_macros(prefix: str, out_dir: Path) -> list[str]:
    """Validation metrics of one experiment as macros, or 'not run'."""
    m = _load(out_dir / "metrics.json")
    if m is None:
        reason = f"{NOT_RUN} (no results in {out_dir.relative_to(out_dir.parents[1])})"
        return [_macro(f"{prefix}{k}", reason) for k in
                ("Accuracy", "MacroFone", "MacroAUC", "Kappa", "Epochs", "BestEpoch", "WallMin", "Device",
                 "Params")] + [rf"\newcommand{{\{prefix}Ran}}{{0}}"]
    se = (m["accuracy"] * (1 - m["accuracy"]) / max(m["n"], 1)) ** 0.5  # binomial standard error
    return [
        _macro(f"{prefix}Accuracy", f"{100 * m['accuracy']:.1f} % (± {100 * se:.1f}, one standard error over "
                                    f"{m['n']:,} images)"),
        _macro(f"{prefix}MacroFone", f"{100 * m['macro_f1']:.1f} %"),
        _macro(f"{prefix}MacroAUC", f"{m['macro_auc']:.3f}"), _macro(f"{prefix}Kappa", f"{m['cohen_kappa']:.3f}"),
        _macro(f"{prefix}Epochs", m["epochs_run"]), _macro(f"{prefix}BestEpoch", m["best_epoch"]),
        _macro(f"{prefix}WallMin", f"{m['wall_seconds'] / 60:.1f}"), _macro(f"{prefix}Device", m["device"]),
        _macro(f"{prefix}Params", f"{m['parameters']['total']:,}"),
        _macro(f"{prefix}TrainAccuracy", f"{m['splits']['train']['accuracy']:.4f}"),
        _macro(f"{prefix}TuneAccuracy", f"{m['splits']['tune']['accuracy']:.4f}"),
        rf"\newcommand{{\{prefix}Ran}}{{1}}",
    ]


def _raw(name: str, tex: str) -> str:
    """A macro whose body is already LaTeX (generated prose)."""
    return rf"\newcommand{{\{name}}}{{{tex}}}"


def _flag(name: str, value: bool) -> str:
    return rf"\newcommand{{\{name}}}{{{int(bool(value))}}}"


def run_settings(out_dir: Path, default_cfg: TrainConfig) -> pd.Series:
    """The settings of one run (config.json, split statistics, history and metrics.json's parameter counts);
    before the run exists, those of `default_cfg`, the run its notebook would make."""
    cfg_d, m = _load(out_dir / "config.json"), _load(out_dir / "metrics.json")
    if cfg_d is None or m is None:
        return settings_table(default_cfg)["value"]
    history = History.load(out_dir / "history.json") if (out_dir / "history.json").exists() else None
    return settings_table(TrainConfig.from_dict(cfg_d), _load(out_dir / "split_stats.json"), m["parameters"],
                          history)["value"]


def settings_tex(results: Path, path: Path) -> None:
    """Parts (b) and (c)'s settings side by side, one row per setting ("--" where a row is one model's own)."""
    columns = {"VGG16 transfer (b)": run_settings(results / "vgg16_transfer", vgg16_config(None, results)),
               "light VGG (c)": run_settings(results / "light_vgg", light_vgg_config(None, results))}
    df = pd.DataFrame(columns)
    df = df.loc[list(dict.fromkeys([*columns["VGG16 transfer (b)"].index, *columns["light VGG (c)"].index]))]
    df.index.name = "setting"
    b, c = df.columns
    df.loc[df[b] == df[c], c] = "as (b)"
    latex_table(df.fillna("--"), path, "p{0.22\\linewidth}p{0.37\\linewidth}p{0.33\\linewidth}")


# Figures that write_report_inputs copies into report/figures: removed first, so that nothing of an
# earlier results folder survives a build from another one.
FIGURES = ("light_*", "vgg_*", "final_*", "cam_correct.pdf", "cam_wrong.pdf", "samples.pdf", "augmented.pdf")


def screening_inputs(results: Path, gen: Path, t: pd.DataFrame | None, n_tune: int | None = None) -> list[str]:
    """The appendix's screening of part (d)'s candidate changes (`t`, its `screening_table`; None: not run): its
    table and findings."""
    if t is not None:
        latex_table(screening_summary(t), gen / "ablation_screen.tex", "p{0.24\\linewidth}rrrrrrrrr", index=False)
        epochs = json.loads((study_dirs(results)["screen"] / "plain_seed0" / "config.json").read_text())["epochs"]
    intro = (f"Each candidate change was first added alone to the plain light VGG and trained for a short "
             f"{epochs}-epoch run (seed 0), everything else fixed; a change that gained more than "
             f"{100 * findings.MIN_GAIN:g} point of tune accuracy was to be kept (\\cref{{tab:ablation-screen}})."
             if t is not None else "")
    return [_flag("ScreenRan", t is not None),
            _macro("ScreenEpochs", f"{epochs} epoch{'s' * (epochs != 1)}" if t is not None else NOT_RUN),
            _raw("ScreenIntro", intro),
            _raw("ScreenFindings", findings.screening_findings(t, findings.MIN_GAIN, n_tune, "tex"))]


def second_study_inputs(results: Path, gen: Path, screen: pd.DataFrame | None, n_train: int | None = None,
                        area: dict | None = None, part_c: dict | None = None) -> list[str]:
    """Part (d)'s test of the proposal on the full schedule: the comparison at the same schedule and seeds (body),
    and every run of the study (appendix)."""
    study = SecondStudy(results)
    ran = study.spent() > 0  # not only the screening row it reuses
    if ran:
        df = study.table_text()
        df["row"] = df["row"].map(findings.row_name)  # prose, not code
        # short headers, so that the table fits the page at a readable size; the caption spells them out
        df = df.drop(columns=["cost", "minutes", "machine"]).rename(columns={
            "epochs": "ep.", **{c: c.removeprefix("tune, ").replace(" + flip", " +flip") for c in df.columns
                                if c.startswith("tune, ")},
            "validation, raw": "val. raw", "validation, EMA": "val. EMA"})
        latex_table(df, gen / "second_study.tex", "p{0.14\\linewidth}" + "r" * (len(df.columns) - 4) + "lrr",
                    index=False)
    final = study.final_comparison()
    if final is not None:
        shown = final.drop(columns=["gain"]).copy()
        for col in ("seed 0", "seed 1", "mean", "std", "macro-F1"):
            shown[col] = shown[col].map(lambda v: "–" if pd.isna(v) else f"{100 * v:.1f}")  # a seed not run
        latex_table(shown, gen / "improvement.tex", "lrrrrr")
    shortcuts = _load(results / DELIVERED / "cam" / "shortcuts.json")
    maps = (findings.map_change_findings(shortcuts, results_dataset(results), area, "tex")
            if shortcuts and "delivered" in shortcuts else "")
    intro = "The second study has not been run on these data yet: the part (d) notebook runs it."
    if ran:
        steps = (f" ({math.ceil(n_train / TrainConfig.batch_size) * study.long_epochs:,} steps of "
                 f"{TrainConfig.batch_size} faces)" if n_train else "")
        intro = (f"The screening's short runs favour changes that learn fast, so a second study trained the candidates "
                 f"for {study.long_epochs} epochs{steps}, each run also keeping an exponential moving average (EMA) of "
                 f"its weights (decay {EMA_DECAY} per step), every other setting as in \\cref{{tab:settings}}'s light "
                 f"VGG column. Rows, and raw or EMA weights, were chosen on tune only, within a budget of "
                 f"{study.budget:g} plain 30-epoch runs fixed beforehand (\\cref{{tab:second-study}}).")
        last = study.final_row()
        if last is not None:
            passed = study.passed_over()
            better = [r for r in passed if study.done(r)]  # the combination of the winners was never trained
            others = (f"; combining the rows that beat the plain {study.long_epochs}-epoch row needed two new runs, "
                      f"which did not fit" if len(better) < len(passed) else "")
            others += (f"; {join([findings.row_name(b.name) for b in better])} did better on tune, but "
                       f"{'its' if len(better) == 1 else 'their'} second seed did not fit" if better else "")
            intro += (f" The final row is {findings.row_name(last.name)}, the best row on tune whose second seed "
                      f"fitted in the budget left{others}.")
            if study.baseline() is not None:
                intro += (f" The plain {study.long_epochs}-epoch row's second seed, needed for the comparison at the "
                          f"same schedule, was trained beyond the budget.")
    delivered = study.delivered.result
    name = findings.delivered_name(delivered, "tex") if delivered else ""
    gap = findings.gap_findings(delivered, part_c, "tex")
    return [_flag("SecondRan", ran), _raw("SecondIntro", intro), _raw("DeliveredName", name),
            _flag("ImprovementRan", final is not None),
            _raw("ImprovementFindings", " ".join([findings.cam_fix_findings(screen, fmt="tex"),
                                                  findings.improvement_findings(final, fmt="tex"),
                                                  findings.delivery_findings(study, "tex"), gap, maps]))]


def _clear_outputs(gen: Path, figs: Path) -> None:
    """Remove what an earlier build wrote from another results folder (q1's macros are not results)."""
    for f in gen.glob("*.tex"):
        if f.name != "q1_macros.tex":
            f.unlink()
    for pattern in FIGURES:
        for f in figs.glob(pattern):
            f.unlink()


SPLIT_ROLES = {"train": ("90 % of the train folder", "fits the weights (augmented)"),
               "tune": ("10 % of the train folder", "selects the epoch and the settings"),
               "validation": ("the validation folder", "the test set: reported, never used to choose")}


def split_table(stats: dict) -> pd.DataFrame:
    """The three splits: where each comes from, its role, its size and its images per class (a range when the
    classes differ)."""
    per = statistics_table(stats).drop(index="total")
    rows = []
    for split, (source, role) in SPLIT_ROLES.items():
        lo, hi = int(per[split].min()), int(per[split].max())
        rows.append({"split": split, "taken from": source, "role": role, "images": f"{int(per[split].sum()):,}",
                     "per class": f"{lo:,}" if lo == hi else f"{lo:,}--{hi:,}"})
    return pd.DataFrame(rows)


def _cards_table(cards: list[dict], path: Path, column: str, state: dict[str, tuple[str, str]],
                 drop: tuple[str, ...] = ()) -> None:
    """Model cards (comparison.json, paper_models.json) as a table, one column per model: human labels,
    accuracies in %, and a row `state` saying whether each model was trained (its two words)."""
    df = pd.DataFrame(cards).set_index("model").T.drop(index=list(drop), errors="ignore")
    df.columns = [c.replace("LightVGG", "light VGG") for c in df.columns]  # the report's name for it
    (row, (yes, no)), = state.items()
    df.loc[row] = [yes if findings.card_ran(c) else no for c in cards]
    for key in PERCENT_KEYS:
        if key in df.index:
            df.loc[key] = [f"{100 * v:.1f}" if isinstance(v, float) else v for v in df.loc[key]]
    if "macro_auc" in df.index:  # to the text's precision
        df.loc["macro_auc"] = [f"{v:.3f}" if isinstance(v, float) else v for v in df.loc["macro_auc"]]
    df = df.rename(index=label)
    df.index.name = ""
    latex_table(df.fillna("--"), path, "p{0.3\\linewidth}" + column * len(df.columns))


def current_cards(cards: list[dict] | None, results: Path) -> list[dict] | None:
    """The model cards of comparison.json with each model's validation metrics from its run folder as it is now:
    on Kaggle P5_c may write the cards in a runtime where part (b) had not run, and the merged results hold it."""
    folders = {"(b)": "vgg16_transfer", "(c)": "light_vgg"}
    for card in cards or []:
        run = next((Run(results / f) for tag, f in folders.items() if tag in card.get("model", "")), None)
        if run is not None and not findings.card_ran(card) and run.finished:
            card.update(trained_fields(run.metrics), status="trained")
    return cards


def _dataset(results: Path, stats: dict | None = None) -> dict | None:
    """The fingerprint of the data behind `results`, from what its runs recorded (no dataset is read), else what
    P5_a's split statistics tell (name, classes, counts, sizes). DataError in one line when its runs saw
    different data: nothing combines them."""
    fp = results_dataset(results)
    if fp:
        return fp
    if stats:
        return {"name": Path(stats.get("root", "dataset")).name, "classes": stats["classes"],
                "counts": stats["per_class"], "image_sizes": stats.get("image_sizes", {})}
    return None


def architecture_inputs(gen: Path, n_classes: int) -> list[str]:
    """The light VGG's layer table for the run's number of classes, and its parameter counts as macros."""
    model = build_model("light-vgg", n_classes)
    arch = architecture_table(model)
    arch.index.name = "block"
    latex_table(arch, gen / "architecture_light_vgg.tex", "lllrr")
    return [_macro("ArchNumClasses", n_classes), _macro("ArchParams", f"{count_parameters(model)['total']:,}"),
            _macro("ArchParamsPaper", f"{count_parameters(build_model('light-vgg', 8))['total']:,}")]


AUGMENTATION_ROWS = {  # augmentation_counts.json key (or "all": every split's images): the row of the report's table
    "all": "all images before augmentation (train, tune and validation)",
    "original_train_samples": "training images before augmentation",
    "distinct_samples_seen_over_run": "training samples after augmentation: a new view of each training image in "
                                      "each of {epochs} (on-line; tune and validation are not augmented)",
}


def write_report_inputs(results: Path = RESULTS_DIR, report: Path = REPORT_DIR) -> list[Path]:
    """Regenerate report/generated/*.tex and report/figures/* from `results` alone (nothing else is read)."""
    results = Path(results)
    results_dataset(results)  # runs of different data are refused in one line, before anything is cleared
    gen, figs = report / "generated", report / "figures"
    gen.mkdir(parents=True, exist_ok=True)
    figs.mkdir(parents=True, exist_ok=True)
    _clear_outputs(gen, figs)
    written = []
    light, vgg = results / "light_vgg", results / "vgg16_transfer"
    macros = experiment_macros("Light", light) + experiment_macros("Vgg", vgg)
    smoke = [p.parent.name for p in sorted(results.glob("*/metrics.json")) if is_smoke_run(_load(p) or {})]
    names = tex_escape(", ".join(r.replace("_", " ") for r in smoke))
    macros.append(_raw("SmokeNote", rf"\textbf{{Smoke run ({names}): trained on a few batches only, to test the "
                                    r"pipeline; every number and finding from it is meaningless.}" if smoke else ""))
    stats = _load(results / "preprocessing" / "split_stats.json") or _load(light / "split_stats.json")
    fp = _dataset(results, stats)
    macros += [_flag("HasFfhq", findings.has_photo_marker(fp)), _raw("DataSentence", findings.data_sentence(fp, "tex"))]
    if stats:
        latex_table(split_table(stats), gen / "split_stats.tex", "lllrl", index=False)
        macros += [_macro("NumClasses", len(stats["classes"])), _macro("NumTrain", f"{stats['totals']['train']:,}"),
                   _macro("NumTune", f"{stats['totals']['tune']:,}"),
                   _macro("NumValidation", f"{stats['totals']['validation']:,}")]
    else:
        macros += [_macro(name, NOT_RUN) for name in ("NumClasses", "NumTrain", "NumTune", "NumValidation")]
    macros.append(_raw("PreprocessingFindings", findings.preprocessing_findings(stats, "tex")))
    counts = _load(results / "preprocessing" / "augmentation_counts.json")
    if counts:
        counts = {**counts, "all": sum(stats["totals"].values()) if stats else None}
        epochs = f"{counts['epochs']} epoch{'s' * (counts['epochs'] != 1)}"
        df = pd.DataFrame({"samples": {row.format(epochs=epochs): counts[key]
                                       for key, row in AUGMENTATION_ROWS.items() if counts[key] is not None}})
        df.index.name = ""
        latex_table(df, gen / "augmentation_counts.tex", "p{0.62\\linewidth}r")
    settings_tex(results, gen / "settings.tex")
    m, v = _load(light / "metrics.json"), _load(vgg / "metrics.json")
    macros += [_raw("LightFindings", findings.training_findings(m, _load(light / "history.json"), "tex")),
               _raw("VggFindings", findings.training_findings(v, _load(vgg / "history.json"), "tex",
                                                              name="VGG16 transfer") if v else
                    findings.vgg_not_run("tex"))]
    if m:
        per = pd.DataFrame(m["per_class"]).T[["precision", "recall", "f1", "auc", "support"]]
        per = per.drop(columns="support").map("{:.3f}".format).assign(faces=per["support"].astype(int))
        per = per.rename(columns={"f1": "F1", "auc": "AUC"})
        per.index.name = "class"
        latex_table(per, gen / "per_class_light_vgg.tex", "lrrrrr")
    comparison = current_cards(_load(results / "comparison.json"), results)
    if comparison:
        _cards_table(comparison, gen / "comparison.tex", "p{0.3\\linewidth}",  # the fp32 weights' row says the size
                     {"status": ("trained", "not trained yet: size and latency of the architecture")},
                     drop=("checkpoint_MB",))
    macros.append(_raw("ComparisonFindings", findings.comparison_findings(comparison, "tex", (m or {}).get("n"),
                                                                          smoke=bool(smoke))))
    regions = _load(light / "cam" / "cam_regions.json")
    if regions:
        df = (100 * pd.DataFrame(regions).rename(columns=label)).T.rename(
            columns={findings.SE: "s.e.", findings.AREA: "area"}).map("{:.1f}".format)
        df.index.name = "region"
        latex_table(df, gen / "cam_regions.tex", "l" + "r" * len(df.columns))
    n_classes = len(m["classes"]) if m else len(fp["classes"]) if fp else len(stats["classes"]) if stats else 8
    area = {k: r[findings.AREA] for k, r in regions.items() if findings.AREA in r} if regions else None
    classes = m["classes"] if m else (fp or {}).get("classes", [])
    macros += [_raw("CamFindings", findings.cam_findings(regions, "tex")),
               _raw("CamFaceFindings", findings.cam_face_findings(_load(light / "cam" / "cam_samples.json"),
                                                                  classes, m, area, "tex")),
               _raw("StyleFindings", findings.photo_style_findings(
                   _load(light / "cam" / "photo_style_summary.json"), fp, "tex",
                   _load(light / "cam" / "photo_style.json")))]
    macros += architecture_inputs(gen, n_classes)
    screen = screened(study_dirs(results)["screen"])  # None: not run
    macros += screening_inputs(results, gen, screen, (stats or {}).get("totals", {}).get("tune"))
    macros += second_study_inputs(results, gen, screen, (stats or {}).get("totals", {}).get("train"), area, m)
    (gen / "macros.tex").write_text(f"% generated by `fer report-tables` from {results.name}/; "
                                    "do not edit\n" + "\n".join(macros) + "\n")
    written += sorted(gen.glob("*.tex"))

    for run, prefix in ((light, "light_"), (vgg, "vgg_"), (results / DELIVERED, "final_")):
        if (run / "metrics.json").exists():
            written += draw_run_figures(run, figs, prefix, png=False)  # at print size, from the run's saved numbers
    copies = {results / "preprocessing" / "figures" / "samples.pdf": "samples.pdf",
              results / "preprocessing" / "figures" / "augmented.pdf": "augmented.pdf",
              light / "cam" / "cam_correct.pdf": "cam_correct.pdf", light / "cam" / "cam_wrong.pdf": "cam_wrong.pdf"}
    for src, name in copies.items():
        if src.exists():
            shutil.copyfile(src, figs / name)
            written.append(figs / name)
    return written


def write_analytic_figures(report: Path = REPORT_DIR) -> list[Path]:
    """Question 1's equivariance figure and its numbers."""
    figs = report / "figures"
    demo = equivariance_demo()
    fig = equivariance_figure(demo)
    written = save_figure(fig, figs / "q1_equivariance")
    plt.close(fig)
    gen = report / "generated"
    gen.mkdir(parents=True, exist_ok=True)
    (gen / "q1_macros.tex").write_text("\n".join([
        _macro("QoneInteriorErr", f"{demo['conv_interior_max_error']:.1e}"),
        _macro("QoneBorderErr", f"{demo['conv_border_max_error']:.2f}"),
        _macro("QonePoolEvenErr", f"{demo['pool_shift2_interior_max_error']:.1e}"),
        _macro("QonePoolOddErr", f"{100 * demo['pool_shift1_relative_error']:.0f}")]) + "\n")
    (figs / "q2_guided.pdf").unlink(missing_ok=True)  # question 2's figure, no longer drawn, from an older build
    return written


def check_latex_log(log: Path, max_overfull_pt: float = 5.0) -> list[str]:
    """Problems in a LaTeX log: undefined references or citations, missing files, wide overfull boxes."""
    text = log.read_text(errors="replace")
    problems = []
    for pattern in (r"LaTeX Warning: Reference `[^']+' on page \d+ undefined",
                    r"LaTeX Warning: Citation `[^']+' on page \d+ undefined",
                    r"LaTeX Warning: There were undefined references",
                    r"File `[^']+' not found", r"! LaTeX Error: [^\n]+"):
        problems += re.findall(pattern, text)
    for width in re.findall(r"Overfull \\hbox \((\d+\.?\d*)pt too wide\)", text):
        if float(width) > max_overfull_pt:
            problems.append(f"overfull hbox {width}pt too wide")
    return problems


TEX_PACKAGES = "latexmk lmodern texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended poppler-utils"


def missing_tex() -> str | None:
    """What the PDF build lacks on this machine and how to get it, or None when it can build."""
    missing = [tool for tool in ("latexmk", "pdflatex") if shutil.which(tool) is None]
    if not missing:
        return None
    return (f"{' and '.join(missing)} not found, so the report cannot be built here: sudo apt-get install "
            f"{TEX_PACKAGES} (or `make setup`), or build report/ on Overleaf (see README)")


def build_report(results: Path = RESULTS_DIR) -> Path:
    """Tables, macros and figures from `results`, then report/report.pdf."""
    write_report_inputs(Path(results))
    write_analytic_figures()
    return build_pdf()


def build_pdf(report: Path = REPORT_DIR) -> Path:
    """latexmk -pdf report.tex, then fail on undefined references, missing files, wide overfull boxes, floats
    without a caption, and on a PDF that is not ready to print (`check_pdf`)."""
    if missing_tex():
        raise FERError(missing_tex())
    r = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
                       cwd=report, capture_output=True, text=True)
    problems = check_latex_log(report / "report.log") + check_captions(report)
    if r.returncode == 0:
        problems += check_pdf(report / "report.pdf")
    if r.returncode != 0 or problems:
        raise FERError(f"report build failed: {'; '.join(problems[:8]) or r.stdout[-800:]}")
    return report / "report.pdf"


def check_captions(report: Path) -> list[str]:
    """Figure and table environments of the report's sources without a caption."""
    problems = []
    for tex in sorted(report.glob("*.tex")) + sorted(report.glob("generated/*.tex")):
        for env, body in re.findall(r"\\begin\{(figure|table)\}(.*?)\\end\{\1\}", tex.read_text(), re.S):
            if "\\caption" not in body:
                problems.append(f"{tex.name}: a {env} without a caption")
    return problems


SNAKE_CASE = re.compile(r"[A-Za-z0-9]_[A-Za-z0-9]")
MIN_FONT_PT = 7.95  # 8 pt, the smallest text allowed in print


def check_pdf(pdf: Path, bottom_margin_cm: float = 2.3) -> list[str]:
    """A PDF ready to print: no text below 8 pt, nothing but the page number in the footer (below the text
    block), and no snake_case identifier anywhere (the report has no code listing)."""
    import pdfplumber  # the build's own check; a requirement of the project (requirements.txt)

    problems = []
    with pdfplumber.open(pdf) as doc:
        for number, page in enumerate(doc.pages, 1):
            small = sorted({c["text"] for c in page.chars if c["upright"] and c["size"] < MIN_FONT_PT
                            and not (c["text"].isdigit() and c["size"] >= 5.5)})  # footnote marks
            if small:
                problems.append(f"page {number}: text below 8 pt ({''.join(small)[:20]})")
            footer = page.height - bottom_margin_cm / 2.54 * 72
            words = page.extract_words()
            below = [w["text"] for w in words if w["top"] > footer + 2]
            if below != [str(number)]:
                problems.append(f"page {number}: the footer holds {' '.join(below)[:60]!r}, not only the page number")
            snake = [w["text"] for w in words if SNAKE_CASE.search(w["text"])]
            if snake:
                problems.append(f"page {number}: identifiers in the text: {', '.join(snake[:5])}")
    return problems
