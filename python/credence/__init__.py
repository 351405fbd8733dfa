"""credence: Bayesian deep learning on LibTorch, from Python.

    import credence
    post = credence.fit("mlp:50", (X, y), "laplace", subset="last_layer")
    pred = post.predict(X_test)          # pred.probs, or pred.mean / pred.var

The same C++ library as the `credence` command line: methods, models and files are shared, and
errors carry the same messages.
"""
import json
import os
import tempfile

import numpy as np

from . import _credence
from ._credence import DataError, Error, InvalidArgument, IoError, NotSupported, NumericalError

__all__ = ["fit", "meta_fit", "load", "compare", "decide", "describe", "load_data", "Posterior", "Prediction", "Decisions",
           "BayesOpt", "select_queries",
           "Error", "InvalidArgument",
           "DataError", "NotSupported", "NumericalError", "IoError", "set_threads"]

set_threads = _credence.set_threads


def _as_numpy(a, what):
    """NumPy view of an array-like (torch tensors through .detach().cpu())."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype == object:
        raise InvalidArgument(f"{what} must be numeric, got an object array")
    return np.ascontiguousarray(a)


def _arrays(data):
    """(X, y) from a pair of arrays or tensors, or from an iterable of (x, y) batches (a DataLoader)."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return _as_numpy(data[0], "X"), _as_numpy(data[1], "y")
    try:
        batches = [(_as_numpy(x, "X"), _as_numpy(y, "y")) for x, y in data]
    except TypeError:
        raise InvalidArgument("data must be (X, y) arrays or tensors, or an iterable of (x, y) batches") from None
    if not batches:
        raise DataError("the data loader gave no batches")
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _method_spec(method, options):
    """METHOD[:key=value,...] from a name and keyword options (values as the CLI writes them)."""
    if not options:
        return method
    def text(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)
    parts = ",".join(f"{k}={text(v)}" for k, v in options.items())
    return f"{method}{',' if ':' in method else ':'}{parts}"


def _init_file(init, stack):
    """A path for `init`: a path as given, or a torch module / state dict written with torch.save."""
    if init is None or init == "":
        return ""
    if isinstance(init, (str, os.PathLike)):
        return os.fspath(init)
    import torch  # only for modules and state dicts
    state = init.state_dict() if hasattr(init, "state_dict") else init
    handle = tempfile.NamedTemporaryFile(suffix=".pt", delete=False)
    handle.close()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, handle.name)
    stack.append(handle.name)
    return handle.name


class Prediction:
    """Predictive distribution: `probs` [N, C] for classification; `mean`, `var` [N] for regression;
    `sample_probs` / `sample_mean`, `sample_var` per weight sample where the method samples."""

    def __init__(self, d):
        self.task = d["task"]
        for key in ("probs", "sample_probs", "mean", "var", "sample_mean", "sample_var"):
            setattr(self, key, d[key])

    def __repr__(self):
        if self.task == "classification":
            return f"Prediction(classification, probs {self.probs.shape})"
        return f"Prediction(regression, mean/var {self.mean.shape})"


class Decisions:
    """Bayes actions: `action` (indices into `action_names`) for classification; `value`, or
    `lower` and `upper` for an interval, for regression; `expected_cost` under the predictive, and
    `realized_cost` where the truth was given."""

    def __init__(self, d):
        for key in ("action", "action_names", "value", "lower", "upper", "expected_cost", "realized_cost"):
            setattr(self, key, d[key])

    @property
    def names(self):
        """The chosen actions by name (classification)."""
        return None if self.action is None else [self.action_names[a] for a in self.action]

    def __repr__(self):
        n = len(self.expected_cost)
        return f"Decisions({n} inputs, mean expected cost {float(np.mean(self.expected_cost)):.4f})"


def _costs_json(costs):
    if isinstance(costs, dict):
        return json.dumps(costs)
    if isinstance(costs, (str, os.PathLike)):
        with open(os.fspath(costs)) as f:
            return f.read()
    raise InvalidArgument("costs must be a dict or the path of a JSON cost file (see docs/decisions.md)")


