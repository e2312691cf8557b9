"""The PDF report: it builds without LaTeX problems, and its numbers are the saved results."""

import json
import re
import shutil
import subprocess

import pytest

from facial_expression.config import REPORT_DIR, RESULTS_DIR
from facial_expression.report import check_latex_log, tex_escape

needs_tex = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                               reason="latexmk/pdftotext not installed (.ci/run installs them)")


def pdf_pages(pdf):
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    return [p for p in text.split("\f") if p.strip()]


def test_latex_log_check_finds_problems(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("Overfull \\hbox (12.5pt too wide) in paragraph\nOverfull \\hbox (1.2pt too wide)\n"
                   "LaTeX Warning: Reference `fig:x' on page 3 undefined on input line 5.\n")
    problems = check_latex_log(log)
    assert len(problems) == 2 and "12.5pt" in problems[1]
    assert tex_escape("a_b & 50%") == r"a\_b \& 50\%"


@needs_tex
def test_report_builds_cleanly_and_shows_the_saved_results(tmp_path):
    work = tmp_path / "report"
    shutil.copytree(REPORT_DIR, work, ignore=shutil.ignore_patterns("*.pdf", "*.aux", "*.log", "*.fdb_latexmk",
                                                                     "*.fls", "*.toc", "*.out"))
    r = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
                       cwd=work, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:]
    assert check_latex_log(work / "report.log") == []
    pages = pdf_pages(work / "report.pdf")
    text = "\n".join(pages)
    assert "Contents" in pages[0] or "Contents" in pages[1]
    for heading in ("Question 1", "Question 2", "Question 3", "Question 4", "Question 5",
                    "(a) Number of parameters", "(b) Derivatives", "(a) Receptive field", "(b) Output size",
                    "(c) Equivalence", "(a) Preprocessing", "(b) Transfer learning", "(c) The light VGG",
                    "(d) Class activation maps"):
        assert heading in text, heading
    for i, page in enumerate(pages):  # the student's name and ID in the header of every page
        assert re.search(r"FIRSTNAME LASTNAME\s+.\s+STUDENTID", page.splitlines()[0] if page.strip() else ""), i
    metrics = RESULTS_DIR / "light_vgg" / "metrics.json"
    if metrics.exists():
        acc = json.loads(metrics.read_text())["accuracy"]
        assert f"validation accuracy of {acc:.4f}" in " ".join(text.split())


@needs_tex
def test_committed_pdf_matches_the_results():
    pdf, metrics = REPORT_DIR / "report.pdf", RESULTS_DIR / "light_vgg" / "metrics.json"
    if not pdf.exists() or not metrics.exists():
        pytest.skip("no committed report or results")
    acc = json.loads(metrics.read_text())["accuracy"]
    assert f"validation accuracy of {acc:.4f}" in " ".join("\n".join(pdf_pages(pdf)).split())
