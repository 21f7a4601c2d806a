"""dataset = "image-folder": the user's labelled pictures, one sub-folder per class (the ImageFolder layout).

Either ``path/train/<class>/*`` and ``path/val/<class>/*`` (``test/`` is accepted for ``val/``), or
``path/<class>/*`` split into training and evaluation pictures by a seeded, per-class fraction (``val_fraction``,
``split_seed``). PNG and JPEG, grey or colour; every picture is converted to the input spec's channels and resized to
its size with the reference preprocessing (pipeline/artifacts/preprocess.py). Pictures that cannot be read are
skipped and reported by name; decoded splits are cached as arrays under the build cache, keyed by the folder's contents.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from pipeline.artifacts.preprocess import resize_bilinear, to_channels
from pipeline.core.errors import PATH_LIMIT, ConfigError, shown
from pipeline.data import array_cache
from pipeline.data.source import DataSource, Split

SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_PIXELS = 40_000_000  # a larger picture is refused (decompression bombs), not decoded
VAL_NAMES = ("val", "test")
SIZE_SAMPLE = 256  # pictures whose headers choose the input size when [input] does not (spread over the folder)
SIZE_CAP = 224  # the chosen short side's limit (ImageNet's): set [input] height and width for more
SIZE_STEP = 8  # sides of 32 and more are rounded down to a multiple of this (strided layers halve them evenly)
SAME_SHAPE = 0.1  # a non-square shape is kept when every sampled picture's aspect is within 10% of the median
NORM_SAMPLE = 256  # training pictures (a seeded sample) whose pixels `init` measures mean and std on
log = logging.getLogger("pipeline.data")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _pictures(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def layout(root: Path) -> dict[str, Path] | None:
    """{'train': folder, 'val': folder} when the folder has both sub-trees, else None."""
    val = next((root / n for n in VAL_NAMES if (root / n).is_dir()), None)
    if (root / "train").is_dir() and val is not None:
        return {"train": root / "train", "val": val}
    return None


def _files(table: dict) -> dict[str, list[tuple[Path, int]]]:
    """Per split, (picture, class index) pairs in a fixed order."""
    root = Path(table["path"])
    trees = layout(root)
    classes = [p.name for p in _class_dirs(trees["train"] if trees else root)]
    index = {c: i for i, c in enumerate(classes)}
    if trees:
        out = {}
        for split, folder in (("train", trees["train"]), ("test", trees["val"])):
            out[split] = [(f, index[d.name]) for d in _class_dirs(folder) if d.name in index for f in _pictures(d)]
        return out
    rng = np.random.default_rng(table["split_seed"])
    train, test = [], []
    for d in _class_dirs(root):
        files = _pictures(d)
        order = rng.permutation(len(files))
        n_val = int(round(table["val_fraction"] * len(files))) if len(files) > 1 else 0
        n_val = min(max(n_val, 1 if len(files) > 1 else 0), len(files) - 1) if files else 0
        test += [(files[i], index[d.name]) for i in sorted(order[:n_val])]
        train += [(files[i], index[d.name]) for i in sorted(order[n_val:])]
    return {"train": train, "test": test}


def check(table: dict, recipe_path: Path) -> dict:
    if not table["path"]:
        raise ConfigError(recipe_path, "data.path", "required for dataset 'image-folder' (one sub-folder per class)")
    root = Path(table["path"])
    root = (root if root.is_absolute() else recipe_path.parent / root).resolve()
    if not root.is_dir():
        raise ConfigError(recipe_path, "data.path", f"{shown(root, PATH_LIMIT)} is not a folder")
    trees = layout(root)
    top = trees["train"] if trees else root
    classes = _class_dirs(top)
    with_pictures = [d.name for d in classes if _pictures(d)]
    if not with_pictures:
        raise ConfigError(recipe_path, "data.path", f"{shown(top, PATH_LIMIT)}"
                                                    " holds no PNG or JPEG pictures in class sub-folders "
                          "(expected <folder>/<class>/<picture>.png)")
    if len(with_pictures) < 2:
        raise ConfigError(recipe_path, "data.path", f"{shown(top, PATH_LIMIT)}"
                                                    f" has pictures for one class only ({with_pictures[0]!r}); "
                          "a classifier needs at least two class sub-folders")
    empty = [d.name for d in classes if d.name not in with_pictures]
    if empty:
        raise ConfigError(recipe_path, "data.path", f"class folder(s) without pictures: {', '.join(empty[:5])}")
    out = dict(table, path=str(root))
    if trees:
        unknown = [d.name for d in _class_dirs(trees["val"]) if d.name not in with_pictures]
        if unknown:
            raise ConfigError(recipe_path, "data.path", f"{shown(trees['val'], PATH_LIMIT)}"
                                                        " has classes that train/ lacks: "
                              f"{', '.join(unknown[:5])}")
        if not _pictures(trees["val"]):
            raise ConfigError(recipe_path, "data.path", f"{shown(trees['val'], PATH_LIMIT)} holds no pictures")
    elif not _files(out)["test"]:
        raise ConfigError(recipe_path, "data.val_fraction", "leaves no picture for evaluation; raise it or add "
                          "pictures")
    return out


def _open(path: Path):
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(path)
        img.load()
    return img


def _header(path: Path):
    """The picture's size and mode from its header, without decoding its pixels (a bomb is refused as in `_open`)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            return img.height, img.width, img.mode


