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
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .config import PROJ_ROOT, RESULTS_DIR
from .data.fingerprint import describe, group_by_data, mixed_data, results_fingerprints, same_data
from .errors import DataError, FERError
from .evaluation import LATENCY_FILE
from .findings import DEV_SAMPLE_NAME, is_development_sample
from .notebooks import NOTEBOOKS, RESULTS_ID, notebook_record
from .runs import Run, is_training_result

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


REPORTED = ("light_vgg", "vgg16_transfer")  # the runs whose accuracy the report states in its text


def report_number_problems(pages: list[str], results: Path) -> list[str]:
    """The validation accuracy of parts (b) and (c), where they ran, must appear in the report exactly as saved."""
    text = " ".join(" ".join(pages).split())
    problems = []
    for run in REPORTED:
        m = Run(Path(results) / run).metrics
        if not m or not is_training_result(m):
            continue
        shown = f"{100 * m['accuracy']:.1f}"  # the report states each run's accuracy in % with one decimal
        if not re.search(rf"(accuracy (of )?|reaches ){re.escape(shown)} ?%", text):
            problems.append(f"report.pdf does not show {run}'s accuracy {shown} % from {Path(results).name}/{run}/"
                            "metrics.json: run `make report`")
    return problems


def results_of(root: Path) -> Path:
    """The results folder a project's report is built from: $FER_RESULTS or results/ for this checkout."""
    return RESULTS_DIR if Path(root).resolve() == PROJ_ROOT else Path(root) / "results"


@dataclass(frozen=True)
class Allow:
    """What `fer submission` hands in although it would refuse it (each a --allow-... flag)."""

    placeholder: bool = False  # the placeholder name and ID (CI only)
    other_data: bool = False  # a notebook executed on other data or into another results folder than results/
    sample: bool = False  # the development sample's notebooks or results
    smoke: bool = False  # smoke runs (a few batches an epoch)
    interrupted: bool = False  # runs stopped before their last epoch
    mixed: bool = False  # a results folder whose runs saw different data


