"""The four notebooks run top to bottom in smoke mode, and give the same numbers as the CLI."""

import json

import nbformat
import pytest

from facial_expression.cli import main
from facial_expression.notebooks import NOTEBOOKS, run_notebooks


@pytest.mark.slow
def test_notebooks_smoke_run_and_match_the_cli(real_data, tmp_path):
    out = tmp_path / "smoke"
    written = run_notebooks(NOTEBOOKS, {"data": str(real_data)}, smoke=True, output_dir=out)
    assert [p.stem for p in written] == list(NOTEBOOKS)
    for path in written:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count is not None for c in code), path.name
        assert not [o for c in code for o in c.outputs if o.output_type == "error"], path.name
        text = "".join(o.get("text", "") for c in code for o in c.outputs)
        assert "SMOKE RUN" in text, path.name
    assert (out / "results" / "light_vgg" / "cam" / "cam_wrong.png").exists()

    # No silent copies: the CLI with the notebook's settings gives the same numbers.
    cli_out = tmp_path / "cli"
    assert main(["train", "--data", str(real_data), "--epochs", "1", "--max-batches", "2",
                 "--out", str(cli_out)]) == 0
    nb_hist = json.loads((out / "results" / "light_vgg" / "history.json").read_text())["epochs"]
    cli_hist = json.loads((cli_out / "history.json").read_text())["epochs"]
    for key in ("train_loss", "tune_loss", "validation_loss", "validation_accuracy"):
        assert nb_hist[0][key] == cli_hist[0][key], key
    nb_metrics = json.loads((out / "results" / "light_vgg" / "metrics.json").read_text())
    cli_metrics = json.loads((cli_out / "metrics.json").read_text())
    assert nb_metrics["confusion_matrix"] == cli_metrics["confusion_matrix"]


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("data = None", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_a_failing_cell_is_one_line_and_keeps_the_committed_notebook(tmp_path, monkeypatch):
    from facial_expression import notebooks
    from facial_expression.errors import FERError
    monkeypatch.setattr(notebooks, "NOTEBOOKS_DIR", tmp_path)
    _notebook(tmp_path / "ok.ipynb", "print(data)")
    _notebook(tmp_path / "bad.ipynb", "x = 1", "raise ValueError('no dataset here')")
    before = (tmp_path / "bad.ipynb").read_text()
    monkeypatch.chdir(tmp_path)
    written = run_notebooks(["ok"], {"data": "relative/folder"})
    out = nbformat.read(written[0], as_version=4).cells[-1].outputs[0]["text"]  # after papermill's injected cell
    assert out.strip() == str(tmp_path / "relative" / "folder")  # resolved before the kernel ran in notebooks/
    with pytest.raises(FERError, match=r"^bad: cell In\[3\] failed: ValueError: no dataset here \(bad.ipynb is unchanged"):
        run_notebooks(["bad"])
    assert (tmp_path / "bad.ipynb").read_text() == before
