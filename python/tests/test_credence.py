"""The Python package: fits and predictions, the same answers as the command line, files shared
with it, and clear exceptions for bad input."""
import os
import subprocess

import numpy as np
import pytest

import credence


def sine(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, size=(n, 1))
    return x, np.sin(x[:, 0]) + 0.1 * rng.standard_normal(n)


def blobs(n, seed, classes=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.standard_normal((n, 2)) * 0.5 + np.stack([np.cos(2 * y), np.sin(2 * y)], 1) * 2
    return x, y


def write_csv(path, x, y):
    """Two features and a label per row, written exactly (repr), for the command line's csv: data."""
    with open(path, "w") as f:
        f.write("a,b,y\n")
        for row, label in zip(x, y):
            f.write(f"{row[0]!r},{row[1]!r},{label}\n")
    return path


def module_probs(net, x):
    """A PyTorch classifier's probabilities on NumPy inputs."""
    import torch
    with torch.no_grad():
        return torch.softmax(net(torch.tensor(x)), 1).numpy()


def test_regression_map_then_laplace_gives_a_finite_predictive():
    x, y = sine(80, 0)
    post = credence.fit("mlp:16", (x, y), "laplace", epochs=300, lr=0.01, hessian="full", subset="all")
    assert post.method == "laplace:hessian=full,subset=all"
    pred = post.predict(x[:10])
    assert pred.task == "regression"
    assert pred.mean.shape == (10,) and pred.var.shape == (10,)
    assert np.all(np.isfinite(pred.mean)) and np.all(pred.var > 0)
    m = post.metrics(x, y)
    assert m["rmse"] < 0.5  # a sine learned from 80 points


def test_classification_probabilities_sum_to_one_for_every_method_kind():
    x, y = blobs(90, 1)
    for method, options in [("map", {}), ("ensemble", {"members": 2}), ("mcdropout", {}), ("laplace", {})]:
        post = credence.fit("mlp:8", (x, y), method, epochs=5, **options)
        pred = post.predict(x[:7], samples=4)
        assert pred.probs.shape == (7, 3)
        np.testing.assert_allclose(pred.probs.sum(1), 1.0, atol=1e-5)


def test_the_same_fit_as_the_command_line(tmp_path):
    """One seed, data and float64: the Python route and `credence fit` give identical predictions."""
    cli = os.environ.get("CREDENCE_CLI")
    if not cli:
        pytest.skip("CREDENCE_CLI is not set (ctest sets it)")
    x, y = blobs(60, 2)
    csv = write_csv(tmp_path / "blobs.csv", x, y)
    out = tmp_path / "cli.crd"
    subprocess.run([cli, "fit", "--data", f"csv:{csv}?target=y&task=classification", "--model", "mlp:8",
                    "--method", "laplace:hessian=diag", "--epochs", "4", "--dtype", "float64", "--seed", "3",
                    "--out", str(out), "-q"], check=True)
    py = credence.fit("mlp:8", (x, y), "laplace", hessian="diag", epochs=4, dtype="float64", seed=3)
    from_cli = credence.load(out)
    np.testing.assert_array_equal(from_cli.predict(x).probs, py.predict(x).probs)


QUICK = {"nuts": "warmup=5,draws=4,chains=2,max_depth=4", "hmc": "warmup=5,draws=4,chains=2",
         "ess": "warmup=5,draws=4,chains=2", "ensemble": "members=2",
         "multiswag": "members=2", "svgd": "members=2", "repulsive": "members=2", "sgld": "samples=2",
         "sghmc": "samples=2", "psgld": "samples=2", "csgmcmc": "cycles=1,exploration=0.5,samples_per_cycle=2"}


def test_every_method_fits_as_the_command_line_does(tmp_path):
    """Every classification method: Python and `credence fit` give the same predictions (float64)."""
    cli = os.environ.get("CREDENCE_CLI")
    if not cli:
        pytest.skip("CREDENCE_CLI is not set (ctest sets it)")
    x, y = blobs(40, 3)
    csv = write_csv(tmp_path / "blobs.csv", x, y)
    names = [m["name"] for m in credence.describe()["methods"] if m["name"] != "gp"]  # gp: regression only
    assert len(names) >= 17
    for name in names:
        spec = f"{name}:{QUICK[name]}" if name in QUICK else name
        out = tmp_path / f"{name}.crd"
        subprocess.run([cli, "fit", "--data", f"csv:{csv}?target=y&task=classification", "--model", "mlp:4",
                        "--method", spec, "--epochs", "3", "--batch-size", "16", "--dtype", "float64", "--seed", "1",
                        "--out", str(out), "-q"], check=True)
        options = dict(kv.split("=") for kv in QUICK.get(name, "").split(",") if kv)
        py = credence.fit("mlp:4", (x, y), name, epochs=3, batch_size=16, dtype="float64", seed=1, **options)
        np.testing.assert_allclose(credence.load(out).predict(x, samples=8).probs, py.predict(x, samples=8).probs,
                                   rtol=0, atol=1e-12, err_msg=name)


def test_files_round_trip_and_are_not_overwritten(tmp_path):
    x, y = sine(50, 3)
    post = credence.fit("mlp:8", (x, y), "swag", epochs=6, dtype="float64")
    path = tmp_path / "swag.crd"
    post.save(path)
    again = credence.load(path)
    a, b = post.predict(x, samples=5, seed=1), again.predict(x, samples=5, seed=1)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.var, b.var)
    with pytest.raises(credence.IoError, match="exists"):
        post.save(path)
    post.save(path, overwrite=True)


