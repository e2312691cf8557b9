"""The student's path end to end, on a dataset shaped like the course's (8 classes with `contempt`, 96 and
224 px crops in JPEG and PNG, some grayscale): CLI, the four notebooks, a fresh runtime that opens only P5_d,
and nothing of the development sample's results read anywhere. The course run and the course-shaped set are
conftest.py's fixtures: the notebooks run in their own process beside the rest of the suite."""

import json
import re
import shutil
import zipfile

import nbformat
import pytest
import torch

from course_fixture import CLASSES
from prose import stating, states
from facial_expression.cli import main
from facial_expression.config import PROJ_ROOT, SAMPLE_RESULTS_DIR
from facial_expression.errors import FERError
from facial_expression.notebooks import NOTEBOOKS, zip_outputs
from facial_expression.submission import Allow, build_submission, pdf_text, rerun_from_zip, submission_from

needs_tex = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                               reason="latexmk/pdftotext not installed (.ci/run installs them)")


def _outputs(nb) -> str:
    """A notebook's text outputs: an image's base64 can hold any four letters ("ffhq" among them) and papermill's
    timestamps any digits ("0.5893" in "21.589312"), so neither is read."""
    return "\n".join(o.get("text", "") + json.dumps({k: v for k, v in o.get("data", {}).items()
                                                     if not k.startswith("image/")})
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def _text(path) -> str:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), path.name
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], path.name
    return _outputs(nb)


def _pct(fraction: float) -> float:
    """A fraction as the report prints it in per cent, to one decimal."""
    return float(f"{100 * fraction:.1f}")


