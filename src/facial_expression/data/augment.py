"""Augmentation policies on uint8 image tensors, built from torchvision.transforms.v2."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from ..config import AugmentConfig


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
    if p.brightness > 0 or p.contrast > 0:
        steps.append(v2.ColorJitter(brightness=p.brightness, contrast=p.contrast))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if p.erasing > 0:
        steps.append(v2.RandomErasing(p=p.erasing, scale=(0.02, 0.12), value=0.0))
    return v2.Compose(steps)


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
