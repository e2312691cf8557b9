"""The notebook runner: paths resolved before the kernels start, failures in one line, outputs kept.

The four notebooks themselves run in tests/test_course_path.py, on a course-shaped dataset."""

import re

import nbformat
import pytest

from facial_expression.notebooks import NOTEBOOKS, run_notebooks


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("data = None", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_a_failing_cell_is_one_line_and_keeps_the_committed_notebook(tmp_path, monkeypatch):
    import os
    from facial_expression import notebooks
    from facial_expression.config import PROJ_ROOT
    from facial_expression.errors import FERError
    monkeypatch.setattr(notebooks, "NOTEBOOKS_DIR", tmp_path)
    _notebook(tmp_path / "ok.ipynb", "print(data)")
    _notebook(tmp_path / "bad.ipynb", "x = 1", "raise ValueError('no dataset here')")
    before = (tmp_path / "bad.ipynb").read_text()
    monkeypatch.chdir(tmp_path)
    written = run_notebooks(["ok"], {"data": "relative/folder"})
    out = nbformat.read(written[0], as_version=4).cells[-1].outputs[0]["text"]  # after papermill's injected cell
    assert out.strip() == str(tmp_path / "relative" / "folder")  # resolved before the kernel ran in notebooks/
    # papermill's injected cell becomes a markdown record: as code it would override a later Run all
    cells = nbformat.read(written[0], as_version=4).cells
    assert not [c for c in cells if c.cell_type == "code" and "injected-parameters" in c.metadata.get("tags", [])]
    shown = os.path.relpath(tmp_path / "relative" / "folder", PROJ_ROOT)  # no machine's layout in the record
    assert [c.source for c in cells if "parameters-record" in c.metadata.get("tags", [])] == [
        f'*Executed by `fer notebooks` with these parameters:*\n\n```python\ndata = "{shown}"\n```']
    with pytest.raises(FERError,
                       match=r"^bad: cell In\[3\] failed: ValueError: no dataset here \(bad.ipynb is unchanged"):
        run_notebooks(["bad"])
    assert (tmp_path / "bad.ipynb").read_text() == before


def test_badges_and_repo_url_come_from_one_place(tmp_path, monkeypatch):
    import shutil
    from facial_expression import notebooks
    from facial_expression.config import PROJ_ROOT
    from facial_expression.errors import FERError
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJ_ROOT / name, tmp_path / name)
    shutil.copytree(PROJ_ROOT / "notebooks", tmp_path / "notebooks")
    monkeypatch.setattr(notebooks, "PROJ_ROOT", tmp_path)
    monkeypatch.setattr(notebooks, "NOTEBOOKS_DIR", tmp_path / "notebooks")
    with pytest.raises(FERError, match="not an https address of a Git repository"):
        notebooks.write_badges("git@github.com:ada/fer.git")
    notebooks.write_badges("https://gitlab.com/ada/fer")  # cloned by the notebooks; Colab's badges are GitHub's
    nb = nbformat.read(tmp_path / "notebooks" / "P5_d_cam.ipynb", as_version=4)
    assert 'repo_url = "https://gitlab.com/ada/fer.git"' in nb.cells[1].source and "gitlab" not in nb.cells[0].source
    notebooks.write_badges("https://github.com/ada/fer.git")
    assert notebooks.repository_url(tmp_path / "pyproject.toml") == "https://github.com/ada/fer"
    url = "https://colab.research.google.com/github/ada/fer/blob/main/notebooks/P5_d_cam.ipynb"
    assert url in (tmp_path / "README.md").read_text()
    nb = nbformat.read(tmp_path / "notebooks" / "P5_d_cam.ipynb", as_version=4)
    assert url in nb.cells[0].source and nb.cells[0].source.count("colab-badge") == 1
    assert 'repo_url = "https://github.com/ada/fer.git"' in nb.cells[1].source


def test_every_notebook_has_the_one_environment_cell(tmp_path, monkeypatch):
    import shutil
    from facial_expression import notebooks
    for name in NOTEBOOKS:
        nb = nbformat.read(notebooks.NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
        assert sum(c.source == notebooks.ENVIRONMENT_CELL for c in nb.cells) == 1, name
    shutil.copytree(notebooks.NOTEBOOKS_DIR, tmp_path / "notebooks")
    monkeypatch.setattr(notebooks, "NOTEBOOKS_DIR", tmp_path / "notebooks")
    assert notebooks.write_environment_cells() == []  # nothing to change
    path = tmp_path / "notebooks" / "P5_b_transfer_vgg16.ipynb"
    nb = nbformat.read(path, as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if c.source.startswith("# Environment:"))
    nb.cells[i].source = "# Environment: an edited copy\n"
    nbformat.write(nb, path)
    assert notebooks.write_environment_cells() == [path]
    assert nbformat.read(path, as_version=4).cells[i].source == notebooks.ENVIRONMENT_CELL


def test_committed_notebooks_have_no_code_that_overrides_their_parameters():
    from facial_expression.notebooks import NOTEBOOKS_DIR
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        assert not [c for c in code if "injected-parameters" in c.metadata.get("tags", [])], name


def test_committed_notebooks_speak_to_the_student():
    """No machine path in their parameter records, no development benchmark, no explanation of the development
    sample's file names in their text."""
    from facial_expression.config import PROJ_ROOT
    from facial_expression.notebooks import NOTEBOOKS_DIR, _shown_path
    assert _shown_path(str(PROJ_ROOT.parent / "shared" / "data" / "affectnet7")) == "../shared/data/affectnet7"
    assert _shown_path(str(PROJ_ROOT / "examples" / "affectnet7_sample")) == "examples/affectnet7_sample"
    assert _shown_path("/kaggle/input/affectnet") == "/kaggle/input/affectnet"  # says where a cloud run read
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
        records = [c.source for c in nb.cells if "parameters-record" in c.metadata.get("tags", [])]
        assert not [r for r in records if re.search(r'= "/(?!kaggle/|content/)', r)], name
        sources = "\n".join(c.source for c in nb.cells)
        assert "gpu_markdown" not in sources and "H200" not in sources and "ffhq_*" not in sources, name
