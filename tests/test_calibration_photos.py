"""A dataset with no training split calibrates int8 on photographs kept apart from its evaluation pictures, and says
loudly when it cannot."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pipeline import data
from pipeline.data import calibration_photos
from pipeline.engine.recipes import load_recipe

pytestmark = pytest.mark.skipif(not calibration_photos.installed(),
                                reason=f"make setup installs {calibration_photos.PACKAGE}")


def test_the_photos_recipe_calibrates_on_pictures_that_are_not_evaluation_pictures():
    recipe = load_recipe("efficientnet-lite0")
    calib = data.calibration_images(recipe)
    evals = data.eval_split(recipe).images
    assert calib.shape == (112, 224, 224, 3) and calib.dtype == np.uint8
    assert len({c.tobytes() for c in calib}) == 112  # every view differs
    flat_eval = evals.reshape(len(evals), -1).astype(np.float32)
    for picture in calib.reshape(len(calib), -1).astype(np.float32):  # none is (near) an evaluation photo
        assert np.abs(flat_eval - picture).mean(axis=1).min() > 10
    assert calib.std() > 30  # real pictures, not a flat fill


def test_fewer_calibration_samples_take_each_photograph_once_first():
    pictures = calibration_photos.load(32, 32, 1, 14)
    assert pictures.shape == (14, 32, 32)
    assert len({p.tobytes() for p in pictures}) == 14


def test_without_the_photographs_the_log_says_calibrated_on_the_evaluation_pictures(monkeypatch, tmp_path, caplog):
    recipe = load_recipe("efficientnet-lite0")
    before = data.fingerprint(recipe)
    monkeypatch.setattr(calibration_photos, "FOLDER", tmp_path)  # as on a machine without the package
    with caplog.at_level(logging.WARNING, logger="pipeline.data"):
        calib = data.calibration_images(recipe)
    assert np.array_equal(calib, data.eval_split(recipe).images)
    assert "CALIBRATED ON THE EVALUATION PICTURES" in caplog.text
    assert "CALIBRATED ON THE EVALUATION PICTURES" in calibration_photos.describe(False, 14)
    assert data.fingerprint(recipe) != before  # cached int8 results do not outlive the change
