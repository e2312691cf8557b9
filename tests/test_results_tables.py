"""Generated results tables: the README's (readme.results_markdown) and the report's (report.py).

A finished run's numbers appear, a smoke run (max_batches set) or a checkpoint's evaluation is left out or
flagged, a missing run says so, and no snake_case key of the results files reaches the reader outside code type.
"""

import json
import re
import shutil

import pytest
from prose import states
from test_findings import CLASSES8, cards, fingerprint, history, metrics, regions, split_stats

from facial_expression import report
from facial_expression.config import TrainConfig
from facial_expression.readme import gpu_markdown, results_markdown, write_results
from facial_expression.report import experiment_macros, settings_tex, write_report_inputs

SNAKE = re.compile(r"[A-Za-z0-9](?:\\_|_)[A-Za-z0-9]")  # a_b, or a\_b once escaped for LaTeX
VAL, N = 0.734, 1_250  # the finished run's validation accuracy and images: numbers no default produces


def finished_metrics(**kw):
    """metrics.json of a finished LightVGG run with distinctive numbers."""
    m = metrics(CLASSES8, train=0.812, tune=0.7025, val=VAL, best=17, epochs=24, fp=kw.pop("fp", None), **kw)
    return m | {"model": "light-vgg", "n": N, "macro_f1": 0.7111, "macro_auc": 0.9432, "cohen_kappa": 0.6789,
                "wall_seconds": 1512.0, "device": "cuda", "cpu_latency_ms": 3.2}


