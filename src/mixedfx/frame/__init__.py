"""From data frames to model rows: the formula, the levels and the design.

* :mod:`~mixedfx.frame.formula`: lme4's formula language;
* :mod:`~mixedfx.frame.levels`: grouping levels matched by value;
* :mod:`~mixedfx.frame.reterm`: one random-effects term (levels, model matrix);
* :mod:`~mixedfx.frame.design`: the frozen spec learned from training data;
* :mod:`~mixedfx.frame.na`: what counts as missing, one rule for every column;
* :mod:`~mixedfx.frame.missing`: the missing-value policy of training;
* :mod:`~mixedfx.frame.rows`: the one way a frame becomes model rows (X, y,
  offset, level codes, M) with their missing values marked.
"""
