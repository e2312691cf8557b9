"""The hand-in's checks of what it ships, without building a PDF: which data and results folder each notebook ran
on, smoke, interrupted and mixed runs, the one-line errors in notebooks, and class-name aliases."""

import json
from pathlib import Path

import nbformat
import pytest

from facial_expression.cli import main
from facial_expression.data.fingerprint import dataset_fingerprint, mixed_data
from facial_expression.data.folders import canonical_class, folders_for, resolve_layout
from facial_expression.errors import DataError, error_line
from facial_expression.notebooks import RECORD_KEY, RESULTS_ID, earlier_cell_hint, notebook_record
from facial_expression.submission import Allow, find_run, merge_results, notebook_data_problem, results_problems

COURSE = ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
SAMPLE_FP = {"name": "affectnet7", "classes": COURSE[:1] + COURSE[2:], "files": {"train": 7000, "validation": 1400},
             "files_sha1": "27eb8c9986c50227", "ffhq_files": 1600}
OTHER_FP = {"name": "affectnet", "classes": COURSE, "files": {"train": 416, "validation": 96},
            "files_sha1": "aaaabbbbccccdddd", "ffhq_files": 0}


def _run(folder: Path, fp: dict, **metrics) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"dataset": fp}))
    (folder / "metrics.json").write_text(json.dumps({"dataset": fp, "epochs_run": 30, "accuracy": 0.5,
                                                      "max_batches": None, "interrupted": False, **metrics}))
    return folder


