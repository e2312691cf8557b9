"""Helpers the notebooks call, and the runner that executes them with papermill."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
import uuid
import warnings
import zipfile
from pathlib import Path

import matplotlib.pyplot as plt

from .config import NOTEBOOKS_DIR, PROJ_ROOT, RESULTS_DIR, TrainConfig
from .config import light_vgg_config, vgg16_config  # noqa: F401 (the notebooks import them here)
from .data import find_data_root, resolve_layout
from .data.fingerprint import dataset_fingerprint
from .errors import FERError, error_line, set_where
from .experiment import PAPER_MODELS
from .findings import settings_table  # noqa: F401 (the notebooks import it here)
from .text import markers, replace_block
from .models import build_model, estimate_epoch_seconds
from .models.cost import SUSTAINED_TFLOPS
from .plots import apply_style
from .runs import Run
from .runtime import describe_hardware, pick_device, seed_everything

NOTEBOOKS = ("P5_a_preprocessing", "P5_b_transfer_vgg16", "P5_c_light_vgg", "P5_d_cam")
PATH_PARAMS = ("data", "results", "vgg16_weights")
COLAB_RESULTS = Path("/content/drive/MyDrive/fer_results")  # Drive outlives the Colab runtime
KAGGLE_RESULTS = Path("/kaggle/working/results")  # saved as the notebook's output on Kaggle
# smoke mode: every step once, on 2 batches of 16 images per epoch; the numbers mean nothing
SMOKE_PARAMS = {"epochs": 1, "max_batches": 2, "batch_size": 16, "vgg16_weights": "none", "smoke": True,
                "run_ablation": True}


def paper_model_config(model: str, data, results, **settings) -> TrainConfig:
    """One of the paper's light networks, trained with part (c)'s recipe into RESULTS/<its folder>."""
    folder, _ = PAPER_MODELS[model]
    return TrainConfig(model=model, data=str(data), out=str(Path(results) / folder), **settings)


def _absolute(params: dict) -> dict:
    """Paths given relative to where the command runs, made absolute: each notebook runs in notebooks/."""
    out = dict(params)
    for key in PATH_PARAMS:
        value = out.get(key)
        if isinstance(value, str) and value.lower() not in ("", "none", "imagenet"):
            out[key] = str(Path(value).expanduser().resolve())
    for var in ("FER_DATA", "FER_RESULTS", "FER_CACHE", "FER_VGG16_WEIGHTS"):
        if os.environ.get(var) and not Path(os.environ[var]).expanduser().is_absolute():
            os.environ[var] = str(Path(os.environ[var]).expanduser().resolve())
    return out


def run_notebooks(names=NOTEBOOKS, params: dict | None = None, smoke: bool = False,
                  output_dir: str | Path | None = None, kernel: str = "python3") -> list[Path]:
    """Execute notebooks in order with papermill; stop at the first failing cell with one line.

    Normal mode replaces the notebooks in notebooks/ with their executed versions; smoke mode (1 epoch,
    2 batches, random VGG16 allowed) writes executed copies and all results into `output_dir` (a temporary
    folder by default). Either way a notebook executes into a temporary file first, which replaces the
    destination only when every cell succeeded: a failed run never destroys committed outputs.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    params = _absolute(params or {})
    if smoke:
        out = Path(output_dir or tempfile.mkdtemp(prefix="fer-smoke-"))
        params = {**SMOKE_PARAMS, "results": str(out / "results"), **params}
    else:
        out = Path(output_dir) if output_dir else NOTEBOOKS_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        src = NOTEBOOKS_DIR / f"{name}.ipynb"
        dst = out / f"{name}.ipynb"
        tmp = out / f".{name}.running.ipynb"
        print(f"executing {src} -> {dst}", flush=True)
        declared = pm.inspect_notebook(str(src))
        # smoke settings go only to the notebooks that declare them; the caller's go everywhere
        nb_params = {k: v for k, v in params.items() if k in declared or k not in SMOKE_PARAMS}
        try:
            pm.execute_notebook(str(src), str(tmp), parameters=nb_params, kernel_name=kernel,
                                cwd=str(NOTEBOOKS_DIR), progress_bar=False)
        except PapermillExecutionError as e:
            evalue = str(e.evalue).strip().splitlines()
            raise FERError(f"{name}: cell In[{e.exec_count or e.cell_index}] failed: {e.ename}: "
                           f"{evalue[-1] if evalue else ''} ({dst.name} is unchanged; the failed run is in "
                           f"{tmp})") from None
        _record_parameters(tmp)
        os.replace(tmp, dst)
        written.append(dst)
    return written