def test_bad_input_raises_clear_exceptions():
    x, y = blobs(30, 4)
    with pytest.raises(ValueError, match="unknown method 'nosuch'"):
        credence.fit("mlp:8", (x, y), "nosuch")
    with pytest.raises(credence.InvalidArgument, match="bogus"):
        credence.fit("mlp:8", (x, y), "laplace", bogus=1)
    with pytest.raises(credence.InvalidArgument, match="rows of X"):
        credence.fit("mlp:8", (x, y[:-1]), "map")
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(credence.DataError, match="NaN"):
        credence.fit("mlp:8", (bad, y), "map")
    with pytest.raises(credence.DataError, match="labels"):
        credence.fit("mlp:8", (x, y), "map", num_classes=2)
    with pytest.raises(credence.InvalidArgument, match="model"):
        credence.fit("resnet:10", (x, y), "map")
    with pytest.raises(credence.DataError, match="no batches"):
        credence.fit("mlp:8", [], "map")
    with pytest.raises(credence.NotSupported, match="spec"):
        credence.fit(object(), (x, y), "map")
    with pytest.raises(credence.IoError):
        credence.load("/nonexistent/file.crd")


def test_a_loader_of_batches_equals_the_arrays():
    x, y = blobs(40, 5)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 40, 16)]
    a = credence.fit("mlp:8", batches, "map", epochs=3, dtype="float64").predict(x).probs
    b = credence.fit("mlp:8", (x, y), "map", epochs=3, dtype="float64").predict(x).probs
    np.testing.assert_array_equal(a, b)


def test_compare_returns_rows_and_describe_lists_methods_and_models(tmp_path):
    x, y = blobs(80, 6)
    xt, yt = blobs(40, 7)
    report = tmp_path / "report"
    rows = credence.compare("mlp:8", (x, y), (xt, yt), ["map", "laplace"], epochs=4, report=report)
    assert [r["method"] for r in rows] == ["map", "laplace"]
    assert all(0 <= r["accuracy"] <= 1 and np.isfinite(r["nll"]) for r in rows)
    assert "accuracy" in repr(rows) and "<table>" in rows._repr_html_()
    best = min(rows, key=lambda r: r["nll"])
    assert best["rank"] == 1 and rows.ranking[-1].startswith(f"recommended: {best['method']}")
    page = (report / "index.html").read_text()
    assert "laplace" in page and (report / "reliability.svg").exists()
    with pytest.raises(credence.IoError, match="force=True"):  # a report is never overwritten unasked
        credence.compare("mlp:8", (x, y), (xt, yt), ["map"], epochs=1, report=report)
    d = credence.describe()
    assert {"map", "laplace", "ivon"} <= {m["name"] for m in d["methods"]}
    assert {"mlp", "resnet", "transformer"} <= {m["name"] for m in d["models"]}


