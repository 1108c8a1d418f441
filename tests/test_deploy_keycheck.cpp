// Sections 9 and 10 of flare_tools.hpp: deploy's files and folders, keycheck's distribution.
#include "flare_tools.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>

#include <dirent.h>
#include <sys/stat.h>

using namespace flare;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string temp_dir() {
  char tmpl[] = "/tmp/flare-unit-XXXXXX";
  char* d = ::mkdtemp(tmpl);
  REQUIRE(d != nullptr);
  return d;
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  REQUIRE(d != nullptr);
  while (const dirent* e = ::readdir(d))
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.insert(e->d_name);
  ::closedir(d);
  return out;
}

const DeployFile& file_named(const std::vector<DeployFile>& files, const std::string& name) {
  for (const auto& f : files)
    if (f.name == name) return f;
  FAIL("no file " << name);
  return files.front();
}

// Deterministic keys with a few prefixes, some bytes >= 0x80 (flare reads them as signed).
std::vector<std::string> sample_keys(size_t count) {
  std::vector<std::string> keys;
  std::uint32_t x = 12345;
  const char* prefixes[] = {"user::", "item::", "a::b::", "", "caf\xc3\xa9::"};
  for (size_t i = 0; i < count; ++i) {
    x = x * 1103515245u + 12345u;
    keys.push_back(std::string(prefixes[(x >> 16) % 5]) + std::to_string(x % 100000) + (x % 7 == 0 ? "\xff" : ""));
  }
  return keys;
}

} // namespace

TEST_CASE("deploy's flarei.conf keeps 0.7.3's defaults in order with the index's name, port and data folder") {
  DeployTarget t = plan_flarei("/srv", Endpoint{"10.0.0.1", 13120}, "/usr/sbin/flarei", {});
  CHECK(t.dir == "/srv/10.0.0.1:13120");
  CHECK(t.conf.text() == "data-dir = /srv/10.0.0.1:13120/data\nlog-facility = local0\nmax-connection = 256\n"
                         "monitor-threshold = 3\nmonitor-interval = 1\nserver-name = 10.0.0.1\nserver-port = 13120\n"
                         "thread-pool-size = 8\n");
}

TEST_CASE("deploy puts each setting only in the files of the daemons that accept it, in place of a default") {
  DeploySettings s = {{"thread-pool-size", "4"}, {"back-log", "64"}, {"monitor-interval", "5"},
                      {"storage-large", "true"}, {"net-read-timeout", "3"}, {"key-hash-algorithm", "crc32"}};
  DeployTarget i = plan_flarei("/srv", Endpoint{"idx", 12120}, "flarei", s);
  DeployTarget d = plan_flared("/srv", Endpoint{"n1", 12121}, Endpoint{"idx", 12120}, "flared", s);
  // thread-pool-size replaces the default line (0.7.3 added a thread_pool_size key flare rejects).
  CHECK(*i.conf.find("thread-pool-size") == "4");
  CHECK(*d.conf.find("thread-pool-size") == "4");
  CHECK(i.conf.text().find("thread_pool_size") == std::string::npos);
  CHECK(i.conf.entries().back().first == "key-hash-algorithm");
  CHECK(*i.conf.find("monitor-interval") == "5");
  CHECK(i.conf.find("back-log") == nullptr);          // flarei 1.3.4 has no back-log
  CHECK(i.conf.find("net-read-timeout") == nullptr);  // nor net-read-timeout
  CHECK(i.conf.find("storage-large") == nullptr);
  CHECK(*d.conf.find("back-log") == "64");
  CHECK(*d.conf.find("storage-large") == "true");
  CHECK(d.conf.find("monitor-interval") == nullptr);
  CHECK(d.conf.find("key-hash-algorithm") == nullptr);
  CHECK(*d.conf.find("index-server-name") == "idx");
  CHECK(*d.conf.find("index-server-port") == "12120");
  CHECK(*d.conf.find("server-name") == "n1");
  // Every setting of the table goes to at least one daemon.
  for (const auto& setting : deploy_settings()) CHECK_MESSAGE((setting.flarei || setting.flared), setting.key);
}

TEST_CASE("deploy's --index-servers replaces the node's index-server-name and -port lines") {
  DeployTarget d = plan_flared("/srv", Endpoint{"n1", 12121}, Endpoint{"idx", 12120}, "flared",
                               {{"index-servers", "idx1:12120,idx2:12120"}});
  CHECK(d.conf.find("index-server-name") == nullptr);
  CHECK(d.conf.find("index-server-port") == nullptr);
  CHECK(*d.conf.find("index-servers") == "idx1:12120,idx2:12120");
}

