"""Diagnostic plots of a fitted model, as display objects in the scikit-learn style.

Every plot has a front-door function that takes a fitted model and returns a
display object, already drawn::

    import mixedfx.plots as mfp

    disp = mfp.caterpillar(m)                    # BLUPs with intervals
    disp = mfp.shrinkage(m, group="Subject", term="Days")
    disp = mfp.groups(m, x="Days", which=4)      # small multiples
    disp = mfp.observed_vs_predicted(m)
    disp = mfp.qq(m, which="residuals")         # or which="ranef", group=, term=
    disp = mfp.residuals_vs_fitted(m)
    disp = mfp.residual_spread(m, group="Subject")
    disp = mfp.cv_curve(results)                 # mixedfx.cross_validate results
    disp = mfp.calibration(g)                    # a GLMM: observed vs predicted by group
    disp.figure_.savefig("plot.png")

A display holds the numbers it draws as plain attributes (so they can be
inspected or tested) and the matplotlib objects with a trailing underscore:
``ax_`` (an Axes, or for :func:`groups` an ndarray of Axes) and ``figure_``.
``display.plot(ax=None)`` draws it again, on ``ax`` or on a new figure.
The same displays can be built with ``Display.from_model(model, ...)``.

matplotlib is an optional dependency (``pip install 'mixedfx[plot]'``): it is
imported only when something is drawn, so importing this module does not
import it.
"""

from .calibration import CalibrationDisplay, calibration
from .caterpillar import CaterpillarDisplay, caterpillar
from .cv_curve import CVCurveDisplay, cv_curve
from .groups import GroupsDisplay, groups
from .observed import ObservedPredictedDisplay, observed_vs_predicted
from .qq import QQDisplay, qq
from .residuals import ResidualsDisplay, residuals_vs_fitted
from .shrinkage import ShrinkageDisplay, shrinkage
from .spread import ResidualSpreadDisplay, residual_spread

__all__ = [
    "CVCurveDisplay",
    "CalibrationDisplay",
    "CaterpillarDisplay",
    "GroupsDisplay",
    "ObservedPredictedDisplay",
    "QQDisplay",
    "ResidualSpreadDisplay",
    "ResidualsDisplay",
    "ShrinkageDisplay",
    "calibration",
    "caterpillar",
    "cv_curve",
    "groups",
    "observed_vs_predicted",
    "qq",
    "residual_spread",
    "residuals_vs_fitted",
    "shrinkage",
]
