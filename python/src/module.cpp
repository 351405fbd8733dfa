// The Python module `credence._credence`: fit, predict, save and load over the C++ library, with
// arrays crossing as NumPy and credence's errors as Python exceptions. credence/__init__.py builds
// the user-facing API on top.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstring>

#include "credence/core/error.h"
#include "credence/core/files.h"
#include "credence/core/progress.h"
#include "credence/core/runtime.h"
#include "credence/credence.h"
#include "credence/eval/decision.h"
#include "credence/eval/calibration.h"
#include "credence/eval/metrics.h"
#include "credence/eval/selective.h"
#include "credence/fit/fit.h"
#include "credence/fit/meta.h"
#include "credence/methods/method.h"
#include "credence/model/network.h"
#include "credence/posterior/certified.h"
#include "credence/posterior/fitted.h"
#include "credence/sequential/active.h"
#include "credence/sequential/bayesopt.h"
#include "ranking.h"
#include "report.h"

namespace py = pybind11;
using namespace credence;

namespace {

// A NumPy array as a tensor: float64 arrays stay float64, other floats become float32, integers
// int64. A C-contiguous array already of that type is shared, not copied (the tensor keeps it
// alive; credence never writes into its inputs); anything else is converted into a new tensor.
torch::Tensor to_tensor(const py::array& array) {
  const auto kind = array.dtype().kind();
  std::vector<int64_t> shape(array.shape(), array.shape() + array.ndim());
  const bool contiguous = (array.flags() & py::array::c_style) != 0;
  auto share = [&](at::ScalarType type) {
    auto* owner = new py::object(array);  // released with the tensor, under the GIL
    return at::from_blob(const_cast<void*>(array.data()), shape,
                            [owner](void*) {
                              py::gil_scoped_acquire gil;
                              delete owner;
                            },
                            at::TensorOptions().dtype(type));
  };
  if (contiguous && kind == 'f' && array.itemsize() == 8) return share(at::kDouble);
  if (contiguous && kind == 'f' && array.itemsize() == 4) return share(at::kFloat);
  if (contiguous && kind == 'i' && array.itemsize() == 8) return share(at::kLong);
  auto copy_as = [&](auto tag, at::ScalarType type) {
    using T = decltype(tag);
    auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(array);
    if (!a) throw InvalidArgument("could not read the array as numbers");
    auto t = at::empty(shape, at::TensorOptions().dtype(type));
    std::memcpy(t.data_ptr(), a.data(), sizeof(T) * static_cast<size_t>(t.numel()));
    return t;
  };
  if (kind == 'i' || kind == 'u' || kind == 'b') return copy_as(int64_t{}, at::kLong);
  if (kind == 'f' && array.itemsize() == 8) return copy_as(double{}, at::kDouble);
  if (kind == 'f') return copy_as(float{}, at::kFloat);
  throw InvalidArgument(fmt::format("arrays must hold numbers; got NumPy kind '{}'", kind));
}

py::object to_numpy(const torch::Tensor& tensor) {
  if (!tensor.defined()) return py::none();
  auto t = tensor.detach().to(at::kCPU).contiguous();
  std::vector<py::ssize_t> shape(t.sizes().begin(), t.sizes().end());
  auto make = [&](auto tag) {
    using T = decltype(tag);
    py::array_t<T> out(shape);
    std::memcpy(out.mutable_data(), t.data_ptr(), sizeof(T) * static_cast<size_t>(t.numel()));
    return py::object(out);
  };
  if (t.scalar_type() == at::kDouble) return make(double{});
  if (t.scalar_type() == at::kLong) return make(int64_t{});
  return make(float{});
}

// Whether every value is finite, without a mask as large as the data: the extremes are finite
// exactly then (min and max propagate NaN).
bool all_finite(const torch::Tensor& t) {
  if (t.numel() == 0) return true;
  auto [lo, hi] = at::aminmax(t);
  return std::isfinite(lo.item<double>()) && std::isfinite(hi.item<double>());
}

Dataset make_dataset(const py::array& x, const py::array& y, int64_t num_classes, torch::Dtype dtype) {
  Dataset d;
  d.x = to_tensor(x).to(dtype);
  d.y = to_tensor(y);
  if (d.x.dim() < 2) throw InvalidArgument(fmt::format("X must be [N, features] or [N, C, H, W]; got {} dims", d.x.dim()));
  if (d.y.dim() != 1 || d.y.size(0) != d.x.size(0))
    throw InvalidArgument(fmt::format("y must be [N] with N = {} (the rows of X); got shape [{}]", d.x.size(0),
                                      fmt::join(d.y.sizes(), ", ")));
  if (!all_finite(d.x)) throw DataError("X has NaN or infinite values; remove or impute them");
  if (num_classes > 0) {
    if (d.y.scalar_type() != at::kLong) throw DataError("classification labels must be integers 0..num_classes-1");
    if (d.y.numel() > 0 && (d.y.min().item<int64_t>() < 0 || d.y.max().item<int64_t>() >= num_classes))
      throw DataError(fmt::format("labels must lie in 0..{}; got {}..{}", num_classes - 1, d.y.min().item<int64_t>(),
                                  d.y.max().item<int64_t>()));
    d.task = Task::Classification;
    d.num_classes = num_classes;
  } else {
    d.y = d.y.to(dtype);
    if (!all_finite(d.y)) throw DataError("y has NaN or infinite values; remove them");
    d.task = Task::Regression;
  }
  d.standardize_inputs = d.x.dim() == 2;  // tabular inputs are standardized; images are not
  d.name = "arrays";
  return d;
}

// Inputs to predict on, with placeholder labels of the fitted task.
Dataset unlabeled(const FittedModel& f, const py::array& x) {
  Dataset d;
  d.x = to_tensor(x).to(f.model->dtype());
  d.task = f.num_classes > 0 ? Task::Classification : Task::Regression;
  d.num_classes = f.num_classes;
  d.y = d.task == Task::Classification ? at::zeros({d.x.size(0)}, at::kLong) : at::zeros({d.x.size(0)});
  return d;
}

py::dict predictive_dict(const Predictive& p) {
  py::dict out;
  out["task"] = p.task == Task::Classification ? "classification" : "regression";
  out["probs"] = to_numpy(p.probs);
  out["sample_probs"] = to_numpy(p.sample_probs);
  out["mean"] = to_numpy(p.mean);
  out["var"] = to_numpy(p.var);
  out["sample_mean"] = to_numpy(p.sample_mean);
  out["sample_var"] = to_numpy(p.sample_var);
  return out;
}

}  // namespace

