// Integration: the flare-SUB names, deploy, keycheck, the man page, the bash completion and
// `make install`, as the built binary and the files that ship with it.
#include "harness.hpp"

#include <algorithm>
#include <set>

#include <dirent.h>

using harness::FakeCluster;
using harness::slurp;
using harness::run;
using harness::with;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

// The subcommands, as the program lists them in its overview.
std::vector<std::string> subcommands() {
  auto r = run({"--help"});
  REQUIRE(r.status == 0);
  std::vector<std::string> out;
  bool on = false;
  for (const auto& l : lines_of(r.out)) {
    if (l == "Subcommands:") on = true;
    else if (on && l.empty()) break;
    else if (on) out.push_back(l.substr(2, l.find(' ', 2) - 2));
  }
  REQUIRE(out.size() > 10);
  return out;
}

// The long options a subcommand's --help lists.
std::vector<std::string> options_of(const std::string& sub) {
  auto r = run({sub, "--help"});
  REQUIRE(r.status == 0);
  std::vector<std::string> out;
  for (const auto& l : lines_of(r.out)) {
    size_t at = l.find("--");
    if (l.rfind("  ", 0) != 0 || at == std::string::npos || at > 8) continue;
    size_t end = l.find_first_of("= ", at);
    out.push_back(l.substr(at + 2, end == std::string::npos ? std::string::npos : end - at - 2));
  }
  REQUIRE_FALSE(out.empty());
  return out;
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (const dirent* e = ::readdir(d))
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.insert(e->d_name);
  ::closedir(d);
  return out;
}

// Runs the test body in a fresh folder (deploy writes into the current one). The binaries'
// paths are made absolute first, since they may be given relative to the project.
class InTempDir {
public:
  InTempDir() : dir(harness::make_temp_dir()) {
    char buf[4096];
    REQUIRE(::getcwd(buf, sizeof buf) != nullptr);
    back_ = buf;
    ::setenv("FLARE_ADMIN", harness::admin_binary().c_str(), 1);
    ::setenv("FAKE_FLARE", harness::fake_binary().c_str(), 1);
    REQUIRE(::chdir(dir.c_str()) == 0);
  }
  ~InTempDir() {
    if (::chdir(back_.c_str()) != 0) std::abort();
    int rc = std::system(("rm -rf '" + dir + "'").c_str());
    (void)rc;
  }
  std::string dir;

private:
  std::string back_;
};