TEST_CASE("deploy's scripts look for the pid file where flare writes it, also under --data-dir") {
  DeployTarget plain = plan_flared("/srv", Endpoint{"n1", 12121}, Endpoint{"idx", 12120}, "/opt/flared", {});
  auto files = deploy_files(plain, false);
  CHECK(files.size() == 4);
  CHECK(file_named(files, "start.sh").content ==
        "#!/bin/sh\n/sbin/start-stop-daemon --start --quiet --pidfile /srv/n1:12121/data/flared.pid --exec /opt/flared "
        "-- -f /srv/n1:12121/flared.conf --daemonize\n");
  const std::string stop = "/sbin/start-stop-daemon --stop --retry=TERM/30/KILL/5 --quiet --pidfile "
                           "/srv/n1:12121/data/flared.pid --exec /opt/flared\n";
  CHECK(file_named(files, "stop.sh").content == "#!/bin/sh\n" + stop);
  CHECK(file_named(files, "restart.sh").content.rfind("#!/bin/sh\n" + stop + "sleep 5\n/sbin/start-stop-daemon --start", 0) == 0);
  CHECK(file_named(files, "start.sh").mode == 0744);
  CHECK(file_named(files, "flared.conf").content == plain.conf.text());

  DeployTarget moved = plan_flared("/srv", Endpoint{"n1", 12121}, Endpoint{"idx", 12120}, "/opt/flared",
                                   {{"data-dir", "/var/lib/flare"}});
  CHECK(file_named(deploy_files(moved, false), "stop.sh").content.find("--pidfile /var/lib/flare/flared.pid ") !=
        std::string::npos);
}

TEST_CASE("deploy quotes paths that the shell or systemd would split") {
  DeployTarget t = plan_flarei("/srv/my cluster", Endpoint{"idx", 12120}, "/opt/it's/flarei", {});
  auto files = deploy_files(t, true);
  CHECK(file_named(files, "start.sh").content.find("--exec '/opt/it'\\''s/flarei' -- -f '/srv/my cluster/idx:12120/flarei.conf'") !=
        std::string::npos);
  const std::string& unit = file_named(files, "flarei-idx:12120.service").content;
  CHECK(unit.find("ExecStart=\"/opt/it's/flarei\" -f \"/srv/my cluster/idx:12120/flarei.conf\"\n") != std::string::npos);
}

TEST_CASE("deploy's systemd unit runs flare in the foreground unless the file says daemonize") {
  DeployTarget fg = plan_flared("/srv", Endpoint{"n1", 12121}, Endpoint{"idx", 12120}, "/opt/flared", {});
  auto files = deploy_files(fg, true);
  REQUIRE(files.size() == 5);
  const std::string& unit = file_named(files, "flared-n1:12121.service").content;
  CHECK(unit.find("Type=simple\n") != std::string::npos);
  CHECK(unit.find("ExecStart=/opt/flared -f /srv/n1:12121/flared.conf\n") != std::string::npos);
  CHECK(unit.find("--daemonize") == std::string::npos);
  CHECK(unit.find("[Install]\nWantedBy=multi-user.target\n") != std::string::npos);

  DeployTarget bg = plan_flared("/srv", Endpoint{"n1", 12121}, Endpoint{"idx", 12120}, "/opt/flared", {{"daemonize", "true"}});
  auto bg_files = deploy_files(bg, true);
  const std::string& forking = file_named(bg_files, "flared-n1:12121.service").content;
  CHECK(forking.find("Type=forking\nPIDFile=/srv/n1:12121/data/flared.pid\n") != std::string::npos);
}

