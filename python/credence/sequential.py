"""Sequential decisions: Bayesian optimization as an ask/tell loop, and active-learning queries.

    opt = credence.BayesOpt([(0, 1), (-5, 5)], method="ensemble", acquisition="thompson")
    for _ in range(30):
        for x in opt.suggest():
            opt.observe(x, run_experiment(x))
    opt.best_point, opt.best_value
"""
import json

import numpy as np

from . import _credence
from ._credence import InvalidArgument


def _method_spec(method, options):
    from . import _method_spec as spec
    return spec(method, options)


class BayesOpt:
    """Bayesian optimization over a box with any credence regression method as the surrogate.

    bounds: one (low, high) pair per input. method: "gp", "laplace", "ensemble", "nuts", ... with
    keyword options as in `credence.fit`. acquisition: "ei", "ucb", "thompson" or "random".
    The state (state(), save()) holds everything: a loop restored from it proposes exactly what an
    uninterrupted one would."""

    def __init__(self, bounds, method="gp", *, model="mlp:50,50", likelihood="", acquisition="ei", beta=4.0,
                 initial=10, samples=32, steps=1000, lr=1e-2, maximize=False, seed=0, _core=None, **method_options):
        if _core is not None:
            self._core = _core
            return
        try:
            lower = [float(b[0]) for b in bounds]
            upper = [float(b[1]) for b in bounds]
        except (TypeError, IndexError, ValueError):
            raise InvalidArgument("bounds must be (low, high) pairs, one per input, e.g. [(0, 1), (-5, 5)]") from None
        self._core = _credence.BayesOpt(lower, upper, _method_spec(method, method_options), model, likelihood,
                                        acquisition, beta, initial, samples, steps, lr, maximize, seed)

    def suggest(self, k=1):
        """The next `k` points to measure: an array [k, D]."""
        return np.array(self._core.suggest(int(k)), dtype=np.float64)

    def observe(self, x, y):
        """Records measurements: one point [D] and value, or points [k, D] and values [k]."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            self._core.observe(x.tolist(), float(y))
            return
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if x.ndim != 2 or len(y) != len(x):
            raise InvalidArgument(f"observe takes x [D] and a value, or x [k, D] and y [k]; got {x.shape} and {y.shape}")
        for xi, yi in zip(x, y):
            self._core.observe(xi.tolist(), float(yi))

    @property
    def points(self):
        return np.array(self._core.points, dtype=np.float64)

    @property
    def values(self):
        return np.array(self._core.values, dtype=np.float64)

    @property
    def best_value(self):
        return self._core.best_value()

    @property
    def best_point(self):
        return np.array(self._core.best_point(), dtype=np.float64)

    @property
    def last_round(self):
        """What the last suggest() did: phase, surrogate fit and acquisition seconds."""
        return json.loads(self._core.last_round())

    def state(self):
        return json.loads(self._core.state())

    @classmethod
    def from_state(cls, state):
        return cls(None, _core=_credence.BayesOpt.from_state(json.dumps(state)))

    def save(self, path, overwrite=False):
        self._core.save(str(path), overwrite)

    @classmethod
    def load(cls, path):
        return cls(None, _core=_credence.BayesOpt.load(str(path)))


def select_queries(posterior, pool, acquisition="bald", k=10, *, selection="top", seed=0, samples=32):
    """Indices of the `k` rows of `pool` (array or tensor of inputs) to label next under
    `acquisition` ("bald", "entropy", "variance", "margin" or "random"): the best first
    (selection="top"), or drawn in proportion to their scores (selection="power")."""
    from . import _as_numpy
    return _credence.select_queries(posterior._fitted, _as_numpy(pool, "pool"), acquisition, int(k), int(seed),
                                    int(samples), selection)
