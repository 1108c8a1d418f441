// Integration-test harness: starts tests/fake-flare on loopback ephemeral ports, runs the built
// flare-admin binary as a child process (with stdin data, or on a pseudo-terminal for prompts),
// and captures its stdout, stderr and exit status. Binaries come from $FLARE_ADMIN / $FAKE_FLARE.
#pragma once

#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#if defined(__GLIBC__) || __has_include(<malloc.h>)
#include <malloc.h>
#endif
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "flare_tools.hpp"

namespace harness {

inline std::string env_or(const char* name, const char* def) {
  const char* v = std::getenv(name);
  return v && *v ? v : def;
}

inline std::string absolute(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char buf[4096];
  if (!::getcwd(buf, sizeof buf)) return p;
  return std::string(buf) + "/" + p;
}

inline std::string admin_binary() { return absolute(env_or("FLARE_ADMIN", "build/plain/flare-admin")); }
inline std::string fake_binary() { return absolute(env_or("FAKE_FLARE", "build/plain/fake-flare")); }

// A new private folder under $TMPDIR (/tmp if unset). tests/run-suites gives each case a TMPDIR
// of its own, removed when the case passes and kept (its path said) when it fails.
inline std::string make_temp_dir(const char* name = "flare-test-XXXXXX") {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + name;
  char* d = ::mkdtemp(tmpl.data());
  REQUIRE(d != nullptr);
  return d;
}

struct Result {
  int status = -1;
  std::string out, err;
  double seconds = 0;
  long max_rss_kb = 0; // peak resident memory of the child
};

// The peak memory a run may use, from $FLARE_TEST_RSS_LIMIT_KB; 0 (unset) skips the check,
// as under AddressSanitizer, whose shadow memory makes RSS meaningless.
// A whole file's bytes ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes `text` to `path` (created or truncated); fails the test if it cannot.
inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  REQUIRE_MESSAGE(f.good(), "cannot write " << path);
}

// Whether anything (a file, a folder, a link) is at `path`.
inline bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// The names in a folder, sorted, without "." and "..".
inline std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The temporaries a writer of `path` may leave beside it: ".NAME.XXXXXX" (OutputFile's) and
// the old fixed "NAME.tmp". Empty when a writer cleaned up after itself.
inline std::vector<std::string> temporaries_beside(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::vector<std::string> out;
  for (const auto& n : dir_entries(dir))
    if (n.rfind("." + base + ".", 0) == 0 || n == base + ".tmp") out.push_back(n);
  return out;
}

inline long rss_limit_kb() { return std::atol(env_or("FLARE_TEST_RSS_LIMIT_KB", "0").c_str()); }

// Environment for the child: the test's own, minus anything that would pick an index server.
inline std::vector<std::string> child_env(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("FLARE_", 0) == 0) continue;
    if (extra.count(kv.substr(0, kv.find('=')))) continue; // given anew below
    env.push_back(kv);
  }
  for (auto& [k, v] : extra) env.push_back(k + "=" + v);
  // The balances a slave construction keeps (BalanceRecord) go to a folder of this test process,
  // never to the user's ~/.flare-admin.
  if (!extra.count("FLARE_ADMIN_STATE_DIR")) {
    struct StateDir {
      std::string path;
      StateDir() {
        const char* base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/flare-test-state.XXXXXX";
        const char* d = ::mkdtemp(tmpl.data());
        path = d ? d : "/nonexistent";
      }
      ~StateDir() {
        std::error_code ec;
        if (path != "/nonexistent") std::filesystem::remove_all(path, ec);
      }
    };
    static const StateDir dir;
    env.push_back("FLARE_ADMIN_STATE_DIR=" + dir.path);
  }
  return env;
}