class Posterior:
    """A fitted model: network, likelihood, standardization and posterior."""

    def __init__(self, fitted, training=None):
        self._fitted = fitted
        self._training = training  # the arrays fit() used, for bound() when the prior saw some rows

    @property
    def method(self):
        return self._fitted.method

    @property
    def model(self):
        return self._fitted.model

    @property
    def info(self):
        return json.loads(self._fitted.info)

    def state_dict(self):
        """The fitted weights by parameter name (MAP, Laplace's mode, a Gaussian's mean), the full
        network's: frozen tensors included and adapters folded into their layers. Torch tensors
        when torch is installed, else NumPy arrays."""
        import collections
        items = self._fitted.state_dict()
        try:
            import torch
            return collections.OrderedDict((k, torch.from_numpy(v)) for k, v in items)
        except ImportError:
            return collections.OrderedDict(items)

    def to_module(self, module):
        """Writes the fitted weights into `module` (the one the model was converted from, or one
        with the same parameter names) and returns it; BatchNorm layers get their scale and shift
        back from the folded form, their running statistics unchanged."""
        import torch
        state = self.state_dict()
        with torch.no_grad():
            for name, m in module.named_modules():
                if isinstance(m, torch.nn.BatchNorm2d) and f"{name}.weight" in state:
                    std = torch.sqrt(m.running_var + m.eps)
                    w, b = state[f"{name}.weight"].to(std.dtype), state[f"{name}.bias"].to(std.dtype)
                    state[f"{name}.weight"] = w * std
                    state[f"{name}.bias"] = b + m.running_mean * w
                if isinstance(m, torch.nn.MultiheadAttention) and f"{name}.in_proj.weight" in state:
                    state[f"{name}.in_proj_weight"] = state.pop(f"{name}.in_proj.weight")
                    state[f"{name}.in_proj_bias"] = state.pop(f"{name}.in_proj.bias")
            params = dict(module.named_parameters())
            unknown = [k for k in state if k not in params]
            missing = [k for k in params if k not in state]
            if unknown or missing:
                raise InvalidArgument(f"the fitted weights do not fit this module (not in the module: {unknown}; "
                                      f"not fitted: {missing})")
            for k, v in state.items():
                params[k].copy_(v.to(params[k].dtype).reshape(params[k].shape))
        return module

    def predict(self, x, samples=32, seed=0):
        return Prediction(self._fitted.predict(_as_numpy(x, "x"), samples, seed))

    def metrics(self, x, y, samples=32):
        """accuracy, nll, ece, brier (classification) or rmse, nll, coverage (regression) on (x, y)."""
        return dict(_credence.metrics(self._fitted, _as_numpy(x, "x"), _as_numpy(y, "y"), samples))

    def decide(self, x, costs, samples=32, seed=0, y=None):
        """The Bayes action for each row of `x` under `costs` (a dict or a JSON cost file, as for
        `credence decide`); with the truth `y`, also each decision's realized cost."""
        y = None if y is None else _as_numpy(y, "y")
        return Decisions(_credence.decide(self._fitted, _as_numpy(x, "x"), _costs_json(costs), samples, seed, y))

    def bound(self, x=None, y=None, *, delta=0.025, delta_mc=0.01, networks=10000, pmin=None, seed=0):
        """A PAC-Bayes certificate of a "pacbayes" posterior: with probability >= 1 - delta -
        delta_mc, the stochastic network's expected 0-1 error is at most `error_bound` (and its
        bounded cross-entropy at most `ce_bound`). Without data it certifies on the training rows
        the prior never saw (the posterior fit() returned); with (x, y), on those rows, which a
        prior learned from the training data rules out."""
        if self.method.split(":")[0] != "pacbayes":
            raise InvalidArgument(f"a certificate needs a posterior that records its prior; this one is "
                                  f"'{self.method}': fit with method \"pacbayes\"")
        training = x is None and y is None
        if training:
            if self._training is None:
                raise InvalidArgument("bound() without data needs the posterior that fit() returned (it keeps the "
                                      "training arrays); pass x and y, or use `credence bound` on the file")
            x, y = self._training
        elif x is None or y is None:
            raise InvalidArgument("bound() takes both x and y, or neither")
        text = _credence.certify(self._fitted, _as_numpy(x, "x"), _as_numpy(y, "y"), training, delta, delta_mc,
                                 int(networks), 0.0 if pmin is None else float(pmin), int(seed))
        return json.loads(text)

    def save(self, path, overwrite=False):
        """Writes a file the command line reads too; refuses to replace one unless overwrite."""
        self._fitted.save(os.fspath(path), overwrite)

    def __repr__(self):
        return f"Posterior(method={self.method!r}, model={self.model!r})"


def _task(y, num_classes):
    if num_classes is not None:
        return int(num_classes)
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return int(y.max()) + 1 if y.size else 0
    return 0