// A shell command's standard output.
std::string shell_output(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// A word for /bin/sh, single-quoted.
std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Calls the bash completion as bash would for `line` (cursor at its end); one candidate a line.
std::vector<std::string> complete(const std::string& line) {
  std::string script = "source contrib/bash-completion/flare-admin; COMP_LINE=" + shell_quoted(line) +
                       "; COMP_POINT=${#COMP_LINE}; _flare_admin; printf '%s\\n' \"${COMPREPLY[@]}\"";
  auto out = lines_of(shell_output("env -u FLARE_INDEX_SERVER -u FLARE_INDEX_SERVER_PORT bash -c " + shell_quoted(script)));
  out.erase(std::remove(out.begin(), out.end(), ""), out.end());
  std::sort(out.begin(), out.end());
  return out;
}

// What keycheck should print, computed key by key with the library's hash and resolver.
std::vector<std::string> expected_rows(const std::vector<std::string>& keys, flare::KeyHashAlgorithm alg, int n_max,
                                       unsigned long long& moved) {
  flare::ModularResolver r(1024, 1, 4096);
  std::map<std::string, std::vector<std::vector<long>>> counts;
  std::vector<std::pair<std::vector<std::vector<long>>*, int>> hashed; // each key's rows and hash
  for (const auto& k : keys) {
    std::string prefix = k.find("::") == std::string::npos ? "" : k.substr(0, k.rfind("::"));
    auto& rows = counts[prefix];
    if (rows.empty())
      for (int n = 1; n <= n_max; ++n) rows.emplace_back(static_cast<size_t>(n), 0);
    hashed.emplace_back(&rows, flare::key_hash(k, alg));
  }
  // Partition count outermost: the resolver caches a few rows, and a key-by-key walk over every
  // count rebuilt them all for each key (most of the suite's test-program CPU at -O0).
  for (int n = 1; n <= n_max; ++n)
    for (auto& [rows, h] : hashed) (*rows)[static_cast<size_t>(n - 1)][static_cast<size_t>(r.partition_of(h, n))]++;
  moved = 0;
  for (auto& kh : hashed)
    if (r.partition_of(kh.second, n_max) != r.partition_of(kh.second, n_max + 1)) ++moved;
  std::vector<std::string> out;
  for (auto& [prefix, rows] : counts)
    for (int n = 1; n <= n_max; ++n) {
      std::string l = std::to_string(n) + ", " + prefix + ",";
      for (size_t p = 0; p < rows[static_cast<size_t>(n - 1)].size(); ++p)
        l += (p ? " ," : "") + std::to_string(rows[static_cast<size_t>(n - 1)][p]);
      out.push_back(l);
    }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> sorted_rows(const std::string& csv) {
  auto l = lines_of(csv);
  REQUIRE_FALSE(l.empty());
  l.erase(l.begin());  // the header
  std::sort(l.begin(), l.end());
  return l;
}

void store(FakeCluster& f, const std::string& key) {
  flare::NodeClient c(flare::Endpoint{"127.0.0.1", f.node_ports.at(0)}, 10000);
  c.send_raw("set " + key + " 0 0 1\r\nx\r\n");
  REQUIRE(std::string(c.socket().read_line()) == "STORED");
}

} // namespace

TEST_CASE("a program named flare-SUB runs subcommand SUB, for every subcommand") {
  harness::SurfaceRuns surface; // --help and usage errors: no leak check at exit (harness.hpp)
  for (const auto& sub : subcommands()) {
    CAPTURE(sub);
    auto r = run({"--help"}, "", {}, "flare-" + sub);
    CHECK(r.status == 0);
    CHECK(r.out.rfind("Usage: flare-" + sub + " ", 0) == 0);
  }
  // A name that is no subcommand is flare-admin itself.
  auto other = run({"ping", "--help"}, "", {}, "flare-bogus");
  CHECK(other.status == 0);
  CHECK(other.out.rfind("Usage: flare-admin ping ", 0) == 0);
}

TEST_CASE("flare-ping and flare-part act as the subcommands, exit status included") {
  FakeCluster f(2);
  auto up = run({f.node(0)}, "", {}, "flare-ping");
  CHECK(up.status == 0);
  CHECK(up.out == "alive\n");
  auto down = run({"127.0.0.1:1"}, "", {}, "flare-ping");
  CHECK(down.status == 1);
  CHECK(down.out == "127.0.0.1:1 is down\n");
  auto part = run({"--force", "-i", f.index(), f.node(0) + ":1:0", f.node(1) + ":1:0"}, "", {}, "flare-part");
  CHECK(part.status == 0);
  auto c = f.cluster();
  REQUIRE(c.find(f.node(0)) != nullptr);
  CHECK(c.find(f.node(0))->role == "master");
  CHECK(c.find(f.node(1))->role == "slave");
}

TEST_CASE("deploy writes a folder per server with its configuration, data folder and scripts") {
  InTempDir t;
  auto r = run({"deploy", "--deploy-index", "-i", "127.0.0.1:13120", "127.0.0.1:13121:1:0", "127.0.0.1:13122",
                "--flared=/opt/flare/bin/flared", "--thread-pool-size=4"},
               "", {}, "flare-admin");
  REQUIRE(r.status == 0);
  CHECK(r.out == "generating ... 127.0.0.1:13120\ngenerating ... 127.0.0.1:13121\ngenerating ... 127.0.0.1:13122\n");
  CHECK(r.err.empty());
  CHECK(names_in(t.dir) == std::set<std::string>{"127.0.0.1:13120", "127.0.0.1:13121", "127.0.0.1:13122"});
  CHECK(names_in(t.dir + "/127.0.0.1:13120") == std::set<std::string>{"data", "flarei.conf", "restart.sh", "start.sh", "stop.sh"});
  CHECK(names_in(t.dir + "/127.0.0.1:13121") == std::set<std::string>{"data", "flared.conf", "restart.sh", "start.sh", "stop.sh"});
  std::string node = slurp(t.dir + "/127.0.0.1:13121/flared.conf");
  CHECK(node.find("index-server-name = 127.0.0.1\nindex-server-port = 13120\n") != std::string::npos);
  CHECK(node.find("server-name = 127.0.0.1\nserver-port = 13121\n") != std::string::npos);
  CHECK(node.find("data-dir = " + t.dir + "/127.0.0.1:13121/data\n") != std::string::npos);
  CHECK(node.find("thread-pool-size = 4\n") != std::string::npos);
  CHECK(slurp(t.dir + "/127.0.0.1:13120/flarei.conf").find("server-port = 13120\n") != std::string::npos);
  CHECK(slurp(t.dir + "/127.0.0.1:13122/start.sh").find("--exec /opt/flare/bin/flared -- -f " + t.dir +
                                                         "/127.0.0.1:13122/flared.conf --daemonize\n") != std::string::npos);
  CHECK(slurp(t.dir + "/127.0.0.1:13120/start.sh").find("--exec /usr/local/bin/flarei ") != std::string::npos);
  CHECK(::access((t.dir + "/127.0.0.1:13121/stop.sh").c_str(), X_OK) == 0);
}

TEST_CASE("deploy refuses existing folders without --delete, writing nothing, and replaces them with it") {
  InTempDir t;
  REQUIRE(::mkdir((t.dir + "/127.0.0.1:13122").c_str(), 0755) == 0);
  std::ofstream(t.dir + "/127.0.0.1:13122/keep") << "mine";
  auto refused = run({"deploy", "127.0.0.1:13121", "127.0.0.1:13122"});
  CHECK(refused.status == 1);
  CHECK(refused.err == "directory already exists: " + t.dir + "/127.0.0.1:13122 (nothing was written; --delete replaces it)\n");
  CHECK(names_in(t.dir) == std::set<std::string>{"127.0.0.1:13122"});
  CHECK(slurp(t.dir + "/127.0.0.1:13122/keep") == "mine");

  auto replaced = run({"deploy", "--delete", "127.0.0.1:13121", "127.0.0.1:13122", "--systemd"});
  CHECK(replaced.status == 0);
  CHECK(names_in(t.dir) == std::set<std::string>{"127.0.0.1:13121", "127.0.0.1:13122"});
  CHECK(names_in(t.dir + "/127.0.0.1:13122") == std::set<std::string>{"data", "flared-127.0.0.1:13122.service", "flared.conf",
                                                                      "restart.sh", "start.sh", "stop.sh"});
}

TEST_CASE("deploy rejects bad arguments and values with one line") {
  InTempDir t;
  auto bad_node = run({"deploy", "127.0.0.1"});
  CHECK(bad_node.status == 2);
  CHECK(bad_node.err == "invalid argument '127.0.0.1'. it must be hostname:port[:balance:partition]. (see: flare-admin deploy --help)\n");
  auto nothing = run({"deploy"});
  CHECK(nothing.status == 2);
  CHECK(lines_of(nothing.err).size() == 1);
  auto injected = run({"deploy", "127.0.0.1:13121", "--log-facility", "local0\nserver-port = 1"});
  CHECK(injected.status == 2);
  CHECK(lines_of(injected.err).size() == 1);
  auto twice = run({"deploy", "127.0.0.1:13121", "127.0.0.1:13121:1:0"});
  CHECK(twice.status == 1);
  CHECK(twice.err == "127.0.0.1:13121 is given twice (one folder per HOST:PORT).\n");
  CHECK(names_in(t.dir).empty());
  auto cache = run({"deploy", "127.0.0.1:13121", "--proxy-cache-size=10"});
  CHECK(cache.status == 0);
  CHECK(cache.err == "warning: --proxy-cache-size: flared 1.3.4 has no such setting and will not start with it\n");
}

TEST_CASE("keycheck counts each prefix's keys per partition from a file, stdin and the live cluster alike") {
  FakeCluster f(1);
  f.must("set-node " + f.node(0) + " master active 0 1");
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back((i % 3 == 0 ? "user::" : i % 3 == 1 ? "item::x::" : "") + std::to_string(i * 7919));
  std::string text;
  for (const auto& k : keys) {
    store(f, k);
    text += k + "\n";
  }
  std::string file = f.dir() + "/keys.txt";
  std::ofstream(file) << text;
  unsigned long long moved = 0;
  auto want = expected_rows(keys, flare::KeyHashAlgorithm::crc32, 5, moved);

  auto from_file = run({"keycheck", "-s", "5", "-h", "crc32", file});
  REQUIRE(from_file.status == 0);
  CHECK(lines_of(from_file.out).at(0) == "partition size, prefix, 0 ,1 ,2 ,3 ,4");
  CHECK(sorted_rows(from_file.out) == want);
  char pct[32];
  std::snprintf(pct, sizeof pct, "%.1f", 100.0 * static_cast<double>(moved) / 300.0);
  CHECK(from_file.err == "going from 5 to 6 partitions moves " + std::to_string(moved) + " of 300 keys (" + pct + "%)\n");

  auto from_stdin = run({"keycheck", "--partition-size=5", "--hash", "crc32"}, text);
  CHECK(from_stdin.status == 0);
  CHECK(from_stdin.out == from_file.out);

  auto from_cluster = run({"keycheck", "--all", "--index-server", f.index(), "-s", "5", "--key-hash-algorithm", "crc32"});
  CHECK(from_cluster.status == 0);
  CHECK(sorted_rows(from_cluster.out) == want);
  CHECK(from_cluster.err == from_file.err);

  // The cluster's own settings are the defaults with --all: one partition, the index's hash.
  auto defaults = run({"keycheck", "--all", "--index-server", f.index(), "--json"});
  CHECK(defaults.status == 0);
  CHECK(defaults.out.find("\"partition_size\":1,") != std::string::npos);
  CHECK(defaults.out.find("\"keys\":300,") != std::string::npos);
}

TEST_CASE("keycheck --json and --output give the same numbers as the table") {
  InTempDir t;
  std::vector<std::string> keys = {"a::1", "a::2", "b::x::1", "plain"};
  std::string text;
  for (const auto& k : keys) text += k + "\r\n";  // CRLF lines too
  unsigned long long moved = 0;
  auto want = expected_rows(keys, flare::KeyHashAlgorithm::simple, 3, moved);
  auto json = run({"keycheck", "-s", "3", "--json"}, text);
  REQUIRE(json.status == 0);
  CHECK(json.out.find("\"moves\":{\"from\":3,\"to\":4,\"keys\":" + std::to_string(moved) + "}") != std::string::npos);
  CHECK(json.out.find("{\"prefix\":\"b::x\",\"keys\":1,") != std::string::npos);
  CHECK(json.out.find("{\"prefix\":\"\",\"keys\":1,") != std::string::npos);
  auto to_file = run({"keycheck", "-s", "3", "-o", "table.csv"}, text);
  CHECK(to_file.status == 0);
  CHECK(to_file.out.empty());
  CHECK(sorted_rows(slurp(t.dir + "/table.csv")) == want);
  CHECK(names_in(t.dir) == std::set<std::string>{"table.csv"});
}

TEST_CASE("keycheck rejects bad settings and input with one line") {
  for (std::vector<std::string> args : {std::vector<std::string>{"-s", "0"}, {"--hint", "0"}, {"--virtual", "0"},
                                        {"-h", "md5"}, {"-s", "x"}, {"--all", "keys.txt"}}) {
    CAPTURE(args[0]);
    auto r = run(with({"keycheck"}, args), "k\n");
    CHECK(r.status == 2);
    CHECK(lines_of(r.err).size() == 1);
    CHECK(r.out.empty());
  }
  auto missing = run({"keycheck", "/nonexistent/keys"});
  CHECK(missing.status == 1);
  CHECK(missing.err == "cannot open '/nonexistent/keys': No such file or directory\n");
}

TEST_CASE("the man page documents every subcommand and option the program knows") {
  harness::SurfaceRuns surface; // --help and usage errors: no leak check at exit (harness.hpp)
  const std::string man = slurp("doc/flare-admin.1");
  REQUIRE_FALSE(man.empty());
  auto section = [&](const std::string& start) {
    size_t at = man.find("\n" + start);
    if (at == std::string::npos) return std::string();
    size_t end = man.find("\n.S", at + 1);  // next .SS or .SH
    return man.substr(at, end == std::string::npos ? std::string::npos : end - at);
  };
  auto roff = [](std::string s) {
    std::string out;
    for (char c : s) out += c == '-' ? std::string("\\-") : std::string(1, c);
    return out;
  };
  const std::string common = section(".SH COMMON OPTIONS");
  for (const auto& sub : subcommands()) {
    CAPTURE(sub);
    const std::string text = section(".SS " + sub + " ");
    REQUIRE_FALSE(text.empty());
    for (const auto& opt : options_of(sub)) {
      CAPTURE(opt);
      CHECK((text.find("\\-\\-" + roff(opt)) != std::string::npos || common.find("\\-\\-" + roff(opt)) != std::string::npos));
    }
  }
  const std::string status = section(".SH EXIT STATUS");
  for (const char* code : {"0", "1", "2", "128+N"}) CHECK(status.find("\n.B " + std::string(code) + "\n") != std::string::npos);
  const std::string env = section(".SH ENVIRONMENT");
  for (const char* var : {"FLARE_INDEX_SERVER\n", "FLARE_INDEX_SERVER_PORT", "FLARE_INDEX_SERVERS"}) CHECK(env.find(var) != std::string::npos);
  if (std::system("command -v man >/dev/null 2>&1") == 0) {
    // Rendered without a warning, and every subcommand shows.
    std::string warnings = shell_output("MANWIDTH=100 man --warnings -l doc/flare-admin.1 2>&1 >/dev/null");
    CHECK(warnings.empty());
    std::string page = shell_output("MANWIDTH=100 man -l doc/flare-admin.1 2>/dev/null");
    for (const auto& sub : subcommands())
      CHECK((page.find("\n   " + sub + " ") != std::string::npos || page.find("\n   " + sub + "\n") != std::string::npos));
  }
}

TEST_CASE("the bash completion offers subcommands, options and the cluster's node addresses") {
  const std::string admin = harness::admin_binary();
  auto subs = subcommands();
  subs.push_back("help");
  std::sort(subs.begin(), subs.end());
  CHECK(complete(admin + " ") == subs);
  CHECK(complete(admin + " re") == std::vector<std::string>{"reconstruct", "remove", "restore"});
  auto opts = options_of("deploy");
  std::vector<std::string> want;
  for (const auto& o : opts)
    if (o.rfind("st", 0) == 0) want.push_back("--" + o);
  std::sort(want.begin(), want.end());
  CHECK(complete(admin + " deploy --st") == want);
  CHECK(complete(admin + " keycheck --hash cr") == std::vector<std::string>{"crc32"});

  FakeCluster f(2);
  std::vector<std::string> nodes = {f.node(0), f.node(1)};
  std::sort(nodes.begin(), nodes.end());
  CHECK(complete(admin + " down -i " + f.index() + " ") == nodes);
  // After a colon bash replaces only what follows it.
  std::vector<std::string> ports = {std::to_string(f.node_ports[0]), std::to_string(f.node_ports[1])};
  std::sort(ports.begin(), ports.end());
  CHECK(complete(admin + " stats --index-server=" + f.index() + " 127.0.0.1:") == ports);

  // Under a short name the name is the subcommand.
  std::string dir = f.dir() + "/bin";
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  REQUIRE(::symlink(admin.c_str(), (dir + "/flare-stats").c_str()) == 0);
  CHECK(complete(dir + "/flare-stats --q") == std::vector<std::string>{"--qps"});
}

TEST_CASE("the bash completion offers help and, after it, the subcommands") {
  const std::string admin = harness::admin_binary();
  CHECK(complete(admin + " he") == std::vector<std::string>{"help"});
  CHECK(complete(admin + " help re") == std::vector<std::string>{"reconstruct", "remove", "restore"});
  auto subs = subcommands();
  std::sort(subs.begin(), subs.end());
  CHECK(complete(admin + " help ") == subs);
  CHECK(complete(admin + " help down ").empty());
}

TEST_CASE("make install puts flare-admin, its short names, the man page and the completion in place") {
  std::string dest = harness::make_temp_dir();
  // A make running these tests passes its job server down; this make is not its child job.
  std::string out = shell_output("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s install DESTDIR=" + dest + " ADMIN_BIN=" + harness::admin_binary() + " 2>&1; echo rc=$?");
  CHECK(out == "rc=0\n");
  const std::string bin = dest + "/usr/local/bin/";
  CHECK(::access((bin + "flare-admin").c_str(), X_OK) == 0);
  for (const char* name : {"flare-stats", "flare-ping", "flare-part", "flare-deploy"}) {
    CAPTURE(name);
    char target[256] = {};
    REQUIRE(::readlink((bin + name).c_str(), target, sizeof target - 1) > 0);
    CHECK(std::string(target) == "flare-admin");
    CHECK(::access((dest + "/usr/local/share/man/man1/" + name + ".1").c_str(), R_OK) == 0);
    CHECK(::access((dest + "/usr/local/share/bash-completion/completions/" + name).c_str(), R_OK) == 0);
  }
  CHECK(slurp(dest + "/usr/local/share/man/man1/flare-admin.1") == slurp("doc/flare-admin.1"));
  CHECK(shell_output(bin + "flare-ping 127.0.0.1:1; echo rc=$?") == "127.0.0.1:1 is down\nrc=1\n");
  CHECK(shell_output(bin + "flare-deploy --help | head -1") == "Usage: flare-deploy [HOST:PORT[:BALANCE:PARTITION] ...]\n");
  int rc = std::system(("rm -rf '" + dest + "'").c_str());
  (void)rc;
}
