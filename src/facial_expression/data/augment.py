"""Augmentation policies on uint8 image tensors, built from torchvision.transforms.v2."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from ..config import AugmentConfig
from ..errors import ConfigError


def build_augmentation(policy: AugmentConfig | str) -> v2.Compose:
    """A per-image transform: uint8 3 x S x S in, float32 in [0, 1] out.

    Left out on purpose: vertical flips (faces are never upside down) and random crops, which could
    cut off the mouth or the eyes that carry the expression.
    """
    p = AugmentConfig.preset(policy) if isinstance(policy, str) else policy
    steps: list[torch.nn.Module] = []
    if p.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p.hflip))  # expressions are left-right symmetric
    if p.rotation > 0 or p.translate > 0 or tuple(p.scale) != (1.0, 1.0):
        steps.append(v2.RandomAffine(degrees=p.rotation, translate=(p.translate, p.translate),
                                     scale=tuple(p.scale), interpolation=v2.InterpolationMode.BILINEAR))
    if p.trivial:
        steps.append(v2.TrivialAugmentWide(interpolation=v2.InterpolationMode.BILINEAR))
    if p.brightness > 0 or p.contrast > 0 or p.saturation > 0:
        steps.append(v2.ColorJitter(brightness=p.brightness, contrast=p.contrast, saturation=p.saturation))
    if p.grayscale > 0:
        steps.append(v2.RandomGrayscale(p.grayscale))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if p.erasing > 0:
        steps.append(v2.RandomErasing(p=p.erasing, scale=(0.02, 0.12), value=0.0))
    return v2.Compose(steps)


def choose_backend(backend: str, policy: AugmentConfig | str, device: torch.device | str = "cpu") -> tuple[str, str]:
    """The augmentation backend to train with ("v2" or "batched") and why, for `backend` "auto", "v2" or "batched".

    auto is "batched" (`BatchAugment`: the whole batch at once on the training device) on every device: on a GPU
    it keeps up where per-image v2 made an H200 wait 7/8 of each epoch, and on this project's CPUs it is faster
    too (benchmarks/augment_backends.py). TrivialAugment draws one operation per image and keeps per-image v2.
    """
    p = AugmentConfig.preset(policy) if isinstance(policy, str) else policy
    if backend == "v2":
        return "v2", "per image, torchvision v2 (requested)"
    if p.trivial:
        if backend == "batched":
            raise ConfigError("TrivialAugment draws a different operation per image; use the v2 or auto backend")
        return "v2", "per image, torchvision v2: TrivialAugment draws one operation per image"
    where = torch.device(device).type
    return "batched", f"whole batches on the {where} (BatchAugment){' (requested)' if backend == 'batched' else ''}"


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as float32 scaled to [0, 1], the assignment's pixel scaling."""
    return images.to(torch.float32).div_(255.0)


def augment_batch(transform: v2.Compose, images: torch.Tensor) -> torch.Tensor:
    """Apply a per-image transform to each image of a uint8 batch, each with its own random draw.

    (A v2 transform given a whole batch would draw one set of parameters for all of it.)
    """
    return torch.stack([transform(img) for img in images])


def augmented_views(images: torch.Tensor, policy: AugmentConfig | str, n_views: int = 3,
                    seed: int = 0) -> torch.Tensor:
    """`n_views` random augmentations of each uint8 image: K x n_views x 3 x S x S floats in [0, 1]."""
    transform = build_augmentation(policy)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        views = [torch.stack([transform(img) for _ in range(n_views)]) for img in images]
    finally:
        torch.random.set_rng_state(state)
    return torch.stack(views)


def augmentation_counts(n_train: int, epochs: int, policy: AugmentConfig | str,
                        offline_factor: int = 0) -> dict:
    """Samples before and after augmentation, for the report.

    On-line augmentation draws a fresh random view of every image in every epoch, so a run sees
    n_train * epochs distinct samples while only n_train are stored. An off-line expansion by
    `offline_factor` stores n_train * (1 + offline_factor) images.
    """
    p = AugmentConfig.preset(policy) if isinstance(policy, str) else policy
    online = p.name != "none"
    return {
        "policy": p.name,
        "original_train_samples": n_train,
        "samples_per_epoch": n_train,
        "epochs": epochs,
        "distinct_samples_seen_over_run": n_train * epochs if online else n_train,
        "offline_factor": offline_factor,
        "stored_after_offline_expansion": n_train * (1 + offline_factor),
    }


