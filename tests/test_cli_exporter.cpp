// Integration (issue 37): `flare-admin exporter` (flare-exporter) as a process against the fake
// cluster: /metrics is the cluster's exposition, an index that does not answer is 200 with
// flare_index_up 0 and one line on stderr, SIGTERM ends it with 0, an address in use with 1.
#include "harness.hpp"
#include "prom_check.hpp"
#include "test_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

using harness::FakeCluster;

namespace {

// The exporter running as a process: its port from its first line on stderr.
struct ExporterProcess {
  pid_t pid = -1;
  int err = -1;
  int port = 0;
  std::string log;
  ExporterProcess(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {}) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    harness::ChildExec child(harness::admin_binary(), "flare-exporter", args, harness::child_env(env));
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(p[1], 2);
      ::close(p[0]);
      ::close(p[1]);
      child.exec();
    }
    ::close(p[1]);
    err = p[0];
    const std::string head = "flare-exporter listening on 127.0.0.1:";
    while (log.find('\n') == std::string::npos) {
      char c;
      if (::read(err, &c, 1) != 1) break;
      log += c;
    }
    size_t at = log.find(head);
    REQUIRE_MESSAGE(at != std::string::npos, log);
    port = std::atoi(log.c_str() + at + head.size());
  }
  // SIGTERM, then its exit status and the rest of its stderr.
  int stop() {
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
    char buf[4096];
    for (ssize_t n; (n = ::read(err, buf, sizeof buf)) > 0;) log.append(buf, static_cast<size_t>(n));
    ::close(err);
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  ~ExporterProcess() {
    if (pid > 0) stop();
  }
};

std::string exporter_http(int port, const std::string& request) {
  int fd = loopback_connect(port);
  REQUIRE(fd >= 0);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

std::string exporter_http_body(const std::string& r) {
  size_t at = r.find("\r\n\r\n");
  return at == std::string::npos ? std::string() : r.substr(at + 4);
}

} // namespace

TEST_CASE("flare-exporter serves the cluster's exposition; SIGTERM ends it with 0") {
  FakeCluster f(3);
  harness::master_and_slave(f);
  ExporterProcess x({"-i", f.index(), "--web.listen-address", "127.0.0.1:0"}, {{"FLARE_INDEX_SERVERS", "east:" + f.index()}});
  auto r = exporter_http(x.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  auto ex = prom::parse_strict(exporter_http_body(r));
  CHECK(ex.value("flare_index_up", {{"index", f.index()}}) == "1");
  CHECK(ex.count("flare_up") == 3);
  CHECK(ex.value("flare_exporter_scrape_errors_total", {{"index", f.index()}}) == "0");
  auto probe = exporter_http(x.port, "GET /probe?cluster=east HTTP/1.1\r\n\r\n");
  CHECK(prom::parse_strict(exporter_http_body(probe)).value("flare_index_up", {{"index", f.index()}}) == "1");
  CHECK(x.stop() == 0);
  CHECK(x.log.find("flare-exporter stopped") != std::string::npos);
}

TEST_CASE("flare-exporter: an index that does not answer is 200 with flare_index_up 0 and one line on stderr") {
  ExporterProcess x({"-i", "127.0.0.1:1", "--timeout", "2", "--web.listen-address", "127.0.0.1:0"});
  auto r = exporter_http(x.port, "GET /metrics HTTP/1.1\r\n\r\n");
  CHECK(r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  auto ex = prom::parse_strict(exporter_http_body(r));
  CHECK(ex.value("flare_index_up", {{"index", "127.0.0.1:1"}}) == "0");
  CHECK(ex.value("flare_exporter_scrape_errors_total", {{"index", "127.0.0.1:1"}}) == "1");
  CHECK(x.stop() == 0);
  CHECK(x.log.find("scrape of 127.0.0.1:1: index server 127.0.0.1:1: ") != std::string::npos);
}

TEST_CASE("flare-exporter refuses to start on an address in use: one line, exit 1") {
  ExporterProcess first({"-i", "127.0.0.1:1", "--web.listen-address", "127.0.0.1:0"});
  auto r = harness::run({"exporter", "-i", "127.0.0.1:1", "--web.listen-address", "127.0.0.1:" + std::to_string(first.port)});
  CHECK(r.status == 1);
  CHECK(r.err == "cannot listen on 127.0.0.1:" + std::to_string(first.port) + ": Address already in use\n");
  CHECK(first.stop() == 0);
}