DEMO_BANNER = ("*** DEMO: synthetic faces of a generated course-shaped set, 1 epoch of 2 batches a run. Every number "
               "it prints means nothing; it shows the path, not a result. ***")


def run_demo(out_dir: str | Path = "fer-demo", kernel: str = "python3") -> tuple[list[Path], Path]:
    """`fer notebooks --demo`: the main job with no dataset at hand. A small course-shaped set is generated
    (facial_expression.demo), the four notebooks run on it in smoke mode into `out_dir` (their own results folder;
    notebooks/ and results/ are never touched), and the results and executed notebooks are zipped as a cloud run's
    would be. Returns (executed notebooks, zip)."""
    from .demo import make_course_dataset
    out = Path(out_dir).resolve()
    data = out / "affectnet-demo"
    if not (data / "train").is_dir():
        make_course_dataset(data)
    print(DEMO_BANNER, flush=True)
    written = run_notebooks(NOTEBOOKS, {"data": str(data)}, smoke=True, output_dir=out, kernel=kernel)
    zipped = zip_outputs(out / "results", written, out / "fer_results.zip")
    print(DEMO_BANNER)
    return written, zipped


RECORD_KEY = "facial_expression"  # notebook and output metadata: the data and results a notebook ran on


CLOUD_PATHS = ("/kaggle/", "/content/")  # where a cloud run read and wrote: no machine of the student's


def _shown_path(value: str) -> str:
    """A path for a parameter record: relative to the project (`examples/affectnet7_sample`,
    `../shared/data/affectnet7`), so that no machine's layout outlives the run; a cloud path (/kaggle/input/...,
    /content/drive/...) as given, since it says where the run read."""
    if not Path(value).is_absolute() or value.startswith(CLOUD_PATHS):
        return value
    return os.path.relpath(value, PROJ_ROOT)


def _record_parameters(path: Path) -> None:
    """Turn papermill's injected-parameters code cell into a markdown record of the parameters (paths relative
    to the project), and copy the data and results fingerprint that the environment cell displayed into the
    notebook's metadata (RECORD_KEY).

    Left as code, the parameters would silently override the parameters cell the next time someone presses Run
    all (in Jupyter, Colab or Kaggle, where papermill does not replace it).
    """
    import nbformat
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters-record" in tags:
            continue  # the record of an earlier run
        if cell.cell_type == "code" and "injected-parameters" in tags:
            lines = []
            for line in cell.source.splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                m = re.match(r'^(\w+) = "(.*)"$', line)
                if m and m.group(1) in PATH_PARAMS:
                    line = f'{m.group(1)} = "{_shown_path(m.group(2))}"'
                lines.append(line)
            body = "\n".join(lines)
            cell = nbformat.v4.new_markdown_cell(
                f"*Executed by `fer notebooks` with these parameters:*\n\n```python\n{body}\n```",
                metadata={"tags": ["parameters-record"]})
        cells.append(cell)
    nb.cells = cells
    record = notebook_record(nb)
    if record:
        nb.metadata[RECORD_KEY] = record
    nbformat.write(nb, path)


def notebook_record(nb) -> dict | None:
    """What an executed notebook recorded about its data and results ({'dataset': fingerprint, 'results': {'id',
    'name'}}): the environment cell's output, written by this very execution (a notebook run by hand, Run all on
    Colab or Kaggle, papermill), else the notebook's metadata, which an execution may have inherited from the
    notebook it started from. None for a notebook executed before records existed."""
    outputs = [out for cell in nb["cells"] if cell["cell_type"] == "code" for out in cell.get("outputs", [])]
    for out in outputs:
        record = out.get("metadata", {}).get(RECORD_KEY)
        if record:
            return dict(record)
    meta = nb.get("metadata", {}) if isinstance(nb, dict) else nb.metadata
    if meta.get(RECORD_KEY):
        return dict(meta[RECORD_KEY])
    return printed_record(outputs)