def expand_offline(images: torch.Tensor, labels: torch.Tensor, policy: AugmentConfig | str,
                   factor: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialise `factor` augmented copies of every image: uint8 images and labels, originals first."""
    if factor <= 0:
        return images, labels
    views = augmented_views(images, policy, n_views=factor, seed=seed)  # K x f x 3 x S x S in [0, 1]
    copies = (views.flatten(0, 1) * 255).round().to(torch.uint8)
    return torch.cat([images, copies]), torch.cat([labels, labels.repeat_interleave(factor)])


class BatchAugment:
    """The same policy as `build_augmentation`, drawn independently per image but applied to a whole
    uint8 batch at once: flip, rotation, scale and shift become one affine grid and one `grid_sample`,
    brightness and contrast per-image factors, random erasing a per-image mask. Works on any device.
    """

    def __init__(self, policy: AugmentConfig | str):
        self.p = AugmentConfig.preset(policy) if isinstance(policy, str) else policy
        if self.p.trivial:
            raise ConfigError("TrivialAugment draws a different operation per image; use the v2 backend")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        p, n, dev = self.p, images.shape[0], images.device
        x = to_unit_float(images)

        def uniform(lo, hi, *shape):
            return torch.empty(n, *shape, device=dev).uniform_(lo, hi)
        angle = uniform(-p.rotation, p.rotation).mul_(math.pi / 180)
        scale = uniform(*p.scale)
        shift = uniform(-p.translate, p.translate, 2).mul_(2)  # normalised coordinates span 2
        flip = torch.where(torch.rand(n, device=dev) < p.hflip, -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        # output -> input coordinates: inverse rotation and scale, then the mirror
        theta = torch.stack([torch.stack([cos * flip, sin * flip, -(cos * shift[:, 0] + sin * shift[:, 1]) * flip], 1),
                             torch.stack([-sin, cos, sin * shift[:, 0] - cos * shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if p.brightness > 0:
            x.mul_(uniform(1 - p.brightness, 1 + p.brightness, 1, 1, 1))
        x.clamp_(0, 1)

        def luma(img):
            return (0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]).unsqueeze(1)
        if p.contrast > 0:
            gray = luma(x).mean((1, 2, 3), keepdim=True)
            x = (x - gray).mul_(uniform(1 - p.contrast, 1 + p.contrast, 1, 1, 1)).add_(gray).clamp_(0, 1)
        if p.saturation > 0:
            gray = luma(x)
            x = (x - gray).mul_(uniform(1 - p.saturation, 1 + p.saturation, 1, 1, 1)).add_(gray).clamp_(0, 1)
        if p.grayscale > 0:
            x = torch.where((torch.rand(n, device=dev) < p.grayscale).view(n, 1, 1, 1), luma(x).expand_as(x), x)
        if p.erasing > 0:
            h, w = x.shape[-2:]
            area = uniform(0.02, 0.12) * h * w
            ratio = torch.exp(uniform(math.log(0.3), math.log(3.3)))
            eh = (area * ratio).sqrt().clamp(max=h)
            ew = (area / ratio).sqrt().clamp(max=w)
            top = torch.rand(n, device=dev) * (h - eh)
            left = torch.rand(n, device=dev) * (w - ew)
            ys = torch.arange(h, device=dev).view(1, h, 1)
            xs = torch.arange(w, device=dev).view(1, 1, w)
            box = ((ys >= top.view(n, 1, 1)) & (ys < (top + eh).view(n, 1, 1)) &
                   (xs >= left.view(n, 1, 1)) & (xs < (left + ew).view(n, 1, 1)))
            box &= (torch.rand(n, device=dev) < p.erasing).view(n, 1, 1)
            x = x.masked_fill(box.unsqueeze(1), 0.0)
        return x
