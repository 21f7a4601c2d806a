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
SIZE_SAMPLE = 64  # pictures whose sizes choose the input size when [input] does not (spread over the folder)
SIZE_CAP = 512  # a side above this is scaled down (training memory and time grow with the pixels)
SIZE_RULE = f"the median size of up to {SIZE_SAMPLE} training pictures, scaled down to at most {SIZE_CAP} a side"
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


def input_defaults(table: dict) -> dict:
    """Size and channels chosen from the folder as a whole: the median height and width of a sample of training
    pictures spread over it, scaled down to at most SIZE_CAP a side; grey only if every sampled picture is grey.
    One odd picture (the first one, a 3000x3000 scan) no longer sets the model's input. `size_note` says how the
    size was chosen (`inputs.resolve` logs it when the size is used; a warning when `size_capped`)."""
    items = _files(table)["train"]
    step = max(1, len(items) // SIZE_SAMPLE)
    sizes, modes = [], set()
    for path, _ in items[::step][:SIZE_SAMPLE]:
        try:
            height, width, mode = _header(path)
        except Exception:  # unreadable: the others decide
            continue
        sizes.append((height, width))
        modes.add(mode)
    if not sizes:
        return {}
    height, width = (int(np.median([s[i] for s in sizes])) for i in (0, 1))
    channels = 1 if modes <= {"1", "L", "I", "I;16", "F"} else 3
    scale = min(1.0, SIZE_CAP / max(height, width))
    chosen = (max(1, round(height * scale)), max(1, round(width * scale)))
    if chosen != (height, width):
        how = (f"image-folder {table['path']}: the pictures' median size {height}x{width} is scaled down to "
               f"{chosen[0]}x{chosen[1]} for the model input (at most {SIZE_CAP} a side); set [input] height and "
               "width to choose another")
    else:
        how = (f"image-folder {table['path']}: model input {height}x{width}, the median size of {len(sizes)} of "
               f"{len(items)} training pictures (set [input] height and width to choose another)")
    return {"height": chosen[0], "width": chosen[1], "channels": channels, "size_note": how,
            "size_capped": chosen != (height, width)}


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
