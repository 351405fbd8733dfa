// fit, predict, evaluate, describe.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "common.h"
#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "credence/core/runtime.h"
#include "credence/core/progress.h"
#include "credence/core/files.h"
#include "credence/eval/metrics.h"
#include "credence/model/adapters.h"

namespace credence::cli {

void add_fit(CLI::App& app) {
  auto* cmd = app.add_subcommand("fit", "fit a posterior and save it");
  struct Args {
    CommonOptions common;
    TrainFlags flags;
    std::string data, method = "map", out;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--data", args->data, "data spec, e.g. fmnist:train?n=10000")->required();
  cmd->add_option("--method", args->method, "METHOD[:key=value,...]; see `credence describe`")->capture_default_str();
  cmd->add_option("--out", args->out, "posterior file to write")->required();
  cmd->add_flag("--force", args->force, "replace --out if it exists");
  args->common.add(*cmd);
  args->flags.add(*cmd);
  cmd->callback([args] {
    args->common.apply();
    args->flags.train.quiet = args->common.quiet;
    if (is_root_process()) check_output_path(args->out, args->force, "--out");
    FitRequest req;
    req.data = load_data(args->data, {args->common.torch_dtype()});
    args->flags.fill(req);
    req.method = args->method;
    req.device = args->common.torch_device();
    req.dtype = args->common.torch_dtype();
    req.comm = &world_communicator();  // from torchrun's (or `credence launch`'s) environment
    auto fitted = fit(req);
    if (!req.comm->is_root()) return;  // rank 0 writes the one posterior file
    fitted.save(args->out, args->force);
    if (!args->common.quiet)
      fmt::print("fitted {} on {} ({} examples) in {:.1f}s -> {}\n", args->method, args->data,
                 req.data.fit.size(), fitted.info["fit_seconds"].get<double>(), args->out);
  });
}

namespace {
Dataset load_eval_data(const std::string& spec, const FittedModel& f) {
  auto parts = load_data(spec, {f.model->dtype()});
  return parts.fit;
}
}  // namespace

void add_predict(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "predict with a saved posterior");
  struct Args {
    CommonOptions common;
    std::string posterior, data, out;
    int64_t samples = 32;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--posterior", args->posterior, "posterior file from `credence fit`")->required();
  cmd->add_option("--data", args->data, "data spec to predict on")->required();
  cmd->add_option("--out", args->out, "CSV file (default: standard output)");
  cmd->add_option("--samples", args->samples, "weight samples for sampled predictives")->capture_default_str();
  cmd->add_flag("--force", args->force, "replace --out if it exists");
  args->common.add(*cmd);
  cmd->callback([args] {
    args->common.apply();
    check_optional_output(args->out, args->force, "--out");
    auto f = FittedModel::load(args->posterior, args->common.torch_device());
    auto data = load_eval_data(args->data, f);
    auto p = f.predict(data, {args->samples}).to(torch::kCPU);
    std::ostringstream out;
    if (p.task == Task::Classification) {
      auto probs = p.probs.to(at::kDouble);
      auto pred = probs.argmax(1);
      out << "prediction";
      for (int64_t c = 0; c < probs.size(1); ++c) out << ",p" << c;
      out << "\n";
      for (int64_t i = 0; i < probs.size(0); ++i) {
        out << pred[i].item<int64_t>();
        for (int64_t c = 0; c < probs.size(1); ++c) out << fmt::format(",{:.6g}", probs[i][c].item<double>());
        out << "\n";
      }
    } else {
      auto lo = predictive_quantile(p, 0.05).to(at::kDouble), hi = predictive_quantile(p, 0.95).to(at::kDouble);
      auto mean = p.mean.to(at::kDouble), sd = p.var.to(at::kDouble).sqrt();
      out << "mean,std,lower_90,upper_90\n";
      for (int64_t i = 0; i < mean.size(0); ++i)
        out << fmt::format("{:.6g},{:.6g},{:.6g},{:.6g}\n", mean[i].item<double>(), sd[i].item<double>(),
                           lo[i].item<double>(), hi[i].item<double>());
    }
    if (args->out.empty())
      std::cout << out.str();
    else
      write_file_atomically(args->out, args->force, [&](std::ostream& file) { file << out.str(); });
  });
}

void add_evaluate(CLI::App& app) {
  auto* cmd = app.add_subcommand("evaluate", "metrics of a saved posterior on labelled data");
  struct Args {
    CommonOptions common;
    std::string posterior, data, json;
    int64_t samples = 32;
    int bins = 15;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--posterior", args->posterior, "posterior file from `credence fit`")->required();
  cmd->add_option("--data", args->data, "labelled data spec")->required();
  cmd->add_option("--json", args->json, "write the metrics as JSON");
  cmd->add_option("--samples", args->samples, "weight samples for sampled predictives")->capture_default_str();
  cmd->add_option("--ece-bins", args->bins, "equal-width bins for ECE")->capture_default_str();
  cmd->add_flag("--force", args->force, "replace --json if it exists");
  args->common.add(*cmd);
  cmd->callback([args] {
    args->common.apply();
    auto f = FittedModel::load(args->posterior, args->common.torch_device());
    auto data = load_eval_data(args->data, f);
    auto start = std::chrono::steady_clock::now();
    auto p = f.predict(data, {args->samples}).to(torch::kCPU);
    double seconds = seconds_since(start);
    Row row = {{"method", f.method}};
    for (const auto& [k, v] : standard_metrics(p, data.y, args->bins))
      row[k] = v;
    add_chain_diagnostics(f, p, row);
    add_fit_facts(f, row);
    row["fit_seconds"] = f.info.value("fit_seconds", 0.0);
    row["predict_seconds"] = seconds;
    print_table({row});
    if (!args->json.empty()) write_json(args->json, {{"results", {nlohmann::json(row)}}}, args->force);
  });
}

void add_describe(CLI::App& app) {
  auto* cmd = app.add_subcommand("describe", "list methods, or the options of one method; --models: model families");
  auto name = std::make_shared<std::string>();
  auto models = std::make_shared<bool>(false), adapters = std::make_shared<bool>(false);
  auto model = std::make_shared<std::string>(), data = std::make_shared<std::string>();
  cmd->add_option("method", *name, "method name");
  cmd->add_flag("--models", *models, "list the model families (--model SPEC) with their options");
  auto runtime = std::make_shared<bool>(false), priors = std::make_shared<bool>(false);
  cmd->add_flag("--priors", *priors, "list the kinds of prior over the weights (--prior SPEC)");
  cmd->add_flag("--runtime", *runtime, "print the runtime line (LibTorch, BLAS kernels, threads, devices)");
  cmd->add_flag("--adapters", *adapters,
                "the options of --adapters lora:...; with --model and --data, the layers it can adapt");
  cmd->add_option("--model", *model, "with --adapters: the model whose adaptable layers to list");
  cmd->add_option("--data", *data, "with --adapters --model: data fixing the model's input shape");
  cmd->callback([name, models, adapters, model, data, runtime, priors] {
    if (*priors) {
      fmt::print("priors over the weights (--prior SPEC, for fit, compare, active and optimize):\n"
                 "  auto                 Gaussian, zero mean, precision 5e-4 * N (weight decay 5e-4)\n"
                 "  gaussian:PRECISION   Gaussian, zero mean, one precision for every weight\n"
                 "  gaussian:P1,P2,...   Gaussian, zero mean, one precision per layer\n"
                 "  file:PATH (or PATH)  a prior learned from related tasks by credence meta-fit: a mean per\n"
                 "                       weight, a precision per tensor, and the units (standardization) and\n"
                 "                       noise level it was learned with; every method but gp uses it\n"
                 "                       (pacbayes certifies against it), and training starts at its mean\n"
                 "  gp:KERNEL?lengthscale=L&amplitude=A[&points=M&context=box|train&margin=F&jitter=J]\n"
                 "                       a Gaussian-process prior over the outputs (rbf, matern52, linear; in\n"
                 "                       standardized units), for vi with family=diag: its KL is taken between\n"
                 "                       the linearized network and the GP at M context points per step\n");
      return;
    }
    if (*runtime) {
      fmt::print("{}\n", runtime_summary());
      return;
    }
    if (*adapters) {
      fmt::print("adapters (--adapters lora:key=value,...): low-rank adapters on a frozen backbone\n");
      for (const auto& f : lora_fields())
        fmt::print("  {:<8} {:<7} default {:<6} {}\n", f.name, to_string(f.type), f.default_value, f.help);
      if (model->empty() != data->empty())
        throw InvalidArgument("describe --adapters: give both --model and --data to list a model's adaptable layers");
      if (!model->empty()) {
        auto d = load_data(*data).fit;
        auto m = make_model(*model, d.input_shape(), d.task == Task::Classification ? d.num_classes : 1,
                            torch::kFloat32, torch::kCPU);
        fmt::print("adaptable layers of {}:\n", *model);
        for (const auto& layer : adaptable_layers(*m)) fmt::print("  {}\n", layer);
      }
      return;
    }
    if (*models) {
      fmt::print("model families (--model SPEC):\n");
      for (const auto& f : model_registry()) {
        fmt::print("  {}\n      {}\n", f.usage, f.summary);
        for (const auto& [key, help] : f.options) fmt::print("      ?{}=...  {}\n", key, help);
      }
      return;
    }
    if (name->empty()) {
      fmt::print("methods (use `credence describe NAME` for options):\n");
      for (const auto& m : method_registry()) fmt::print("  {:<12} {}\n", m.name, m.summary);
      return;
    }
    const auto& m = find_method(*name);
    fmt::print("{}: {}\n", m.name, m.summary);
    if (m.post_hoc) fmt::print("  (post-hoc: starts from a MAP fit of the same model)\n");
    if (m.fields.empty()) fmt::print("  no options\n");
    for (const auto& f : m.fields) {
      fmt::print("  {:<14} {:<7} default {:<10} {}\n", f.name, to_string(f.type), f.default_value, f.help);
    }
    fmt::print("usage: --method {}{}\n", m.name, m.fields.empty() ? "" : ":" + m.fields[0].name + "=...");
  });
}

}  // namespace credence::cli
