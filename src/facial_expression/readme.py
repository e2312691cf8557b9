"""The README's generated blocks: the results tables and what the GPU benchmarks measured (`fer results
--readme`), and the Colab badges (`fer badges`), each written between its <!-- NAME:start --> and
<!-- NAME:end --> markers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .config import PROJ_ROOT, RESULTS_DIR
from .export import tradeoff_table
from .findings import delivery_findings, gpu_findings, mib, study_findings, tradeoff_findings
from .runs import Run, is_training_result
from .study import SecondStudy, screened, screening_summary, study_dirs
from .text import markdown_table, markers, replace_block

README = PROJ_ROOT / "README.md"
BENCHMARKS = PROJ_ROOT / "results" / "benchmarks"

PART_D = ("Part (d), the screening (`ablation/screen10/`): each change alone on the plain model for 10 epochs "
          "(seed 0, sorted by the tune gain that selects them):")


PART_D_SECOND = ("Part (d), the second study (`ablation/long60/`, `light_vgg_final/`): each finished run, its tune "
                 "accuracy (%) for each variant, the variant tune selects and its validation accuracy (%), its cost "
                 "in plain 30-epoch runs, its wall time in minutes and the machine:")


def results_markdown(results_dir: str | Path = RESULTS_DIR) -> str:
    """The results table, generated from results/*/metrics.json (validation split)."""
    rows = {}
    for path in sorted(Path(results_dir).glob("*/metrics.json")):
        m = json.loads(path.read_text())
        if not is_training_result(m):
            continue  # evaluations and smoke runs are not results
        state = "" if Run(path.parent).finished else ", interrupted"
        rows[path.parent.name] = {
            "model": m["model"], "epochs run (best)": f"{m['epochs_run']} ({m['best_epoch']}){state}",
            "val. accuracy": f"{m['accuracy']:.4f}", "val. macro-F1": f"{m['macro_f1']:.4f}",
            "val. macro-AUC": f"{m['macro_auc']:.4f}", "parameters": m["parameters"]["total"],
            "wall time": f"{m['wall_seconds'] / 60:.1f} min", "device": m["device"]}
    columns = ["model", "epochs run (best)", "val. accuracy", "val. macro-F1", "val. macro-AUC", "parameters",
               "wall time", "device"]
    return markdown_table(pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("experiment"))


def ablation_markdown(results: str | Path) -> str:
    """Part (d)'s screening table, from the saved runs ("" before any)."""
    table = screened(study_dirs(results)["screen"])
    return "" if table is None else markdown_table(screening_summary(table))


def second_study_markdown(results: str | Path) -> str:
    """Part (d)'s second study: its finished runs (accuracies in %), where it stands and the delivered model ("" before
    any run)."""
    study = SecondStudy(results)
    if not study.spent():
        return ""
    table = study.table_text()
    return "\n\n".join([PART_D_SECOND, markdown_table(table.set_index("row")), study_findings(study),
                        delivery_findings(study)])


def results_section(results: str | Path) -> str:
    """The whole results block: the runs' table, then part (d)'s tables under their explanation."""
    ablation, second = ablation_markdown(results), second_study_markdown(results)
    return (results_markdown(results) + (f"\n\n{PART_D}\n\n{ablation}" if ablation else "")
            + (f"\n\n{second}" if second else ""))


def gpu_markdown(benchmarks: Path = BENCHMARKS) -> str:
    """One paragraph per GPU benchmark that measured augmentation, each naming its file."""
    paragraphs = []
    for path in sorted(benchmarks.glob("*.json")):
        if text := gpu_findings(json.loads(path.read_text())):
            paragraphs.append(f"{text} Source: `{path.relative_to(benchmarks.parent.parent).as_posix()}`.")
    return "\n\n".join(paragraphs)


def tradeoff_markdown(results: str | Path) -> str:
    """The ONNX/int8 trade-off as P5_c last measured it (RESULTS/export/tradeoff.json): each measured form's size,
    validation accuracy and macro-F1, and single-face latency with 1 and all threads, as a ratio to fp32 PyTorch
    timed in the same call; then the int8 finding and where it was timed ("" before P5_c has run)."""
    path = Path(results) / "export" / "tradeoff.json"
    if not path.exists():
        return ""
    saved, t = json.loads(path.read_text()), tradeoff_table(results).dropna(subset=["accuracy"]).reset_index("form")
    threads = {n: "1 thread" if n == 1 else f"{n} threads" for n in saved["threads"]}
    df = pd.DataFrame({"form": t["form"], "size": t["size_MB"].map(lambda mb: f"{mib(mb):.1f} MiB"),
                       "val. accuracy": t["accuracy"].map("{:.4f}".format),
                       "val. macro-F1": t["macro_f1"].map("{:.4f}".format),
                       **{f"latency, {words}": [f"{ms:.1f} ms ({r:.2f}×)" for ms, r in zip(t[f"latency_ms_{key}"],
                                                                                       t[f"ratio_{key}"])]
                          for n, words in threads.items() for key in ["1_thread" if n == 1 else "all_threads"]}})
    return "\n\n".join([markdown_table(df, code=False), f"{tradeoff_findings(saved['rows'])} Timed on {saved['cpu']} "
                         f"with a 1-minute load average of {saved['load_average_1min']:.1f}."])


def write_results(results: str | Path, readme: Path = README, benchmarks: Path = BENCHMARKS) -> Path:
    """README's generated blocks from a results folder: the results tables, the GPU benchmarks and, where README
    has its markers, the ONNX/int8 trade-off."""
    text = replace_block(readme.read_text(), "results", results_section(results))
    if markers("tradeoff")[0] in text:
        text = replace_block(text, "tradeoff", tradeoff_markdown(results))
    readme.write_text(replace_block(text, "gpu", gpu_markdown(benchmarks)))
    return readme
