"""`fer export`: a checkpoint as an ONNX model, and as an int8 one, for a phone's budget; the trade-off table.

The exporter is torch's own (`torch.onnx`, dynamo); the int8 model is ONNX Runtime's static quantisation
(QDQ, int8 weights per output channel, uint8 activations, min-max ranges), calibrated on tune faces only:
the tune split carved from train/ with the run's own fraction and seed, never validation/. The exported
files load wherever a checkpoint does (`checkpoint.load_checkpoint`), so `fer evaluate` and `fer predict`
measure them with the same code as a .pt.

onnx and onnxruntime are an extra: `pip install -e ".[export]"`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pandas as pd
import torch

from .checkpoint import ONNX_METADATA, OnnxModel, load_checkpoint, load_onnx
from .data import (ImageSet, load_folder, load_split_for_checkpoint, resolve_eval_folder, resolve_layout,
                   split_train_tune, to_unit_float)
from .config import PAPER_FPS
from .errors import DataError, FERError
from .evaluation import compute_metrics, measure_latencies, predict, save_json
from .experiment import DEFAULT_NAMES, PAPER_MODELS
from .models import count_parameters
from .runs import Run
from .runtime import device_name

INSTALL = 'pip install -e ".[export]"'
CALIBRATION_FACES = 300  # "a few hundred" tune faces, drawn with a fixed seed across the classes
CHECK_FACES = 64  # real faces on which the fp32 ONNX model must give PyTorch's logits
FP32_TOLERANCE = 1e-4  # largest logit difference allowed, relative to the largest logit (at least 1)
FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
# The tradeoff table's networks: model name -> (run folder, label); VGG16 is part (b)'s transfer model
NETWORKS = {"vgg16": (DEFAULT_NAMES["vgg16"], "VGG16 (part b)"), **PAPER_MODELS}


def onnx_missing() -> str | None:
    """Why the export cannot run here (onnx or onnxruntime not installed, and how to get them), or None."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return f"the export needs onnx and onnxruntime ({e.name} is missing): {INSTALL}"
    return None


def _need_onnx():
    """The onnx module, or FERError with `onnx_missing`'s line."""
    if onnx_missing():
        raise FERError(onnx_missing())
    import onnx
    return onnx


def megabytes(path: str | Path) -> float:
    """Size on disk in MB (10^6 bytes)."""
    return Path(path).stat().st_size / 1e6


def data_root(ckpt: dict, data: str | Path | None) -> str | Path | None:
    """The dataset to read: `data`, else $FER_DATA, else the one the checkpoint's run trained on."""
    return data or os.environ.get("FER_DATA") or ckpt["config"].get("data")


def tune_faces(ckpt: dict, data: str | Path | None, size: int) -> ImageSet:
    """The tune split of `data` as the checkpoint's run carved it (its fraction and seed), at `size` pixels."""
    cfg = ckpt["config"]
    try:
        layout = resolve_layout(data_root(ckpt, data), cfg.get("classes"))
    except DataError as e:
        raise DataError(f"no calibration split: the tune faces come from a dataset's train/ folder, and {e}") from None
    if list(layout.classes) != list(ckpt["classes"]):
        raise DataError(f"the checkpoint knows the classes {', '.join(ckpt['classes'])}, and {layout.root} has "
                        f"{', '.join(layout.classes)}")
    train = load_folder(layout.train_dir, size, layout.classes, folders=layout.folders)
    return split_train_tune(train, cfg["tune_fraction"], cfg["seed"])[1]


def calibration_batch(tune: ImageSet, n: int = CALIBRATION_FACES, seed: int = 0) -> torch.Tensor:
    """`n` tune faces drawn at random with a fixed seed (the split is sorted by class), as floats in [0, 1]."""
    pick = torch.randperm(len(tune), generator=torch.Generator().manual_seed(seed))[:n]
    return to_unit_float(tune.images[pick.sort().values])


