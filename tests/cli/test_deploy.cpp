// examples/deploy: a posterior file answers one input at a time with the numbers `credence predict`
// gives for the same inputs, plus a credible set and the Bayes action.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "cli_test.h"

namespace {

using namespace credence_cli_test;

class Deploy : public TempDirTest {};

std::vector<double> numbers_after(const std::string& line, const std::string& key) {
  std::vector<double> out;
  auto at = line.find(key);
  if (at == std::string::npos) return out;
  std::stringstream in(line.substr(at + key.size()));
  std::string word;
  in >> word;
  std::stringstream cells(word);
  for (std::string cell; std::getline(cells, cell, ',');) out.push_back(std::stod(cell));
  return out;
}

TEST_F(Deploy, AnswersOneInputAtATimeAsPredictDoes) {
  std::ofstream train(path("train.csv")), test(path("test.csv")), inputs(path("inputs.csv"));
  train << "a,b,label\n";
  for (int i = 0; i < 120; ++i) train << (i % 7) * 0.3 << "," << (i % 5) * 0.7 << "," << (i % 7 > 3) << "\n";
  test << "a,b,label\n";
  for (int i = 0; i < 4; ++i) {
    test << i * 0.5 << "," << 3 - i * 0.6 << ",0\n";
    inputs << i * 0.5 << "," << 3 - i * 0.6 << "\n";
  }
  train.close(), test.close(), inputs.close();
  std::ofstream(path("costs.json")) << R"({"classes": 2, "error_cost": 1})";
  const std::string post = path("p.crd");
  auto r = run("fit -q --data 'csv:" + path("train.csv") + "?target=label&task=classification' --model mlp:8 "
               "--method 'laplace' --epochs 30 --lr 0.01 --out '" + post + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto expected = run("predict -q --posterior '" + post + "' --data 'csv:" + path("test.csv") +
                      "?target=label&task=classification'");
  ASSERT_EQ(expected.code, 0) << expected.output;
  auto answers = shell("'" + std::string(CREDENCE_DEPLOY_EXAMPLE) + "' '" + post + "' --costs '" + path("costs.json") +
                       "' < '" + path("inputs.csv") + "'");
  ASSERT_EQ(answers.code, 0) << answers.output;
  auto want = lines_of(expected.output), got = lines_of(answers.output);
  ASSERT_EQ(got.size(), 4u) << answers.output;
  ASSERT_EQ(want.size(), 5u) << expected.output;  // header + 4 rows: prediction,p0,p1
  for (size_t i = 0; i < 4; ++i) {
    std::stringstream row(want[i + 1]);
    std::vector<double> cells;
    for (std::string c; std::getline(row, c, ',');) cells.push_back(std::stod(c));
    auto probs = numbers_after(got[i], "probs ");
    ASSERT_EQ(probs.size(), 2u) << got[i];
    EXPECT_NEAR(probs[0], cells[1], 1e-5) << got[i];
    EXPECT_NEAR(probs[1], cells[2], 1e-5) << got[i];
    EXPECT_NE(got[i].find("class " + std::to_string(static_cast<int>(cells[0]))), std::string::npos) << got[i];
    EXPECT_NE(got[i].find(" set {"), std::string::npos) << got[i];
    EXPECT_NE(got[i].find(" action "), std::string::npos) << got[i];
  }
}

}  // namespace
