#include "shared_memory_sum.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include "credence/core/error.h"

namespace credence {
namespace {

// Each rank's slot: a sum larger than this goes in chunks.
constexpr size_t kSlotBytes = size_t{8} << 20;
// As Gloo's own timeout here: a peer that neither arrives nor dies for this long hangs.
constexpr auto kTimeout = std::chrono::minutes(30);

struct alignas(64) Arrival {
  std::atomic<uint64_t> epoch;
};

}  // namespace

struct SharedMemorySum::Header {
  std::atomic<int64_t> pid[kMaxRanks];
  Arrival arrived[kMaxRanks];  // one cache line each: ranks write their own only
};

SharedMemorySum::SharedMemorySum(const std::string& name, int rank, int world_size, bool create)
    : name_(name), rank_(rank), world_size_(world_size) {
  static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free,
                "shared memory synchronization needs lock-free 64-bit atomics");
  if (world_size < 2 || world_size > kMaxRanks)
    throw IoError(fmt::format("shared memory sums take 2 to {} ranks, not {}", kMaxRanks, world_size));
  const size_t header = (sizeof(Header) + 4095) / 4096 * 4096;
  bytes_ = header + kSlotBytes * static_cast<size_t>(world_size);
  const int fd = shm_open(name.c_str(), create ? O_CREAT | O_EXCL | O_RDWR : O_RDWR, 0600);
  if (fd < 0) throw IoError(fmt::format("shm_open '{}': {}", name, std::strerror(errno)));
  // Reserve the pages now: a segment that outgrows /dev/shm later would end the process (SIGBUS).
  const int reserved = create ? posix_fallocate(fd, 0, static_cast<off_t>(bytes_)) : 0;
  if (reserved == 0) base_ = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (reserved != 0 || base_ == MAP_FAILED) {
    base_ = nullptr;
    if (create) shm_unlink(name.c_str());
    throw IoError(fmt::format("shared memory '{}' of {} bytes: {}", name, bytes_,
                              std::strerror(reserved != 0 ? reserved : errno)));
  }
  header_ = static_cast<Header*>(base_);  // zero-filled by the kernel: every epoch and pid 0
  slots_ = static_cast<char*>(base_) + header;
  header_->pid[rank_].store(static_cast<int64_t>(getpid()), std::memory_order_release);
}

SharedMemorySum::~SharedMemorySum() {
  if (base_) munmap(base_, bytes_);
}

void SharedMemorySum::unlink() { shm_unlink(name_.c_str()); }

bool SharedMemorySum::peer_alive(int peer) const {
  const auto pid = static_cast<pid_t>(header_->pid[peer].load(std::memory_order_acquire));
  if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH)) return false;
  // A killed process stays a zombie until its parent reaps it: alive to kill(), but gone.
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  const auto close = text.rfind(')');
  return close == std::string::npos || close + 2 >= text.size() || text[close + 2] != 'Z';
}

bool SharedMemorySum::peers_visible() const {
  for (int r = 0; r < world_size_; ++r)
    if (!peer_alive(r)) return false;
  return true;
}

void SharedMemorySum::peer_stopped(int peer) const {
  throw IoError(fmt::format(
      "another process of this data-parallel run stopped (rank {} is gone); its own error message says why. Fix "
      "that and start the run again",
      peer));
}

// Every rank announces the next epoch and waits for the others: spinning briefly (the ranks
// usually arrive within microseconds of each other), then yielding the core, checking now and
// then that the awaited peer still lives.
void SharedMemorySum::barrier() {
  ++epoch_;
  header_->arrived[rank_].epoch.store(epoch_, std::memory_order_release);
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < world_size_; ++r) {
    for (uint64_t spins = 0; header_->arrived[r].epoch.load(std::memory_order_acquire) < epoch_; ++spins) {
      if (spins < 256) continue;
      sched_yield();
      if (spins % 4096 == 0) {
        if (!peer_alive(r)) peer_stopped(r);
        if (std::chrono::steady_clock::now() - start > kTimeout) peer_stopped(r);
      }
    }
  }
}

void SharedMemorySum::sum(const torch::Tensor& flat) {
  const auto dtype = flat.scalar_type();
  const size_t item = flat.element_size();
  const int64_t n = flat.numel(), chunk = static_cast<int64_t>(kSlotBytes / item);
  auto slot = [&](int r, int64_t count) {
    return at::from_blob(slots_ + kSlotBytes * static_cast<size_t>(r), {count}, at::TensorOptions().dtype(dtype));
  };
  for (int64_t offset = 0; offset < n; offset += chunk) {
    const int64_t m = std::min(chunk, n - offset);
    auto mine = flat.narrow(0, offset, m);
    slot(rank_, m).copy_(mine);
    barrier();
    // This rank's share of the chunk, summed in rank order into slot 0 (which only this rank
    // reads or writes in that range until the next barrier).
    const int64_t lo = m * rank_ / world_size_, hi = m * (rank_ + 1) / world_size_;
    if (hi > lo) {
      auto total = slot(0, m).narrow(0, lo, hi - lo);
      for (int r = 1; r < world_size_; ++r) total.add_(slot(r, m).narrow(0, lo, hi - lo));
    }
    barrier();
    mine.copy_(slot(0, m));
    barrier();  // nobody refills a slot before every rank has read the total
  }
}

}  // namespace credence