// A program, its arguments and its environment, made ready before fork(). Between fork() and
// execve() the child of a process with threads (the replay runs six) may only make
// async-signal-safe calls: another thread may have held the allocator's lock at the fork, and
// under AddressSanitizer a child that allocated there hung before its exec.
class ChildExec {
public:
  ChildExec(std::string path, const std::string& argv0, const std::vector<std::string>& args, std::vector<std::string> env)
      : path_(std::move(path)), env_(std::move(env)) {
    args_.push_back(argv0);
    args_.insert(args_.end(), args.begin(), args.end());
    for (auto& a : args_) av_.push_back(a.data());
    av_.push_back(nullptr);
    for (auto& e : env_) ev_.push_back(e.data());
    ev_.push_back(nullptr);
  }
  ChildExec(const ChildExec&) = delete;
  ChildExec& operator=(const ChildExec&) = delete;
  // In the child: no allocation, only execve (or _exit(127) when it fails). The signals a test
  // sends get their default disposition first: a suite started under nohup or as a shell's
  // background job runs with SIGHUP, SIGINT and SIGQUIT ignored, and the tool keeps a signal its
  // parent ignored (as it should), so a test of its handling would test the environment.
  [[noreturn]] void exec() {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ})
      ::signal(sig, SIG_DFL);
    ::execve(path_.c_str(), av_.data(), ev_.data());
    ::_exit(127);
  }

private:
  std::string path_;
  std::vector<std::string> args_, env_;
  std::vector<char*> av_, ev_;
};

// Runs the binary with `args`, feeding `input` on stdin (then EOF). Kills it after `limit_s`.
// A forked child starts with the parent's resident pages counted as its own, and Linux keeps
// that figure in the child's peak RSS across exec: so the peak that wait4() reports for the tool
// is at least this test process's RSS at the fork. Memory this process freed but malloc kept
// would count against the tool's bound; hand it back first.
inline void release_freed_memory() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

// Starts `child` with its stdin, stdout and stderr on the three pipes (made here) and returns
// its pid; the test keeps in[1] (to write), out[0] and err[0] (to read).
inline pid_t spawn_with_pipes(ChildExec& child, int (&in)[2], int (&out)[2], int (&err)[2]) {
  REQUIRE(::pipe(in) == 0);
  REQUIRE(::pipe(out) == 0);
  REQUIRE(::pipe(err) == 0);
  release_freed_memory();
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
    child.exec();
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  return pid;
}

// Tests of the command line's surface (usage errors, --help, the man page, completion) run the
// tool hundreds of times, and each run ends before anything is asked or sent. In a scope that
// holds a SurfaceRuns, the sanitized tool skips its leak check at exit (LeakSanitizer stops and
// scans the process: about 45 ms of CPU each here); AddressSanitizer and UBSan still check
// every run, and every other test keeps the leak check.
struct SurfaceRuns {
  SurfaceRuns() { on() = true; }
  ~SurfaceRuns() { on() = false; }
  SurfaceRuns(const SurfaceRuns&) = delete;
  SurfaceRuns& operator=(const SurfaceRuns&) = delete;
  static bool& on() {
    static bool value = false;
    return value;
  }
  // The environment for a run: `env`, plus the sanitizer options without the leak check when on.
  static std::map<std::string, std::string> env_for(std::map<std::string, std::string> env) {
    const char* asan = std::getenv("ASAN_OPTIONS");
    if (on() && asan && !env.count("ASAN_OPTIONS")) env["ASAN_OPTIONS"] = std::string(asan) + ":detect_leaks=0";
    return env;
  }
};

