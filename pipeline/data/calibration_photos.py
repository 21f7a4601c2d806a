"""Real photographs for int8 calibration, kept apart from every evaluation picture.

A dataset with no training split (the bundled `photos`, evaluated by agreement with fp32) would otherwise calibrate
on the pictures it is evaluated on, which flatters int8. These come from the Debian package lomiri-wallpapers-16.04
(13 of its 15 pictures: landscapes, dogs, a bird, fruit, brushes...; the other two are a gradient and a texture;
CC-BY-4.0, CC-BY-SA-4.0 and CC0-1.0, see
/usr/share/doc/lomiri-wallpapers-16.04/copyright; installed by `make setup`) and scikit-image's motorcycle photo (not
one of the evaluation photos). The photographs are large (1365 to 5312 pixels wide), so each gives eight views: the
centre square and four corner squares of 70% of the short side, and mirror images of three of them. That is 112
pictures from 14 distinct photographs: the views of one photograph are not independent samples.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pipeline.artifacts.preprocess import resize_bilinear, to_channels

FOLDER = Path("/usr/share/backgrounds")
PACKAGE = "lomiri-wallpapers-16.04"
FILES = ("Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
         "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
         "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg",
         "greentock_by_Peter_Nerlich.jpg", "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
         "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg")
# (fraction of the short side, where: 0..1 across the free room in x and y, mirrored)
VIEWS = ((1.0, 0.5, 0.5, False), (0.7, 0.0, 0.0, False), (0.7, 1.0, 0.0, False), (0.7, 0.0, 1.0, False),
         (0.7, 1.0, 1.0, False), (1.0, 0.5, 0.5, True), (0.7, 0.5, 0.5, True), (0.7, 0.0, 1.0, True))


def installed() -> bool:
    """True when every photograph of the set is on this machine."""
    return all((FOLDER / name).is_file() for name in FILES)


def fingerprint() -> dict:
    """What identifies the set (its files' sizes), so cached int8 results follow an install or removal."""
    if not installed():
        return {"calibration_photos": None}
    sizes = ",".join(str((FOLDER / name).stat().st_size) for name in FILES)
    return {"calibration_photos": hashlib.sha256(sizes.encode()).hexdigest()[:16]}


def describe(has_train: bool, count: int) -> str:
    """What int8 calibration ran on, for logs and reports; says loudly when it was the evaluation pictures."""
    if has_train:
        return f"calibrated on {count} training images"
    if installed():
        return (f"calibrated on {count} photographs kept apart from the evaluation pictures ({PACKAGE} and "
                f"scikit-image: {len(FILES) + 1} distinct photographs, crops and mirror images)")
    return (f"CALIBRATED ON THE EVALUATION PICTURES ({count}): int8 looks better here than it will on new pictures; "
            f"install {PACKAGE} (make setup) for calibration photographs apart from them")


def _photographs(short_side: int) -> list[np.ndarray]:
    """The distinct photographs, RGB uint8, decoded at about `short_side` pixels on their short side."""
    from PIL import Image

    out = []
    for name in FILES:
        with Image.open(FOLDER / name) as img:
            img.draft("RGB", (short_side, short_side))  # JPEG decodes at a power-of-two reduction: fast
            img = img.convert("RGB")
            scale = short_side / min(img.size)
            if scale < 1:
                img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BOX)
            out.append(np.asarray(img))
    import skimage.data

    out.append(skimage.data.stereo_motorcycle()[0])
    return out


def _view(photo: np.ndarray, fraction: float, fx: float, fy: float, mirror: bool) -> np.ndarray:
    h, w = photo.shape[:2]
    side = int(min(h, w) * fraction)
    top, left = int((h - side) * fy), int((w - side) * fx)
    crop = photo[top:top + side, left:left + side]
    return crop[:, ::-1] if mirror else crop


def load(height: int, width: int, channels: int, count: int) -> np.ndarray | None:
    """`count` (at most 112) uint8 N x H x W (x C) calibration pictures at the model's size, evenly spread over the
    views, or None when the set is not installed."""
    if not installed():
        return None
    photos = _photographs(2 * max(height, width))
    pictures = []
    for view in VIEWS:  # view-major: the first pictures cover every photograph once
        for photo in photos:
            pixels = resize_bilinear(to_channels(_view(photo, *view), channels), height, width)
            pictures.append(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
            if len(pictures) == count:
                break
        if len(pictures) == count:
            break
    images = np.stack(pictures)
    return images[..., 0] if channels == 1 else images
