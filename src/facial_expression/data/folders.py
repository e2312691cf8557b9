"""Finding a dataset and listing its class folders, with one-line errors that say what was found."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..config import DEFAULT_DATA_DIR, cache_dir
from ..errors import DataError, in_notebook

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Split folder names, matched case-insensitively; the first spelling is the one used in messages.
SPLIT_ALIASES = {"train": ("train", "training"), "validation": ("validation", "valid", "val"),
                 "test": ("test", "testing")}
_ROLE_OF = {alias: role for role, aliases in SPLIT_ALIASES.items() for alias in aliases}
# Searched (SEARCH_DEPTH levels down) only when no path, no $FER_DATA and no data/affectnet: Colab, Drive, Kaggle.
SEARCH_ROOTS = (Path("/content"), Path("/content/drive/MyDrive"), Path("/kaggle/input"))
SEARCH_DEPTH = 4
# AffectNet's documented label order (the course's folder names), for datasets whose class folders are 0..7.
CLASS_PRESETS = {"affectnet": ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt")}
# Other spellings of the same expressions (FER2013, RAF-DB, AffectNet's papers): a folder named `anger` is the
# preset's `angry`, so that runs, checkpoints and datasets that spell a class differently still match.
CLASS_ALIASES = {"anger": "angry", "happiness": "happy", "sadness": "sad", "surprised": "surprise",
                 "fearful": "fear", "afraid": "fear", "disgusted": "disgust", "contemptuous": "contempt",
                 "neutrality": "neutral"}


def canonical_class(name: str) -> str:
    """A class name in the preset's spelling: lower case, aliases resolved ('Anger' -> 'angry')."""
    low = str(name).strip().lower()
    return CLASS_ALIASES.get(low, low)


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset root: train, validation (`eval_dir`) and optional test split, and its classes.

    `folders` are the class folder names in label order; `classes` the names shown (equal unless mapped).
    """

    root: Path
    train_dir: Path
    eval_dir: Path
    classes: tuple[str, ...]
    folders: tuple[str, ...] = ()
    test_dir: Path | None = None

    def __post_init__(self):
        if not self.folders:
            object.__setattr__(self, "folders", tuple(self.classes))


def _skip(name: str) -> bool:
    # hidden folders and the __MACOSX/ copy that zips made on a Mac carry
    return name.startswith(".") or name.startswith("__")


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(d for d in path.iterdir() if d.is_dir() and not _skip(d.name))
    except OSError:  # unreadable folder: nothing to find there
        return []


def _contents(path: Path, limit: int = 12) -> str:
    try:
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not p.name.startswith("."))
    except OSError:
        return "nothing readable"
    more = f", and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more if entries else "nothing, the folder is empty"


def found(path: Path) -> str:
    """'found: Train/, Test/, labels.csv': what a folder holds, for error messages."""
    return f"found: {_contents(path)}"


def _split_dirs(path: Path) -> dict[str, list[Path]]:
    """Sub-folders of `path` named like a split, by role (train, validation, test)."""
    roles: dict[str, list[Path]] = {}
    for d in _subdirs(path):
        if d.name.lower() in _ROLE_OF:
            roles.setdefault(_ROLE_OF[d.name.lower()], []).append(d)
    return roles


def _is_root(path: Path) -> bool:
    roles = _split_dirs(path)
    return "train" in roles and ("validation" in roles or "test" in roles)


def _holds_images(path: Path) -> bool:
    try:
        return any(f.suffix.lower() in IMAGE_EXTENSIONS for f in path.iterdir())
    except OSError:
        return False


def _walk(top: Path, depth: int) -> tuple[list[Path], list[Path], list[Path]]:
    """(dataset roots, CSV files, zip files) found up to `depth` levels below `top`, shallowest first."""
    roots, csvs, zips = [], [], []
    level = [top]
    for d in range(depth + 1):
        below = []
        for folder in level:
            if d > 0 and _is_root(folder):
                roots.append(folder)
                continue
            try:
                files = [f for f in folder.iterdir() if f.is_file()]
            except OSError:
                continue
            csvs += sorted(f for f in files if f.suffix.lower() == ".csv")
            zips += sorted(f for f in files if f.suffix.lower() == ".zip")
            if any(f.suffix.lower() in IMAGE_EXTENSIONS for f in files):
                continue  # a folder of images: a class folder, nothing nested to find
            # another search root is searched on its own (Drive under /content would be walked twice)
            below += [s for s in _subdirs(folder) if s not in SEARCH_ROOTS]
        level = below
    return roots, csvs, zips


def _nearest_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _unzip(zip_path: Path) -> Path:
    """Unpack a zip once into the cache (never next to the data, which may be read-only)."""
    st = zip_path.stat()
    key = hashlib.sha1(f"{zip_path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]
    dest = cache_dir() / "unzipped" / f"{zip_path.stem}-{key}"
    if (dest / ".unzipped").exists():
        print(f"using {zip_path} as unpacked before in {dest}")
        return dest
    partial = dest.with_name(dest.name + ".partial")  # renamed when complete: a broken unpack is never reused
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(partial)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise DataError(f"cannot unpack {zip_path} ({type(e).__name__}: {e}); unpack it by hand with "
                        f"`unzip -q {zip_path} -d {dest}` and pass {dest}") from None
    (partial / ".unzipped").touch()
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    print(f"unpacked {zip_path} into {dest}")
    return dest


def _csv_refusal(root: Path, csv_path: Path) -> DataError:
    """The error for a CSV-labelled dataset, with a one-line command that makes class folders of it."""
    with open(csv_path, newline="", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        first = next(reader, [])
    def column(*names: str) -> str | None:  # the first header that is one of `names`, in any case
        return next((h for h in header if h.strip().lower() in names), None)

    path_col = column("pth", "path", "file", "filename", "file_name", "image", "img", "image_path", "subdirectory")
    label_col = column("label", "labels", "class", "expression", "emotion", "category")
    split_col = column("split", "set", "subset", "usage", "partition", "fold")
    base = csv_path.parent
    if path_col and first and len(first) == len(header):
        # the image paths may be relative to the CSV's folder or to one of its sub-folders
        rel = first[header.index(path_col)]
        base = next((d for d in [base, *_subdirs(base)] if (d / rel).is_file()), base)
    out = str(Path.cwd() / f"{root.name}-by-class")  # here, not beside the data (often read-only, as on Kaggle)
    if split_col:  # the CSV's own split: test and validation rows to validation, the rest to train
        to_val, how = f"r[{split_col!r}].strip().lower()[:3] in ('val','tes','pub','pri')", f"by its {split_col} column"
    else:  # every 10th image of each label (the 1st, 11th, ...), so that each class is in both splits
        to_val, how = "C.update([r[L]]) or C[r[L]]%10==1", "every 10th image of a class"
    snippet = (f"python -c \"import csv,os,shutil,collections; B={str(base)!r}; O={out!r}; "
               f"P={path_col or '<path column>'!r}; L={label_col or '<label column>'!r}; C=collections.Counter(); "
               f"[shutil.copy(os.path.join(B,r[P]),os.makedirs(d,exist_ok=True) or d) "
               f"for r in csv.DictReader(open({str(csv_path)!r})) for d in [os.path.join(O,'validation' "
               f"if {to_val} else 'train',r[L])]]\"")
    return DataError(
        f"{root} is labelled by a CSV ({csv_path.name}, columns: {', '.join(header) or 'none'}) and its image "
        f"folders have no class sub-folders; this package reads class folders only. Copy it into "
        f"{out}/train|validation/<label>/ (validation {how}) with: {snippet} and pass {out} "
        f"(numeric labels: add --classes affectnet) ({found(root)})")


def _locate(p: Path) -> Path:
    """The dataset root at or below an existing path (a zip is unpacked first)."""
    if p.is_file() and p.suffix.lower() == ".zip":
        p = _unzip(p)
    elif not p.is_dir():
        raise DataError(f"{p} is not a folder or a .zip ({found(p.parent)})")
    if _split_dirs(p):
        return p  # resolve_layout says what is missing, if anything
    roots, csvs, _ = _walk(p, SEARCH_DEPTH)
    if len(roots) == 1:
        return roots[0]
    if roots:
        raise DataError(f"several datasets below {p}: {', '.join(map(str, roots))}; pass one of them")
    # a split folder or a class folder passed instead of the root
    if p.name.lower() in _ROLE_OF and any(_holds_images(d) for d in _subdirs(p)):
        raise DataError(f"{p} is a split folder, not a dataset root: did you mean {p.parent}? ({found(p)})")
    if p.parent.name.lower() in _ROLE_OF and _holds_images(p):
        raise DataError(f"{p} is a class folder, not a dataset root: did you mean {p.parent.parent}? "
                        f"({found(p.parent)})")
    if csvs:
        raise _csv_refusal(p, csvs[0])
    hint = ""
    if any(_holds_images(d) for d in _subdirs(p)):
        hint = "; its sub-folders hold images: put class folders under train/ and validation/"
    raise DataError(f"no dataset in {p} or {SEARCH_DEPTH} levels below (expected <root>/train/<class>/* and "
                    f"<root>/validation/<class>/*{hint}) ({found(p)})")


def find_data_root(path: str | os.PathLike | None = None) -> Path:
    """The dataset root: `path` (a folder or .zip), else $FER_DATA, else data/affectnet, else Colab/Kaggle."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            near = _nearest_existing(p.parent)
            raise DataError(f"dataset folder {p} does not exist ({near} holds: {_contents(near)})")
        return _locate(p)
    if os.environ.get("FER_DATA"):
        raw = os.environ["FER_DATA"]
        p = Path(raw).expanduser().absolute()  # relative to the current directory
        if not p.exists():
            where = "" if Path(raw).expanduser().is_absolute() else f"relative paths are read from {Path.cwd()}; "
            near = _nearest_existing(p)
            raise DataError(f"FER_DATA={raw} points to {p}, which does not exist ({where}{near} holds: "
                            f"{_contents(near)})")
        return _locate(p)
    if DEFAULT_DATA_DIR.is_dir():
        return _locate(DEFAULT_DATA_DIR)
    looked = [r for r in SEARCH_ROOTS if r.is_dir()]
    roots, zips = [], []
    for r in looked:
        found_roots, _, found_zips = _walk(r, SEARCH_DEPTH)
        roots += [x for x in found_roots if x.resolve() not in {y.resolve() for y in roots}]
        zips += found_zips
    if len(roots) == 1:
        return roots[0]
    if roots:
        raise DataError(f"several datasets found: {', '.join(map(str, roots))}; pass one with --data or FER_DATA")
    # a run's own zips (fer_results.zip, <StudentID>_HW04.zip) are no dataset
    candidates = [z for z in dict.fromkeys(zips) if not z.name.startswith("fer_results") and "_HW04" not in z.name]
    if len(candidates) == 1:  # Colab: only affectnet.zip on Drive
        print(f"using {candidates[0]}, the one zip found ({', '.join(map(str, looked))} searched)")
        return _locate(candidates[0])
    zip_hint = f"; zip files seen: {', '.join(map(str, zips[:5]))} (pass one as the path)" if zips else ""
    raise DataError(
        f"no dataset found: pass a path, set FER_DATA, or put it at {DEFAULT_DATA_DIR}; searched "
        f"{SEARCH_DEPTH} levels under {', '.join(map(str, SEARCH_ROOTS))} "
        f"({', '.join(map(str, looked)) or 'none of them exists'}{' exist' if looked else ''}){zip_hint}")


