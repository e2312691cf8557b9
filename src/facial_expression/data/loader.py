"""Batches from a decoded ImageSet: shuffled and augmented per sample, moved to the device."""

from __future__ import annotations

import math

import torch

from ..config import AUGMENT_BACKENDS, check_choice
from ..runtime import shuffle_generator
from .augment import BatchAugment, augment_batch, build_augmentation, choose_backend, to_unit_float
from .cache import ImageSet


class BatchLoader:
    """Iterates over (float images in [0, 1], labels) batches of an ImageSet.

    No worker processes: images are already decoded, and on a 2-core machine workers would compete
    with the model for the same cores. Shuffling uses its own generator, seeded per epoch, so a
    resumed run sees the same order; the augmentation draws come from torch's global generator, which
    the training loop seeds per epoch (`runtime.seed_epoch`). Evaluation loaders never shuffle.
    """

    def __init__(self, data: ImageSet, batch_size: int, *, shuffle: bool = False, augment=None,
                 device: torch.device | str = "cpu", seed: int = 0, max_batches: int | None = None,
                 drop_last: bool = False, channels_last: bool = True, backend: str = "auto",
                 rank: int = 0, world_size: int = 1):
        check_choice("augmentation backend", backend, AUGMENT_BACKENDS)
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.device, self.seed, self.max_batches = torch.device(device), seed, max_batches
        self.transform, self.backend = None, None
        if augment not in (None, "none"):
            # v2: torchvision transforms per image; batched: one grid_sample for the whole batch (faster)
            self.backend = choose_backend(backend, augment, self.device)[0]
            self.transform = build_augmentation(augment) if self.backend == "v2" else BatchAugment(augment)
        self.drop_last, self.channels_last = drop_last, channels_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Fix the shuffle order and augmentation draws of an epoch (for exact resumes)."""
        self.epoch = epoch

    def shard_size(self) -> int:
        """Faces this process reads per epoch before batching: all of them, or its equal share of the ranks'."""
        return len(self.data) // self.world_size if self.world_size > 1 else len(self.data)

    def __len__(self) -> int:
        n = self.shard_size()
        n = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return min(n, self.max_batches) if self.max_batches else n

    def epoch_indices(self) -> torch.Tensor:
        """The faces this process reads this epoch, in order (what DistributedSampler gives, without padding).

        Every rank draws the same permutation of the epoch and takes every world_size-th face from its rank on,
        so the ranks' shards are disjoint and together cover the epoch's faces once (the last len % world_size
        are left out, as drop_last leaves out the last partial batch).
        """
        n = len(self.data)
        order = torch.randperm(n, generator=shuffle_generator(self.seed, self.epoch)) if self.shuffle else \
            torch.arange(n)
        if self.world_size > 1:
            order = order[:self.shard_size() * self.world_size][self.rank::self.world_size]
        return order[:len(self) * self.batch_size]

    def __iter__(self):
        order = self.epoch_indices()
        pin = self.device.type == "cuda"
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.data.images[idx]
            y = self.data.labels[idx]
            if pin:
                x, y = x.pin_memory(), y.pin_memory()
            # uint8 to the device before augmenting: a quarter of float32's bytes to copy, and on a GPU
            # both augmentation backends (and the float conversion) then run there
            x = x.to(self.device, non_blocking=True)
            if self.transform is None:
                x = to_unit_float(x)
            elif isinstance(self.transform, BatchAugment):
                x = self.transform(x)
            else:
                x = augment_batch(self.transform, x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)
