#include "credence/core/distributed.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>

#include "credence/core/error.h"
#include "shared_memory_sum.h"

#ifdef CREDENCE_HAVE_GLOO
#include "c10d_gloo.h"
#endif

namespace credence {
namespace {

const char* kHowToSet =
    "set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (as torchrun and `credence launch` do), or unset RANK "
    "and WORLD_SIZE for one process";

long parse_env_int(const char* name, const std::string& text, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0)
    throw InvalidArgument(fmt::format("{}='{}' is not an integer; {}", name, text, kHowToSet));
  if (v < lo || v > hi)
    throw InvalidArgument(fmt::format("{}={} must be in [{}, {}]; {}", name, v, lo, hi, kHowToSet));
  return v;
}

}  // namespace

DistributedEnv parse_distributed_env(const std::function<const char*(const char*)>& getenv) {
  auto get = [&](const char* name) -> std::string {
    const char* v = getenv ? getenv(name) : std::getenv(name);
    return v ? v : "";
  };
  DistributedEnv env;
  const std::string rank = get("RANK"), world = get("WORLD_SIZE");
  if (rank.empty() && world.empty()) return env;
  if (rank.empty() || world.empty())
    throw InvalidArgument(fmt::format("{} is set but {} is not; {}", rank.empty() ? "WORLD_SIZE" : "RANK",
                                      rank.empty() ? "RANK" : "WORLD_SIZE", kHowToSet));
  env.world_size = static_cast<int>(parse_env_int("WORLD_SIZE", world, 1, 1 << 16));
  env.rank = static_cast<int>(parse_env_int("RANK", rank, 0, 1 << 16));
  if (env.rank >= env.world_size)
    throw InvalidArgument(fmt::format("RANK={} must be below WORLD_SIZE={} (ranks are 0 .. WORLD_SIZE - 1)",
                                      env.rank, env.world_size));
  if (env.world_size == 1) return env;
  env.store_file = get("CREDENCE_STORE");
  if (!env.store_file.empty()) return env;
  env.master_addr = get("MASTER_ADDR");
  if (env.master_addr.empty())
    throw InvalidArgument(
        "MASTER_ADDR is not set: set it to rank 0's host (127.0.0.1 on one machine), or set CREDENCE_STORE to a "
        "file every rank can reach");
  const std::string port = get("MASTER_PORT");
  if (port.empty())
    throw InvalidArgument(
        "MASTER_PORT is not set: set it to a free TCP port on rank 0's host, the same for every rank (e.g. 29500)");
  env.master_port = static_cast<int>(parse_env_int("MASTER_PORT", port, 1, 65535));
  return env;
}

#ifdef CREDENCE_HAVE_GLOO
namespace {
// Each rank announces itself in the store, then waits for the others; on timeout the message
// names the ranks that never came.
void wait_for_ranks(::c10d::Store& store, int rank, int world, std::chrono::seconds timeout) {
  auto key = [](int r) { return fmt::format("credence/joined/{}", r); };
  store.set(key(rank), std::vector<uint8_t>{1});
  std::vector<std::string> keys;
  for (int r = 0; r < world; ++r) keys.push_back(key(r));
  try {
    store.wait(keys, timeout);
  } catch (const c10::Error&) {
    std::vector<int> missing;
    for (int r = 0; r < world; ++r)
      if (!store.check({key(r)})) missing.push_back(r);
    throw IoError(fmt::format(
        "rank {} of {}: rank(s) {} did not join within {} s (--dist-timeout); start all {} ranks with the same "
        "MASTER_ADDR/MASTER_PORT, or use `credence launch -n {}`",
        rank, world, fmt::join(missing, ", "), timeout.count(), world, world));
  }
}
}  // namespace

