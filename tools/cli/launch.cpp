// launch: N copies of a command as the ranks of one process group on this machine, in the
// environment torchrun sets. Ranks are exec'd, not just forked: a fork of a process whose OpenMP
// threads ran hangs.
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>

#include "common.h"
#include "credence/core/error.h"

extern char** environ;

namespace credence::cli {
namespace {

const char* kRankVariables[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"};

// A loopback port free now; rank 0's store binds it moments later.
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const bool ok = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  if (fd >= 0) close(fd);
  if (!ok) throw IoError(fmt::format("launch: found no free TCP port ({}); pass --master-port", std::strerror(errno)));
  return ntohs(addr.sin_port);
}

std::string self_executable() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw IoError("launch: cannot find this program's path in /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

std::vector<std::string> rank_environment(int rank, int world, int port) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    bool ours = false;
    for (const char* name : kRankVariables)
      ours = ours || (std::strncmp(*e, name, std::strlen(name)) == 0 && (*e)[std::strlen(name)] == '=');
    if (!ours) env.emplace_back(*e);
  }
  for (auto [name, value] : {std::pair{"RANK", rank}, std::pair{"WORLD_SIZE", world}, std::pair{"LOCAL_RANK", rank},
                             std::pair{"LOCAL_WORLD_SIZE", world}, std::pair{"MASTER_PORT", port}})
    env.push_back(fmt::format("{}={}", name, value));
  env.emplace_back("MASTER_ADDR=127.0.0.1");
  return env;
}

volatile sig_atomic_t g_signal = 0;
extern "C" void note_signal(int sig) { g_signal = sig; }

// SIGINT/SIGTERM to the launcher are recorded (waitpid then returns EINTR) and passed on to the
// ranks, so that stopping the launcher stops the run instead of orphaning its ranks.
void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = note_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: waitpid must return
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Starts every rank, waits for all; the first failure stops the others and gives the exit code.
// A stop signal is forwarded to every rank; the launcher waits for them and exits 128 + signal.
int run_ranks(int world, int port, std::vector<std::string> command) {
  catch_stop_signals();
  if (command[0] == "credence") command[0] = self_executable();
  if (port == 0) port = free_port();
  std::map<pid_t, int> running;
  int code = 0;
  auto stop_others = [&] {
    for (auto& [pid, rank] : running) kill(pid, SIGTERM);
  };
  for (int rank = 0; rank < world; ++rank) {
    auto env = rank_environment(rank, world, port);
    std::vector<char*> argv, envp;
    for (auto& a : command) argv.push_back(a.data());
    for (auto& e : env) envp.push_back(e.data());
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      execvpe(argv[0], argv.data(), envp.data());
      fmt::print(stderr, "credence launch: cannot run '{}': {}\n", argv[0], std::strerror(errno));
      _exit(127);
    }
    if (pid < 0) {
      stop_others();
      code = 1;
      fmt::print(stderr, "credence launch: cannot start rank {}: {}\n", rank, std::strerror(errno));
      break;
    }
    running[pid] = rank;
  }
  bool forwarded = false;
  while (!running.empty()) {
    if (g_signal && !forwarded) {
      forwarded = true;
      fmt::print(stderr, "credence launch: {}: stopping the {} rank(s)\n", strsignal(g_signal), running.size());
      for (auto& [pid, rank] : running) kill(pid, g_signal);
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) break;
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const int rank = it->second, rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    running.erase(it);
    if (rc != 0 && code == 0) {
      code = rc;
      if (!running.empty())
        fmt::print(stderr, "credence launch: rank {} exited with code {}; stopping the other ranks\n", rank, rc);
      stop_others();
    }
  }
  return g_signal ? 128 + g_signal : code;
}

}  // namespace

void add_launch(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "launch", "run N copies of a command as one data-parallel group on this machine (as torchrun does)");
  struct Args {
    int processes = 2;
    int port = 0;
    std::vector<std::string> command;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("-n,--nproc", args->processes, "processes (ranks)")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--master-port", args->port, "TCP port of rank 0's store (default: a free one)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("command", args->command, "the command, after --: e.g. -- credence fit --data ... --out f.crd")
      ->required();
  cmd->callback([args] {
    const int code = run_ranks(args->processes, args->port, args->command);
    if (code != 0) std::exit(code);
  });
}

}  // namespace credence::cli