def printed_record(outputs: list[dict]) -> dict | None:
    """The record from the environment cell's printed lines, where a frontend kept the text and not the output's
    metadata: `dataset  PATH (N classes: a, b, ...)` and `fingerprint  data SHA1, results folder ID` (the second
    only from this version on)."""
    def text(out) -> str:
        t = out.get("text") or out.get("data", {}).get("text/plain", "")
        return "".join(t) if isinstance(t, list) else t
    everything = "\n".join(text(out) for out in outputs)
    data = re.search(r"(?m)^dataset\s+(\S.*?) \(\d+ classes: ([^)]*)\)", everything)
    if not data:
        return None
    record = {"dataset": {"name": Path(data.group(1)).name, "classes": [c.strip() for c in data.group(2).split(",")]}}
    fp = re.search(r"(?m)^fingerprint\s+data ([0-9a-f]{16}), results folder (\w+)", everything)
    if fp:
        record["dataset"]["files_sha1"] = fp.group(1)
        record["results"] = {"id": fp.group(2)}
    return record


# the checkpoints a downloaded run keeps: part (c)'s model and part (d)'s delivered one, for `fer predict`; the
# report and the hand-in need none (P5_d saves question 2's figure), and VGG16's best.pt alone is over 500 MB
ZIPPED_CHECKPOINTS = ("light_vgg/best.pt", "light_vgg_final/best.pt")


def zip_outputs(results: str | Path, notebooks: list[Path], zip_path: str | Path) -> Path:
    """One zip of the results folder and the executed notebooks, for download: checkpoints only those of
    ZIPPED_CHECKPOINTS (the others are left out, and said)."""
    results, zip_path = Path(results), Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    left = []
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(results.rglob("*")):
            if not f.is_file() or f.name.endswith(".tmp") or "__pycache__" in f.parts:
                continue
            rel = f.relative_to(results)
            if f.suffix == ".pt" and rel.as_posix() not in ZIPPED_CHECKPOINTS:
                left.append(f)
                continue
            z.write(f, Path("results") / rel)
        for nb in notebooks:
            z.write(nb, Path("notebooks") / Path(nb).name)
    if left:
        mb = sum(f.stat().st_size for f in left) / 2**20
        print(f"left {len(left)} checkpoint{'s' if len(left) != 1 else ''} ({mb:,.0f} MB) out of {zip_path.name}: the "
              f"report and the hand-in need none; they stay in {results}")
    return zip_path


def tidy_results(results: str | Path, keep_last: bool = False) -> list[Path]:
    """The last cell of every notebook: remove last.pt of every finished run under `results` (best.pt holds its
    model, and a finished run is never trained again), so that a saved output (Kaggle's) or a Drive folder holds
    what the report and `fer predict` need; an unfinished run keeps its last.pt to resume. Nothing with
    `keep_last`."""
    if keep_last:
        return []
    removed = [run.last for run in map(Run, sorted(p.parent for p in Path(results).rglob("last.pt")))
               if run.trained and run.best.exists()]  # training over: best.pt is all that is evaluated
    mb = sum(last.stat().st_size for last in removed) / 2**20
    for last in removed:
        last.unlink()
    if removed:
        print(f"removed last.pt of {len(removed)} finished run{'s' if len(removed) != 1 else ''} ({mb:,.0f} MB; "
              "best.pt holds each model): set keep_last = True in the parameters cell to keep them")
    return removed


def cloud_platform() -> str | None:
    """'colab', 'kaggle' or None."""
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG"):
        return "colab"
    if "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
        return "kaggle"
    return None


def results_dir(results: str | None) -> Path:
    """The notebooks' results folder: the parameter, else Drive on Colab, /kaggle/working on Kaggle,
    else $FER_RESULTS or the repository's results/. The cloud defaults outlive the runtime."""
    if results:
        return Path(results).expanduser()
    if os.environ.get("FER_RESULTS"):
        return RESULTS_DIR
    return {"colab": COLAB_RESULTS, "kaggle": KAGGLE_RESULTS}.get(cloud_platform(), RESULTS_DIR)


def _mount_drive_if_needed(*paths) -> None:
    """On Colab, mount Google Drive when a path lies under /content/drive and it is not mounted yet."""
    if cloud_platform() == "colab" and any(str(p).startswith("/content/drive") for p in paths if p):
        if not Path("/content/drive/MyDrive").is_dir():
            from google.colab import drive
            drive.mount("/content/drive")


# a results folder's identity, which the notebooks that ran into it record (not a hidden file: downloads keep it)
RESULTS_ID = "results_id.txt"


def results_id(results: Path, create: bool = False) -> str | None:
    """The identity of a results folder (made once, when a notebook first writes there), or None."""
    path = Path(results) / RESULTS_ID
    if not path.exists():
        if not create:
            return None
        path.write_text(uuid.uuid4().hex[:12] + "\n")
    return path.read_text().strip()


