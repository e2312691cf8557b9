"""`fer export`: a small LightVGG exported to ONNX and int8 on the synthetic 8-class set, then evaluated and
used for prediction through ONNX Runtime with the same code as its .pt; the trade-off table; the one-line errors.

The other networks are exported where the suite's course run executes P5_c (its last cell exports AlexNet-var and
MobileNet-var too); VGG16 was exported by hand (537 MB fp32, 134 MB int8, 2 minutes on 2 busy cores)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime", reason='the export extra is not installed (pip install -e ".[export]")')

from conftest import make_split  # noqa: E402

from facial_expression import predict as predict_module  # noqa: E402
from facial_expression.checkpoint import OnnxModel, checkpoint_payload, load_checkpoint, save_checkpoint  # noqa: E402
from facial_expression.cli import main  # noqa: E402
from facial_expression.config import TrainConfig  # noqa: E402
from facial_expression.data import resolve_layout  # noqa: E402
from facial_expression.export import FILES, measure_forms, tradeoff, tradeoff_table  # noqa: E402
from facial_expression.models import build_model  # noqa: E402
from facial_expression.predict import predict_path  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def exported(course_data, tmp_path_factory) -> tuple[Path, Path, dict]:
    """An untrained 8-class LightVGG at 32 px (fp32 evaluation: amp off), its export and int8 model."""
    tmp = tmp_path_factory.mktemp("export")
    classes = list(resolve_layout(course_data).classes)
    torch.manual_seed(0)
    options = {"input_size": SIZE}
    model = build_model("light-vgg", len(classes), **options)
    cfg = TrainConfig(model="light-vgg", data=str(course_data), amp="off", input_size=SIZE)
    best = tmp / "best.pt"
    save_checkpoint(checkpoint_payload(model, cfg, classes, options), best)
    assert main(["export", "--checkpoint", str(best), "--out", str(tmp / "onnx"), "--int8",
                 "--data", str(course_data)]) == 0
    return best, tmp / "onnx", json.loads((tmp / "onnx" / "export.json").read_text())


def test_export_writes_both_forms_with_metadata_and_a_dynamic_batch(exported):
    best, out, summary = exported
    assert summary["forms"]["fp32"]["max_logit_diff"] < 1e-4
    assert summary["calibration"]["split"] == "tune" and 0 < summary["calibration"]["faces"] <= 300
    assert summary["forms"]["int8"]["MB"] < summary["forms"]["fp32"]["MB"] / 3  # int8 weights: about a quarter
    _, ckpt = load_checkpoint(best)
    for form in ("fp32", "int8"):
        model, meta = load_checkpoint(out / FILES[form])
        assert isinstance(model, OnnxModel) and meta["classes"] == ckpt["classes"] and model.input_size == SIZE
        assert meta["format"] == form
        for batch in (1, 5):  # the batch axis is dynamic
            assert model(torch.rand(batch, 3, SIZE, SIZE)).shape == (batch, len(ckpt["classes"]))


def test_evaluate_through_onnx_runtime_gives_the_same_metrics(exported, course_data, tmp_path):
    best, out, _ = exported
    runs = {"pt": best, "fp32": out / FILES["fp32"], "int8": out / FILES["int8"]}
    for name, checkpoint in runs.items():
        assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(course_data),
                     "--out", str(tmp_path / name)]) == 0
    metrics = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in runs}
    assert set(metrics["fp32"]) == set(metrics["pt"]) == set(metrics["int8"])
    assert sorted(p.name for p in (tmp_path / "fp32" / "figures").iterdir()) == \
        sorted(p.name for p in (tmp_path / "pt" / "figures").iterdir())
    probs = {name: np.load(tmp_path / name / "predictions.npz")["validation_probs"] for name in runs}
    assert np.abs(probs["fp32"] - probs["pt"]).max() < 1e-4
    assert metrics["fp32"]["confusion_matrix"] == metrics["pt"]["confusion_matrix"]
    assert metrics["int8"]["n"] == metrics["pt"]["n"]


def test_predict_with_an_onnx_model(exported, tmp_path, monkeypatch):
    _, out, _ = exported
    monkeypatch.setattr(predict_module, "load_detector", lambda: "no detector in this test")
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(tmp_path / "face.png")
    faces = predict_path(tmp_path / "face.png", out / FILES["int8"], tmp_path / "out", say=lambda _: None)
    assert len(faces) == 1 and abs(sum(faces[0]["probabilities"].values()) - 1) < 1e-4


def test_onnx_latency_is_measured_beside_pytorch(exported):
    best, out, _ = exported
    model, _ = load_checkpoint(best)
    timed = measure_forms({"pt": (model, SIZE), "int8": (out / FILES["int8"], SIZE)}, threads=(1,), repeats=2,
                          warmup=1)
    assert set(timed) == {1} and all(t["median_ms"] > 0 for t in timed[1].values())


def _one_line_error(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_bad_inputs_give_one_line(exported, tmp_path, capsys):
    best, out, _ = exported
    junk = tmp_path / "model.bin"
    junk.write_text("not a model")
    assert "neither a PyTorch checkpoint" in _one_line_error(capsys, "evaluate", "--checkpoint", junk, "--data",
                                                            tmp_path, "--out", tmp_path / "o")
    broken = tmp_path / "broken.onnx"
    broken.write_text("not a model")
    assert "not an ONNX model" in _one_line_error(capsys, "evaluate", "--checkpoint", broken, "--data", tmp_path,
                                                  "--out", tmp_path / "o")
    only_validation = make_split(tmp_path / "val_only" / "validation", ["angry", "happy"], per_class=2)
    assert "no calibration split" in _one_line_error(capsys, "export", "--checkpoint", best, "--out",
                                                     tmp_path / "e", "--int8", "--data", only_validation.parent)
    other = make_split(tmp_path / "other" / "validation", ["angry", "bored"], per_class=2)
    assert "does not know: bored" in _one_line_error(capsys, "evaluate", "--checkpoint", out / FILES["int8"],
                                                     "--data", other, "--out", tmp_path / "o")
    assert "Grad-CAM" in _one_line_error(capsys, "cam", "--checkpoint", out / FILES["fp32"], "--out", tmp_path / "c")


def test_without_the_extra_the_export_says_how_to_get_it(exported, tmp_path, capsys, monkeypatch):
    best, out, _ = exported
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    assert '.[export]"' in _one_line_error(capsys, "export", "--checkpoint", best, "--out", tmp_path / "e")
    assert '.[export]"' in _one_line_error(capsys, "evaluate", "--checkpoint", out / FILES["fp32"], "--data",
                                           tmp_path, "--out", tmp_path / "o")


def test_tradeoff_table_of_a_results_folder(exported, course_data, tmp_path):
    """Only LightVGG has run: its three forms are measured, the other networks are "not run" rows."""
    best, _, _ = exported
    (tmp_path / "light_vgg").mkdir()
    shutil.copy(best, tmp_path / "light_vgg" / "best.pt")
    table = tradeoff(tmp_path, course_data, smoke=True, say=lambda _: None)
    assert table.equals(tradeoff_table(tmp_path))  # what it wrote to RESULTS/export/tradeoff.json
    light = table.loc["VGG-var (LightVGG, part c)"]
    assert list(light.index) == ["PyTorch fp32", "ONNX fp32", "ONNX int8"]
    assert light.loc["PyTorch fp32", "ratio_1_thread"] == 1.0 and light["accuracy"].notna().all()
    assert light.loc["ONNX fp32", "accuracy"] == light.loc["PyTorch fp32", "accuracy"]
    for network in ("VGG16 (part b)", "AlexNet-var", "MobileNet-var"):
        assert list(table.loc[network].index) == ["not run"]
    assert table["faces_per_s"].iloc[-1] == 45  # the paper's figure, on its own row