def _notebook(path: Path, record: dict | None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", execution_count=1)]
    if record:
        nb.metadata[RECORD_KEY] = record
    nbformat.write(nb, path)
    return path


@pytest.fixture
def results(tmp_path) -> Path:
    """A results folder of one finished run on an 8-class set, and its identity."""
    r = tmp_path / "results"
    _run(r / "light_vgg", OTHER_FP)
    _run(r / "vgg16_transfer", OTHER_FP)
    (r / RESULTS_ID).write_text("run0001\n")
    return r


def test_notebooks_of_the_same_run_pass(results, tmp_path):
    nb = _notebook(tmp_path / "P5_c_light_vgg.ipynb", {"dataset": OTHER_FP, "results": {"id": "run0001"}})
    assert notebook_data_problem(nb, results) is None
    assert results_problems(results) == ([], [])


def test_the_committed_sample_notebooks_with_another_datasets_results_are_refused(results, tmp_path):
    nb = _notebook(tmp_path / "P5_c_light_vgg.ipynb", {"dataset": SAMPLE_FP})
    assert "still holds the development sample's outputs" in notebook_data_problem(nb, results)
    assert notebook_data_problem(nb, results, Allow(sample=True)) is None
    # notebooks executed before they recorded a fingerprint: the environment cell's printed classes tell
    old = nbformat.v4.new_notebook()
    old.cells = [nbformat.v4.new_code_cell("setup", execution_count=1, outputs=[nbformat.v4.new_output(
        "stream", text="dataset         /x/affectnet7 (7 classes: angry, disgust, fear, happy, neutral, sad, "
                       "surprise)\n")])]
    nbformat.write(old, tmp_path / "P5_a_preprocessing.ipynb")
    assert "development sample's outputs" in notebook_data_problem(tmp_path / "P5_a_preprocessing.ipynb", results)


def test_a_notebook_of_other_data_or_another_results_folder_is_refused(results, tmp_path):
    other = {**OTHER_FP, "files_sha1": "0000111122223333"}
    nb = _notebook(tmp_path / "P5_b_transfer_vgg16.ipynb", {"dataset": other})
    assert "was executed on other data" in notebook_data_problem(nb, results)
    assert notebook_data_problem(nb, results, Allow(other_data=True)) is None
    trial = _notebook(tmp_path / "P5_a_preprocessing.ipynb", {"dataset": OTHER_FP, "results": {"id": "trial9",
                                                                                               "name": "trial"}})
    said = notebook_data_problem(trial, results)
    assert "ran into another results folder (trial/" in said and f"handed in ({results}, id" in said, said
    assert "records no data fingerprint" in notebook_data_problem(_notebook(tmp_path / "P5_d_cam.ipynb", None),
                                                                  results)


def test_smoke_interrupted_and_mixed_runs_are_refused_and_a_skipped_part_b_is_said(tmp_path):
    r = tmp_path / "results"
    _run(r / "light_vgg", OTHER_FP, max_batches=2)
    _run(r / "alexnet_var", OTHER_FP, interrupted=True)
    _run(r / "mobilenet_var", {**OTHER_FP, "files_sha1": "0000111122223333", "files": {"train": 108,
                                                                                       "validation": 96}})
    problems, notes = results_problems(r)
    assert len(problems) == 3, problems
    assert "smoke runs (light_vgg" in problems[1] and "--allow-smoke" in problems[1]
    assert "interrupted runs (alexnet_var)" in problems[2]
    assert "mixes runs of different datasets" in problems[0] and "mobilenet_var on affectnet" in problems[0]
    assert notes == ["part (b) was not run (results/vgg16_transfer has no results): the report and P5_b say so, "
                     "and the hand-in goes without it"]
    assert results_problems(r, Allow(smoke=True, interrupted=True, mixed=True))[0] == []


def test_reports_refuse_a_mixed_results_folder_in_one_line(tmp_path, capsys):
    r = tmp_path / "mixed"
    _run(r / "light_vgg", {**OTHER_FP, "counts": {"train": {c: 47 for c in COURSE}}})
    (r / "preprocessing").mkdir()  # P5_a on another dataset of the same classes
    (r / "preprocessing" / "dataset.json").write_text(json.dumps({**OTHER_FP, "files_sha1": "0000111122223333",
                                                                  "counts": {"train": {c: 13 for c in COURSE}}}))
    assert mixed_data(r).startswith("mixed/ mixes runs of different datasets (")
    assert main(["report-tables", "--results", str(r)]) == 2  # refused before anything under report/ is touched
    err = capsys.readouterr().err
    assert err.startswith("fer report-tables: error: mixed/ mixes runs") and err.count("\n") == 1


def test_a_cloud_runs_zip_or_folders_are_found(tmp_path):
    import zipfile
    r = tmp_path / "kaggle" / "working" / "results"
    _run(r / "light_vgg", OTHER_FP)
    _run(r / "ablation" / "screen10" / "plain_seed0", OTHER_FP)
    nb = _notebook(tmp_path / "P5_c_light_vgg.ipynb", None)
    found, notebooks = find_run([tmp_path / "kaggle", nb], tmp_path / "tmp")
    assert found == r and notebooks == {"P5_c_light_vgg": nb}
    with zipfile.ZipFile(tmp_path / "fer_results.zip", "w") as z:
        z.write(r / "light_vgg" / "config.json", "results/light_vgg/config.json")
        z.write(nb, "notebooks/P5_c_light_vgg.ipynb")
    found, notebooks = find_run([tmp_path / "fer_results.zip"], tmp_path / "tmp")
    assert found.name == "results" and list(notebooks) == ["P5_c_light_vgg"]


def test_notebook_records_are_read_from_metadata_or_the_environment_cells_output():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("setup", execution_count=1, outputs=[nbformat.v4.new_output(
        "display_data", data={"text/plain": "fingerprint ..."}, metadata={RECORD_KEY: {"dataset": OTHER_FP}})])]
    assert notebook_record(nb) == {"dataset": OTHER_FP}  # Run all on Colab or Kaggle: no papermill
    # metadata inherited from the notebook this run started from (the committed sample's) never hides this run's
    nb.metadata[RECORD_KEY] = {"dataset": SAMPLE_FP}
    assert notebook_record(nb) == {"dataset": OTHER_FP}
    nb.cells[0].outputs[0].metadata = {}  # a frontend that drops the outputs' metadata: the notebook's is read
    assert notebook_record(nb) == {"dataset": SAMPLE_FP}


