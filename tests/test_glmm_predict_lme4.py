"""GLMM predictions against lme4's predict(): link and response scale, every re.form, new levels.

lme4's ``predict(fit, newdata, re.form, allow.new.levels = TRUE, type)`` of the
fits solved to convergence (lme4_glmm_exact.json); offsets are part of the
linear predictor (for a glmer(offset =) argument, which lme4's predict drops
for new data, the reference adds it back).
"""

from __future__ import annotations

import numpy as np
import pytest

from glmm_reference import cases, fit, newdata, reference

RE = {"NULL": "all", "NA": "none"}

CASES = [(name, key) for name in cases() for key in reference()[name]["re_forms"]]


def re_form(text: str) -> str:
    return RE.get(text, text.lstrip("~"))


@pytest.mark.parametrize(("name", "key"), CASES)
@pytest.mark.parametrize("kind", ["link", "response"])
def test_predictions(name: str, key: str, kind: str) -> None:
    ref = reference()[name]
    want = np.array(ref["pred"][kind][key])
    got = fit(name).predict(newdata(name), re=re_form(ref["re_forms"][key]), type=kind)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("name", cases())
def test_response_is_the_inverse_link_of_the_link(name: str) -> None:
    m = fit(name)
    nd = newdata(name)
    eta = m.predict(nd, type="link")
    np.testing.assert_array_equal(m.predict(nd), m.family.link.linkinv(eta))
