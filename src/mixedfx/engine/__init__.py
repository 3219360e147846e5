"""The numerical engine: numpy, scipy and NLopt only, no data frames.

From the cross-product blocks of the training rows to the fitted
parameters, in the order a fit runs:

* :mod:`~mixedfx.engine.layout`: where each element of theta sits in the
  relative covariance factors (:class:`ThetaLayout`);
* :mod:`~mixedfx.engine.blocks`: the blocks of ``A = [Z X y]'[Z X y]``,
  formed once from the sums of :mod:`~mixedfx.engine.levelsums`
  (:mod:`~mixedfx.engine.schur`: the sparse Schur update;
  :mod:`~mixedfx.engine.grouped`: the update for levels grouped by their A11);
* :mod:`~mixedfx.engine.cholesky`: the blocked Cholesky factor ``L(theta)``
  (:mod:`~mixedfx.engine.smallmat` and :mod:`~mixedfx.engine.levelstack` for
  stacks of small blocks,
  :mod:`~mixedfx.engine.linalg` for checked LAPACK calls), and
  :mod:`~mixedfx.engine.dense` for small models as one dense system;
* :mod:`~mixedfx.engine.objective` and :mod:`~mixedfx.engine.gradient`:
  the profiled ML/REML criterion and its analytic gradient;
  :mod:`~mixedfx.engine.information`: the average information, a positive
  semidefinite Hessian read off the same factorization;
* :mod:`~mixedfx.engine.optimize`: the optimizer chosen for the model
  (BOBYQA for small models; for blocked ones Fisher scoring on the average
  information, :mod:`~mixedfx.engine.scoring`, with L-BFGS-B on the
  gradient, :mod:`~mixedfx.engine.descent`, for one-term models of many
  levels and where scoring cannot go on), the boundary restarts and the
  ridge turns; :mod:`~mixedfx.engine.bobyqa`: BOBYQA and the
  optimizers' summary; :mod:`~mixedfx.engine.newton`: the Newton polish,
  the snap of small variances and the settle step;
* :mod:`~mixedfx.engine.solve`: beta, the BLUPs and their covariances at the
  optimum; :mod:`~mixedfx.engine.intervals`: prediction-error variances.

Nothing here imports pandas, formulaic or the frame side (enforced by ruff's
banned-import rule in ``pyproject.toml``).
"""