def _torchscript(module, x, reason):
    """A module credence cannot convert, as a TorchScript file in the user's cache (named by its
    content, so refitting reuses it and saved posteriors keep finding it): "torchscript:PATH"."""
    import hashlib
    import io

    import torch
    try:
        scripted = torch.jit.script(module)
    except Exception:
        try:
            scripted = torch.jit.trace(module, torch.from_numpy(np.ascontiguousarray(x[:2])))
        except Exception as e:
            raise NotSupported(f"the module can neither be converted ({reason}) nor exported as TorchScript "
                               f"({type(e).__name__}: {e})") from None
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    content = buffer.getvalue()
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "credence", "torchscript")
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, hashlib.sha256(content).hexdigest()[:20] + ".pt")
    if not os.path.exists(path):
        partial = path + f".{os.getpid()}.part"
        with open(partial, "wb") as f:
            f.write(content)
        os.replace(partial, path)
    return "torchscript:" + path


def fit(model, data, method="map", *, likelihood="", epochs=20, lr=0.0, batch_size=128, prior_precision="auto",
        seed=0, dtype="float32", init=None, freeze="", adapters="", num_classes=None, quiet=False, validation=None,
        early_stop=0, tune=False, _map=None, **options):
    """Fits `method` (any `credence describe` name; its options as keywords) to `data`.

    model: a --model spec ("mlp:50", "cnn:lenet", "resnet:8", ...), or a torch.nn.Module built from
    convolutions, linear layers, GroupNorm/LayerNorm, ReLU/GELU, pooling and residual additions
    (converted by torch.fx; its own weights are the starting point). init: pretrained weights, as
    a credence file, a torch.save state-dict file, a state dict or a torch module whose parameter
    names match the spec's (or come in the same order); with epochs=0 they are the MAP as they
    are (post-hoc methods such as "laplace" then add uncertainty to a network trained elsewhere).
    adapters: low-rank adapters on the frozen backbone `init`, e.g. "lora:rank=4,alpha=8".
    prior_precision: the prior over the weights, as --prior: "auto", "gaussian:PRECISION" (or a
    number), the path of a prior learned by meta_fit(), or "gp:KERNEL?..." (a prior over functions,
    for vi). (A method's own `prior=` option, e.g. laplace's, is a method option as any other.)
    A module with layers credence cannot convert runs as TorchScript (saved in ~/.cache/credence), for
    the methods that need only a forward pass and autograd; the others say so. Progress shows on a
    terminal unless quiet. Integer labels make a classification task, floating targets a regression.
    validation: held-out (x, y) arrays; with early_stop=K, training ends after K epochs without a
    better validation NLL and keeps its best epoch (`info["early_stopping"]` has the curve); with
    tune=True the step size, weight decay and the method's key options are chosen on it first
    (`info["tuned"]`, `info["tuning"]`).
    """
    x, y = _arrays(data)
    arch = ""
    unconverted = None  # why a module went through TorchScript instead of credence's layers
    if not isinstance(model, str):
        if not hasattr(model, "state_dict"):
            raise NotSupported("model must be a --model spec string (see credence.describe()) or a torch.nn.Module")
        from .convert import architecture, weights
        try:
            arch = architecture(model, x.shape[1:])
            init = weights(model) if init is None else init
            model = type(model).__name__
        except NotSupported as e:
            unconverted = str(e)
            model = _torchscript(model, x, unconverted)
    classes = _task(y, num_classes)
    temporaries = []
    try:
        fitted = _credence.fit(x, y, classes, model, _method_spec(method, options), likelihood, int(epochs), float(lr),
                               int(batch_size), str(prior_precision), int(seed), dtype,
                               _init_file(init, temporaries), freeze, adapters, arch, _map, quiet,
                               *(_arrays(validation) if validation is not None else (None, None)), int(early_stop),
                               bool(tune))
    except NotSupported as e:
        if unconverted is None:
            raise
        raise NotSupported(f"{e}; the module runs as TorchScript, which offers only a forward pass, because it "
                           f"could not be converted to credence's layers: {unconverted}") from None
    finally:
        for path in temporaries:
            os.unlink(path)
    # A "pacbayes" posterior keeps the training arrays, so that bound() can certify on its rows.
    return Posterior(fitted, training=(x, y) if fitted.method.split(":")[0] == "pacbayes" else None)


