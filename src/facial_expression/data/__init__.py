"""Data: finding a dataset, decoding it once, splitting, augmenting and batching it."""

from .augment import (BatchAugment, augment_batch, augmentation_counts, augmented_views, build_augmentation,
                      choose_backend, expand_offline, to_unit_float)
from .cache import ImageSet, SkippedFilesWarning, decode_image, load_folder
from .folders import CLASS_PRESETS, DatasetLayout, find_data_root, resolve_eval_folder, resolve_layout
from .loader import BatchLoader
from .splits import (Splits, load_for_checkpoint, load_split_for_checkpoint, load_splits, split_statistics,
                     split_train_tune, statistics_table)

__all__ = [
    "BatchAugment", "augment_batch", "augmentation_counts", "augmented_views", "build_augmentation", "choose_backend",
    "expand_offline",
    "to_unit_float", "ImageSet", "SkippedFilesWarning", "decode_image", "load_folder", "CLASS_PRESETS", "DatasetLayout",
    "find_data_root", "resolve_eval_folder", "resolve_layout", "BatchLoader", "Splits", "load_for_checkpoint",
    "load_split_for_checkpoint", "load_splits", "split_statistics", "split_train_tune", "statistics_table",
]
