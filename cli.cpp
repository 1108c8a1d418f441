// flare-admin / flare-stats: the command line over flare_tools.hpp.
// This file parses options, asks questions and prints; the logic lives in the header.
#include "flare_tools.hpp"

#include <csignal>
#include <cstring>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <regex.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

namespace {

using namespace flare;

constexpr int EXIT_OK = 0;
constexpr int EXIT_FAIL = 1;
constexpr int EXIT_USAGE = 2;

// A failure already explained to the user (or a refusal): exit with this status, print nothing more.
struct Exit {
  int status;
};

// How every message shows a user's argument: quoted, with anything that is not printable
// ASCII (a newline, a control byte, a non-ASCII byte) escaped as \xHH, so that an argument
// never splits a one-line error and looks the same in every message.
std::string shown(std::string_view arg) { return "'" + printable(arg, 200) + "'"; }

// A message printed as one line: control bytes (a newline inside a server's answer or an
// argument that reached the text unescaped) are escaped, other text is left as it is.
std::string one_line(std::string_view msg) {
  std::string out;
  for (unsigned char ch : msg) {
    if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

// Thrown for bad command lines: printed with a hint and exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A HOST:PORT argument. Anything else is a usage error in 0.7.3's words ("invalid argument
// 'X'. it must be hostname:port."), found before any server is asked.
Endpoint endpoint_arg(const std::string& arg) {
  try {
    return parse_node_arg(arg, 2, 2).endpoint;
  } catch (const Error& e) {
    throw UsageError(std::string(e.what()) + " it must be hostname:port.");
  }
}

// The number of the first signal that asked the tool to stop (SIGINT, SIGTERM, SIGHUP, ...), 0
// until one did. Every terminating signal an operator meets is handled alike: nothing more is
// sent, a file being written is removed, the same "how far it got" line, exit 128 + N.
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_stop_signal(int sig) {
  if (!g_interrupted) g_interrupted = sig;
}
bool interrupted() { return g_interrupted != 0; }
// The exit status of a command a signal stopped: 128 + its number, as a shell reports a process
// that signal killed (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
int exit_interrupted() { return 128 + (g_interrupted ? static_cast<int>(g_interrupted) : SIGINT); }

// The standard descriptors that were closed when the tool started (see occupy_standard_fds).
bool g_std_closed[3] = {false, false, false};

// ---- option parsing --------------------------------------------------------------------

struct OptSpec {
  const char* name;  // long name without "--"
  char short_name;   // 0 if none
  const char* value; // value placeholder, nullptr for a flag
  const char* help;
};

struct Options {
  std::map<std::string, std::string> values;
  std::set<std::string> flags;
  std::vector<std::string> args;

  bool flag(const std::string& n) const { return flags.count(n) > 0; }
  bool has(const std::string& n) const { return values.count(n) > 0; }
  std::string get(const std::string& n, const std::string& def = "") const {
    auto it = values.find(n);
    return it == values.end() ? def : it->second;
  }
};

const OptSpec kCommon[] = {
    {"help", 'h', nullptr, "show this help"},
    {"debug", 0, nullptr, "log every request and reply to stderr"},
    {"timeout", 0, "SECONDS", "deadline of each network operation (default 10; more than 0, at most 86400)"},
};
const OptSpec kIndex[] = {
    {"index-server", 'i', "HOST[:PORT]", "index server (default $FLARE_INDEX_SERVER or 127.0.0.1)"},
    {"index-server-port", 'p', "PORT", "index server port (default $FLARE_INDEX_SERVER_PORT or 12120)"},
    {"cluster", 0, "NAME", "index server named NAME in $FLARE_INDEX_SERVERS (name:host:port;...)"},
};

struct Command {
  const char* name;
  const char* usage;
  const char* summary;
  bool uses_index;
  std::vector<OptSpec> options;
  int (*run)(const Options&);
  const char* notes = nullptr; // printed after the options in --help
};

std::vector<OptSpec> all_options(const Command& c) {
  std::vector<OptSpec> out(std::begin(kCommon), std::end(kCommon));
  if (c.uses_index) out.insert(out.end(), std::begin(kIndex), std::end(kIndex));
  out.insert(out.end(), c.options.begin(), c.options.end());
  // A subcommand's own short option wins over a common one (restore's -i is its input).
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t j = i + 1; j < out.size(); ++j)
      if (out[i].short_name && out[i].short_name == out[j].short_name) out[i].short_name = 0;
  return out;
}

// GNU-style parsing with 0.7.3's conveniences: options and arguments may be interleaved,
// "--" ends options, long options may be abbreviated to any unambiguous prefix.
Options parse_options(const Command& cmd, const std::vector<std::string>& argv) {
  auto specs = all_options(cmd);
  Options o;
  auto take = [&](const OptSpec& s, std::optional<std::string> inline_value, size_t& i, const std::string& shown_as) {
    if (s.value) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) throw UsageError("missing value for " + shown_as);
        inline_value = argv[++i];
      }
      // A single-valued option given twice is a usage error: the later one must not silently
      // win (restore -i FILE --input OTHER, or -i meant as the index server).
      if (o.values.count(s.name)) {
        std::string note = s.short_name == 'i' && std::string(s.name) == "input"
                               ? ": here -i is the input file (--input); the index server is --index-server"
                               : "";
        throw UsageError("--" + std::string(s.name) + " is given twice" + note);
      }
      o.values[s.name] = *inline_value;
    } else {
      if (inline_value) throw UsageError("option " + shown_as + " takes no value");
      o.flags.insert(s.name);
    }
  };
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--") {
      for (++i; i < argv.size(); ++i) o.args.push_back(argv[i]);
      break;
    }
    if (a.size() > 2 && a[0] == '-' && a[1] == '-') {
      std::string body = a.substr(2);
      std::optional<std::string> val;
      size_t eq = body.find('=');
      if (eq != std::string::npos) {
        val = body.substr(eq + 1);
        body.resize(eq);
      }
      const OptSpec* match = nullptr;
      int prefix_matches = 0;
      for (auto& s : specs) {
        if (body == s.name) {
          match = &s;
          prefix_matches = 1;
          break;
        }
        if (std::string(s.name).rfind(body, 0) == 0) {
          match = &s;
          ++prefix_matches;
        }
      }
      if (!match) throw UsageError("unknown option " + shown("--" + body));
      if (prefix_matches > 1) throw UsageError("ambiguous option " + shown("--" + body));
      take(*match, val, i, "--" + std::string(match->name));
    } else if (a.size() > 1 && a[0] == '-' && a[1] != '-') {
      for (size_t k = 1; k < a.size(); ++k) {
        const OptSpec* match = nullptr;
        for (auto& s : specs)
          if (s.short_name == a[k]) match = &s;
        if (!match) throw UsageError("unknown option " + shown(std::string("-") + a[k]));
        if (match->value) {
          std::optional<std::string> val;
          if (k + 1 < a.size()) val = a.substr(k + 1);
          take(*match, val, i, std::string("-") + a[k]);
          break;
        }
        take(*match, std::nullopt, i, std::string("-") + a[k]);
      }
    } else {
      o.args.push_back(a);
    }
  }
  return o;
}

std::string program_name = "flare-admin";
bool short_name = false; // run as flare-SUB: the name is the subcommand

std::string help_text(const Command& c) {
  std::ostringstream out;
  out << "Usage: " << program_name << (short_name ? "" : std::string(" ") + c.name) << " "
      << c.usage << "\n"
      << c.summary << "\n\nOptions:\n";
  for (auto& s : all_options(c)) {
    std::string left = s.short_name ? std::string("-") + s.short_name + ", " : "    ";
    left += "--" + std::string(s.name);
    if (s.value) left += "=" + std::string(s.value);
    out << "  " << left;
    if (left.size() < 30) out << std::string(30 - left.size(), ' ');
    else out << "\n" << std::string(32, ' ');
    out << s.help << "\n";
  }
  if (c.notes) out << "\n" << c.notes;
  return out.str();
}

// ---- shared context ----------------------------------------------------------------------

struct Context {
  Endpoint index;
  int timeout_ms = FLARE_TOOLS_DEFAULT_TIMEOUT_MS;
  TraceFn trace;
};

int parse_timeout(const Options& o) {
  if (!o.has("timeout")) return FLARE_TOOLS_DEFAULT_TIMEOUT_MS;
  std::string t = o.get("timeout");
  char* end = nullptr;
  double secs = std::strtod(t.c_str(), &end);
  if (t.empty() || !end || *end != '\0' || !(secs > 0) || secs > 86400)
    throw UsageError("invalid --timeout " + shown(t) + ": give seconds, more than 0 and at most 86400 (one day)");
  return std::max(1, static_cast<int>(secs * 1000));
}

Endpoint resolve_index(const Options& o) {
  const char* env_server = std::getenv("FLARE_INDEX_SERVER");
  const char* env_port = std::getenv("FLARE_INDEX_SERVER_PORT");
  std::optional<Endpoint> from_i;
  if (o.has("index-server")) {
    std::string v = o.get("index-server");
    Endpoint ep;
    try {
      ep = parse_host_port(v, 0);
    } catch (const Error& e) {
      throw UsageError(std::string("--index-server: ") + e.what());
    }
    if (ep.port != 0 && o.has("index-server-port")) throw UsageError("--index-server-port option isn't allowed.");
    from_i = ep;
  }
  std::optional<int> from_p;
  if (o.has("index-server-port")) {
    std::string v = o.get("index-server-port");
    auto p = parse_port(v);
    if (!p) throw UsageError("invalid --index-server-port " + shown(v));
    from_p = *p;
  }
  Endpoint ep{"127.0.0.1", FLARE_TOOLS_DEFAULT_INDEX_PORT};
  if (o.has("cluster") && !from_i && !from_p) {
    std::string name = o.get("cluster");
    const char* servers = std::getenv("FLARE_INDEX_SERVERS");
    if (!servers) throw Error("unknown cluster " + shown(name) + ": FLARE_INDEX_SERVERS is not set");
    if (auto named = cluster_index_server(servers, name)) return *named;
    throw Error("unknown cluster " + shown(name) + ": not in FLARE_INDEX_SERVERS");
  }
  if (env_server && *env_server) {
    Endpoint e;
    try {
      e = parse_host_port(env_server, 0);
    } catch (const Error& err) {
      throw Error(std::string("FLARE_INDEX_SERVER: ") + err.what());
    }
    ep.host = e.host;
    if (e.port) ep.port = e.port;
  }
  if (env_port && *env_port) {
    auto p = parse_port(env_port);
    if (!p) throw Error(std::string("invalid FLARE_INDEX_SERVER_PORT '") + env_port + "'");
    ep.port = *p;
  }
  if (from_i) {
    ep.host = from_i->host;
    if (from_i->port) ep.port = from_i->port;
  }
  if (from_p) ep.port = *from_p;
  return ep;
}

Context make_context(const Options& o, bool uses_index) {
  Context c;
  c.timeout_ms = parse_timeout(o);
  if (uses_index) c.index = resolve_index(o);
  if (o.flag("debug")) c.trace = [](const std::string& line) { std::cerr << line << "\n"; };
  return c;
}

// A client of the index that stops its waits at Ctrl-C (Interrupted: exit 130). The commands
// that change the cluster narrow that to "until the first change is sent" (run_admin).
IndexClient index_client(const Context& c) {
  IndexClient ic(c.index, c.timeout_ms);
  ic.set_trace(c.trace);
  ic.set_cancel(interrupted);
  return ic;
}

// What every gather of a command is given: Ctrl-C stops it, --debug shows its requests.
GatherHooks hooks(const Context& c) { return GatherHooks{interrupted, c.trace}; }

// The map, from a server known to be an index (a flared's `stats nodes` is its own stale copy).
Cluster load_cluster(IndexClient& ic) {
  return naming_index(ic.endpoint(), [&] {
    ic.require_index();
    return Cluster(ic.stats_nodes());
  });
}

// One reading of the cluster (read_cluster: the index's version, its map, the nodes' stats, the
// version again), the index's errors naming it; a node holding a newer map than the index is
// warned of on stderr, with the way out (a node ahead ignores every change the index makes).
ClusterReading reading(IndexClient& ic, const Context& c, int timeout_ms, const ShownFn& shown = nullptr, bool lags = false,
                       int tries = 1) {
  ClusterReading r = naming_index(ic.endpoint(), [&] {
    ic.require_index();
    return read_cluster(ic, timeout_ms, shown, lags, hooks(c), tries);
  });
  const std::string problem = map_version_problem(r.versions);
  if (!problem.empty()) std::cerr << "warning: " << problem << "\n";
  if (tries == 1 && !r.stable) std::cerr << "note: " << reading_note(r) << "\n"; // `index` refuses it instead
  return r;
}

