#pragma once
// Sums of float tensors across the ranks of one machine through a shared memory segment: each
// rank copies its tensor in, sums its own share of every rank's copy, and copies the total out.
// Over loopback TCP the same sum costs a socket round trip and copies through the kernel that take
// CPU from the ranks' own compute.
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>

namespace credence {

class SharedMemorySum {
 public:
  /// Rank 0 creates the segment `name` (create = true); the others open it. Throws IoError when
  /// shared memory cannot be had (the caller then keeps to Gloo).
  SharedMemorySum(const std::string& name, int rank, int world_size, bool create);
  ~SharedMemorySum();
  SharedMemorySum(const SharedMemorySum&) = delete;
  SharedMemorySum& operator=(const SharedMemorySum&) = delete;

  /// True once every rank has written its process id (after a barrier of the caller's) and each
  /// of them is alive and visible from this process.
  bool peers_visible() const;
  /// Removes the segment's name; the mapping stays while the ranks run.
  void unlink();
  /// Sums `flat` (contiguous, CPU, float32 or float64) across the ranks, in place. Every rank
  /// calls it with the same number of elements. The rank order of the additions is fixed, so every
  /// rank gets the same bits.
  void sum(const torch::Tensor& flat);

  static constexpr int kMaxRanks = 8;

 private:
  struct Header;
  void barrier();
  [[noreturn]] void peer_stopped(int peer) const;
  bool peer_alive(int peer) const;

  std::string name_;
  int rank_, world_size_;
  size_t bytes_ = 0;
  void* base_ = nullptr;
  Header* header_ = nullptr;
  char* slots_ = nullptr;
  uint64_t epoch_ = 0;
};

}  // namespace credence
