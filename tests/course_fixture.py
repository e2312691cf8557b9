"""A small dataset shaped like the course's AffectNet subset, for the end-to-end tests and README checks.

8 classes with `contempt`, `train/` and `validation/`, face crops of 96x96 and 224x224 in JPEG and PNG, a
few of them grayscale. Where the development sample is present its real faces are used (resized; the
labels of a copy are meaningless for `contempt`, which the sample lacks); elsewhere the images are
synthetic, with a class-dependent colour so that a model can learn something.

    python tests/course_fixture.py /tmp/affectnet-course [--per-class 24]

`CourseRun` executes the four notebooks in smoke mode on such a set, in a process of its own, so that the
test suite can go on beside it (conftest.py starts it when collection ends).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import torchvision

from facial_expression.demo import COURSE_CLASSES as CLASSES  # noqa: F401 (the tests import it from here)
from facial_expression.demo import make_course_dataset as _make

SAMPLE = Path(os.environ.get("FER_SAMPLE", Path(__file__).resolve().parents[2] / "shared" / "data" / "affectnet7"))


def make_course_dataset(root: str | Path, per_class: int = 24, val_per_class: int = 6, seed: int = 0) -> Path:
    """The package's generator (facial_expression.demo) with the development sample's faces where it is here."""
    return _make(root, per_class, val_per_class, seed, faces_from=SAMPLE if SAMPLE.is_dir() else None)


def random_vgg16(folder: Path) -> Path:
    """A local VGG16 weights file with random weights, named so: the path works offline, the numbers mean nothing."""
    path = Path(folder) / "vgg16-RANDOM-not-imagenet.pth"
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    return path


# P5_d runs before P5_c: as in a fresh runtime that opens only P5_d, it trains P5_c's model itself, and P5_c,
# each notebook in its own kernel, then finds that run finished. One pass covers both paths.
ORDER = ("P5_a_preprocessing", "P5_b_transfer_vgg16", "P5_d_cam", "P5_c_light_vgg")


class CourseRun:
    """`fer notebooks --smoke` on a course-shaped set under `root`, started at once in its own process (with its
    own decoded-image cache), with a local VGG16 file of random weights (`random_vgg16`). `result()` waits for
    it."""

    def __init__(self, root: Path, env: dict | None = None):
        self.root = Path(root)
        self.data = make_course_dataset(self.root / "affectnet")
        self.weights = random_vgg16(self.root)
        self.out, self.log = self.root / "smoke", self.root / "notebooks.log"
        cmd = [sys.executable, "-m", "facial_expression", "notebooks", "--smoke", "--only", *ORDER,
               "--output-dir", str(self.out), "-p", "data", str(self.data), "-p", "vgg16_weights", str(self.weights)]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            env={**(env or os.environ), "FER_CACHE": str(self.root / "cache")})

    def result(self) -> tuple[Path, dict[str, Path]]:
        """The results folder and the executed notebooks (name -> path); AssertionError with the log's end if
        the run failed."""
        if self.process.wait() != 0:
            raise AssertionError(f"the course run failed; the end of {self.log}:\n" +
                                 "\n".join(self.log.read_text().splitlines()[-30:]))
        return self.out / "results", {name: self.out / f"{name}.ipynb" for name in ORDER}

    def close(self) -> None:
        """Stop the run if it is still going (the session ended early) and delete its folder, unless it failed:
        then its log and notebooks stay for reading."""
        if self.process.poll() is None:
            self.process.terminate()  # papermill shuts its kernel down
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        elif self.process.returncode != 0:
            return
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("--per-class", type=int, default=24)
    parser.add_argument("--val-per-class", type=int, default=6)
    args = parser.parse_args()
    print(make_course_dataset(args.root, args.per_class, args.val_per_class))