// std::cout's buffer: written to descriptor 1 with write(2), EINTR retried, and the first
// failure's errno kept (stdio's buffer lost it: a full disk was reported as "write error").
// After a failure nothing more is written. main() installs it before anything is printed.
class StdoutBuf : public std::streambuf {
public:
  StdoutBuf() { setp(buf_, buf_ + sizeof buf_); }
  int error() const { return error_; }

protected:
  int_type overflow(int_type ch) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  int sync() override { return drain() ? 0 : -1; }

private:
  bool drain() {
    const char* p = pbase();
    while (!error_ && p < pptr()) {
      ssize_t n = ::write(1, p, static_cast<size_t>(pptr() - p));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) error_ = n < 0 ? errno : EIO;
      else p += n;
    }
    setp(buf_, buf_ + sizeof buf_);
    return !error_;
  }
  char buf_[1 << 16];
  int error_ = 0;
};
// Never destroyed: std::cout may still be flushed at exit, after this file's globals are gone.
StdoutBuf& g_stdout_buf = *new StdoutBuf;

// stdout is written through iostreams; a closed pipe (flare-stats | head) must not kill us
// silently with SIGPIPE, it must end with a status, and say why on stderr.
void say_stdout_failed(int err) {
  std::cerr << "cannot write standard output: "
            << (g_std_closed[1] ? std::string("it is closed") : err ? std::string(std::strerror(err)) : std::string("write error"))
            << "\n";
}
// Descriptors 0, 1 and 2 are open before anything else is: a closed one is opened on /dev/null
// the way that makes its use fail (stdin for writing only: a read is an error, end of input, so
// a prompt's answer is "no"; stdout and stderr for reading only: a write is an error, exit 1).
// Without this the first socket took the closed number: a prompt read the index's connection,
// and `list >&-` wrote its table into it. False (after saying so where it can) if not possible.
[[maybe_unused]] bool occupy_standard_fds() {
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    g_std_closed[fd] = true;
    int got = ::open("/dev/null", (fd == 0 ? O_WRONLY : O_RDONLY) | O_NOCTTY);
    if (got >= 0 && got != fd) {
      // not reached while 0..fd-1 are open (open takes the lowest free number); kept for safety
      int moved = ::dup2(got, fd);
      ::close(got);
      got = moved;
    }
    if (got != fd) {
      static const char msg[] = "flare-admin: cannot open /dev/null in place of a closed standard descriptor\n";
      if (!g_std_closed[2]) {
        ssize_t n = ::write(2, msg, sizeof msg - 1);
        (void)n;
      }
      return false;
    }
  }
  return true;
}

bool g_stdout_failure_said = false;
// True when everything written to stdout so far has reached it; else says why, once.
bool stdout_written() {
  if (g_stdout_failure_said) return false;
  std::cout.flush();
  if (std::cout && !g_stdout_buf.error()) return true;
  say_stdout_failed(g_stdout_buf.error());
  g_stdout_failure_said = true;
  return false;
}
void flush_stdout() {
  if (!stdout_written()) throw Exit{EXIT_FAIL};
}

// At exit: whatever is still buffered for stdout is written, and a write that failed anywhere
// (a full disk, a closed pipe, a closed descriptor) is said on stderr and makes the status 1,
// never 0. A closed stderr cannot say anything, but the status says it (1, not 0).
[[maybe_unused]] int finish_streams(int status) {
  const bool out_failed = !stdout_written();
  std::cerr.flush();
  const bool err_failed = !std::cerr || std::ferror(stderr);
  if ((out_failed || err_failed) && status == EXIT_OK) return EXIT_FAIL;
  return status;
}