// Ranks on one machine sum float tensors through shared memory unless CREDENCE_SHM=0. Every rank
// takes part in the setup whatever it wants, so the group agrees: all use it or none does.
std::unique_ptr<SharedMemorySum> open_shared_memory(::c10d::Store& store, c10d_gloo::Group& gloo, int rank,
                                                    int world) {
  const bool wanted = shared_memory_sums_wanted() && world <= SharedMemorySum::kMaxRanks;
  std::unique_ptr<SharedMemorySum> shm;
  const std::string key = "credence/shared_memory";
  try {
    if (rank == 0) {
      std::string name;
      if (wanted) {
        name = fmt::format("/credence-{}-{}", getpid(), std::chrono::steady_clock::now().time_since_epoch().count());
        try {
          shm = std::make_unique<SharedMemorySum>(name, 0, world, /*create=*/true);
        } catch (const IoError&) {
          name.clear();
        }
      }
      store.set(key, std::vector<uint8_t>(name.begin(), name.end()));
    } else {
      auto bytes = store.get(key);
      const std::string name(bytes.begin(), bytes.end());
      if (wanted && !name.empty()) shm = std::make_unique<SharedMemorySum>(name, rank, world, /*create=*/false);
    }
  } catch (const IoError&) {
    shm.reset();
  }
  gloo.barrier()->wait();  // every rank has opened the segment and written its process id, or failed
  std::vector<torch::Tensor> ready = {at::full({1}, shm && shm->peers_visible() ? 1 : 0, at::kInt)};
  gloo.allreduce(ready)->wait();
  if (shm && rank == 0) shm->unlink();
  if (ready[0].item<int>() != world) shm.reset();
  return shm;
}

struct Communicator::Group {
  c10::intrusive_ptr<::c10d::Store> store;
  c10::intrusive_ptr<c10d_gloo::Group> gloo;
  std::unique_ptr<SharedMemorySum> shared_memory;
};
#else
struct Communicator::Group {};
#endif

Communicator::Communicator() = default;
Communicator::~Communicator() = default;

Communicator::Communicator(const DistributedEnv& env, std::chrono::seconds timeout)
    : rank_(env.rank), world_size_(env.world_size) {
  if (world_size_ == 1) return;
#ifdef CREDENCE_HAVE_GLOO
  const std::string where = env.store_file.empty() ? fmt::format("{}:{}", env.master_addr, env.master_port)
                                                   : "file store " + env.store_file;
  try {
    group_ = std::make_unique<Group>();
    if (!env.store_file.empty()) {
      group_->store = c10::make_intrusive<::c10d::FileStore>(env.store_file, world_size_);
    } else {
      ::c10d::TCPStoreOptions opts;
      opts.port = static_cast<uint16_t>(env.master_port);
      opts.isServer = rank_ == 0;
      opts.numWorkers = world_size_;
      opts.waitWorkers = false;  // the join below names the ranks that are missing
      opts.timeout = timeout;
      group_->store = c10::make_intrusive<::c10d::TCPStore>(env.master_addr, opts);
    }
    group_->store->setTimeout(timeout);
    wait_for_ranks(*group_->store, rank_, world_size_, timeout);
    const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
    const bool loopback = env.master_addr == "127.0.0.1" || env.master_addr == "localhost";
    on_one_machine_ = loopback;
    // Steps synchronize every few milliseconds; a long wait means a rank died or hangs.
    group_->gloo = c10d_gloo::make_group(group_->store, rank_, world_size_, interface ? interface : "",
                                         loopback ? "127.0.0.1" : "", std::chrono::minutes(30));
    if (loopback) group_->shared_memory = open_shared_memory(*group_->store, *group_->gloo, rank_, world_size_);
  } catch (const c10::Error& e) {
    throw IoError(fmt::format(
        "rank {} of {} could not join the process group at {} within {} s (--dist-timeout): {}; check that every "
        "rank uses the same MASTER_ADDR/MASTER_PORT (or CREDENCE_STORE), that the port is free and that all {} "
        "ranks started",
        rank_, world_size_, where, timeout.count(), e.what_without_backtrace(), world_size_));
  }
#else
  throw NotSupported(
      "this build has no Gloo process groups (libgloo-dev was missing when it was configured): install it and "
      "rebuild, or run one process");
#endif
}

