"""predict's handling of unseen levels: warnings and errors."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import mixedfx as mfx


@pytest.fixture(scope="module")
def sleep_model() -> mfx.LinearMixedModel:
    return mfx.lmm("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))


def test_new_levels_error_raises_without_warning(sleep_model: mfx.LinearMixedModel) -> None:
    only_new = pd.DataFrame({"Subject": ["S308", "S309"], "Days": [1.0, 2.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.NewLevelWarning)
        with pytest.raises(mfx.DataError, match="not seen in training"):
            sleep_model.predict(only_new, new_levels="error")
    with pytest.warns(mfx.NewLevelWarning):  # the other modes still warn
        sleep_model.predict(only_new, new_levels="nan")
