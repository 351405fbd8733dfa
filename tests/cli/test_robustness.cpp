// Bad input and faults end with a clear one-line error, never a silently wrong result, a hang or a
// damaged file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cli_test.h"

namespace {

namespace fs = std::filesystem;
using namespace credence_cli_test;

constexpr int kAnyFailure = -100;  // command-line syntax errors: CLI11's exit codes

class Robustness : public TempDirTest {
 protected:
  /// Expects exit code `code` and the output to contain `part`.
  Result expect_failure(const std::string& args, const std::string& part, int code = 1) {
    auto r = run(args);
    if (code == kAnyFailure)
      EXPECT_NE(r.code, 0) << args << "\n" << r.output;
    else
      EXPECT_EQ(r.code, code) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(part), std::string::npos) << "lacks '" << part << "': " << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
    return r;
  }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
    return path(name);
  }
  std::string fit_moons(const std::string& name) {
    auto out = path(name);
    auto r = run("fit -q --data 'synthetic:moons?n=200' --model mlp:8 --epochs 3 --out '" + out + "'");
    EXPECT_EQ(r.code, 0) << r.output;
    return out;
  }
  size_t entries() const { return static_cast<size_t>(std::distance(fs::directory_iterator(root_), {})); }
};

const std::string kFit = "fit -q --data synthetic:sine --model mlp:4 --epochs 1 ";

TEST_F(Robustness, OutputsThatAreNotRegularFilesAreRefusedBeforeFitting) {
  ASSERT_EQ(mkfifo(path("fifo").c_str(), 0600), 0);
  fs::create_directory(path("dir"));
  std::ofstream(path("target")) << "keep";
  fs::create_symlink(path("target"), path("link"));
  // A missing data file would fail the fit: the output is refused first, before any work.
  const std::string bad_data = "fit -q --data 'csv:" + path("none.csv") + "?target=y' --force --out ";
  expect_failure(bad_data + "'" + path("fifo") + "'", "a FIFO");
  expect_failure(bad_data + "'" + path("dir") + "'", "a directory");
  expect_failure(bad_data + "'" + path("link") + "'", "symbolic link");
  expect_failure(bad_data + "'" + path("no/such/f.crd") + "'", "does not exist");
  expect_failure(bad_data + "''", "--out is empty");
  expect_failure(kFit + "--force --out /dev/null", "a device");
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  EXPECT_TRUE(fs::is_fifo(path("fifo")));
  EXPECT_TRUE(fs::is_symlink(path("link")));
  std::ifstream in(path("target"));
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "keep");
  EXPECT_EQ(entries(), 4u);  // fifo, dir, target, link: no temporaries left behind
  // The other writers check the same way.
  auto post = fit_moons("m.crd");
  expect_failure("evaluate -q --posterior '" + post + "' --data 'synthetic:moons?part=test' --json '" + path("dir") + "'",
                 "a directory");
  expect_failure("predict -q --posterior '" + post + "' --data 'synthetic:moons?part=test' --force --out '" +
                     path("link") + "'",
                 "symbolic link");
}