def test_errors_in_notebooks_are_the_clis_one_line():
    from IPython.core.interactiveshell import InteractiveShell
    from facial_expression.notebooks import _one_line_errors
    shell = InteractiveShell.instance()
    try:
        _one_line_errors()
        lines = []
        shell._showtraceback = lambda etype, value, stb: lines.extend(stb)
        shell.run_cell("from facial_expression.errors import DataError\nraise DataError('no dataset found')")
        assert lines == [error_line(DataError("no dataset found"))] == ["fer: error: no dataset found"]
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()


def test_a_cell_that_needs_an_earlier_cell_names_it(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("data = None"),
                nbformat.v4.new_code_cell("# P5_c's model\nmodel, ckpt = train()"),
                nbformat.v4.new_code_cell("model.eval()")]
    nbformat.write(nb, tmp_path / "P5_d_cam.ipynb")
    hint = earlier_cell_hint("model", "model.eval()\n", tmp_path)
    assert hint.startswith("NameError: model is set by code cell 2 of P5_d_cam (it begins '# P5_c's model')")
    assert earlier_cell_hint("nowhere", "model.eval()", tmp_path) is None


def test_class_name_aliases(tmp_path):
    assert [canonical_class(c) for c in ("Anger", "happiness", "sadness", "angry")] == ["angry", "happy", "sad",
                                                                                        "angry"]
    for spelling in ("angry", "anger"):
        for split in ("train", "validation"):
            for c in (spelling, "happy"):
                (tmp_path / spelling / split / c).mkdir(parents=True)
                (tmp_path / spelling / split / c / "a.png").write_bytes(b"")
    a, b = (dataset_fingerprint(resolve_layout(tmp_path / s)) for s in ("angry", "anger"))
    assert a["files_sha1"] == b["files_sha1"]  # the same files, whatever the folder's spelling
    assert folders_for(tmp_path / "anger" / "validation", ("angry", "happy")) == ("anger", "happy")


def test_the_demo_runs_on_its_own_generated_set_into_its_own_folder(tmp_path, monkeypatch, capsys):
    """`fer notebooks --demo` wiring (the notebooks themselves run in the course run, on the same generator's set):
    its data, its results folder and its zip lie under --output-dir; notebooks/ is not written."""
    import facial_expression.notebooks as nbs
    from facial_expression.config import NOTEBOOKS_DIR
    before = {p: p.stat().st_mtime_ns for p in NOTEBOOKS_DIR.glob("*.ipynb")}
    calls = []

    def fake_run(names, params, smoke, output_dir, kernel="python3"):
        calls.append((names, params, smoke, Path(output_dir)))
        (Path(output_dir) / "results" / "light_vgg").mkdir(parents=True)
        return [Path(output_dir) / f"{n}.ipynb" for n in names if (Path(output_dir) / f"{n}.ipynb").touch() or 1]
    monkeypatch.setattr(nbs, "run_notebooks", fake_run)
    assert main(["notebooks", "--demo", "--output-dir", str(tmp_path / "demo")]) == 0
    (names, params, smoke, out), = calls
    assert smoke and out == tmp_path / "demo" and names == nbs.NOTEBOOKS
    assert sorted(p.name for p in (out / "affectnet-demo" / "train").iterdir()) == COURSE
    assert (out / "fer_results.zip").exists() and params == {"data": str(out / "affectnet-demo")}
    assert capsys.readouterr().out.count("Every number it prints means nothing") == 2
    assert before == {p: p.stat().st_mtime_ns for p in NOTEBOOKS_DIR.glob("*.ipynb")}


@pytest.mark.parametrize("platform, results, says", [
    ("kaggle", "/kaggle/working/results", "only after Save Version"),
    ("kaggle", "/kaggle/temp/results", "lost when the session ends"),
    ("colab", "/content/drive/MyDrive/fer_results", "on Drive: kept after the runtime ends"),
    ("colab", "/content/results", "lost when the runtime ends"),
    (None, "/home/me/results", "")])
def test_the_environment_cell_says_what_holds_where_it_runs(monkeypatch, platform, results, says):
    import torch
    import facial_expression.notebooks as nbs
    monkeypatch.setattr(nbs, "cloud_platform", lambda: platform)
    assert says in nbs._where_results_live(Path(results)) and bool(says) == bool(nbs._where_results_live(Path(results)))
    advice = nbs._no_gpu_advice(torch.device("cpu"))
    assert advice == {"colab": "no GPU: Runtime -> Change runtime type -> T4 GPU, then run all again",
                      "kaggle": "no GPU: Settings -> Accelerator -> GPU T4 x2, then run all again"}.get(platform)
    assert nbs._no_gpu_advice(torch.device("cuda")) is None


