#pragma once
/// Process groups for data-parallel runs on PyTorch's c10d engine (Gloo), joined through the
/// environment `torchrun` sets or a shared file store; a 1-process communicator otherwise.
#include <torch/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace credence {

/// Where this process's group meets, as read from the environment.
struct DistributedEnv {
  int rank = 0, world_size = 1;
  std::string master_addr;  ///< TCPStore host (rank 0 serves it)
  int master_port = 0;
  std::string store_file;   ///< a shared FileStore path (CREDENCE_STORE=FILE) instead of a TCPStore
};

/// Reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT and CREDENCE_STORE through `getenv` (the
/// process environment when empty). No RANK and no WORLD_SIZE, or WORLD_SIZE=1, is one process.
/// Throws InvalidArgument naming the variable and the fix for a missing or bad value.
DistributedEnv parse_distributed_env(const std::function<const char*(const char*)>& getenv = {});

class Communicator {
 public:
  /// One process: every collective leaves its tensors as they are.
  Communicator();
  /// Joins the group `env` describes; blocks until every rank has joined or `timeout` passes.
  explicit Communicator(const DistributedEnv& env, std::chrono::seconds timeout = std::chrono::seconds(300));
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_root() const { return rank_ == 0; }
  /// True when the ranks meet over the loopback (MASTER_ADDR 127.0.0.1 or localhost, as `credence
  /// launch` sets it): all on this machine.
  bool on_one_machine() const { return on_one_machine_; }

  /// How the ranks exchange: "gloo", "gloo, float sums through shared memory" (ranks on one
  /// machine; CREDENCE_SHM=0 keeps them on Gloo), or "none" (one process).
  std::string transport() const;
  /// Sums each tensor across ranks, in place (one collective per dtype).
  void all_reduce_sum(const std::vector<torch::Tensor>& tensors) const;
  /// Starts summing one contiguous CPU tensor across ranks, in place, and returns at once; the
  /// returned function waits for the sum. Every rank must start the same collectives in the same
  /// order (Gloo matches them by sequence).
  std::function<void()> start_all_reduce_sum(const torch::Tensor& tensor) const;
  /// Copies `root`'s tensors into every rank's, in place.
  void broadcast(const std::vector<torch::Tensor>& tensors, int root = 0) const;
  /// Every rank's `tensor` (the same shape on each), in rank order.
  std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor) const;
  void barrier() const;

 private:
  struct Group;
  std::unique_ptr<Group> group_;
  int rank_ = 0, world_size_ = 1;
  bool on_one_machine_ = true;
};

/// Whether ranks on one machine may sum through shared memory: unless CREDENCE_SHM=0.
bool shared_memory_sums_wanted();

/// The process-group backend this build has: "gloo" (CPU tensors), or "none" when it was built
/// without libgloo-dev (one process only).
std::string process_group_backend();

/// How long world_communicator() waits for every rank to join (default 300 s); set it before
/// the first use (the CLI's --dist-timeout).
void set_join_timeout(std::chrono::seconds timeout);
/// The process-wide communicator, built from the environment on first use.
const Communicator& world_communicator();
/// False only in a non-zero rank of a distributed run (from RANK; joins no group): such ranks
/// write no files and print no results.
bool is_root_process();

}  // namespace credence
