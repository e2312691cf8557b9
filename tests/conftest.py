"""Shared fixtures: a tiny synthetic ImageFolder with awkward files, the real sample, and the course run."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from course_fixture import CourseRun, make_course_dataset, random_vgg16
from PIL import Image
from project_fixture import IDENTITY, build_pdf, copy_project, set_identity

PROJ_ROOT = Path(__file__).resolve().parents[1]
# The development sample, found by its own path (or $FER_SAMPLE), never through $FER_DATA: that is the student's
# dataset, which may be any other set (8 classes, numbered folders) after README's main job.
REAL_DATA = Path(os.environ.get("FER_SAMPLE", PROJ_ROOT.parent / "shared" / "data" / "affectnet7"))


COURSE = pytest.StashKey[dict]()  # the course run (or the error that stopped its start) and the thread settings


def pytest_collection_modifyitems(items):
    """The tests that read the course run go last: its notebooks run beside everything else (below)."""
    items.sort(key=lambda item: "course_run" in item.fixturenames)


def pytest_collection_finish(session):
    """Start the course run as soon as the tests are known, if any of them reads it, and split the cores between
    it and this process until it ends: two torch processes that each use every core spin for each other's (the
    suite took 8 min 39 s so on 2 cores, against 4 min 40 s with one thread each)."""
    items = session.items
    if session.config.option.collectonly or not any("course_run" in i.fixturenames for i in items):
        return
    cores = os.cpu_count() or 1
    mine = max(1, cores // 2)
    child = max(1, cores - mine) if any("course_run" not in i.fixturenames for i in items) else cores
    state = session.config.stash[COURSE] = {"threads": (torch.get_num_threads(), os.environ.get("FER_THREADS")),
                                             "child": child}
    env = {**os.environ, "MPLBACKEND": "Agg", "FER_THREADS": str(child), "OMP_NUM_THREADS": str(child)}
    try:
        state["run"] = CourseRun(Path(tempfile.mkdtemp(prefix="fer-course-")), env)
    except Exception as e:  # the tests that read it fail with this; the others run
        state["error"] = e
        return
    os.environ["FER_THREADS"] = str(mine)
    torch.set_num_threads(mine)


def _all_threads_again(state: dict) -> None:
    threads, fer_threads = state.pop("threads", (None, None))
    if threads is None:
        return
    torch.set_num_threads(threads)
    if fer_threads is None:
        os.environ.pop("FER_THREADS", None)
    else:
        os.environ["FER_THREADS"] = fer_threads


def pytest_runtest_setup(item):
    """Every core for this process again once the course run has ended."""
    state = item.config.stash.get(COURSE, {})
    if "run" in state and state["run"].process.poll() is not None:
        _all_threads_again(state)


def pytest_sessionfinish(session):
    state = session.config.stash.get(COURSE, {})
    _all_threads_again(state)
    if "run" in state:
        state["run"].close()


@pytest.fixture(scope="session")
def course_data(request, tmp_path_factory) -> Path:
    """A course-shaped set (tests/course_fixture.py): the course run's, where it runs."""
    state = request.config.stash.get(COURSE, {})
    if "run" in state:
        return state["run"].data
    return make_course_dataset(tmp_path_factory.mktemp("course") / "affectnet")


@pytest.fixture(scope="session")
def course_vgg16(request, tmp_path_factory) -> Path:
    """A local VGG16 file of random weights (course_fixture.random_vgg16): the course run's, where it runs."""
    state = request.config.stash.get(COURSE, {})
    return state["run"].weights if "run" in state else random_vgg16(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def course_run(request) -> tuple[Path, dict[str, Path]]:
    """The four notebooks in smoke mode on the course-shaped set (results folder, name -> executed notebook):
    run once, in its own process, started when collection ended."""
    state = request.config.stash[COURSE]
    if "error" in state:
        raise state["error"]
    run = state["run"].result()
    _all_threads_again(state)
    return run


@pytest.fixture(scope="session")
def course_run_threads(request, course_run) -> int:
    """The torch threads the course run had: a run that must give its numbers bit for bit needs as many."""
    return request.config.stash[COURSE]["child"]


@pytest.fixture(scope="session")
def sample_project(tmp_path_factory) -> Path:
    """A copy of the project on the development sample's runs whose report is built with a test identity
    (tests/project_fixture.py): the one PDF build of the suite besides the cloud-run path's (test_course_path.py),
    read by test_report.py and copied by test_submission.py."""
    if shutil.which("latexmk") is None or shutil.which("pdftotext") is None:
        pytest.skip("latexmk/pdftotext not installed (.ci/run installs them)")
    root = copy_project(tmp_path_factory.mktemp("project"))
    set_identity(root, *IDENTITY)
    build_pdf(root)
    return root


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Decoded-image caches go to a temporary folder, never to ~/.cache or the data folder."""
    old = os.environ.get("FER_CACHE")
    os.environ["FER_CACHE"] = str(tmp_path_factory.mktemp("fer-cache"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield
    if old is None:
        os.environ.pop("FER_CACHE", None)
    else:
        os.environ["FER_CACHE"] = old


def _image(rng, size: int, label: int) -> np.ndarray:
    """A random RGB image whose mean colour depends on the class, so that it can be learned."""
    base = np.zeros((size, size, 3), np.float32)
    base[..., label % 3] = 160
    return np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)


def make_split(root: Path, classes, per_class: int, size: int = 32, seed: int = 0, awkward: bool = False):
    """One split folder: JPEG and PNG, in RGB, L, RGBA and CMYK (and a corrupt file, a .DS_Store)."""
    rng = np.random.default_rng(seed)
    modes = ["RGB", "L", "RGBA", "CMYK"]
    for c, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = Image.fromarray(_image(rng, size, c)).convert(modes[i % len(modes)])
            ext = "png" if im.mode in ("RGBA", "L") else "jpg"
            im.save(d / f"{name}_{i}.{ext}")
    if awkward:
        (root / classes[0] / "broken.jpg").write_bytes(b"not really a jpeg")
        (root / classes[0] / ".DS_Store").write_bytes(b"\x00\x01")
        (root / classes[-1] / "notes.txt").write_text("hello")
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """<root>/train and <root>/validation with 3 classes of 32x32 images and a few bad files."""
    classes = ["angry", "happy", "sad"]
    make_split(tmp_path / "ds" / "train", classes, per_class=12, seed=0, awkward=True)
    make_split(tmp_path / "ds" / "validation", classes, per_class=4, seed=1)
    return tmp_path / "ds"


@pytest.fixture
def real_data() -> Path:
    if not (REAL_DATA / "train").is_dir() or REAL_DATA.name != "affectnet7":
        pytest.skip(f"the development sample (affectnet7) is not at {REAL_DATA} (set FER_SAMPLE)")
    return REAL_DATA


def real_subset(root: Path, out: Path, per_class: dict[str, int]) -> Path:
    """A copy of the first files of each class of the real sample (split -> files per class), for fast tests."""
    for split, n in per_class.items():
        for folder in sorted(d for d in (root / split).iterdir() if d.is_dir() and not d.name.startswith(".")):
            (out / split / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[:n]:
                shutil.copy(f, out / split / folder.name / f.name)
    return out