def test_numbered_folders_are_named_with_advice_that_fits_where_it_is_read(tmp_path, monkeypatch):
    import os
    import warnings
    from facial_expression.errors import set_where
    for split in ("train", "validation"):
        for c in ("0", "1"):
            (tmp_path / split / c).mkdir(parents=True)
            (tmp_path / split / c / "a.png").write_bytes(b"")
    try:
        for where, says in (("cli", "pass --classes affectnet"), ("notebook", 'set classes = "affectnet"')):
            set_where(where)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                resolve_layout(tmp_path)
            assert says in str(caught[0].message)
        monkeypatch.setattr(os, "access", lambda path, mode: False)  # /kaggle/input is read-only
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resolve_layout(tmp_path)
        assert "classes.txt" not in str(caught[0].message)
    finally:
        set_where("cli")


def test_the_hand_ins_rerun_generates_a_set_where_no_dataset_is_here(tmp_path, monkeypatch):
    import facial_expression.data as data_mod
    from facial_expression.submission import _zip_data_for_rerun

    def nothing(path=None):
        raise DataError("no dataset found")
    monkeypatch.setattr(data_mod, "find_data_root", nothing)
    assert _zip_data_for_rerun("/given", tmp_path) == "/given"
    generated = Path(_zip_data_for_rerun(None, tmp_path))
    assert sorted(p.name for p in (generated / "validation").iterdir()) == COURSE


def test_a_record_is_read_from_the_printed_lines_where_a_frontend_dropped_output_metadata():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("setup", execution_count=1, outputs=[
        nbformat.v4.new_output("stream", text="dataset         /kaggle/input/fer/AffectNet (8 classes: angry, "
                                              "contempt, disgust, fear, happy, neutral, sad, surprise)\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": "fingerprint     data aaaabbbbccccdddd, results "
                                                                   "folder run0001"})])]
    assert notebook_record(nb) == {"dataset": {"name": "AffectNet", "classes": COURSE,
                                               "files_sha1": "aaaabbbbccccdddd"}, "results": {"id": "run0001"}}


def test_a_runs_zip_keeps_only_the_checkpoints_predict_uses(tmp_path, capsys):
    import zipfile
    from facial_expression.notebooks import zip_outputs
    r = tmp_path / "results"
    for rel in ("light_vgg/best.pt", "light_vgg/last.pt", "vgg16_transfer/best.pt", "light_vgg/metrics.json",
                RESULTS_ID):
        (r / rel).parent.mkdir(parents=True, exist_ok=True)
        (r / rel).write_bytes(b"x" * 10)
    nb = _notebook(tmp_path / "P5_c_light_vgg.ipynb", None)
    with zipfile.ZipFile(zip_outputs(r, [nb], tmp_path / "fer_results.zip")) as z:
        assert sorted(z.namelist()) == sorted(["notebooks/P5_c_light_vgg.ipynb", f"results/{RESULTS_ID}",
                                               "results/light_vgg/best.pt", "results/light_vgg/metrics.json"])
    assert "left 2 checkpoints (0 MB) out of fer_results.zip" in capsys.readouterr().out