bool sleep_interruptible(double seconds) {
  auto until = Clock::now() + std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
  while (Clock::now() < until) {
    if (g_interrupted) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return !g_interrupted;
}

// The permission bits of a file written with -o: --file-mode (octal) if given, else `def`
// (OutputFile::kPrivate for cluster data, kShared for Prometheus' textfile collector).
unsigned file_mode(const Options& o, unsigned def) {
  if (!o.has("file-mode")) return def;
  const std::string& v = o.get("file-mode");
  unsigned mode = 0;
  bool ok = !v.empty() && v.size() <= 4;
  for (char ch : v) {
    if (ch < '0' || ch > '7') ok = false;
    else mode = mode * 8 + static_cast<unsigned>(ch - '0');
  }
  if (!ok || (mode & 0600) != 0600)
    throw UsageError("invalid --file-mode " + shown(v) + " (give octal permission bits that let the owner read and write, e.g. 0640)");
  return mode;
}

// Before a file is written: the temporaries an earlier write beside it left when it was killed
// (kill -9, a crash) are named on stderr with the way to remove them. They hold private cluster
// data on a disk that fills; only their owner may remove them (the tool cannot prove it left them).
// A path as a shell reads it back exactly: '...' (a quote as '\''), or, when it holds a byte that
// is not printable ASCII (a line break), bash's $'...' with \xHH escapes, so that the command
// stays on one line. For commands printed to be pasted (rm of a leftover).
std::string shell_quoted(const std::string& path) {
  bool plain = true;
  for (unsigned char ch : path)
    if (ch < 0x20 || ch >= 0x7f) plain = false;
  std::string out = plain ? "'" : "$'";
  for (unsigned char ch : path) {
    if (plain) {
      out += ch == '\'' ? std::string("'\\''") : std::string(1, static_cast<char>(ch));
    } else if (ch < 0x20 || ch >= 0x7f || ch == '\'' || ch == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "'";
}

void note_leftovers_beside(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  auto left = leftover_temporaries(dir.empty() ? "." : dir);
  if (left.empty()) return;
  unsigned long long bytes = 0;
  std::string rm, pids;
  for (const auto& l : left) {
    bytes += l.bytes;
    rm += " " + shell_quoted(l.path);
    pids += (pids.empty() ? "" : ", ") + std::to_string(l.pid);
  }
  const bool one = left.size() == 1;
  std::cerr << "note: " << (one ? "a temporary" : std::to_string(left.size()) + " temporaries") << " of "
            << (one ? "an earlier write that was" : "earlier writes that were") << " killed before finishing (process"
            << (one ? " " : "es ") << pids << ", gone) "
            << (one ? "is" : "are") << " beside " << shown(path) << ": " << bytes << " bytes of partial, private cluster data, "
            << (one ? "not a complete copy" : "not complete copies") << " of anything; to remove "
            << (one ? "it" : "them") << ": rm --" << rm << "\n";
}

// ---- read-only subcommands ---------------------------------------------------------------

// Pings `target` with `answers` (true when it answered ping as it should); with `wait`, again
// every second until it does. Prints "HOST:PORT is down" and fails when it does not (the reason
// with --debug). A NotAnIndexError is not retried: it goes to the caller.
int ping_until_alive(const Endpoint& target, const Context& c, bool wait, const std::function<bool()>& answers) {
  for (;;) {
    std::string why;
    try {
      if (answers()) return EXIT_OK;
      why = "unexpected answer to ping";
    } catch (const NotAnIndexError&) {
      throw;
    } catch (const Interrupted&) {
      throw;
    } catch (const Error& e) {
      why = e.what();
    }
    if (!wait) {
      std::cout << target.display() << " is down\n";
      std::cout.flush();
      std::cerr << target.display() << ": " << one_line(why) << "\n"; // e.g. a name that does not resolve
      return EXIT_FAIL;
    }
    if (c.trace) std::cerr << why << "; retrying in 1 s\n";
    if (!sleep_interruptible(1.0)) return exit_interrupted();
  }
}

int cmd_ping(const Options& o) {
  // No argument: the index server (-i/-p, FLARE_INDEX_SERVER, --cluster), which must be a flarei.
  Context c = make_context(o, o.args.empty());
  bool wait = o.flag("wait");
  if (o.args.empty()) {
    try {
      int st = ping_until_alive(c.index, c, wait, [&] {
        IndexClient ic = index_client(c);
        ic.require_index();
        return ic.ping();
      });
      if (st != EXIT_OK) return st;
    } catch (const NotAnIndexError& e) {
      std::cout << c.index.display() << " is not an index server\n";
      std::cerr << e.what() << "\n";
      return EXIT_FAIL;
    }
    std::cout << "alive\n";
    return EXIT_OK;
  }
  std::vector<Endpoint> targets;
  for (const auto& a : o.args) targets.push_back(endpoint_arg(a));
  for (const auto& t : targets) {
    int st = ping_until_alive(t, c, wait, [&] {
      ServerClient sc(t, c.timeout_ms);
      sc.set_trace(c.trace);
      return sc.ping();
    });
    if (st != EXIT_OK) return st;
  }
  std::cout << "alive\n";
  return EXIT_OK;
}

int cmd_list(const Options& o) {
  Context c = make_context(o, true);
  if (!o.args.empty()) throw UsageError("list takes no arguments");
  IndexClient ic = index_client(c);
  // list is the quick look (0.7.3 asked the index alone): the nodes' map versions are asked with
  // at most 1 s, so a hung node costs that, not --timeout (stats and summary ask with --timeout).
  const ClusterReading r = reading(ic, c, std::min(c.timeout_ms, 1000));
  const MapVersions& versions = r.versions;
  auto nodes = r.cluster.list_order();
  if (o.flag("numeric-hosts")) {
    for (auto& n : nodes) {
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      if (::getaddrinfo(n.host.c_str(), nullptr, &hints, &res) == 0 && res) {
        char buf[NI_MAXHOST];
        if (::getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) == 0) {
          n.host = buf;
          n.key = n.host + ":" + std::to_string(n.port);
        }
        ::freeaddrinfo(res);
      }
    }
  }
  if (o.flag("json")) {
    std::cout << format_list_json(c.index, nodes, versions) << "\n";
  } else {
    std::cout << format_node_table(nodes);
  }
  flush_stdout();
  return EXIT_OK;
}

int parse_positive(const Options& o, const std::string& name, int def, int min) {
  if (!o.has(name)) return def;
  auto v = to_int32(o.get(name));
  if (!v || *v < min) throw UsageError("invalid --" + name + " " + shown(o.get(name)));
  return *v;
}

// flare-stats --prometheus [-o FILE]: every node's stats in the Prometheus text format. With -o
// each round replaces FILE atomically (node_exporter's textfile collector must never read half
// a file). An unreachable node is flare_up 0 (its error on stderr, exit 0, as the table does);
// an unreachable index server is flare_index_up 0, written all the same, and exit 1.
int stats_prometheus(const Options& o) {
  Context c = make_context(o, true);
  for (const char* other : {"qps", "json", "delimiter"})
    if (o.flag(other) || o.has(other)) throw UsageError(std::string("--prometheus cannot be combined with --") + other);
  if (!o.args.empty()) throw UsageError("--prometheus exports every node and takes no HOST:PORT");
  int wait = parse_positive(o, "wait", 1, 0);
  int count = parse_positive(o, "count", 1, 1);
  std::string output = o.get("output", "-");
  int status = EXIT_OK;
  for (int round = 0; round < count; ++round) {
    std::string text;
    try {
      // The same reading as check's (every node's stats and every master's replication
      // threads at once): the figures of its findings follow the nodes' families.
      CheckData d = collect_check(c.index, c.timeout_ms, nullptr, c.trace, interrupted);
      if (!d.index_error.empty()) {
        if (d.index_is_node) throw NotAnIndexError(d.index_error);
        naming_index(c.index, [&] { throw NetworkError(d.index_error); });
      }
      bool unreachable = false;
      for (const auto& r : d.stats)
        if (!r.ok) {
          std::cerr << r.endpoint.display() << ": " << one_line(r.error) << "\n";
          unreachable = true;
        }
      text = format_prometheus(c.index.display(), d.cluster, d.stats) + format_prometheus_health(d);
      status = unreachable && o.flag("fail-on-unreachable") ? EXIT_FAIL : EXIT_OK;
    } catch (const Interrupted&) {
      throw; // nothing written: an interrupted reading is not an index that is down
    } catch (const Error& e) {
      std::cerr << e.what() << "\n";
      text = format_prometheus_index_down(c.index.display());
      status = EXIT_FAIL;
    }
    if (output == "-") {
      std::cout << text;
      flush_stdout();
    } else {
      note_leftovers_beside(output);
      write_file_atomically(output, text, file_mode(o, OutputFile::kShared));
    }
    if (round + 1 < count && !sleep_interruptible(wait)) return exit_interrupted();
  }
  return status;
}

// A JSON document of ours on one line: its line breaks and the indentation after them are
// layout only (json_escape writes a line break inside a string as \n).
std::string compact_json(const std::string& doc) {
  std::string out;
  out.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    if (doc[i] != '\n') {
      out += doc[i];
      continue;
    }
    while (i + 1 < doc.size() && doc[i + 1] == ' ') ++i;
  }
  return out;
}

int stats_table(const Options& o);

int cmd_stats(const Options& o) {
  if (o.flag("prometheus")) return stats_prometheus(o);
  if (o.has("output")) throw UsageError("--output goes with --prometheus");
  try {
    return stats_table(o);
  } catch (const Interrupted&) {
    std::cerr << "INTERRUPTED\n"; // 0.7.3's word, as between --count rounds
    return exit_interrupted();
  }
}

// The table (or JSON) of stats, --count times.
int stats_table(const Options& o) {
  Context c = make_context(o, true);
  bool qps = o.flag("qps"), json = o.flag("json");
  int wait = parse_positive(o, "wait", 1, 0);
  int count = parse_positive(o, "count", 1, 1);
  std::string delimiter = o.has("delimiter") ? o.get("delimiter") : " ";
  std::vector<std::string> filter;
  for (const auto& a : o.args) filter.push_back(endpoint_arg(a).key());
  IndexClient ic = index_client(c);
  bool unreachable = false; // some node did not answer (exit 1 with --fail-on-unreachable)
  if (!filter.empty()) {
    Cluster cluster = load_cluster(ic);
    for (const auto& k : filter)
      if (!cluster.find(k)) {
        std::cerr << one_line(unknown_node_text("unknown node: ", parse_host_port(k, 0))) << "\n";
        return EXIT_FAIL;
      }
  }
  // Each round one reading of the cluster: a slave's behind is its lag as its master sees it,
  // asked in the same gather as every node's `stats` (StatsSampler).
  StatsSampler sampler(ic, c.timeout_ms, filter, hooks(c));
  auto sample = [&] {
    auto s = naming_index(c.index, [&] {
      ic.require_index();
      return sampler.sample();
    });
    for (const auto& e : s.lag_errors) std::cerr << one_line(e) << "\n";
    if (const std::string problem = map_version_problem(s.reading.versions); !problem.empty())
      std::cerr << "warning: " << problem << "\n";
    return s;
  };
  if (qps) {
    sample(); // a first sample, so that even a single table shows real rates
    if (!sleep_interruptible(std::max(wait, 1))) return exit_interrupted();
  }
  for (int round = 0; round < count; ++round) {
    const StatsSampler::Sample s = sample();
    if (!s.reading.stable) std::cerr << "note: " << reading_note(s.reading) << "\n";
    for (const auto& u : s.unreachable) std::cerr << one_line(u) << "\n";
    unreachable = unreachable || !s.unreachable.empty();
    // Several samples: JSON Lines, one compact document per line (a reader of one document per
    // line and jq both take it). One sample: the indented document, as before.
    if (json) std::cout << (count > 1 ? compact_json(format_stats_json(s.rows, qps)) : format_stats_json(s.rows, qps)) << "\n";
    else std::cout << format_stats_table(s.rows, qps, delimiter);
    flush_stdout();
    if (round + 1 < count && !sleep_interruptible(wait)) {
      std::cerr << "INTERRUPTED\n";
      return exit_interrupted();
    }
  }
  return unreachable && o.flag("fail-on-unreachable") ? EXIT_FAIL : EXIT_OK;
}

int cmd_threads(const Options& o) {
  Context c = make_context(o, true);
  if (o.args.size() > 1) throw UsageError("threads takes at most one HOST:PORT");
  Endpoint target = c.index;
  if (!o.args.empty()) target = endpoint_arg(o.args[0]);
  ServerClient sc(target, c.timeout_ms);
  sc.set_trace(c.trace);
  if (o.args.empty()) {
    IndexClient ic = index_client(c);
    naming_index(target, [&] { ic.require_index(); });
  }
  auto threads = o.args.empty() ? naming_index(target, [&] { return sc.stats_threads(); }) : sc.stats_threads();
  if (o.flag("json")) std::cout << format_threads_json(threads) << "\n";
  else std::cout << format_threads_table(threads);
  flush_stdout();
  return EXIT_OK;
}

int cmd_summary(const Options& o) {
  Context c = make_context(o, true);
  IndexClient ic = index_client(c);
  // The masters, then the other nodes the map versions need: one gather, one --timeout.
  const ClusterReading r = reading(ic, c, c.timeout_ms, [](const Cluster& cluster) {
    std::vector<NodeInfo> masters;
    for (const auto& n : cluster.stats_order())
      if (n.is_master()) masters.push_back(n);
    return masters;
  });
  const std::vector<StatsResult> results(r.stats.begin(), r.stats.begin() + static_cast<std::ptrdiff_t>(r.shown.size()));
  Summary s = summarize(c.index.display(), r.cluster, results);
  if (const std::string problem = map_version_problem(r.versions); !problem.empty()) s.warnings.push_back(problem);
  if (o.flag("json")) std::cout << format_summary_json(s) << "\n";
  else std::cout << format_summary(s);
  flush_stdout();
  for (auto& result : results)
    if (!result.ok) std::cerr << result.endpoint.display() << ": " << result.error << "\n";
  if (s.unreachable_masters > 0) {
    std::cerr << "summary is incomplete: " << s.unreachable_masters << " master(s) did not answer\n";
    return EXIT_FAIL;
  }
  return EXIT_OK;
}

// flare.xml to -o FILE (private, atomically) or stdout.
int write_index_xml(const Options& o, const std::string& xml) {
  if (o.has("output")) {
    note_leftovers_beside(o.get("output"));
    write_file_atomically(o.get("output"), xml, file_mode(o, OutputFile::kPrivate));
  } else {
    std::cout << xml;
    flush_stdout();
  }
  return EXIT_OK;
}

int cmd_index(const Options& o) {
  Context c = make_context(o, true);
  long long increment = 0;
  if (o.has("increment")) {
    auto v = to_int(o.get("increment"));
    if (!v) throw UsageError("invalid --increment " + shown(o.get("increment")));
    increment = *v;
  }
  if (o.has("from-node")) {
    // The index lost its map: the one the nodes route by, read from the node named; no index asked.
    Endpoint node = endpoint_arg(o.get("from-node"));
    IndexMapChoice choice = map_from_node(node, c.timeout_ms);
    long long version = 0;
    if (__builtin_add_overflow(choice.version, increment, &version))
      throw UsageError("--increment " + shown(o.get("increment")) + " is out of range");
    std::cerr << "note: the map of node_map_version " << choice.version << " read from " << choice.from;
    if (choice.agreeing > 1) std::cerr << " (and the same on " << choice.agreeing - 1 << " more)";
    if (choice.from != node.key()) std::cerr << ", which holds a newer one than " << node.key();
    std::cerr << "; start flarei with this file as its flare.xml, before any node is restarted or rebuilt\n";
    return write_index_xml(o, format_index_xml(choice.cluster, version));
  }
  IndexClient ic = index_client(c);
  // The map, its version and the nodes' versions as one reading: a change made meanwhile (another
  // admin, the index's monitor) would write a map that is not the version's, or a version the
  // nodes already hold; read again until the index's version stood still (read_cluster). With
  // --increment the version written must be above every node's, or the nodes ignore the
  // restarted index; without, a node ahead of the index is only warned about.
  ClusterReading r = increment > 0 ? naming_index(c.index, [&] {
                                       ic.require_index();
                                       return read_cluster(ic, c.timeout_ms, nullptr, false, hooks(c), 3);
                                     })
                                   : reading(ic, c, c.timeout_ms, nullptr, false, 3);
  if (!r.stable) {
    std::cerr << "refused: the node map changed while it was read (node_map_version " << r.node_map_version << ", then "
              << r.version_after << "), three times; nothing was written. Run it again when no change is under way.\n";
    return EXIT_FAIL;
  }
  const Cluster& cluster = r.cluster;
  const MapVersions& versions = r.versions;
  // Nodes ahead of the index: the index's map is not the cluster's; the nodes' newest is written.
  IndexMapChoice choice = choose_index_map(cluster, versions, c.timeout_ms);
  if (!choice.from.empty()) {
    std::cerr << "note: the nodes hold a newer node map than the index (index node_map_version " << versions.index
              << ", nodes " << choice.version << "): the file holds the map they route by, read from " << choice.from;
    if (choice.agreeing > 1) std::cerr << " (and the same on " << choice.agreeing - 1 << " more)";
    std::cerr << ", not the index's, " << (choice.differences.empty() ? "which lists the same nodes the same way"
                                                                      : "which differs:") << "\n";
    const size_t shown = std::min<size_t>(choice.differences.size(), 20);
    for (size_t i = 0; i < shown; ++i) std::cerr << "  " << choice.differences[i] << "\n";
    if (shown < choice.differences.size()) std::cerr << "  (" << choice.differences.size() - shown << " more)\n";
  }
  long long version = 0;
  if (__builtin_add_overflow(choice.version >= 0 ? choice.version : 0, increment, &version))
    throw UsageError("--increment " + shown(o.get("increment")) + " is out of range");
  if (increment > 0 && versions.highest() >= version) {
    // Not reached: the version written starts from the newest a node holds when any is ahead.
    std::cerr << "refused: --increment " << increment << " gives node_map_version " << version << ", not above the "
              << versions.highest() << " that " << versions.highest_node() << " holds (the nodes would ignore that map)\n";
    return EXIT_FAIL;
  }
  return write_index_xml(o, format_index_xml(choice.cluster, version));
}

// ---- cluster-changing subcommands -------------------------------------------------------

// Progress lines go to stderr; on a terminal one line is redrawn in place.
struct Terminal {
  bool progress_open = false;
  bool err_is_tty = ::isatty(2) != 0;
  // A redrawn counter line (dump --all's) is erased before any other line is printed, not
  // left above it; a construction's progress line stays as the last count seen.
  bool erase_progress = false;

  void end_progress() {
    if (progress_open) std::cerr << "\n";
    progress_open = false;
  }
  // Before another line: the redrawn line ends there, or is erased (erase_progress).
  void make_room() {
    if (progress_open && erase_progress) {
      std::cerr << "\r\x1b[K";
      progress_open = false;
    }
    end_progress();
  }
  void say(const std::string& s) {
    make_room();
    std::cerr.flush();
    std::cout << s << "\n";
    std::cout.flush();
  }
  void warn(const std::string& s) {
    make_room();
    std::cout.flush();
    std::cerr << s << "\n";
  }
  void progress(const std::string& s) {
    if (err_is_tty) {
      std::cerr << "\r" << s << "\x1b[K";
      progress_open = true;
    } else {
      std::cerr << s << "\n";
    }
    std::cerr.flush();
  }
  // Reads one answer line from stdin, a terminal or not (`echo y |`, `yes |` and here-docs
  // drive existing scripts). A byte at a time, so that the next prompt's answer stays in the
  // pipe. The answer is the last line, with or without its newline (`printf y |`, as 0.7.3
  // took it). End of input with nothing typed, Ctrl-C, or a question that could not be shown
  // (stderr closed): no answer.
  std::optional<std::string> ask(const std::string& prompt) {
    make_room();
    std::cout.flush();
    std::cerr << prompt;
    std::cerr.flush();
    if (g_std_closed[2] || !std::cerr) return std::nullopt; // a question nobody saw is not answered yes
    std::string line;
    for (;;) {
      if (g_interrupted) {
        std::cerr << "\n";
        return std::nullopt;
      }
      pollfd p{0, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char ch;
      ssize_t n = ::read(0, &ch, 1);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n == 0 && !line.empty()) {
        std::cerr << "\n";
        if (line.back() == '\r') line.pop_back();
        return line; // a last line without its newline
      }
      if (n <= 0) {
        std::cerr << "\n";
        return std::nullopt; // end of input means no
      }
      if (ch == '\n') {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!::isatty(0)) std::cerr << "\n"; // a piped answer is not echoed: the prompt's line ends here
        return line;
      }
      if (line.size() < 1024) line += ch;
    }
  }
};

int exit_status(Outcome o) {
  switch (o) {
  case Outcome::ok: return EXIT_OK;
  case Outcome::interrupted: return exit_interrupted();
  default: return EXIT_FAIL;
  }
}

// Parses node arguments; the first bad one ends the command with 0.7.3's message.
std::vector<NodeArg> node_args(const Options& o, int min_fields, int max_fields, const std::string& shape = "") {
  if (o.args.empty()) throw UsageError("no node given");
  std::vector<NodeArg> out;
  for (auto& a : o.args) {
    try {
      out.push_back(parse_node_arg(a, min_fields, max_fields));
    } catch (const Error& e) {
      throw UsageError(e.what() + (shape.empty() ? "" : " it must be " + shape + "."));
    }
  }
  return out;
}

// Where a slave construction keeps the balance it is to give (BalanceRecord): $FLARE_ADMIN_STATE_DIR,
// else ~/.flare-admin; "" (nothing kept) when neither is known.
std::string balance_record_path() {
  const char* dir = std::getenv("FLARE_ADMIN_STATE_DIR");
  if (dir && *dir) return std::string(dir) + "/balances";
  const char* home = std::getenv("HOME");
  if (home && *home == '/') return std::string(home) + "/.flare-admin/balances";
  return std::string();
}