TEST_CASE("a deploy folder appears whole, and an existing one is replaced only when asked") {
  std::string base = temp_dir();
  DeployTarget t = plan_flared(base, Endpoint{"127.0.0.1", 13121}, Endpoint{"127.0.0.1", 13120}, "/bin/true", {});
  deploy_folder(t, false, false);
  CHECK(names_in(base) == std::set<std::string>{"127.0.0.1:13121"});  // no temporary folder left
  CHECK(names_in(t.dir) == std::set<std::string>{"data", "flared.conf", "restart.sh", "start.sh", "stop.sh"});
  CHECK(slurp(t.dir + "/flared.conf") == t.conf.text());
  struct stat st;
  REQUIRE(::stat((t.dir + "/start.sh").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0744);
  REQUIRE(::stat(t.dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);

  std::ofstream(t.dir + "/data/flared.hdb") << "old data";
  CHECK_THROWS_WITH_AS(deploy_folder(t, false, false), ("directory already exists: " + t.dir + " (--delete replaces it)").c_str(),
                       Error);
  CHECK(slurp(t.dir + "/data/flared.hdb") == "old data");

  deploy_folder(t, true, true);
  CHECK(names_in(base) == std::set<std::string>{"127.0.0.1:13121"});
  CHECK(names_in(t.dir + "/data").empty());
  CHECK(names_in(t.dir).count("flared-127.0.0.1:13121.service") == 1);

  detail::remove_tree(base);
  CHECK_FALSE(detail::path_exists(base));
}

TEST_CASE("a key's prefix is everything before its last delimiter") {
  CHECK(key_prefix("a::1", "::") == "a");
  CHECK(key_prefix("b::x::1", "::") == "b::x");
  CHECK(key_prefix("plain", "::") == "");
  CHECK(key_prefix("a::", "::") == "a");
  CHECK(key_prefix("user:42:name", ":") == "user:42");
}

TEST_CASE("keycheck's counts and moves agree key by key with flare's hash and resolver") {
  const auto keys = sample_keys(3000);
  struct Case { KeyHashAlgorithm alg; int virt, hint, n; };
  const Case cases[] = {{KeyHashAlgorithm::simple, 4096, 1, 6},   {KeyHashAlgorithm::bitshift, 4096, 1, 5},
                        {KeyHashAlgorithm::crc32, 4096, 3, 7},    {KeyHashAlgorithm::adler32, 1000, 2, 4},
                        {KeyHashAlgorithm::murmur, 65536, 1, 9},  {KeyHashAlgorithm::jenkins, 4096, 4, 6}};
  for (const Case& c : cases) {
    CAPTURE(to_string(c.alg));
    KeycheckSettings s;
    s.algorithm = c.alg;
    s.virtual_buckets = c.virt;
    s.hint = c.hint;
    s.partitions = c.n;
    REQUIRE(keycheck_settings_problem(s).empty());
    KeyDistribution d(s);
    for (const auto& k : keys) d.add(k);
    d.finish();
    CHECK(d.keys() == keys.size());

    // The same, one key at a time, through a resolver of flare's default size.
    ModularResolver r(1024, c.hint, c.virt);
    std::map<std::string, std::vector<std::vector<unsigned long long>>> expect;
    std::map<std::string, unsigned long long> moved;
    // Partition count by partition count, so the resolver's cache of rows (kMaxCachedRows) holds.
    std::vector<std::string> prefixes;
    std::vector<int> hashes;
    for (const auto& k : keys) {
      size_t at = k.rfind("::");
      prefixes.push_back(at == std::string::npos ? "" : k.substr(0, at));
      hashes.push_back(key_hash(k, c.alg));
      auto& rows = expect[prefixes.back()];
      if (rows.empty())
        for (int n = 1; n <= c.n; ++n) rows.emplace_back(static_cast<size_t>(n), 0);
    }
    for (int n = 1; n <= c.n; ++n)
      for (size_t i = 0; i < keys.size(); ++i)
        expect[prefixes[i]][static_cast<size_t>(n - 1)][static_cast<size_t>(r.partition_of(hashes[i], n))]++;
    for (size_t i = 0; i < keys.size(); ++i)
      if (r.partition_of(hashes[i], c.n) != r.partition_of(hashes[i], c.n + 1)) moved[prefixes[i]]++;
    REQUIRE(d.prefix_count() == expect.size());
    unsigned long long moved_total = 0;
    for (size_t i = 0; i < d.prefix_count(); ++i) {
      CAPTURE(d.prefix(i));
      for (int n = 1; n <= c.n; ++n) CHECK(d.counts(i, n) == expect[d.prefix(i)][static_cast<size_t>(n - 1)]);
      CHECK(d.moved(i, c.n) == moved[d.prefix(i)]);
      moved_total += moved[d.prefix(i)];
    }
    CHECK(keycheck_moved(d) == moved_total);
    CHECK(moved_total > 0);
  }
}

TEST_CASE("keycheck's CSV has 0.7.3's layout, prefixes in order of first appearance") {
  KeycheckSettings s;
  s.partitions = 3;
  KeyDistribution d(s);
  for (const char* k : {"b::x::1", "a::1", "a::2", "odd,prefix::3"}) d.add(k);
  d.finish();
  std::vector<std::string> lines;
  write_keycheck_csv(d, [&](const std::string& l) { lines.push_back(l); });
  REQUIRE(lines.size() == 1 + 3 * 3);
  CHECK(lines[0] == "partition size, prefix, 0 ,1 ,2\n");
  for (int n = 1; n <= 3; ++n) {
    for (size_t i = 0; i < 3; ++i) {
      std::string want = std::to_string(n) + ", " + (i == 2 ? std::string("\"odd,prefix\"") : d.prefix(i)) + ",";
      auto c = d.counts(i, n);
      for (size_t p = 0; p < c.size(); ++p) want += (p ? " ," : "") + std::to_string(c[p]);
      CHECK(lines[static_cast<size_t>((n - 1) * 3) + 1 + i] == want + "\n");
    }
  }
  CHECK(d.prefix(0) == "b::x");
  CHECK(d.prefix(1) == "a");
}

TEST_CASE("keycheck refuses settings it cannot simulate") {
  auto problem = [](auto change) {
    KeycheckSettings s;
    change(s);
    return keycheck_settings_problem(s);
  };
  CHECK(problem([](KeycheckSettings&) {}).empty());
  CHECK_FALSE(problem([](KeycheckSettings& s) { s.partitions = 0; }).empty());
  CHECK_FALSE(problem([](KeycheckSettings& s) { s.hint = 0; }).empty());
  CHECK_FALSE(problem([](KeycheckSettings& s) { s.virtual_buckets = 0; }).empty());
  CHECK_FALSE(problem([](KeycheckSettings& s) { s.delimiter.clear(); }).empty());
  CHECK_FALSE(problem([](KeycheckSettings& s) {
                s.partitions = 4096;
                s.virtual_buckets = 1 << 20;
              }).empty());
}

TEST_CASE("deploy accepts only the values flarei and flared 1.3.4 start with, as a real start of each showed") {
  // Each refused value was deployed and started on a real flare 1.3.4 (deploy exited 0 before):
  // the daemon exited at once (bitshift: status 255, no message anywhere), crashed (partition-size
  // 1: flared SIGSEGV on the first set; stack-size 16: SIGSEGV on the first request), aborted
  // (virtual 2147483647: bad_alloc), never answered (stack-size 2097152: pthread_create failed;
  // storage-bucket-size 2^40: a zero-filled bucket array of 4 TiB), or misread it silently
  // (log-facility foo: facility kern).
  struct Value {
    const char *key, *value;
    bool accepted;
  };
  const Value values[] = {
      // refused
      {"key-hash-algorithm", "bitshift", false}, {"key-hash-algorithm", "adler32", false},
      {"key-hash-algorithm", "murmur", false}, {"partition-size", "1", false}, {"partition-size", "2147483647", false},
      {"partition-modular-virtual", "2147483647", false}, {"max-connection", "1073741816", false},
      {"max-connection", "524281", false}, {"stack-size", "16", false}, {"stack-size", "2097152", false},
      {"mutex-slot", "2147483647", false}, {"storage-type", "kch", false}, {"storage-bucket-size", "1099511627776", false},
      {"storage-ap", "17", false}, {"log-facility", "kern", false}, {"log-facility", "foo", false},
      {"log-facility", "LOCAL0", false}, {"data-dir", "relative/dir", false}, {"net-read-timeout", "2147484", false},
      {"monitor-interval", "2147483647", false}, {"proxy-concurrency", "2147483647", false},
      // accepted: each started and answered ping and stats
      {"key-hash-algorithm", "simple", true}, {"key-hash-algorithm", "crc32", true}, {"key-hash-algorithm", "jenkins", true},
      {"partition-size", "2", true}, {"partition-size", "1024", true}, {"partition-modular-virtual", "1", true},
      {"max-connection", "1", true}, {"max-connection", "9992", true}, {"stack-size", "32", true},
      {"stack-size", "2097151", true}, {"storage-type", "tch", true}, {"storage-type", "tcb", true},
      {"storage-bucket-size", "0", true}, {"storage-ap", "0", true}, {"storage-ap", "16", true},
      {"log-facility", "local0", true}, {"log-facility", "local7", true}, {"log-facility", "user", true},
      {"log-facility", "daemon", true}, {"log-facility", "auth", true}, {"data-dir", "/var/lib/flare", true},
      {"thread-pool-size", "2147483647", true}, {"monitor-interval", "1", true}, {"storage-compress", "bz2", true}};
  for (const auto& x : values) {
    const std::string k = x.key, v = x.value;
    CAPTURE(k);
    CAPTURE(v);
    CHECK((deploy_value_problem(k, v) == "") == x.accepted);
  }
  CHECK(deploy_value_problem("key-hash-algorithm", "bitshift").find("exits at once, saying nothing") != std::string::npos);
  SUBCASE("settings that do not go together") {
    CHECK(deploy_settings_problem({}, 4) == "");
    CHECK(deploy_settings_problem({{"partition-size", "65536"}, {"partition-modular-virtual", "65536"}}, 1) != "");
    CHECK(deploy_settings_problem({{"partition-size", "16384"}, {"partition-modular-virtual", "4096"}}, 1) == "");
    CHECK(deploy_settings_problem({{"data-dir", "/srv/flare"}}, 1) == "");
    CHECK(deploy_settings_problem({{"data-dir", "/srv/flare"}}, 2).find("shared by 2 flared") != std::string::npos);
  }
}
