"""The PDF report: it builds without LaTeX problems, its numbers are the saved results, and its findings fit the
data they come from (nothing of the development sample in a report of the course's data)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from project_fixture import IDENTITY
from prose import numbers, plain, states
from test_findings import CLASSES8, cards, fingerprint, history, metrics, regions, split_stats

from facial_expression.config import REPORT_DIR, RESULTS_DIR, SAMPLE_RESULTS_DIR, TrainConfig
from facial_expression.report import check_captions, check_latex_log, check_pdf, tex_escape, write_report_inputs
from facial_expression.submission import Identity, pdf_text, read_identity

needs_tex = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                               reason="latexmk/pdftotext not installed (.ci/run installs them)")
SAMPLE_WORDS = ("FFHQ", "ffhq", "affectnet7", "development sample", "Flickr")


def copy_report(tmp_path):
    """report/ without its build products, in a temporary folder."""
    work = tmp_path / "report"
    shutil.copytree(REPORT_DIR, work, ignore=shutil.ignore_patterns("*.pdf", "*.aux", "*.log", "*.fdb_latexmk",
                                                                     "*.fls", "*.toc", "*.out"))
    return work


def macro(gen, name):
    """The body of one generated macro, or None."""
    m = re.search(r"^\\newcommand\{\\" + name + r"\}\{(.*)\}$", (gen / "macros.tex").read_text(), re.M)
    return m.group(1) if m else None


def header_pattern(who: Identity) -> str:
    """The student's name and ID as the page header shows them (report/student.tex)."""
    return re.escape(who.first) + r"\s+" + re.escape(who.last) + r"\s+.\s+" + re.escape(who.student_id)


def course_results(root, vgg=False):
    """A results folder of the course's kind of data: 8 classes with contempt, imbalanced, no FFHQ files,
    P5_a and P5_c run (and P5_b with `vgg`), the ablation not."""
    fp = fingerprint(CLASSES8)
    stats = split_stats(CLASSES8, {c: 1000 + 40 * i for i, c in enumerate(CLASSES8)} | {"contempt": 450},
                        sizes={"224x224": 9000, "160x160": 1600})
    light = root / "light_vgg"
    files = {light / "metrics.json": metrics(CLASSES8, fp=fp),
             light / "config.json": TrainConfig(model="light-vgg", data="/data/affectnet_course",
                                                out=str(light)).to_dict() | {"dataset": fp},
             light / "history.json": history(20), light / "split_stats.json": stats,
             light / "cam" / "cam_regions.json": regions(CLASSES8),
             root / "preprocessing" / "split_stats.json": stats,
             root / "comparison.json": cards(vgg_acc=0.65 if vgg else None)}
    if vgg:
        out = root / "vgg16_transfer"
        files.update({out / "metrics.json": metrics(CLASSES8, train=0.9, tune=0.66, val=0.65, fp=fp),
                      out / "config.json": TrainConfig(model="vgg16", freeze="features", head_lr_mult=10.0,
                                                       out=str(out)).to_dict() | {"dataset": fp},
                      out / "history.json": history(12), out / "split_stats.json": stats})
    for path, value in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return root