int run_admin(const Options& o, const std::function<Outcome(ClusterAdmin&)>& body) {
  Context c = make_context(o, true);
  // A change whose steps (stdout) or refusals and warnings (stderr) nobody can read is refused,
  // before the index is asked: done, it could only end in a status that reads as a failure.
  if (g_std_closed[1] || g_std_closed[2]) {
    std::cerr << "refused: standard " << (g_std_closed[1] ? "output" : "error")
              << " is closed: the steps and the outcome of a change would be lost. Nothing was changed.\n";
    return EXIT_FAIL;
  }
  OperationOptions opt;
  opt.force = o.flag("force");
  opt.dry_run = o.flag("dry-run");
  opt.timeout_ms = c.timeout_ms;
  opt.unsafe = o.flag("unsafe");
  opt.activate = o.flag("activate");
  opt.without_clean = o.flag("without-clean");
  opt.discard_items = o.flag("discard-items");
  opt.balance_record = balance_record_path();
  if (o.has("retry")) {
    auto v = to_int32(o.get("retry"));
    if (!v || *v < 1 || *v > 1000) throw UsageError("invalid --retry " + shown(o.get("retry")) + ": give attempts, 1 to 1000");
    opt.retry = *v;
  }
  auto term = std::make_shared<Terminal>();
  OperationIO io;
  io.say = [term](const std::string& s) { term->say(s); };
  io.warn = [term](const std::string& s) { term->warn(s); };
  io.progress = [term](const std::string& s) { term->progress(s); };
  io.ask = [term](const std::string& p) { return term->ask(p); };
  io.interrupted = [] { return g_interrupted != 0; };
  IndexClient ic = index_client(c);
  // Once Ctrl-C is seen no changing request is sent, and until the first one is, a wait on the
  // index (a stalled flarei) ends at once: nothing was changed (guard_changes).
  auto log = guard_changes(ic, io.interrupted);
  Outcome out;
  auto interrupted_here = [&](const std::string& what) {
    term->end_progress();
    flush_stdout();
    std::cerr << interruption_text(*log, what, ic.endpoint()) << "\n";
    return exit_interrupted();
  };
  try {
    load_cluster(ic); // reachability first: a clear message if the index is down
    ClusterAdmin admin(ic, opt, io);
    out = body(admin);
  } catch (const Interrupted& e) {
    return interrupted_here(e.what());
  } catch (...) {
    term->end_progress();
    throw;
  }
  // Ctrl-C at a question ends the command as the question's "no" (said nowhere): whether a later
  // request saw it and threw is a race, so the interruption is said here, once, either way.
  if (g_interrupted && out != Outcome::interrupted) return interrupted_here("interrupted");
  term->end_progress();
  flush_stdout();
  return exit_status(out);
}

int cmd_master(const Options& o) {
  auto args = node_args(o, 4, 4, "hostname:port:balance:partition");
  for (const auto& a : args)
    if (*a.balance <= 0) throw UsageError("invalid balance " + shown(a.text) + ". it must be more than 0.");
  return run_admin(o, [&](ClusterAdmin& a) { return a.master(args); });
}
int cmd_slave(const Options& o) {
  auto args = node_args(o, 3, 4, "hostname:port:balance:partition");
  return run_admin(o, [&](ClusterAdmin& a) { return a.slave(args); });
}
int cmd_balance(const Options& o) {
  auto args = node_args(o, 3, 3, "hostname:port:balance");
  return run_admin(o, [&](ClusterAdmin& a) { return a.balance(args); });
}
int cmd_down(const Options& o) {
  auto args = node_args(o, 2, 2, "hostname:port");
  return run_admin(o, [&](ClusterAdmin& a) { return a.down(args); });
}
int cmd_activate(const Options& o) {
  auto args = node_args(o, 2, 2, "hostname:port");
  return run_admin(o, [&](ClusterAdmin& a) { return a.activate(args); });
}
int cmd_remove(const Options& o) {
  auto args = node_args(o, 2, 2, "hostname:port");
  return run_admin(o, [&](ClusterAdmin& a) { return a.remove(args); });
}
int cmd_part(const Options& o) {
  auto args = node_args(o, 4, 4, "hostname:port:balance:partition");
  return run_admin(o, [&](ClusterAdmin& a) { return a.part(args); });
}
int cmd_reconstruct(const Options& o) {
  if (o.flag("all")) {
    if (!o.args.empty()) throw UsageError("don't specify any nodes with --all option.");
    return run_admin(o, [&](ClusterAdmin& a) {
      // Every master and slave, in list order, from the map as it is now.
      Context c = make_context(o, true);
      IndexClient ic = index_client(c);
      std::vector<NodeArg> args;
      for (auto& n : Cluster(ic.stats_nodes()).list_order())
        if (n.is_master() || n.is_slave()) args.push_back(NodeArg{n.endpoint(), std::nullopt, std::nullopt, n.key});
      return a.reconstruct(args);
    });
  }
  auto args = node_args(o, 2, 2, "hostname:port");
  return run_admin(o, [&](ClusterAdmin& a) { return a.reconstruct(args); });
}

// flare-admin apply LAYOUT: the cluster made to match a layout (what `list` prints). The plan
// and its run are ClusterAdmin::apply's; --diff and --plan-out only read.
int cmd_apply(const Options& o) {
  const bool diff = o.flag("diff");
  const bool saved = o.has("plan");
  if (saved && !o.args.empty()) throw UsageError("give a layout file or --plan FILE, not both");
  if (!saved && o.args.size() != 1) throw UsageError("give one layout file (as flare-admin list prints it; - for stdin), or --plan FILE");
  if (diff && (o.flag("force") || o.flag("dry-run") || o.has("plan-out") || saved))
    throw UsageError("--diff only compares: it takes none of --force, --dry-run, --plan-out, --plan");
  if (o.has("plan-out") && (saved || o.flag("force"))) throw UsageError("--plan-out writes a plan to review: not with --plan or --force");
  if (saved && o.flag("prune")) throw UsageError("--prune is recorded in the plan: give it when the plan is made");
  LayoutOptions lo;
  lo.prune = o.flag("prune");
  Layout layout;
  long long made_from = -1;
  std::string name = saved ? o.get("plan") : o.args[0];
  Context c = make_context(o, true);
  auto load = [&] {
    std::string text = read_layout_text(name);
    try {
      if (saved) {
        SavedPlan p = parse_saved_plan(text);
        if (p.index != c.index.key())
          throw Error("refused: the plan " + name + " was made for the index " + p.index + ", not " + c.index.key() + ". Nothing was changed.");
        layout = p.layout;
        lo.prune = p.prune;
        made_from = p.node_map_version;
      } else {
        layout = parse_layout(text);
      }
    } catch (const InputError& e) {
      throw Error(name + ": " + e.what());
    }
  };
  if (diff) {
    // kubectl diff's statuses: 0 the same, 1 different, 2 an error (cron and CI tell them apart).
    try {
      load();
      IndexClient ic = index_client(c);
      naming_index(c.index, [&] { ic.require_index(); });
      IndexReading r = naming_index(c.index, [&] { return read_index_map(ic); });
      auto d = layout_differences(r.cluster, layout, lo);
      // A layout apply refuses is said too: with no difference, it is an error (a layout that
      // cannot be right, e.g. a slave whose partition has no master in it), not a match.
      const LayoutPlan plan = plan_layout(r.cluster, layout, lo);
      for (const auto& line : d) std::cout << line << "\n";
      for (const auto& why : plan.refusals) std::cerr << "apply would refuse it: " << why << "\n";
      if (d.empty() && plan.refusals.empty())
        std::cout << "the cluster matches " << name << " (node_map_version " << r.node_map_version << ")\n";
      flush_stdout();
      return !d.empty() ? EXIT_FAIL : plan.refusals.empty() ? EXIT_OK : EXIT_USAGE;
    } catch (const Interrupted&) {
      throw;
    } catch (const Error& e) {
      std::cerr << e.what() << "\n";
      return EXIT_USAGE;
    }
  }
  load();
  if (o.has("plan-out")) {
    IndexClient ic = index_client(c);
    naming_index(c.index, [&] { ic.require_index(); });
    IndexReading r = naming_index(c.index, [&] { return read_index_map(ic); });
    LayoutPlan plan = plan_layout_live(r.cluster, layout, lo, c.timeout_ms, hooks(c));
    for (const auto& why : plan.refusals) std::cerr << "refused: " << why << "\n";
    if (!plan.refusals.empty()) {
      std::cerr << "Nothing was written.\n";
      return EXIT_FAIL;
    }
    // The commands name the index they are for, in the file as on the screen.
    std::cout << "plan (node_map_version " << r.node_map_version << ", " << plan.steps.size()
              << (plan.steps.size() == 1 ? " step" : " steps") << "):\n"
              << with_index_option(format_layout_plan(plan, true), c.index);
    for (const auto& w : plan.warnings) std::cerr << "warning: " << w << "\n";
    SavedPlan p{c.index.key(), r.node_map_version, lo.prune, layout};
    write_file_atomically(o.get("plan-out"), with_index_option(format_saved_plan(p, plan), c.index), 0600);
    std::cout << "wrote the plan to " << o.get("plan-out") << "; run it with: "
              << with_index_option("flare-admin apply --plan " + o.get("plan-out"), c.index) << "\n";
    flush_stdout();
    return EXIT_OK;
  }
  return run_admin(o, [&](ClusterAdmin& a) { return a.apply(layout, lo, made_from); });
}

// flare-admin exporter (flare-exporter): serves /metrics over HTTP until SIGTERM or SIGINT, then
// exits 0. The server is the header's Exporter; this parses its flags and logs.
int cmd_exporter(const Options& o) {
  if (!o.args.empty()) throw UsageError("exporter takes no arguments (the index server: -i, -p, --cluster)");
  Context c = make_context(o, true);
  ExporterOptions x;
  x.index = c.index;
  x.timeout_ms = c.timeout_ms;
  std::string listen = o.get("web.listen-address", ":12119");
  if (!listen.empty() && listen[0] == ':') listen = "0.0.0.0" + listen;
  try {
    // Port 0: any free port (the log line says which), for tests and ad-hoc runs.
    const bool any = listen.size() > 2 && listen.compare(listen.size() - 2, 2, ":0") == 0;
    x.listen = parse_host_port(any ? listen.substr(0, listen.size() - 2) : listen, 12119);
    if (any) x.listen.port = 0;
  } catch (const Error& e) {
    throw UsageError("--web.listen-address: " + std::string(e.what()));
  }
  x.telemetry_path = o.get("web.telemetry-path", "/metrics");
  if (x.telemetry_path.empty() || x.telemetry_path[0] != '/' || x.telemetry_path == "/" || x.telemetry_path == "/probe")
    throw UsageError("invalid --web.telemetry-path " + shown(x.telemetry_path) + ": a path starting with /, other than / and /probe");
  if (o.has("web.allowed-targets")) {
    std::istringstream in(o.get("web.allowed-targets"));
    for (std::string t; std::getline(in, t, ',');) {
      if (t.empty()) continue;
      try {
        x.allowed_targets.insert(parse_host_port(t, FLARE_TOOLS_DEFAULT_INDEX_PORT).key());
      } catch (const Error& e) {
        throw UsageError("--web.allowed-targets: " + std::string(e.what()));
      }
    }
  }
  if (const char* servers = std::getenv("FLARE_INDEX_SERVERS"); servers && *servers) x.clusters = index_servers(servers);
  Exporter server(x);
  server.bind(); // an address in use: Error, one line, exit 1
  std::cerr << "flare-exporter listening on " << Endpoint{x.listen.host, server.port()}.display() << " ("
            << x.telemetry_path << ": the cluster of " << x.index.display() << "; /probe?cluster=NAME: "
            << x.clusters.size() << " in FLARE_INDEX_SERVERS)" << std::endl;
  server.serve([] { return g_interrupted != 0; }, [](const std::string& line) { std::cerr << one_line(line) << std::endl; });
  std::cerr << "flare-exporter stopped (signal " << static_cast<int>(g_interrupted) << ")" << std::endl;
  return EXIT_OK;
}

// ---- data subcommands -------------------------------------------------------------------

// Output to a file goes through an OutputFile (a unique temporary beside it, renamed over it only
// once complete, removed otherwise; mode 0600 unless --file-mode); stdout otherwise.
class Output {
public:
  explicit Output(const Options& o) {
    if (o.has("output") && o.get("output") != "-") {
      note_leftovers_beside(o.get("output"));
      file_ = std::make_unique<OutputFile>(o.get("output"), file_mode(o, OutputFile::kPrivate));
      name_ = "'" + (file_->in_place() ? file_->path() : file_->temp_path()) + "'";
      writer_ = std::make_unique<FdWriter>(file_->fd(), name_);
    } else {
      if (g_std_closed[1]) { // found before the cluster is read, in the words of every command
        say_stdout_failed(0);
        throw Exit{EXIT_FAIL};
      }
      writer_ = std::make_unique<FdWriter>(1, "standard output");
    }
  }
  ~Output() {
    try {
      writer_.reset();
    } catch (...) {
    }
    file_.reset(); // uncommitted: its temporary is removed (an incomplete dump never looks complete)
  }
  FdWriter& writer() { return *writer_; }
  void commit() {
    writer_->flush();
    if (file_) file_->commit();
  }
  std::string where() const { return file_ && !file_->in_place() ? " ('" + file_->path() + "' was not written)" : ""; }

private:
  std::unique_ptr<OutputFile> file_;
  std::string name_;
  std::unique_ptr<FdWriter> writer_;
};