def test_a_trained_torch_module_is_the_map_for_post_hoc_laplace(tmp_path):
    torch = pytest.importorskip("torch")
    x, y = blobs(60, 8)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double()
    # credence standardizes tabular inputs (population std); train on inputs already standardized,
    # so that the module and credence see the same numbers.
    xs = (x - x.mean(0)) / x.std(0)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    xt, yt = torch.tensor(xs), torch.tensor(y)
    for _ in range(50):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    post = credence.fit("mlp:8", (xs, y), "map", init=net, epochs=0, dtype="float64")
    expected = module_probs(net, xs)
    # Standardizing xs again changes it only by rounding.
    np.testing.assert_allclose(post.predict(xs).probs, expected, atol=1e-6)
    lap = credence.fit("mlp:8", (xs, y), "laplace", init=net, epochs=0, dtype="float64")
    assert lap.predict(xs).probs.shape == (60, 3)
    # The module itself (converted) gives what `credence fit --init` gives from its saved weights.
    cli = os.environ.get("CREDENCE_CLI")
    if not cli:
        return
    weights, csv, out = tmp_path / "net.pt", tmp_path / "xs.csv", tmp_path / "cli.crd"
    torch.save(net.state_dict(), weights)
    write_csv(csv, xs, y)
    subprocess.run([cli, "fit", "--data", f"csv:{csv}?target=y&task=classification", "--model", "mlp:8",
                    "--init", str(weights), "--method", "laplace", "--epochs", "0", "--dtype", "float64",
                    "--out", str(out), "-q"], check=True)
    from_module = credence.fit(net, (xs, y), "laplace", epochs=0, dtype="float64")
    np.testing.assert_allclose(from_module.predict(xs).probs, credence.load(out).predict(xs).probs, atol=1e-10)


def test_adapters_on_a_saved_backbone_start_as_it_and_then_learn(tmp_path):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=60)
    x = (rng.standard_normal((60, 1, 8, 8)) + y[:, None, None, None]).astype(np.float32)
    backbone = credence.fit("resnet:8?width=4&groups=2", (x, y), "map", epochs=2, batch_size=16)
    path = tmp_path / "backbone.crd"
    backbone.save(path)
    start = credence.fit("resnet:8?width=4&groups=2", (x, y), "map", epochs=0, init=path,
                         adapters="lora:rank=2,head=frozen")
    np.testing.assert_array_equal(start.predict(x).probs, backbone.predict(x).probs)
    adapted = credence.fit("resnet:8?width=4&groups=2", (x, y), "laplace", epochs=3, batch_size=16, init=path,
                           adapters="lora:rank=2", subset="all", hessian="kron")
    assert adapted.info["adapters"] == "lora:rank=2"
    # rank 2: A [2, in, k, k] and B [out, 2, 1, 1] on all nine convolutions (1,002), and the head (51)
    assert adapted.info["trainable_parameters"] == 1053
    probs = adapted.predict(x).probs
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


def expect_pytorch_gradients(net, x, y):
    """One full-batch SGD step of credence's MAP on the converted module equals PyTorch's gradient of
    the mean cross-entropy (float64), parameter by parameter."""
    import torch
    lr = 0.1
    step = credence.fit(net, (x, y), "map", epochs=1, batch_size=len(x), lr=lr, optimizer="sgd",
                        prior_precision=1e-12, dtype="float64")
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(torch.tensor(x)), torch.tensor(y)).backward()
    after = step.state_dict()
    for name, p in net.named_parameters():
        key = name.replace("in_proj_weight", "in_proj.weight").replace("in_proj_bias", "in_proj.bias")
        moved = (p.detach() - after[key].reshape(p.shape)) / lr
        np.testing.assert_allclose(moved.numpy(), p.grad.numpy(), rtol=1e-7, atol=1e-10, err_msg=name)