def _code_cells(path: Path) -> list[str]:
    try:
        nb = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    return ["".join(c["source"]) for c in nb.get("cells", []) if c.get("cell_type") == "code"]


def _definition(name: str) -> re.Pattern:
    n = re.escape(name)
    return re.compile(rf"(?m)^\s*(?:(?:\w+\s*,\s*)*{n}\s*(?:,\s*\w+\s*)*=(?!=)|(?:from\s+\S+\s+)?import\s.*\b{n}\b"
                      rf"|(?:def|class)\s+{n}\b|for\s.*\b{n}\b.*\sin\s|with\s.*\sas\s+{n}\b)")


def earlier_cell_hint(name: str, current: str, notebooks_dir: Path = NOTEBOOKS_DIR) -> str | None:
    """Which earlier code cell of this notebook defines `name`, for a NameError in the cell whose source is
    `current`; None when no notebook here has that cell."""
    current = current.strip()
    for path in sorted(Path(notebooks_dir).glob("P5_*.ipynb")):
        cells = _code_cells(path)
        here = next((i for i, c in enumerate(cells) if c.strip() and c.strip() == current), None)
        if here is None:
            continue
        pattern = _definition(name)
        for i in range(here - 1, -1, -1):
            if pattern.search(cells[i]):
                lines = [line.strip() for line in cells[i].splitlines() if line.strip()]
                first = next((line for line in lines if line.startswith("#")), lines[0] if lines else "")
                return (f"NameError: {name} is set by code cell {i + 1} of {path.stem} (it begins "
                        f"'{first[:60]}'): run the cells above this one first (Run all, or Run before)")
    return None