// The nodes a dump reads (dump_targets): the ones named, or with --all every master.
// `command`: the subcommand the advice names ("dump", "dumpkey").
std::vector<DumpTarget> data_targets(const Options& o, const Context& c, unsigned long long bwlimit,
                                     const std::string& command = "dump") {
  DumpSelection s;
  s.all = o.flag("all");
  if (s.all && !o.args.empty()) throw UsageError("don't specify any nodes with --all option.");
  if (!s.all && o.args.empty()) throw UsageError("please specify --all option to get complete dump (or give HOST:PORT).");
  if (o.has("partition")) {
    s.partition = to_int32(o.get("partition"));
    if (!s.partition || *s.partition < 0) throw UsageError("invalid --partition " + shown(o.get("partition")));
  }
  if (o.has("partition-size")) {
    s.partition_size = to_int32(o.get("partition-size"));
    if (!s.partition_size || *s.partition_size <= 0) throw UsageError("invalid --partition-size " + shown(o.get("partition-size")));
  }
  if (s.partition.has_value() != s.partition_size.has_value()) throw UsageError("--partition and --partition-size go together");
  if (s.partition && *s.partition >= *s.partition_size) throw UsageError("--partition must be less than --partition-size");
  for (const auto& a : o.args) s.nodes.push_back(endpoint_arg(a)); // checked before the index is asked anything
  s.bwlimit = bwlimit;
  s.partial = o.flag("partial");
  s.command = command;
  IndexClient ic = index_client(c);
  Cluster cluster = load_cluster(ic);
  DumpChoice choice = dump_targets(cluster, s, ic.endpoint());
  for (const auto& note : choice.notes) std::cerr << one_line(note) << "\n";
  return choice.targets;
}

unsigned long long bwlimit_option(const Options& o) {
  if (!o.has("bwlimit")) return 0;
  auto v = parse_bandwidth(o.get("bwlimit"));
  if (!v) throw UsageError("invalid --bwlimit " + shown(o.get("bwlimit")) + " (bits per second, at least 8; k, M, G multiply by 1024; a trailing B means bytes; 0: no limit)");
  return *v;
}

// The width a redrawn line may take on stderr's terminal: not the last column (no wrap).
size_t progress_width() {
  winsize ws{};
  return ::ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col - 1u : 79u;
}

// Several nodes read at once, on a terminal: one line redrawn with every node's count (and
// again as each node ends, after `on_done`). Elsewhere (scripts, logs) only `on_done`.
// `targets` null: the nodes are known only as the listing starts them (check --keys reads the map
// itself); the line is then made of the nodes on_node_start names, before their first count.
void show_progress(Terminal& term, DumpOptions& opt, const std::string& verb, const std::vector<DumpTarget>* targets,
                   const std::string& unit, std::function<void(const DumpTarget&, unsigned long long)> on_done = nullptr) {
  using Line = std::shared_ptr<StreamsProgress>;
  const bool live = term.err_is_tty && (!targets || targets->size() > 1);
  auto names = std::make_shared<std::vector<std::string>>();
  // By address: the library may hand back its own copy of the targets (check_key_placement).
  auto position = std::make_shared<std::map<std::string, size_t>>();
  auto add = [names, position](const DumpTarget& t) {
    (*position)[t.endpoint.key()] = names->size();
    names->push_back(t.endpoint.display());
  };
  auto made = std::make_shared<Line>();
  auto line = [names, made, verb, unit]() -> StreamsProgress& {
    if (!*made) *made = std::make_shared<StreamsProgress>(verb, *names, unit, progress_width());
    return **made;
  };
  if (live) {
    term.erase_progress = true;
    if (targets)
      for (const auto& t : *targets) add(t);
    else
      opt.on_node_start = add;
    opt.on_node_item = [&term, line](size_t i, unsigned long long n) {
      StreamsProgress& l = line();
      l.count(i, n);
      if (auto s = l.line_if_due()) term.progress(*s);
    };
  }
  opt.on_node_done = [&term, live, line, position, on_done](const DumpTarget& t, unsigned long long n) {
    if (on_done) on_done(t, n);
    if (!live) return;
    StreamsProgress& l = line();
    auto it = position->find(t.endpoint.key());
    if (it != position->end()) l.finish(it->second);
    term.progress(l.line());
  };
}

// flare-admin check: the cluster's health as a monitoring plugin reports it. Prints the verdict
// and one line per finding (or --json) on stdout; exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
// (run() maps a bad command line and an error to 3 for this command).
int cmd_check(const Options& o) {
  Context c = make_context(o, true);
  if (!o.args.empty()) throw UsageError("check takes no arguments");
  CheckThresholds t;
  auto number = [&](const char* name, long long& into) {
    if (!o.has(name)) return;
    auto v = to_int(o.get(name));
    if (!v || *v < 0) throw UsageError("invalid --" + std::string(name) + " " + shown(o.get(name)) + ": give a number, 0 or more");
    into = *v;
  };
  number("lag-warning", t.lag_warning_items);
  number("lag-critical", t.lag_critical_items);
  number("lag-warning-seconds", t.lag_warning_seconds);
  number("lag-critical-seconds", t.lag_critical_seconds);
  number("items-difference", t.items_difference);
  number("prepare-seconds", t.prepare_seconds);
  if (t.lag_warning_items > t.lag_critical_items) throw UsageError("--lag-warning is above --lag-critical");
  if (t.lag_warning_seconds > t.lag_critical_seconds)
    throw UsageError("--lag-warning-seconds is above --lag-critical-seconds");
  if (o.has("ignore")) {
    const std::string list = o.get("ignore");
    std::istringstream codes_in(list);
    for (std::string code; std::getline(codes_in, code, ',');) {
      const auto& codes = check_codes();
      if (std::none_of(codes.begin(), codes.end(), [&](const CheckCode& k) { return code == k.code; }))
        throw UsageError("--ignore: unknown finding " + shown(std::string(code)) + " (see the man page's list)");
      t.ignore.insert(std::string(code));
    }
  }
  std::optional<Layout> layout;
  if (o.has("layout")) {
    try {
      layout = parse_layout(read_layout_text(o.get("layout")));
    } catch (const Error& e) {
      // A layout that cannot be read gives no verdict: UNKNOWN, before the cluster is asked.
      std::cout << format_check_unknown(o.get("layout") + ": " + e.what(), o.flag("json"));
      flush_stdout();
      return static_cast<int>(Severity::unknown);
    }
  }
  std::optional<DumpOptions> keys;
  if (o.flag("keys")) {
    keys.emplace();
    keys->timeout_ms = c.timeout_ms;
    keys->trace = c.trace;
    keys->cancel = [] { return g_interrupted != 0; };
  }
  Terminal term;
  if (keys) show_progress(term, *keys, "checking keys", nullptr, "keys");
  CheckData d;
  try {
    d = collect_check(c.index, c.timeout_ms, keys ? &*keys : nullptr, c.trace, interrupted);
    term.end_progress();
  } catch (const Interrupted&) {
    term.end_progress();
    std::cerr << "interrupted\n";
    return exit_interrupted();
  }
  d.layout = layout;
  d.layout_name = o.get("layout");
  CheckReport r = evaluate_check(d, t);
  if (o.flag("json")) std::cout << format_check_json(r) << "\n";
  else std::cout << format_check_text(r);
  // A report that did not reach stdout is no verdict: UNKNOWN, with the reason on stderr.
  if (!stdout_written()) return static_cast<int>(Severity::unknown);
  return static_cast<int>(r.status);
}

int cmd_dump(const Options& o) {
  Context c = make_context(o, true);
  auto format = parse_data_format(o.get("format", "flare"));
  if (!format) throw UsageError("unknown format: " + shown(o.get("format")) + " (flare or csv)");
  auto targets = data_targets(o, c, bwlimit_option(o));
  Output out(o);
  ItemWriter writer(out.writer(), *format);
  unsigned long long total = 0;
  DumpOptions opt;
  opt.timeout_ms = c.timeout_ms;
  opt.trace = c.trace;
  opt.cancel = interrupted;
  // One node: 0.7.3's line, its count added at the end. Several, read at once: each node's
  // whole line as it finishes.
  auto shown = [](const DumpTarget& t) {
    return "dumping from " + t.endpoint.display() + "::" + std::to_string(t.range.partition) + " of " +
           std::to_string(t.range.partition_size) + " partitions ... ";
  };
  bool one = targets.size() == 1;
  Terminal term;
  opt.on_node_start = [&](const DumpTarget& t) {
    if (one) std::cerr << shown(t);
  };
  show_progress(term, opt, "dumping", &targets, "items", [&](const DumpTarget& t, unsigned long long n) {
    if (one) std::cerr << n << "\n";
    else term.warn(shown(t) + std::to_string(n));
  });
  opt.on_item = [&](unsigned long long n) { total = n; };
  unsigned long long unframed = 0;
  if (o.flag("skip-unframed")) {
    opt.on_unframed = [&](const DumpTarget& t, const UnframedRecord& u) {
      if (one && unframed == 0) std::cerr << "\n";
      ++unframed;
      term.warn("skipped a record " + t.endpoint.display() + " cannot frame: byte " + std::to_string(u.offset) +
                " of its dump, " + std::to_string(u.size) + " bytes, key '" + printable(u.key, 250) + "' (" +
                std::to_string(u.length) + "-byte value)");
    };
  }
  try {
    dump_items(targets, writer, opt);
    writer.finish();
    out.commit();
    term.end_progress();
    if (unframed > 0) {
      std::cerr << unframed << " record" << (unframed == 1 ? "" : "s")
                << " skipped (named above: keys holding a space or CR LF, which flare's text dump cannot frame); the other "
                << total << " items were written\n";
      return EXIT_FAIL;
    }
  } catch (const Interrupted&) {
    term.end_progress();
    std::cerr << (one ? "\n" : "") << "interrupted after " << total << " items" << out.where() << "\n";
    return exit_interrupted();
  } catch (const Error& e) {
    term.end_progress();
    std::cerr << (one ? "\n" : "") << e.what() << "\ndump failed after " << total << " items" << out.where() << "\n";
    return EXIT_FAIL;
  }
  return EXIT_OK;
}

int cmd_dumpkey(const Options& o) {
  Context c = make_context(o, true);
  auto targets = data_targets(o, c, bwlimit_option(o), "dumpkey");
  Output out(o);
  unsigned long long total = 0;
  RateLimiter limiter(targets.empty() ? 0 : targets.front().range.bwlimit, interrupted);
  DumpOptions opt;
  opt.timeout_ms = c.timeout_ms;
  opt.trace = c.trace;
  opt.cancel = interrupted;
  Terminal term;
  show_progress(term, opt, "dumping keys", &targets, "keys");
  unsigned long long unframed = 0;
  if (o.flag("skip-unframed")) {
    opt.on_unframed_key = [&](const DumpTarget& t, const std::string& key) {
      ++unframed;
      term.warn("skipped a key " + t.endpoint.display() + " cannot frame: '" + printable(key, 250) + "'");
    };
  }
  try {
    std::string line;
    dump_keys_all(
        targets,
        [&](size_t i, std::string_view key) {
          if (key.find('\n') != std::string_view::npos) { // a binary client's key: one per line cannot hold it
            std::string what = "a key of " + targets[i].endpoint.display() + " cannot be written one per line: '" +
                               printable(key, 250) + "' holds a line feed";
            if (!opt.on_unframed_key) throw Error(what + " (--skip-unframed skips it)");
            ++unframed;
            term.warn("skipped " + what);
            return;
          }
          line.assign(key.data(), key.size());
          line += '\n';
          out.writer().write(line);
          limiter.consume(line.size() + 4);
          ++total;
        },
        opt);
    out.commit();
    term.end_progress();
    if (unframed > 0) {
      std::cerr << unframed << " key" << (unframed == 1 ? "" : "s")
                << " skipped (named above: keys holding CR LF or a line feed, which flare's text dump_key or a key per line cannot frame); the other "
                << total << " keys were written\n";
      return EXIT_FAIL;
    }
  } catch (const Interrupted&) {
    term.end_progress();
    std::cerr << "interrupted after " << total << " keys" << out.where() << "\n";
    return exit_interrupted();
  } catch (const Error& e) {
    term.end_progress();
    std::cerr << e.what() << "\nkey dump failed after " << total << " keys" << out.where() << "\n";
    return EXIT_FAIL;
  }
  return EXIT_OK;
}

