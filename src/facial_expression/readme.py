"""The README's generated blocks: the results tables and what the GPU benchmarks measured (`fer results
--readme`), and the Colab badges (`fer badges`), each written between its <!-- NAME:start --> and
<!-- NAME:end --> markers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .config import PROJ_ROOT, RESULTS_DIR
from .findings import delivery_findings, gpu_findings, replace_block, study_findings
from .runs import Run, is_training_result
from .study import CHANGES, Study, final_summary, screening_summary, study_dirs

README = PROJ_ROOT / "README.md"
BENCHMARKS = PROJ_ROOT / "results" / "benchmarks"

PART_D = ("Part (d), the ablation (`ablation/`, `light_vgg_improved/`): the plain and the improved model on the "
          "full schedule, mean ± std over seeds 0 and 1, when both have run; then the screening, each change alone "
          "on the plain model (seed 0, sorted by the tune gain that selects them):")


PART_D_SECOND = ("Part (d), the second study (`ablation/long60/`, `light_vgg_final/`): each finished run, its tune "
                 "accuracy (%) for each variant, the variant tune selects and its validation accuracy (%), its cost "
                 "in plain 30-epoch runs, its wall time in minutes and the machine:")


def results_markdown(results_dir: str | Path = RESULTS_DIR) -> str:
    """The results table, generated from results/*/metrics.json (validation split)."""
    lines = ["| experiment | model | epochs run (best) | val. accuracy | val. macro-F1 | val. macro-AUC | "
             "parameters | wall time | device |", "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(Path(results_dir).glob("*/metrics.json")):
        m = json.loads(path.read_text())
        if not is_training_result(m):
            continue  # evaluations and smoke runs are not results
        epochs = f"{m['epochs_run']} ({m['best_epoch']}){'' if Run(path.parent).finished else ', interrupted'}"
        lines.append(f"| `{path.parent.name}` | {m['model']} | {epochs} | "
                     f"{m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['macro_auc']:.4f} | "
                     f"{m['parameters']['total']:,} | {m['wall_seconds'] / 60:.1f} min | {m['device']} |")
    return "\n".join(lines)


def _markdown(df: pd.DataFrame) -> str:
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join([f"`{i}`" if i in CHANGES else str(i)] + [str(v) for v in row]) + " |"
              for i, row in df.iterrows()]
    return "\n".join(lines)


def ablation_markdown(results: str | Path) -> str:
    """Part (d)'s tables: the seeds comparison and the screening, from the saved runs ("" before any)."""
    tables = (final_summary(results), screening_summary(study_dirs(results)["screen"]))
    return "\n\n".join(_markdown(t) for t in tables if t is not None)


def second_study_markdown(results: str | Path) -> str:
    """Part (d)'s second study: its finished runs (accuracies in %), where it stands and the delivered model ("" before
    any run)."""
    study = Study(results)
    if not study.spent():
        return ""
    table = study.table_text()
    table["row"] = table["row"].map("`{}`".format)
    return "\n\n".join([PART_D_SECOND, _markdown(table.set_index("row")), study_findings(study),
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


def write_results(results: str | Path, readme: Path = README, benchmarks: Path = BENCHMARKS) -> Path:
    text = replace_block(readme.read_text(), "results", results_section(results))
    readme.write_text(replace_block(text, "gpu", gpu_markdown(benchmarks)))
    return readme