def meta_fit(tasks, model, out, *, likelihood="", hessian="auto", variance="tensor", zero_mean=False, rounds=60,
             steps=50, seed=0, force=False, quiet=True):
    """Learns a Gaussian prior over `model`'s weights from related tasks and writes it to `out`
    (use it as fit(..., prior_precision=out)). tasks: a task-family spec ("synthetic:sinusoid?tasks=20&points=5",
    "csv:PATH?target=Y&group=COLUMN") or a list of (x, y) array pairs, one per task. Returns the
    summed log evidence per round, the learned noise level (standardized units) and the task count."""
    if not isinstance(tasks, str):
        tasks = [(_as_numpy(x, "x").astype(np.float64), _as_numpy(y, "y").astype(np.float64)) for x, y in tasks]
    return _credence.meta_fit(tasks, model, os.fspath(out), likelihood, hessian, variance, bool(zero_mean),
                              int(rounds), int(steps), int(seed), bool(force), bool(quiet))


def load(path):
    """A posterior file written by Posterior.save or by the command line."""
    return Posterior(_credence.load(os.fspath(path)))


class Rows(list):
    """compare()'s results: one dict per method; .to_pandas() when pandas is installed."""

    def to_pandas(self):
        import pandas
        return pandas.DataFrame(self)

    def _columns(self):
        keys = ["method"]
        for row in self:
            keys += [k for k in row if k not in keys]
        return keys

    def __repr__(self):
        keys = self._columns()
        def cell(v):
            return f"{v:.4f}" if isinstance(v, float) else str(v)
        width = {k: max(len(k), *(len(cell(r.get(k, ""))) for r in self)) for k in keys}
        lines = ["  ".join(k.ljust(width[k]) for k in keys)]
        lines += ["  ".join(cell(r.get(k, "")).ljust(width[k]) for k in keys) for r in self]
        return "\n".join(lines)

    def _repr_html_(self):
        keys = self._columns()
        head = "".join(f"<th>{k}</th>" for k in keys)
        body = "".join("<tr>" + "".join(f"<td>{r.get(k, '')}</td>" for k in keys) + "</tr>" for r in self)
        return f"<table><tr>{head}</tr>{body}</table>"


def compare(model, train, test, methods, *, report=None, force=False, samples=32, **training):
    """Fits each method (MAP once, shared by the post-hoc ones), measures it on `test` and ranks the
    rows by NLL (`rank`; `rows.ranking` holds the command line's ranking lines, the last one the
    recommendation). report: a directory for the same HTML page as `credence compare --report`
    (not replaced unless force)."""
    x_test, y_test = _arrays(test)
    if report is not None:
        try:
            _credence.check_report_dir(os.fspath(report), force)
        except IoError as e:
            raise IoError(str(e).replace("pass --force", "pass force=True")) from None
    rows, fitted = Rows(), []
    base = fit(model, train, "map", **training)
    for method in methods:
        name = method.split(":")[0]
        info = next((m for m in _credence.methods() if m["name"] == name), None)
        if info is None:
            raise InvalidArgument(f"unknown method '{name}' (known: {', '.join(m['name'] for m in _credence.methods())})")
        post = base if method == "map" else fit(model, train, method, _map=base._fitted if info["post_hoc"] else None,
                                                **training)
        row = {"method": method}
        row.update(post.metrics(x_test, y_test, samples))
        row["fit_seconds"] = post.info.get("fit_seconds", float("nan"))
        if "tuned" in post.info:
            row["tuned"] = post.info["tuned"]
        rows.append(row)
        fitted.append(post._fitted)
    facts = [("training data", f"arrays ({base.info['n_fit']} rows)"), ("test data", f"arrays ({len(x_test)} rows)"),
             ("model", model if isinstance(model, str) else type(model).__name__)]
    ranked, lines = _credence.rank_and_report(json.dumps(rows), fitted, x_test, y_test,
                                              "" if report is None else os.fspath(report), facts, samples)
    rows = Rows(json.loads(ranked))
    rows.ranking = lines
    return rows


def decide(posterior, x, costs, samples=32, seed=0, y=None):
    """Bayes actions of `posterior` on `x` under `costs`: Posterior.decide."""
    return posterior.decide(x, costs, samples=samples, seed=seed, y=y)


def load_data(spec, dtype="float32"):
    """(X, y) NumPy arrays from a --data spec, e.g. "fmnist:train?n=10000" or "uci:boston"."""
    d = _credence.load_data(spec, dtype)
    return d["x"], d["y"]


def describe():
    """Methods with their options, and model families."""
    return {"methods": _credence.methods(), "models": _credence.models()}


from .sequential import BayesOpt, select_queries  # noqa: E402  (uses the helpers above)