def test_the_outputs_of_four_kaggle_notebooks_are_merged(tmp_path, capsys):
    """Kaggle: each notebook's version has its own Output; P5_d trained P5_c's run itself (a smoke copy here)."""
    outputs = {n: tmp_path / n / "results" for n in ("a", "c", "d")}
    _run(outputs["c"] / "light_vgg", OTHER_FP)
    _run(outputs["d"] / "light_vgg", OTHER_FP, max_batches=2)
    _run(outputs["d"] / "ablation" / "screen10" / "plain_seed0", OTHER_FP)
    _run(outputs["c"] / "ablation" / "screen10" / "gap_head_seed0", OTHER_FP)
    (outputs["a"] / "preprocessing").mkdir(parents=True)
    (outputs["a"] / "preprocessing" / "dataset.json").write_text(json.dumps(OTHER_FP))
    group = {"device": "cpu", "threads": 2, "repeats": 50}
    timed = {n: [group | {"ms": {"light-vgg": 7.0}}, group | {"ms": {n: 1.0}}] for n in ("c", "d")}
    for n, r in outputs.items():
        (r / RESULTS_ID).write_text(f"id{n}\n")
        if n in timed:
            (r / "latency.json").write_text(json.dumps({"groups": timed[n]}))
            # an older commit's screening file of the same name ({row: ms}), in both: the first is kept, no crash
            (r / "ablation" / "screen10" / "latency.json").write_text(json.dumps({"plain": float(len(n))}))
    merged, _ = find_run([tmp_path / "d", tmp_path / "a", tmp_path / "c"], tmp_path / "tmp")
    # each notebook's timed groups are kept, the one both timed once
    assert json.loads((merged / "latency.json").read_text())["groups"] == timed["d"] + timed["c"][1:]
    assert json.loads((merged / "ablation" / "screen10" / "latency.json").read_text()) == {"plain": 1.0}
    assert sorted(p.relative_to(merged).as_posix() for p in merged.rglob("config.json")) == [
        "ablation/screen10/gap_head_seed0/config.json", "ablation/screen10/plain_seed0/config.json",
        "light_vgg/config.json"]
    assert json.loads((merged / "light_vgg" / "metrics.json").read_text())["max_batches"] is None  # the full run
    assert "merged 3 results folders" in capsys.readouterr().out
    nb = _notebook(tmp_path / "P5_a_preprocessing.ipynb", {"dataset": OTHER_FP, "results": {"id": "ida"}})
    assert notebook_data_problem(nb, merged) is None  # each notebook matches its own folder's identity


@pytest.mark.parametrize("order", ["cd", "dc"])
def test_p5_ds_copy_of_part_cs_run_keeps_its_maps_whatever_the_order(tmp_path, order):
    """Kaggle, one notebook a runtime: P5_d trained part (c)'s run again and drew its maps into it (cam/)."""
    for n in "cd":
        _run(tmp_path / n / "results" / "light_vgg", OTHER_FP)
    (tmp_path / "d" / "results" / "light_vgg" / "cam").mkdir()
    (tmp_path / "d" / "results" / "light_vgg" / "cam" / "cam_regions.json").write_text("{}")
    merged = merge_results([tmp_path / n / "results" for n in order], tmp_path / "merged")
    assert (merged / "light_vgg" / "cam" / "cam_regions.json").exists()


def test_the_hand_in_from_a_cloud_run_asks_for_the_name_before_it_touches_anything(tmp_path):
    from facial_expression.errors import FERError
    from facial_expression.submission import submission_from
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "student.tex").write_text(
        "\\newcommand{\\StudentFirstName}{FIRSTNAME}\n\\newcommand{\\StudentLastName}{LASTNAME}\n"
        "\\newcommand{\\StudentID}{STUDENTID}\n")
    with pytest.raises(FERError, match="placeholders: put your first name"):
        submission_from([tmp_path / "nowhere.zip"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_finished_runs_keep_only_best_pt_unless_asked(tmp_path, capsys):
    from facial_expression.notebooks import tidy_results
    for run, epochs_run, interrupted in (("done", 2, False), ("stopped", 1, True), ("short", 1, False)):
        d = tmp_path / run
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"epochs": 2}))
        (d / "history.json").write_text(json.dumps({"epochs": [{}] * epochs_run, "interrupted": interrupted}))
        for name in ("best.pt", "last.pt"):
            (d / name).write_bytes(b"x")
    assert tidy_results(tmp_path, keep_last=True) == []
    assert tidy_results(tmp_path) == [tmp_path / "done" / "last.pt"]  # unfinished runs keep theirs, to resume
    assert sorted(p.parent.name for p in tmp_path.rglob("last.pt")) == ["short", "stopped"]
    assert "removed last.pt of 1 finished run (0 MB" in capsys.readouterr().out
