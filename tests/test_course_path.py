"""The student's path end to end, on a dataset shaped like the course's (8 classes with `contempt`, 96 and
224 px crops in JPEG and PNG, some grayscale): CLI, the four notebooks, a fresh runtime that opens only P5_d,
and nothing of the development sample's results read anywhere."""

import json

import nbformat
import pytest
import torch
import torchvision

from course_fixture import CLASSES, make_course_dataset
from facial_expression.cli import main
from facial_expression.config import SAMPLE_RESULTS_DIR
from facial_expression.notebooks import NOTEBOOKS, run_notebooks


@pytest.fixture(scope="session")
def course_data(tmp_path_factory):
    return make_course_dataset(tmp_path_factory.mktemp("course") / "affectnet", per_class=24, val_per_class=6)


@pytest.fixture(scope="session")
def random_vgg16(tmp_path_factory):
    """A local VGG16 weights file with random weights, named so: the path works offline, the numbers mean nothing."""
    path = tmp_path_factory.mktemp("weights") / "vgg16-RANDOM-not-imagenet.pth"
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def course_run(course_data, random_vgg16, tmp_path_factory):
    """The four notebooks in smoke mode on the course-shaped set, once for every test that reads them."""
    out = tmp_path_factory.mktemp("course-smoke")
    written = run_notebooks(NOTEBOOKS, {"data": str(course_data), "vgg16_weights": str(random_vgg16)},
                            smoke=True, output_dir=out)
    return out / "results", written


def _text(path) -> str:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), path.name
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], path.name
    return "\n".join(o.get("text", "") + json.dumps(o.get("data", {})) for c in code for o in c.outputs)


def test_cli_path_on_course_shaped_data(course_data, random_vgg16, tmp_path, capsys):
    assert main(["stats", str(course_data)]) == 0
    assert "contempt" in capsys.readouterr().out
    light, vgg = tmp_path / "light", tmp_path / "vgg"
    assert main(["train", "--data", str(course_data), "--epochs", "1", "--max-batches", "2", "--batch-size", "16",
                 "--out", str(light)]) == 0
    assert main(["train", "--model", "vgg16", "--weights", str(random_vgg16), "--input-size", "32",
                 "--data", str(course_data), "--epochs", "1", "--max-batches", "2", "--batch-size", "16",
                 "--out", str(vgg)]) == 0
    for run in (light, vgg):
        m = json.loads((run / "metrics.json").read_text())
        assert m["classes"] == list(CLASSES) and len(m["confusion_matrix"]) == 8
        assert m["dataset"]["classes"] == list(CLASSES) and m["dataset"]["root"] == str(course_data)
        assert set(m["splits"]) == {"train", "tune", "validation"}
    assert main(["evaluate", "--checkpoint", str(light / "best.pt"), "--data", str(course_data),
                 "--out", str(tmp_path / "eval")]) == 0
    assert main(["cam", "--checkpoint", str(light / "best.pt"), "--data", str(course_data), "--out",
                 str(tmp_path / "cam"), "--max-batches", "1"]) == 0
    assert (tmp_path / "cam" / "cam_wrong.png").exists()
    # a longer schedule on the same folder is refused in one line, not a scheduler traceback
    assert main(["train", "--data", str(course_data), "--epochs", "2", "--max-batches", "2", "--batch-size", "16",
                 "--out", str(light)]) == 2
    assert "1-epoch schedule and 2 epochs" in capsys.readouterr().err


def test_notebooks_on_course_shaped_data_never_read_the_sample(course_run, course_data):
    results, written = course_run
    assert [p.stem for p in written] == list(NOTEBOOKS)
    texts = {p.stem: _text(p) for p in written}
    assert all("SMOKE RUN" in t for t in texts.values())
    for run in ("light_vgg", "vgg16_transfer"):
        m = json.loads((results / run / "metrics.json").read_text())
        assert m["classes"] == list(CLASSES) and m["dataset"]["root"] == str(course_data), run
    everything = "\n".join(texts.values())
    assert "FFHQ" not in everything and "ffhq" not in everything.lower()
    assert str(SAMPLE_RESULTS_DIR) not in everything and "affectnet7" not in everything


def test_a_fresh_runtime_that_opens_only_p5_d_trains_p5_c_first(course_data, tmp_path):
    written = run_notebooks(["P5_d_cam"], {"data": str(course_data)}, smoke=True, output_dir=tmp_path)
    text = _text(written[0])
    assert "training it now" in text
    assert (tmp_path / "results" / "light_vgg" / "best.pt").exists()
    assert (tmp_path / "results" / "light_vgg" / "cam" / "cam_correct.png").exists()