def test_cli_path_on_course_shaped_data(course_data, course_vgg16, tmp_path, capsys):
    assert main(["stats", str(course_data)]) == 0
    assert "contempt" in capsys.readouterr().out
    light, vgg = tmp_path / "light", tmp_path / "vgg"
    assert main(["train", "--data", str(course_data), "--epochs", "1", "--max-batches", "2", "--batch-size", "16",
                 "--out", str(light)]) == 0
    assert main(["train", "--model", "vgg16", "--weights", str(course_vgg16), "--input-size", "32",
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
    assert sorted(written) == sorted(NOTEBOOKS)
    texts = {name: _text(p) for name, p in written.items()}
    assert all("SMOKE RUN" in t for t in texts.values())
    for run in ("light_vgg", "vgg16_transfer"):
        m = json.loads((results / run / "metrics.json").read_text())
        assert m["classes"] == list(CLASSES) and m["dataset"]["root"] == str(course_data), run
    everything = "\n".join(texts.values())
    assert "FFHQ" not in everything and "ffhq" not in everything.lower()
    assert str(SAMPLE_RESULTS_DIR) not in everything and "affectnet7" not in everything


def test_notebooks_give_the_same_numbers_as_the_cli(course_run, course_run_threads, course_data, tmp_path,
                                                   monkeypatch):
    results, _ = course_run
    threads = torch.get_num_threads()
    monkeypatch.setenv("FER_THREADS", str(course_run_threads))  # as many as the notebooks had: the same sums
    try:
        assert main(["train", "--data", str(course_data), "--epochs", "1", "--max-batches", "2", "--batch-size",
                     "16", "--out", str(tmp_path / "cli")]) == 0  # the notebooks' smoke settings
    finally:
        torch.set_num_threads(threads)
    nb_hist = json.loads((results / "light_vgg" / "history.json").read_text())["epochs"]
    cli_hist = json.loads((tmp_path / "cli" / "history.json").read_text())["epochs"]
    for key in ("train_loss", "tune_loss", "validation_loss", "validation_accuracy"):
        assert nb_hist[0][key] == cli_hist[0][key], key
    nb_metrics = json.loads((results / "light_vgg" / "metrics.json").read_text())
    cli_metrics = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert nb_metrics["confusion_matrix"] == cli_metrics["confusion_matrix"]


@needs_tex
def test_from_a_cloud_run_to_the_hand_in_with_no_dataset(course_run, course_data, tmp_path, monkeypatch):
    """The notebooks ran into a results folder as on Kaggle; their zip is taken on a fresh clone with no dataset,
    the report is built from the results alone, and <StudentID>_HW04.zip holds the run's 8 classes and nothing of
    the development sample."""
    results, written = course_run
    cloud_zip = zip_outputs(results, list(written.values()), tmp_path / "fer_results.zip")  # `fer notebooks --zip`
    project = tmp_path / "project"  # a fresh clone: the committed notebooks, no results, no dataset
    for name in ("src", "report", "data", "notebooks"):
        shutil.copytree(PROJ_ROOT / name, project / name, ignore=shutil.ignore_patterns(
            "__pycache__", "*.aux", "*.log", "*.fls", "*.fdb_latexmk", "*.toc", "*.out", "report.pdf", "affectnet*",
            ".*.ipynb"))
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy(PROJ_ROOT / name, project / name)
    monkeypatch.delenv("FER_DATA", raising=False)
    ci = Allow(placeholder=True)  # the placeholder identity: no student here
    with pytest.raises(FERError, match=r"smoke runs \(.*--allow-smoke"):  # the course run is a smoke run
        submission_from([cloud_zip], project, allow=ci, out_dir=tmp_path / "dist", rerun=False)
    text = " ".join(" ".join(pdf_text(project / "report" / "report.pdf")).split())  # built before the refusal
    for word in ("FFHQ", "ffhq", "Flickr", "affectnet7", "development sample"):  # test_report.SAMPLE_WORDS
        assert word not in text, word
    assert "Smoke run" in text and states(text, 8, "classes", *CLASSES)  # every class, in order
    assert "has no internet" not in text and "Settings of the VGG16 transfer run" in text  # (b)'s table caption
    # the numbers the text states are the run's: each accuracy with its standard error over the validation faces,
    # and (part (b) ran) the comparison with both accuracies, the gap and its 95 % interval (report.py builds the
    # PDF once here; test_report.py checks the same facts on fixed numbers in the generated inputs)
    light, vgg = (json.loads((results / run / "metrics.json").read_text()) for run in ("light_vgg", "vgg16_transfer"))
    for run, m in (("light_vgg", light), ("vgg16_transfer", vgg)):
        se = (m["accuracy"] * (1 - m["accuracy"]) / m["n"]) ** 0.5
        assert states(text, "validation accuracy", _pct(m["accuracy"]), "±", _pct(se), m["n"]), run
    assert "cannot be compared" not in text and "not been trained on these data" not in text
    diff, half = vgg["accuracy"] - light["accuracy"], 1.96 * ((light["accuracy"] * (1 - light["accuracy"]) + vgg[
        "accuracy"] * (1 - vgg["accuracy"])) / light["n"]) ** 0.5
    said = [s for gap in (diff, abs(diff)) for s in stating(  # the gap signed (VGG16 minus light VGG) or its size
        text, "VGG16", _pct(vgg["accuracy"]), _pct(light["accuracy"]), "light VGG", _pct(gap), "±", _pct(half))]
    assert said, "no comparison of the two accuracies"
    assert "no conclusion" in said[0] and "no clear effect" not in said[0], said[0]  # smoke runs: no claim
    for fig in ("vgg_history.pdf", "vgg_roc_validation.pdf", "vgg_confusion.pdf", "light_history.pdf"):
        assert (project / "report" / "figures" / fig).exists(), fig
    assert (project / "report" / "generated" / "settings.tex").exists()
    for table in ("per_class_light_vgg.tex",):
        rows = [line for line in (project / "report" / "generated" / table).read_text().splitlines()
                if line.split(" & ")[0].strip() in CLASSES]
        assert len(rows) == 8, table
    zip_path = build_submission(project, out_dir=tmp_path / "dist", rerun=False, allow=Allow(placeholder=True,
                                                                                             smoke=True))
    with zipfile.ZipFile(zip_path) as z:
        notebooks = {n: nbformat.reads(z.read(n).decode(), as_version=4) for n in z.namelist()
                     if n.startswith("notebooks/")}
    assert len(notebooks) == 4
    for name, nb in notebooks.items():
        text = "\n".join(c.source for c in nb.cells) + _outputs(nb)
        assert "8 classes: angry, contempt, disgust" in text, name
        for sample in ("affectnet7", r"(?<![\d.])0\.5893(?!\d)", r"(?<![\d,])1,400(?![\d,])"):  # the sample's numbers
            assert not re.search(sample, text), (name, sample)
    # one rerun from the zip shows that its own package and notebooks run there
    rerun_from_zip(zip_path, str(course_data), notebooks=["P5_a_preprocessing"])


def test_a_fresh_runtime_that_opens_only_p5_d_trains_p5_c_first(course_run):
    results, written = course_run  # P5_d ran before P5_c (course_fixture.ORDER)
    assert "training it now" in _text(written["P5_d_cam"])
    assert (results / "light_vgg" / "cam" / "cam_correct.png").exists()
    # P5_d's last cell removed the finished run's last.pt: P5_c finds it finished from best.pt and its history
    assert "already holds this run, finished" in _text(written["P5_c_light_vgg"])
    assert not list(results.rglob("last.pt")) and (results / "light_vgg" / "best.pt").exists()
    assert "removed last.pt of" in _text(written["P5_d_cam"])