def _runs(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def results_problems(results: Path, allow: Allow = Allow()) -> tuple[list[str], list[str]]:
    """(refusals, notes) of a results folder: smoke, interrupted and mixed runs, the development sample's runs, and
    a part (b) that was not run (a note: the student hands it in knowingly)."""
    results = Path(results)
    problems, notes = [], []
    where = f"{results.name}/"
    if not allow.mixed and (why := mixed_data(results)):
        problems.append(f"{why} (--allow-mixed hands it in anyway)")
    found = sorted(results.rglob("metrics.json"), key=lambda p: (len(p.parts), p))  # the parts' runs first
    runs = {p.parent.relative_to(results).as_posix(): Run(p.parent)
            for p in found if (p.parent / "config.json").exists()}
    if not runs:  # nothing to check the notebooks and the report against
        return [f"{results} holds no runs, so the notebooks and the report cannot be checked against them: run the "
                "notebooks into it, or take a cloud run with `fer submission --from ZIP`, or set FER_RESULTS to "
                "the results folder your notebooks ran into"], notes
    smoke = [r for r, run in runs.items() if run.smoke]
    if smoke and not allow.smoke:
        problems.append(f"{where} holds smoke runs ({_runs(smoke)}: a few batches an epoch, every number "
                        "meaningless): train them in full (or --allow-smoke)")
    stopped = [r for r, run in runs.items() if run.state == "interrupted"]
    if stopped and not allow.interrupted:
        problems.append(f"{where} holds interrupted runs ({_runs(stopped)}): run their notebooks again to finish "
                        "them (or --allow-interrupted)")
    groups = group_by_data(results_fingerprints(results))
    if not allow.sample and any(is_development_sample(fp) for fp, _ in groups):
        problems.append(f"{where} holds the project's development sample's runs, not yours: run the notebooks on "
                        "the course's data (or --allow-sample)")
    if not (results / "vgg16_transfer" / "metrics.json").exists():
        notes.append(f"part (b) was not run ({where}vgg16_transfer has no results): the report and P5_b say so, "
                     "and the hand-in goes without it")
    return problems, notes


def notebook_data_problem(path: Path, results: Path, allow: Allow = Allow()) -> str | None:
    """Why a notebook's outputs are not of `results`: executed on other data, into another results folder, or
    still the development sample's committed outputs. None when they are (or the flag allows it)."""
    nb = json.loads(Path(path).read_text())
    groups = group_by_data(results_fingerprints(results))
    fp = groups[0][0] if groups else None
    record = notebook_record(nb)
    if record is None:
        return None if allow.other_data else (
            f"{path.name} records no data fingerprint, so it cannot be matched with {results.name}/: execute "
            "it again with this version (or --allow-other-data)")
    nb_fp = dict(record.get("dataset") or {})
    if "ffhq_files" not in nb_fp:  # only printed lines: the sample is known by its name
        nb_fp["ffhq_files"] = int(nb_fp.get("name") == DEV_SAMPLE_NAME)
    if is_development_sample(nb_fp) and not is_development_sample(fp):
        return None if allow.sample else (
            f"{path.name} still holds the development sample's outputs (committed with the project), not a run on "
            f"your data: execute it, or take your cloud run's notebooks with `fer submission --from` (or "
            "--allow-sample)")
    if allow.other_data or fp is None:
        return None
    if not same_data(nb_fp, fp):
        return (f"{path.name} was executed on other data ({describe(nb_fp) if 'files' in nb_fp else nb_fp['name']}) "
                f"than {results.name}/ ({describe(fp) if 'files' in fp else fp.get('name')}): put that run's results "
                "in place, or execute the notebook again (or --allow-other-data)")
    ran_into = record.get("results", {}).get("id")
    here = (results / RESULTS_ID).read_text().split() if (results / RESULTS_ID).exists() else []  # several: merged
    if ran_into and here and ran_into not in here:
        name = record["results"].get("name")
        return (f"{path.name} ran into another results folder ({f'{name}/, ' if name else ''}id {ran_into}) than "
                f"the one being handed in ({results}, id {', '.join(here)}): they come from different runs (a trial "
                "run, or another download); hand in the notebooks and the results of one run (or --allow-other-data)")
    return None


def check_project(root: Path, identity: Identity, allow: Allow = Allow()) -> list[str]:
    """Every problem that would make the hand-in wrong, as a list of one-line messages."""
    root, allow_placeholder = Path(root), allow.placeholder
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
        if (why := notebook_data_problem(nb, results, allow)):
            problems.append(why)
    found, notes = results_problems(results, allow)
    problems += found
    for note in notes:
        print(f"note: {note}")
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


def collect_files(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(files to zip, files left out with the reason), paths relative to `root`."""
    root = Path(root)
    included, left_out = [], []
    for pattern in INCLUDE:
        for f in sorted(root.glob(pattern)):
            rel = f.relative_to(root)
            if SKIP_PARTS & set(rel.parts) or not f.is_file():
                continue
            if f.stat().st_size > MAX_FILE_MB * 2**20:
                left_out.append((rel, f"larger than {MAX_FILE_MB:g} MB"))
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


GRADER_README = """# {student}: HW04, question 5 (facial expression recognition)

- `report/report.pdf`: the report (questions 1 to 5).
- `notebooks/P5_a_preprocessing.ipynb` ... `P5_d_cam.ipynb`: part (a) to (d), executed, with every output.
- `src/facial_expression/`: all the code the notebooks call; `pyproject.toml`, `requirements.txt`: its dependencies.
- `data/README.md`: where the dataset goes. The dataset, checkpoints and caches are not included.

To rerun (Python 3.10 or later):

```bash
python -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt
export FER_DATA=/path/to/affectnet        # the folder that holds train/ and validation/ (or its .zip)
fer notebooks --smoke                     # every cell in a few seconds a notebook, into a temporary folder
fer notebooks                             # the full runs (a GPU is the intended place), in notebooks/ and results/
```

On Colab or Kaggle, open a notebook and set `data` (and `repo_url`, or upload this folder) in its first cell.
"""


def _zip_data_for_rerun(data: str | None, tmp: Path) -> str | None:
    """The data for the zip's smoke rerun: `data`, else the dataset found here, else a small generated course-shaped
    set (the rerun checks that the zip's code runs; its numbers mean nothing)."""
    if data:
        return data
    from .data import find_data_root
    try:
        return str(find_data_root(None))
    except DataError:
        from .demo import make_course_dataset
        print("no dataset here: the rerun uses a small generated course-shaped set")
        return str(make_course_dataset(Path(tmp) / "course-shaped"))


def build_submission(root: Path = PROJ_ROOT, out_dir: Path | None = None, rerun: bool = True,
                     data: str | None = None, allow: Allow = Allow()) -> Path:
    """Check, zip and (optionally) rerun; returns the zip's path. Raises FERError listing every problem."""
    root, identity = Path(root), read_identity(root)
    problems = check_project(root, identity, allow=allow)
    if problems:
        raise FERError("the hand-in is not ready:\n  - " + "\n  - ".join(problems))
    included, left_out = collect_files(root)
    out_dir = Path(out_dir) if out_dir else root / "dist"
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{identity.student_id}_HW04.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in included:
            if rel.as_posix() == "README.md":
                # the grader's README (what is inside, how to rerun it); the project's speaks to developers
                z.writestr("README.md", GRADER_README.format(
                    student=f"{identity.first} {identity.last} ({identity.student_id})"))
            else:
                z.write(root / rel, rel.as_posix())
    print(f"{zip_path}  ({zip_path.stat().st_size / 2**20:.1f} MB, {len(included)} files)")
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            print(f"  {info.file_size / 1024:9.1f} KB  {info.filename}")
    for rel, why in left_out:
        print(f"  left out: {rel} ({why})")
    if rerun:
        print("rerunning the notebooks from the zip in smoke mode ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="fer-rerun-data-") as tmp:
            rerun_from_zip(zip_path, _zip_data_for_rerun(data, Path(tmp)))
        print("rerun from the zip: OK")
    return zip_path


def _unpack(source: Path, tmp: Path) -> Path:
    if source.is_file() and source.suffix.lower() == ".zip":
        dest = tmp / source.stem
        try:
            with zipfile.ZipFile(source) as z:
                z.extractall(dest)
        except zipfile.BadZipFile as e:
            raise FERError(f"cannot unpack {source}: {e}") from None
        return dest
    if source.is_dir():
        return source
    raise FERError(f"{source} is neither a zip nor a folder")


def _is_results(d: Path) -> bool:
    return any((d / "preprocessing" / f).exists() for f in ("split_stats.json", "dataset.json")) \
        or any(d.glob("*/config.json"))


def find_run(sources: list[Path], tmp: Path) -> tuple[Path, dict[str, Path]]:
    """The results folder and the executed notebooks (name -> path) in a cloud run's zip or folders: the zip of
    `fer notebooks --zip`, Kaggle's Output, a results folder from Drive, and notebooks downloaded beside it."""
    results, notebooks = [], {}
    for source in sources:
        source = Path(source).expanduser()
        if source.suffix == ".ipynb" and source.is_file():  # a notebook downloaded on its own (Kaggle: File > Download)
            top, candidates = None, [source]
        else:
            top = _unpack(source, tmp)
            candidates = sorted(top.rglob("P5_*.ipynb"))
        for nb in candidates:
            if ".ipynb_checkpoints" in nb.parts or nb.name.startswith("."):
                continue
            name = next((n for n in NOTEBOOKS if nb.name.startswith(n)), None)
            if name is None:
                continue
            if name in notebooks and notebooks[name] != nb:
                raise FERError(f"two {name} notebooks: {notebooks[name]} and {nb}; pass the folder of one run")
            notebooks[name] = nb
        if top is None:
            continue
        found = [top] if _is_results(top) else [d for d in sorted(top.rglob("*")) if d.is_dir() and _is_results(d)]
        found = [d for d in found if not any(o in d.parents for o in found)]  # run folders inside a results folder
        results += found
    if not results:
        raise FERError(f"no results folder in {', '.join(map(str, sources))} (a results folder holds "
                       "preprocessing/ and run folders such as light_vgg/ with config.json)")
    if len(results) > 1:  # Kaggle: each notebook's version has an Output of its own
        return merge_results(results, tmp / "merged"), notebooks
    return results[0], notebooks


def _run_rank(run: Path) -> tuple:
    """Which of two copies of a run folder to keep: a finished full run over a smoke or interrupted one, then more
    epochs, then more files (on Kaggle, P5_d's copy of part (c)'s run also holds the maps it drew, cam/)."""
    files = sum(1 for p in run.rglob("*") if p.is_file())
    run = Run(run)
    m = run.metrics or {}
    return (bool(m), run.finished, not run.smoke, m.get("epochs_run", 0), files)


def _merge(src: Path, dst: Path, said: list[str]) -> None:
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.name == RESULTS_ID:
            continue
        if not target.exists():
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, target)
        elif entry.name == LATENCY_FILE and "groups" in json.loads(target.read_text()):  # each notebook's, all kept
            groups = json.loads(target.read_text())["groups"]
            new = [g for g in json.loads(entry.read_text()).get("groups", []) if g not in groups]
            target.write_text(json.dumps({"groups": groups + new}, indent=2))
        elif entry.is_dir() and not (entry / "config.json").exists():
            _merge(entry, target, said)  # a folder of runs (ablation/): run by run
        elif entry.is_dir() and not _same_tree(entry, target):
            if _run_rank(entry) > _run_rank(target):
                shutil.rmtree(target)
                shutil.copytree(entry, target)
                said.append(f"{target.name}/ from {src}")
            else:
                said.append(f"{target.name}/ from the folder given before {src}")


def merge_results(folders: list[Path], dest: Path) -> Path:
    """One results folder from several (Kaggle: P5_a, P5_b, P5_c and P5_d each in its own notebook, each with its
    own Output): every run, a run found twice kept where it is a finished full run with the most epochs (else where
    it was given first), said in one line; the identities of all the folders kept, so that each notebook matches."""
    dest.mkdir(parents=True)
    said: list[str] = []
    ids = []
    for folder in folders:
        _merge(folder, dest, said)
        if (folder / RESULTS_ID).exists():
            ids += (folder / RESULTS_ID).read_text().split()
    if ids:
        (dest / RESULTS_ID).write_text("\n".join(dict.fromkeys(ids)) + "\n")
    print(f"merged {len(folders)} results folders ({', '.join(str(f) for f in folders)})"
          + (f"; runs found in more than one kept: {'; '.join(said)}" if said else ""))
    return dest


KEEP_IN_RESULTS = ("benchmarks",)  # committed with the project (results/benchmarks/), not a run


def _same_tree(a: Path, b: Path) -> bool:
    files = lambda d: {p.relative_to(d): p.stat().st_size for p in d.rglob("*") if p.is_file()}  # noqa: E731
    return a.exists() and b.exists() and files(a) == files(b)


def take_run(sources: list[Path], root: Path = PROJ_ROOT) -> tuple[Path, list[Path]]:
    """Put a cloud run's results into the project's results folder and its executed notebooks into notebooks/;
    an earlier results folder is kept beside it as results.before-<time>. Returns (results, notebooks)."""
    root = Path(root)
    dest = results_of(root)
    with tempfile.TemporaryDirectory(prefix="fer-from-") as tmp:
        results, notebooks = find_run(sources, Path(tmp))
        if not notebooks:
            print("note: no executed notebooks came with the results: notebooks/ is left as it is")
        if results.resolve() != dest.resolve() and not _same_tree(results, dest):
            earlier = [p for p in dest.iterdir() if p.name not in KEEP_IN_RESULTS] if dest.exists() else []
            if earlier:  # the earlier runs move aside, whole; the project's committed benchmarks stay
                kept = dest.with_name(f"{dest.name}.before-{time.strftime('%Y%m%d-%H%M%S')}")
                kept.mkdir()
                for p in earlier:
                    p.rename(kept / p.name)
                print(f"kept the earlier runs of {dest.name}/ in {kept.name}/")
            shutil.copytree(results, dest, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("last.pt", "*.tmp", "__pycache__"))
        written = []
        for name, nb in notebooks.items():
            target = root / "notebooks" / f"{name}.ipynb"
            if nb.resolve() != target.resolve():
                shutil.copyfile(nb, target)
            written.append(target)
    print(f"took {dest} and {len(written)} notebook(s) ({', '.join(p.stem for p in written) or 'none'})")
    return dest, written


def submission_from(sources: list[Path], root: Path = PROJ_ROOT, allow: Allow | None = None, **kwargs) -> Path:
    """`fer submission --from`: a cloud run's zip or folders in place, the report from its results alone (no
    dataset), then the checked zip <StudentID>_HW04.zip."""
    from .report import build_pdf, missing_tex, write_analytic_figures, write_report_inputs
    allow = allow or Allow()
    identity = read_identity(root)
    if identity.is_placeholder and not allow.placeholder:  # before anything is copied or built
        raise FERError("report/student.tex still holds placeholders: put your first name, last name and student ID "
                       "there first")
    if missing_tex():
        raise FERError(missing_tex())
    results, _ = take_run(sources, root)
    print(f"building the report from {results} alone ...", flush=True)
    report = Path(root) / "report"
    (report / "report.pdf").unlink(missing_ok=True)  # built anew: latexmk trusts its records over the PDF's content
    write_report_inputs(results, report)
    write_analytic_figures(report)
    print(f"wrote {build_pdf(report)}")
    return build_submission(root, allow=allow, **kwargs)