def choose_size(sizes: list[tuple[int, int]], of: int = 0) -> tuple[int, int, str]:
    """(height, width, how) of a model input for pictures of these (height, width): the median short side, capped at
    SIZE_CAP and rounded down to a multiple of SIZE_STEP (from 32 up); square unless every picture has about the
    same non-square shape, whose aspect is then kept. `how` says so in a phrase for a log line or a recipe comment
    (`of`: how many pictures the sizes were sampled from, when more).

        >>> choose_size([(451, 300), (1200, 1600), (640, 480)])[:2]
        (224, 224)
    """
    shorts = sorted(min(h, w) for h, w in sizes)
    median = int(np.median(shorts))
    side = min(median, SIZE_CAP)
    side = side - side % SIZE_STEP if side >= 32 else side
    aspects = [h / w for h, w in sizes]
    aspect = float(np.median(aspects))
    long_over_short = max(aspect, 1 / aspect)
    keep = long_over_short > 1 + SAME_SHAPE and long_over_short <= 2 and all(
        abs(a / aspect - 1) <= SAME_SHAPE for a in aspects)
    long = side
    if keep:
        long = round(side * long_over_short)
        long = max(SIZE_STEP, round(long / SIZE_STEP) * SIZE_STEP) if side >= 32 else long
    height, width = (long, side) if keep and aspect > 1 else (side, long)
    count = f"{len(sizes)} of {of} pictures" if of > len(sizes) else f"{len(sizes)} picture{'s' * (len(sizes) > 1)}"
    spread = f"{shorts[0]} to {shorts[-1]}" if shorts[0] != shorts[-1] else f"all {median}"
    how = f"the median short side of {count} ({spread}) is {median}"
    if median > SIZE_CAP:
        how += f", capped at {SIZE_CAP}"
    if side != min(median, SIZE_CAP):
        how += f", rounded down to a multiple of {SIZE_STEP}"
    if keep:
        how += f"; their shape ({long_over_short:.2f}:1, {'portrait' if aspect > 1 else 'landscape'}) is kept"
    elif long_over_short > 1 + SAME_SHAPE or max(aspects) / min(aspects) > 1 + SAME_SHAPE:
        how += "; square, as their shapes vary"
    else:
        how += "; square like the pictures"
    return height, width, how


