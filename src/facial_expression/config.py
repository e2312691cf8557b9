"""Paths and the experiment configuration: the one place that knows where things live, and the settings of
parts (b) and (c)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .errors import ConfigError

PROJ_ROOT = Path(__file__).resolve().parents[2]
# A student's runs: $FER_RESULTS (Drive on Colab, /kaggle/working on Kaggle), else results/ (git-ignored).
RESULTS_DIR = Path(os.environ.get("FER_RESULTS") or PROJ_ROOT / "results").expanduser().resolve()
# The development sample's committed runs: read only when asked for (`--results examples/affectnet7_sample`).
SAMPLE_RESULTS_DIR = PROJ_ROOT / "examples" / "affectnet7_sample"
NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"
REPORT_DIR = PROJ_ROOT / "report"
DEFAULT_DATA_DIR = PROJ_ROOT / "data" / "affectnet"
LONG_EPOCHS = 60  # part (d)'s longer schedule: the plain model's best epoch was 29 of 30
MIN_GAIN = 0.01  # part (d): tune accuracy a change must gain over the plain row to be kept (screening) or combined
PAPER_FPS = 45  # Hewitt & Gunes (2018), abstract: their networks on an iPhone 6S through CoreML
AREA = "uniform map (area share)"  # the CAM region table's row of a map spread evenly over the image
SE = "standard error"  # the CAM region table's row of each region's standard error of the mean over all faces


# The choices of TrainConfig's text settings: defined once here; the models, the runtime and the CLI use them.
MODEL_NAMES = ("light-vgg", "vgg16", "alexnet-var", "mobilenet-var")
HEADS = ("dense", "gap")
FREEZE_POLICIES = ("none", "features", "all-but-last-block")
AUGMENT_BACKENDS = ("auto", "v2", "batched")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "none")
MIXES = ("none", "mixup", "cutmix", "both")
AMP_CHOICES = ("auto", "off", "bf16", "fp16")


def check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    """Raise ConfigError in one line if `value` is not one of `choices`."""
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def cache_dir() -> Path:
    """Where decoded-image caches go: $FER_CACHE, else ~/.cache/facial_expression (never the data folder)."""
    return Path(os.environ.get("FER_CACHE", Path.home() / ".cache" / "facial_expression"))


@dataclass
class AugmentConfig:
    """An on-line augmentation policy; the defaults are the 'standard' policy of part (a)."""

    name: str = "standard"
    hflip: float = 0.5
    rotation: float = 10.0  # degrees, +-
    translate: float = 0.08  # fraction of the side, +-
    scale: tuple[float, float] = (0.95, 1.05)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.0
    grayscale: float = 0.0  # probability of a grey-scale copy
    trivial: bool = False  # TrivialAugmentWide (Müller & Hutter 2021); per-image (v2) backend only
    erasing: float = 0.0  # probability of one random-erasing patch

    # standard: flip, small affine, brightness/contrast. strong: larger affine and random erasing. photometric:
    # standard plus strong colour jitter and grey-scale copies, against the photo-style cue that the CAM analysis
    # found. trivial: flip, TrivialAugmentWide and random erasing.
    OVERRIDES = {
        "none": dict(hflip=0.0, rotation=0.0, translate=0.0, scale=(1.0, 1.0), brightness=0.0, contrast=0.0),
        "standard": {},
        "strong": dict(rotation=15.0, translate=0.1, scale=(0.9, 1.1), brightness=0.3, contrast=0.3, erasing=0.25),
        "photometric": dict(brightness=0.4, contrast=0.4, saturation=0.4, grayscale=0.2),
        "trivial": dict(rotation=0.0, translate=0.0, scale=(1.0, 1.0), brightness=0.0, contrast=0.0, trivial=True,
                        erasing=0.25),
    }
    PRESETS = tuple(OVERRIDES)

    @classmethod
    def preset(cls, name: str) -> "AugmentConfig":
        """The named policy (OVERRIDES)."""
        if name not in cls.OVERRIDES:
            raise ConfigError(f"unknown augmentation policy {name!r}; choose one of {', '.join(cls.PRESETS)}")
        return cls(name=name, **cls.OVERRIDES[name])


@dataclass
class TrainConfig:
    """Every setting of one training run; saved as config.json next to its checkpoint."""

    model: str = "light-vgg"  # light-vgg | vgg16 | alexnet-var | mobilenet-var (Hewitt & Gunes 2018)
    # LightVGG options (the authors' Keras code); the paper's table is all False.
    batch_norm: bool = False
    dropout: float = 0.0
    gaussian_dropout: float = 0.0
    head: str = "dense"  # dense (the paper) | gap (global average pooling)
    mask: bool = False  # multiply the input by a fixed soft face ellipse
    # VGG16 options
    weights: str | None = "imagenet"  # imagenet | None ("none" or "" become None) | path to a .pth state dict
    freeze: str = "features"  # none | features | all-but-last-block
    head_lr_mult: float = 10.0
    input_size: int | None = None  # None: the model's own (128 LightVGG, 224 VGG16)
    # data
    data: str | None = None
    classes: str | None = None  # names of numeric class folders: "a,b,..." or "affectnet" (else classes.txt)
    tune_fraction: float = 0.1
    augment: str = "standard"
    # auto: batched, except TrivialAugment (per image) and a resumed run (its own); recorded resolved in config.json
    augment_backend: str = "auto"  # auto | v2 (per image, torchvision) | batched (whole batches on the device)
    # optimisation
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "onecycle"  # onecycle | cosine | none
    warmup_epochs: float = 1.0  # for cosine
    label_smoothing: float = 0.0
    class_weights: bool = False
    mix: str = "none"  # none | mixup | cutmix | both (one of the two per batch)
    mix_alpha: float = 1.0
    tta: bool = False  # report metrics averaged over the image and its mirror image
    patience: int | None = None  # early stopping on tune accuracy
    ema: float = 0.0  # decay per optimiser step of an EMA of the weights (saved as ema.pt); 0: off
    # runtime
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # auto | off | bf16 | fp16
    max_batches: int | None = None
    eval_batch_size: int = 256
    out: str | None = None
    world_size: int = 1  # processes training together (torchrun, DistributedDataParallel); set by fit, not chosen

    CHOICES = {"model": MODEL_NAMES, "head": HEADS, "freeze": FREEZE_POLICIES, "augment": AugmentConfig.PRESETS,
               "augment_backend": AUGMENT_BACKENDS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "mix": MIXES,
               "amp": AMP_CHOICES}

    def __post_init__(self):
        # "none" is how a command line or a notebook parameter says "random weights"
        if isinstance(self.weights, str) and self.weights.strip().lower() in ("", "none"):
            self.weights = None
        self.betas = tuple(self.betas)  # a list after a JSON round trip
        for name, choices in self.CHOICES.items():
            check_choice(name, getattr(self, name), choices)

    def to_dict(self) -> dict:
        return asdict(self)

    def differences(self, saved: dict, ignore=frozenset()) -> dict[str, tuple]:
        """The settings in which a saved config (a config.json, or a checkpoint's) differs from this one, as
        name -> (saved, this), leaving out `ignore`. A setting the saved config lacks was added to the project
        after it was written, and had its default then."""
        defaults = TrainConfig().to_dict()
        if "auto" in (self.augment_backend, saved.get("augment_backend", "v2")):
            # "auto" takes whichever backend a saved run was trained with: committed v2 runs are not retrained
            ignore = {*ignore, "augment_backend"}
        return {k: (saved.get(k, defaults[k]), v) for k, v in self.to_dict().items()
                if k not in ignore and json.dumps(saved.get(k, defaults[k])) != json.dumps(v)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Rebuild from a saved dict, ignoring keys this version no longer knows."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def resolved_input_size(self) -> int:
        if self.input_size is not None:
            return self.input_size
        # each model's own: the paper's 128 x 128 (M_VGG, M_ALEX, M_MOB C_ARCH.json), ImageNet's 224 for VGG16
        return {"vgg16": 224, "light-vgg": 128, "alexnet-var": 128, "mobilenet-var": 128}.get(self.model, 128)


def light_vgg_config(data, results, **settings) -> TrainConfig:
    """Part (c)'s run: the plain LightVGG of the paper into RESULTS/light_vgg. P5_c trains it; P5_d
    trains or resumes exactly this run where its checkpoint is missing (a fresh runtime)."""
    return TrainConfig(model="light-vgg", data=str(data), out=str(Path(results) / "light_vgg"), **settings)


# Part (b)'s settings where P5_b's parameters cell does not set them: its features frozen, the two 4096-unit
# layers fine-tuned and the new head at ten times the learning rate.
VGG16_SETTINGS = {"epochs": 30, "batch_size": 32, "lr": 1e-4, "freeze": "features", "head_lr_mult": 10.0}


def vgg16_config(data, results, **settings) -> TrainConfig:
    """Part (b)'s run: VGG16 transfer learning into RESULTS/vgg16_transfer (P5_b, and the report's settings
    table before it has run)."""
    return TrainConfig(model="vgg16", data=str(data) if data else None, out=str(Path(results) / "vgg16_transfer"),
                       **{**VGG16_SETTINGS, **settings})
