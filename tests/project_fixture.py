"""A copy of the project whose report is built once per test run (conftest.py's `sample_project`): the development
sample's committed runs as its results/, its notebooks as if executed on them, its report's inputs made from them and
a test identity in report/student.tex. The hand-in tests (test_submission.py) and the report's build checks
(test_report.py) read the same build."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nbformat

from facial_expression.config import PROJ_ROOT, SAMPLE_RESULTS_DIR
from facial_expression.data.fingerprint import results_dataset
from facial_expression.notebooks import RECORD_KEY
from facial_expression.report import write_report_inputs

IDENTITY = ("Ada", "Lovelace", "98765432")


def executed_on(src: Path, dst: Path, record: dict) -> None:
    """A notebook's source as if executed (every code cell numbered, no outputs) on the data of `record`: the
    tests never read the student's executed notebooks, which may hold any dataset."""
    nb = nbformat.read(src, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count, cell.outputs = i + 1, []
    nb.metadata[RECORD_KEY] = record
    nbformat.write(nb, dst)


def copy_project(dst: Path) -> Path:
    """A copy of the project whose results/ holds the development sample's committed runs, its notebooks executed
    on them and its report's tables made from them (not from the student's results/)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pt", "*.aux", "*.log", "*.fls", "*.fdb_latexmk", "*.toc",
                                    "*.out", "affectnet*")
    for name in ("src", "report", "data"):
        shutil.copytree(PROJ_ROOT / name, dst / name, ignore=ignore)
    shutil.copytree(SAMPLE_RESULTS_DIR, dst / "results", ignore=ignore)
    (dst / "notebooks").mkdir()
    record = {"dataset": results_dataset(dst / "results")}
    for nb in sorted((PROJ_ROOT / "notebooks").glob("P5_*.ipynb")):
        executed_on(nb, dst / "notebooks" / nb.name, record)
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy(PROJ_ROOT / name, dst / name)
    write_report_inputs(dst / "results", dst / "report")
    return dst


def set_identity(root: Path, first: str, last: str, sid: str) -> None:
    (root / "report" / "student.tex").write_text(
        f"\\newcommand{{\\StudentFirstName}}{{{first}}}\n\\newcommand{{\\StudentLastName}}{{{last}}}\n"
        f"\\newcommand{{\\StudentID}}{{{sid}}}\n")


def build_pdf(root: Path) -> Path:
    """latexmk on root/report (its log is checked by the tests that read the PDF, test_report.py)."""
    r = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
                       cwd=root / "report", capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:]
    return root / "report" / "report.pdf"