def _numeric(names) -> bool:
    return bool(names) and all(n.isdigit() for n in names)


def class_folders(split_dir: Path) -> list[str]:
    """Names of the sub-folders of a split, sorted (numerically when all are numbers; hidden ignored)."""
    names = [d.name for d in _subdirs(split_dir)]
    return sorted(names, key=int) if _numeric(names) else sorted(names)


def list_files(class_dir: Path) -> tuple[list[Path], list[Path]]:
    """(candidate image files, skipped non-image files) of one class folder, sorted."""
    images, skipped = [], []
    for f in sorted(class_dir.iterdir()):
        if not f.is_file():
            continue
        if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."):
            images.append(f)
        else:
            skipped.append(f)
    return images, skipped


_SHOWN: set[str] = set()


def _class_map(classes, root: Path, folders: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(folders in label order, display names) from a list, "a,b,...", a preset name, or root/classes.txt."""
    source = "--classes"
    if classes is None and (root / "classes.txt").is_file():
        lines = (root / "classes.txt").read_text().splitlines()
        classes, source = [line.strip() for line in lines if line.strip()], str(root / "classes.txt")
    if classes is None:
        if _numeric(folders):
            how = ('set classes = "affectnet" (or "name0,name1,...") in the parameters cell' if in_notebook()
                   else "pass --classes affectnet (or a list of names)")
            if os.access(root, os.W_OK) and not root.is_relative_to(cache_dir()):  # never into a read-only mount
                how += f", or put classes.txt in {root},"  # (/kaggle/input) or the cache a .zip was unpacked into
            warnings.warn(f"the class folders of {root} are numbers ({', '.join(folders)}): {how} to name them",
                          stacklevel=3)
        return tuple(folders), tuple(folders)
    preset = isinstance(classes, str) and classes.strip().lower() in CLASS_PRESETS
    if preset:
        source = f"preset {classes.strip().lower()}"
        names = list(CLASS_PRESETS[classes.strip().lower()])
    elif isinstance(classes, str):
        names = [c.strip() for c in classes.split(",") if c.strip()]
    else:
        names = [str(c) for c in classes]
    if len(names) != len(folders):
        raise DataError(f"the class-name map ({source}) has {len(names)} names but {root} has {len(folders)} "
                        f"class folders ({', '.join(folders)})")
    if len(set(names)) != len(names):
        raise DataError(f"the class-name map ({source}) repeats a name: {', '.join(names)}")
    if not _numeric(folders):
        # named folders: a map can only fix the label order, never rename a class (other spellings match)
        if {canonical_class(n) for n in names} != {canonical_class(f) for f in folders}:
            raise DataError(f"the class folders of {root} are already named ({', '.join(folders)}); the map "
                            f"({source}: {', '.join(names)}) is for numeric folders 0, 1, ...")
        by_canonical = {canonical_class(f): f for f in folders}
        ordered = tuple(by_canonical[canonical_class(n)] for n in names)
        return ordered, ordered
    mapping = f"class names ({source}): " + ", ".join(f"{f}={n}" for f, n in zip(folders, names))
    if preset and mapping not in _SHOWN:  # once per process, not at every load of the same dataset
        _SHOWN.add(mapping)
        print(mapping)
    return tuple(folders), tuple(names)


def folders_for(split_dir: Path, classes, class_map=None) -> tuple[str, ...]:
    """The folder of each of a model's `classes` in `split_dir`: the names themselves, or numeric folders
    named through the run's `class_map` (as given to --classes)."""
    found = class_folders(split_dir)
    if class_map is None and _numeric(found):  # a run named through classes.txt: the dataset root holds it
        listed = next((d / "classes.txt" for d in (split_dir, split_dir.parent) if (d / "classes.txt").is_file()), None)
        class_map = [line.strip() for line in listed.read_text().splitlines() if line.strip()] if listed else None
    if class_map is None or not _numeric(found):
        by_canonical = {canonical_class(f): f for f in found}  # a model's `angry` is a folder `anger`
        return tuple(c if c in found else by_canonical.get(canonical_class(c), c) for c in classes)
    folders, names = _class_map(class_map, split_dir, found)
    by_name = {canonical_class(n): f for n, f in zip(names, folders)}
    return tuple(by_name.get(canonical_class(c), c) for c in classes)


_SAID: set[Path] = set()  # datasets whose test/ folder stands in for validation/, already said


def resolve_layout(root: str | os.PathLike | None = None, classes=None) -> DatasetLayout:
    """Check a dataset root before any work: its splits, the same non-empty class folders, the class names.

    `classes` names numeric class folders: a list, "a,b,...", or "affectnet"; else root/classes.txt if present.
    """
    root = find_data_root(root)
    roles = _split_dirs(root)
    for role, dirs in roles.items():
        if len(dirs) > 1:
            raise DataError(f"{root} has several {role} folders: {', '.join(d.name + '/' for d in dirs)}; keep one "
                            f"({found(root)})")
    train_dir = roles.get("train", [None])[0]
    eval_dir = roles.get("validation", [None])[0]
    test_dir = roles.get("test", [None])[0]
    if train_dir is None:
        raise DataError(f"{root} has no train/ folder (also accepted: training/, any case) ({found(root)})")
    if eval_dir is None and test_dir is None:
        raise DataError(f"{root} has no validation/ folder next to {train_dir.name}/ (also accepted: valid/, val/, "
                        f"test/, testing/, any case) ({found(root)})")
    if eval_dir is None:
        if root not in _SAID:  # once per dataset and process, not at every load
            _SAID.add(root)
            warnings.warn(f"{root} has no validation folder: {test_dir.name}/ is the evaluation (validation) split",
                          stacklevel=2)
        eval_dir, test_dir = test_dir, None
    splits = [d for d in (train_dir, eval_dir, test_dir) if d is not None]
    csvs = sorted(root.glob("*.csv")) + sorted(train_dir.glob("*.csv"))
    for split_dir in splits:
        if not class_folders(split_dir):
            if csvs and _holds_images(split_dir):
                raise _csv_refusal(root, csvs[0])
            raise DataError(f"{split_dir} is empty: it needs one sub-folder per class ({found(split_dir)})")
    train_classes = class_folders(train_dir)
    for split_dir in splits[1:]:
        other = class_folders(split_dir)
        if other != train_classes and sorted(map(str.lower, other)) == sorted(map(str.lower, train_classes)):
            raise DataError(f"the class folders of {train_dir.name}/ and {split_dir.name}/ in {root} differ only in "
                            f"case ({', '.join(train_classes)} against {', '.join(other)}): rename them to the same "
                            f"names, e.g. all lower case")
        if other != train_classes:
            only_train = sorted(set(train_classes) - set(other))
            only_other = sorted(set(other) - set(train_classes))
            parts = []
            if only_train:
                parts.append(f"missing from {split_dir.name}/: {', '.join(only_train)}")
            if only_other:
                parts.append(f"missing from {train_dir.name}/: {', '.join(only_other)}")
            raise DataError(f"class folders differ between splits in {root} ({'; '.join(parts)}; found: "
                            f"{train_dir.name}/ has {', '.join(train_classes)}, {split_dir.name}/ has "
                            f"{', '.join(other) or 'nothing'})")
    folders, names = _class_map(classes, root, train_classes)
    for split_dir in splits:
        for c in train_classes:
            if not list_files(split_dir / c)[0]:
                raise DataError(f"class folder {split_dir / c} holds no images ({found(split_dir / c)})")
    return DatasetLayout(root=root, train_dir=train_dir, eval_dir=eval_dir, classes=names, folders=folders,
                         test_dir=test_dir)


def resolve_eval_folder(path: str | os.PathLike) -> Path:
    """A folder of class sub-folders to evaluate: a split itself, or a root (its validation split is used)."""
    p = Path(path).expanduser()
    if p.is_dir() and not _split_dirs(p) and any(_holds_images(d) for d in _subdirs(p)):
        return p  # a split folder: class sub-folders holding images
    return resolve_layout(p).eval_dir