// A POSIX extended regular expression, matched anywhere in the key.
class KeyPattern {
public:
  explicit KeyPattern(const std::string& pattern) {
    if (::regcomp(&re_, pattern.c_str(), REG_EXTENDED | REG_NOSUB) != 0)
      throw UsageError(shown(pattern) + " isn't a valid regular expression.");
  }
  ~KeyPattern() { ::regfree(&re_); }
  KeyPattern(const KeyPattern&) = delete;
  KeyPattern& operator=(const KeyPattern&) = delete;
  bool matches(const std::string& key) const { return ::regexec(&re_, key.c_str(), 0, nullptr, 0) == 0; }

private:
  regex_t re_;
};

// Standard input as a restore reads it. Its file status flags are put back on exit: the
// reader makes the descriptor non-blocking, and a terminal or a pipe is shared with others.
class StdinGuard {
public:
  StdinGuard() : flags_(::fcntl(0, F_GETFL)) {}
  ~StdinGuard() {
    if (flags_ >= 0) ::fcntl(0, F_SETFL, flags_);
  }
  StdinGuard(const StdinGuard&) = delete;
  StdinGuard& operator=(const StdinGuard&) = delete;

private:
  int flags_;
};

int cmd_restore(const Options& o) {
  Context c = make_context(o, true);
  if (!o.has("input")) throw UsageError("restore needs --input FILE (- for standard input)");
  std::string path = o.get("input");
  bool from_stdin = path == "-";
  DataFormat format = path.size() > 4 && path.compare(path.size() - 4, 4, ".csv") == 0 ? DataFormat::csv : DataFormat::flare;
  if (o.has("format")) {
    auto f = parse_data_format(o.get("format"));
    if (!f) throw UsageError("unknown format: " + shown(o.get("format")) + " (flare or csv)");
    format = *f;
  }
  if (o.has("include") && o.has("prefix-include")) throw UsageError("--include and --prefix-include cannot be combined");
  unsigned long long resume_from = 0;
  if (o.has("resume-from")) {
    auto v = to_int(o.get("resume-from"));
    if (!v || *v < 0) throw UsageError("invalid --resume-from " + shown(o.get("resume-from")) + ": give a byte offset");
    resume_from = static_cast<unsigned long long>(*v);
  }
  std::unique_ptr<KeyPattern> include, exclude;
  std::string prefix = o.get("prefix-include");
  if (o.has("include")) include = std::make_unique<KeyPattern>(o.get("include"));
  if (o.has("exclude")) exclude = std::make_unique<KeyPattern>(o.get("exclude"));
  if (o.args.size() > 1) throw UsageError("restore writes through one node: give at most one HOST:PORT");
  if (o.flag("all") && !o.args.empty()) throw UsageError("restore: give HOST:PORT (write through it) or --all (every master), not both");
  std::optional<Endpoint> given_target;
  if (!o.args.empty()) given_target = endpoint_arg(o.args[0]);
  auto selected = [&](const std::string& key) {
    if (!prefix.empty() && key.compare(0, prefix.size(), prefix) != 0) return false;
    if (include && !include->matches(key)) return false;
    if (exclude && exclude->matches(key)) return false;
    return true;
  };
  StdinGuard stdin_guard;
  const std::string name = from_stdin ? "standard input" : "'" + path + "'";
  auto open_reader = [&] {
    int fd = from_stdin ? ::dup(0) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error("cannot open " + name + ": " + std::strerror(errno));
    auto r = std::make_unique<ItemReader>(fd, name, format);
    r->set_cancel(interrupted);
    return r;
  };
  // A regular file is checked whole (framing, and the --resume-from offset) before anything
  // is sent. A pipe can be read once only: it is restored in one pass, and a bad record stops
  // the restore where it is found.
  struct stat st{};
  bool regular = !from_stdin && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  std::unique_ptr<ItemReader> reader = open_reader();
  bool print_keys = o.flag("print-keys");
  try {
    if (regular || o.flag("dry-run")) {
      unsigned long long items = 0, chosen = 0, expired = 0;
      reader->skip_to(resume_from);
      Item item;
      const long long now = static_cast<long long>(std::time(nullptr));
      while (reader->next(item, false)) {
        ++items;
        if (selected(item.header.key)) {
          if (expired_at(item.header, now)) {
            ++expired;
            continue;
          }
          ++chosen;
          if (print_keys && o.flag("dry-run")) std::cout << item.header.key << "\n";
        }
      }
      if (o.flag("dry-run")) {
        std::cerr << "dry run: " << chosen << " of " << items << " entries would be restored";
        if (expired) std::cerr << "; " << expired << " already expired would not be sent";
        std::cerr << "; nothing was sent.\n";
        flush_stdout();
        return EXIT_OK;
      }
      reader = open_reader();
    }
  } catch (const Interrupted&) {
    std::cerr << "interrupted while reading " << name << ": nothing was sent\n";
    return exit_interrupted();
  }
  RestoreJob job;
  job.options.bwlimit = bwlimit_option(o);
  job.options.resume_from = resume_from;
  job.options.select = selected;
  if (print_keys) job.options.on_key = [](const std::string& key) { std::cout << key << "\n"; };
  job.options.cancel = interrupted;
  job.options.timeout_ms = c.timeout_ms;
  job.options.trace = c.trace;
  job.index = c.index;
  job.through = given_target; // none: every key to its partition's master (--all)
  RestoreReport report;
  try {
    report = run_restore(*reader, job);
  } catch (const Interrupted&) {
    throw;
  } catch (const Error& e) {
    std::cerr << one_line(e.what()) << "\n";
    return EXIT_FAIL;
  }
  flush_stdout();
  const RestoreSummary summary = summarize_restore(report);
  for (const auto& line : summary.lines) std::cerr << line << "\n";
  switch (summary.end) {
  case RestoreSummary::End::interrupted: return exit_interrupted();
  case RestoreSummary::End::stopped: return EXIT_FAIL;
  case RestoreSummary::End::complete: break;
  }
  return summary.failures ? EXIT_FAIL : EXIT_OK;
}

int cmd_verify(const Options& o) {
  Context c = make_context(o, true);
  KeyHashAlgorithm forced{};
  if (o.has("key-hash-algorithm") && !parse_key_hash_algorithm(o.get("key-hash-algorithm"), forced))
    throw UsageError("unknown type: " + shown(o.get("key-hash-algorithm")) + " (simple bitshift crc32 adler32 murmur jenkins)");
  IndexClient ic = index_client(c);
  Cluster cluster = load_cluster(ic);
  Partitioning p = partitioning_from_meta(ic.meta());
  if (o.has("key-hash-algorithm")) p.algorithm = forced;
  // Keys are placed by the partitions flare routes by: a down master's partition counts too.
  int count = serving_partition_count(cluster) > 0 ? routing_partition_count(cluster) : 0;
  if (count <= 0) {
    std::cerr << "cannot verify: no partition has an active master (the cluster serves no data; see "
              << with_index_option("flare-admin list", ic.endpoint()) << ")\n";
    return EXIT_FAIL;
  }
  std::cout << "key_hash_algorithm = " << to_string(p.algorithm) << "\n";
  std::cout << "partition_size: " << count << "\n";
  // Every node's keys at once (check_key_placement); the results are printed in stats order.
  std::vector<DumpTarget> targets;
  for (const auto& n : cluster.stats_order())
    if (n.partition >= 0 && n.partition < count && (n.is_master() || n.is_slave()) && n.state != "down")
      targets.push_back(DumpTarget{n.endpoint(), {}});
  DumpOptions opt;
  opt.timeout_ms = c.timeout_ms;
  opt.trace = c.trace;
  opt.cancel = interrupted;
  Terminal term;
  show_progress(term, opt, "verifying", &targets, "keys");
  std::vector<KeyPlacement> checks;
  try {
    checks = check_key_placement(cluster, p, count, opt);
    term.end_progress();
  } catch (const Interrupted&) {
    term.end_progress();
    std::cerr << "interrupted\n";
    return exit_interrupted();
  }
  bool good = true;
  unsigned long long stale = 0;
  std::vector<const KeyPlacement*> lost_on;
  // A node that was not read, or read while its copy is still being made, is no "OK": the
  // verdict is NG and the line says why (a killed slave is listed `proxy down`, without its
  // partition: every down node is named, since it may have held a copy).
  for (const auto& ch : checks) {
    if (ch.skipped) {
      std::cout << "skipping " << ch.node.key << " (partition " << ch.node.partition << "): it is down, not read NG\n";
      good = false;
      continue;
    }
    std::cout << "checking " << ch.node.key << " (partition " << ch.node.partition << ") ... ";
    if (!ch.error.empty()) {
      std::cout << "failed\n";
      std::cout.flush();
      std::cerr << ch.error << "\n";
      good = false;
      continue;
    }
    const bool partial = ch.node.state == "prepare";
    // A misplaced key that the master of its partition holds too is a stale copy (normal once a
    // partition was added; never read); one it does not hold is lost to readers.
    const bool bad = ch.only_here + ch.unchecked > 0;
    std::string split;
    if (ch.misplaced)
      split = " (" + std::to_string(ch.stale) + " stale copies, " + std::to_string(ch.only_here) + " only here" +
              (ch.unchecked ? ", " + std::to_string(ch.unchecked) + " not looked up" : std::string()) + ")";
    std::cout << ch.keys << " keys, " << ch.misplaced << " misplaced" << split << " "
              << (bad ? "NG" : partial ? "PARTIAL (in prepare: its copy is still being made) NG" : "OK") << "\n";
    if (partial) good = false;
    for (const auto& e : ch.examples) std::cout << "  " << e << "\n";
    if (ch.misplaced > ch.examples.size()) std::cout << "  ...\n";
    if (bad) good = false;
    stale += ch.stale;
    if (ch.only_here + ch.unchecked) lost_on.push_back(&ch);
  }
  if (stale)
    std::cout << "stale copies: keys also held by the master of the partition they belong to (flare leaves them on the old "
                 "partition when one is added); never read, harmless. Rebuilding the node drops them ("
              << with_index_option("flare-admin reconstruct", ic.endpoint()) << " NODE).\n";
  for (const KeyPlacement* ch : lost_on) {
    const std::string& key = ch->node.key;
    std::cout << "keys only on " << key << ": the master of their partition does not hold them. Deleted or expired "
                 "there since the partition was added (a delete reaches the new master only), nothing is lost: a "
                 "rebuild of " << key << " drops them. If that master lost its data, readers miss them and " << key
              << " holds their only copy: do not rebuild or flush it; copy them back:";
    for (int q : ch->only_here_partitions)
      std::cout << " " << with_index_option("flare-admin dump", ic.endpoint()) << " --partition " << q << " --partition-size "
                << count << " " << key << " -o FILE" << q << ", then flare-admin restore --index-server " << ic.endpoint().key()
                << " --input FILE" << q << " --include 'REGEX';";
    std::cout << " REGEX naming only the keys its master lacks (restoring every key would write stale copies over newer "
                 "values).\n";
  }
  for (const auto& n : cluster.stats_order())
    if (n.state == "down" && (n.partition < 0 || n.partition >= count)) {
      std::cout << "skipping " << n.key << " (" << n.role << " down): it is down, not read NG\n";
      good = false;
    }
  std::cout << (good ? "OK" : "NG") << "\n";
  flush_stdout();
  return good ? EXIT_OK : EXIT_FAIL;
}

// ---- deploy and keycheck ------------------------------------------------------------------

int cmd_deploy(const Options& o) {
  Context c = make_context(o, true);
  DeploySettings settings;
  for (const auto& s : deploy_settings()) {
    std::string value;
    if (s.value) {
      if (!o.has(s.key)) continue;
      value = o.get(s.key);
      // Refused before anything is written unless flarei/flared would read it as meant.
      std::string problem = deploy_value_problem(s.key, value);
      if (!problem.empty()) throw UsageError("invalid --" + std::string(s.key) + " " + shown(value) + ": " + problem);
    } else {
      if (!o.flag(s.key)) continue;
      value = "true";
    }
    settings.emplace_back(s.key, value);
    if (s.caveat) std::cerr << "warning: --" << s.key << ": " << s.caveat << "\n";
  }
  const bool with_index = o.flag("deploy-index");
  if (o.args.empty() && !with_index) throw UsageError("give HOST:PORT[:BALANCE:PARTITION] for each node, or --deploy-index");
  std::vector<Endpoint> nodes;
  for (const auto& a : o.args) {
    NodeArg n;
    try {
      n = parse_node_arg(a, 2, 4);
    } catch (const Error&) {
      n.balance = 0; // refused below
    }
    // host:port or host:port:balance:partition; host:port:balance alone is neither.
    if (n.text.empty() || (n.balance.has_value() != n.partition.has_value()))
      throw UsageError("invalid argument " + shown(a) + ". it must be hostname:port[:balance:partition].");
    nodes.push_back(n.endpoint);
  }
  if (std::string why = deploy_settings_problem(settings, nodes.size()); !why.empty()) throw UsageError(why);
  char cwd[4096];
  if (!::getcwd(cwd, sizeof cwd)) throw Error(std::string("cannot tell the current directory: ") + std::strerror(errno));
  std::vector<DeployTarget> targets;
  if (with_index) targets.push_back(plan_flarei(cwd, c.index, o.get("flarei", "/usr/local/bin/flarei"), settings));
  for (const auto& n : nodes) targets.push_back(plan_flared(cwd, n, c.index, o.get("flared", "/usr/local/bin/flared"), settings));
  // Everything is checked before the first folder is written: a refusal writes nothing.
  const bool replace = o.flag("delete");
  std::set<std::string> seen;
  for (const auto& t : targets) {
    if (!seen.insert(t.dir).second) {
      std::cerr << t.server.key() << " is given twice (one folder per HOST:PORT).\n";
      return EXIT_FAIL;
    }
    if (!replace && std::filesystem::exists(std::filesystem::symlink_status(t.dir))) {
      std::cerr << "directory already exists: " << t.dir << " (nothing was written; --delete replaces it)\n";
      return EXIT_FAIL;
    }
  }
  for (const auto& t : targets) {
    std::cout << "generating ... " << t.server.key() << "\n";
    deploy_folder(t, replace, o.flag("systemd"));
  }
  flush_stdout();
  return EXIT_OK;
}

