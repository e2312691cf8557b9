"""`fer submission`: check the project, zip it as <StudentID>_HW04.zip, and rerun the zip's notebooks.

The student's identity lives in one place, report/student.tex, which the report's header also reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .config import PROJ_ROOT, RESULTS_DIR
from .errors import FERError
from .evaluation import is_training_result

PLACEHOLDERS = {"FIRSTNAME", "LASTNAME", "STUDENTID"}
MAX_FILE_MB = 20.0  # larger files (checkpoints, caches) stay out of the zip
INCLUDE = ("notebooks/P5_*.ipynb", "src/**/*.py", "pyproject.toml", "requirements.txt", "README.md",
           "data/README.md", "report/report.pdf")
SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints"}


@dataclass(frozen=True)
class Identity:
    first: str
    last: str
    student_id: str

    @property
    def is_placeholder(self) -> bool:
        return bool({self.first, self.last, self.student_id} & PLACEHOLDERS) or not all(
            (self.first, self.last, self.student_id))


def read_identity(root: Path = PROJ_ROOT) -> Identity:
    """First name, last name and student ID from report/student.tex."""
    path = Path(root) / "report" / "student.tex"
    if not path.exists():
        raise FERError(f"{path} is missing: it holds the student's name and ID")
    text = path.read_text()

    def get(name: str) -> str:
        m = re.search(r"\\newcommand\{\\" + name + r"\}\{([^}]*)\}", text)
        if not m:
            raise FERError(f"{path} does not define \\{name}")
        return m.group(1).strip()
    return Identity(get("StudentFirstName"), get("StudentLastName"), get("StudentID"))


def notebook_problems(path: Path) -> list[str]:
    """Unexecuted code cells and error outputs of one notebook."""
    nb = json.loads(path.read_text())
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code" and "".join(c.get("source", "")).strip()]
    unrun = sum(c.get("execution_count") is None for c in code)
    errors = sum(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
    problems = []
    if unrun:
        problems.append(f"{path.name}: {unrun} code cell(s) not executed")
    if errors:
        problems.append(f"{path.name}: {errors} error output(s)")
    return problems


def pdf_text(pdf: Path) -> list[str]:
    """The PDF's text, one string per page (pdftotext)."""
    if shutil.which("pdftotext") is None:
        raise FERError("pdftotext not found: apt-get install poppler-utils")
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return [p for p in out.split("\f") if p.strip()]


def report_number_problems(pages: list[str], results: Path) -> list[str]:
    """Every finished experiment's validation accuracy must appear in the report exactly as saved."""
    text = " ".join(" ".join(pages).split())
    problems = []
    for path in sorted(Path(results).glob("*/metrics.json")):
        m = json.loads(path.read_text())
        if not is_training_result(m):
            continue
        shown = f"{100 * m['accuracy']:.1f}"  # the report states each run's accuracy in % with one decimal
        if not re.search(rf"(accuracy (of )?|reaches ){re.escape(shown)} ?%", text):
            problems.append(f"report.pdf does not show {path.parent.name}'s accuracy {shown} % "
                            f"from {path.relative_to(Path(results).parent)}: run `make report`")
    return problems


def results_of(root: Path) -> Path:
    """The results folder a project's report is built from: $FER_RESULTS or results/ for this checkout."""
    return RESULTS_DIR if Path(root).resolve() == PROJ_ROOT else Path(root) / "results"