inline Result run(const std::vector<std::string>& args, const std::string& input = "",
                  const std::map<std::string, std::string>& env = {}, const std::string& name = "flare-admin",
                  int limit_s = 120) {
  int in[2], out[2], err[2];
  ChildExec child(admin_binary(), name, args, child_env(SurfaceRuns::env_for(env)));
  auto start = std::chrono::steady_clock::now();
  pid_t pid = spawn_with_pipes(child, in, out, err);
  ::signal(SIGPIPE, SIG_IGN);
  if (!input.empty()) {
    ssize_t n = ::write(in[1], input.data(), input.size());
    (void)n;
  }
  ::close(in[1]);
  Result r;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  auto deadline = start + std::chrono::seconds(limit_s);
  while (open_fds > 0) {
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (ms <= 0) {
      ::kill(pid, SIGKILL);
      FAIL("flare-admin did not finish within " << limit_s << " s");
      break;
    }
    if (::poll(fds, 2, ms) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int st = 0;
  struct rusage ru {};
  ::wait4(pid, &st, 0, &ru);
  r.max_rss_kb = ru.ru_maxrss;
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

// Runs the binary on a pseudo-terminal. Each time the output so far ends with a prompt
// ("(y/n): " or "(y/n/a/q/h:help): "), the next answer is typed; when answers run out,
// end of input (Ctrl-D) is sent. `interrupt_after` sends Ctrl-C once that text has appeared.
inline Result run_tty(const std::vector<std::string>& args, std::vector<std::string> answers,
                      const std::string& interrupt_after = "", int limit_s = 120) {
  ChildExec child(admin_binary(), "flare-admin", args, child_env({}));
  release_freed_memory();
  int master = -1;
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  REQUIRE(pid >= 0);
  if (pid == 0) child.exec();
  Result r;
  size_t answered_upto = 0, next = 0;
  bool interrupted = false;
  auto deadline = start + std::chrono::seconds(limit_s);
  for (;;) {
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (ms <= 0) {
      ::kill(pid, SIGKILL);
      FAIL("flare-admin did not finish within " << limit_s << " s");
      break;
    }
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, std::min(ms, 100)) > 0) {
      char buf[4096];
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) break; // EIO once the child is gone
      r.out.append(buf, static_cast<size_t>(n));
    }
    if (!interrupt_after.empty() && !interrupted && r.out.find(interrupt_after) != std::string::npos) {
      interrupted = true;
      ::kill(pid, SIGINT);
    }
    auto ends_with = [&](const std::string& s) {
      return r.out.size() >= s.size() && r.out.compare(r.out.size() - s.size(), s.size(), s) == 0;
    };
    // Once Ctrl-C is sent nothing more is typed (the question it interrupted is not answered).
    if (!interrupted && r.out.size() > answered_upto && (ends_with("(y/n): ") || ends_with("(y/n/a/q/h:help): "))) {
      answered_upto = r.out.size();
      if (next < answers.size()) {
        std::string a = answers[next++] + "\n";
        ssize_t n = ::write(master, a.data(), a.size());
        (void)n;
      } else {
        char eot = 4; // Ctrl-D: end of input on a terminal
        ssize_t n = ::write(master, &eot, 1);
        (void)n;
      }
    }
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  ::close(master);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // The terminal turns "\n" into "\r\n" and echoes what was typed.
  std::string clean;
  for (size_t i = 0; i < r.out.size(); ++i)
    if (!(r.out[i] == '\r' && i + 1 < r.out.size() && r.out[i + 1] == '\n')) clean += r.out[i];
  r.out = clean;
  return r;
}

struct Interrupted {
  int status = -1;
  double seconds_after_signal = 0;
  std::string err;
};

// Starts the binary, sends it `sig` (Ctrl-C's SIGINT unless told) after `delay_ms` and, if
// `ready` is given, once it holds too (asked every 10 ms, for at most 60 s: a point in the run
// that a fixed delay reaches only on an idle machine), runs `after_signal` (if any: e.g. let a
// stalled fake go on), and measures how long it takes to exit.
inline Interrupted interrupt_after(const std::vector<std::string>& args, int delay_ms, int sig = SIGINT,
                                   const std::function<void()>& after_signal = nullptr,
                                   const std::function<bool()>& ready = nullptr) {
  int err[2];
  REQUIRE(::pipe(err) == 0);
  harness::ChildExec child(harness::admin_binary(), "flare-admin", args, harness::child_env({}));
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(err[1], 2);
    ::close(err[0]);
    ::close(err[1]);
    child.exec();
  }
  ::close(err[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  for (int i = 0; ready && i < 6000 && !ready(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto sent = std::chrono::steady_clock::now();
  ::kill(pid, sig);
  if (after_signal) after_signal();
  Interrupted r;
  int st = 0;
  for (int i = 0; i < 3000; ++i) { // at most 30 s, then kill
    if (::waitpid(pid, &st, WNOHANG) == pid) break;
    if (i == 2999) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.seconds_after_signal = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  char buf[4096];
  for (ssize_t n; (n = ::read(err[0], buf, sizeof buf)) > 0;) r.err.append(buf, static_cast<size_t>(n));
  ::close(err[0]);
  return r;
}


// A fake flare cluster (tests/fake-flare) on loopback ephemeral ports, for one test.
class FakeCluster {
public:
  explicit FakeCluster(int nodes = 3, const std::vector<std::string>& extra = {}) {
    dir_ = make_temp_dir();
    std::string ready = dir_ + "/ready";
    std::vector<std::string> args = {"--nodes", std::to_string(nodes), "--ready-file", ready, "--exit-on-stdin-eof"};
    args.insert(args.end(), extra.begin(), extra.end());
    int in[2];
    REQUIRE(::pipe(in) == 0);
    // The fake is the tests' own instrument: AddressSanitizer checks its memory, but its leak
    // check at exit (LeakSanitizer stops and scans the process: about 0.1 s of CPU for each of
    // the suite's hundreds of fakes) is left to the tool's and the unit tests' runs.
    std::map<std::string, std::string> fake_env;
    if (const char* asan = std::getenv("ASAN_OPTIONS")) fake_env["ASAN_OPTIONS"] = std::string(asan) + ":detect_leaks=0";
    ChildExec child(fake_binary(), "fake-flare", args, child_env(fake_env));
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::close(in[0]);
      ::close(in[1]);
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      child.exec();
    }
    ::close(in[0]);
    stdin_fd_ = in[1];
    for (int i = 0; i < 1000; ++i) {
      std::ifstream f(ready);
      if (f) {
        std::string what;
        int port;
        while (f >> what >> port) {
          if (what == "index") index_port = port;
          else if (what == "control") control_port = port;
          else if (what == "node") node_ports.push_back(port);
        }
        if (index_port && control_port && static_cast<int>(node_ports.size()) == nodes) break;
        node_ports.clear();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE_MESSAGE(index_port != 0, "fake-flare did not start");
  }
  ~FakeCluster() {
    ::close(stdin_fd_);
    int st;
    for (int i = 0; i < 300; ++i) {
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
    }
    std::string cmd = "rm -rf '" + dir_ + "'";
    int rc = std::system(cmd.c_str());
    (void)rc;
  }
  FakeCluster(const FakeCluster&) = delete;
  FakeCluster& operator=(const FakeCluster&) = delete;

  std::string index() const { return "127.0.0.1:" + std::to_string(index_port); }
  std::string node(size_t i) const { return "127.0.0.1:" + std::to_string(node_ports.at(i)); }
  std::vector<std::string> index_args() const { return {"-i", index()}; }
  const std::string& dir() const { return dir_; }

  // One line to the control port; returns its reply (without CRLF). Multi-line replies end in END.
  std::string control(const std::string& line) {
    flare::ServerClient c(flare::Endpoint{"127.0.0.1", control_port}, 10000);
    c.send_line(line);
    std::string out;
    for (;;) {
      std::string l(c.socket().read_line());
      if (!out.empty()) out += "\n";
      out += l;
      if (l == "OK" || l == "END" || l.rfind("ERROR", 0) == 0 || l.rfind("ITEMS", 0) == 0 || l.rfind("COUNT", 0) == 0) break;
    }
    c.socket().close();
    return out;
  }
  void must(const std::string& line) { REQUIRE_MESSAGE(control(line) == "OK", line); }
  // The connections TARGET (a node key or "index") has accepted so far (control `connections`).
  long long connections(const std::string& target) { return count("connections " + target); }
  // The request bytes TARGET has read so far (control `received`).
  long long received(const std::string& target) { return count("received " + target); }
  long long count(const std::string& line) {
    std::string r = control(line);
    REQUIRE_MESSAGE(r.rfind("COUNT ", 0) == 0, r);
    return std::atoll(r.c_str() + 6);
  }

  // A request to the index or a node, as a raw protocol client.
  flare::Reply request(int port, const std::string& line) {
    flare::ServerClient c(flare::Endpoint{"127.0.0.1", port}, 10000);
    return c.request(line);
  }
  flare::Cluster cluster() {
    flare::IndexClient c(flare::Endpoint{"127.0.0.1", index_port}, 10000);
    return flare::Cluster(c.stats_nodes());
  }
  long long items(size_t i) {
    flare::NodeClient c(flare::Endpoint{"127.0.0.1", node_ports.at(i)}, 10000);
    return c.stats().number("curr_items").value_or(-1);
  }
  std::vector<std::string> state_changes() {
    std::string r = control("requests");
    std::vector<std::string> out;
    std::istringstream in(r);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("REQ ", 0) == 0) out.push_back(line.substr(4));
    return out;
  }

  int index_port = 0, control_port = 0;
  std::vector<int> node_ports;

private:
  std::string dir_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
};

// Node 0 the master of partition 0, node 1 its slave (balance 1 each), as set-node forces them.
inline void master_and_slave(FakeCluster& f) {
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 1");
}

// The number of lines of a text (its "\n" bytes).
inline size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// Argument lists: with({"list"}, {"-i", index}).
inline std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline std::string hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

// A node's `stats` reply as a real flared 1.3.4 sends it, with chosen items, bytes and counters.
inline std::string node_stats_reply(long long items, long long bytes, long long uptime, long long cmd_get = 0,
                                    long long get_hits = 0, long long cmd_set = 0) {
  std::ostringstream s;
  s << "STAT pid 8982\r\nSTAT uptime " << uptime << "\r\nSTAT time 1795556028\r\nSTAT version 1.3.4\r\n"
    << "STAT pointer_size 64\r\nSTAT rusage_user 0.013935\r\nSTAT rusage_system 0.006967\r\n"
    << "STAT curr_items " << items << "\r\nSTAT total_items " << items << "\r\nSTAT bytes " << bytes << "\r\n"
    << "STAT curr_connections 2\r\nSTAT total_connections 4\r\nSTAT connection_structures 0\r\n"
    << "STAT cmd_get " << cmd_get << "\r\nSTAT cmd_set " << cmd_set << "\r\nSTAT get_hits " << get_hits
    << "\r\nSTAT get_misses " << (cmd_get - get_hits) << "\r\n"
    << "STAT delete_hits 0\r\nSTAT delete_misses 0\r\nSTAT incr_hits 0\r\nSTAT incr_misses 0\r\n"
    << "STAT decr_hits 0\r\nSTAT decr_misses 0\r\nSTAT cas_hits 0\r\nSTAT cas_misses 0\r\nSTAT cas_badval 0\r\n"
    << "STAT touch_hits 0\r\nSTAT touch_misses 0\r\nSTAT evictions 0\r\nSTAT bytes_read 486\r\n"
    << "STAT bytes_written 98\r\nSTAT limit_maxbytes 0\r\nSTAT threads 3\r\nSTAT pool_threads 0\r\n"
    << "STAT node_map_version 3\r\nEND\r\n";
  return s.str();
}

inline std::string pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }

} // namespace harness