int cmd_keycheck(const Options& o) {
  const bool all = o.flag("all");
  Context c = make_context(o, all);
  KeycheckSettings s;
  if (all && (o.has("input") || !o.args.empty())) throw UsageError("--all reads the cluster's keys: give no --input or file");
  if (o.args.size() > 1 || (o.has("input") && !o.args.empty())) throw UsageError("give one key file (or --input FILE)");
  // With --all the cluster's own partitioning is the default: what would its keys do.
  std::optional<IndexClient> ic;
  if (all) {
    ic.emplace(index_client(c));
    Partitioning p = naming_index(c.index, [&] {
      ic->require_index();
      return partitioning_from_meta(ic->meta());
    });
    s.algorithm = p.algorithm;
    s.virtual_buckets = p.resolver.virtual_buckets();
    s.hint = p.resolver.hint();
    s.partitions = serving_partition_count(load_cluster(*ic));
    if (s.partitions < 1 && !o.has("partition-size")) {
      std::cerr << "the cluster serves no partition yet; give --partition-size\n";
      return EXIT_FAIL;
    }
  }
  std::string algorithm = o.has("hash") ? o.get("hash") : o.get("key-hash-algorithm");
  if ((o.has("hash") || o.has("key-hash-algorithm")) && !parse_key_hash_algorithm(algorithm, s.algorithm))
    throw UsageError("invalid hash function " + shown(algorithm) + " (simple bitshift crc32 adler32 murmur jenkins)");
  auto number = [&](const char* name, int& into) {
    if (!o.has(name)) return;
    auto v = to_int32(o.get(name));
    if (!v) throw UsageError("invalid --" + std::string(name) + " " + shown(o.get(name)));
    into = *v;
  };
  number("partition-size", s.partitions);
  number("hint", s.hint);
  number("virtual", s.virtual_buckets);
  if (o.has("delimiter")) s.delimiter = o.get("delimiter");
  std::string problem = keycheck_settings_problem(s);
  if (!problem.empty()) throw UsageError(problem);

  KeyDistribution d(s);
  if (all) {
    Options every_master = o;  // keycheck's --partition-size is no dump range
    every_master.values.erase("partition-size");
    for (auto& t : data_targets(every_master, c, 0)) {
      NodeClient node(t.endpoint, c.timeout_ms);
      node.set_trace(c.trace);
      dump_keys(node, t.range.partition, t.range.partition_size, [&](std::string_view key) {
        if (g_interrupted) throw Exit{exit_interrupted()};
        d.add(key);
      });
    }
  } else {
    std::string path = o.has("input") ? o.get("input") : o.args.empty() ? "-" : o.args[0];
    std::ifstream file;
    if (path != "-") {
      struct stat st{};
      if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        throw Error(shown(path) + " is a directory, not a file: give the file to read");
      file.open(path, std::ios::binary);
      if (!file) throw Error("cannot open '" + path + "': " + std::strerror(errno));
    }
    std::istream& in = path == "-" ? std::cin : file;
    std::string key;
    while (std::getline(in, key)) {
      if (!key.empty() && key.back() == '\r') key.pop_back();  // CRLF files
      if (key.empty()) continue;
      if (g_interrupted) return exit_interrupted();
      d.add(key);
    }
    if (in.bad()) throw Error("cannot read '" + path + "'");
  }
  d.finish();
  Output out(o);
  auto write = [&](const std::string& text) { out.writer().write(text); };
  if (o.flag("json")) {
    write_keycheck_json(d, write);
  } else {
    write_keycheck_csv(d, write);
    const unsigned long long moved = keycheck_moved(d), placed = d.keys() - d.unplaced();
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f", placed ? 100.0 * static_cast<double>(moved) / static_cast<double>(placed) : 0.0);
    std::cerr << "going from " << s.partitions << " to " << s.partitions + 1 << " partitions moves " << moved << " of "
              << placed << " keys (" << pct << "%)\n";
  }
  if (d.unplaced())
    std::cerr << d.unplaced() << " keys hash to INT_MIN, which flare cannot place with " << s.virtual_buckets
              << " virtual buckets; they are left out\n";
  out.commit();
  return EXIT_OK;
}

// The options of deploy: its own, then every setting it passes through to the files.
std::vector<OptSpec> deploy_options() {
  std::vector<OptSpec> out = {
      {"deploy-index", 0, nullptr, "also deploy the index server (-i/-p: HOST:PORT)"},
      {"delete", 0, nullptr, "replace existing folders, data included"},
      {"flarei", 0, "PATH", "flarei executable (default /usr/local/bin/flarei)"},
      {"flared", 0, "PATH", "flared executable (default /usr/local/bin/flared)"},
      {"systemd", 0, nullptr, "also write a systemd unit, NAME-HOST:PORT.service"},
  };
  for (const auto& s : deploy_settings()) out.push_back({s.key, 0, s.value, s.help});
  return out;
}

// ---- the command table -------------------------------------------------------------------

const OptSpec kJson = {"json", 0, nullptr, "print one JSON document instead of the table"};
const OptSpec kForce = {"force", 0, nullptr, "answer every question yes (the safety checks still apply)"};
const OptSpec kDryRun = {"dry-run", 'n', nullptr, "show what would be sent; change nothing"};
const OptSpec kBwlimit = {"bwlimit", 0, "RATE", "bits per second (k/M/G x1024; trailing B: bytes)"};
const OptSpec kDiscardItems = {"discard-items", 0, nullptr, "flush a proxy that holds items (they are deleted; refused without this)"};
const OptSpec kPartial = {"partial", 0, nullptr, "dump a node that is not an active master or slave (a proxy, a slave in prepare, a down node) anyway: not a whole copy of a partition"};
const OptSpec kRetry = {"retry", 0, "N", "attempts of a refused role change (default 10)"};

std::vector<Command> commands() {
  return {
      {"ping", "[HOST:PORT ...]", "Check that servers answer ping (none given: the index server).", true,
       {{"wait", 0, nullptr, "retry every second until each server answers"}}, cmd_ping},
      {"list", "", "Show the nodes of the cluster.", true,
       {{"numeric-hosts", 0, nullptr, "show resolved addresses instead of names"}, kJson}, cmd_list},
      {"stats", "[HOST:PORT ...]", "Show statistics of every node (or of the nodes given).", true,
       {{"qps", 'q', nullptr, "add requests per second (total, reads, writes)"},
        {"wait", 'w', "SECONDS", "seconds between tables (default 1)"},
        {"count", 'c', "N", "number of tables (default 1); with --json, N > 1 prints JSON Lines (one document a line)"},
        {"delimiter", 'd', "STRING", "column separator (default one space)"},
        {"json", 0, nullptr, "print one JSON document instead of the table (sizes in bytes)"},
        {"fail-on-unreachable", 0, nullptr, "exit 1 when a node did not answer (default: exit 0, as 0.7.3)"},
        {"prometheus", 0, nullptr, "print Prometheus text format (0.0.4) for every node and the cluster (bytes)"},
        {"output", 'o', "FILE", "with --prometheus: write FILE atomically instead of stdout"},
        {"file-mode", 0, "MODE", "permission bits of FILE, octal (default 0644: a monitoring agent reads it)"}},
       cmd_stats,
       "The size column is in whole GiB, rounded down, as 0.7.3 shows it (21 MB shows 0);\n"
       "--json and --prometheus carry bytes. A node that does not answer is shown as such\n"
       "(its error on stderr) and the exit status stays 0 unless --fail-on-unreachable.\n"},
      {"threads", "[HOST:PORT]", "Show the threads of the index server or of a node.", true, {kJson}, cmd_threads},
      {"summary", "", "Show a one-line summary of the cluster.", true, {kJson}, cmd_summary},
      {"check", "", "Tell the cluster's health as a monitoring plugin (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).",
       true,
       {{"json", 0, nullptr, "print one JSON document instead of the plugin's lines"},
        {"keys", 0, nullptr, "also list every node's keys: placement and framing (as verify)"},
        {"lag-warning", 0, "ITEMS", "a slave more items behind is a warning (default 1000)"},
        {"lag-critical", 0, "ITEMS", "... critical (default 100000)"},
        {"lag-warning-seconds", 0, "SECONDS", "a slave more seconds behind is a warning (default 30)"},
        {"lag-critical-seconds", 0, "SECONDS", "... critical (default 300)"},
        {"items-difference", 0, "ITEMS", "a slave and its master differing by more items, nothing queued (default 1000)"},
        {"prepare-seconds", 0, "SECONDS", "a new partition's master copying for longer is a warning (default 1800)"},
        {"ignore", 0, "CODE,...", "leave these findings out (e.g. slave_same_host on a one-host test cluster)"},
        {"layout", 0, "FILE", "also compare the cluster with a layout (as apply reads it): a difference is the warning layout_drift"}},
       cmd_check},
      {"index", "", "Print the node map as flare's XML document.", true,
       {{"output", 'o', "FILE", "write to FILE (atomically) instead of stdout"}, {"file-mode", 0, "MODE", "permission bits of FILE, octal (default 0600)"},
        {"increment", 0, "N", "add N to the node map version"},
        {"from-node", 0, "HOST:PORT", "write the map this data node holds (and routes by), not the index's: for an index that lost its flare.xml"}},
       cmd_index},
      {"master", "HOST:PORT:BALANCE:PARTITION ...", "Make proxies the masters of new partitions.", true,
       {kForce, kDryRun, kRetry, {"activate", 0, nullptr, "activate a master that ends ready"},
        {"unsafe", 0, nullptr, "replace a partition's down master (its data is lost)"},
        {"without-clean", 0, nullptr, "do not flush_all the node first"}, kDiscardItems},
       cmd_master},
      {"slave", "HOST:PORT:BALANCE[:PARTITION] ...", "Make proxies slaves of a partition, then give them their balance.",
       true, {kForce, kDryRun, kRetry, {"without-clean", 0, nullptr, "do not flush_all the node first"}, kDiscardItems}, cmd_slave},
      {"balance", "HOST:PORT:BALANCE ...", "Change the balance of nodes.", true,
       {kForce, kDryRun, {"unsafe", 0, nullptr, "set balance 0 even where it leaves a partition no node to read from"}}, cmd_balance},
      {"down", "HOST:PORT ...", "Turn nodes down (a master fails over to its best slave).", true,
       {kForce, kDryRun,
        {"unsafe", 0, nullptr, "fail a master over even if its slaves have not caught up (their missing writes are lost); set down a master with no slave to take over (an outage)"}},
       cmd_down},
      {"activate", "HOST:PORT ...", "Turn nodes active (a ready master, a revived node).", true, {kForce, kDryRun},
       cmd_activate},
      {"remove", "HOST:PORT ...", "Remove down proxies from the cluster.", true, {kForce, kDryRun, kRetry}, cmd_remove},
      {"reconstruct", "HOST:PORT ... | --all", "Rebuild nodes from their partition.", true,
       {kForce, kDryRun, kRetry, {"all", 0, nullptr, "every master and slave"},
        {"unsafe", 0, nullptr, "rebuild even without redundancy, or a master whose slaves have not caught up"}},
       cmd_reconstruct},
      {"part", "HOST:PORT:BALANCE:PARTITION ...", "Build partitions: the first node of each is its master, the rest slaves.",
       true, {kForce, kDryRun, kRetry, kDiscardItems}, cmd_part},
      {"apply", "LAYOUT | --plan FILE", "Make the cluster match a layout (what list prints): plan, ask once, run each step.",
       true,
       {kForce, kDryRun, kRetry, kDiscardItems,
        {"diff", 0, nullptr, "only compare: print where the cluster differs; exit 0 same, 1 different, 2 error"},
        {"prune", 0, nullptr, "also take out of service the masters and slaves the layout leaves out (they become proxies), and remove down proxies it leaves out"},
        {"plan-out", 0, "FILE", "write the plan, with the node_map_version it was made from, to FILE; change nothing"},
        {"plan", 0, "FILE", "run a plan written by --plan-out (refused if the cluster changed since)"}},
       cmd_apply,
       "The layout is what flare-admin list prints: node, partition (- for a proxy), role, state\n"
       "(ignored), balance; # comments and blank lines are allowed. Nodes the cluster has and the\n"
       "layout leaves out are left as they are unless --prune. Run it again at any point: it plans\n"
       "from the cluster as it is.\n"},
      {"exporter", "", "Serve Prometheus metrics over HTTP (also flare-exporter): one gather of the cluster per scrape.",
       true,
       {{"web.listen-address", 0, "ADDRESS", "HOST:PORT or :PORT to listen on (default :12119)"},
        {"web.telemetry-path", 0, "PATH", "the path of the metrics (default /metrics)"},
        {"web.allowed-targets", 0, "HOST:PORT,...", "index servers /probe?target= may read (default: none)"}},
       cmd_exporter,
       "GET /metrics reads the cluster of -i (or $FLARE_INDEX_SERVER); /probe?cluster=NAME one of\n"
       "$FLARE_INDEX_SERVERS. A cluster that does not answer gives 200 with flare_index_up 0. It runs in\n"
       "the foreground, logs one line per error on stderr, and exits 0 on SIGTERM or SIGINT.\n"},
      {"dump", "[HOST:PORT ...] | --all", "Dump items to a file or stdout (flare or csv format).", true,
       {{"all", 0, nullptr, "dump every master"}, {"output", 'o', "FILE", "write to FILE (complete or not at all); - for stdout"}, {"file-mode", 0, "MODE", "permission bits of FILE, octal (default 0600)"},
        {"format", 'f', "FORMAT", "flare (default) or csv"}, kBwlimit,
        {"partition", 0, "N", "only keys of partition N ..."}, {"partition-size", 0, "N", "... of N partitions"},
        {"skip-unframed", 0, nullptr, "skip and name the records flared cannot frame (a key holding a space or CR LF); write the rest; exit 1"},
        kPartial},
       cmd_dump},
      {"dumpkey", "[HOST:PORT ...] | --all", "Dump keys, one per line.", true,
       {{"all", 0, nullptr, "every master"}, {"output", 'o', "FILE", "write to FILE (complete or not at all)"}, {"file-mode", 0, "MODE", "permission bits of FILE, octal (default 0600)"},
        kBwlimit, {"partition", 0, "N", "only keys of partition N ..."}, {"partition-size", 0, "N", "... of N partitions"},
        {"skip-unframed", 0, nullptr, "skip and name the keys flared cannot frame (a key holding CR LF); write the rest; exit 1"},
        kPartial},
       cmd_dumpkey},
      {"restore", "--input FILE [HOST:PORT | --all]", "Write a dump back with set, pipelined: each item straight to its partition's master, or all through HOST:PORT.",
       true,
       {{"input", 'i', "FILE", "the dump to restore (- for standard input)"},
        {"all", 0, nullptr, "write to every master at once, each item to its partition's (the default with no HOST:PORT)"},
        {"resume-from", 0, "OFFSET", "start at the record at byte OFFSET (printed by a restore that stopped)"}, {"format", 'f', "FORMAT", "flare or csv (default: from the name)"},
        {"include", 0, "REGEX", "only keys matching REGEX"}, {"exclude", 0, "REGEX", "skip keys matching REGEX"},
        {"prefix-include", 0, "STRING", "only keys starting with STRING"},
        {"print-keys", 0, nullptr, "print each restored key"}, kBwlimit, kDryRun},
       cmd_restore},
      {"verify", "", "Check that every key is stored in the partition it belongs to.", true,
       {{"key-hash-algorithm", 0, "NAME", "override the index's (simple bitshift crc32 adler32 murmur jenkins)"}},
       cmd_verify},
      {"deploy", "[HOST:PORT[:BALANCE:PARTITION] ...]", "Write a folder per server to run flarei/flared (config, data/, scripts).",
       true, deploy_options(), cmd_deploy},
      {"keycheck", "[KEYFILE] | --all", "Count each key prefix's keys per partition for 1..N partitions.", true,
       {{"delimiter", 'd', "STRING", "a key's prefix ends at its last STRING (default ::)"},
        {"input", 'i', "FILE", "keys, one per line, as dumpkey writes them (default stdin)"},
        {"all", 0, nullptr, "read the keys of the live cluster (dump_key on every master)"},
        {"output", 'o', "FILE", "write to FILE (complete or not at all)"}, {"file-mode", 0, "MODE", "permission bits of FILE, octal (default 0600)"},
        {"partition-size", 's', "N", "partition counts 1..N (default 100; with --all the cluster's)"},
        {"hash", 'h', "NAME", "simple bitshift crc32 adler32 murmur jenkins (default simple; --all: the index's)"},
        {"key-hash-algorithm", 0, "NAME", "the same as --hash"},
        {"hint", 'n', "N", "partition-modular-hint (default 1; with --all the index's)"},
        {"virtual", 0, "N", "partition-modular-virtual (default 4096; with --all the index's)"},
        kJson},
       cmd_keycheck},
  };
}

