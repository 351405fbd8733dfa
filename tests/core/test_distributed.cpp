// The environment a distributed run is read from, and the collectives of a 2-rank Gloo group.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "../../src/core/shared_memory_sum.h"

namespace {

using credence::DistributedEnv;
using credence::InvalidArgument;

DistributedEnv parse(const std::map<std::string, std::string>& vars) {
  return credence::parse_distributed_env([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

void expect_error(const std::map<std::string, std::string>& vars, const std::string& fragment) {
  try {
    parse(vars);
    FAIL() << "no error; expected one mentioning " << fragment;
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(DistributedEnv, NothingSetIsOneProcess) {
  auto env = parse({});
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).world_size, 1);
}

TEST(DistributedEnv, ReadsTorchrunVariables) {
  auto env = parse({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "10.0.0.2"}, {"MASTER_PORT", "29500"}});
  EXPECT_EQ(env.rank, 1);
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.master_addr, "10.0.0.2");
  EXPECT_EQ(env.master_port, 29500);
  auto file = parse({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"CREDENCE_STORE", "/shared/store"}});
  EXPECT_EQ(file.store_file, "/shared/store");
}

TEST(DistributedEnv, BadValuesNameTheFix) {
  const std::map<std::string, std::string> master = {{"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}};
  auto with = [&](std::map<std::string, std::string> v) {
    v.insert(master.begin(), master.end());
    return v;
  };
  expect_error(with({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), "must be below WORLD_SIZE=2");
  expect_error(with({{"RANK", "-1"}, {"WORLD_SIZE", "2"}}), "RANK=-1 must be in");
  expect_error(with({{"RANK", "one"}, {"WORLD_SIZE", "2"}}), "RANK='one' is not an integer");
  expect_error(with({{"RANK", "0"}, {"WORLD_SIZE", "0"}}), "WORLD_SIZE=0 must be in");
  expect_error(with({{"RANK", "0"}}), "RANK is set but WORLD_SIZE is not");
  expect_error(with({{"WORLD_SIZE", "2"}}), "WORLD_SIZE is set but RANK is not");
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}}, "MASTER_PORT is not set");
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "29500"}}, "MASTER_ADDR is not set");
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}},
               "MASTER_PORT=70000 must be in [1, 65535]");
}

TEST(Communicator, OneProcessLeavesTensorsAlone) {
  credence::Communicator comm;
  auto t = at::arange(3, at::kDouble);
  comm.all_reduce_sum({t});
  comm.broadcast({t});
  EXPECT_TRUE(at::equal(t, at::arange(3, at::kDouble)));
  EXPECT_EQ(comm.all_gather(t).size(), 1u);
}

// Two ranks as threads of this process, meeting through a file store.
TEST(Communicator, TwoRanksReduceBroadcastAndGather) {
  auto store = std::filesystem::temp_directory_path() / ("credence_store_" + std::to_string(getpid()));
  std::filesystem::remove(store);
  std::vector<at::Tensor> sums(2), floats(2), roots(2), gathered(2);
  auto rank_main = [&](int rank) {
    DistributedEnv env;
    env.rank = rank;
    env.world_size = 2;
    env.store_file = store.string();
    credence::Communicator comm(env, std::chrono::seconds(30));
    sums[rank] = at::full({2, 3}, rank + 1.0, at::kDouble);
    floats[rank] = at::full({4}, 0.5f * (rank + 1), at::kFloat);
    comm.all_reduce_sum({sums[rank], floats[rank]});
    roots[rank] = at::full({5}, rank == 0 ? 7 : -1, at::kLong);
    comm.broadcast({roots[rank]});
    gathered[rank] = at::stack(comm.all_gather(at::full({2}, rank * 10.0, at::kDouble)));
    comm.barrier();
  };
  std::thread r1(rank_main, 1);
  rank_main(0);
  r1.join();
  std::filesystem::remove(store);
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(at::allclose(sums[r], at::full({2, 3}, 3.0, at::kDouble)));
    EXPECT_TRUE(at::allclose(floats[r], at::full({4}, 1.5f, at::kFloat)));
    EXPECT_TRUE(at::equal(roots[r], at::full({5}, 7, at::kLong)));
    EXPECT_TRUE(at::allclose(gathered[r], at::tensor({0.0, 0.0, 10.0, 10.0}, at::kDouble).view({2, 2})));
  }
}

// Three ranks as threads, sums longer than a slot (8 MiB) in float64 and shorter ones in float32:
// every rank gets the rank-order sum, to the bit.
TEST(SharedMemorySum, EveryRankGetsTheRankOrderSum) {
  const std::string name = "/credence-test-" + std::to_string(getpid());
  constexpr int kRanks = 3;
  std::vector<at::Tensor> big(kRanks), small(kRanks);
  for (int r = 0; r < kRanks; ++r) {
    big[r] = at::randn({1500001}, at::kDouble) * (r + 1);
    small[r] = at::randn({7}, at::kFloat);
  }
  auto expected_big = (big[0] + big[1]) + big[2], expected_small = (small[0] + small[1]) + small[2];
  std::vector<std::unique_ptr<credence::SharedMemorySum>> sums(kRanks);
  sums[0] = std::make_unique<credence::SharedMemorySum>(name, 0, kRanks, /*create=*/true);
  for (int r = 1; r < kRanks; ++r)
    sums[r] = std::make_unique<credence::SharedMemorySum>(name, r, kRanks, /*create=*/false);
  sums[0]->unlink();
  EXPECT_TRUE(sums[0]->peers_visible());
  std::vector<std::thread> ranks;
  for (int r = 0; r < kRanks; ++r)
    ranks.emplace_back([&, r] {
      sums[r]->sum(big[r]);
      sums[r]->sum(small[r]);
    });
  for (auto& t : ranks) t.join();
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_TRUE(at::equal(big[r], expected_big)) << "rank " << r;
    EXPECT_TRUE(at::equal(small[r], expected_small)) << "rank " << r;
  }
}

// A peer that never comes (here: never opened the segment) ends the wait with an error naming it.
TEST(SharedMemorySum, APeerThatIsGoneIsNamed) {
  const std::string name = "/credence-test-gone-" + std::to_string(getpid());
  credence::SharedMemorySum alone(name, 0, 2, /*create=*/true);
  alone.unlink();
  EXPECT_FALSE(alone.peers_visible());
  auto t = at::ones({4}, at::kFloat);
  try {
    alone.sum(t);
    FAIL() << "no error";
  } catch (const credence::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 is gone"), std::string::npos) << e.what();
  }
}

}  // namespace