TEST_F(Robustness, CorruptedPosteriorFilesAreRefusedAndOldOnesLoadWithANotice) {
  auto post = fit_moons("m.crd");
  const std::string eval = "evaluate -q --data 'synthetic:moons?part=test' --posterior ";
  ASSERT_EQ(run(eval + "'" + post + "'").code, 0);
  const auto size = fs::file_size(post);
  {
    std::fstream f(post, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(size - 60));  // inside the last tensor
    char c = 0;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(static_cast<std::streamoff>(size - 60));
    f.write(&c, 1);
  }
  expect_failure(eval + "'" + post + "'", "is corrupted");
  // A file written before checksums (no trailer) still loads, with a notice.
  auto old = fit_moons("old.crd");
  fs::resize_file(old, fs::file_size(old) - 19);
  auto r = run(eval + "'" + old + "'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("no checksum"), std::string::npos) << r.output;
  expect_failure(eval + "'" + root_.string() + "'", "is a directory");
}

TEST_F(Robustness, DivergedAndUntrainedFitsAreNotSaved) {
  expect_failure("fit -q --data 'synthetic:moons?n=300' --model mlp:16 --epochs 5 --lr 1e9 --out '" +
                     path("d.crd") + "'",
                 "lower --lr");
  EXPECT_FALSE(fs::exists(path("d.crd")));
  auto zero = run("fit -q --data synthetic:sine --model mlp:4 --epochs 0 --out '" + path("z.crd") + "'");
  EXPECT_NE(zero.code, 0);
  EXPECT_NE(zero.output.find("add --init FILE"), std::string::npos) << zero.output;
  EXPECT_FALSE(fs::exists(path("z.crd")));
}

TEST_F(Robustness, ADivergingMethodIsLeftOutOfACompareAndTheOthersStay) {
  const std::string json = path("c.json");
  // Without weight decay (delta) IVON's steps lr g / (h + delta) blow up at every step size.
  auto r = run("compare -q --data 'synthetic:moons?n=300' --test 'synthetic:moons?n=200&part=test' --model mlp:16 "
               "--epochs 5 --prior 1e-9 --methods 'map;ivon:hess_init=1e-12' --json '" + json + "'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("ivon:hess_init=1e-12 failed and is left out"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("its own step size and 2 smaller ones all diverged"), std::string::npos) << r.output;
  auto j = read_json(json);
  ASSERT_EQ(j["results"].size(), 1u);
  EXPECT_EQ(j["results"][0]["method"], "map");
  ASSERT_EQ(j["failed"].size(), 1u);
  EXPECT_NE(j["failed"][0]["error"].get<std::string>().find("diverged"), std::string::npos);
  // MAP itself diverging stops the comparison: every post-hoc row would stand on it.
  expect_failure("compare -q --data 'synthetic:moons?n=300' --test 'synthetic:moons?n=200&part=test' --model mlp:16 "
                 "--epochs 5 --lr 1e9 --methods 'map;laplace'",
                 "lower --lr");
}

// A method's own step size is a guess; one that diverges is retried at a third, and the fit says
// so. A step size the user gave is never changed.
TEST_F(Robustness, AFitDivergingAtItsOwnStepSizeRetriesAtASmallerOne) {
  const std::string json = path("retry.json");
  const std::string common = "compare -q --data 'synthetic:moons?n=300' --test 'synthetic:moons?n=200&part=test' "
                             "--model mlp:16 --epochs 5 --methods 'map;ivon:hess_init=1e-12' ";
  auto r = run(common + "--json '" + json + "'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("diverged at its own step size 0.1; refitted at 0.0333333"), std::string::npos) << r.output;
  auto j = read_json(json);
  ASSERT_EQ(j["results"].size(), 2u) << j.dump();
  const auto& row = j["results"][0]["method"] == "map" ? j["results"][1] : j["results"][0];
  ASSERT_TRUE(row.contains("warnings")) << row.dump();
  const std::string last = row["warnings"].back().get<std::string>();
  EXPECT_NE(last.find("refitted at 0.0111111"), std::string::npos) << last;
  EXPECT_LT(row["nll"].get<double>(), std::log(2.0));  // the retried fit learned the task
  // The same step size given by the user: no retry, the row fails.
  auto given = run(common + "--lr 0.1 --json '" + path("given.json") + "'");
  EXPECT_EQ(given.code, 0) << given.output;
  EXPECT_EQ(given.output.find("refitted"), std::string::npos) << given.output;
  EXPECT_NE(given.output.find("failed and is left out"), std::string::npos) << given.output;
}

TEST_F(Robustness, DataThatCannotMakeASensibleFitIsRefused) {
  auto sparse = write("sparse.csv", "x,y\n1,0\n2,1000000\n3,0\n4,1000000\n");
  auto r = expect_failure("fit -q --data 'csv:" + sparse + "?target=y&task=classification' --epochs 1 --out '" +
                              path("s.crd") + "'",
                          "0, 1000000");
  EXPECT_NE(r.output.find("recode"), std::string::npos) << r.output;
  auto one = write("one.csv", "x,y\n1,2\n");
  expect_failure("fit -q --data 'csv:" + one + "?target=y' --epochs 1 --out '" + path("o.crd") + "'",
                 "has 1 example(s); fitting needs at least 2");
  expect_failure("fit -q --data 'synthetic:sine?n=500&n=20' --epochs 1 --out '" + path("o.crd") + "'", "given twice");
  expect_failure("fit -q --data synthetic:sine --seed -1 --epochs 1 --out '" + path("o.crd") + "'", "whole number >= 0",
                 kAnyFailure);
  expect_failure("fit -q --data synthetic:sine --threads 0 --epochs 1 --out '" + path("o.crd") + "'",
                 "whole number >= 1", kAnyFailure);
  expect_failure("compare -q --data synthetic:moons --test 'synthetic:moons?part=test' --methods map,map --epochs 1",
                 "'map' twice");
  EXPECT_FALSE(fs::exists(path("o.crd")));
}

TEST_F(Robustness, CsvFilesSayWhatIsWrongAndReadQuotedFields) {
  fs::create_directory(path("d.csv"));
  expect_failure("fit -q --data 'csv:" + path("d.csv") + "?target=y' --epochs 1 --out '" + path("o.crd") + "'",
                 "is a directory");
  // RFC 4180: a quoted field may hold a comma, "" is a quote.
  std::string rows = "\"a, first\",y\n";
  for (int i = 0; i < 40; ++i) rows += "\"" + std::to_string(i) + "\"," + std::to_string(2 * i) + "\n";
  auto quoted = write("q.csv", rows);
  auto r = run("fit -q --data 'csv:" + quoted + "?target=y' --model mlp:4 --epochs 1 --out '" + path("q.crd") + "'");
  EXPECT_EQ(r.code, 0) << r.output;
  auto open = write("open.csv", "x,y\n\"1,2\n");
  expect_failure("fit -q --data 'csv:" + open + "?target=y' --epochs 1 --out '" + path("o.crd") + "'",
                 "never closed");
}

TEST_F(Robustness, ATestSetWithSomeOfTheClassesCanBeEvaluated) {
  std::string train = "a,b,label\n", test = "a,b,label\n";
  for (int i = 0; i < 60; ++i)
    train += std::to_string(i % 3) + "," + std::to_string(i % 7) + "," + std::to_string(i % 3) + "\n";
  for (int i = 0; i < 10; ++i) test += std::to_string(i % 2) + ",1," + std::to_string(i % 2) + "\n";
  auto post = path("c.crd");
  auto r = run("fit -q --data 'csv:" + write("train.csv", train) + "?target=label&task=classification' --model mlp:8 "
               "--epochs 20 --lr 0.01 --out '" + post + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run("evaluate -q --posterior '" + post + "' --data 'csv:" + write("test.csv", test) +
          "?target=label&task=classification'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy"), std::string::npos) << r.output;
  std::string four = "a,b,label\n0,0,3\n1,1,0\n";
  expect_failure("evaluate -q --posterior '" + post + "' --data 'csv:" + write("four.csv", four) +
                     "?target=label&task=classification'",
                 "labels up to 3");
}

TEST_F(Robustness, CostFilesThatAreNotJsonNumbersSayWhy) {
  auto post = fit_moons("m.crd");
  const std::string decide = "decide --posterior '" + post + "' --data 'synthetic:moons?part=test' --costs ";
  expect_failure(decide + "'" + write("big.json", "{\"classes\": 2, \"error_cost\": 1e999}") + "'",
                 "too large for a double");
  expect_failure(decide + "'" + write("type.json", "{\"classes\": 2, \"error_cost\": \"one\"}") + "'",
                 "must be a number");
  expect_failure(decide + "'" + root_.string() + "'", "is a directory");
}

TEST_F(Robustness, DenseWorkThatCannotFitInMemoryIsRefusedUpFront) {
  // ~91k weights: a full Hessian and its factors take far more than any machine's memory.
  expect_failure("fit -q --data 'synthetic:moons?n=100' --model mlp:300,300 --epochs 1 --method "
                 "'laplace:subset=all,hessian=full' --out '" + path("l.crd") + "'",
                 "hessian=kron");
  // A model too large to allocate is an out-of-memory message, not allocator text.
  expect_failure("fit -q --data 'synthetic:moons?n=100' --model mlp:200000,200000 --epochs 1 --out '" +
                     path("big.crd") + "'",
                 "out of memory");
}

TEST_F(Robustness, OodMutualInformationIsAbsentWithoutSamples) {
  auto json = path("ood.json");
  auto r = run("compare -q --data 'synthetic:moons?n=300' --test 'synthetic:moons?part=test&n=200' --ood "
               "'synthetic:moons?noise=1.5&seed=9&n=100' --model mlp:8 --methods map,ensemble:members=2 --epochs 5 "
               "--json '" + json + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto j = read_json(json);
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_TRUE(j["results"][0]["ood_auroc_mutual_info"].is_null()) << j["results"][0].dump();
  EXPECT_TRUE(j["results"][1]["ood_auroc_mutual_info"].is_number()) << j["results"][1].dump();
  // The table fits 100 columns and puts the main metrics first.
  auto lines = lines_of(r.output);
  for (const auto& line : lines) {
    if (line.rfind("ranking by", 0) == 0) break;
    EXPECT_LE(line.size(), 100u) << line;
  }
  auto header = lines[0];
  EXPECT_LT(header.find("accuracy"), header.find("nll"));
  EXPECT_LT(header.find("nll"), header.find("fit_seconds"));
}

TEST_F(Robustness, UnconvergedChainsAreMarkedAndNeverRecommended) {
  // Ten draws per chain cannot converge: R-hat is far above 1.05.
  auto json = path("r.json");
  auto r = run("compare -q --data 'synthetic:sine?n=100' --test 'synthetic:sine?part=test&n=100' --model mlp:8 "
               "--epochs 5 --methods 'map,nuts:subset=last_layer,chains=4,warmup=10,draws=10,init=random' "
               "--json '" + json + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto j = read_json(json);
  const auto& rhat = j["results"][1]["rhat"];  // null: infinite (chains stuck apart)
  ASSERT_TRUE(rhat.is_null() || rhat.get<double>() > 1.05) << "the chains converged; this test needs ones that do not";
  EXPECT_NE(r.output.find("NOT CONVERGED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("recommended: map"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("to improve on it, try ensemble:members=5"), std::string::npos) << r.output;
}

TEST_F(Robustness, InitStartsFromPretrainedWeightsOrSaysWhyNot) {
  const std::string fixtures = CREDENCE_TEST_DATA_DIR;
  // From a credence file: with a vanishing learning rate the fit stays at the weights it started from.
  auto first = fit_moons("first.crd");
  auto again = path("again.crd");
  auto r = run("fit -q --data 'synthetic:moons?n=200' --model mlp:8 --epochs 1 --lr 1e-12 --init '" + first +
               "' --out '" + again + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto p1 = run("predict -q --posterior '" + first + "' --data 'synthetic:moons?part=test&n=20'");
  auto p2 = run("predict -q --posterior '" + again + "' --data 'synthetic:moons?part=test&n=20'");
  EXPECT_EQ(p1.output, p2.output);
  // From a torch.save state dict whose shapes do not fit this model: every mismatch is named.
  expect_failure("fit -q --data 'synthetic:moons?n=200' --model mlp:8 --epochs 1 --init '" + fixtures +
                     "/tiny_named_state_dict.pt' --out '" + path("x.crd") + "'",
                 "wrong shape: layer0.weight is [5, 3] in the file, [8, 2] in the model");
  auto ensemble = path("ens.crd");
  ASSERT_EQ(run("fit -q --data 'synthetic:moons?n=200' --model mlp:8 --epochs 1 --method ensemble:members=2 --out '" +
                ensemble + "'").code, 0);
  expect_failure("fit -q --data 'synthetic:moons?n=200' --model mlp:8 --epochs 1 --init '" + ensemble + "' --out '" +
                     path("x.crd") + "'",
                 "holds 2 weight vectors");
  expect_failure("fit -q --data 'synthetic:moons?n=200' --model mlp:8 --epochs 1 --init '" + path("none.pt") +
                     "' --out '" + path("x.crd") + "'",
                 "does not exist");
  EXPECT_FALSE(fs::exists(path("x.crd")));
}

TEST_F(Robustness, FreezeHoldsLayersFixedAndTheFileKeepsThem) {
  auto post = path("frozen.crd");
  auto r = run("fit -q --data 'synthetic:moons?n=200' --model mlp:8,8 --epochs 2 --freeze layer0 --method "
               "'laplace:subset=all,hessian=kron' --out '" + post + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run("evaluate -q --posterior '" + post + "' --data 'synthetic:moons?part=test&n=100'");
  EXPECT_EQ(r.code, 0) << r.output;
  expect_failure("fit -q --data 'synthetic:moons?n=200' --model mlp:8 --epochs 1 --freeze layer7 --out '" +
                     path("x.crd") + "'",
                 "matches no parameter");
  expect_failure("fit -q --data 'synthetic:moons?n=200' --model mlp:8 --epochs 1 --freeze layer0 --method mcdropout "
                 "--out '" + path("x.crd") + "'",
                 "mcdropout needs a dropout forward");
}

TEST_F(Robustness, AnUnreadableFileIsNamedAsSuchNotAsMissing) {
  auto post = fit_moons("m.crd");
  fs::permissions(post, fs::perms::none);
  fs::permissions(root_, fs::perms::all);  // the directory stays searchable for another user
  // Root reads anything: run as nobody then (setpriv, from util-linux).
  std::string as_user = geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  if (!as_user.empty() && shell("command -v setpriv").code != 0) GTEST_SKIP() << "running as root without setpriv";
  auto r = shell(as_user + "'" + std::string(CREDENCE_CLI) + "' evaluate -q --posterior '" + post +
                 "' --data 'synthetic:moons?part=test'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("exists but cannot be read: permission denied"), std::string::npos) << r.output;
}


TEST_F(Robustness, AdaptersFitOnASavedBackboneFromTheCommandLine) {
  const std::string digits =
      std::string("'csv:") + CREDENCE_DATA_DIR + "/digits/train.csv?target=label&task=classification&shape=1x8x8";
  const std::string model = " --model 'resnet:8?width=4&groups=2'";
  auto backbone = path("backbone.crd"), adapted = path("adapted.crd");
  auto r = run("fit -q --data " + digits + "&per_class=20'" + model + " --epochs 1 --out '" + backbone + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run("fit -q --data " + digits + "&per_class=10&per_class_seed=1'" + model + " --epochs 2 --init '" + backbone +
          "' --adapters lora:rank=2 --method 'laplace:subset=all,hessian=kron' --out '" + adapted + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run("evaluate -q --posterior '" + adapted + "' --data " + digits + "&per_class=5&per_class_seed=2'");
  EXPECT_EQ(r.code, 0) << r.output;
  r = run("describe --adapters --model 'resnet:8?width=4&groups=2' --data " + digits + "'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("stage3.0.shortcut (conv 8 -> 16, 1x1)"), std::string::npos) << r.output;
  expect_failure("fit -q --data " + digits + "'" + model + " --epochs 1 --init '" + backbone +
                     "' --adapters lora --freeze stem --out '" + path("x.crd") + "'",
                 "adapters freeze the backbone themselves");
  // A task with other classes: five outputs where the backbone has ten; head=new draws a new head.
  const std::string five = digits + "&labels=5-9&renumber=1&per_class=10'";
  expect_failure("fit -q --data " + five + model + " --epochs 1 --init '" + backbone + "' --adapters lora --out '" +
                     path("x.crd") + "'",
                 "head.weight is [10, 16] in the file, [5, 16] in the model");
  r = run("fit -q --data " + five + model + " --epochs 2 --init '" + backbone +
          "' --adapters lora:head=new --method 'laplace:subset=all,hessian=kron' --out '" + path("five.crd") + "'");
  EXPECT_EQ(r.code, 0) << r.output;
  expect_failure("fit -q --data " + digits + "'" + model + " --epochs 1 --adapters 'lora:targets=stem9' --out '" +
                     path("x.crd") + "'",
                 "matches no adaptable layer");
  expect_failure("fit -q --data 'synthetic:moons?n=100' --model mlp:8 --epochs 1 --adapters lora --out '" +
                     path("x.crd") + "'",
                 "op list");
}

}  // namespace
