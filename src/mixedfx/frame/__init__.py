"""From data frames to model rows: the formula, the levels and the design.

* :mod:`~mixedfx.frame.formula`: lme4's formula language;
* :mod:`~mixedfx.frame.levels`: grouping levels matched by value;
* :mod:`~mixedfx.frame.reterm`: one random-effects term (levels, model matrix);
* :mod:`~mixedfx.frame.design`: the frozen spec learned from training data;
* :mod:`~mixedfx.frame.missing`: the missing-value policy;
* :mod:`~mixedfx.frame.rows`: model matrices of new rows.
"""
