"""The hand-in zip: exact contents, every refusal, and a smoke rerun from the zip alone."""

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from project_fixture import IDENTITY, set_identity

from facial_expression.config import PROJ_ROOT
from facial_expression.errors import FERError
from facial_expression.submission import Allow, build_submission, read_identity

pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                                reason="latexmk/pdftotext not installed (.ci/run installs them)")


SAMPLE = Allow(sample=True)  # these tests hand in the development sample's committed runs


@pytest.fixture
def project(sample_project, tmp_path) -> Path:
    """A copy of conftest.py's `sample_project` (its report built once per run with the test identity), for one
    test to change."""
    root = tmp_path / "p"
    shutil.copytree(sample_project, root)
    return root


def _expected(root: Path) -> set[str]:
    src = {p.relative_to(root).as_posix() for p in (root / "src").rglob("*.py") if "__pycache__" not in p.parts}
    nbs = {p.relative_to(root).as_posix() for p in (root / "notebooks").glob("P5_*.ipynb")}
    return src | nbs | {"pyproject.toml", "requirements.txt", "README.md", "data/README.md", "report/report.pdf"}


def test_identity_is_read_from_the_one_student_file(project):
    from facial_expression.submission import Identity
    assert read_identity(project) == Identity(*IDENTITY)
    assert read_identity(PROJ_ROOT).student_id  # whatever the student has filled in


def test_submission_has_exactly_the_expected_files(project, capsys):
    zip_path = build_submission(project, out_dir=project / "dist", rerun=False, allow=SAMPLE)
    assert zip_path.name == "98765432_HW04.zip"
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        readme = z.read("README.md").decode()
    assert names == _expected(project)
    # the grader's README: what is inside and how to rerun it, none of the development sample's tables
    assert "Ada Lovelace (98765432)" in readme and "fer notebooks" in readme and "| experiment |" not in readme
    assert "part (b) was not run" in capsys.readouterr().out  # the sample has no VGG16 run: said, not refused
    assert len([n for n in names if n.startswith("notebooks/")]) == 4
    # the rerun from the zip is tested on the course-shaped run (tests/test_course_path.py)


def test_placeholder_identity_is_refused(project):
    set_identity(project, "FIRSTNAME", "LASTNAME", "STUDENTID")
    with pytest.raises(FERError, match="still holds placeholders"):
        build_submission(project, rerun=False)


def test_unexecuted_notebook_is_refused(project):
    path = project / "notebooks" / "P5_c_light_vgg.ipynb"
    nb = json.loads(path.read_text())
    next(c for c in nb["cells"] if c["cell_type"] == "code")["execution_count"] = None
    path.write_text(json.dumps(nb))
    with pytest.raises(FERError, match="P5_c_light_vgg.ipynb: 1 code cell\\(s\\) not executed"):
        build_submission(project, rerun=False, allow=SAMPLE)


def test_stale_pdf_is_refused(project):
    metrics = project / "results" / "light_vgg" / "metrics.json"
    future = (project / "report" / "report.pdf").stat().st_mtime + 60
    os.utime(metrics, (future, future))
    with pytest.raises(FERError, match="older than results/light_vgg/metrics.json"):
        build_submission(project, rerun=False, allow=SAMPLE)


def test_a_results_folder_without_runs_is_refused(project):
    """Notebooks that ran into a trial folder and a report built from it: nothing here to check them against."""
    shutil.rmtree(project / "results")
    (project / "results").mkdir()
    with pytest.raises(FERError, match="results holds no runs.*fer submission --from"):
        build_submission(project, rerun=False, allow=Allow(sample=True, other_data=True, smoke=True))


def test_report_numbers_must_equal_the_results(project):
    metrics = project / "results" / "light_vgg" / "metrics.json"
    m = json.loads(metrics.read_text())
    m["accuracy"] = 0.1234
    metrics.write_text(json.dumps(m))
    pdf = project / "report" / "report.pdf"
    os.utime(pdf, (pdf.stat().st_mtime + 120,) * 2)
    with pytest.raises(FERError, match="does not show light_vgg's accuracy 12.3 %"):
        build_submission(project, rerun=False, allow=SAMPLE)


def test_the_development_samples_runs_are_refused_unless_allowed(project):
    with pytest.raises(FERError, match="development sample's runs, not yours.*--allow-sample"):
        build_submission(project, out_dir=project / "dist", rerun=False)