def _sample(items: list, limit: int) -> list:
    """Up to `limit` of `items`, evenly spread over them (every class of a sorted folder has its share)."""
    step = max(1, len(items) // limit)
    return items[::step][:limit]


def input_defaults(table: dict) -> dict:
    """Size and channels chosen from the folder as a whole (`choose_size` on the headers of up to SIZE_SAMPLE
    training pictures spread over it); grey only if every sampled picture is grey. `size_note` says how the size was
    chosen (`inputs.resolve` logs it when the size is used) and `size_rule` the same for a recipe comment."""
    items = _files(table)["train"]
    sizes, modes = [], set()
    for path, _ in _sample(items, SIZE_SAMPLE):
        try:
            height, width, mode = _header(path)
        except Exception:  # unreadable: the others decide
            continue
        sizes.append((height, width))
        modes.add(mode)
    if not sizes:
        return {}
    height, width, how = choose_size(sizes, len(items))
    channels = 1 if modes <= {"1", "L", "I", "I;16", "F"} else 3
    note = (f"image-folder {table['path']}: model input {height}x{width} (height x width): {how} (set [input] "
            "height and width to choose another)")
    return {"height": height, "width": width, "channels": channels, "size_note": note,
            "size_rule": f"{height}x{width} (height x width): {how}"}


def normalisation(table: dict, spec: dict, limit: int = NORM_SAMPLE, seed: int = 0) -> dict:
    """Per-channel mean and std (0..1 scale) of up to `limit` training pictures (a seeded sample) decoded at the
    spec's size and channels as training sees them, with how many pictures were measured (`pictures`, `of`).
    A channel without spread (every picture the same colour) gets std 1."""
    items = _files(table)["train"]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(items), size=min(limit, len(items)), replace=False)) if items else []
    size = {k: spec[k] for k in ("height", "width", "channels")}
    sums, squares, values, used = np.zeros(spec["channels"]), np.zeros(spec["channels"]), 0, 0
    for i in chosen:
        try:
            pixels = _decode(items[i][0], size)
        except Exception:  # unreadable: measured without it, as training goes without it
            continue
        v = pixels.reshape(-1, spec["channels"]).astype(np.float64) / 255.0
        sums += v.sum(0)
        squares += np.square(v).sum(0)
        values += len(v)
        used += 1
    if not used:
        return {}
    mean = sums / values
    std = np.sqrt(np.maximum(squares / values - np.square(mean), 0.0))
    std = np.where(std > 1e-6, std, 1.0)
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std], "pictures": used, "of": len(items)}


def split_sizes(table: dict) -> dict[str, int]:
    """How many pictures each split holds (files found, before any is decoded)."""
    return {split: len(items) for split, items in _files(table).items()}


def labels(table: dict) -> tuple[str, ...]:
    root = Path(table["path"])
    trees = layout(root)
    return tuple(p.name for p in _class_dirs(trees["train"] if trees else root))


def _decode(path: Path, spec: dict) -> np.ndarray:
    img = _open(path)
    img = img.convert("L" if spec["channels"] == 1 else "RGB")
    pixels = to_channels(np.asarray(img), spec["channels"])
    pixels = resize_bilinear(pixels, spec["height"], spec["width"])
    out = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return out[:, :, 0] if spec["channels"] == 1 else out


def fingerprint(table: dict) -> dict:
    """Names, sizes and modification times of every picture: a changed folder is new data."""
    h = hashlib.sha256()
    for split, items in _files(table).items():
        for path, label in items:
            st = path.stat()
            h.update(f"{split}\0{path}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"contents_sha256": h.hexdigest()}


def load(table: dict, which: str, spec: dict) -> Split:
    items = _files(table)[which]
    size = {k: spec[k] for k in ("height", "width", "channels")}
    key = hashlib.sha256(json.dumps([fingerprint(table), which, size, 1], sort_keys=True).encode()).hexdigest()[:24]
    cached = array_cache.load(key)
    if cached is not None:
        images, labels_, info = cached
        return Split(images, labels_, tuple(info["names"]), tuple(info["skipped"]), 0.0)
    start = time.perf_counter()
    pictures, kept, names, skipped = [], [], [], []
    root = Path(table["path"])
    for path, label in items:
        try:
            pictures.append(_decode(path, size))
        except Exception as exc:  # corrupt, truncated, too large, not a picture: skip it and say so
            skipped.append(f"{path.relative_to(root)} ({type(exc).__name__})")
            continue
        kept.append(label)
        names.append(str(path.relative_to(root)))
    seconds = time.perf_counter() - start
    if skipped:
        log.warning("image-folder %s: skipped %d unreadable picture(s) of %d: %s%s", which, len(skipped),
                    len(items), ", ".join(skipped[:3]), " ..." if len(skipped) > 3 else "")
    shape = (0, size["height"], size["width"]) + (() if size["channels"] == 1 else (size["channels"],))
    images = np.stack(pictures) if pictures else np.zeros(shape, np.uint8)
    label_array = np.asarray(kept, dtype=np.int64)
    log.info("image-folder %s: read %d pictures in %.1f s", which, len(pictures), seconds)
    array_cache.store(key, images, label_array, {"names": names, "skipped": skipped, "seconds": seconds})
    return Split(images, label_array, tuple(names), tuple(skipped), seconds)


SOURCE = DataSource("image-folder", check, input_defaults, labels, load, fingerprint=fingerprint, keys=("path",))