def check_project(root: Path, identity: Identity, allow_placeholder: bool = False) -> list[str]:
    """Every problem that would make the hand-in wrong, as a list of one-line messages."""
    root = Path(root)
    results = results_of(root)
    problems = []
    if identity.is_placeholder and not allow_placeholder:
        problems.append("report/student.tex still holds placeholders: put your first name, last name and "
                        "student ID there, then run `make report`")
    notebooks = sorted((root / "notebooks").glob("P5_*.ipynb"))
    if len(notebooks) < 4:
        problems.append(f"expected the four P5 notebooks in notebooks/, found {len(notebooks)}")
    for nb in notebooks:
        problems += notebook_problems(nb)
    pdf = root / "report" / "report.pdf"
    if not pdf.exists():
        return problems + ["report/report.pdf is missing: run `make report`"]
    for metrics in sorted(results.glob("*/metrics.json")):
        if metrics.stat().st_mtime > pdf.stat().st_mtime:
            problems.append(f"report/report.pdf is older than {metrics.relative_to(results.parent)}: "
                            "run `make report`")
    pages = pdf_text(pdf)
    names = (identity.first, identity.last, identity.student_id)
    missing = [i + 1 for i, page in enumerate(pages) if not all(n in page for n in names)]
    if missing:
        problems.append(f"report.pdf pages {missing[:5]}{'...' if len(missing) > 5 else ''} lack "
                        f"'{identity.first} {identity.last} {identity.student_id}' in the header: run `make report`")
    if not allow_placeholder and any(p in page for page in pages for p in PLACEHOLDERS):
        problems.append("report.pdf still shows the placeholder name or ID: run `make report`")
    problems += report_number_problems(pages, results)
    return problems


def collect_files(root: Path, max_file_mb: float = MAX_FILE_MB) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(files to zip, files left out with the reason), paths relative to `root`."""
    root = Path(root)
    included, left_out = [], []
    for pattern in INCLUDE:
        for f in sorted(root.glob(pattern)):
            rel = f.relative_to(root)
            if SKIP_PARTS & set(rel.parts) or not f.is_file():
                continue
            if f.stat().st_size > max_file_mb * 2**20:
                left_out.append((rel, f"larger than {max_file_mb:g} MB"))
            elif rel not in included:
                included.append(rel)
    for pattern, why in (("results/**/*.pt", "checkpoint (not part of the hand-in)"),
                         ("data/**/*", "dataset (never handed in)")):
        left_out += [(f.relative_to(root), why) for f in sorted(root.glob(pattern))
                     if f.is_file() and f.name != "README.md"][:5]
    return included, left_out


def rerun_from_zip(zip_path: Path, data: str | None = None, notebooks: list[str] | None = None) -> None:
    """Unpack the zip into a temporary folder and execute its notebooks (default: all four) in smoke mode from
    there, with the zip's own package."""
    with tempfile.TemporaryDirectory(prefix="fer-handin-") as tmp:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(tmp)
        env = dict(os.environ, PYTHONPATH=str(Path(tmp) / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "facial_expression", "notebooks", "--smoke", "--output-dir",
               str(Path(tmp) / "smoke")] + (["-p", "data", str(data)] if data else []) \
            + (["--only", *notebooks] if notebooks else [])
        r = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise FERError(f"the notebooks did not rerun from the zip: {(r.stderr or r.stdout)[-1500:]}")
        if str(Path(tmp) / "notebooks") not in r.stdout:
            raise FERError("the rerun did not use the zip's own notebooks")


def build_submission(root: Path = PROJ_ROOT, out_dir: Path | None = None, allow_placeholder: bool = False,
                     rerun: bool = True, data: str | None = None, max_file_mb: float = MAX_FILE_MB) -> Path:
    """Check, zip and (optionally) rerun; returns the zip's path. Raises FERError listing every problem."""
    root = Path(root)
    identity = read_identity(root)
    problems = check_project(root, identity, allow_placeholder)
    if problems:
        raise FERError("the hand-in is not ready:\n  - " + "\n  - ".join(problems))
    included, left_out = collect_files(root, max_file_mb)
    out_dir = Path(out_dir) if out_dir else root / "dist"
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{identity.student_id}_HW04.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in included:
            z.write(root / rel, rel.as_posix())
    print(f"{zip_path}  ({zip_path.stat().st_size / 2**20:.1f} MB, {len(included)} files)")
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            print(f"  {info.file_size / 1024:9.1f} KB  {info.filename}")
    for rel, why in left_out:
        print(f"  left out: {rel} ({why})")
    if rerun:
        print("rerunning the notebooks from the zip in smoke mode ...", flush=True)
        rerun_from_zip(zip_path, data)
        print("rerun from the zip: OK")
    return zip_path
