"""Models: the light VGG, AlexNet and MobileNet variants of Hewitt & Gunes and VGG16 transfer, built by name."""

from __future__ import annotations

from torch import nn
from torchinfo import summary as _torchinfo_summary

from ..config import MODEL_NAMES, check_choice
from ..errors import ConfigError
from .alexnet_var import AlexNetVar
from .common import GaussianDropout
from .cost import estimate_epoch_seconds, forward_flops
from .light_vgg import LightVGG, architecture_table
from .mobilenet_var import MobileNetVar
from .vgg16 import VGG16Transfer, load_imagenet_state_dict


def build_model(name: str, num_classes: int, **options) -> nn.Module:
    """A model by name; `options` are the constructor's keyword arguments. Its `architecture` names what its
    speed depends on (`evaluation.timed` keeps latencies by it)."""
    check_choice("model", name, MODEL_NAMES)
    if num_classes < 2:
        raise ConfigError(f"need at least 2 classes, got {num_classes}")
    builder = {"light-vgg": LightVGG, "vgg16": VGG16Transfer, "alexnet-var": AlexNetVar}.get(name, MobileNetVar)
    model = builder(num_classes, **options)
    model.architecture = architecture(name, num_classes, options)
    return model


def architecture(name: str, num_classes: int, options: dict) -> str:
    """The model `build_model` builds, as one line ("light-vgg: batch_norm=False, ..., classes=7")."""
    return f"{name}: " + "".join(f"{k}={v}, " for k, v in sorted(options.items())) + f"classes={num_classes}"


def model_options(cfg) -> dict:
    """The constructor options of the model a TrainConfig asks for."""
    size = cfg.resolved_input_size()
    if cfg.model == "light-vgg":
        return {"input_size": size, "batch_norm": cfg.batch_norm, "dropout": cfg.dropout,
                "gaussian_dropout": cfg.gaussian_dropout, "head": cfg.head, "mask": cfg.mask}
    if cfg.model in ("alexnet-var", "mobilenet-var"):
        # the authors' regularisation (their net.py) is the models' default; LightVGG's options do not apply
        return {"input_size": size}
    return {"input_size": size, "weights": cfg.weights, "freeze": cfg.freeze}


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total and trainable parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "frozen": total - trainable}


def summary(model: nn.Module, input_size: int | None = None, batch_size: int = 1, verbose: int = 0):
    """A torchinfo summary at the model's own input size."""
    size = input_size or model.input_size
    return _torchinfo_summary(model, input_size=(batch_size, 3, size, size), device="cpu",
                              col_names=("output_size", "num_params", "trainable"), verbose=verbose,
                              row_settings=("var_names",))


__all__ = ["architecture_table", "GaussianDropout", "LightVGG", "VGG16Transfer", "build_model", "count_parameters",
           "load_imagenet_state_dict", "model_options", "summary", "MODEL_NAMES"]
__all__ += ["estimate_epoch_seconds", "forward_flops"]
__all__ += ["AlexNetVar", "MobileNetVar"]