// The subcommand nearest to a mistyped one (fewest single-character edits; a prefix of one
// name counts as near), or "" when none is within a third of the word.
std::string nearest_subcommand(const std::string& typed, const std::vector<Command>& named) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = std::max<size_t>(2, typed.size() / 3) + 1;
  for (const auto& c : named) {
    std::string name = c.name;
    size_t d = typed.size() >= 3 && name.rfind(typed, 0) == 0 ? 1 : distance(typed, name);
    if (d < best_d) {
      best_d = d;
      best = name;
    }
  }
  return best;
}

// Files named by --input / --output, checked before anything is asked, sent or written: a
// directory is named as one (not "malformed record at byte 0"); restore's and keycheck's -i is
// the input file (0.7.3), so an -i that is no file but reads HOST:PORT was meant as the index
// server: a usage error that says so.
void check_file_options(const Options& o, const Command& c) {
  auto is_dir = [](const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  };
  if (o.has("input") && o.get("input") != "-") {
    const std::string& path = o.get("input");
    if (is_dir(path)) throw Error(shown(path) + " is a directory, not a file: give the file to read");
    bool host_port = false;
    try {
      parse_node_arg(path, 2, 2);
      host_port = true;
    } catch (const Error&) {
    }
    if (host_port && ::access(path.c_str(), F_OK) != 0)
      throw UsageError("no file " + shown(path) + ": in " + c.name + ", -i is the input file (--input); " +
                       "to name the index server, use --index-server " + printable(path, 200));
  }
  if (o.has("output") && o.get("output") != "-" && is_dir(o.get("output")))
    throw Error(shown(o.get("output")) + " is a directory, not a file: give the file to write");
}

void print_overview(std::ostream& out) {
  out << "Usage: flare-admin SUBCOMMAND [options] [arguments]\n"
      << "       flare-SUBCOMMAND [options] [arguments]  (flare-stats is flare-admin stats, ...)\n\nSubcommands:\n";
  for (const auto& c : commands()) {
    std::string name = c.name;
    out << "  " << name << std::string(name.size() < 13 ? 13 - name.size() : 1, ' ') << c.summary << "\n";
  }
  out << "\nRun 'flare-admin SUBCOMMAND --help' (or 'flare-admin help SUBCOMMAND') for the options of each.\n"
         "Exit status: 0 done, 1 failed or refused at run time (or its output could not be written),\n"
         "2 command line wrong, 128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)\n"
         "(check, a monitoring plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; exporter, a service: 0 once\n"
         "stopped by SIGTERM or SIGINT).\n"
         "Data goes to stdout; errors, refusals, warnings, notes and prompts go to stderr.\n";
}

int run(int argc, char** argv) {
  std::string argv0 = argc > 0 ? argv[0] : "flare-admin";
  std::string base = argv0.substr(argv0.find_last_of('/') == std::string::npos ? 0 : argv0.find_last_of('/') + 1);
  std::vector<std::string> words(argv + (argc > 0 ? 1 : 0), argv + argc);
  std::string sub;
  // flare-SUB runs subcommand SUB (flare-stats, flare-ping, flare-part, flare-deploy, ...).
  const auto named = commands();
  if (base.rfind("flare-", 0) == 0 &&
      std::any_of(named.begin(), named.end(), [&](const Command& c) { return base.substr(6) == c.name; })) {
    program_name = base;
    short_name = true;
    sub = base.substr(6);
  } else {
    if (words.empty()) {
      print_overview(std::cerr);
      return EXIT_USAGE;
    }
    sub = words.front();
    words.erase(words.begin());
    if (sub == "--version" || sub == "version") {
      std::cout << "flare-tools (C++) " << FLARE_TOOLS_VERSION << "\n";
      return EXIT_OK;
    }
    if (sub == "-h" || sub == "--help" || sub == "help") {
      // help SUB: SUB's own help, as SUB --help shows it.
      if (sub == "help" && !words.empty()) {
        if (words.size() > 1) {
          std::cerr << "help takes one subcommand (see: flare-admin --help)\n";
          return EXIT_USAGE;
        }
        sub = words.front();
        words = {"--help"};
        if (sub == "help" || sub == "-h" || sub == "--help" || sub == "version" || sub == "--version") {
          // not subcommands of their own: help on help is the overview, as `flare-admin --help`
          print_overview(std::cout);
          return EXIT_OK;
        }
      } else {
        print_overview(std::cout);
        return EXIT_OK;
      }
    }
  }
  if (std::find(words.begin(), words.end(), "--version") != words.end()) {
    std::cout << "flare-tools (C++) " << FLARE_TOOLS_VERSION << "\n";
    return EXIT_OK;
  }
  for (auto& c : commands()) {
    if (sub != c.name) continue;
    // check follows the monitoring plugins' convention: UNKNOWN (3) when it cannot tell, with
    // the verdict line on stdout (what Nagios shows) and the reason on stderr too.
    const bool plugin = std::string(c.name) == "check";
    // Asked for JSON, a monitoring agent gets JSON even when the rest of the line was wrong.
    const bool json = std::find(words.begin(), words.end(), "--json") != words.end();
    auto unknown = [json](const std::string& why) {
      std::cout << format_check_unknown(why, json);
      std::cout.flush();
      return 3;
    };
    try {
      Options o = parse_options(c, words);
      if (o.flag("help")) {
        std::cout << help_text(c);
        return EXIT_OK;
      }
      if (!*c.usage && !o.args.empty())
        throw UsageError(std::string(c.name) + " takes no arguments (given: " + shown(o.args.front()) + ")");
      check_file_options(o, c);
      if (o.has("file-mode")) file_mode(o, 0); // checked before anything is asked or sent
      if (o.has("file-mode") && o.get("output", "-") == "-") throw UsageError("--file-mode goes with -o FILE");
      return c.run(o);
    } catch (const UsageError& e) {
      std::cerr << one_line(e.what()) << " (see: " << program_name
                << (short_name ? "" : std::string(" ") + c.name) << " --help)\n";
      return plugin ? unknown(e.what()) : EXIT_USAGE;
    } catch (const Exit& e) {
      return e.status;
    } catch (const Interrupted&) {
      // Ctrl-C or SIGTERM while a read-only command waited: no verdict, no half a table.
      std::cerr << "interrupted\n";
      return exit_interrupted();
    } catch (const Error& e) {
      std::cerr << one_line(e.what()) << "\n";
      return plugin ? unknown(e.what()) : EXIT_FAIL;
    } catch (const std::bad_alloc&) {
      std::cerr << "out of memory\n";
      return plugin ? unknown("out of memory") : EXIT_FAIL;
    }
  }
  std::string nearest = nearest_subcommand(sub, named);
  std::cerr << "unknown subcommand " << shown(sub)
            << (nearest.empty() ? "" : "; did you mean '" + nearest + "'?") << " (run flare-admin --help for the list)\n";
  return EXIT_USAGE;
}

} // namespace

#ifndef FLARE_CLI_NO_MAIN // the fuzz target for option parsing includes this file
int main(int argc, char** argv) {
  // Before anything else: no socket or file may take descriptor 0, 1 or 2.
  if (!occupy_standard_fds()) return EXIT_FAIL;
  std::cout.rdbuf(&g_stdout_buf);
  if (::isatty(1)) std::cout << std::unitbuf; // a terminal sees each line as it is printed, as stdio's did
  // Every terminating signal an operator meets (Ctrl-C, SIGTERM from timeout(1), cron or systemd,
  // SIGHUP from a dropped ssh session, Ctrl-\, a CPU or file-size limit, an alarm or a user
  // signal) stops the tool as Ctrl-C does: nothing more is sent, a file being written is removed,
  // not left half-written, exit 128 + N. A signal the caller ignored (nohup) stays ignored.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ}) {
    if (std::signal(sig, on_stop_signal) == SIG_IGN) std::signal(sig, SIG_IGN);
  }
  std::signal(SIGPIPE, SIG_IGN); // the CLI may: a closed stdout must become an error, not a silent death
  return finish_streams(run(argc, argv));
}
#endif
