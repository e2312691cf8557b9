"""Shared fixtures: a tiny synthetic ImageFolder with awkward files, the real sample, and the course run."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from course_fixture import CourseRun, make_course_dataset
from PIL import Image

PROJ_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("FER_DATA", PROJ_ROOT.parent / "shared" / "data" / "affectnet7"))


COURSE_RUN = pytest.StashKey[CourseRun]()
THREADS = pytest.StashKey[tuple]()


def pytest_collection_modifyitems(items):
    """The tests that read the course run go last: its notebooks run beside everything else (below)."""
    items.sort(key=lambda item: "course_run" in item.fixturenames)


def pytest_collection_finish(session):
    """Start the course run as soon as the tests are known, if any of them reads it. Until it has finished, it and
    this process use one thread each: two torch processes of one thread per core each spin for each other's."""
    if not session.config.option.collectonly and any("course_run" in i.fixturenames for i in session.items):
        one = {"FER_THREADS": "1", "OMP_NUM_THREADS": "1"}
        env = {**os.environ, "MPLBACKEND": "Agg", **one}
        session.config.stash[COURSE_RUN] = CourseRun(Path(tempfile.mkdtemp(prefix="fer-course-")), env)
        session.config.stash[THREADS] = torch.get_num_threads(), os.environ.get("FER_THREADS")
        os.environ["FER_THREADS"] = "1"
        torch.set_num_threads(1)


def _all_threads_again(config) -> None:
    threads, fer_threads = config.stash[THREADS]
    torch.set_num_threads(threads)
    if fer_threads is None:
        os.environ.pop("FER_THREADS", None)
    else:
        os.environ["FER_THREADS"] = fer_threads


def pytest_sessionfinish(session):
    if COURSE_RUN in session.config.stash:
        session.config.stash[COURSE_RUN].close()


@pytest.fixture(scope="session")
def course_data(request, tmp_path_factory) -> Path:
    """A course-shaped set (tests/course_fixture.py): the course run's, where it runs."""
    if COURSE_RUN in request.config.stash:
        return request.config.stash[COURSE_RUN].data
    return make_course_dataset(tmp_path_factory.mktemp("course") / "affectnet", per_class=24, val_per_class=6)


@pytest.fixture(scope="session")
def course_run(request) -> tuple[Path, dict[str, Path]]:
    """The four notebooks in smoke mode on the course-shaped set (results folder, name -> executed notebook):
    run once, in its own process, started when collection ended."""
    run = request.config.stash[COURSE_RUN].result()
    _all_threads_again(request.config)
    return run


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
    if not (REAL_DATA / "train").is_dir():
        pytest.skip(f"real sample not found at {REAL_DATA} (set FER_DATA)")
    return REAL_DATA


def real_subset(root: Path, out: Path, per_class: dict[str, int]) -> Path:
    """A copy of the first files of each class of the real sample (split -> files per class), for fast tests."""
    for split, n in per_class.items():
        for folder in sorted((root / split).iterdir()):
            (out / split / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[:n]:
                shutil.copy(f, out / split / folder.name / f.name)
    return out