void Communicator::all_reduce_sum(const std::vector<torch::Tensor>& tensors) const {
#ifdef CREDENCE_HAVE_GLOO
  if (!group_) return;
  // One buffer per dtype: Gloo reduces one flat CPU tensor per call.
  std::map<at::ScalarType, std::vector<torch::Tensor>> by_dtype;
  for (const auto& t : tensors)
    if (t.defined() && t.numel() > 0) by_dtype[t.scalar_type()].push_back(t);
  auto sum = [&](std::vector<torch::Tensor>& buf) {
    const auto dtype = buf[0].scalar_type();
    if (group_->shared_memory && (dtype == at::kFloat || dtype == at::kDouble))
      group_->shared_memory->sum(buf[0]);
    else
      group_->gloo->allreduce(buf)->wait();
  };
  for (auto& [dtype, ts] : by_dtype) {
    if (ts.size() == 1 && ts[0].is_contiguous() && ts[0].device().is_cpu()) {  // in place: no copies
      std::vector<torch::Tensor> buf = {ts[0].detach().view({-1})};
      sum(buf);
      continue;
    }
    std::vector<torch::Tensor> flat_parts;
    for (const auto& t : ts) flat_parts.push_back(t.detach().reshape({-1}).to(at::kCPU));
    std::vector<torch::Tensor> buf = {at::cat(flat_parts).contiguous()};
    sum(buf);
    int64_t offset = 0;
    for (auto& t : ts) {
      t.detach().copy_(buf[0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
#endif
}

std::function<void()> Communicator::start_all_reduce_sum(const torch::Tensor& tensor) const {
#ifdef CREDENCE_HAVE_GLOO
  if (group_ && tensor.numel() > 0) {
    if (!tensor.is_contiguous() || !tensor.device().is_cpu())
      throw InvalidArgument("start_all_reduce_sum needs a contiguous CPU tensor");
    std::vector<torch::Tensor> buf = {tensor.detach().view({-1})};
    auto work = group_->gloo->allreduce(buf);
    return [work] { work->wait(); };
  }
#endif
  return [] {};
}

void Communicator::broadcast(const std::vector<torch::Tensor>& tensors, int root) const {
#ifdef CREDENCE_HAVE_GLOO
  if (!group_) return;
  ::c10d::BroadcastOptions opts;
  opts.rootRank = root;
  for (const auto& t : tensors) {
    if (!t.defined() || t.numel() == 0) continue;
    std::vector<torch::Tensor> buf = {t.detach().to(at::kCPU).contiguous().clone()};
    group_->gloo->broadcast(buf, opts)->wait();
    t.detach().copy_(buf[0]);
  }
#endif
}

std::vector<torch::Tensor> Communicator::all_gather(const torch::Tensor& tensor) const {
  if (world_size_ == 1) return {tensor};
  std::vector<torch::Tensor> out;
#ifdef CREDENCE_HAVE_GLOO
  std::vector<torch::Tensor> input = {tensor.detach().to(at::kCPU).contiguous()};
  std::vector<std::vector<torch::Tensor>> output(1);
  for (int r = 0; r < world_size_; ++r) output[0].push_back(at::empty_like(input[0]));
  group_->gloo->allgather(output, input)->wait();
  for (auto& t : output[0]) out.push_back(t.to(tensor.device()));
#endif
  return out;
}

std::string Communicator::transport() const {
#ifdef CREDENCE_HAVE_GLOO
  if (group_ && group_->shared_memory) return "gloo, float sums through shared memory";
  if (group_) return "gloo";
#endif
  return "none";
}

void Communicator::barrier() const {
#ifdef CREDENCE_HAVE_GLOO
  if (group_) group_->gloo->barrier()->wait();
#endif
}

bool shared_memory_sums_wanted() {
  const char* env = std::getenv("CREDENCE_SHM");
  return !(env && std::string(env) == "0");
}

std::string process_group_backend() {
#ifdef CREDENCE_HAVE_GLOO
  return "gloo";
#else
  return "none";
#endif
}

namespace {
std::chrono::seconds g_join_timeout(300);
}

void set_join_timeout(std::chrono::seconds timeout) { g_join_timeout = timeout; }

const Communicator& world_communicator() {
  static const Communicator world(parse_distributed_env(), g_join_timeout);
  return world;
}

bool is_root_process() {
  const char* rank = std::getenv("RANK");
  const char* world = std::getenv("WORLD_SIZE");
  if (!rank || !world) return true;
  return std::strtol(rank, nullptr, 10) == 0 || std::strtol(world, nullptr, 10) <= 1;
}

}  // namespace credence