PYBIND11_MODULE(_credence, m) {
  m.doc() = "credence's C++ core; use the `credence` package";
  tune_allocator();
  flush_denormals();  // process-wide, as torch.set_flush_denormal(True)
  set_threads(1);
  // Subclasses first, so that each error maps to its own Python type.
  static py::exception<Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception<InvalidArgument>(m, "InvalidArgument", PyExc_ValueError);
  py::register_exception<DataError>(m, "DataError", PyExc_ValueError);
  py::register_exception<NotSupported>(m, "NotSupported", error.ptr());
  py::register_exception<NumericalError>(m, "NumericalError", error.ptr());
  py::register_exception<IoError>(m, "IoError", PyExc_OSError);

  py::class_<FittedModel>(m, "Fitted")
      .def("predict",
           [](const FittedModel& f, const py::array& x, int64_t samples, uint64_t seed) {
             auto d = unlabeled(f, x);
             PredictOptions options;
             options.samples = samples;
             options.seed = seed;
             Predictive p;
             {
               py::gil_scoped_release release;
               p = f.predict(d, options);
             }
             return predictive_dict(p);
           },
           py::arg("x"), py::arg("samples") = 32, py::arg("seed") = 0)
      .def("save", &FittedModel::save, py::arg("path"), py::arg("overwrite") = false)
      .def_property_readonly("method", [](const FittedModel& f) { return f.method; })
      .def_property_readonly("model", [](const FittedModel& f) { return f.model->spec(); })
      .def_property_readonly("num_classes", [](const FittedModel& f) { return f.num_classes; })
      .def_property_readonly("info", [](const FittedModel& f) { return f.info.dump(); })
      .def("state_dict", [](const FittedModel& f) {
        py::list out;
        for (const auto& [name, w] : f.full_weights(f.point()))
          out.append(py::make_tuple(name, to_numpy(w.contiguous())));
        return out;
      });

  // Ctrl-C during a fit: progress updates (every training step) check Python's signals.
  set_interrupt_check([] {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  });

  m.def("load", [](const std::string& path) { return FittedModel::load(path); }, py::arg("path"));

  m.def(
      "fit",
      [](const py::array& x, const py::array& y, int64_t num_classes, const std::string& model,
         const std::string& method, const std::string& likelihood, int64_t epochs, double lr, int64_t batch_size,
         const std::string& prior, uint64_t seed, const std::string& dtype, const std::string& init,
         const std::string& freeze, const std::string& adapters, const std::string& architecture,
         const FittedModel* map, bool quiet, const py::object& val_x, const py::object& val_y, int64_t patience, bool tune) {
        FitRequest req;
        req.dtype = dtype == "float64" ? torch::kFloat64 : torch::kFloat32;
        if (dtype != "float64" && dtype != "float32")
          throw InvalidArgument(fmt::format("dtype must be float32 or float64, got '{}'", dtype));
        req.data.fit = make_dataset(x, y, num_classes, req.dtype);
        req.model = model;
        if (!architecture.empty())  // a network converted from a PyTorch module
          req.built_model = network_from_architecture(model, architecture, req.dtype, torch::kCPU);
        req.method = method;
        req.likelihood = likelihood;
        req.init = init;
        req.freeze = freeze;
        req.adapters = adapters;
        req.map = map;
        req.train.epochs = epochs;
        req.train.lr = lr;
        req.train.batch_size = batch_size;
        req.train.prior = prior;
        req.train.seed = seed;
        req.train.quiet = quiet;
        req.train.patience = patience;
        req.train.tune = tune;
        if (!val_x.is_none())
          req.data.val = make_dataset(val_x.cast<py::array>(), val_y.cast<py::array>(), num_classes, req.dtype);
        py::gil_scoped_release release;
        return fit(req);
      },
      py::arg("x"), py::arg("y"), py::arg("num_classes"), py::arg("model"), py::arg("method"),
      py::arg("likelihood") = "", py::arg("epochs") = 20, py::arg("lr") = 0.0, py::arg("batch_size") = 128,
      py::arg("prior_precision") = "auto", py::arg("seed") = 0, py::arg("dtype") = "float32", py::arg("init") = "",
      py::arg("freeze") = "", py::arg("adapters") = "", py::arg("architecture") = "", py::arg("map") = nullptr,
      py::arg("quiet") = true, py::arg("val_x") = py::none(), py::arg("val_y") = py::none(), py::arg("patience") = 0, py::arg("tune") = false);

  // A prior learned from related tasks: a task-family spec, or (x, y) array pairs, one per task.
  m.def(
      "meta_fit",
      [](const py::object& tasks, const std::string& model, const std::string& out, const std::string& likelihood,
         const std::string& hessian, const std::string& variance, bool zero_mean, int64_t rounds, int64_t steps,
         uint64_t seed, bool overwrite, bool quiet) {
        MetaFitRequest r;
        if (py::isinstance<py::str>(tasks)) {
          r.tasks = load_tasks(tasks.cast<std::string>());
        } else {
          r.tasks.name = "arrays";
          for (const auto& pair : tasks) {
            auto xy = pair.cast<py::tuple>();
            if (xy.size() != 2) throw InvalidArgument("meta_fit: each task must be an (x, y) pair of arrays");
            r.tasks.tasks.push_back(make_dataset(xy[0].cast<py::array>(), xy[1].cast<py::array>(), 0, torch::kFloat64));
          }
        }
        check_output_path(out, overwrite, "out");
        r.model = model;
        r.likelihood = likelihood;
        r.hessian = hessian;
        r.variance = variance;
        r.learn_mean = !zero_mean;
        r.rounds = rounds;
        r.steps = steps;
        r.seed = seed;
        r.quiet = quiet;
        MetaFitResult result;
        {
          py::gil_scoped_release release;
          result = meta_fit(r);
        }
        save_prior_file(out, result.prior, overwrite);
        py::dict info;
        info["log_evidence"] = result.log_evidence;
        info["sigma"] = result.sigma;
        info["tasks"] = r.tasks.tasks.size();
        return info;
      },
      py::arg("tasks"), py::arg("model"), py::arg("out"), py::arg("likelihood") = "", py::arg("hessian") = "auto",
      py::arg("variance") = "tensor", py::arg("zero_mean") = false, py::arg("rounds") = 60, py::arg("steps") = 50,
      py::arg("seed") = 0, py::arg("overwrite") = false, py::arg("quiet") = true);

  m.def(
      "metrics",
      [](const FittedModel& f, const py::array& x, const py::array& y, int64_t samples) {
        auto test = make_dataset(x, y, f.num_classes, f.model->dtype());
        PredictOptions options;
        options.samples = samples;
        py::gil_scoped_release release;
        return standard_metrics(f.predict(test, options), test.y);
      },
      py::arg("fitted"), py::arg("x"), py::arg("y"), py::arg("samples") = 32);

  m.def(
      "decide",
      [](const FittedModel& f, const py::array& x, const std::string& costs_json, int64_t samples, uint64_t seed,
         const py::object& y) {
        auto costs = parse_cost_spec(nlohmann::json::parse(costs_json));
        costs.check_model(f.num_classes > 0 ? Task::Classification : Task::Regression, f.num_classes);
        auto d = y.is_none() ? unlabeled(f, x) : make_dataset(x, y.cast<py::array>(), f.num_classes, f.model->dtype());
        PredictOptions options;
        options.samples = samples;
        options.seed = seed;
        Decisions decisions;
        torch::Tensor realized;
        {
          py::gil_scoped_release release;
          decisions = decide(f.predict(d, options).to(torch::kCPU), costs);
          if (!y.is_none()) realized = realized_cost(decisions, costs, d.y);
        }
        py::dict out;
        out["action"] = to_numpy(decisions.action);
        out["action_names"] = costs.action_names;
        out["value"] = to_numpy(decisions.value);
        out["lower"] = to_numpy(decisions.lower);
        out["upper"] = to_numpy(decisions.upper);
        out["expected_cost"] = to_numpy(decisions.expected_cost);
        out["realized_cost"] = to_numpy(realized);
        return out;
      },
      py::arg("fitted"), py::arg("x"), py::arg("costs"), py::arg("samples") = 32, py::arg("seed") = 0,
      py::arg("y") = py::none());

  // A PAC-Bayes certificate on (x, y). A prior learned on rows of the training data rules out
  // certifying on arrays the caller names (they may overlap those rows): then `training_rows`
  // must be the training arrays, and the prior's rows are left out of them.
  m.def(
      "certify",
      [](const FittedModel& f, const py::array& x, const py::array& y, bool training_rows, double delta,
         double delta_mc, int64_t networks, double pmin, uint64_t seed) {
        auto* p = dynamic_cast<const CertifiedGaussianPosterior*>(f.posterior.get());
        if (!p)
          throw InvalidArgument(fmt::format("a certificate needs a posterior that records its prior; this one is "
                                            "'{}' (method '{}'): fit with method \"pacbayes\"",
                                            f.posterior->kind(), f.method));
        auto data = make_dataset(x, y, f.num_classes, f.model->dtype());
        f.check_data(data);
        if (p->prior_rows().size(0) > 0 && !training_rows)
          throw InvalidArgument("the prior was learned on rows of the training data, so a certificate on other "
                                "arrays cannot rule out that the prior saw them; call bound() without data on the "
                                "posterior that fit() returned: it certifies on the training rows the prior never saw");
        data = p->unseen_rows(data, f.info.value("n_fit", int64_t{-1}));
        CertifyOptions o;
        o.delta = delta;
        o.delta_mc = delta_mc;
        o.networks = networks;
        o.pmin = pmin > 0 ? pmin : fitted_pmin(f.info);
        o.seed = seed;
        nlohmann::json j;
        {
          py::gil_scoped_release release;
          auto xs = f.standardizer.inputs(data.x.to(f.model->device(), f.model->dtype()));
          j = certify(*p, *f.model, xs, data.y, o).to_json();
        }
        return j.dump();
      },
      py::arg("fitted"), py::arg("x"), py::arg("y"), py::arg("training_rows"), py::arg("delta") = 0.025,
      py::arg("delta_mc") = 0.01, py::arg("networks") = 10000, py::arg("pmin") = 0.0, py::arg("seed") = 0);

  m.def("check_report_dir", &cli::check_report_dir, py::arg("dir"), py::arg("force") = false);
  // compare()'s rows ranked by NLL, with the command line's ranking lines, and its HTML report
  // (when `dir` is given) from each fitted model's predictions on the test arrays.
  m.def(
      "rank_and_report",
      [](const std::string& rows_json, const std::vector<const FittedModel*>& fitted, const py::array& x,
         const py::array& y, const std::string& dir, const std::vector<std::pair<std::string, std::string>>& facts,
         int64_t samples) {
        std::vector<cli::Row> rows;
        for (const auto& r : nlohmann::json::parse(rows_json)) rows.push_back(r.get<cli::Row>());
        if (rows.size() != fitted.size()) throw InvalidArgument("one fitted model per row");
        const double level = 0.9;
        const auto criterion = cli::criterion_for("nll", level);
        std::vector<std::string> lines;
        {
          py::gil_scoped_release release;
          if (cli::rank_rows(rows, criterion)) lines = cli::ranking_lines(rows, criterion);
        }
        if (!dir.empty()) {
          const FittedModel& first = *fitted.front();
          auto test = make_dataset(x, y, first.num_classes, first.model->dtype());
          cli::ReportData report;
          report.facts = facts;
          report.facts.emplace_back("runtime", runtime_summary());
          report.task = test.task;
          report.level = level;
          report.rank_by = fmt::format("nll ({})", criterion.describe());
          report.recommendation = lines.empty() ? "" : lines.back();
          report.rows = rows;
          py::gil_scoped_release release;
          for (size_t i = 0; i < fitted.size(); ++i) {
            PredictOptions options;
            options.samples = samples;
            auto p = fitted[i]->predict(test, options).to(torch::kCPU);
            cli::MethodCurves c;
            c.method = rows[i].at("method").get<std::string>();
            if (test.task == Task::Classification) {
              c.risk = risk_coverage(p, test.y);
              c.reliability = reliability_diagram(p, test.y);
            } else {
              auto y64 = test.y.to(torch::kFloat64);
              c.risk = risk_coverage(-p.var.to(torch::kFloat64), (p.mean.to(torch::kFloat64) - y64).square());
            }
            report.methods.push_back(std::move(c));
          }
          cli::write_report(dir, report);
        }
        nlohmann::json ranked = rows;
        return py::make_tuple(ranked.dump(), lines);
      },
      py::arg("rows"), py::arg("fitted"), py::arg("x"), py::arg("y"), py::arg("dir") = "",
      py::arg("facts") = std::vector<std::pair<std::string, std::string>>{}, py::arg("samples") = 32);

  m.def("methods", [] {
    std::vector<py::dict> out;
    for (const auto& info : method_registry()) {
      py::dict d;
      d["name"] = info.name;
      d["summary"] = info.summary;
      d["post_hoc"] = info.post_hoc;
      std::vector<py::dict> fields;
      for (const auto& f : info.fields) {
        py::dict fd;
        fd["name"] = f.name;
        fd["default"] = f.default_value;
        fd["help"] = f.help;
        fields.push_back(fd);
      }
      d["options"] = fields;
      out.push_back(d);
    }
    return out;
  });
  m.def("models", [] {
    std::vector<py::dict> out;
    for (const auto& family : model_registry()) {
      py::dict d;
      d["name"] = family.name;
      d["usage"] = family.usage;
      d["summary"] = family.summary;
      d["options"] = family.options;
      out.push_back(d);
    }
    return out;
  });
  m.def(
      "load_data",
      [](const std::string& spec, const std::string& dtype) {
        DataOptions options;
        options.dtype = dtype == "float64" ? torch::kFloat64 : torch::kFloat32;
        auto parts = load_data(spec, options);
        py::dict d;
        d["x"] = to_numpy(parts.fit.x);
        d["y"] = to_numpy(parts.fit.y);
        d["num_classes"] = parts.fit.num_classes;
        return d;
      },
      py::arg("spec"), py::arg("dtype") = "float32");
  py::class_<BayesOpt>(m, "BayesOpt")
      .def(py::init([](std::vector<double> lower, std::vector<double> upper, const std::string& method,
                       const std::string& model, const std::string& likelihood, const std::string& acquisition,
                       double beta, int64_t initial, int64_t samples, int64_t steps, double lr, bool maximize,
                       uint64_t seed) {
             BayesOptOptions o;
             o.lower = std::move(lower);
             o.upper = std::move(upper);
             o.method = method;
             o.model = model;
             o.likelihood = likelihood;
             o.acquisition = acquisition;
             o.beta = beta;
             o.initial = initial;
             o.samples = samples;
             o.steps = steps;
             o.train.lr = lr;
             o.maximize = maximize;
             o.seed = seed;
             return BayesOpt(o);
           }),
           py::arg("lower"), py::arg("upper"), py::arg("method"), py::arg("model"), py::arg("likelihood"),
           py::arg("acquisition"), py::arg("beta"), py::arg("initial"), py::arg("samples"), py::arg("steps"),
           py::arg("lr"), py::arg("maximize"), py::arg("seed"))
      .def("suggest",
           [](BayesOpt& b, int64_t k) {
             py::gil_scoped_release release;
             return b.suggest(k);
           },
           py::arg("k"))
      .def("observe", &BayesOpt::observe, py::arg("x"), py::arg("y"))
      .def_property_readonly("points", &BayesOpt::points)
      .def_property_readonly("values", &BayesOpt::values)
      .def_property_readonly("size", &BayesOpt::size)
      .def("best_value", &BayesOpt::best_value)
      .def("best_point", &BayesOpt::best_point)
      .def("last_round", [](const BayesOpt& b) { return b.last_round().dump(); })
      .def("state", [](const BayesOpt& b) { return b.state().dump(); })
      .def_static("from_state", [](const std::string& text) { return BayesOpt::from_state(nlohmann::json::parse(text)); })
      .def("save", &BayesOpt::save, py::arg("path"), py::arg("overwrite") = false)
      .def_static("load", &BayesOpt::load, py::arg("path"));

  m.def(
      "select_queries",
      [](const FittedModel& f, const py::array& x, const std::string& acquisition, int64_t k, uint64_t seed,
         int64_t samples, const std::string& selection) {
        Dataset pool;
        pool.x = to_tensor(x).to(f.model->dtype());
        pool.task = f.num_classes > 0 ? Task::Classification : Task::Regression;
        pool.num_classes = f.num_classes;
        pool.y = f.num_classes > 0 ? at::zeros({pool.x.size(0)}, at::kLong) : at::zeros({pool.x.size(0)}, pool.x.options());
        torch::Tensor picked;
        {
          py::gil_scoped_release release;
          picked = select_queries(f, pool, at::arange(pool.size()), acquisition, k, seed, samples, selection);
        }
        return to_numpy(picked);
      },
      py::arg("fitted"), py::arg("x"), py::arg("acquisition"), py::arg("k"), py::arg("seed"), py::arg("samples"),
      py::arg("selection"));
  m.def("set_threads", &set_threads, py::arg("threads"));
  m.def("runtime", &runtime_summary);
}