def test_a_torch_module_with_skip_connections_is_converted_with_its_weights(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.norm1, self.conv1 = nn.GroupNorm(2, cin), nn.Conv2d(cin, cout, 3, stride, 1)
            self.norm2, self.conv2 = nn.GroupNorm(2, cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            h = self.conv1(torch.relu(self.norm1(x)))
            return self.shortcut(x) + self.conv2(nn.functional.gelu(self.norm2(h)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.blocks = nn.Sequential(Block(4, 4, 1), Block(4, 8, 2))
            self.pool, self.flat = nn.AdaptiveAvgPool2d(1), nn.Flatten()
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.flat(self.pool(self.blocks(self.stem(x)))))

    torch.manual_seed(0)
    net = Net().double()
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, size=40)
    x = rng.standard_normal((40, 1, 8, 8)) + y[:, None, None, None]
    post = credence.fit(net, (x, y), "map", epochs=0, dtype="float64")
    expect_pytorch_gradients(net, x, y)
    expected = module_probs(net, x)
    np.testing.assert_allclose(post.predict(x).probs, expected, atol=1e-10)
    lap = credence.fit(net, (x, y), "laplace", epochs=2, batch_size=8, dtype="float64", subset="all")
    lap.save(tmp_path / "net.crd")
    np.testing.assert_array_equal(credence.load(tmp_path / "net.crd").predict(x).probs, lap.predict(x).probs)
    # A layer credence lacks: the module runs as TorchScript for the methods that need only a forward
    # pass, and the others name both what they miss and the layer that stopped the conversion.
    other = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(72, 3)).double()
    as_script = credence.fit(other, (x, y), "map", epochs=0, dtype="float64")
    assert as_script.model.startswith("torchscript:")
    np.testing.assert_allclose(as_script.predict(x).probs, module_probs(other, x), atol=1e-10)
    with pytest.raises(credence.NotSupported, match="Sigmoid"):
        credence.fit(other, (x, y), "mcdropout", epochs=1, dtype="float64")


def test_a_torchvision_style_network_with_batch_norm_and_max_pooling_keeps_its_predictions():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Net(nn.Module):  # a ResNet stem and a basic block, BatchNorm after each convolution
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4)
            self.maxpool = nn.MaxPool2d(2, 2)
            self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            x = torch.relu(x + self.bn2(self.conv2(x)))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(1)
    net = Net().double()
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, size=30)
    x = rng.standard_normal((30, 1, 8, 8)) + y[:, None, None, None]
    net.train()
    with torch.no_grad():  # running statistics away from 0 and 1
        for _ in range(5):
            net(torch.tensor(x) * 3 + 1)
    net.eval()
    post = credence.fit(net, (x, y), "map", epochs=0, dtype="float64")
    expected = module_probs(net, x)
    np.testing.assert_allclose(post.predict(x).probs, expected, atol=1e-10)
    assert credence.fit(net, (x, y), "laplace", epochs=1, dtype="float64", subset="all").predict(x).probs.shape == (30, 3)
    # Trained weights go back into the module, BatchNorm unfolded: it then predicts as the fit.
    trained = credence.fit(net, (x, y), "map", epochs=3, batch_size=10, dtype="float64")
    trained.to_module(net)
    np.testing.assert_allclose(module_probs(net, x), trained.predict(x).probs, atol=1e-10)


def test_adapted_weights_fold_into_the_backbones_state_dict():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, size=48)
    x = rng.standard_normal((48, 1, 8, 8)) + y[:, None, None, None]
    spec = "resnet:8?width=4&groups=2"
    backbone = credence.fit(spec, (x, y), "map", epochs=2, batch_size=16, dtype="float64")
    adapted = credence.fit(spec, (x, y), "map", epochs=3, batch_size=16, dtype="float64",
                           init=backbone.state_dict(), adapters="lora:rank=2,alpha=3")
    state = adapted.state_dict()
    assert list(state) == list(backbone.state_dict())  # the backbone's names, no adapter factors
    merged = credence.fit(spec, (x, y), "map", epochs=0, dtype="float64", init=state)
    np.testing.assert_allclose(merged.predict(x).probs, adapted.predict(x).probs, atol=1e-10)
    with pytest.raises(credence.InvalidArgument, match="weight vectors"):
        credence.fit(spec, (x, y), "ensemble", epochs=1, members=2).state_dict()