def test_latex_log_check_finds_problems(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("Overfull \\hbox (12.5pt too wide) in paragraph\nOverfull \\hbox (1.2pt too wide)\n"
                   "LaTeX Warning: Reference `fig:x' on page 3 undefined on input line 5.\n")
    problems = check_latex_log(log)
    assert len(problems) == 2 and "12.5pt" in problems[1]
    assert tex_escape("a_b & 50%") == r"a\_b \& 50\%"


def test_make_setup_reads_the_tex_packages_that_report_names():
    """One list of TeX packages: the Makefile's sed takes report.py's TEX_PACKAGES line, which keeps its form."""
    from facial_expression import report
    line = re.search(r'^TEX_PACKAGES = "(.*)"$', Path(report.__file__).read_text(), re.M)
    assert line and line.group(1) == report.TEX_PACKAGES and "latexmk" in report.TEX_PACKAGES
    assert "src/facial_expression/report.py" in (REPORT_DIR.parent / "Makefile").read_text()


@pytest.mark.parametrize("vgg", [False, True])
def test_report_inputs_of_course_data_say_nothing_of_the_sample(tmp_path, vgg):
    """The report's inputs from course-shaped results, with part (b) run and without: the facts its text states
    (the PDFs that show them are built from the sample's runs, conftest.py's `sample_project`, and from the cloud
    run's, test_course_path.py)."""
    work = copy_report(tmp_path)
    write_report_inputs(course_results(tmp_path / "results", vgg), work)
    gen = work / "generated"
    text = (gen / "macros.tex").read_text()
    for word in SAMPLE_WORDS:
        assert word not in text, word
    assert "has no internet" not in text
    assert macro(gen, "HasFfhq") == "0" and macro(gen, "VggRan") == ("1" if vgg else "0")
    assert macro(gen, "ArchNumClasses") == "8" and macro(gen, "ArchParams") == "3,744,664"
    # 60 % of 1,600 validation faces: one standard error is sqrt(.6 * .4 / 1600) = 1.2 points
    assert states(macro(gen, "LightAccuracy"), 60.0, "±", 1.2, 1600), macro(gen, "LightAccuracy")
    assert r"\emph{contempt}" in macro(gen, "DataSentence")
    assert states(macro(gen, "DataSentence"), 8, *CLASSES8), macro(gen, "DataSentence")  # all 8, in order
    assert "imbalance ratio" in macro(gen, "PreprocessingFindings")
    assert "screening has not been run" in macro(gen, "ScreenFindings")
    findings, comparison = plain(macro(gen, "VggFindings")), plain(macro(gen, "ComparisonFindings"))
    if vgg:  # (b) with its result; the comparison quotes both accuracies, the gap and its 95 % interval:
        # 1.96 * sqrt((.65 * .35 + .6 * .4) / 1600) = 3.4 points over the 1,600 validation faces
        assert states(macro(gen, "VggAccuracy"), 65.0, "±", 1.2, 1600), macro(gen, "VggAccuracy")
        assert states(findings, "chance", 12.5, 8, "classes"), findings  # its analysis
        assert states(findings, 90.0, "training", 66.0, "tune", 65.0, "validation"), findings
        assert states(comparison, "VGG16", 65.0, 60.0, "light VGG", 5.0, "±", 3.4), comparison
        assert "no clear effect" not in comparison and "more accurate" not in comparison  # VGG16 is, clearly
        assert "not been trained" not in findings + comparison and "cannot be compared" not in comparison
    else:  # one line, which names what (b) needs, and the comparison of size and speed only
        assert states(findings, "VGG16", "not trained", "ImageNet weights"), findings
        assert "cannot be compared" in comparison and "On accuracy" not in comparison
        assert not states(comparison, 60.0), comparison  # no accuracy quoted against a model that has none
    rows = [line for line in (gen / "per_class_light_vgg.tex").read_text().splitlines()
            if line.split(" & ")[0] in CLASSES8]
    assert len(rows) == 8
    header = (gen / "cam_regions.tex").read_text().splitlines()[2]  # region x class: one column per class
    assert all(f" & {c} " in header + " " for c in CLASSES8), header
    # nothing of the results the copied report was last built from survives
    assert not (gen / "photo_style.tex").exists() and not (gen / "ablation_screen.tex").exists()
    assert not (work / "figures" / "cam_correct.pdf").exists()


def test_the_pdf_check_finds_footers_identifiers_and_floats_without_caption(tmp_path):
    """A page with text in its footer, a snake_case identifier and a figure without a caption fails the build's
    checks; the same page without them passes."""
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed (.ci/run installs it)")
    body = (r"\documentclass{article}\usepackage[T1]{fontenc}\usepackage[margin=2.3cm]{geometry}"
            r"\usepackage{fancyhdr}\pagestyle{fancy}"
            r"\fancyhf{}\fancyfoot[C]{\thepage}%s\begin{document}Some text %s.\begin{figure}[h]x%s\end{figure}"
            r"\end{document}")
    for name, parts in (("bad", (r"\fancyfoot[L]{draft}", r"light\_vgg", "")),
                        ("good", ("", "light VGG", r"\caption{A figure.}"))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.tex").write_text(body % parts)
        subprocess.run(["pdflatex", "-interaction=nonstopmode", "report.tex"], cwd=tmp_path / name,
                       capture_output=True, check=True)
    problems = check_pdf(tmp_path / "bad" / "report.pdf") + check_captions(tmp_path / "bad")
    assert any("footer holds 'draft 1'" in p for p in problems), problems
    assert any("identifiers in the text: light_vgg" in p for p in problems), problems
    assert any("a figure without a caption" in p for p in problems), problems
    assert check_pdf(tmp_path / "good" / "report.pdf") + check_captions(tmp_path / "good") == []


HEADINGS = ("Question 1", "Question 2", "Question 3", "Question 4", "Question 5", "(a) Number of parameters",
            "(b) Derivatives", "(a) Receptive field", "(b) Output size", "(c) Equivalence", "(a) Preprocessing",
            "(b) Transfer learning", "(c) The light VGG", "(d) Class activation maps")


def check_pages(pages: list[str], gen: Path, who: Identity) -> str:
    """Contents, every heading, the identity in the header of every page and the light VGG's accuracy as the
    macros give it; the text, whitespace runs made one space."""
    text = "\n".join(pages)
    assert "Contents" in pages[0] or "Contents" in pages[1]
    for heading in HEADINGS:
        assert heading in text, heading
    for i, page in enumerate(pages):  # the student's name and ID in the header of every page
        assert re.search(header_pattern(who), page.splitlines()[0] if page.strip() else ""), i
    flat = " ".join(text.split())
    if macro(gen, "LightRan") == "1":  # the accuracy, its standard error and the number of faces, as the macro has them
        assert states(flat, "validation accuracy", *numbers(macro(gen, "LightAccuracy"))), macro(gen, "LightAccuracy")
    return flat


@needs_tex
def test_report_builds_cleanly_and_shows_the_saved_results(sample_project):
    """The suite's one build of report/ (conftest.py's `sample_project`: the sample's runs, a test identity) has a
    clean log, captions, a print-ready PDF and every heading; part (b) is not run there, so its text takes the
    branch without VGG16's accuracy (the branch with it: test_course_path.py's cloud run)."""
    report = sample_project / "report"
    assert check_latex_log(report / "report.log") == []
    assert check_captions(report) == [] and check_pdf(report / "report.pdf") == []
    text = check_pages(pdf_text(report / "report.pdf"), report / "generated", Identity(*IDENTITY))
    for word in ("Settings of the VGG16 transfer run", "light VGG"):
        assert word in text, word
    assert "has no internet" not in text
    assert macro(report / "generated", "VggRan") == "0", "the sample now has a (b) run: build the branch without it"
    assert states(text, "VGG16", "not trained", "ImageNet weights"), "no line on the missing (b) run"
    assert states(text, "VGG16", "not been trained", "cannot be compared"), "the comparison quotes accuracy"


@needs_tex
def test_committed_pdf_matches_the_results():
    pdf, gen = REPORT_DIR / "report.pdf", REPORT_DIR / "generated"
    if not pdf.exists() or not (gen / "macros.tex").exists() or macro(gen, "LightRan") != "1":
        pytest.skip("no committed report of a light VGG run")
    saved = [float(f"{100 * json.loads(p.read_text())['accuracy']:.1f}")
             for p in (RESULTS_DIR / "light_vgg" / "metrics.json", SAMPLE_RESULTS_DIR / "light_vgg" / "metrics.json")
             if p.exists()]
    assert numbers(macro(gen, "LightAccuracy"))[0] in saved  # the report was generated from one of the results
    check_pages(pdf_text(pdf), gen, read_identity(REPORT_DIR.parent))  # shows it, with every heading and header
    assert check_pdf(pdf) == []  # the committed PDF too: no text under 8 pt, no footer text, no identifiers


def test_the_comparison_takes_part_bs_result_from_its_run_folder(tmp_path):
    """Kaggle, one notebook a runtime: P5_c wrote comparison.json where part (b) had not run; the merged results
    hold part (b)'s finished run, and the report's comparison must say so."""
    from facial_expression.findings import card_ran
    from facial_expression.report import current_cards
    run = tmp_path / "vgg16_transfer"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.65, "macro_f1": 0.64, "macro_auc": 0.9,
                                                  "epochs_run": 30}))
    cards = [{"model": "LightVGG (c)", "status": "trained", "accuracy": 0.6},
             {"model": "VGG16 transfer (b)", "status": "not trained yet: size and latency of the architecture",
              "accuracy": "not run", "macro_f1": "not run", "macro_auc": "not run", "parameters": 134_289_223}]
    vgg = current_cards(cards, tmp_path)[1]
    assert card_ran(vgg) and vgg["status"] == "trained" and vgg["parameters"] == 134_289_223
    assert (vgg["accuracy"], vgg["macro_f1"], vgg["macro_auc"], vgg["epochs_run"]) == (0.65, 0.64, 0.9, 30)
    assert current_cards(None, tmp_path) is None
