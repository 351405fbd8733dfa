#pragma once
// The one place that knows how LibTorch versions differ in c10d's Gloo process group. Included
// only by distributed.cpp, which is compiled with USE_C10D_GLOO (see CMakeLists.txt).
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

#include <chrono>
#include <string>

namespace credence::c10d_gloo {

// ProcessGroupGloo derives from ProcessGroup in 1.13 and from Backend in 2.x; both bases declare
// the collectives used here with the same signatures.
#if TORCH_VERSION_MAJOR >= 2
using Group = ::c10d::Backend;
#else
using Group = ::c10d::ProcessGroup;
#endif

/// A Gloo group over `store` whose transport binds to `interface` if given, else to `host`
/// (e.g. the loopback address), else to this machine's resolved hostname.
inline c10::intrusive_ptr<Group> make_group(const c10::intrusive_ptr<::c10d::Store>& store, int rank, int size,
                                            const std::string& interface, const std::string& host,
                                            std::chrono::milliseconds timeout) {
  auto options = ::c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(!interface.empty() ? ::c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                             : !host.empty()    ? ::c10d::ProcessGroupGloo::createDeviceForHostname(host)
                                                : ::c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<::c10d::ProcessGroupGloo>(store, rank, size, options);
}

}  // namespace credence::c10d_gloo
