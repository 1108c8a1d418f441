// Section 8d of flare_tools.hpp: the exporter's HTTP server, in process, with scrapes the test
// controls (a gather that blocks until released): routes and their statuses, a gather shared by
// the scrapes that wait for it, a silent client that delays nobody and is dropped at its
// deadline, stop. Each wait is for a state (a reply, the count of parked scrapes), never a time.
#include "flare_tools.hpp"
#include "prom_check.hpp"
#include "test_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>

using namespace flare;

namespace {

// A scrape that answers at once, or when released; it counts its calls.
struct TestScrape {
  std::mutex mu;
  std::condition_variable cv;
  bool hold = false;
  int calls = 0;
  ScrapeResult operator()(const Endpoint& index) {
    std::unique_lock<std::mutex> lk(mu);
    ++calls;
    cv.wait(lk, [&] { return !hold; });
    ScrapeResult r;
    r.index_up = true;
    r.text = "# HELP flare_index_up 1 when the index server answered.\n# TYPE flare_index_up gauge\n"
             "flare_index_up{index=\"" + index.display() + "\"} 1\n";
    return r;
  }
  void release() {
    std::lock_guard<std::mutex> lk(mu);
    hold = false;
    cv.notify_all();
  }
};

// An exporter on a loopback ephemeral port, serving from its own thread until destroyed.
struct RunningExporter {
  std::atomic<bool> stop{false};
  std::unique_ptr<Exporter> server;
  std::thread loop;
  explicit RunningExporter(ExporterOptions o, Exporter::ScrapeFn scrape) {
    o.listen = Endpoint{"127.0.0.1", 0};
    server = std::make_unique<Exporter>(std::move(o), std::move(scrape));
    server->bind();
    loop = std::thread([this] { server->serve([this] { return stop.load(); }); });
  }
  ~RunningExporter() {
    stop = true;
    loop.join();
  }
  int port() const { return server->port(); }
};

int exporter_connect(int port) {
  int fd = loopback_connect(port);
  REQUIRE(fd >= 0);
  return fd;
}

void exporter_send(int fd, const std::string& bytes) { REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size())); }

// Everything the server sends until it closes.
std::string exporter_read_all(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// One request, the write side then closed, as an HTTP client with Connection: close does.
std::string exporter_get(int port, const std::string& request) {
  int fd = exporter_connect(port);
  ssize_t sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL); // may stop short: the 431 case
  CHECK(sent > 0);
  ::shutdown(fd, SHUT_WR);
  return exporter_read_all(fd);
}

std::string exporter_body(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? std::string() : response.substr(at + 4);
}

} // namespace