def _one_line_errors() -> None:
    """In IPython (Jupyter, Colab, Kaggle): this package's errors as the one line the CLI prints, and a NameError
    of a name that an earlier cell sets as that cell's name, instead of tracebacks."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def handler(self, etype, value, tb, tb_offset=None):
        stb = None
        if issubclass(etype, FERError):
            stb = [error_line(value)]
        elif issubclass(etype, NameError) and getattr(value, "name", None):
            history = self.user_ns.get("_ih") or [""]
            hint = earlier_cell_hint(value.name, history[-1])
            stb = [hint] if hint else None
        if stb is None:
            stb = self.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
        # shown here: IPython (7 to 9) only validates what a custom handler returns. In a kernel this sends the
        # cell's error output (its name and message, which papermill and Run all stop on) with `stb` as traceback
        self._showtraceback(etype, value, stb)
        return stb
    shell.set_custom_exc((FERError, NameError), handler)


def _quiet_warnings() -> None:
    """Each warning once per runtime, as one line without the source line that raised it."""
    warnings.filterwarnings("once", category=UserWarning)  # the package's; the default filters keep the rest quiet
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"{category.__name__}: {message}\n"


def _display_record(record: dict, line: str) -> None:
    """Show `line` and attach `record` to it as output metadata, which the saved notebook keeps (Jupyter, Colab,
    Kaggle's Save Version): `fer submission` reads it there."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display({"text/plain": line}, raw=True, metadata={RECORD_KEY: record})
    else:
        print(line)


def _where_results_live(results: Path) -> str:
    platform_ = cloud_platform()
    if platform_ == "colab":
        return ("  (on Drive: kept after the runtime ends)" if str(results).startswith("/content/drive")
                else "  (lost when the runtime ends: set results to a folder under /content/drive/MyDrive)")
    if platform_ == "kaggle":
        return ("  (kept as this notebook's Output only after Save Version -> Save & Run All)"
                if str(results).startswith("/kaggle/working") else "  (lost when the session ends)")
    return ""


def _no_gpu_advice(device) -> str | None:
    if device.type == "cuda":
        return None
    return {"colab": "no GPU: Runtime -> Change runtime type -> T4 GPU, then run all again",
            "kaggle": "no GPU: Settings -> Accelerator -> GPU T4 x2, then run all again"}.get(cloud_platform())


def setup_notebook(data=None, results=None, seed: int = 0, amp: str = "auto", smoke: bool = False,
                   model: str = "light-vgg", classes=None) -> tuple[Path, Path]:
    """The environment cell of every notebook: one-line errors, Drive, seeds, plots, the dataset and results
    folders, what runs where (GPU, torch, the mixed-precision choice and an estimated time per epoch), and the
    fingerprint of the data and results, recorded with the cell's output."""
    set_where("notebook")
    _one_line_errors()
    _quiet_warnings()
    RESULTS = results_dir(results)
    _mount_drive_if_needed(data, RESULTS, os.environ.get("FER_DATA"))
    seed_everything(seed)
    apply_style()
    plt.rcParams["figure.dpi"] = 72
    device = pick_device()
    hw = describe_hardware(device, amp)
    DATA = find_data_root(data)
    layout = resolve_layout(DATA, classes)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = {"platform": cloud_platform() or platform.platform(), "python": platform.python_version(), **hw,
            "dataset": f"{DATA} ({len(layout.classes)} classes: {', '.join(layout.classes)})",
            "results": f"{RESULTS}{_where_results_live(RESULTS)}"}
    if device.type != "cuda":
        rows.pop("cuda", None)  # the build's CUDA version, not a GPU: it misleads on a CPU runtime
        rows.pop("capability", None)
    if _no_gpu_advice(device):
        rows["GPU"] = _no_gpu_advice(device)
    n_train = sum(len(list((layout.train_dir / f).iterdir())) for f in layout.folders)
    known = [k for k in SUSTAINED_TFLOPS if k != "cpu" and k.lower() in hw["device"].lower()]
    gpu = "cpu" if device.type != "cuda" else (known[0] if known else "T4")
    net = build_model(model, len(layout.classes), **({"weights": None} if model == "vgg16" else {}))
    est = estimate_epoch_seconds(net, n_train, gpu)
    where = f"a {gpu}" if gpu != "cpu" else "this CPU"
    rows["epoch estimate"] = (f"~{est:.0f} s of arithmetic per epoch of {n_train:,} images ({model} on {where}; "
                              f"an estimate from FLOPs, not a measurement)")
    for key, value in rows.items():
        print(f"{key:15s} {value}")
    fp = dataset_fingerprint(layout)
    record = {"dataset": {k: v for k, v in fp.items() if k != "root"},
              "results": {"id": results_id(RESULTS, create=True), "name": RESULTS.name}, "smoke": bool(smoke)}
    _display_record(record, f"{'fingerprint':15s} data {fp['files_sha1']}, results folder {record['results']['id']}")
    if smoke:
        print("\n*** SMOKE RUN: 1 epoch of a few batches. Every number below is meaningless. ***")
    return DATA, RESULTS


# The environment cell of every notebook. It runs before this package can be imported (on Colab it clones
# and installs it), so it cannot be a function of the package; it is kept here, once, as text, and
# `write_environment_cells` (run by `fer badges`) writes it into all four notebooks.
ENVIRONMENT_CELL = r'''# Environment: find this project (a checkout, an unpacked zip, or a clone on Colab/Kaggle),
# install it where Jupyter is already there (Colab, Kaggle: only the package, their CUDA torch is kept),
# then let the package do the rest: Drive, seeds, the dataset, the results folder and the GPU policy.
import os, subprocess, sys
from pathlib import Path
CLOUD = "google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ
# the clone lives outside Kaggle's saved output (/kaggle/working): /kaggle/temp, else /tmp
CLONE = Path("/kaggle/temp" if Path("/kaggle/temp").is_dir() else "/tmp") / "fer-project" \
    if "KAGGLE_KERNEL_RUN_TYPE" in os.environ else Path.cwd() / "fer-project"
PLACES = (Path.cwd().parent, Path.cwd(), Path("/content/fer-project"), CLONE, Path("/kaggle/working/fer-project"))
ROOT = next((p for p in PLACES if (p / "src" / "facial_expression").is_dir()), None)
if ROOT is None and CLOUD:
    if "YOUR-USER" in repo_url:
        raise ValueError("repo_url in the first cell is still the placeholder: set it to the Git URL of your copy "
                         "of this project, or upload the project folder to /content/fer-project")
    clone = subprocess.run(["git", "clone", "-q", "--depth", "1", repo_url, str(CLONE)], capture_output=True,
                           text=True)
    if clone.returncode:
        raise RuntimeError(f"git clone {repo_url} failed: {clone.stderr.strip()} (is the repository public? "
                           "On Kaggle: Settings > Internet on)")
    ROOT = CLONE
if ROOT is None:
    raise FileNotFoundError(f"this project is not in {Path.cwd()} or its parent: open the notebook from the "
                            "project's notebooks/ folder")
if CLOUD:
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", f"{ROOT}[predict]"],
                         capture_output=True, text=True)
    if pip.returncode:
        raise RuntimeError(f"pip install -e {ROOT} failed:\n{pip.stderr.strip()[-1500:]}")
sys.path.insert(0, str(ROOT / "src"))  # this project's own package, whatever else is installed

%matplotlib inline
import warnings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm falls back to text bars
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from facial_expression.notebooks import setup_notebook

DATA, RESULTS = setup_notebook(data, results, seed, amp, smoke, model=MODEL, classes=classes)'''


def _environment_cell_index(cells: list[dict]) -> int:
    return next(i for i, c in enumerate(cells) if c["cell_type"] == "code"
                and "".join(c["source"]).startswith("# Environment:"))


def write_environment_cells() -> list[Path]:
    """Write ENVIRONMENT_CELL into every notebook, where its environment cell is."""
    written = []
    for name in NOTEBOOKS:
        path = NOTEBOOKS_DIR / f"{name}.ipynb"
        nb = json.loads(path.read_text())
        cell = nb["cells"][_environment_cell_index(nb["cells"])]
        if "".join(cell["source"]) != ENVIRONMENT_CELL:
            cell["source"] = ENVIRONMENT_CELL.splitlines(keepends=True)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            written.append(path)
    return written


def repository_url(pyproject: Path = PROJ_ROOT / "pyproject.toml") -> str:
    """The repository's address from pyproject.toml's [project.urls] Repository."""
    m = re.search(r'(?m)^Repository = "([^"]+)"$', pyproject.read_text())  # tomllib needs Python 3.11
    if not m:
        raise FERError(f"{pyproject} has no Repository = \"...\" under [project.urls]")
    return m.group(1).removesuffix(".git")


def colab_badge(repo: str, notebook: str) -> str:
    """A Markdown "Open in Colab" badge that opens `notebook` of the GitHub repository `repo`."""
    path = repo.removeprefix("https://github.com/")
    url = f"https://colab.research.google.com/github/{path}/blob/main/notebooks/{notebook}.ipynb"
    return f"[![Open {notebook} in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def write_badges(repo: str | None = None) -> list[Path]:
    """Set the repository (pyproject.toml), then write its clone URL into every notebook's repo_url parameter and,
    for a GitHub repository, its Colab badges into README.md and the first cell of every notebook (Colab opens
    notebooks from GitHub only; another host gets repo_url, which the notebooks clone from, and a line saying so)."""
    pyproject = PROJ_ROOT / "pyproject.toml"
    if repo:
        repo = repo.removesuffix(".git").rstrip("/")
        if not re.fullmatch(r"https://[\w.-]+(:\d+)?/[\w.~/-]+", repo):
            raise FERError(f"{repo} is not an https address of a Git repository (e.g. "
                           "https://github.com/<user>/<repo>; git@... addresses need keys that Colab and Kaggle lack)")
        text = pyproject.read_text()
        pyproject.write_text(re.sub(r'(?m)^Repository = ".*"$', f'Repository = "{repo}"', text))
    repo = repository_url(pyproject)
    github = re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repo) is not None
    written = [pyproject]
    if github:
        readme = PROJ_ROOT / "README.md"
        readme.write_text(replace_block(readme.read_text(), "badges", "\n".join(f"{colab_badge(repo, n)}  "
                                                                                for n in NOTEBOOKS)))
        written.append(readme)
    else:
        print(f"{repo} is not on GitHub: the notebooks clone it (repo_url), and Colab's Open-in-Colab badges, which "
              "open GitHub repositories only, are left as they are (upload the notebooks to Colab instead)")
    for name in NOTEBOOKS:
        path = NOTEBOOKS_DIR / f"{name}.ipynb"
        nb = json.loads(path.read_text())
        if github:
            first = "".join(nb["cells"][0]["source"])
            start, end = markers("badges")
            first = replace_block(first, "badges", colab_badge(repo, name)) if start in first else \
                f"{start}\n{colab_badge(repo, name)}\n{end}\n\n{first}"
            nb["cells"][0]["source"] = first.splitlines(keepends=True)
        params = "".join(nb["cells"][1]["source"])
        params = re.sub(r'(?m)^repo_url = "[^"]*"', f'repo_url = "{repo}.git"', params)
        nb["cells"][1]["source"] = params.splitlines(keepends=True)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(path)
    return written