def _write_metadata(path: Path, record: dict) -> None:
    onnx = _need_onnx()
    model = onnx.load(str(path))
    for key, value in {ONNX_METADATA: json.dumps(record), "classes": json.dumps(record["classes"]),
                       "input_size": str(record["input_size"])}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def export_fp32(model: torch.nn.Module, record: dict, path: Path) -> None:
    """torch.onnx's export with a dynamic batch axis, one file, the record (classes, input size) in its metadata."""
    x = torch.rand(2, 3, model.input_size, model.input_size)
    with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
        torch.onnx.export(model, (x,), str(path), input_names=["faces"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, external_data=False)
    _write_metadata(path, {**record, "format": "fp32"})


def quantise_int8(fp32: Path, path: Path, faces: torch.Tensor, record: dict, batch: int = 10) -> None:
    """ONNX Runtime's static int8 quantisation of `fp32`, its activation ranges calibrated on `faces`."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Faces(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"faces": b.numpy()} for b in faces.split(batch)])

        def get_next(self):
            return next(self.batches, None)

    prepared = path.with_suffix(".prepared.onnx")
    try:
        quant_pre_process(str(fp32), str(prepared))  # shape inference and graph fusions, as ONNX Runtime advises
        quantize_static(str(prepared), str(path), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        prepared.unlink(missing_ok=True)
    _write_metadata(path, {**record, "format": "int8", "calibration_faces": len(faces)})


def _logits(model, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x).float()


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, data: str | Path | None = None,
                      int8: bool = False, say=print) -> dict:
    """`fer export`: OUT/model.onnx (and with `int8` OUT/model.int8.onnx) and OUT/export.json (sizes, checks).

    The fp32 model must give PyTorch's logits on CHECK_FACES tune faces to within FP32_TOLERANCE; the int8
    model's difference and top-1 agreement on them are reported, and its accuracy is for `fer evaluate`.
    """
    _need_onnx()
    if Path(checkpoint).suffix.lower() == ".onnx":
        raise FERError(f"{checkpoint} is already an ONNX model: export the PyTorch checkpoint (.pt) it came from")
    model, ckpt = load_checkpoint(checkpoint, "cpu")
    record = {k: ckpt.get(k) for k in ("version", "model_name", "model_options", "classes", "config", "dataset",
                                       "epoch")}
    record.update(input_size=model.input_size, source=str(checkpoint))
    tune = tune_faces(ckpt, data, model.input_size)
    faces = calibration_batch(tune)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"checkpoint": str(checkpoint), "model": ckpt["model_name"], "classes": list(ckpt["classes"]),
               "input_size": model.input_size, "parameters": count_parameters(model)["total"],
               "calibration": {"split": "tune", "faces": len(faces), "of": len(tune)} if int8 else None,
               "checkpoint_MB": round(megabytes(checkpoint), 2), "forms": {}}
    say(f"{Path(checkpoint).name}: {summary['checkpoint_MB']:.1f} MB ({summary['parameters']:,} parameters)")
    check = faces[:CHECK_FACES]
    reference = _logits(model, check)

    def compare(form: str, path: Path) -> float:
        """The form's largest logit difference from PyTorch on the check faces, printed and recorded."""
        logits = _logits(load_onnx(path)[0], check)
        diff = float((logits - reference).abs().max())
        agree = float((logits.argmax(1) == reference.argmax(1)).float().mean())
        summary["forms"][form] = {"file": path.name, "MB": round(megabytes(path), 3), "max_logit_diff": diff,
                                  "top1_agreement": agree}
        say(f"{path}: {megabytes(path):.1f} MB ({form}); on {len(check)} tune faces the largest logit difference "
            f"from PyTorch is {diff:.2g}, the same top class for {agree:.0%}")
        return diff

    fp32 = out / FILES["fp32"]
    export_fp32(model, record, fp32)
    diff, bound = compare("fp32", fp32), FP32_TOLERANCE * max(1.0, float(reference.abs().max()))
    if not diff <= bound:
        raise FERError(f"the ONNX model's logits differ from PyTorch's by {diff:.3g} (allowed: {bound:.3g}); "
                       f"{fp32} is not a faithful export")
    if int8:
        quantise_int8(fp32, out / FILES["int8"], faces, record)
        compare("int8", out / FILES["int8"])
        say(f"calibrated on {len(faces)} of the {len(tune)} tune faces (never validation)")
    save_json(summary, out / "export.json")
    return summary


def measure_forms(forms: dict[str, tuple], threads: tuple[int, ...] | None = None, repeats: int = 50,
                  warmup: int = 10) -> dict[int, dict[str, dict]]:
    """Single-image CPU latency of models (name -> (PyTorch model or .onnx path, input size)) with each thread
    count, all interleaved in one `measure_latencies` call per count: threads -> name -> latency."""
    threads = threads or tuple(dict.fromkeys((1, torch.get_num_threads())))
    before, out = torch.get_num_threads(), {}
    try:
        for n in threads:
            torch.set_num_threads(n)
            models = {k: (OnnxModel(m, size, n) if isinstance(m, (str, Path)) else m, size)
                      for k, (m, size) in forms.items()}
            out[n] = measure_latencies(models, "cpu", repeats, warmup)
    finally:
        torch.set_num_threads(before)
    return out


def tradeoff(results: str | Path, data: str | Path | None = None, smoke: bool = False, say=print) -> pd.DataFrame:
    """Export VGG16 and the three light networks of `results` (fp32 and int8, to RESULTS/export/<run>/),
    evaluate every form on the validation split with the same code, time all of them interleaved in one call
    (1 and all threads), write RESULTS/export/tradeoff.json, and return `tradeoff_table(results)`.

    A network without a finished run is a "not run" (or "interrupted") row. With `smoke`, latencies are timed on a
    few passes and VGG16 is left out (its fp32 export alone is over 500 MB, of random weights in a smoke run)."""
    results = Path(results)
    rows, forms = [], {}
    for model_name, (folder, label) in NETWORKS.items():
        run, best = Run(results / folder), results / folder / "best.pt"  # an interrupted run is named, not timed
        state = "interrupted" if run.state == "interrupted" else "finished" if best.exists() else "not run"
        if state != "finished" or (smoke and model_name == "vgg16"):
            rows.append({"network": label, "form": "left out of smoke runs" if state == "finished" else state})
            continue
        out = results / "export" / folder
        say(f"{label}: exporting {best}")
        summary = export_checkpoint(best, out, data, int8=True, say=say)
        model, ckpt = load_checkpoint(best, "cpu")
        validation = load_split_for_checkpoint(resolve_eval_folder(data_root(ckpt, data)), model.input_size, ckpt)
        for form, source in (("PyTorch fp32", model), ("ONNX fp32", out / FILES["fp32"]),
                             ("ONNX int8", out / FILES["int8"])):
            runnable = load_onnx(source)[0] if isinstance(source, Path) else source
            m = compute_metrics(*reversed(predict(runnable, validation, 256)), ckpt["classes"])
            rows.append({"network": label, "form": form, "parameters": summary["parameters"],
                         "size_MB": summary["checkpoint_MB"] if form == "PyTorch fp32" else
                         summary["forms"]["fp32" if form == "ONNX fp32" else "int8"]["MB"],
                         "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]})
            forms[(label, form)] = (source, model.input_size)
    timed = measure_forms({f"{k[0]} / {k[1]}": v for k, v in forms.items()},
                          repeats=3 if smoke else 50, warmup=1 if smoke else 10)
    for row in rows:
        if (row["network"], row["form"]) in forms:
            for n, times in timed.items():
                ms = times[f"{row['network']} / {row['form']}"]["median_ms"]
                torch_ms = times[f"{row['network']} / PyTorch fp32"]["median_ms"]
                row[f"latency_ms_{'1_thread' if n == 1 else 'all_threads'}"] = ms
                row[f"ratio_{'1_thread' if n == 1 else 'all_threads'}"] = ms / torch_ms
    save_json({"rows": rows, "threads": list(timed), "cpu": device_name(torch.device("cpu")), "smoke": smoke,
               "load_average_1min": os.getloadavg()[0],  # other work on the machine while it timed
               "paper": {"faces_per_s": PAPER_FPS, "hardware": "iPhone 6S (CoreML), the paper's figure"},
               }, results / "export" / "tradeoff.json")
    return tradeoff_table(results)


def tradeoff_table(results: str | Path) -> pd.DataFrame:
    """The trade-off table of RESULTS/export/tradeoff.json: one row per network and form, then the paper's figure."""
    saved = json.loads((Path(results) / "export" / "tradeoff.json").read_text())
    df = pd.DataFrame(saved["rows"])
    for column in ("parameters", "n"):
        if column in df:
            df[column] = df[column].astype("Int64")  # counts stay whole numbers beside the "not run" rows
    latencies = [c for c in ("latency_ms_1_thread", "latency_ms_all_threads") if c in df]
    if latencies:  # one face at a time, with the faster of the thread counts (a busy machine slows many threads)
        df["faces_per_s"] = 1000 / df[latencies].min(axis=1)
    paper = {"network": "the paper's networks (Hewitt & Gunes 2018)", "form": saved["paper"]["hardware"],
             "faces_per_s": saved["paper"]["faces_per_s"]}
    return pd.concat([df, pd.DataFrame([paper])], ignore_index=True).set_index(["network", "form"])
