"""Inference for fitted linear mixed models: intervals, tests, simulation and resampling.

One module per method:

* :mod:`~mixedfx.inference.varpar`: the fit's objective, ML refits and cached
  derivatives of the deviance over the variance parameters;
* :mod:`~mixedfx.inference.satterthwaite` and
  :mod:`~mixedfx.inference.kenward_roger`: denominator degrees of freedom
  (lmerTest's and pbkrtest's);
* :mod:`~mixedfx.inference.coeftable`: the fixed-effects table with df and p;
* :mod:`~mixedfx.inference.wald` and :mod:`~mixedfx.inference.profile`:
  confidence intervals (lme4's ``confint``);
* :mod:`~mixedfx.inference.anova`: likelihood-ratio tests of nested models;
* :mod:`~mixedfx.inference.simulate`: new responses from the fitted model;
* :mod:`~mixedfx.inference.bootstrap`: the parametric bootstrap (lme4's ``bootMer``);
* :mod:`~mixedfx.inference.uncertainty`: prediction intervals that include the
  uncertainty of theta (bootstrap draws or the Hessian);
* :mod:`~mixedfx.inference.crossval`: cross-validation by prediction mode;
* :mod:`~mixedfx.inference.tidy`: broom.mixed-style ``tidy`` and ``glance``.

``mixedfx.anova`` and ``mixedfx.cross_validate`` are the two functions of
the package; the rest are methods of the model. Everything here is specific
to linear mixed models (Gaussian response, profiled sigma); a GLMM
counterpart would live beside it.
"""