def write(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def results_folder(root, smoke=True):
    """light_vgg finished; vgg16_transfer missing; with `smoke`, a smoke run
    (smoke_check) and a checkpoint's evaluation (eval_best) beside them."""
    fp = fingerprint(CLASSES8)
    stats = split_stats(CLASSES8)
    light = root / "light_vgg"
    write(light / "metrics.json", finished_metrics(fp=fp))
    write(light / "config.json", TrainConfig(model="light-vgg", out=str(light)).to_dict() | {"dataset": fp})
    write(light / "history.json", history(17, epochs=24) | {"device": "cuda", "wall_seconds": 1512.0,
                                                            "stopped_early": True})  # 24 of 30 epochs
    write(light / "split_stats.json", stats)
    write(light / "cam" / "cam_regions.json", regions(CLASSES8))
    write(root / "preprocessing" / "split_stats.json", stats)
    write(root / "comparison.json", cards(light_acc=VAL))
    if smoke:
        write(root / "smoke_check" / "metrics.json", finished_metrics(fp=fp) | {"accuracy": 0.0917, "max_batches": 2})
        write(root / "smoke_check" / "config.json",
              TrainConfig(model="light-vgg", max_batches=2, epochs=1).to_dict() | {"dataset": fp})
        evaluation = {k: v for k, v in finished_metrics(fp=fp).items() if k not in ("epochs_run", "best_epoch")}
        write(root / "eval_best" / "metrics.json", evaluation | {"accuracy": 0.4321, "checkpoint": "best.pt"})
    return root


def macro(gen, name):
    """The body of one generated macro, or None."""
    m = re.search(r"^\\newcommand\{\\" + name + r"\}\{(.*)\}$", (gen / "macros.tex").read_text(), re.M)
    return m.group(1) if m else None


def outside_code(tex):
    r"""The text without its \texttt{...} spans (no nested braces in them)."""
    return re.sub(r"\\texttt\{[^{}]*\}", "", tex)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """report/generated of a results folder with a smoke run, and of one without; the VGG16 cost estimate and the
    figures (slow, and not what is tested here) are left out."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "draw_run_figures", lambda *a, **k: [])
        for smoke in (True, False):
            root = tmp_path_factory.mktemp(f"smoke{int(smoke)}")
            write_report_inputs(results_folder(root / "results", smoke), root / "report")
            out[smoke] = root / "report" / "generated"
    return out


# ------------------------------------------------------------------------------------ README: results_markdown
def test_results_markdown_lists_finished_runs_only(tmp_path):
    results = results_folder(tmp_path / "results")
    write(results / "alexnet_var" / "metrics.json",
          finished_metrics() | {"model": "alexnet-var", "accuracy": 0.6543, "parameters": {"total": 1_234_567}})
    lines = results_markdown(results).splitlines()
    assert len(lines) == 4  # header, rule, and the two finished runs
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert len(header) == 9 and all(len(line.strip("|").split("|")) == 9 for line in lines[2:])
    assert lines[2:] == [
        "| `alexnet_var` | alexnet-var | 24 (17) | 0.6543 | 0.7111 | 0.9432 | 1,234,567 | 25.2 min | cuda |",
        "| `light_vgg` | light-vgg | 24 (17) | 0.7340 | 0.7111 | 0.9432 | 3,744,664 | 25.2 min | cuda |"]
    text = "\n".join(lines)
    for left_out in ("smoke_check", "0.0917", "eval_best", "0.4321", "vgg16_transfer"):
        assert left_out not in text, left_out  # a smoke run, an evaluation and missing runs are no results
    assert not SNAKE.search(re.sub(r"`[^`]*`", "", text))  # folder names only as code


def test_results_markdown_of_an_empty_or_missing_folder_is_the_header(tmp_path):
    for folder in (tmp_path, tmp_path / "nothing"):
        lines = results_markdown(folder).splitlines()
        assert len(lines) == 2 and lines[0].startswith("| experiment |") and set(lines[1]) == {"|", "-"}


# ------------------------------------------------------------------------------------ report: macros
def test_experiment_macros_of_a_finished_run(tmp_path):
    run = tmp_path / "results" / "light_vgg"
    write(run / "metrics.json", finished_metrics())
    body = {m.split("}{", 1)[0].removeprefix("\\newcommand{\\"): m.split("}{", 1)[1][:-1]
            for m in experiment_macros("Light", run)}
    se = 100 * (VAL * (1 - VAL) / N) ** 0.5
    assert body["LightAccuracy"] == f"73.4 \\% (± {se:.1f}, one standard error over 1,250 images)"
    assert (body["LightMacroFone"], body["LightMacroAUC"], body["LightKappa"]) == ("71.1 \\%", "0.943", "0.679")
    assert (body["LightEpochs"], body["LightBestEpoch"], body["LightWallMin"]) == ("24", "17", "25.2")
    assert (body["LightDevice"], body["LightParams"], body["LightRan"]) == ("cuda", "3,744,664", "1")
    assert (body["LightTrainAccuracy"], body["LightTuneAccuracy"]) == ("0.8120", "0.7025")


def test_experiment_macros_of_a_missing_run_say_not_run(tmp_path):
    body = {m.split("}{", 1)[0].removeprefix("\\newcommand{\\"): m.split("}{", 1)[1][:-1]
            for m in experiment_macros("Vgg", tmp_path / "results" / "vgg16_transfer")}
    assert body.pop("VggRan") == "0"
    assert len(body) == 9 and set(body.values()) == {r"not run (no results in results/vgg16\_transfer)"}


def test_report_macros_quote_the_finished_run_and_flag_the_smoke_run(generated):
    gen = generated[True]
    assert macro(gen, "LightAccuracy").startswith("73.4 \\% (± 1.2, one standard error over 1,250 images)")
    assert macro(gen, "LightRan") == "1" and macro(gen, "LightEpochs") == "24"
    assert macro(gen, "VggRan") == "0" and macro(gen, "VggAccuracy").startswith("not run")
    note = macro(gen, "SmokeNote")
    assert "Smoke run" in note and "smoke" in note and "meaningless" in note
    assert "light" not in note and "eval" not in note  # the finished run and the evaluation are no smoke runs
    text = (gen / "macros.tex").read_text()
    assert not re.search(r"(?<![\d.])9\.2 \\%|0\.0917", text)  # nothing of the smoke run is quoted
    assert macro(generated[False], "SmokeNote") == ""


def test_smoke_note_names_runs_as_code(generated):
    assert not SNAKE.search(outside_code(macro(generated[True], "SmokeNote")))


# ------------------------------------------------------------------------------------ report: tables
def test_report_tables_hold_the_finished_runs_numbers(generated):
    gen = generated[True]
    per_class = (gen / "per_class_light_vgg.tex").read_text()
    f1 = finished_metrics()["per_class"]
    for c in CLASSES8:
        assert re.search(rf"^{c} & .* \\\\$", per_class, re.M), c
        assert f" & {f1[c]['f1']:.3f} & " in re.search(rf"^{c} & .*$", per_class, re.M).group(0), c
    comparison = (gen / "comparison.tex").read_text()
    assert re.search(r"^validation accuracy \(\\%\) & 73\.4 & not run \\\\$", comparison, re.M)
    assert "not trained yet" in comparison  # VGG16 transfer: the architecture's numbers only
    settings = (gen / "settings.tex").read_text()
    assert re.search(r"^epochs run / best tune epoch & -- & 24 / 17 \\\\$", settings, re.M) and "cuda / " in settings
    assert "parameters (total / trainable) & -- & 3,744,664 / 3,744,664" in settings


def test_generated_tables_show_no_snake_case_keys(generated):
    for gen in generated.values():
        tables = [p for p in gen.glob("*.tex") if p.name != "macros.tex"]
        assert {"per_class_light_vgg.tex", "comparison.tex", "settings.tex", "split_stats.tex",
                "cam_regions.tex"} <= {p.name for p in tables}
        for path in tables:
            text = outside_code(path.read_text())
            assert not SNAKE.search(text), (path.name, SNAKE.search(text).group(0))


def test_split_table_gives_each_split_its_role_size_and_images_per_class(generated):
    rows = {line.split(" & ")[0]: line.split(" & ") for line in (generated[True] / "split_stats.tex").read_text()
            .splitlines() if " & " in line}
    assert set(rows) >= {"train", "tune", "validation"}
    assert "test set" in rows["validation"][2] and "selects the epoch" in rows["tune"][2]
    sizes = {split: int(rows[split][3].replace(",", "")) for split in ("train", "tune", "validation")}
    assert sizes == {"train": 8000, "tune": 888, "validation": 1600}  # the fixture's split statistics, summed


# ------------------------------------------------------------------------------------ report: settings_tex
def test_settings_table_of_a_finished_a_smoke_and_a_missing_run(tmp_path):
    results = results_folder(tmp_path / "results")
    out = tmp_path / "settings.tex"
    settings_tex(results, out)
    table = out.read_text()
    rows = {line.split(" & ")[0]: line.removesuffix(r" \\").split(" & ")[1:] for line in table.splitlines()
            if " & " in line}
    assert rows["epochs run / best tune epoch"] == ["--", "24 / 17"]  # (b) has not run: its column has no run
    assert rows["batch size"] == ["32", "64"]  # VGG16's preset against the light VGG's run
    assert rows["loss"] == ["cross-entropy", "as (b)"]
    assert not SNAKE.search(outside_code(table))

    smoke = tmp_path / "smoke"
    shutil.copytree(results / "smoke_check", smoke / "light_vgg")
    settings_tex(smoke, out)
    assert re.search(r"^batches per epoch \(smoke run\) & -- & 2 \\\\$", out.read_text(), re.M)  # flagged


def test_the_readme_gpu_paragraph_is_generated_from_the_benchmark_file(tmp_path):
    bench = {"device": "Tesla T4", "augment_backend_same_run": {
        "v2_epoch_s": [30.0, 24.0], "batched_epoch_s": [9.0, 6.0], "precision": "float16"},
        "second_study_workers": {"epoch_s_per_row": {"plain_long": 36.0, "smoothing_long": 36.0}}}
    write(tmp_path / "results" / "benchmarks" / "tesla-t4.json", bench)
    write(tmp_path / "results" / "benchmarks" / "cpu.json", {"device": "cpu"})  # measured no augmentation
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\n<!-- gpu:start -->\n"
                      "old\n<!-- gpu:end -->\nend\n")
    write_results(tmp_path / "results", readme, tmp_path / "results" / "benchmarks")
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("<!-- gpu:end -->\nend\n")
    paragraph = gpu_markdown(tmp_path / "results" / "benchmarks")
    assert paragraph in text and states(paragraph, "Tesla T4", "float16", "LightVGG", "epoch"), paragraph
    # the second epoch of each backend (the first warms up), v2 then batched, and their ratio, 24 / 6
    assert states(paragraph, 24.0, "s", "v2", 6.0, "s", "batched", 4.0, "×", "epoch", 2), paragraph
    assert not states(paragraph, 30.0) and not states(paragraph, 9.0), paragraph  # not the warm-up epochs
    assert states(paragraph, "--workers", 2, "second-study rows", "EMA", 36, "s"), paragraph
    assert paragraph.endswith("Source: `results/benchmarks/tesla-t4.json`.") and "cpu.json" not in paragraph


def test_the_readme_tradeoff_table_is_written_from_tradeoff_json(tmp_path):
    from facial_expression.config import SAMPLE_RESULTS_DIR
    saved = json.loads((SAMPLE_RESULTS_DIR / "export" / "tradeoff.json").read_text())
    write(tmp_path / "results" / "export" / "tradeoff.json", saved)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n<!-- tradeoff:start -->\nold\n"
                      "<!-- tradeoff:end -->\n<!-- gpu:start -->\n<!-- gpu:end -->\n")
    write_results(tmp_path / "results", readme, tmp_path / "results" / "benchmarks")
    rows = [line.split(" | ") for line in readme.read_text().splitlines() if " | ONNX int8 | " in line]
    measured = [r for r in saved["rows"] if r.get("form") == "ONNX int8"]
    assert "old" not in readme.read_text() and len(rows) == len(measured) > 0
    for row, r in zip(rows, measured):  # each number is the file's, as a ratio to fp32 PyTorch of the same call
        assert row[0] == "| " + r["network"] and row[3] == f"{r['accuracy']:.4f}"
        assert row[5] == f"{r['latency_ms_1_thread']:.1f} ms ({r['ratio_1_thread']:.2f}×)"
