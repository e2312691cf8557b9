"""ImageNet-pretrained VGG16 with a new head, for transfer learning (part b)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG16_Weights, vgg16

from ..config import FREEZE_POLICIES, check_choice
from ..errors import ConfigError, WeightsUnavailableError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_ENV = "FER_VGG16_WEIGHTS"
# features[24:] is block 5 (three convs and the last pool)
LAST_BLOCK_START = 24


def _how_to_provide() -> str:
    url = VGG16_Weights.IMAGENET1K_V1.url
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return (f"ImageNet VGG16 weights are not available offline. Download {url} on a machine with "
            f"internet and either put it in {hub}/, pass its path as --weights PATH "
            f"(weights='PATH' in Python), or set {WEIGHTS_ENV}=PATH. On Colab they download by themselves; on "
            f"Kaggle turn on Settings → Internet (it needs a phone-verified account), then run the notebook again.")


def load_imagenet_state_dict(source: str) -> dict:
    """The ImageNet state dict from torchvision's cache/download ('imagenet') or a local file."""
    if source == "imagenet" and os.environ.get(WEIGHTS_ENV):
        source = os.environ[WEIGHTS_ENV]
    if source == "imagenet":
        try:
            return VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as e:  # URLError, socket errors, HTTP errors: all mean "not reachable"
            raise WeightsUnavailableError(f"{_how_to_provide()} ({type(e).__name__})") from None
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"VGG16 weights file {path} does not exist. {_how_to_provide()}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


class VGG16Transfer(nn.Module):
    """torchvision VGG16 taking [0, 1] images: ImageNet normalisation is its first step."""

    def __init__(self, num_classes: int, weights: str | None = "imagenet", freeze: str = "features",
                 input_size: int = 224):
        super().__init__()
        check_choice("freeze", freeze, FREEZE_POLICIES)
        if input_size < 32:
            raise ConfigError(f"VGG16 needs inputs of at least 32 x 32, got {input_size}")
        self.input_size, self.freeze = input_size, freeze
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        net = vgg16(weights=None)
        if weights is not None:  # TrainConfig turns "none" into None
            net.load_state_dict(load_imagenet_state_dict(str(weights)))
        net.classifier[6] = nn.Linear(net.classifier[6].in_features, num_classes)
        self.features, self.avgpool, self.classifier = net.features, net.avgpool, net.classifier
        frozen = {"none": [], "features": list(self.features),
                  "all-but-last-block": list(self.features)[:LAST_BLOCK_START]}[freeze]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    @property
    def cam_layer(self) -> nn.Module:
        """The last ReLU of `features`, before the last pool: 14 x 14 at 224 x 224 input."""
        return [m for m in self.features if isinstance(m, nn.ReLU)][-1]

    def head_parameters(self) -> list[nn.Parameter]:
        """The new output layer, which may get a higher learning rate."""
        return list(self.classifier[6].parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG16 expects a batch of shape (N, 3, H, W), got {tuple(x.shape)}")
        x = (x - self.mean) / self.std
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