def test_ctrl_c_stops_a_long_fit(tmp_path):
    import signal
    import sys
    import time
    script = tmp_path / "long_fit.py"
    script.write_text(
        "import numpy as np, credence\n"
        "x = np.random.default_rng(0).standard_normal((4000, 20))\n"
        "y = (x[:, 0] > 0).astype(np.int64)\n"
        "print('started', flush=True)\n"
        "credence.fit('mlp:64,64', (x, y), 'map', epochs=100000)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    assert proc.stdout.readline().strip() == "started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the fit went on after Ctrl-C")
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err


def test_bayesopt_ask_tell_resumes_and_improves():
    def branin(x):
        a, b, c, r, s, t = 1, 5.1 / (4 * np.pi ** 2), 5 / np.pi, 6, 10, 1 / (8 * np.pi)
        return a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * np.cos(x[0]) + s

    def run(opt, n):
        while len(opt.values) < n:
            for x in opt.suggest():
                opt.observe(x, branin(x))
        return opt

    bounds = [(-5, 10), (0, 15)]
    straight = run(credence.BayesOpt(bounds, initial=5, seed=1), 20)
    half = run(credence.BayesOpt(bounds, initial=5, seed=1), 12)
    resumed = run(credence.BayesOpt.from_state(half.state()), 20)
    np.testing.assert_array_equal(resumed.points, straight.points)
    assert straight.best_value < 2.0  # random search's median best after 20 is about 3
    assert straight.suggest(3).shape == (3, 2)
    with pytest.raises(credence.InvalidArgument, match="outside the box"):
        straight.observe([20.0, 1.0], 1.0)


def test_select_queries_ranks_the_pool():
    X, y = credence.load_data("synthetic:moons?n=200&seed=3")
    post = credence.fit("mlp:16", (X[:30], y[:30]), "ensemble", members=3, epochs=30)
    picked = credence.select_queries(post, X[30:], "entropy", k=5)
    assert picked.shape == (5,) and len(set(picked.tolist())) == 5
    probs = post.predict(X[30:]).probs
    entropy = -(probs * np.log(np.clip(probs, 1e-300, None))).sum(1)
    assert entropy[picked].min() >= np.sort(entropy)[-5] - 1e-6


def test_decide_takes_the_least_expected_cost_action():
    x, y = blobs(120, 4)
    post = credence.fit("mlp:8", (x, y), "map", epochs=30, lr=0.01)
    costs = {"classes": 3, "error_cost": 10, "actions": [{"name": "refer", "cost": 1}]}
    d = credence.decide(post, x, costs, y=y)
    probs = post.predict(x).probs
    # expected cost of class a: 10 (1 - p_a); of referring: 1.
    expected = np.concatenate([10 * (1 - probs), np.ones((len(x), 1))], 1)
    np.testing.assert_array_equal(d.action, expected.argmin(1))
    np.testing.assert_allclose(d.expected_cost, expected.min(1), rtol=1e-5)
    assert d.action_names == ["0", "1", "2", "refer"] and d.names[0] == d.action_names[d.action[0]]
    truth_cost = np.where(d.action == 3, 1.0, np.where(d.action == y, 0.0, 10.0))
    np.testing.assert_allclose(d.realized_cost, truth_cost)
    xr, yr = sine(50, 5)
    reg = credence.fit("mlp:8", (xr, yr), "map", epochs=30, lr=0.01)
    p = credence.decide(reg, xr, {"type": "pinball", "under": 3, "over": 1})
    pred = reg.predict(xr)
    from statistics import NormalDist
    z = NormalDist().inv_cdf(0.75)  # the 3 / (3 + 1) quantile of the Gaussian predictive
    np.testing.assert_allclose(p.value, pred.mean + z * np.sqrt(pred.var), rtol=1e-4, atol=1e-5)
    with pytest.raises(credence.InvalidArgument):
        credence.decide(post, x, {"type": "squared"})  # a regression cost for a classifier


def test_bound_certifies_a_pacbayes_posterior_on_rows_its_prior_never_saw():
    x, y = blobs(300, 6)
    post = credence.fit("mlp:8", (x, y), "pacbayes", epochs=20, lr=0.01)
    c = post.bound(networks=300)
    assert c["n"] < 300  # the rows the prior was learned on are left out
    assert 0 <= c["error_estimate"] <= c["error_bound"] <= 1
    assert c["kl"] >= 0
    with pytest.raises(credence.InvalidArgument, match="prior was learned"):
        post.bound(x, y)  # other arrays could overlap the prior's rows
    with pytest.raises(credence.InvalidArgument, match="pacbayes"):
        credence.fit("mlp:8", (x, y), "map", epochs=2).bound(x, y)


def test_bound_on_given_rows_when_the_prior_saw_no_data():
    x, y = blobs(200, 7)
    post = credence.fit("mlp:8", (x, y), "pacbayes", epochs=10, lr=0.01, prior="init")
    xt, yt = blobs(150, 8)
    c = post.bound(xt, yt, networks=150)
    assert c["n"] == 150 and 0 <= c["error_bound"] <= 1


def test_inputs_are_read_in_place_and_left_as_they_were():
    x, y = blobs(100, 9)
    x = np.ascontiguousarray(x, dtype=np.float64)
    keep_x, keep_y = x.copy(), y.copy()
    x.flags.writeable = False  # shared with the C++ side, which must never write into it
    post = credence.fit("mlp:8", (x, y), "laplace", epochs=3, dtype="float64")
    pred = post.predict(x)
    np.testing.assert_array_equal(x, keep_x)
    np.testing.assert_array_equal(y, keep_y)
    del x
    import gc
    gc.collect()
    assert np.all(np.isfinite(post.predict(keep_x).probs)) and pred.probs.shape == (100, 3)


def test_a_module_with_self_attention_over_patches_keeps_its_predictions_and_weights():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Vit(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(1, 8, 4, stride=4)
            self.norm1, self.attn = nn.LayerNorm(8), nn.MultiheadAttention(8, 2, batch_first=True)
            self.norm2, self.mlp = nn.LayerNorm(8), nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            h = self.norm1(t)
            t = t + self.attn(h, h, h)[0]
            t = t + self.mlp(self.norm2(t))
            return self.head(t.mean(1))

    torch.manual_seed(1)
    net = Vit().double().eval()
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, size=30)
    x = rng.standard_normal((30, 1, 8, 8)) + y[:, None, None, None]
    post = credence.fit(net, (x, y), "map", epochs=0, dtype="float64")
    expect_pytorch_gradients(net, x, y)
    expected = module_probs(net, x)
    np.testing.assert_allclose(post.predict(x).probs, expected, atol=1e-10)
    trained = credence.fit(net, (x, y), "map", epochs=3, batch_size=10, dtype="float64")
    back = trained.to_module(Vit().double().eval())
    np.testing.assert_allclose(module_probs(back, x), trained.predict(x).probs, atol=1e-10)
    lap = credence.fit(net, (x, y), "laplace", epochs=0, dtype="float64", subset="all", hessian="diag")
    assert np.all(np.isfinite(lap.predict(x).probs))

    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch, self.attn = nn.Conv2d(1, 8, 4, stride=4), nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            return self.head(self.attn(t, t.flip(1), t)[0].mean(1))

    cross = Cross().double()
    assert credence.fit(cross, (x, y), "map", epochs=0, dtype="float64").model.startswith("torchscript:")
    with pytest.raises(credence.NotSupported, match="self-attention"):
        credence.fit(cross, (x, y), "laplace", epochs=0, dtype="float64")


def test_a_module_over_token_ids_keeps_its_predictions_gradients_and_weights():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.mix, self.head = nn.Embedding(9, 6), nn.Linear(6, 6), nn.Linear(6, 2)

        def forward(self, ids):
            return self.head(torch.nn.functional.gelu(self.mix(self.embed(ids))).mean(1))

    torch.manual_seed(2)
    net = Bag().double()
    rng = np.random.default_rng(7)
    x = rng.integers(0, 9, size=(40, 5))
    y = (x == 3).any(1).astype(np.int64)
    post = credence.fit(net, (x, y), "map", epochs=0, dtype="float64")
    np.testing.assert_allclose(post.predict(x).probs, module_probs(net, x), atol=1e-10)  # ids not standardized
    expect_pytorch_gradients(net, x, y)
    trained = credence.fit(net, (x, y), "map", epochs=3, batch_size=10, dtype="float64")
    assert trained.state_dict()["embed.weight"].shape == (9, 6)  # PyTorch's [vocab, dim]
    back = trained.to_module(Bag().double())
    np.testing.assert_allclose(module_probs(back, x), trained.predict(x).probs, atol=1e-10)
    lap = credence.fit(net, (x, y), "laplace", epochs=0, dtype="float64", subset="all")
    assert np.all(np.isfinite(lap.predict(x).probs))
    with pytest.raises(ValueError, match="vocab"):
        post.predict(np.full((2, 5), 9))


def test_early_stopping_keeps_the_best_epoch_on_the_validation_arrays():
    x, y = blobs(120, 3)
    xv, yv = blobs(60, 4)
    kw = dict(model="mlp:64,64", epochs=100, batch_size=8, lr=0.01, prior_precision="gaussian:1e-6", dtype="float64")
    stopped = credence.fit(data=(x, y), method="map", validation=(xv, yv), early_stop=3, **kw)
    report = stopped.info["early_stopping"]
    best = report["best_epoch"]
    assert report["epochs_run"] - best == 3 or report["epochs_run"] == 100
    assert min(report["val_nll"]) == report["val_nll"][best - 1]
    kw["epochs"] = best
    direct = credence.fit(data=(x, y), method="map", **kw)
    np.testing.assert_allclose(stopped.predict(xv).probs, direct.predict(xv).probs, atol=1e-12)
    with pytest.raises(ValueError, match="validation part"):
        credence.fit(data=(x, y), method="map", early_stop=3, **kw)


def test_tuned_compare_rows_carry_their_choices():
    x, y = blobs(150, 5)
    xt, yt = blobs(100, 6)
    xv, yv = blobs(50, 7)
    rows = credence.compare("mlp:8", (x, y), (xt, yt), ["map", "laplace"], epochs=10, validation=(xv, yv), tune=True)
    by_method = {r["method"]: r for r in rows}
    assert set(by_method["map"]["tuned"]) == {"lr", "weight_decay"}
    assert "map.lr" in by_method["laplace"]["tuned"] and "prior" in by_method["laplace"]["tuned"]


@pytest.mark.parametrize("script,args", [("post_hoc.py", ["--n", "300", "--epochs", "1"]),
                                         ("compare.py", ["--n", "300", "--epochs", "2"]),
                                         ("certify.py", ["--n", "400", "--epochs", "2", "--networks", "200"])])
def test_the_examples_run(script, args):
    pytest.importorskip("torch")
    try:
        credence.load_data("fmnist:test?n=10")
    except credence.Error as e:
        pytest.skip(f"Fashion-MNIST is not installed: {e}")
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "examples", "python", script)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(credence.__file__)))
    run = subprocess.run([os.sys.executable, path] + args, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip()


def test_meta_fit_learns_a_prior_that_fit_uses(tmp_path):
    rng = np.random.default_rng(0)
    tasks = []
    for _ in range(6):
        x = rng.uniform(-5, 5, size=(5, 1))
        tasks.append((x, 0.5 * x[:, 0] + np.sin(1.5 * x[:, 0] + rng.normal(0, 0.1)) + 5))
    out = tmp_path / "sites.prior"
    info = credence.meta_fit(tasks, "mlp:8", out, rounds=3)
    assert info["tasks"] == 6 and len(info["log_evidence"]) == 3
    with pytest.raises(credence.IoError, match="exists"):
        credence.meta_fit(tasks, "mlp:8", out, rounds=1)
    x, y = tasks[0]
    post = credence.fit("mlp:8", (x, y), "map", prior_precision=str(out), epochs=50, batch_size=5, quiet=True)
    assert post.info["prior_precision"] == f"file:{out}"
    with pytest.raises(credence.InvalidArgument, match="prior over the weights"):
        credence.fit("mlp:8", (x, y), "gp", prior_precision=str(out), quiet=True)
    vi = credence.fit("mlp:8", (x, y), "vi", prior_precision="gp:rbf?lengthscale=0.5&points=4", epochs=5,
                      batch_size=5, quiet=True)
    assert vi.info["report"]["prior"] == "gp:rbf?lengthscale=0.5&points=4"