TEST_CASE("the exporter answers /metrics with the text format, and every other request with its 4xx") {
  TestScrape scrape;
  ExporterOptions o;
  o.index = Endpoint{"127.0.0.1", 12120};
  o.clusters["east"] = Endpoint{"10.0.0.1", 12120};
  o.allowed_targets.insert("10.0.0.9:12120");
  RunningExporter x(o, [&](const Endpoint& ep) { return scrape(ep); });
  SUBCASE("GET /metrics: 200, the cluster's families and the exporter's own, a valid exposition") {
    auto r = exporter_get(x.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(r.rfind("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n", 0) == 0);
    auto ex = prom::parse_strict(exporter_body(r));
    CHECK(ex.value("flare_index_up", {{"index", "127.0.0.1:12120"}}) == "1");
    CHECK(ex.value("flare_exporter_scrape_errors_total", {{"index", "127.0.0.1:12120"}}) == "0");
    CHECK(ex.count("flare_exporter_scrape_duration_seconds") == 1);
    CHECK(ex.value("flare_exporter_build_info", {{"version", FLARE_TOOLS_VERSION}}) == "1");
  }
  SUBCASE("HEAD: the headers only") {
    auto r = exporter_get(x.port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
    CHECK(r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(exporter_body(r).empty());
  }
  SUBCASE("/probe?cluster=NAME reads that cluster; an unknown name is 404") {
    auto r = exporter_get(x.port(), "GET /probe?cluster=east HTTP/1.1\r\n\r\n");
    CHECK(prom::parse_strict(exporter_body(r)).value("flare_index_up", {{"index", "10.0.0.1:12120"}}) == "1");
    CHECK(exporter_get(x.port(), "GET /probe?cluster=west HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0) == 0);
  }
  SUBCASE("/probe?target=HOST:PORT only for the allowed ones") {
    CHECK(exporter_get(x.port(), "GET /probe?target=10.0.0.9:12120 HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 ", 0) == 0);
    auto r = exporter_get(x.port(), "GET /probe?target=10.0.0.8 HTTP/1.1\r\n\r\n");
    CHECK(r.rfind("HTTP/1.1 403 ", 0) == 0);
    CHECK(exporter_body(r) == "target 10.0.0.8:12120 is not allowed (the exporter's --web.allowed-targets)\n");
  }
  SUBCASE("the others") {
    auto post = exporter_get(x.port(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    CHECK(post.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
    CHECK(post.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
    CHECK(exporter_get(x.port(), "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0) == 0);
    CHECK(exporter_get(x.port(), "GET /metrics\r\n\r\n").rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(exporter_get(x.port(), "GET /probe HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 400 ", 0) == 0);
    auto big = exporter_get(x.port(), "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
    CHECK(big.rfind("HTTP/1.1 431 ", 0) == 0);
    auto root = exporter_get(x.port(), "GET / HTTP/1.1\r\n\r\n");
    CHECK(root.find("<a href=\"/metrics\">") != std::string::npos);
    CHECK(root.find("<a href=\"/probe?cluster=east\">") != std::string::npos);
  }
  CHECK(scrape.calls <= 3);
}

TEST_CASE("scrapes of a cluster that arrive while its gather runs share that gather") {
  TestScrape scrape;
  scrape.hold = true;
  ExporterOptions o;
  o.index = Endpoint{"127.0.0.1", 12120};
  RunningExporter x(o, [&](const Endpoint& ep) { return scrape(ep); });
  std::vector<int> fds;
  for (int i = 0; i < 5; ++i) {
    fds.push_back(exporter_connect(x.port()));
    exporter_send(fds.back(), "GET /metrics HTTP/1.1\r\n\r\n");
    ::shutdown(fds.back(), SHUT_WR);
  }
  // The state: all five parked behind the one gather.
  for (int i = 0; i < 30000 && x.server->parked() < 5; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(x.server->parked() == 5);
  scrape.release();
  for (int fd : fds) CHECK(exporter_read_all(fd).rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(scrape.calls == 1);
}

TEST_CASE("a client that sends half a request delays no other scrape, and is dropped at its deadline") {
  TestScrape scrape;
  ExporterOptions o;
  o.client_timeout_ms = 300;
  RunningExporter x(o, [&](const Endpoint& ep) { return scrape(ep); });
  int slow = exporter_connect(x.port());
  exporter_send(slow, "GET /metr");
  // Another scrape is answered while the slow client's request is still incomplete.
  CHECK(exporter_get(x.port(), "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 OK", 0) == 0);
  // The slow one is closed by the server (end of file, nothing sent), not left open.
  CHECK(exporter_read_all(slow).empty());
}

TEST_CASE("prometheus_scrape of an index that does not answer: flare_index_up 0 and the error, never a throw") {
  ScrapeResult r = prometheus_scrape(Endpoint{"127.0.0.1", 1}, 1000);
  CHECK_FALSE(r.index_up);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].rfind("index server 127.0.0.1:1: ", 0) == 0);
  CHECK(prom::parse_strict(r.text).value("flare_index_up", {{"index", "127.0.0.1:1"}}) == "0");
}

TEST_CASE("index_servers reads every entry of FLARE_INDEX_SERVERS, and refuses one that is not NAME:HOST:PORT") {
  auto m = index_servers(" east:10.0.0.1:12120 ; west:10.0.0.2:12121;");
  REQUIRE(m.size() == 2);
  CHECK(m["east"].key() == "10.0.0.1:12120");
  CHECK(m["west"].key() == "10.0.0.2:12121");
  CHECK_THROWS_WITH_AS(index_servers("east:10.0.0.1"), "FLARE_INDEX_SERVERS: 'east:10.0.0.1' is not NAME:HOST:PORT", Error);
}

TEST_CASE("the exporter takes a request with bare LF line ends and an absolute-form target, and refuses both probe keys") {
  TestScrape scrape;
  ExporterOptions o;
  o.clusters["east"] = Endpoint{"10.0.0.1", 12120};
  RunningExporter x(o, [&](const Endpoint& ep) { return scrape(ep); });
  CHECK(exporter_get(x.port(), "\r\nGET /metrics HTTP/1.1\nHost: x\n\n").rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(exporter_get(x.port(), "GET http://exporter.example:12119/metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(exporter_get(x.port(), "GET /probe?cluster=east&target=10.0.0.1 HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 400 ", 0) == 0);
}

TEST_CASE("a /probe of one cluster carries that cluster's error count only") {
  ExporterOptions o;
  o.clusters["east"] = Endpoint{"10.0.0.1", 12120};
  RunningExporter x(o, [](const Endpoint& ep) {
    ScrapeResult r;
    r.text = format_prometheus_index_down(ep.display());
    r.errors.push_back("down");
    return r;
  });
  exporter_get(x.port(), "GET /metrics HTTP/1.1\r\n\r\n");
  auto ex = prom::parse_strict(exporter_body(exporter_get(x.port(), "GET /probe?cluster=east HTTP/1.1\r\n\r\n")));
  CHECK(ex.count("flare_exporter_scrape_errors_total") == 1);
  CHECK(ex.value("flare_exporter_scrape_errors_total", {{"index", "10.0.0.1:12120"}}) == "1");
}

TEST_CASE("stopped while a gather waits on a silent index, the exporter ends the gather and tells its scrape 503") {
  // An index that takes the connection and never answers: only the exporter's cancel ends the
  // gather before its deadline (60 s here), and the index then sees the connection closed.
  std::atomic<bool> index_saw_close{false};
  TestServer silent([&](int fd) {
    char buf[256];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
    index_saw_close = true;
  });
  ExporterOptions o;
  o.index = Endpoint{"127.0.0.1", silent.port()};
  o.timeout_ms = 60000;
  std::atomic<bool> stop{false};
  Exporter server(o);
  server.bind();
  std::thread loop([&] { server.serve([&] { return stop.load(); }); });
  int fd = exporter_connect(server.port());
  exporter_send(fd, "GET /metrics HTTP/1.1\r\n\r\n");
  ::shutdown(fd, SHUT_WR);
  for (int i = 0; i < 30000 && server.parked() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(server.parked() == 1);
  stop = true;
  std::string r = exporter_read_all(fd);
  CHECK(r.rfind("HTTP/1.1 503 Service Unavailable", 0) == 0);
  loop.join();
  // The state: the gather's connection to the index was closed (within the test's bound of 30 s,
  // half the gather's deadline: a gather left to its deadline fails this).
  for (int i = 0; i < 30000 && !index_saw_close; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(index_saw_close);
}
