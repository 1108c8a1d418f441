//
//  flare_tools.hpp
//
//  Admin tools for flare (a distributed, memcached-compatible key-value store):
//  protocol clients for the index server (flarei) and data nodes (flared), the cluster
//  model, the safe cluster-changing operations with their waits, and the table renderers
//  used by flare-admin / flare-stats. Header-only, C++17, standard library and POSIX.
//
//  Contents (in reading order)
//    0. Version and configuration macros
//    1. Errors and small helpers           (flare::Error and its kinds, printable, to_int)
//    2. Addresses                          (parse_host_port, parse_node_arg)
//    3. Socket                             (detail::Socket: deadlines on every call, poll())
//    4. Protocol reader                    (Reply, read_reply, parse_stats, NodeInfo, parse_stats_nodes, ...)
//    5. Clients                            (ServerClient, IndexClient, NodeClient, gather_stats)
//   5b. Replication lag                    (SlaveLag, gather_slave_lag: a master's `stats threads slave`)
//    6. Cluster model                      (Cluster, orderings, reconstructability)
//   6b. Key hashing and partitions         (key_hash, ModularResolver: bit for bit as flare 1.3.4)
//   6c. Node map versions                  (MapVersions: the index against the nodes)
//    7. Operations and waiting             (wait_for_slave_active, wait_for_master_ready, ...)
//   7a. Layouts                            (parse_layout, plan_layout: the plan `apply` runs)
//   7b. Data                               (dump_items, restore_items, ItemReader/ItemWriter, ...)
//    8. Formatting                         (list, stats, threads, summary tables, index XML, JSON)
//   8b. Prometheus                         (format_prometheus: the text exposition format 0.0.4)
//   8c. Health check                       (collect_check, evaluate_check: findings for `check`)
//   8d. Exporter                           (prometheus_scrape, Exporter: /metrics over HTTP, flare-exporter)
//    9. Deploy                             (ServerConf, plan_flarei/plan_flared, deploy_folder)
//   10. Keycheck                           (KeyDistribution: keys per partition for 1..N partitions)
//
//  The layout is cpp-httplib's: the configuration macros (section 0); then Part 1, the
//  declarations: every public type and function of namespace flare, each with what it does, its
//  units, what it throws and where its facts come from (an upstream file or a recorded
//  transcript); then Part 2, the implementation: the bodies, and flare::detail (internal, not for
//  callers). Both parts follow the sections above. Read Part 1 to use the library; everything is
//  inline, so the header needs no build step.
//
//  Every network call is bounded by a deadline, the library never touches the process's
//  signal dispositions (sends use MSG_NOSIGNAL, or SO_NOSIGPIPE where that is missing), and
//  every buffer fed by a peer is bounded by the limits below.
//
#ifndef FLARE_TOOLS_HPP
#define FLARE_TOOLS_HPP

#define FLARE_TOOLS_VERSION "0.1.0"
#define FLARE_TOOLS_VERSION_MAJOR 0
#define FLARE_TOOLS_VERSION_MINOR 1
#define FLARE_TOOLS_VERSION_PATCH 0

// ---- 0. Configuration (define before including to override) ------------------------------

// Default deadline of one request (connect, send, whole reply), in milliseconds.
#ifndef FLARE_TOOLS_DEFAULT_TIMEOUT_MS
#define FLARE_TOOLS_DEFAULT_TIMEOUT_MS 10000
#endif

// Longest key we carry. flared's text parser takes a key of up to 8191 bytes (one BUFSIZ
// word); its binary protocol has a 16-bit key length, so a dump may show keys up to 65535.
#ifndef FLARE_TOOLS_MAX_KEY_BYTES
#define FLARE_TOOLS_MAX_KEY_BYTES 65535
#endif

// Longest key flared's text protocol accepts in a `set` (restore refuses longer ones locally,
// naming them, instead of sending a request the server would misparse).
#ifndef FLARE_TOOLS_MAX_TEXT_KEY_BYTES
#define FLARE_TOOLS_MAX_TEXT_KEY_BYTES 8191
#endif

// Longest protocol line we accept (a STAT or VALUE line): room for the longest key and the
// numbers of a VALUE line. A peer sending more without a newline is broken or hostile.
#ifndef FLARE_TOOLS_MAX_LINE_BYTES
#define FLARE_TOOLS_MAX_LINE_BYTES (FLARE_TOOLS_MAX_KEY_BYTES + 1024)
#endif

// How often a wait checks its CancelFn, in milliseconds (Ctrl-C is seen within this).
#ifndef FLARE_TOOLS_CANCEL_CHECK_MS
#define FLARE_TOOLS_CANCEL_CHECK_MS 200
#endif

// Largest reply to a non-streaming request (stats, stats nodes, stats threads, meta).
// 100 nodes take about 20 KB of `stats nodes`; 4 MiB leaves room for huge clusters.
#ifndef FLARE_TOOLS_MAX_REPLY_BYTES
#define FLARE_TOOLS_MAX_REPLY_BYTES (4 * 1024 * 1024)
#endif

// Largest item value we accept: flared's own limit (storage::entry::max_data_size, 2^31 - 1).
// Values are streamed through dump and restore in the flare format, never held whole; only a
// CSV cell (which must be seen whole to choose text or base64) is held in memory.
#ifndef FLARE_TOOLS_MAX_VALUE_BYTES
#define FLARE_TOOLS_MAX_VALUE_BYTES 2147483647LL
#endif

// Largest value held whole in memory: a CSV cell. Larger values need the flare format.
#ifndef FLARE_TOOLS_MAX_HELD_VALUE_BYTES
#define FLARE_TOOLS_MAX_HELD_VALUE_BYTES (256LL * 1024 * 1024)
#endif

// Size of each connection's receive buffer.
#ifndef FLARE_TOOLS_READ_BUFFER_BYTES
#define FLARE_TOOLS_READ_BUFFER_BYTES 65536
#endif

// Descriptors a gather of node stats leaves to the rest of the process (stdio, the index
// connection, files the caller holds) when the open-files limit is too low for one connection
// per node at once; the nodes are then asked in a sliding window of (limit - this) connections.
#ifndef FLARE_TOOLS_RESERVED_FDS
#define FLARE_TOOLS_RESERVED_FDS 32
#endif

// Connections a gather starts before it services the ones already open: the first requests go
// out while later connects are still being made, so the nodes' replies overlap the start-up.
#ifndef FLARE_TOOLS_GATHER_CONNECT_BATCH
#define FLARE_TOOLS_GATHER_CONNECT_BATCH 64
#endif

#ifndef FLARE_TOOLS_DEFAULT_INDEX_PORT
#define FLARE_TOOLS_DEFAULT_INDEX_PORT 12120
#endif

#ifndef FLARE_TOOLS_DEFAULT_NODE_PORT
#define FLARE_TOOLS_DEFAULT_NODE_PORT 12121
#endif

// FLARE_TOOLS_PORTABLE_SOCKETS (define it to force): use the fallback for systems without
// MSG_NOSIGNAL or SOCK_CLOEXEC (macOS, older BSDs) even where they exist, so that the
// fallback is built and tested on Linux too. See "Socket portability" below the includes.

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <iterator>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

// ---- Socket portability: chosen here, used only by detail::new_socket and detail::kSendFlags.
// MSG_NOSIGNAL keeps a send to a peer that has gone from raising SIGPIPE; without it, the
// socket option SO_NOSIGPIPE does the same (macOS, BSDs). Where neither exists, a send to a
// closed peer raises SIGPIPE: the library leaves signal dispositions to the program, which
// must ignore SIGPIPE itself there. SOCK_CLOEXEC keeps our sockets out of child processes;
// without it, fcntl(FD_CLOEXEC) right after socket() does (racy only against another
// thread's fork+exec, the best that exists there).
#if defined(MSG_NOSIGNAL) && !defined(FLARE_TOOLS_PORTABLE_SOCKETS)
#define FLARE_TOOLS_HAVE_MSG_NOSIGNAL 1
#else
#define FLARE_TOOLS_HAVE_MSG_NOSIGNAL 0
#endif
#if defined(SOCK_CLOEXEC) && !defined(FLARE_TOOLS_PORTABLE_SOCKETS)
#define FLARE_TOOLS_HAVE_SOCK_CLOEXEC 1
#else
#define FLARE_TOOLS_HAVE_SOCK_CLOEXEC 0
#endif

namespace flare {

// ==============================================================================================
// Part 1. Declarations: the public surface (bodies are in Part 2)
// ==============================================================================================

// ---- 1. Errors and small helpers ---------------------------------------------------------

// Every failure the library reports is an Error with a one-line, user-presentable message.
class Error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// The peer could not be reached or stopped answering (refused, unresolvable, timeout, reset).
class NetworkError : public Error {
public:
  using Error::Error;
};

// The peer answered something that is not the flare protocol (or exceeded our limits).
class ProtocolError : public Error {
public:
  using Error::Error;
};

// The server understood us and said no (ERROR, SERVER_ERROR ..., CLIENT_ERROR ...).
class ServerError : public Error {
public:
  using Error::Error;
};

// A dump file or stream that is not what our dump writes (names the byte offset).
class InputError : public ProtocolError {
public:
  using ProtocolError::ProtocolError;
};

// The caller's cancel check (see CancelFn) said stop, e.g. after Ctrl-C.
class Interrupted : public Error {
public:
  using Error::Error;
};

// Asked between poll slices during every wait of a socket that has one: returning true stops
// the wait with Interrupted. The library installs no signal handler; a program that wants
// Ctrl-C to stop a transfer sets a flag in its own handler and returns it from here.
using CancelFn = std::function<bool()>;

using Clock = std::chrono::steady_clock;

// Bytes a peer or a user gave, made fit for a one-line message: control bytes and non-ASCII
// escaped (\r, \n, \xNN), cut to at most `max` bytes with "..." marking the cut. Throws nothing.
inline std::string printable(std::string_view s, size_t max = 80);

// Strict decimal integer parsing: optional '-', digits only, no overflow.
// Used for everything a peer or a user gives us, so that "12x", "" or 2^64 never pass.
inline std::optional<long long> to_int(std::string_view s);

// Same, restricted to the int range.
inline std::optional<int> to_int32(std::string_view s);

// ---- 2. Addresses ------------------------------------------------------------------------

// A server endpoint. `host` is kept exactly as written (without IPv6 brackets): flare
// identifies nodes by the literal "host:port" string, so it must never be normalised.
struct Endpoint {
  std::string host;
  int port = 0;

  std::string key() const { return host + ":" + std::to_string(port); }
  // For messages and connections: IPv6 literals get their brackets back.
  std::string display() const;
};

inline bool operator==(const Endpoint& a, const Endpoint& b) { return a.host == b.host && a.port == b.port; }

// A node argument as the subcommands take it: host:port[:balance[:partition]].
struct NodeArg {
  Endpoint endpoint;
  std::optional<int> balance;
  std::optional<int> partition;
  std::string text; // as typed, for messages
};

// Parses "host[:port]" (or "[v6][:port]"); the port defaults to `default_port`.
// Throws Error("invalid address 'X'") on anything else.
inline Endpoint parse_host_port(std::string_view arg, int default_port);

// Parses a node argument with between `min_fields` and `max_fields` colon-separated fields
// counting host and port (2 = host:port, 3 = +balance, 4 = +partition).
// Throws Error("invalid argument 'X'.") — the wording scripts of 0.7.3 already match on.
inline NodeArg parse_node_arg(std::string_view arg, int min_fields, int max_fields);

// A port number, 1 to 65535, digits only ("" or "0x50" or "65536": nullopt). Throws nothing.
inline std::optional<int> parse_port(std::string_view s);

// The index server named `name` in a list as $FLARE_INDEX_SERVERS holds it
// ("name:host:port;name:host:port;...", blanks around an entry ignored), nullopt when no entry has
// that name. Throws Error when that entry's port is not a port.
inline std::optional<Endpoint> cluster_index_server(std::string_view servers, std::string_view name);

// ---- 3. Socket ---------------------------------------------------------------------------

// Debug hook: when set, every request line and reply line is passed to it (--debug).
using TraceFn = std::function<void(const std::string& line)>;

// The line for a node the index does not list: `prefix` (0.7.3's words, which scripts match)
// and the node, then why: its host name does not resolve (a typo or a DNS failure, not a wrong
// argument form), or the index lists no such node. Asks the resolver; throws nothing.
inline std::string unknown_node_text(const std::string& prefix, const Endpoint& ep);

namespace detail {
// A connected TCP socket with a read buffer. Every operation waits with poll() until the
// current deadline; the deadline is set per request by the clients (see ServerClient).
class Socket {
public:
  Socket() = default;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  Socket(Socket&& o) noexcept { *this = std::move(o); }
  Socket& operator=(Socket&& o) noexcept;
  ~Socket() { close(); }

  // Connects within `timeout_ms` (all addresses of the name share that budget).
  void connect(const Endpoint& ep, int timeout_ms);

  // Takes over an already connected descriptor (a socketpair in tests, an accepted socket).
  void adopt(int fd, std::string peer);

  bool is_open() const { return fd_ >= 0; }
  const std::string& peer() const { return peer_; }
  int fd() const { return fd_; }

  void close();

  void set_timeout(int timeout_ms) { deadline_ = Clock::now() + std::chrono::milliseconds(timeout_ms); }
  Clock::time_point deadline() const { return deadline_; }
  // With an idle timeout every byte received moves the deadline on: a stream fails only when
  // the peer is silent that long, however long the whole transfer takes (0: off).
  void set_idle_timeout(int timeout_ms);
  void set_cancel(CancelFn c) { cancel_ = std::move(c); }
  const CancelFn& cancel() const { return cancel_; }

  void send_all(std::string_view data);

  // Strict framing, for flare's own streams (dump, dump_key) and our dump files: only CR LF
  // ends a line, so a lone CR or LF is part of it (a key a binary client stored may hold one).
  // Off: a bare LF ends a line too.
  void set_crlf_only(bool on) { crlf_only_ = on; }

  // Returns one line without its "\r\n" (a bare "\n" is tolerated unless set_crlf_only). The
  // view is valid until the next read. A line longer than FLARE_TOOLS_MAX_LINE_BYTES is a
  // protocol error.
  std::string_view read_line();

  // Reads exactly `n` bytes and hands them to `sink` in pieces (no copy of the whole value).
  template <typename Sink> void read_exact(size_t n, Sink&& sink);

  // Waits until the socket is readable or `timeout_ms` passes; false on timeout.
  bool wait_readable(int timeout_ms);

  size_t buffered() const { return end_ - pos_; }
  size_t capacity() const { return buf_.size(); }
  // A larger buffer for a bulk stream (a dump): fewer reads. Never below the line limit.
  void set_buffer_size(size_t n);

  // For many streams read from one poll loop: one read of what is there now, without
  // waiting. False when nothing was (EAGAIN); the end of the stream is an error.
  bool read_available();
  // A complete line already in the buffer (without reading), or nullopt.
  std::optional<std::string_view> buffered_line();
  // `n` bytes from the buffer; n must not exceed buffered(). Valid until the next read.
  std::string_view take(size_t n);

  // Bytes consumed so far (for error messages that give a record's offset in a file).
  unsigned long long offset() const { return total_read_ - (end_ - pos_); }

  // True at end of input (only meaningful for files: a socket reports it as an error).
  bool at_eof();

  // Sends what it can without blocking; returns the number of bytes taken. Throws NetworkError
  // when the send fails, and leaves the socket open, unlike every other failure here: the
  // replies the peer sent before it went are still there to read (the caller closes it).
  size_t send_some(std::string_view data);

private:
  // Where the LF that ends the line starting at pos_ is, searching from `from`; npos if none
  // is buffered yet.
  size_t line_end(size_t from) const;

  [[noreturn]] void fail(const std::string& what, int err);

  // Like every protocol error, a line over the limit leaves the connection unusable: close it.
  [[noreturn]] void line_too_long();

  void wait_for(short events, const char* doing);

  void fill();

  int fd_ = -1;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  unsigned long long total_read_ = 0;
  std::string peer_;
  Clock::time_point deadline_ = Clock::now();
  int idle_ms_ = 0;
  bool crlf_only_ = false;
  CancelFn cancel_;
};
} // namespace detail

// ---- 4. Protocol reader ------------------------------------------------------------------

// A complete reply to one request: the data lines before the terminating line, and that line.
struct Reply {
  std::vector<std::string> lines;
  std::string status; // "END", "OK", "STORED", "ERROR", "SERVER_ERROR ...", ...

  bool ok() const;
  bool is_error() const;
};

// Reads lines until a terminating status line. Data lines must be STAT/META/KEY lines;
// the total size is bounded by FLARE_TOOLS_MAX_REPLY_BYTES.
inline Reply read_reply(detail::Socket& sock, const TraceFn& trace = nullptr);

// `stats` of a node or of the index: name -> value, in the order received. Values stay text;
// numbers are read on demand so a bad field shows as "-" instead of spoiling the others.
struct NodeStats {
  std::vector<std::pair<std::string, std::string>> fields;

  const std::string* find(std::string_view name) const;
  std::string get(std::string_view name) const;
  // A non-negative integer field, or nullopt when missing, malformed or out of range.
  std::optional<long long> number(std::string_view name) const;
};

inline NodeStats parse_stats(const std::vector<std::string>& lines);

// One entry of the index's `stats nodes`.
struct NodeInfo {
  std::string key;  // "host:port" exactly as the index names the node
  std::string host; // the key's host part
  int port = 0;
  std::string role;  // master | slave | proxy
  std::string state; // active | prepare | down | ready
  int partition = -1;
  int balance = 0;
  int thread_type = 0;

  Endpoint endpoint() const { return Endpoint{host, port}; }
  bool is_master() const { return role == "master"; }
  bool is_slave() const { return role == "slave"; }
  bool is_proxy() const { return role == "proxy"; }
  bool is_active() const { return state == "active"; }
};

inline bool is_known_role(std::string_view r);
inline bool is_known_state(std::string_view s);

// The highest partition number we accept from a server.
constexpr int kMaxPartition = 1 << 20;

// Parses `stats nodes`. Keys are split at the LAST two colons, since the host part is the
// node's configured server name and may itself contain colons (IPv6). Nodes come back in the
// order of their first line. An entry missing role, state, partition or balance is an error.
inline std::vector<NodeInfo> parse_stats_nodes(const std::vector<std::string>& lines);

// One entry of `stats threads`.
struct ThreadInfo {
  std::string id;
  std::string type;
  std::string peer;
  std::string op;
  std::string uptime;
  std::string state;
  std::string info;
  std::string queue;
  std::optional<std::string> behind;
};

inline std::vector<ThreadInfo> parse_stats_threads(const std::vector<std::string>& lines);

// The index's `meta`: the partitioning parameters of the cluster.
struct Meta {
  std::vector<std::pair<std::string, std::string>> fields;
  std::string get(std::string_view name) const;
};

inline Meta parse_meta(const std::vector<std::string>& lines);

// One item of a `dump` stream: "VALUE key flags length version expire".
struct ItemHeader {
  std::string key;
  unsigned long long flags = 0;
  size_t length = 0;
  unsigned long long version = 0;
  long long expire = 0;
};

// Whether an item had expired by `now_unix` (seconds since the epoch): a dump's expire is an
// absolute unix time, 0 = never (tests/data/transcripts/README.md, dump). A restore does not send
// such an item: flared would answer STORED for an item nobody can read.
inline bool expired_at(const ItemHeader& h, long long now_unix);

// A key a dump can carry: 1 to FLARE_TOOLS_MAX_KEY_BYTES bytes, no space (the VALUE line is
// split there) and no NUL (flared ends a key at one when it lists it: a key stored as
// `nul<NUL>key` through the binary protocol is listed as `nul`, seen on flare 1.3.4). Every
// other byte may be in it: flared's text protocol splits a request on the space byte only, so
// a key may hold a lone CR, TAB, VT, FF, control and high bytes; a binary client may store a
// lone LF too (fact: tests/data/flare-protocol.md, "Hard states"), but not CR LF, where a record's
// line ends (such a key, stored through the binary protocol, cannot be framed: found by
// fuzz_csv, a CSV key holding CR LF written in the flare format did not read back).
inline bool valid_item_key(std::string_view k);

// Why flared's text protocol cannot take `k` in a request (restore writes with `set`), or ""
// when it can. flared ends a request line at LF, splits it at spaces, fails on a NUL byte
// (seen on flare 1.3.4: `set nul<NUL>x 0 0 2` -> ERROR), and reads at most 8191 bytes of a word.
inline std::string text_key_problem(std::string_view k);

// Parses a VALUE line of a dump: "VALUE " key " " flags " " length " " version " " expire, one
// space between fields, exactly as flared writes it. The key may hold any byte but a space (a
// lone CR included); a line of another shape is a ProtocolError that says why (a key holding a
// space or CR LF, stored through the binary protocol, is one flare's text dump cannot frame).
inline ItemHeader parse_value_line(std::string_view line);

// ---- 5. Clients --------------------------------------------------------------------------

// The requests a change command has sent that change the cluster, and the check made before
// each one: once `interrupted` returns true (Ctrl-C), no such request is sent any more. Shared
// by the clients a command uses (ServerClient::set_change_log); ServerClient::request_change
// is the one place such requests are sent from.
struct ChangeLog {
  CancelFn interrupted;
  std::vector<std::string> sent; // "HOST:PORT request", in the order sent
};

// One connection to a flare server (index or node) speaking the text protocol.
// Connects lazily; every request runs under `timeout_ms` (connect, send and the whole reply).
class ServerClient {
public:
  explicit ServerClient(Endpoint ep, int timeout_ms = FLARE_TOOLS_DEFAULT_TIMEOUT_MS);
  ServerClient(ServerClient&&) = default;
  ServerClient& operator=(ServerClient&&) = default;

  const Endpoint& endpoint() const { return ep_; }
  int timeout_ms() const { return timeout_ms_; }
  void set_trace(TraceFn t) { trace_ = std::move(t); }
  // Every wait of this client then also stops, with Interrupted, once `c` returns true.
  void set_cancel(CancelFn c) { sock_.set_cancel(std::move(c)); }
  void close();
  ~ServerClient() { close(); }

  // Sends one request line (CR LF added) and reads its complete reply, connecting first if need
  // be, all within timeout_ms. An ERROR / SERVER_ERROR reply is returned, not thrown. Throws
  // NetworkError (unreachable, timeout, reset: the connection is then closed, and the next
  // request connects again), ProtocolError (not the flare protocol, or over the limits),
  // Interrupted (set_cancel).
  Reply request(const std::string& line);

  // Like request(), but an ERROR / SERVER_ERROR / CLIENT_ERROR reply throws ServerError.
  Reply request_ok(const std::string& line);

  // Whether `ping` is answered OK (a server that answers otherwise: false). Throws as request().
  bool ping() { return request("ping").status == "OK"; }

  // Requests that change the cluster go through here. With a change log whose `interrupted`
  // says stop, nothing is sent: throws Interrupted ("... was not sent"). Otherwise the request
  // is logged as sent, then sent as request(); Interrupted while waiting for its answer says
  // that it was sent. Throws as request().
  void set_change_log(std::shared_ptr<ChangeLog> log) { log_ = std::move(log); }
  const std::shared_ptr<ChangeLog>& change_log() const { return log_; }
  Reply request_change(const std::string& line);

  // `version`: the server's version ("1.3.4"). Throws as request(); ProtocolError for an answer
  // that is not "VERSION ...".
  std::string version();

  // `stats`, `stats threads`, `stats nodes`, parsed. Throw as request_ok().
  NodeStats stats() { return parse_stats(request_ok("stats").lines); }
  std::vector<ThreadInfo> stats_threads() { return parse_stats_threads(request_ok("stats threads").lines); }
  std::vector<NodeInfo> stats_nodes() { return parse_stats_nodes(request_ok("stats nodes").lines); }

  // For streaming commands: direct access after send_line().
  // Nothing is sent once the cancel hook (set_cancel) says stop: Interrupted, before the bytes.
  void send_line(const std::string& line);
  void send_raw(std::string_view bytes);
  void connect();
  detail::Socket& socket();
  const TraceFn& trace() const { return trace_; }

protected:
  Endpoint ep_;
  int timeout_ms_;
  detail::Socket sock_;
  TraceFn trace_;
  std::shared_ptr<ChangeLog> log_;
};

// The address given as the index server is a data node (flared): see IndexClient::require_index().
class NotAnIndexError : public Error {
public:
  using Error::Error;
};

// The index server (flarei): the cluster map and the commands that change it.
class IndexClient : public ServerClient {
public:
  using ServerClient::ServerClient;

  Meta meta() { return parse_meta(request_ok("meta").lines); }

  // Makes sure the server is an index server (flarei), not a data node (flared), before anything
  // is read from or sent to it. Both answer `stats` (the same fields) and `stats nodes` (a node
  // with its own, possibly stale, copy of the map), but a flared answers `ERROR` to `meta`, which a
  // flarei always answers with META lines (flare 1.3.4: tests/data/flare-protocol.md "Hard states",
  // real-flare-1.3.4/node_misc.txt [1]). One round trip, once per client.
  // Throws NotAnIndexError (one line naming the address) for a node; NetworkError / ProtocolError
  // as request(); ServerError for any other refusal of `meta`.
  void require_index();

  // The three changes return the server's status line ("OK" or the error) instead of
  // throwing on a refusal: callers decide whether a refusal is fatal or worth a retry.
  // Sent through request_change(): none after Ctrl-C (see ChangeLog).
  std::string node_role(const Endpoint& n, const std::string& role, int balance, int partition);
  std::string node_state(const Endpoint& n, const std::string& state);
  std::string node_remove(const Endpoint& n);

private:
  bool is_index_ = false;
};

// A data node (flared).
class NodeClient : public ServerClient {
public:
  using ServerClient::ServerClient;

  std::string flush_all() { return request_change("flush_all").status; }
};

// Result of asking one node for `stats` during a gather.
struct StatsResult {
  Endpoint endpoint;
  bool ok = false;
  std::string error; // why it failed, when !ok
  NodeStats stats;
  Clock::time_point fetched_at{};
};

// What a gather may be given besides its requests: `cancel`, asked every
// FLARE_TOOLS_CANCEL_CHECK_MS (true: every connection is closed and Interrupted thrown, e.g.
// after Ctrl-C), and `trace`, given each request as it is sent ("--> HOST:PORT request") and each
// node's reply lines once it is in ("<-- HOST:PORT line", its END too), or why it failed.
struct GatherHooks {
  CancelFn cancel; // cppcheck-suppress unusedStructMember
  TraceFn trace;   // cppcheck-suppress unusedStructMember
};

// One server's reply to one request of gather_replies: its lines before END when ok, else why not.
struct GatherReply {
  Endpoint endpoint;
  std::string request; // without CR LF
  bool ok = false;
  std::string error;
  std::vector<std::string> lines;
};

// Sends each (endpoint, request line) and reads its reply up to END, all at once from this one
// thread: non-blocking connects and a single poll() loop, so N slow or dead nodes cost one
// timeout, not N. Each endpoint has `timeout_ms` from the start of its connect; a reply must end
// in END, else it fails with the line it ended with. The requests to one endpoint share a
// connection, pipelined. Connections are started FLARE_TOOLS_GATHER_CONNECT_BATCH at a time, the
// open ones serviced in between, and no more are open at once than the open-files limit allows
// (raised for this, less FLARE_TOOLS_RESERVED_FDS; past the hard limit a node starts as another
// ends, and an unexpected EMFILE narrows the window instead of failing the node). A node that
// fails (refused, timeout, garbage) comes back with ok == false and the reason; the others are
// unaffected. Never throws for one node's failure; replies in the order of `asks`. Throws
// Interrupted when hooks.cancel says stop.
inline std::vector<GatherReply> gather_replies(const std::vector<std::pair<Endpoint, std::string>>& asks, int timeout_ms,
                                               const GatherHooks& hooks = {});

// Fetches `stats` from every endpoint at once (gather_replies); results in the order of `endpoints`.
// Throws Interrupted when hooks.cancel says stop.
inline std::vector<StatsResult> gather_stats(const std::vector<Endpoint>& endpoints, int timeout_ms,
                                             const GatherHooks& hooks = {});

// ---- 5b. Replication lag -----------------------------------------------------------------
//
// A master sends each write to its slaves through replication threads of its own (flared's
// proxy-concurrency of them per slave, 2 by default), and `stats threads slave` on the master
// lists them. Seen on a real flare 1.3.4 (tests/data/flare-protocol.md "Hard states"): each thread's
// `peer` is the slave node's own name and port as in the node map (127.0.0.1:21122, not an
// ephemeral port), its `type` is that node's thread_type, `queue` the writes waiting in it and
// `behind` the seconds since the oldest of them was queued; a thread sending a write shows state
// `execute` (op proxy_write). With a slave stopped (SIGSTOP) and 50,000 writes: queue 24942 and
// 25056 in its two threads, behind 11. The listing follows the MASTER's own map: a slave the
// index has set down is no longer listed. A master creates the threads at its first write to a
// slave: a slave without threads has been sent nothing since the master started (lag 0).

// One slave's lag as its master sees it.
struct SlaveLag {
  std::string slave;    // the slave node, HOST:PORT as in the node map
  long long queue = 0;  // writes waiting towards it, items (the sum over its threads)
  long long behind = 0; // seconds since the oldest of them was queued (the most over its threads)
  int threads = 0;      // the master's replication threads towards it
  bool writing = false; // a thread is sending it a write now (state execute): one more in flight
  // Writes the slave has not acknowledged: the queue, and the one being sent.
  long long pending() const { return queue + (writing && queue < LLONG_MAX ? 1 : 0); }
};

// Groups a master's `stats threads slave` by slave. A thread's peer names its slave; when the
// peer is not a key of `nodes` (the index's map, if given) the thread's type is matched against
// the nodes' thread_type instead (the type a master gives its threads towards a node). Slaves in
// key order. Throws nothing; a field that is not a number counts as 0.
inline std::vector<SlaveLag> slave_lags(const std::vector<ThreadInfo>& threads, const std::vector<NodeInfo>& nodes = {});

// Asks one master (`stats threads slave`, one request within `timeout_ms` milliseconds) for
// the lag of each slave it replicates to (slave_lags(), `nodes` as there). Throws
// NetworkError / ProtocolError, ServerError when the master refuses the request; Interrupted once
// `cancel` says stop.
inline std::vector<SlaveLag> ask_slave_lag(const Endpoint& master, int timeout_ms, const std::vector<NodeInfo>& nodes = {},
                                           const TraceFn& trace = nullptr, const CancelFn& cancel = nullptr);

// One master's answer in a gather.
struct LagResult {
  Endpoint master;
  bool ok = false;
  std::string error; // why it failed, when !ok
  std::vector<SlaveLag> slaves;
  const SlaveLag* find(const std::string& slave_key) const;
};

// ask_slave_lag() of every master at once, as gather_stats() (one poll() loop, `timeout_ms`
// each): one request per master. Results in the order of `masters`; a master that fails comes
// back with ok == false and the reason. Throws Interrupted when hooks.cancel says stop.
inline std::vector<LagResult> gather_slave_lag(const std::vector<Endpoint>& masters, int timeout_ms,
                                               const std::vector<NodeInfo>& nodes = {}, const GatherHooks& hooks = {});

// What gather_stats_and_lag() gives.
struct StatsAndLag {
  std::vector<StatsResult> stats; // in the order of `endpoints`
  std::vector<LagResult> lags;    // in the order of `masters`
};

// gather_stats(endpoints) and gather_slave_lag(masters) from the same poll() loop: what
// flare-stats needs, for the price of one gather. Throws Interrupted when hooks.cancel says stop.
inline StatsAndLag gather_stats_and_lag(const std::vector<Endpoint>& endpoints, const std::vector<Endpoint>& masters,
                                        int timeout_ms, const std::vector<NodeInfo>& nodes = {},
                                        const GatherHooks& hooks = {});

// ---- 6. Cluster model --------------------------------------------------------------------

// The cluster as the index server describes it (one `stats nodes`).
class Cluster {
public:
  Cluster() = default;
  explicit Cluster(std::vector<NodeInfo> nodes);

  // Nodes in the server's order.
  const std::vector<NodeInfo>& nodes() const { return nodes_; }
  bool empty() const { return nodes_.empty(); }

  const NodeInfo* find(const std::string& key) const;
  const NodeInfo* find(const Endpoint& ep) const { return find(ep.key()); }

  // 1 + the highest partition number in use (0 when there is none).
  int partition_count() const { return partition_count_; }

  // The partition's master. After a takeover the index lists two: the old one `master down`
  // (kept in the map until removed) and the new one; the one that is not down is the master.
  const NodeInfo* master_of(int partition) const;

  // Every node listed as master of the partition (more than one only after a takeover).
  std::vector<const NodeInfo*> masters_of(int partition) const;

  // A master that is down with no other master for its partition: it holds the partition's
  // only copy ("preserved" by the index) and comes back with its data when its flared does.
  const NodeInfo* preserved_down_master(int partition) const;

  std::vector<const NodeInfo*> slaves_of(int partition) const;

  int active_slave_count(int partition, const std::string& except_key = std::string()) const;

  // "List order": by partition with proxies last, then role, then key (flare-admin list).
  std::vector<NodeInfo> list_order() const;

  // "Stats order": by partition with proxies (-1) first, then role, then key (flare-stats).
  std::vector<NodeInfo> stats_order() const;

  // Can the node be rebuilt at all without losing its partition's only serving copy?
  bool reconstructable(const NodeInfo& n) const;

  // Does the partition keep redundancy (another active copy besides the promoted one)
  // while this node is rebuilt? A master needs two active slaves (one takes over, one
  // remains); a slave needs another active slave.
  bool safely_reconstructable(const NodeInfo& n) const;

private:
  std::vector<NodeInfo> nodes_;
  std::unordered_map<std::string, size_t> by_key_;            // key -> its first place in nodes_
  std::unordered_map<int, std::vector<size_t>> by_partition_; // partition -> its nodes, in order
  int partition_count_ = 0;
};

// The masters to ask for the lag of the slaves among `shown` (each once, in order).
inline std::vector<Endpoint> lag_masters(const Cluster& cluster, const std::vector<NodeInfo>& shown);

// Every slave of `cluster` whose master answered among `lags` (a gather_slave_lag() of the
// masters), with its lag; a master that answered with no thread towards one of its slaves has
// sent it nothing since it started: lag 0, no threads. Slaves whose master did not answer (or
// was not asked) are left out.
inline std::map<std::string, SlaveLag> lags_by_slave(const Cluster& cluster, const std::vector<LagResult>& lags);

// The lag of one slave (lags_by_slave()); nullopt when its master did not answer.
inline std::optional<SlaveLag> lag_of(const Cluster& cluster, const NodeInfo& slave, const std::vector<LagResult>& lags);

// ---- 6b. Key hashing and partitions ------------------------------------------------------
//
// Which partition a key belongs to, computed exactly as flare 1.3.4 does (x86-64, zlib and
// libhashkit), so that `verify` agrees with the servers bit for bit. Checked against values
// produced by the upstream code itself: tests/data/keyhash_vectors.txt.

enum class KeyHashAlgorithm { simple, bitshift, crc32, adler32, murmur, jenkins };

// Names are matched exactly (case-sensitive), as the server does.
inline bool parse_key_hash_algorithm(std::string_view name, KeyHashAlgorithm& out);

inline const char* to_string(KeyHashAlgorithm alg);

// The value the server feeds to the partition resolver.
//  * The key is a C string there, so hashing stops at the first NUL byte.
//  * Every algorithm's 32-bit result is taken as a signed int and negated
//    when negative, so results are in [0, INT_MAX] ... except INT_MIN, whose
//    negation wraps back to INT_MIN on the server (x86, gcc). We return
//    INT_MIN unchanged so callers can reproduce what the server does next.
inline int key_hash(std::string_view key, KeyHashAlgorithm alg);

// The server's "modular" key resolver.
//
// The server keeps a table map[n][bucket] for every n below max_partitions:
//   * rows n <= hint are plain modulo: map[n][b] = b % n;
//   * row n > hint is derived from row n-1 by scanning buckets in order and
//     counting, per old partition k, how many of its buckets were seen; each
//     time that count is congruent to n-1 modulo n, the bucket moves to the
//     new partition n-1, otherwise it stays at k. The counts restart for
//     every row.
// A key goes to map[partition_count][hash % virtual_buckets], with C++'s
// truncating %, where partition_count is the number of partitions in use.
//
// Memory: the server holds all rows (1024 x 4096 ints = 16 MB by default).
// A tool only ever asks about one or two partition counts, so we build just
// the rows asked for, on first use, walking forward from the nearest cached
// row (or from the plain-modulo row at hint) with two scratch rows. Building
// a row costs O(n * virtual) steps (4M for n = 1023), and at most
// kMaxCachedRows rows of virtual_buckets ints are kept.
//
// Where the server would crash or read outside its table, partition_of()
// returns -1 instead:
//   * hint < 1: the server dereferences the absent row 0 while building row 1
//     (it crashes at startup unless max_partitions is 1);
//   * virtual_buckets <= 0: 0 divides by zero in resolve(), < 0 fails to
//     allocate; max_partitions <= 0: no table at all;
//   * partition_count == 0: row 0 is never allocated (null pointer);
//   * partition_count < 0 or >= max_partitions: index outside the table;
//     note that count == max_partitions is already outside (rows 0..max-1);
//   * hash % virtual_buckets < 0, i.e. a negative hash (only INT_MIN comes
//     out of key_hash) when virtual_buckets does not divide 2^31: the server
//     reads before the start of its row. With a power-of-two virtual size
//     INT_MIN lands in bucket 0, exactly as on the server.
// Not thread-safe: partition_of() fills a cache.
class ModularResolver {
public:
  static constexpr std::size_t kMaxCachedRows = 8;

  explicit ModularResolver(int max_partitions = 1024, int hint = 1, int virtual_buckets = 4096);

  int max_partitions() const { return max_; }
  int hint() const { return hint_; }
  int virtual_buckets() const { return virtual_; }

  // Whether the server could build its table with these settings.
  bool valid() const { return max_ > 0 && hint_ >= 1 && virtual_ > 0; }

  // Bucket for a hash, or -1 where the server would index out of bounds.
  int bucket_of(int hash) const;

  int partition_of(int hash, int partition_count) const;

  // Whole row for a partition count (1 <= n < max_partitions, valid()).
  // The reference stays valid only until the next call (rows are evicted).
  // Outside that range the server has no row; we hand back an empty one.
  const std::vector<int>& row(int n) const;

private:
  int max_;
  int hint_;
  int virtual_;
  mutable std::map<int, std::vector<int>> rows_;
};

// ---- 6c. Node map versions
// flarei numbers every map it makes (`node_map_version` in `stats` of the index and of every node)
// and pushes each new map to the nodes; a node ignores a map older than its own (flare 1.3.4
// src/lib/cluster.cc reconstruct_node: "ignored: the current node_map_version (27) is newer than
// (8)"). So an index restarted from an older flare.xml answers OK to every change while no node
// routes by it (tests/data/flare-protocol.md, "Hard states").
struct MapVersions {
  long long index = -1;                                 // the index's node_map_version; -1 unknown
  std::vector<std::pair<std::string, long long>> nodes; // each node that answered, in the order given

  // The nodes holding a newer map than the index (they ignore the index's changes).
  std::vector<std::pair<std::string, long long>> newer() const;
  // The highest version a node holds (-1 when none answered), and that node.
  long long highest() const;
  std::string highest_node() const;
};

// The versions of the index (`stats` node_map_version of the index, -1 unknown) and of every node
// whose `stats` answered with one (a gather_stats result; failed nodes are left out).
inline MapVersions map_versions(long long index_version, const std::vector<StatsResult>& results);

// map_versions() made sure of: when a node seems to hold a newer map than the index, the index's
// version is read again (`index_version_now`, -1 unknown) and v.index becomes it when higher. The
// index's version is read before the nodes' (one after another, or while a gather waits on a slow
// node), and a change made in between (another command, the index's monitor setting a node down)
// bumps it and makes a node look ahead when it is not. A node that is ahead of the index read
// after it is truly ahead. An Error from `index_version_now` leaves v as it was.
inline MapVersions settle_map_versions(MapVersions v, const std::function<long long()>& index_version_now);

// One sentence for when nodes hold a newer map than the index ("" when none does), and one that
// says how to get out (give flarei a version above the nodes'), e.g.
// "the nodes hold a newer node map than the index (index node_map_version 7; 127.0.0.1:23121 holds 27,
// and 2 more nodes): they ignore every change the index makes."
inline std::string map_version_warning(const MapVersions& v);
inline std::string map_version_way_out(const MapVersions&);

// ---- one reading of a cluster: the index's map, its version, and the nodes' ----

// `asked` first, in order, then every other node of the map that is not down: the nodes whose
// `stats` a reading needs (their node_map_version is compared with the index's). One gather for
// both, so that a wedged node costs one timeout, not two.
inline std::vector<Endpoint> with_version_nodes(std::vector<Endpoint> asked, const Cluster& c);

// What `list`, `stats`, `summary` and `index` read: the index's node_map_version, then its map,
// then every node's `stats` (and, with `lags`, the lag of the shown slaves from their masters,
// `stats threads slave`) in one gather, then the index's version again. When the two versions
// differ (a change landed meanwhile: another admin, the index's monitor), it is read again, up to
// `tries` times; `stable` says whether the last try's versions agreed. Read the other way round
// (the map before the version) a change between them gave the old map under the new version
// (`index` wrote it; seen under load).
struct ClusterReading {
  Cluster cluster;
  long long node_map_version = -1; // the index's, read before the map (-1 not reported)
  long long version_after = -1;    // the index's, read again after the nodes (== node_map_version: stable)
  std::vector<NodeInfo> shown;     // the nodes `shown` chose, in its order
  std::vector<StatsResult> stats;  // shown's first (stats[i] is shown[i]'s), then the other nodes not down
  std::vector<LagResult> lags;     // with `lags`: the shown slaves' masters' answers
  MapVersions versions;            // the index's against the nodes' (settled: settle_map_versions)
  bool stable = false;             // the index's version was the same before the map and after the nodes
};
using ShownFn = std::function<std::vector<NodeInfo>(const Cluster&)>;

// `shown` picks the nodes to show from the map (e.g. Cluster::list_order); their stats come first,
// stats[i] being shown[i]'s, then every other node not down. nullptr: none picked, `shown` is
// empty and `stats` holds the nodes not down in the map's order (match them by endpoint).
// Throws NetworkError when the index does not answer (the nodes' failures are in `stats`),
// Interrupted when hooks.cancel says so. timeout_ms bounds each gather and each index request.
inline ClusterReading read_cluster(IndexClient& index, int timeout_ms, const ShownFn& shown = nullptr, bool lags = false,
                                   const GatherHooks& hooks = {}, int tries = 1);

// For the reader of what a reading shows: "" when it is stable; else one line saying that the
// node map changed while it was read (node_map_version A, then B), so that the nodes and figures
// shown may be from before that change or mix both maps, and that reading again shows the
// cluster after it. `list`, `stats` and `summary` say it (stderr) beside their output. Pure.
inline std::string reading_note(const ClusterReading& r);

// "" when no node holds a newer map than the index; else the warning and the way out, one line.
inline std::string map_version_problem(const MapVersions& v);

// The map the index's flare.xml is to hold (flare-admin index), and its version. Normally the
// index's own. When nodes hold a newer map than the index (an index restarted from an old
// flare.xml), the index's map is not the one the cluster routes by, and may list other roles and
// partitions: written back with a higher version, it would make the nodes take it (a partition
// gone, its keys served from stale copies; seen on a real flare 1.3.4). The map written is then
// the one the nodes holding the newest version answer to `stats nodes` (a flared's own copy of
// the map: tests/data/transcripts/node_stats.txt), and every one of them asked must agree.
struct IndexMapChoice {
  Cluster cluster;                      // the map to write
  long long version = -1;               // its node_map_version
  std::string from;                     // "" the index's map; else the node it was read from
  size_t agreeing = 0;                  // nodes at that version whose maps were read (all the same)
  std::vector<std::string> differences; // how the index's map differs from it, one line a node
};

// Where two maps differ, one line a node ("KEY: the index's map: ROLE STATE partition P balance B
// thread_type T; the nodes': ..."), in `theirs`' order, then the nodes only `ours` lists.
inline std::vector<std::string> node_map_differences(const Cluster& ours, const Cluster& theirs);

// choose_index_map: `index_map` and `v` as read from the index and the nodes (settled). Asks the
// nodes at the newest version for `stats nodes`, all at once (one `timeout_ms`), when any holds a
// newer map than the index. Throws Error when none of them answers, or when they answer different
// maps (then no map is known to be the cluster's).
inline IndexMapChoice choose_index_map(const Cluster& index_map, const MapVersions& v, int timeout_ms);

// The map flare.xml is to hold when the index lost its own (flarei restarted on an empty data
// dir: node_map_version 0, no node listed, while the nodes keep serving by the map they hold;
// seen on a real flare 1.3.4): the map `node` holds (flared answers `stats nodes` with its own
// copy, and `stats` with its node_map_version), then, as choose_index_map() does, the newest map
// the nodes it lists agree on. `from` names the node read. Throws NetworkError when `node` does
// not answer, ProtocolError when it answers no map, ServerError when the newest maps differ.
inline IndexMapChoice map_from_node(const Endpoint& node, int timeout_ms);

// ---- 7. Operations and waiting ----------------------------------------------------------

// How an operation talks to its user. The CLI wires these to the terminal; a program using
// the library may wire them to anything (all optional except `ask` for interactive use).
struct OperationIO {
  std::function<void(const std::string&)> say;      // a table or a step of the change (stdout in flare-admin)
  std::function<void(const std::string&)> warn;     // an error, refusal, warning or note (stderr)
  std::function<void(const std::string&)> progress; // a construction progress line, once a second
  // Shows `prompt` and returns the answer line, or nullopt at end of input (which means "no").
  std::function<std::optional<std::string>(const std::string& prompt)> ask;
  std::function<bool()> interrupted; // true once the user asked to stop (Ctrl-C); see ClusterAdmin
};

// `text` with "-i HOST:PORT" after each "flare-admin SUB" of a subcommand that asks an index,
// unless one is named there already: a command the tool advises then goes to the index it was run
// against, not to whatever FLARE_INDEX_SERVER (or the default 127.0.0.1:12120) says in the shell
// or cron job that runs it (seen: advice followed as printed went to another index). Throws nothing.
inline std::string with_index_option(const std::string& text, const Endpoint& index);

struct OperationOptions {
  bool force = false;         // answer every question "yes" (the refusals still hold)
  bool dry_run = false;       // send nothing that changes state; say what would be sent
  int retry = 10;             // attempts of a refused `node role` (the node may not be ready yet)
  int timeout_ms = FLARE_TOOLS_DEFAULT_TIMEOUT_MS; // a construction without progress for this long fails
  int poll_interval_ms = 1000;
  bool unsafe = false;        // reconstruct without redundancy; fail a master over before its slaves caught up
  bool activate = false;      // master: move a `ready` master on to `active`
  bool without_clean = false; // master/slave: skip flush_all
  bool discard_items = false; // master/slave: flush a proxy that holds items (refused without it)
  std::string balance_record; // BalanceRecord's file ("" = none): the balance a cut-short run was to give
};

// How an operation ended, worst first when several nodes were handled.
enum class Outcome { ok = 0, declined = 1, failed = 2, interrupted = 3 };

inline Outcome worse(Outcome a, Outcome b);

// What a construction wait sees each second.
struct ConstructionProgress {
  std::string role, state;
  long long items = 0;        // slave: its curr_items; master: its own curr_items
  long long master_items = 0; // slave waits only
  bool master_total_is_bound = false; // slave waits: the cluster has more than one partition, so the
                              // master may keep stale copies of keys that moved to a later partition
                              // (normal after a partition was added), which the copy skips:
                              // master_items is at most what will be copied, not the total
  double elapsed = 0;
  bool copying = false;       // items and state flat, but the node shows its copy running (copy_running)
  std::string index_error;    // why the index did not answer this look ("" when it did): role and state are the last seen
  std::string node_error;     // why the node did not answer ("" when it did): items are the last seen
  std::string source;         // slave waits: the partition's master asked this look ("" when none listed)
  std::string source_error;   // why that master did not answer ("" when it did): master_items are the last seen
  std::string blocked_on;     // master waits, nothing moving: the source a reconstruction thread of the node still
                              // reads though it does not answer or serve it (copy_blocked_on; "" when none)
};

inline std::string eta_text(const ConstructionProgress& p);

// "20000/20000 (role = slave, state = active) [ETA: 0 sec (elapsed = 1 sec)]"; with more than one
// partition "15000/30000 at most (...) [ETA: n/a ...]": the copy takes only the partition's keys
// and the master's count may include other partitions' stale copies (seen on a real flare 1.3.4
// after a partition was added: the copy ended at 15,000 of the master's 30,000).
inline std::string format_slave_progress(const ConstructionProgress& p);

// "0 (role = master, state = active) [ETA: n/a sec (elapsed = 0 sec)]"
inline std::string format_master_progress(const ConstructionProgress& p);

// How a wait ended: its goal reached, or stopped by io.interrupted (Ctrl-C). A wait that cannot
// reach its goal throws instead (ConstructionStopped, NetworkError).
enum class WaitEnd { reached, interrupted };

// A construction wait that stopped short of its goal (an Error: its what() is one line).
// `why`: stalled (neither items, state nor a running copy moved for opt.timeout_ms, or the node did
// not answer that long), index_unreachable (the index did not answer for opt.timeout_ms; the copy may go
// on), lost (the node left the role being built, e.g. it fell back to proxy). `last`: the last look.
class ConstructionStopped : public Error {
public:
  enum class Why { stalled, index_unreachable, lost };
  ConstructionStopped(const std::string& what, Why why_, ConstructionProgress last_);
  Why why;
  ConstructionProgress last;
};

// Whether `node` shows a copy running from one of `sources`: one of its threads runs `dump` with
// that source as its peer (flared's reconstruction thread: type 3, op dump, peer = the source's
// host:port), and the source answers and shows a `dump` thread of its own. On a real flare 1.3.4
// with reconstruction-bwlimit 4096, a 64 MiB value arrives at once and then for 16 s the item
// count is flat while both threads are there; a construction that failed shows neither.
// Returns that source's key, or "" (no such threads, or a node did not answer within timeout_ms:
// a source that stopped answering is not serving a copy). Throws only Interrupted, once `cancel`
// says stop (Ctrl-C is not held up by a stopped node for timeout_ms).
inline std::string copy_running(const Endpoint& node, const std::vector<Endpoint>& sources, int timeout_ms,
                                const TraceFn& trace = nullptr, const CancelFn& cancel = nullptr);

// The source `node`'s copy is blocked on: the peer of one of its reconstruction threads (op dump)
// that does not answer within timeout_ms or shows no dump of its own. On a real flare 1.3.4 a
// source SIGSTOPped mid-copy, and failed over by the index, leaves the new master's thread reading
// it: no longer a master, so copy_running() does not ask it; the copy goes on after SIGCONT.
// Returns "" when there is none (or `node` does not answer). Throws only Interrupted (`cancel`).
inline std::string copy_blocked_on(const Endpoint& node, int timeout_ms, const TraceFn& trace = nullptr,
                                   const CancelFn& cancel = nullptr);

// Waits until `node` is `slave active`, once per poll interval reading the index's `stats nodes`,
// both nodes' `stats` and, while those stand still, both nodes' `stats threads` (copy_running);
// reports "ITEMS/MASTER_ITEMS (role = R, state = S) [ETA...]". Rides out an index that does not
// answer for less than opt.timeout_ms. Returns WaitEnd::interrupted as soon as io.interrupted says
// stop, also while a node or the index does not answer. Throws ConstructionStopped when nothing
// moved for opt.timeout_ms (stalled), the index was gone that long, or the node left its
// construction (lost); its `last` is where the node was.
inline WaitEnd wait_for_slave_active(IndexClient& index, const Endpoint& node, const OperationOptions& opt,
                                     const OperationIO& io, ConstructionProgress& last);

// Waits until `node` is a `master` in state `ready` or `active` (its copies come from the masters
// of the partitions before it). As wait_for_slave_active otherwise.
inline WaitEnd wait_for_master_ready(IndexClient& index, const Endpoint& node, const OperationOptions& opt,
                                     const OperationIO& io, ConstructionProgress& last);

// After `node state down`, a live node comes back as `proxy active` once the index's monitor
// sees it again (about a second on a real cluster). Waits for that instead of sleeping blindly,
// up to opt.timeout_ms, polling every 200 ms; an index that does not answer meanwhile (a flarei
// killed and restarted) is asked again for up to opt.timeout_ms. Returns WaitEnd::interrupted as
// soon as io.interrupted says stop. Throws Error when the node leaves the map or does not come
// back; NetworkError when the index is gone for longer.
inline WaitEnd wait_for_proxy_active(IndexClient& index, const Endpoint& node, const OperationOptions& opt,
                                     const OperationIO& io);

// Sends `node role` until the index accepts it, at most `opt.retry` times, waiting 1, 2, 3...
// seconds in between (a node just set down must first come back as a proxy). Returns the
// last refusal, or "OK".
inline std::string set_role_with_retry(IndexClient& index, const Endpoint& node, const std::string& role, int balance,
                                       int partition, const OperationOptions& opt, const OperationIO& io);

// The balance a slave construction is to give its node once it is slave active. flarei 1.3.4 makes
// a new slave of a serving partition balance 0 whatever it is given (src/lib/cluster.cc
// set_node_role), so the index's map holds the figure nowhere; a run cut short (Ctrl-C, kill, an
// index lost) would leave the next run only a placeholder. Kept in a small private file (0600,
// its folder 0700, written whole through a temporary), one line per node:
// "INDEX NODE PARTITION BALANCE UNIX_TIME". An empty path keeps nothing. find() never throws;
// keep() and forget() throw Error when the file cannot be written.
struct PendingBalance {
  std::string index, node; // HOST:PORT each
  int partition = -1, balance = 0;
  long long since = 0; // unix seconds when it was kept
};

class BalanceRecord {
public:
  explicit BalanceRecord(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  std::optional<PendingBalance> find(const std::string& index, const std::string& node) const;
  void keep(const PendingBalance& b);
  void forget(const std::string& index, const std::string& node);

private:
  static constexpr size_t kMaxBytes = 1 << 20; // a bound on what is read back
  std::vector<PendingBalance> read() const;
  void write(const std::vector<PendingBalance>& all) const;
  std::string path_;
};

// An answer of yes: "y" or "yes" in any case, blanks around it ignored (0.7.3 took "y"; an
// operator types "yes" too). Anything else is no.
inline bool is_yes(std::string a);

// Asks `prompt` through io.ask: true when the answer is_yes(); no answer (end of input, no
// io.ask) is no. Throws nothing of its own.
inline bool confirm(const OperationIO& io, const std::string& prompt);

// The cancellation rule of a command that changes the cluster (ClusterAdmin's): once
// `interrupted` says so, no changing request goes out (ServerClient::request_change throws
// Interrupted), and every wait on the index ends at once (Interrupted; before the first change:
// nothing was changed), also while the index does not answer (a stopped flarei), the wait for a
// change's answer too: request_change then says the change was sent and may have been taken.
// Returns the log of the changes sent, shared by `index` and the clients the commands make from it.
inline std::shared_ptr<ChangeLog> guard_changes(IndexClient& index, const CancelFn& interrupted);

// What an interruption (Interrupted's `what`) left, one line: "interrupted: nothing was changed."
// (naming the request not sent, when `what` does), or `what` and every request sent before it,
// with the command that shows where the cluster is.
inline std::string interruption_text(const ChangeLog& log, const std::string& what, const Endpoint& index);

// ---- 7a. Layouts: the cluster an operator declares, and the plan that gets there (apply) ----
//
// A layout is what `flare-admin list` prints: one node a line, "node partition role state
// balance" (the state column is read and ignored; "-" is a proxy's partition), `#` comments and
// blank lines allowed, the header line optional. plan_layout() turns the cluster as the index
// lists it and a layout into the ordered steps that make the one the other, the refusals (a
// layout it will not carry out, with the reason and the way out) and the warnings; it reads
// nothing and sends nothing, so that a dry run and a real run follow the same plan.
// The order keeps every partition's copies: new masters and slaves are built first, a planned
// failover (a master swapped for its slave) next, nodes taken out of a partition after that, and
// balances last. A failover goes to the slave flare 1.3.4 promotes (src/lib/cluster.cc,
// cluster::down_node: the active slave of the highest balance, the first by node key on a tie).

struct LayoutNode {
  std::string node;   // HOST:PORT as the index lists it
  std::string role;   // master, slave or proxy
  int partition = -1; // -1 for a proxy
  int balance = 0;
  int line = 0;       // where it was read, for messages
};

struct Layout {
  std::vector<LayoutNode> nodes;
  const LayoutNode* find(const std::string& node) const;
};

// One step of a plan: what it does to which node, and the flare-admin commands an operator would
// type for it (run one after another). The executor (ClusterAdmin::apply) runs each step through
// the same command code, with that command's own checks and waits.
struct PlanStep {
  enum class Kind {
    master,   // a proxy becomes the master of a new partition, and is activated
    slave,    // a proxy becomes a slave, is copied to, then gets its balance
    failover, // a partition's master is set down: the slave flare promotes takes over
    release,  // a slave (or a master a failover replaced) is set down: it comes back a proxy
    balance,  // a master's or slave's balance changes
    remove    // a down proxy leaves the map (--prune)
  };
  Kind kind = Kind::balance;
  std::string node;        // HOST:PORT
  int partition = -1;      // the partition it concerns (the new one for master and slave)
  int balance = 0;         // the balance it ends with (master, slave, balance)
  bool discard = false;    // a slave/master built from a node this plan released: its items go
  bool resume = false;     // master and slave: the node's copy is under way (a run cut short): waited for
  std::string source;      // master and slave: the node the copy comes from; failover: the new master
  long long items = -1;    // master and slave: the items the copy reads (-1 not known; annotate_plan)
  bool items_bound = false; // a part of them only: several partitions (stale keys are not copied)
  long long held = -1;      // master and slave: the items the node holds now, which its flush deletes (-1 not known)
  std::string what;        // one line, for the plan
  std::vector<std::string> commands; // the equivalent flare-admin commands
  // The changing requests the step sends, in order (its command's own requests: `-n` of that
  // command names the same), and what it waits for after each.
  struct Request {
    // cppcheck-suppress unusedStructMember
    std::string to;   // "" the index, else the node's HOST:PORT
    // cppcheck-suppress unusedStructMember
    std::string line; // e.g. "node role 127.0.0.1 12121 slave 0 0", "flush_all"
    // cppcheck-suppress unusedStructMember
    std::string then; // what the step waits for after it ("" nothing)
  };
  std::vector<Request> requests;
  std::string waits_first; // what the step waits for before its first request ("" nothing)
};

struct LayoutPlan {
  std::vector<PlanStep> steps;
  std::vector<std::string> refusals;      // each a reason and the way out; any: nothing is to be done
  std::vector<std::string> warnings;      // said with the plan, before the question
  std::vector<std::string> not_in_layout; // "HOST:PORT (role state)": left as they are
  bool converged() const { return steps.empty() && refusals.empty(); }
};

struct LayoutOptions {
  bool prune = false; // nodes the layout leaves out are released (a master or slave) or removed (a down proxy)
};

// Throws InputError("line N: ...") for a line that is not a node of a layout, a node listed
// twice, a role not master/slave/proxy, a master or slave without a partition, a proxy with one,
// a balance below 0 or a partition above kMaxPartition.
inline Layout parse_layout(std::string_view text);

// The steps that take the cluster `c` (the index's map) to layout `l`, or the refusals that stop
// it; pure: it reads and sends nothing. Items are not known here (-1): annotate_plan() adds them.
inline LayoutPlan plan_layout(const Cluster& c, const Layout& l, const LayoutOptions& o = {});

// What each copy of the plan reads and each flush deletes, from the nodes' `stats` curr_items
// (`items` by node key; a node missing from it is not known): a slave's copy, its master's items;
// a new partition's master, a part of every active master's (`masters`); a node a step builds, the
// items it holds now (flushed first).
inline void annotate_plan(LayoutPlan& plan, const std::map<std::string, long long>& items,
                          const std::vector<std::string>& masters);

// plan_layout for the cluster as it is now: what apply runs, `apply -n` shows and `--plan-out`
// saves. It adds the items each copy reads and each flush deletes (annotate_plan, from the
// `stats` of every node that is not down, one gather bounded by timeout_ms), and leaves out the
// removal of a down proxy whose flared answers `ping`: set down a moment ago, the index brings it
// back as a proxy, and removed now it would be left out of the map while it runs (seen on a real
// flare 1.3.4 after --prune); it is listed in not_in_layout instead. Throws Interrupted when
// hooks.cancel says so.
inline LayoutPlan plan_layout_live(const Cluster& c, const Layout& l, const LayoutOptions& o, int timeout_ms,
                                   const GatherHooks& hooks = {});

// The plan as `apply` shows it before its question: numbered steps, each with its commands; with
// `requests` (`apply -n`, a saved plan), each step's requests too, and what it waits for.
inline std::string format_layout_plan(const LayoutPlan& plan, bool requests = false);

// Where the cluster differs from the layout, a line a node ("" none): a node not in the map, or
// not in the role, partition, balance or state (active) the layout gives it; with `prune`, also a
// master or slave, or a down proxy, the layout leaves out. `apply --diff` and `check --layout`.
inline std::vector<std::string> layout_differences(const Cluster& c, const Layout& l, const LayoutOptions& o = {});

// A layout as `list` prints it (the state column says what the layout asks for: active).
inline std::string format_layout(const Layout& l);

// A plan kept for later (`apply -n --plan-out FILE`, then `apply --plan FILE`): the index and the
// node_map_version it was made from, --prune, the steps (comments, for the reader) and the
// layout. A run of it is refused when the index's map moved since (ClusterAdmin::apply's made_from).
struct SavedPlan {
  std::string index;             // HOST:PORT
  long long node_map_version = -1;
  bool prune = false;
  Layout layout;
};

inline constexpr const char* kSavedPlanFirstLine = "# flare-admin-plan 1";

inline std::string format_saved_plan(const SavedPlan& p, const LayoutPlan& plan);

// Throws InputError when the text is not a saved plan (its first line, index, version) or its
// layout does not parse (parse_layout's errors).
inline SavedPlan parse_saved_plan(std::string_view text);

// Reads a layout or saved plan file (at most 16 MiB; "-" is standard input). Throws Error.
inline std::string read_layout_text(const std::string& path);

// The index's map and node_map_version read as one (the version read before and after the map
// agree; three moves in a row throw Error), for a plan or a diff made outside ClusterAdmin.
struct IndexReading {
  Cluster cluster;
  long long node_map_version = -1;
};
inline IndexReading read_index_map(IndexClient& index);

// ---- one node's part of a change, decided from the map alone ----
// The rules of `balance` and `remove` as pure functions (what ClusterAdmin then shows, asks, sends
// and waits for): unit-tested without a process or a fake (tests/test_layout.cpp).
struct NodeDecision {
  enum class Kind {
    send,    // ask, then send `request` (or, for slave, build the node)
    resume,  // the node is already (being) made what was asked: carry on from where it is
    skip,    // nothing to do (said: `message`), not a failure
    refuse,  // not done (`message`): a failure
    unknown  // the node is not in the map (`message`): the command stops
  };
  Kind kind = Kind::refuse;
  std::string message; // skip, refuse, unknown: one line
  std::string advice;  // refuse: a second line, the way on ("" none); send: a warning said first
  std::string request; // send: the request to the index
  std::string prompt;  // send: 0.7.3's question
};

// Why a balance of `bal` on `n` leaves its partition no node to read from (a master at 0 with
// no active slave of balance above 0), or nothing.
inline std::optional<std::string> no_reader_left(const Cluster& c, const NodeInfo& n, int bal);

// `balance HOST:PORT:BALANCE` for one node: a proxy is refused (flarei answers OK to a proxy's
// balance and changes nothing), the same balance is skipped, a slave still copying is refused
// with the way on (flarei refuses it), a 0 that leaves its partition no node to read from is
// refused unless `unsafe`.
inline NodeDecision decide_balance(const Cluster& c, const NodeArg& a, bool unsafe);

// `slave HOST:PORT:BALANCE[:PARTITION]` for one node, from the map: a slave of that partition
// already (a run cut short) is carried on; a node that is not a proxy, a proxy that is down (its
// flared not running, or not seen back yet), or a partition with no master to copy from is
// refused, with the way on. (What the node holds, flushed first, is asked by the executor.)
inline NodeDecision decide_slave(const Cluster& c, const NodeArg& a);

// `master HOST:PORT:BALANCE:PARTITION` for one node, from the map: a master of that partition
// already (a run cut short) is carried on; a partition that has a live master, a node that is not
// a proxy, or a partition that cannot be made yet (the next new one is partition_count(), after a
// ready one is activated) is refused. A partition whose master is down holds its only copy there:
// replacing it is refused unless `unsafe`, and then said. (Whether the older partitions' masters,
// the copy's sources, answer, and what the node holds, are asked by the executor.)
inline NodeDecision decide_master(const Cluster& c, const NodeArg& a, bool unsafe);

// `remove HOST:PORT` for one node, from the map: the index removes a down proxy, and a down
// master whose partition another master took over; it keeps a down master that holds its
// partition's only copy. (Whether a down proxy's flared still answers is asked by the executor:
// removed while it runs, it would stay out of the map.)
inline NodeDecision decide_remove(const Cluster& c, const NodeArg& a);

// `down HOST:PORT` for one node, from the map: a node already down is skipped. An active master
// set down is failed over by the index to its partition's best active slave (the executor first
// asks those slaves, and waits for their lag to drain: takeover_check, drain_check); the last
// active slave of a partition goes down with a warning (`advice`: no redundancy until a slave is
// built). (src/lib/cluster.cc set_node_state, down_node.)
inline NodeDecision decide_down(const Cluster& c, const NodeArg& a);

// `activate HOST:PORT` for one node, from the map: a node already active is skipped; a master or
// slave still copying (prepare) is waited for (resume), not activated: flarei refuses to activate
// a new partition's master in prepare, and activates a slave in prepare at once, its copy
// unfinished, so that it would serve reads it does not hold (both seen on a real flare 1.3.4);
// such a slave becomes active by itself when its copy is done. (Whether the node's flared
// answers, without which the index's monitor sets it down again, is asked by the executor.)
inline NodeDecision decide_activate(const Cluster& c, const NodeArg& a);

// Why `reconstruct` cannot rebuild `n`, and the one command that finishes the job from there.
// `kept`: the balance an earlier, cut-short run was to give it (BalanceRecord), if any.
inline std::string reconstruct_way_out(const Cluster& c, const NodeInfo& n, const std::optional<PendingBalance>& kept);

// `reconstruct HOST:PORT` for one node, from the map: a slave still copying (an earlier rebuild
// cut short) is waited for (resume); a node that cannot be rebuilt without losing its
// partition's only serving copy is refused with the way out (`kept`: see reconstruct_way_out);
// one whose partition would be left with no other serving copy while it is rebuilt is refused
// unless `unsafe` (then `advice` says so). The first request is the node's down; the executor
// then waits for it to come back as a proxy, flushes it and builds it as a slave.
inline NodeDecision decide_reconstruct(const Cluster& c, const NodeArg& a, bool unsafe,
                                       const std::optional<PendingBalance>& kept = std::nullopt);

// `part HOST:PORT:BALANCE:PARTITION ...`: the first node named for each partition becomes its
// master (activated), the others its slaves, in the order given. Pure.
struct PartPlan {
  std::vector<NodeArg> masters, slaves;
};
inline PartPlan plan_part(const std::vector<NodeArg>& args);

// The one executor of every change flare-admin makes (ClusterAdmin is its facade): it reads the
// map (riding out an index that stops answering for up to opt.timeout_ms), runs a command's
// decisions node by node (each_node: the checks that need the network, the question, the
// requests, the waits, the report), sends every changing request through one path (a dry run
// says it instead, as "dry run: would send 'REQUEST' to TARGET"), waits until the nodes route
// by the index's new map before it calls a change done, and says on a failure, a fault or
// Ctrl-C where the node is and the command that finishes the job. Throws NetworkError when the
// index is gone for longer than opt.timeout_ms, Interrupted before the first change at Ctrl-C.
class ChangeExecutor {
public:
  // With io.interrupted set, the cancellation rule is installed on `index` (guard_changes), unless
  // the caller installed it already (index.change_log() set): once io.interrupted returns true no
  // changing request is sent, and until the first one is, every wait on the index ends at once.
  ChangeExecutor(IndexClient& index, OperationOptions opt, OperationIO io);

  // Before the first change: the index must be a flarei (IndexClient::require_index, throws
  // NotAnIndexError), and no node may hold a newer map than the index (they would ignore every
  // change: see MapVersions). Says why and how to get out, and returns Outcome::failed, when a node
  // does; std::nullopt when the command may go on. Runs once per ClusterAdmin (every public
  // command calls it first); it also records which nodes answered, those whose map
  // in_effect() then waits for. Throws Error when the index cannot be read.
  std::optional<Outcome> preflight();

  // A per-node command: each_node with `act` one of the *_node methods below, then the nodes
  // named as the map lists them now (not after Ctrl-C, nor when the command stopped short).
  template <typename Decide>
  Outcome run(const std::vector<NodeArg>& args, Decide decide,
              Outcome (ChangeExecutor::*act)(const Cluster&, const NodeInfo&, const NodeArg&, const NodeDecision&));
  bool stopped() const { return stopped_; }
  bool interrupted() const { return io_.interrupted && io_.interrupted(); } // Ctrl-C: nothing more is said or asked
  OperationOptions& options() { return opt_; }
  void show_nodes(const std::vector<NodeInfo>& nodes);

  // A line for the operator (stdout in flare-admin): tables and the step-by-step lines 0.7.3 printed.
  void say(const std::string& s);
  // An error, refusal, warning or note (stderr in flare-admin); `say` is for tables and the
  // step-by-step lines 0.7.3 printed (stdout).
  void complain(const std::string& s);
  // The index's map. An index that does not answer (a flarei killed and restarted, or silent) is
  // asked again for up to opt.timeout_ms; past that, the NetworkError names
  // where the node being changed was last seen and the command that finishes its job.
  Cluster cluster();
  // The nodes named, as the index lists them now; nothing when the index does not answer (a
  // wait that gave up on it has said so, and where the node was).
  void print_table(const std::vector<NodeArg>& args);
  // The balance a construction cut short was to give `ep` (of partition `part`; -1 any), if kept.
  std::optional<PendingBalance> kept_balance(const Endpoint& ep, int part = -1) const;

  // ---- the executor: one loop for every per-node command ----
  // For each argument, in order: the map read again (as a dry run would have left it:
  // as_planned), the command's pure decision (decide_*), then: `unknown` stops the command
  // (failed, nothing more asked or shown: stopped_), `refuse` fails the node (its message and
  // way on said) and goes on, `skip` says why and goes on, `send` and `resume` run `act` (the
  // checks that need the network, the question, the requests, the waits, the report). Ctrl-C
  // (an `act` that returns interrupted) stops at once; an `act` that sets stopped_ (a `q`
  // answer) stops after it. Returns the worst outcome.
  template <typename Decide, typename Act>
  Outcome each_node(const std::vector<NodeArg>& args, Decide decide, Act act);

  // The dry run of finish_slave(n, -1): the wait for a slave still copying, then, as the real run
  // does, the balance a run cut short kept for it (BalanceRecord), when it has not that one yet.
  Outcome dry_finish_slave(const NodeInfo& n, const std::string& why);

  // reconstruct's per-node question (0.7.3's): y, n, a (yes to this and every node after it),
  // q (quit: this node and those after it left as they are), h (help, asked again).
  enum class Answer { yes, no, quit };
  Answer ask_each(const std::string& prompt);

  // `down` or `activate` of one node the decision says to send (decide_down, decide_activate):
  // a node to activate must answer (flarei answers OK, and its monitor sets a dead node down
  // again: it would look done); an active master set down is a failover, whose slaves are asked
  // before the question and again after it (the answer may come long after), and whose lag is
  // drained first (takeover_check, drain_check).
  Outcome set_state(Cluster c, const NodeInfo& node, const NodeArg& a, const NodeDecision& d, const std::string& state);

  // master's part for one node (decide_master said send or resume): a run again carries on
  // (resume_master); else the older partitions' masters must answer (the copy's sources), what the
  // node holds is flushed only when told, the question, then the construction (construct_master).
  Outcome master_node(const Cluster& c, const NodeInfo& n, const NodeArg& a, const NodeDecision& d);

  // slave's part for one node (decide_slave said send or resume): a run again carries on
  // (resume_slave); else the flush is planned (flush_plan), the question, the construction.
  Outcome slave_node(const Cluster&, const NodeInfo& n, const NodeArg& a, const NodeDecision& d);

  // balance's part for one node (decide_balance said send): the question, `node role`, the wait
  // for the nodes to route by the new map.
  Outcome balance_node(const Cluster&, const NodeInfo& n, const NodeArg& a, const NodeDecision& d);

  // activate's part for one node (decide_activate said send or resume): a node still copying is
  // waited for (a master then activated: set_state), else set_state.
  Outcome activate_node(const Cluster& c, const NodeInfo& n, const NodeArg& a, const NodeDecision& d);

  // remove's part for one node (decide_remove said send): a down proxy whose flared answers is
  // refused (removed, it would stay out of the map while it runs), the question, `node remove`.
  Outcome remove_node(const Cluster&, const NodeInfo& n, const NodeArg& a, const NodeDecision& d);

  // reconstruct's part for one node (decide_reconstruct said send or resume): a slave still
  // copying is waited for; else 0.7.3's y/n/a/q question, then reconstruct_one.
  Outcome reconstruct_node(const Cluster&, const NodeInfo& n, const NodeArg& a, const NodeDecision& d);

  // down's part for one node (decide_down said send): set_state, a failover for an active master.
  Outcome down_node(const Cluster& c, const NodeInfo& n, const NodeArg& a, const NodeDecision& d);

  // apply's run (ClusterAdmin::apply, after preflight): the map and its version read as one, the
  // plan (planned_layout: plan_layout with the items each copy reads), shown, asked once, then
  // each step run by `run_step` (the command it names), the map read again before each
  // (step_moved) and at the end. See ClusterAdmin::apply.
  Outcome run_layout(const Layout& layout, const LayoutOptions& lo, long long made_from,
                     const std::function<Outcome(const PlanStep&)>& run_step);

private:
  bool stopped_ = false;    // each_node stopped short: the command shows no table
  bool last_blank_ = false; // the last line said left an empty line (apply's steps are one empty line apart)

  // The node a command is changing, and the command that carries its job on from wherever the
  // node is: said when the index is lost for good in the middle of the job.
  struct Job {
    // cppcheck-suppress unusedStructMember
    Endpoint node;
    // cppcheck-suppress unusedStructMember
    std::string again;
    // cppcheck-suppress unusedStructMember
    std::string if_taken; // the way on instead when the request in doubt was taken ("" = the same)
  };
  std::optional<Job> job_;
  std::optional<NodeInfo> job_seen_; // the node as the index last listed it
  // A wait's last look at the node (its role and state) as where it was last seen.
  void seen_in_wait(const Endpoint& ep, const ConstructionProgress& p);
  std::string in_doubt_;             // a changing request whose answer never came, while its fate is unknown
  void working_on(const Endpoint& node, const std::string& again, const std::string& if_taken = std::string());
  // Every line said names the index in the commands it advises (with_index_option).
  static OperationIO advising(OperationIO io, const Endpoint& index);

  // The node as the index makes it on a change it has taken (src/lib/cluster.cc set_node_role,
  // set_node_state), for a message if the index is lost before the map is read again.
  void expect_seen(const Endpoint& ep, const std::string& role, const std::string& state, int part, int bal);
  std::string lost_index_text(const std::string& why) const;
  std::string lost_index_text_plain(const std::string& why) const;

  // Sends a changing request to the index through `send`. When the index does not answer it (a
  // flarei killed or restarted meanwhile), nobody knows whether it took the change: its map is
  // read again (riding out the index, see cluster()), and the change counts as made when
  // `applied` says so of the map; else it is sent again, until opt.timeout_ms. Without `applied`,
  // the NetworkError is thrown with where the job was left.
  template <typename Send>
  std::string send_to_index(const std::string& request, Send send, const std::function<bool(const Cluster&)>& applied);

  // A change is done when the nodes route by it, not when the index answers OK. After an "OK",
  // waits (up to opt.timeout_ms) until every node that is not down in the index's map, and that
  // answered preflight(), shows a node_map_version at least the index's new one. Returns "OK",
  // or a sentence saying which nodes have not taken the change (their version, or why they did
  // not answer); any other status (and every status in a dry run) is returned as it is. Ctrl-C
  // while it waits returns kInterruptedTaken: the index has taken the change.
  std::string in_effect(const std::string& status);

  // The status of a change Ctrl-C stopped: "interrupted" (the index has not taken it: nothing was
  // changed by it), or kInterruptedTaken (the index took it, and the nodes were still taking the
  // new map: it is made).
  static constexpr const char* kInterruptedTaken = "interrupted after the index took the change";
  static bool interrupted_status(const std::string& st) { return st == "interrupted" || st == kInterruptedTaken; }
  // Says where `ep` is and what the interrupted change `request` did. `again`: the command that
  // does the job when the index did not take it; `finish`: the one that finishes it when it did
  // ("" when nothing is left but for the nodes to take the index's new map).
  Outcome interrupted_change(const Endpoint& ep, const std::string& st, const std::string& request, const std::string& again,
                             const std::string& finish);
  // Every read a change command makes beside its index client: Ctrl-C stops it, the trace (--debug) shows it.
  GatherHooks hooks() const { return GatherHooks{io_.interrupted, index_.trace()}; }

  // opt.force (--force), or an earlier "a" (yes to all) at a reconstruct prompt, answers every question.
  // A dry run never asks: it shows every request the whole plan would send.
  bool ask_yes(const std::string& prompt);
  // A note on what is going on: part of the plan in a dry run (said), else beside the output (warn).
  void note(const std::string& s);
  static std::string trim_newline(std::string s);

  // Sends a state-changing request, or with --dry-run says what it would have sent.
  template <typename Send>
  std::string change(const std::string& request, Send send, const std::function<bool(const Cluster&)>& applied = nullptr);
  template <typename Send> std::string change_at(const Endpoint& to, const std::string& request, Send send);

  // A question answered no. Not said when the answer was Ctrl-C: the interruption's own line
  // ("interrupted: nothing was changed.") is then the one true message.
  void declined(const std::string& key, const NodeInfo& n, const std::string& how);

  // Before a proxy is made master or slave: flush_all empties it first. A proxy holding items
  // may hold the only copy of a partition (an index that lost its map re-registers the nodes as
  // proxies with their data: seen on a real flare 1.3.4, where `master --force` then emptied the
  // node the others still routed partition 0 to). Refused, naming the count, unless
  // discard_items; otherwise said in the plan and returned as the prompt's words ("" when the
  // node is empty or nothing is flushed). std::nullopt: refused (said).
  std::optional<std::string> flush_plan(const NodeInfo& n, const std::string& discard_again);

  // `node role` until the index accepts it (set_role_with_retry), riding out an index that does
  // not answer: the role counts as given once the map shows the node in it.
  std::string send_role(const Endpoint& ep, const std::string& role, int bal, int part);

  // send_role, and once the index took it the node is `ROLE prepare` (cluster::set_node_role; a
  // master of partition 0 is active at once): from there the way on is `again`, the command
  // that waits for its copy.
  std::string given_role(const Endpoint& ep, const std::string& role, int bal, int part, const std::string& again);

  std::string flush(const Endpoint& ep);

  Outcome interrupted_at(const Endpoint& ep, const std::string& resume);
  // The way on may depend on where the node is by now (a copy that ended meanwhile): `resume` is
  // given the node as the index lists it (nullptr when unknown).
  Outcome interrupted_at(const Endpoint& ep, const std::function<std::string(const NodeInfo*)>& resume);

  Outcome construct_master(const NodeArg& a, const NodeInfo& before);

  // `flare-admin slave|master ...` with --discard-items: the command again for a node whose copy was
  // cut short (a proxy holding part of a copy is refused without it; see flush_plan).
  static std::string with_discard(const std::string& cmd);

  // The command that carries a new partition's master on to what `master` was asked (run again,
  // it waits for the copy, activates with --activate (opt.activate), sets the balance).
  std::string master_again(const NodeArg& a) const;

  // Waits for a new partition's master to be ready, then (opt.activate) activates it and gives it
  // the balance asked. Used by a first run and by a run again after an interruption.
  Outcome finish_master(const NodeArg& a);

  // Where a stopped master construction leaves the node, and the way out (stderr, exit 1).
  Outcome master_stopped(const ConstructionStopped& e, const NodeArg& a);

  Outcome construct_slave(const Endpoint& ep, int part, int bal, const std::string& started, bool clean,
                          const std::string& again, bool rebuild);

  // Waits for a slave to be active, then gives it balance `bal` (after asking; a negative `bal`:
  // not known, the node is left at its balance and the command to give one is said). `again`: the
  // command that carries the job on from wherever the node is; `rebuild`: the node's own copy was
  // flushed for this (reconstruct), so a stop leaves its partition a copy short.
  Outcome finish_slave(const Endpoint& ep, int part, int bal, const std::string& again, bool rebuild);

  // A slave of a partition without a master that is not down (the index failed the master over
  // onto nothing, or it is down and preserved): refused (stderr, exit 1), since giving the slave a
  // balance or waiting for its copy serves nothing until the partition has a master again.
  // Returns nothing when the partition has one.
  std::optional<Outcome> masterless_slave(const Cluster& c, const Endpoint& ep, int part, const std::string& again);

  // Where a stopped slave construction leaves the node, and the one command that finishes the job
  // (stderr, exit 1). A node that fell back to proxy while its partition's master does not answer:
  // the master died, the copy with it.
  Outcome slave_stopped(const ConstructionStopped& e, const Endpoint& ep, int part, const std::optional<Endpoint>& source,
                        const std::string& again_asked, bool rebuild);

  // Gives a master or slave balance `bal` (after asking), as `balance` does. The request is sent
  // again if the index does not answer (a change of balance may be repeated), for up to opt.timeout_ms.
  Outcome give_balance(const NodeInfo& n, int bal);

  // `master` run again on a node that is already this partition's master (an earlier run was
  // interrupted, or its tool killed): waits for the copy, activates (opt.activate), sets the balance
  // asked; exits 1 naming the way out when the node cannot get there. Never "done" short of it.
  Outcome resume_master(const NodeArg& a, const NodeInfo& n);

  // `slave` run again on a node that is already a slave of that partition: waits for its copy,
  // then gives it the balance asked (after asking), as the first run would have.
  Outcome resume_slave(const NodeInfo& n, int bal, const std::string& again);

  bool answers_ping(const Endpoint& ep);

  Outcome reconstruct_one(const NodeInfo& n);

  // ---- before and around a failover (`down` or `reconstruct` of an active master) ----

  // The slaves the index may promote when `m` goes down: its partition's active slaves with
  // the highest balance (flarei 1.3.4's down_node takes the active slave of the highest
  // balance, the first of them on a tie; the order of a tie is the index's own).
  static std::vector<const NodeInfo*> active_slaves(const Cluster& c, const NodeInfo& m);
  static std::vector<const NodeInfo*> takeover_candidates(const Cluster& c, const NodeInfo& m);

  static std::string lag_text(const SlaveLag& l);

  // The candidates' lag as `m` shows it; nullopt (and a warning) when `m` does not answer.
  std::optional<std::vector<SlaveLag>> read_lags(const Cluster& c, const NodeInfo& m);

  std::set<std::string> said_; // notes said once, though a check runs again after the question

  // Why a new master of partition `part` could not copy its keys now: an older partition whose
  // master is not active in the map, or does not answer (the index lists a killed master active
  // until its monitor notices), or nothing. Asks those masters for `stats`, at once.
  std::optional<std::string> copy_source_problem(const Cluster& c, int part);

  // Before the index fails `m` over: the slaves that would take over are asked directly (the
  // index's map may still list a slave whose flared just died: flarei would promote it and the
  // partition would have no working master), and their lag is shown (and in a dry run, what a
  // real run would wait for). Returns a refusal, or nullopt to go on; `lags` gets the lag read.
  std::optional<Outcome> takeover_check(const Cluster& c, const NodeInfo& m, std::optional<std::vector<SlaveLag>>& lags);

  // Waits, up to opt.timeout_ms, until every active slave of `m` has received every write `m` has
  // queued for it (a failover before that loses those writes). Refuses with the
  // figures when they do not, unless opt.unsafe (--unsafe). Nothing to do in a dry run, or when the lag is
  // unknown (`m` not answering).
  std::optional<Outcome> drain_check(const Cluster& c, const NodeInfo& m, const std::optional<std::vector<SlaveLag>>& first);

  // Both checks, for reconstruct (which asks its own question before).
  std::optional<Outcome> failover_checks(const Cluster& c, const NodeInfo& m);

  // `node state down` of an active master, and what came of it. flarei answers only once the
  // promoted slave has taken the new map (cluster::down_node syncs it first): a slow or stopped
  // new master makes that answer late, though the failover is done. When the answer does not
  // come, the map says whether the change was made. Reports the partition's new master.
  std::string down_master(const NodeInfo& m);

  IndexClient& index_;
  OperationOptions opt_;
  OperationIO io_;
  bool yes_to_all_ = false;
  bool preflight_done_ = false;
  std::vector<std::string> watched_; // nodes that answered preflight(): in_effect() waits for them
  BalanceRecord balances_;           // the balance a slave construction is to give (a re-run finds it)

  // ---- a dry run: the nodes as the real run would have left them ----
  // A dry run changes nothing, so its later checks would read the map as it was: `part -n` of a
  // new partition 0 and 1 refused partition 1 ("cannot be made now") where the real run builds
  // both. The commands read the map through as_planned(), which lays what the dry run would have
  // made over it.
  std::map<std::string, NodeInfo> planned_;
  void planned_as(NodeInfo n, const std::string& role, const std::string& state, int part, int bal);
  Cluster as_planned(Cluster c) const;

  // ---- apply: one step of a plan, through the command it names ----
  LayoutPlan planned_layout(const Cluster& c, const Layout& layout, const LayoutOptions& lo);
  // Why the step's node is no longer where the plan left it ("" if it is), from the map now.
  std::string step_moved(const PlanStep& s);

  // ---- the balance a slave construction is to give, kept for a run cut short ----
  void keep_balance(const Endpoint& ep, int part, int bal);
  void forget_balance(const Endpoint& ep);
  // "BALANCE:PARTITION" for the command that makes `ep` a slave again: the balance a run that
  // built it was to give (BALANCE when none is kept), the partition known or kept.
  std::string kept_balance_text(const Endpoint& ep, int part) const;
};

// The cluster-changing subcommands of flare-admin, with 0.7.3's request sequences, prompts and
// messages, its refusals made strict (a refusal is a failure, opt.force never skips a check),
// and every question's "no" leaving the node in a state that is said out loud. A facade: each
// command is its planner (decide_*, plan_part, plan_layout: pure, unit-tested) run by the one
// executor (ChangeExecutor: the map read again per node, the checks that need the network, the
// question, the requests, the waits, the report).
// Ctrl-C: set io.interrupted (a flag your SIGINT handler sets) and the cancellation rule holds
// (guard_changes, installed by the constructor): a command then returns Outcome::interrupted once
// a change to the node it works on was sent (what it said names where the node is and the way
// on), or throws Interrupted (before the first change, or between nodes);
// interruption_text(*index.change_log(), e.what(), index.endpoint()) then says what was sent, if
// anything. Throws NetworkError when the index is gone for longer than opt.timeout_ms.
class ClusterAdmin {
public:
  ClusterAdmin(IndexClient& index, OperationOptions opt, OperationIO io) : x_(index, std::move(opt), std::move(io)) {}

  // Proxies become masters of new partitions (args host:port:balance:partition).
  Outcome master(std::vector<NodeArg> args);

  // Proxies become slaves of existing partitions (host:port:balance[:partition], partition 0 by default).
  Outcome slave(const std::vector<NodeArg>& args);

  // Changes balances (host:port:balance).
  Outcome balance(const std::vector<NodeArg>& args);

  // Sets nodes down (a master's partition fails over to its best active slave).
  Outcome down(const std::vector<NodeArg>& args);

  // Sets nodes active (a `ready` master, or a down node that is running again). A node still
  // copying (prepare) is waited for first (decide_activate): a master is then activated; a slave
  // becomes active by itself when its copy is done.
  Outcome activate(const std::vector<NodeArg>& args);

  // Removes down proxies from the node map; shows the whole map after.
  Outcome remove(const std::vector<NodeArg>& args);

  // Rebuilds nodes from their partition: down, flush, back as a slave, wait, restore balance.
  Outcome reconstruct(const std::vector<NodeArg>& args);

  // Builds several partitions at once (plan_part): the first node named for each partition
  // becomes its master (and is activated), the others its slaves.
  Outcome part(const std::vector<NodeArg>& args);

  // flare-admin apply: takes the cluster to `layout`. It reads the map, plans (plan_layout: the
  // same plan a dry run prints, there with each step's requests), shows the plan with the items
  // each copy reads, asks once (a dry run stops there), then runs each step through the command
  // it names, with that command's own checks, waits and advice, its questions answered by the one
  // yes. Before each step the map is read again; a step whose node is no longer where the plan
  // left it stops the run (nothing of it sent). A run cut short (a failure, Ctrl-C, the tool
  // killed) is finished by running apply again: it plans from where the cluster is. `made_from`
  // (>= 0): the node_map_version a saved plan was made from; the run is refused, nothing sent,
  // when the index's differs. Returns ok once the map matches the layout (read again at the end),
  // declined at a no, failed on a refusal or a step that failed; throws NetworkError as the
  // commands do.
  Outcome apply(const Layout& layout, const LayoutOptions& lo = {}, long long made_from = -1);

  // Before the first change: the index must be a flarei, and no node may hold a newer map than
  // the index (ChangeExecutor::preflight). Every command runs it first.
  std::optional<Outcome> preflight() { return x_.preflight(); }

private:
  ChangeExecutor x_;

  // One step of apply's plan, through the command it names.
  Outcome run_step(const PlanStep& s);
};

// ---- 7b. Data: dump, restore, verify ----------------------------------------------------

// `--bwlimit` values in flare-tools 0.7.3's units, so existing scripts keep their meaning:
// a number of BITS per second, `k`/`M`/`G` multiply by 1024, a trailing `B` means bytes.
// Returns bytes per second (0 = unlimited), or nullopt for anything else.
inline std::optional<unsigned long long> parse_bandwidth(std::string_view s);

// Keeps the average rate of a transfer at `bytes_per_second` since its start: after each
// chunk, sleep until the time the bytes so far are due. Accurate over the whole transfer,
// and no sleep at all when the link is slower than the limit.
class RateLimiter {
public:
  explicit RateLimiter(unsigned long long bytes_per_second = 0, CancelFn cancel = nullptr);
  // Sleeps (in slices, so a cancel is seen) until `bytes` more are due. Throws Interrupted.
  void consume(size_t bytes);
  // The most to hand over at once so that one sleep stays short (a fifth of a second's worth).
  size_t chunk(size_t most) const;
  unsigned long long rate() const { return rate_; }

private:
  unsigned long long rate_;
  CancelFn cancel_;
  unsigned long long total_ = 0;
  Clock::time_point start_{};
};

// A buffered writer to a file descriptor (1 MiB buffer): one write(2) per megabyte.
class FdWriter {
public:
  explicit FdWriter(int fd, std::string name) : fd_(fd), name_(std::move(name)) { buf_.reserve(kSize); }
  ~FdWriter();
  void write(std::string_view s);
  void flush();
  unsigned long long written() const { return written_ + buf_.size(); }

private:
  static constexpr size_t kSize = 1 << 20;
  void write_all(std::string_view s);
  int fd_;
  std::string name_;
  std::string buf_;
  unsigned long long written_ = 0;
};

// A file written whole or not at all, safe in a folder other users can write to (a nightly dump
// run as root into /tmp), with two writers to one path kept apart.
//  - The bytes go to a new temporary beside the path, ".NAME.flare-tmp-PID.XXXXXX", made by mkstemp: a unique
//    name created exclusively, so no link planted at any name is followed and no other writer's
//    file is truncated. It is created with mode 0600 whatever the umask.
//  - commit() sets `mode` (exactly: the umask does not apply), fsyncs, and renames it over the
//    path. A symbolic link at the path is replaced, never written through. Of two writers to one
//    path, the later commit wins; each leaves a complete file.
//  - Destroyed uncommitted (an error, an exception, Interrupted), it removes its temporary only.
//  - A path that is a character device or a FIFO (/dev/null, a pipe) is written in place, since
//    renaming over it would replace the device; through a symbolic link only when the link is
//    owned by root or by us (/dev/stdout). A folder, a block device or a socket is refused.
// Modes: kPrivate (0600) for what holds cluster data (dumps, key lists, flare.xml), kShared
// (0644) for what a monitoring agent reads. Throws Error (naming the path and the reason).
class OutputFile {
public:
  static constexpr unsigned kPrivate = 0600;
  static constexpr unsigned kShared = 0644;

  explicit OutputFile(std::string path, unsigned mode = kPrivate);
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // The temporary's path; "" when the path is written in place (a device or a FIFO).
  const std::string& temp_path() const { return temp_; }
  bool in_place() const { return temp_.empty(); }
  bool committed() const { return committed_; }

  // Makes the file complete at its path (see above). Throws Error; the temporary is then
  // removed by the destructor and the path keeps what it had.
  void commit();

private:
  std::string display_name() const { return temp_.empty() ? path_ : temp_; }
  void open_in_place(bool through_link);

  std::string path_;
  std::string temp_;
  unsigned mode_;
  int fd_ = -1;
  bool committed_ = false;
};

// A temporary of this library's left in a folder by a process that no longer runs (kill -9, a
// crash, a power cut): named ".NAME.flare-tmp-PID.XXXXXX", PID gone. It holds a part of what
// was being written (private cluster data, often large); nothing removes it but its owner.
struct LeftoverTemporary {
  std::string path;
  unsigned long long bytes = 0;
  long pid = 0; // the process that wrote it
};

// The leftover temporaries in `dir`, by name. Only names of our form whose writer's process is
// gone (kill(pid, 0) says ESRCH): a temporary of a write still going on is never named. A
// process id can be reused, so a leftover can be missed, never misnamed as one of a live writer.
// Regular files only. Throws nothing: a folder that cannot be read has none to name.
inline std::vector<LeftoverTemporary> leftover_temporaries(const std::string& dir);

// Writes `data` to `path` through an OutputFile: the old file or the whole new one, never a
// part. `mode` as OutputFile's (permission bits, exact). Throws Error.
inline void write_file_atomically(const std::string& path, std::string_view data, unsigned mode = OutputFile::kPrivate);

// One item as it travels from a dump to a restore.
struct Item {
  ItemHeader header;
  std::string data;
};

enum class DataFormat { flare, csv };

inline std::optional<DataFormat> parse_data_format(std::string_view s);

// The CSV header line: RFC 4180 rows of key, flag, len, version, expire, data, encoding.
// `encoding` is empty for text data and `base64` for data that is not valid UTF-8 text.
inline const char* csv_header();

// Writes items in one of the two formats. The flare format is the node's own byte stream
// (`VALUE key flags length version expire`, the data, CRLF ...) closed by `END`: a file
// without its END is known to be incomplete.
class ItemWriter {
public:
  ItemWriter(FdWriter& out, DataFormat f);
  void write(const ItemHeader& h, std::string_view data);
  // An item in pieces: begin() with its header (`length` is the size of the data to come), the
  // data in any number of chunks, then end(). The flare format streams the data straight
  // through; a CSV cell must be seen whole (text or base64), so it is held, up to
  // FLARE_TOOLS_MAX_HELD_VALUE_BYTES.
  void begin(const ItemHeader& h);
  void data(std::string_view chunk);
  void end();
  void finish();

private:
  FdWriter& out_;
  DataFormat format_;
  std::string line_;
  ItemHeader header_;
  std::string held_;
};

// Reads items back from a file in either format. Every malformed record is an error that
// names its byte offset; a flare-format file must end with END (else it was cut short).
class ItemReader {
public:
  ItemReader(int fd, const std::string& name, DataFormat f);

  // The next record's header, or false at the end of the input. Its data must then be taken
  // with read_data() (or is skipped by the next call).
  bool next_header(ItemHeader& h);

  // The data of the record whose header next_header() gave, in chunks of at most the read
  // buffer: a value of any size passes through without being held.
  template <typename Sink> void read_data(Sink&& sink);

  // The next item whole, or false at the end of the input. With `with_data` false the data is
  // checked for framing but not kept (a first pass over a file before restoring it).
  bool next(Item& item, bool with_data = true);

  // A pipe may stall (ssh, a slow decompressor): every wait for input then also checks `c`.
  void set_cancel(CancelFn c) { in_.set_cancel(std::move(c)); }

  // Where the last record read starts, and where the next one will (bytes of the input).
  unsigned long long offset() const { return record_offset_; }
  unsigned long long position() const { return in_.offset(); }

  // Reads past the records before byte `target`, which must be where a record starts (or the
  // end of the records). For a restore resumed where an earlier one stopped.
  void skip_to(unsigned long long target);

private:
  [[noreturn]] void bad(const std::string& why);

  bool next_flare_header(ItemHeader& h);

  // One RFC 4180 record; quoted cells may hold commas, quotes and line breaks. A record has
  // seven cells, each bounded (a key, numbers, the data): a broken file cannot grow one without end.
  bool next_csv(ItemHeader& h);

  DataFormat format_;
  std::string name_;
  detail::Socket in_;
  unsigned long long record_offset_ = 0;
  std::vector<std::string> cells_;
  std::string csv_data_;
  size_t length_ = 0;
  std::string key_;
  bool data_pending_ = false, ended_ = false;
};

// What to ask a node for in a dump: `dump WAIT PARTITION PARTITION_SIZE BWLIMIT`.
struct DumpRange {
  int partition = -1;      // -1: every item the node holds
  int partition_size = 0;  // number of partitions the filter assumes
  unsigned long long bwlimit = 0; // bytes per second, 0 = unlimited
};

// Sent right behind every dump and dump_key, whose streams end at a line END: its answer
// (VERSION ...) is known, so the line after END tells whether that END closed the stream (the
// answer) or was a line inside a key holding CR LF, which a binary client may store and flared
// writes raw (more records). Fact: tests/data/flare-protocol.md, "Hard states".
constexpr const char* kStreamProbe = "version";

inline std::string dump_request(const DumpRange& r);

// A record of a dump that flared wrote but cannot frame: its key holds a space or CR LF (only
// the binary protocol stores such keys). `offset` and `size` are bytes of the node's dump
// stream (from its VALUE line through its data's CR LF); `key` is the key as the line shows
// it (the bytes between "VALUE " and the four numbers, lines joined by CR LF); `length` its
// value's size.
struct UnframedRecord {
  unsigned long long offset = 0, size = 0;
  std::string key;
  size_t length = 0;
};

// Streams a node's items (`dump`) as they arrive: `on_header(const ItemHeader&)` for each item,
// `on_data(std::string_view)` for each piece of its data (a value is never held whole), then
// `on_end()`. Returns the number of items. The deadline is idle time (no byte for the client's
// timeout), so a long dump or a large value on a slow link does not fail. Lines end at CR LF
// only, and the END must be followed by the answer to kStreamProbe (else a key holding CR LF
// put it there). Throws if the stream is cut or malformed, after the callbacks have seen the
// complete items before the fault.
// With `on_unframed`, a record whose VALUE line has the wrong shape (a key holding a space or
// CR LF) is skipped and handed to it instead: it starts at a line "VALUE ..." that does not
// parse and ends at the first line that ends with the four numbers, followed by that many
// bytes and CR LF, then by a VALUE line or END. Anything else (no such line within
// FLARE_TOOLS_MAX_LINE_BYTES, data not ended by CR LF) still throws: a wrong record is never
// handed on.
template <typename OnHeader, typename OnData, typename OnEnd>
inline unsigned long long dump_node_streamed(NodeClient& node, const DumpRange& range, OnHeader&& on_header,
                                             OnData&& on_data, OnEnd&& on_end, const CancelFn& cancel = nullptr,
                                             const std::function<void(const UnframedRecord&)>& on_unframed = nullptr);

// The same, one whole item at a time (for callers that want the data in one piece).
template <typename OnItem>
inline unsigned long long dump_node(NodeClient& node, const DumpRange& range, OnItem&& on_item);

// Streams a node's keys (`dump_key [PARTITION PARTITION_SIZE]`); idle deadline as dump_node.
// Lines end at CR LF only (a key may hold a lone CR or LF). Throws ServerError on a refusal,
// ProtocolError on a line that is not `KEY ...` or on an END not followed by the answer to
// kStreamProbe (a key holding CR LF, stored through the binary protocol, put it there: the
// listing is not complete); the node is named, and what was read.
template <typename OnKey>
inline unsigned long long dump_keys(NodeClient& node, int partition, int partition_size, OnKey&& on_key);

// One node of a dump: where, and which of its items.
struct DumpTarget {
  Endpoint endpoint;
  DumpRange range;
};

// How a dump runs and reports. All optional.
struct DumpOptions {
  int timeout_ms = FLARE_TOOLS_DEFAULT_TIMEOUT_MS; // idle deadline of each node's stream
  TraceFn trace;
  CancelFn cancel;                                                        // stop (Interrupted) once true
  std::function<void(const DumpTarget&)> on_node_start;                   // before each node
  std::function<void(const DumpTarget&, unsigned long long items)> on_node_done; // after each node
  std::function<void(unsigned long long items)> on_item; // after each item, with the count so far
  std::function<void(size_t target, unsigned long long items)> on_node_item; // after each item: its target's count
  // dump_keys_all only: when set, a node that fails ends alone (reported here) and the others
  // go on; otherwise the first failure throws.
  std::function<void(const DumpTarget&, const Error&)> on_node_error;
  // dump_items only: when set, records the server cannot frame are skipped and named here
  // (see dump_node_streamed); the nodes are then read one after another.
  std::function<void(const DumpTarget&, const UnframedRecord&)> on_unframed;
  // dump_keys_all only: when set, a key the listing cannot frame (its lines after the first,
  // CR LF between them, are neither `KEY ...` nor the END the probe's answer follows) is
  // handed here with those lines joined by CR LF, not to on_key. A line of such a key that
  // starts with "KEY " cannot be told from the next key.
  std::function<void(const DumpTarget&, const std::string& key)> on_unframed_key;
};

// Dumps the targets' items into `out` (which the caller finishes), every node at once, each
// record whole in the output: while one node's record is incomplete in its buffer, that node
// waits for the rest; a value too large to buffer streams straight through while the others
// wait in their sockets. --bwlimit (each target's range.bwlimit) limits the total. Returns the
// number of items. Throws on the first failure: the caller must then discard what was
// written (a partial dump must never look like a complete one).
inline unsigned long long dump_items(const std::vector<DumpTarget>& targets, ItemWriter& out, const DumpOptions& opt = {});

// The keys of every target at once (`dump_key`), from one poll loop; `on_key(i, key)` is told
// which target each key came from. Returns the number of keys of each target. Framing and
// errors as dump_keys; with opt.on_unframed_key a key holding CR LF is skipped and named.
template <typename OnKey>
inline std::vector<unsigned long long> dump_keys_all(const std::vector<DumpTarget>& targets, OnKey&& on_key,
                                                     const DumpOptions& opt = {});

// The outcome of a restore: how far it got, and which items failed.
struct RestoreReport {
  unsigned long long sent = 0;           // `set` requests sent
  unsigned long long stored = 0;         // answered STORED
  unsigned long long failed = 0;         // answered otherwise, or refused before sending (named below)
  unsigned long long skipped = 0;        // left out by the caller's filter
  unsigned long long expired = 0;        // already expired when read (expired_at): not sent, not counted as restored
  unsigned long long unacknowledged = 0; // sent, and no answer when the restore stopped: fate unknown
  // Where the first record whose fate is unknown starts (not sent, or sent and unanswered):
  // a restore resumed there (--resume-from) re-sends only what may be missing. At the end of
  // a complete restore, the end of the records.
  unsigned long long resume_offset = 0;
  std::vector<std::string> first_failures; // "key: reply", the first ten
  bool complete = false;                   // every record was read and every reply counted
  bool interrupted = false;                // stopped by the cancel check
  std::string stopped_by;                  // why it stopped early (empty when complete)
  // Nodes whose acknowledgements do not count: each acknowledged items and then failed (its
  // connection was lost and it does not answer, or the index shows its partition failed over).
  // A master answers STORED before its slaves have the item, and the slave flarei promotes in
  // its place holds only what reached it (tests/data/flare-protocol.md, "A master killed
  // mid-write"). One line each ("HOST:PORT acknowledged N items, then ..."). When any, the
  // restore is not complete and resume_offset is run_start.
  std::vector<std::string> doubts;
  unsigned long long run_start = 0; // where this run started reading (its --resume-from)

  unsigned long long acknowledged() const { return stored + failed; }
};

// Writes items with `set`, pipelined: requests keep flowing while replies are counted, with at
// most `window_bytes` of requests unanswered, so a restore runs at the server's pace instead
// of one round trip per key. Every reply is matched to its key; nothing is assumed stored.
//
// The costs are kept off the node's host: requests go out in writes of up to 1 MiB; replies
// are read only when the socket says they are there, in one large read, and the socket's
// low-water mark (SO_RCVLOWAT) lets a slow server's trickle of replies pile up into one
// wake-up instead of one per reply.
class PipelinedWriter {
public:
  PipelinedWriter(NodeClient& node, unsigned long long bwlimit, size_t window_bytes = 4 << 20);
  // One of several writers whose total rate `shared` keeps (it must outlive the writer).
  PipelinedWriter(NodeClient& node, RateLimiter& shared, size_t window_bytes);
  PipelinedWriter(const PipelinedWriter&) = delete;
  PipelinedWriter& operator=(const PipelinedWriter&) = delete;
  ~PipelinedWriter();

  // Queues `set` for one item held whole. `offset` is where its record starts in the input.
  void set(const ItemHeader& h, std::string_view data, unsigned long long offset = 0);

  // Queues `set` for one item whose `h.length` bytes of data `feed(sink)` hands to `sink` in
  // chunks. A large value goes out as it comes: at most about 1 MiB of it is held here.
  template <typename Feed> void set_streamed(const ItemHeader& h, unsigned long long offset, Feed&& feed);

  // An item refused before sending (so that it is named among the failures).
  void fail_locally(const std::string& key, const std::string& why) { failure(key, why); }

  // Sends the rest and waits for every reply to a whole request.
  RestoreReport finish();

  const RestoreReport& report() const { return report_; }
  // The requests written whole to the socket and not answered: their fate is unknown (a request
  // still queued here, or written in part, is known not to be stored).
  unsigned long long unacknowledged() const;
  // The offset of the first request without an answer, or `otherwise` when all are answered.
  unsigned long long first_unanswered_offset(unsigned long long otherwise) const;
  const Endpoint& endpoint() const { return node_.endpoint(); }
  // Whether its connection failed (closed, reset, timed out, or closed by us after a reply
  // that left the stream unusable): the node may have died with what it acknowledged.
  bool stopped() const { return stopped_; }
  bool idle() const { return in_flight_.empty() && (sent_off_ == pending_.size() || broken_); }

  // For several writers driven from one poll loop (restore_items_routed): `wait` is called
  // instead of this writer's own wait whenever it must wait (window full, requests piled up).
  // It must serve every writer once, through prepare_wait(), serve() and check_idle().
  void set_wait(std::function<void()> wait) { wait_ = std::move(wait); }
  // Sends what the socket takes now; returns the poll events to wait for (0: nothing to wait for).
  short prepare_wait();
  int fd() const { return node_.socket().fd(); }
  // After a poll: `rev` its revents for this socket, 0 when the poll timed out (replies below
  // the low-water mark are then read too).
  void serve(short rev);
  Clock::time_point idle_deadline() const { return last_progress_ + std::chrono::milliseconds(node_.timeout_ms()); }
  // Throws NetworkError when nothing moved either way for the client's timeout.
  void check_idle();

private:
  struct Request {
    std::string key;
    size_t bytes;
    unsigned long long offset; // cppcheck-suppress unusedStructMember ; read by first_unanswered_offset
    unsigned long long end;    // queued_ after it: written whole once sent_total_ reaches it
  };
  static constexpr size_t kSendBytes = 1 << 20; // one write(2) of requests at most
  static constexpr size_t kReadBytes = 1 << 18; // one read(2) of replies at most
  static constexpr int kLowWaterBytes = 32 << 10;

  void failure(const std::string& key, std::string_view why);

  static std::string shown_key(const std::string& key);

  // Sends what the socket takes now, without waiting (and at most the bwlimit's pace).
  void send_some();

  // Replies arrive at least 7 bytes each ("ERROR\r\n"): wait for as many as are owed, up to
  // the low-water mark, so that poll wakes once per batch of replies.
  // The bytes of a reply already read (rend_, a line not yet whole) are not owed any more: with
  // them counted, the mark could sit above what is still to come, and only the quarter-second
  // check would read the last replies.
  void tune_low_water();

  // One wait for the socket: send when it takes more, read the replies that are there. Fails
  // when nothing moved either way for the client's timeout.
  void pump();

  // The replies already in the socket, if any, without waiting.
  void read_available();

  // When a send fails (the node died: EPIPE, ECONNRESET), the replies it sent before are still
  // in the socket's receive queue, and each one is an acknowledgement that counts: a master
  // killed after its 3,000th answer once made the next send fail before they were read, and
  // the restore reported 0 acknowledged. Reads them (bounded: what is queued now); never throws.
  void read_what_is_left();

  // One read of everything there (up to kReadBytes); every complete line answers the oldest
  // request still waiting.
  void read_replies();

  void answer(std::string_view line);

  NodeClient& node_;
  RateLimiter own_limiter_;
  RateLimiter* limiter_;
  std::function<void()> wait_;
  size_t window_;
  std::string pending_;   // requests not yet sent (from sent_off_ on)
  size_t sent_off_ = 0;
  unsigned long long queued_ = 0, sent_total_ = 0; // bytes of the request stream
  size_t unanswered_bytes_ = 0;
  std::deque<Request> in_flight_;
  std::vector<char> replies_;
  size_t rend_ = 0;
  int low_water_ = 1;
  bool broken_ = false, stopped_ = false;
  Clock::time_point last_progress_;
  RestoreReport report_;
};

// How a restore runs. All optional.
struct RestoreOptions {
  unsigned long long bwlimit = 0;     // bytes per second, 0 = unlimited
  size_t window_bytes = 4 << 20;      // most bytes of requests sent and not yet answered
  unsigned long long resume_from = 0; // start at the record at this byte of the input
  std::function<bool(const std::string& key)> select;  // false: leave the item out
  std::function<void(const std::string& key)> on_key;  // each key sent (--print-keys)
  CancelFn cancel;                                     // stop (report.interrupted) once true
  // restore_items_routed: each master's connection (deadline in milliseconds, trace).
  int timeout_ms = FLARE_TOOLS_DEFAULT_TIMEOUT_MS;
  TraceFn trace;
  // After the run, whether the nodes that acknowledged items still serve them (see
  // RestoreReport::doubts): the index to ask for its map then (unset: the nodes are only asked
  // whether they answer), the map as it was when the run started (restore_items: every master
  // in it counts as acknowledging what a node given forwarded to it), and how long each check
  // may take (milliseconds).
  std::optional<Endpoint> index;
  std::optional<Cluster> cluster;
  int check_timeout_ms = 3000;
};

// The partitioning of a cluster as `meta` describes it.
struct Partitioning {
  KeyHashAlgorithm algorithm = KeyHashAlgorithm::simple;
  ModularResolver resolver;
  std::string type = "modular";
};

inline Partitioning partitioning_from_meta(const Meta& m);

// The partitions flare routes keys by: every partition with a master that is active or down (the
// index keeps a down master's partition, even empty: src/lib/cluster.cc), not the ones still
// being built (prepare, ready). Seen on a real flare 1.3.4: with partition 2's master killed,
// writes of its keys failed, so verify must place keys by 3 partitions, not 2. Throws nothing.
inline int routing_partition_count(const Cluster& c);

// Partitions that serve data: those whose master is active (a new partition's master that is
// still preparing or ready holds copies, not the keys' home). Throws nothing.
inline int serving_partition_count(const Cluster& c);

// Why a dump of `node` would not be a whole copy of its partition, or nothing when it would be
// one: an active master, or an active slave (replication keeps it whole). Anything else is
// refused by `dump` and `dumpkey` unless the operator asks for a partial copy, and the reason
// names the node to dump instead. Seen on a real flare 1.3.4 (index + 4 nodes): a proxy's dump
// held only END; a slave stopped until the index set it down (it comes back as a proxy with
// its old items) held 25,000 of its master's 25,050; a slave in prepare, 1,558 of 25,050 while
// its copy ran. Pure; throws nothing.
// `command` is what the advice names ("dump", "dumpkey").
inline std::optional<std::string> partial_copy_reason(const Cluster& c, const NodeInfo& node, const std::string& command = "dump");

// What a dump or dumpkey reads (dump_targets): every serving partition's master, or the nodes named.
struct DumpSelection {
  bool all = false;                      // every partition's master (else `nodes`)
  std::vector<Endpoint> nodes;           // the nodes named
  std::optional<int> partition;          // only the keys of `partition` ...
  std::optional<int> partition_size;     // ... of `partition_size` partitions (both or neither)
  unsigned long long bwlimit = 0;        // bytes per second, per node (0: none)
  bool partial = false;                  // read a node that is not an active master or slave anyway
  std::string command = "dump";          // the subcommand advice names (dump, dumpkey)
};

struct DumpChoice {
  std::vector<DumpTarget> targets;       // each node once, with the key range it is to give
  std::vector<std::string> notes;        // what to tell the operator (a partition skipped, a partial copy)
};

// The nodes a dump reads and the keys each gives, from the index's map: with `all`, each
// partition's master (the one that is not down after a takeover), a new partition's master in
// prepare or ready skipped (its keys are read from the partitions that still serve them); else
// the nodes named. Each node is limited to its own partition's keys when several partitions
// serve, so the stale copies a partition split leaves on the old master are not read twice (a
// dump of every master_of(p) without that read 45,000 records for 30,000 keys). Throws Error
// (one line) when a partition's only master is down, a node is unknown, or a node named is not
// a whole copy of its partition (partial_copy_reason) and `partial` is not set; the advice names
// `index` (-i) where it names a command.
inline DumpChoice dump_targets(const Cluster& cluster, const DumpSelection& s, const Endpoint& index);

// Where a restore into a cluster sends each item: straight to the master of the partition the
// cluster itself chooses for its key (the index's key hash and partitioning, as verify and
// keycheck compute them, bit for bit as flare 1.3.4).
struct RestoreRouting {
  Partitioning partitioning;
  std::vector<NodeInfo> masters; // the active master of each partition, by partition number
  // The partition of `key` (0 .. masters.size() - 1), or -1 where flared itself would fail.
  int partition_of(std::string_view key) const;
};

// The routing of a restore into `c` (the index's map) with `meta` (its `meta`). Every partition
// from 0 to the highest listed must have exactly one active master: one that is down, in
// `prepare` or `ready` (a partition being built), missing, or two active masters (a change under
// way) would make flared route some keys elsewhere or refuse them. Throws Error naming every
// such partition and what its master is, before anything is sent; Error too for a meta this
// tool cannot compute (partitioning_from_meta).
inline RestoreRouting restore_routing(const Cluster& c, const Meta& meta);

// A node whose acknowledgements a restore counted, for check_acknowledgers.
struct Acknowledger {
  Endpoint node;
  int partition = -1;              // the partition it is master of (-1: not known)
  unsigned long long acknowledged = 0;
  bool connection_failed = false;  // its connection broke
  bool keeps_items = true;         // false: a proxy, which only forwards (never doubted)
  bool forwarded = false;          // a master the node written through forwarded items to (no
                                   // connection of ours: always asked whether it answers)
};

// Whether each node still serves what it acknowledged. `answers`: a `stats` of each node asked
// after the restore (in any order; a node not among them is not judged on it); `now`: the
// index's map now (nullptr: unknown). A node doubted: it does not answer; or the map no longer
// lists it as the active master of its partition. Returns one line per node doubted.
// Fact: tests/data/flare-protocol.md, "A master killed mid-write" (flarei promotes the slave, which
// holds only what was replicated).
inline std::vector<std::string> acknowledgement_doubts(const std::vector<Acknowledger>& nodes,
                                                       const std::vector<StatsResult>& answers, const Cluster* now);

// Restores every item `reader` yields through `node` with pipelined `set`s (the node forwards
// each key of another partition to its master). Never throws for what happens once sending
// started: the report says how far it got (acknowledged, sent but unanswered, where to resume)
// and why it stopped; afterwards the node, and the masters of opt.cluster it forwarded to, are
// checked (RestoreReport::doubts). A bad --resume-from offset, or a node that cannot be
// reached, throws before anything is sent. Keys longer than flared's text protocol takes are
// named as failures and not sent.
inline RestoreReport restore_items(ItemReader& reader, NodeClient& node, const RestoreOptions& opt = {});

// Restores every item `reader` yields straight to the master of its partition (`routing`, from
// restore_routing): one pipelined connection per master, all driven from one poll loop, each at
// its server's pace; opt.bwlimit is their total. Reports as restore_items: resume_offset is the
// first record not known to be stored by every master; afterwards every master that
// acknowledged items is checked (RestoreReport::doubts). Throws before anything is sent when a
// master cannot be reached, or for a bad --resume-from offset.
inline RestoreReport restore_items_routed(ItemReader& reader, const RestoreRouting& routing, const RestoreOptions& opt = {});

// Runs `fn`, naming the index server in the network errors it throws: "cannot connect to index
// server H:P: ..." (an Error, one line). For a call that asks the index only: a data node's
// error would be named as the index's.
template <typename F> auto naming_index(const Endpoint& index, F fn) -> decltype(fn());

// flare-admin restore as one call: `options` (RestoreOptions: bandwidth, where to resume, which
// keys, Ctrl-C, timeouts, --debug), the cluster's `index`, and where the records go.
struct RestoreJob {
  RestoreOptions options;          // its index and cluster are set by run_restore
  Endpoint index;                  // the cluster's index server
  std::optional<Endpoint> through; // write through this node (it forwards each key of another partition to
                                   // its master); none: each key straight to its partition's master
};

// Restores what `reader` yields as `job` says. Through a node: the index is asked (for at most
// options.check_timeout_ms) whether it lists the node; if so, the masters the node forwarded to
// are checked afterwards (RestoreReport::doubts); an index that does not answer or does not list
// it is not used (another cluster's). Routed: the index must be a flarei, and every partition must
// have its one active master (restore_routing). Throws before anything is sent: Error (the index's
// errors named: naming_index; a routing that cannot be made), NotAnIndexError, Interrupted;
// restore_items's errors for a node that cannot be reached. Never throws once sending began.
inline RestoreReport run_restore(ItemReader& reader, const RestoreJob& job);

// What a restore's report means, a line each, for its user (flare-admin prints them on stderr),
// and how it ended: complete (every record answered; `failed` counts the refused), or stopped
// (a failure, or a node doubted afterwards: the line says where to resume), or interrupted.
struct RestoreSummary {
  enum class End { complete, stopped, interrupted };
  End end = End::complete;
  bool failures = false; // some entries were refused (a complete restore ends with a failure status)
  std::vector<std::string> lines;
};
inline RestoreSummary summarize_restore(const RestoreReport& report);

// What one node's key listing showed (verify, and check --keys).
struct KeyPlacement {
  NodeInfo node;
  bool skipped = false;                 // down: not asked
  unsigned long long keys = 0;          // keys listed (unframed ones left out)
  unsigned long long misplaced = 0;     // keys whose partition is not the node's: stale + only_here + unchecked
  unsigned long long stale = 0;         //   also on the master of the partition they belong to: a stale
                                        //   copy, never read (normal once a partition was added)
  unsigned long long only_here = 0;     //   not there: deleted or expired there since (seen on a real
                                        //   flare 1.3.4: a delete reaches the new master only), or lost
                                        //   with its data; then readers miss them, this node holds the copy
  unsigned long long unchecked = 0;     //   not looked up (that master unreadable, or over the bound)
  std::set<int> only_here_partitions;   // the partitions those only-here keys belong to
  std::vector<std::string> examples;    // 10 at most, only-here keys first (printable)
  unsigned long long unframed = 0;      // keys holding CR LF, skipped (with skip_unframed)
  std::string error;                    // why the listing failed ("" when it did not)
  bool framing_error = false;           // ... because the listing could not be framed
};

// verify's logic: every master and slave of a serving partition (0 .. serving_partition_count
// - 1) lists its keys with `dump_key`, all at once (dump_keys_all), and each key's partition is
// computed as flared does (key_hash, then the modular map of `count` partitions). A node down
// in the map is skipped. `opt` gives the deadline, trace, cancel and progress callbacks; its
// on_node_error and on_unframed_key are set here. With skip_unframed a key holding CR LF is
// counted in `unframed` and the listing goes on; without, the listing fails (framing_error).
// A failed node does not stop the others. Results in stats order. Throws Interrupted.
inline std::vector<KeyPlacement> check_key_placement(const Cluster& cluster, const Partitioning& p, int count,
                                                     DumpOptions opt, bool skip_unframed = false);

// ---- 8. Formatting -----------------------------------------------------------------------

// The node table of `list` and of the cluster-changing commands ("%-32s %9s %6s %6s %7s").
inline std::string format_node_table(const std::vector<NodeInfo>& nodes);

inline std::string format_node_json(const std::vector<NodeInfo>& nodes);

// `list --json`: the index (as given), its nodes (format_node_json), the index's
// node_map_version (null when unknown) and the warnings about the nodes' maps (map_version_warning
// and its way out; none when no node holds a newer map).
inline std::string format_list_json(const Endpoint& index, const std::vector<NodeInfo>& nodes, const MapVersions& v);

// 12913 -> "3h", 200000 -> "2d": the largest whole unit, as flare-stats shows uptime.
inline std::string short_duration(long long seconds);

// get_hits / cmd_get in percent, rounded half away from zero; "-" when there were no gets; "?"
// when the node's counters make no sense (negative, or more hits than gets: a rate outside
// 0-100 would be a made-up figure, and one beyond long long's range undefined behaviour).
inline std::string hit_rate_cell(const NodeStats& s);

// Counters of one sample, for the qps columns.
struct QpsSample {
  long long gets = 0, sets = 0;
  Clock::time_point at{};
};

inline std::optional<QpsSample> qps_sample(const StatsResult& r);

// Requests per second between two samples: total, reads, writes. nullopt where it cannot be
// told (no earlier sample, a counter went backwards after a restart, no time passed).
struct QpsRates {
  std::optional<double> total, reads, writes;
};

inline QpsRates qps_between(const std::optional<QpsSample>& prev, const std::optional<QpsSample>& cur);

inline std::string qps_cell(const std::optional<double>& v);

// One row of the flare-stats table, before rendering.
struct StatsRow {
  NodeInfo node;
  const StatsResult* result = nullptr; // nullptr or !ok: the node did not answer
  // A slave's replication lag as its master sees it (gather_slave_lag / lag_of); nullopt for a
  // slave whose master did not answer. Not used for other roles (a master or proxy is behind
  // nobody: 0 when it answered).
  std::optional<SlaveLag> lag;
  QpsRates qps;
  std::optional<long long> index_map_version; // the index's node_map_version: JSON flags a node holding a newer map
};

// flare-stats' rounds, for a program of its own: each sample() is one reading of the cluster
// (read_cluster, with the shown slaves' lag from their masters, in one gather bounded by
// timeout_ms), turned into the table's rows, each with the node's request rates since the
// previous sample() (qps: the first sample has none; sample() twice, `wait` seconds apart, for
// rates in the first table). `filter`: the nodes shown ("HOST:PORT" keys; empty: every node, in
// stats_order()). Throws what read_cluster throws.
class StatsSampler {
public:
  StatsSampler(IndexClient& index, int timeout_ms, std::vector<std::string> filter = {}, GatherHooks hooks = {});

  struct Sample {
    ClusterReading reading;               // rows[i].result points into reading.stats: keep the Sample whole
    std::vector<StatsRow> rows;           // the nodes shown, in order
    std::vector<std::string> lag_errors;  // "MASTER: its slaves' lag is unknown: WHY" (a master whose row says nothing)
    std::vector<std::string> unreachable; // "HOST:PORT: WHY", a node shown that did not answer
  };

  Sample sample();

private:
  IndexClient& index_;
  int timeout_ms_;
  std::vector<std::string> filter_;
  GatherHooks hooks_;
  std::map<std::string, std::optional<QpsSample>> previous_;
};

inline std::vector<std::string> stats_header(bool with_qps);

// The `behind` cell: for a slave, its lag as its master sees it: the seconds since the oldest
// write still waiting at the master for it ("0" when none waits), followed by "s/" and the
// number of writes waiting when there are any ("11s/49998"); "-" when its master did not
// answer. For a master or proxy "0" (behind nobody), "-" when the node did not answer.
inline std::string behind_cell(const StatsRow& row);

inline std::vector<std::string> stats_cells(const StatsRow& row, bool with_qps);

// A table whose columns are as wide as their widest cell; the first `left_columns` data
// columns are left-aligned, the rest right-aligned; header cells are always left-aligned.
// Cells are padded even with a custom delimiter (0.7.3's layout, which scripts rely on).
inline std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                                size_t left_columns, const std::string& delimiter);

inline std::string format_stats_table(const std::vector<StatsRow>& rows, bool with_qps, const std::string& delimiter = " ");

inline std::string format_stats_json(const std::vector<StatsRow>& rows, bool with_qps);

// `flare-admin threads`: "%5s %-32s %-13s %4s %8s", sorted by peer then id (as text).
inline std::vector<ThreadInfo> threads_order(std::vector<ThreadInfo> threads);

inline std::string format_threads_table(const std::vector<ThreadInfo>& threads);

inline std::string format_threads_json(const std::vector<ThreadInfo>& threads);

// The one-line cluster summary of `flare-admin summary`.
struct Summary {
  std::string name; // index host:port
  int partitions = 0, nodes = 0, masters = 0, slaves = 0;
  long long bytes = 0, items = 0;
  int unreachable_masters = 0; // masters whose stats could not be read (their size is missing)
  std::vector<std::string> warnings; // e.g. map_version_warning(); JSON only (the table goes to stderr)
};

// `results` are the masters' stats (any order); nodes that did not answer are counted apart.
inline Summary summarize(const std::string& name, const Cluster& cluster, const std::vector<StatsResult>& results);

inline std::string format_summary(const Summary& s);

inline std::string format_summary_json(const Summary& s);

// One line for a terminal while many nodes are read at once (dump --all, dumpkey --all,
// verify): every node's count while they all fit in `width` columns, else how many nodes are
// done, the total, and the node furthest behind (the one an operator waits for), cut at
// `width` (a line that wraps cannot be redrawn in place). Redrawing on
// every item would cost more than the dump; line_if_due() says when a redraw is worth it.
class StreamsProgress {
public:
  StreamsProgress(std::string verb, std::vector<std::string> names, std::string unit, size_t width = 79);

  void count(size_t i, unsigned long long n);
  void finish(size_t i);

  std::string line() const;

  // The line when `interval_ms` has passed since the last one given (the first is due at once).
  std::optional<std::string> line_if_due(int interval_ms = 200);

private:
  std::string verb_, unit_;
  std::vector<std::string> names_;
  std::vector<unsigned long long> counts_;
  std::vector<bool> done_;
  size_t width_;
  bool shown_ = false;
  Clock::time_point last_{};
};

// ---- 8b. Prometheus text exposition format, version 0.0.4 --------------------------------
//
// `flare-stats --prometheus`: every node's `stats` as metrics for node_exporter's textfile
// collector or a scrape wrapper. Names are flare_*, in base units (seconds, bytes); counters
// end in _total. Per-node series carry node, role, state and partition (as the index sees
// them); cluster-level ones carry index (the index server), so that files of several clusters
// can sit side by side in one textfile directory. Each family is written whole (HELP, TYPE,
// then all its samples), in a fixed order; no timestamps (the textfile collector refuses them).

// The whole exposition for one cluster: `results` are the `stats` of the cluster's nodes (any
// order; a node without a result, or whose result is !ok, is flare_up 0 and has no stats
// samples). `index_name` is the index server's host:port.
inline std::string format_prometheus(const std::string& index_name, const Cluster& cluster,
                                     const std::vector<StatsResult>& results);

// What to expose when the index server itself cannot be read: its flare_index_up is 0 (a
// missing file or stale values would hide the outage).
inline std::string format_prometheus_index_down(const std::string& index_name);

// ---- 8c. Health check (`flare-admin check`) ------------------------------------------------
//
// The cluster's health as findings, each with a severity, the partition and/or node, the
// figure and the command that usually fixes it; the worst severity is the verdict, as a
// monitoring plugin's (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). collect_check() reads the
// cluster (the index, then every node at once); evaluate_check() turns what it read into
// findings, without the network (so every finding is testable from data).

enum class Severity { ok = 0, warning = 1, critical = 2, unknown = 3 };

inline const char* to_string(Severity s);

// The worse of two verdicts: CRITICAL > UNKNOWN > WARNING > OK (the plugins' order: a known
// outage outranks "could not tell").
inline Severity worse(Severity a, Severity b);

struct Finding {
  Severity severity = Severity::warning;
  std::string code;    // stable name (JSON, --ignore, the Prometheus alert of the same name)
  int partition = -1;  // the partition concerned, -1 none
  std::string node;    // the node concerned (host:port), "" none
  std::string message; // one sentence, the summary line's text when it is the worst
  std::string figure;  // what was measured, e.g. "queue 21572 items, 11 s behind"
  std::string fix;     // the command that usually fixes it
};

// Every finding check can report: its code, its usual severity (slave_lag is CRITICAL above
// the critical threshold) and what it means (the man page's list, and --ignore's check).
// (A table for callers and tests: cppcheck sees no use of its members in this file.)
struct CheckCode {
  const char* code;   // cppcheck-suppress unusedStructMember
  Severity severity;  // cppcheck-suppress unusedStructMember
  const char* meaning; // cppcheck-suppress unusedStructMember
};
inline const std::vector<CheckCode>& check_codes();

// Thresholds of the findings that have one (the options of `check`). Lag: a slave is WARNING
// above the *_warning items or seconds, CRITICAL above the *_critical ones.
struct CheckThresholds {
  long long lag_warning_items = 1000, lag_critical_items = 100000;
  long long lag_warning_seconds = 30, lag_critical_seconds = 300;
  long long items_difference = 1000; // |master - slave| curr_items while the slave's queue is 0
  long long prepare_seconds = 1800;  // a new partition's master copying longer is a warning (the alert rule's 30m)
  std::set<std::string> ignore;      // finding codes left out
};

// Everything check reads.
struct CheckData {
  std::string index_name;            // host:port as given
  std::string index_error;           // "" when the index answered; else why not
  bool index_is_node = false;        // the address is a flared
  std::string index_version;         // `stats` version of the index
  long long index_map_version = -1;  // its node_map_version, -1 unknown (read before the nodes')
  long long index_map_version_now = -1; // read again after the nodes' when one seemed ahead (else -1)
  Cluster cluster;                   // the index's map
  std::vector<StatsResult> stats;    // every node's `stats`, in cluster.nodes() order
  std::map<std::string, std::vector<SlaveLag>> lags; // by master key: its `stats threads slave` (slave_lags)
  std::map<std::string, std::string> lag_errors;     // by master key: why `stats threads slave` failed
  // By the key of a master in prepare whose `stats threads` answered: its reconstruction threads
  // (op dump, peer a node of the map, one per source at once; flared sets a thread's uptime when it
  // takes the job, src/lib/thread.cc; seen on a real flare 1.3.4), none when no copy runs.
  struct CopyThread {
    std::string source;  // cppcheck-suppress unusedStructMember ; the node it reads (read in section 8c)
    long long seconds;   // cppcheck-suppress unusedStructMember ; for how long
  };
  std::map<std::string, std::vector<CopyThread>> copies;
  bool keys_checked = false;         // --keys: placement holds every listing
  std::vector<KeyPlacement> placement;
  std::optional<Layout> layout;      // --layout: the layout the cluster is to match (set by the caller)
  std::string layout_name;           // its file, for the finding
};

// Reads the cluster for check: the index (`meta` to be sure it is one, `stats nodes`, `stats`,
// one connection, `timeout_ms` per request), then at once (gather_replies, one `timeout_ms` in
// all) every node's `stats`, every master's `stats threads slave` and the `stats threads` of a
// master in prepare (copies). The index is asked again when a node seems ahead of it
// (index_map_version_now) and when a master in prepare shows no copy (it may have just ended:
// its entry then shows it as the index does now). With `keys` (not null),
// then every answering master and slave lists its keys (check_key_placement, unframed keys
// counted; its options give deadline, cancel and progress). An index that does not answer, or is
// a data node, is recorded (index_error), not thrown. Throws ProtocolError / ServerError when
// the index answers garbage; Interrupted from the key listing, or once `cancel` says stop.
inline CheckData collect_check(const Endpoint& index, int timeout_ms, const DumpOptions* keys = nullptr,
                               const TraceFn& trace = nullptr, const CancelFn& cancel = nullptr);

// The verdict, its findings (worst first, then in cluster order) and the performance data.
struct CheckReport {
  Severity status = Severity::ok;
  std::vector<Finding> findings;
  CheckThresholds thresholds;
  int nodes = 0, partitions = 0;
  std::set<std::string> ignored; // codes of the findings left out by thresholds.ignore
  long long max_lag_items = 0, max_lag_seconds = 0, items = 0;
  long long keys = -1;         // with --keys: keys listed on the nodes asked (each copy counted); else -1
  bool figures_known = true;   // false when the index was not read: perfdata U, JSON null (not 0s)
  std::string summary() const; // the first line, without the performance data
  std::string perfdata() const;
};

// What check read of the masters' `stats threads slave`, as gather_slave_lag() gives it (for
// format_prometheus_health's flare_slave_* families): the masters in the map's order.
inline std::vector<LagResult> lag_results(const CheckData& d);

// The findings of `d` under thresholds `t` (codes in t.ignore left out), worst first, then in
// the order found (index, nodes, partitions, lag, map, versions, keys), and the figures of the
// performance data: nodes, partitions, the highest lag (items and seconds), and the items of
// the active masters. Pure: no network, never throws but std::bad_alloc.
inline CheckReport evaluate_check(const CheckData& d, const CheckThresholds& t = {});

// The plugin output: the summary and performance data on the first line, then one line per
// finding: "SEVERITY code [partition N] [NODE]: message (figure); fix: command".
inline std::string format_check_text(const CheckReport& r);

// The verdict when check could not tell (a bad command line, an error): "FLARE UNKNOWN - why"
// and a newline, or with `json` one JSON document as format_check_json's (exit 3, perfdata null,
// no findings). `why` is made printable and cut to 300 bytes.
inline std::string format_check_unknown(const std::string& why, bool json);

// The same as one JSON document: status, exit (0-3), summary, perfdata (numbers), findings.
inline std::string format_check_json(const CheckReport& r);

// The figures the check's findings are made of, as Prometheus families with an `index` label,
// for contrib/prometheus/flare-alerts.yml to raise the same findings (appended to
// format_prometheus's output by `flare-stats --prometheus`): the index's node map version and
// each node's difference to it, each partition's nodes by role and state (zeros included), its
// active slaves' balance and slaves on the master's host, each slave's replication queue, seconds
// behind and item difference to its master, and each server's flare version.
inline std::string format_prometheus_health(const CheckData& d);

// flare's own node map document (flarei's flare.xml, boost serialization), nodes in server order.
inline std::string format_index_xml(const Cluster& cluster, long long version);

// ---- 8d. Exporter: /metrics over HTTP (flare-exporter) -----------------------------------------
//
// One gather of a cluster per scrape, as `flare-stats --prometheus` reads it (every node's stats,
// every master's replication threads and check's findings, in one poll loop), served over HTTP by
// one poll() loop: a deadline on every client, a bounded request, a bounded number of
// connections, no thread per connection. A gather runs in a thread of its own, so a slow cluster
// never holds the loop, and scrapes of the same cluster that arrive while it runs share it.
// A cluster that does not answer still gives 200 with flare_index_up 0 (the exporters'
// convention), never a 500.

// What one gather gives: the exposition text, and the errors met (an index or node that did not
// answer), each one line.
struct ScrapeResult {
  std::string text;
  std::vector<std::string> errors;
  bool index_up = false;
};

// The Prometheus text of the cluster whose index is `index`: format_prometheus and
// format_prometheus_health over collect_check's reading (requests `timeout_ms` each), or
// format_prometheus_index_down when the index cannot be read. Throws Interrupted only.
inline ScrapeResult prometheus_scrape(const Endpoint& index, int timeout_ms, const CancelFn& cancel = nullptr);

// Every entry of a $FLARE_INDEX_SERVERS list ("name:host:port;..."), by name. Throws Error for
// an entry that is not name:host:port.
inline std::map<std::string, Endpoint> index_servers(std::string_view servers);

struct ExporterOptions {
  Endpoint listen{"0.0.0.0", 12119};           // 12119: outside 9100-9999, all allocated by Prometheus' list
  std::string telemetry_path = "/metrics";
  Endpoint index{"127.0.0.1", FLARE_TOOLS_DEFAULT_INDEX_PORT}; // what /metrics reads
  std::map<std::string, Endpoint> clusters;    // /probe?cluster=NAME
  std::set<std::string> allowed_targets;       // /probe?target=HOST:PORT, by key ("" none: refused)
  int timeout_ms = FLARE_TOOLS_DEFAULT_TIMEOUT_MS; // each request of a gather
  int client_timeout_ms = 10000;               // a client's request arrives, and its reply is taken, within it
  size_t max_connections = 512;                // beyond it a new connection is closed at once
  size_t max_request_bytes = 16384;            // the request line and headers
};

// The HTTP server of flare-exporter. bind() throws Error (the address in use, or not one);
// serve() runs until `stop` says so (checked at least every 200 ms), then closes every socket and
// waits for the gathers under way (each bounded by its deadlines). `log` gets one line per error.
// `scrape` is prometheus_scrape unless given (the tests give their own).
class Exporter {
public:
  using ScrapeFn = std::function<ScrapeResult(const Endpoint& index)>;
  explicit Exporter(ExporterOptions o, ScrapeFn scrape = nullptr);
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;
  ~Exporter() { shut(); }

  void bind();
  int port() const { return bound_port_; }
  // Clients whose scrape waits for a gather (another thread may read it: the tests do).
  size_t parked() const { return parked_.load(); }

  void serve(const CancelFn& stop, const std::function<void(const std::string&)>& log = nullptr);

private:
  struct Client {
    int fd = -1;
    std::string peer, in, out;                    // out: the status line and headers (and a small body)
    std::shared_ptr<const std::string> body;      // a scrape's body, one copy shared by every client of its gather
    size_t sent = 0;
    enum Phase { reading, waiting, writing, draining } phase = reading;
    Clock::time_point deadline;
    std::string gather; // the index key it waits for
    bool head = false;
  };
  struct Gather {
    Endpoint index;
    std::thread thread;
    std::shared_ptr<std::pair<std::atomic<bool>, ScrapeResult>> result;
    Clock::time_point started;
  };

  void accept_all();

  void read_from(Client& c);

  static std::string url_decode(std::string_view s);

  void route(Client& c, const std::string& request_line);

  void reply(Client& c, int code, const char* reason, const char* type, const std::string& body, const std::string& extra = "");
  void reply(Client& c, int code, const char* reason, const char* type, std::shared_ptr<const std::string> body,
             const std::string& extra = "");

  void write_to(Client& c);

  void drain(Client& c);

  void start_scrape(Client& c, const Endpoint& index);

  void drain_wake();

  void finish_gathers();

  void shut();

  ExporterOptions opt_;
  ScrapeFn scrape_;
  int listen_fd_ = -1;
  int bound_port_ = 0;
  int wake_[2] = {-1, -1};
  std::vector<Client> clients_;
  std::map<std::string, Gather> gathers_;
  std::map<std::string, long long> errors_; // by index display
  std::function<void(const std::string&)> log_;
  std::atomic<size_t> parked_{0};
  std::shared_ptr<std::atomic<bool>> stopping_ = std::make_shared<std::atomic<bool>>(false);
};

// ---- 9. Deploy ---------------------------------------------------------------------------
//
// `deploy` writes, for each server, a folder HOST:PORT/ with its configuration file, an empty
// data/ folder and start/stop/restart scripts for Debian's start-stop-daemon (the layout of
// flare-tools 0.7.3), and on request a systemd unit. Keys are flare 1.3.4's own option names
// (src/flarei/ini_option.cc, src/flared/ini_option.cc): flare refuses to start when its file
// holds a key it does not know, so each setting goes only to the daemons that accept it.

enum class Daemon { flarei, flared };

inline const char* daemon_name(Daemon d);

// A configuration file: `key = value` lines in a fixed order. Setting a key already present
// changes its line in place; a new key is appended, so the defaults keep their order.
class ServerConf {
public:
  void set(const std::string& key, const std::string& value);
  void erase(const std::string& key);
  const std::string* find(const std::string& key) const;
  std::string text() const;
  const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }

private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

// The defaults 0.7.3 starts from (flare's sample etc/flarei.conf and an older etc/flared.conf).
inline ServerConf flarei_defaults();

inline ServerConf flared_defaults();

// One setting `deploy` passes through to the configuration files.
// (cppcheck: the CLI reads value, help and caveat; the header alone does not.)
struct DeploySetting {
  const char* key;         // flare's option name, also deploy's --KEY
  // cppcheck-suppress unusedStructMember
  const char* value;       // placeholder of the value; nullptr: a flag, written as `true`
  bool flarei;             // written to flarei.conf
  bool flared;             // written to flared.conf
  // cppcheck-suppress unusedStructMember
  const char* help;
  // cppcheck-suppress unusedStructMember
  const char* caveat;      // why flare 1.3.4 may refuse it (nullptr: it accepts it)
};

// 0.7.3's pass-through settings, with three fixes: thread-pool-size replaces the default line
// (0.7.3 added a `thread_pool_size` key, which flare rejects); back-log and net-read-timeout go
// to flared only (flarei 1.3.4 has neither and would not start); and flarei's partition
// settings, which keycheck simulates, can be set too.
inline const std::vector<DeploySetting>& deploy_settings();

inline const DeploySetting* find_deploy_setting(std::string_view key);

// Why flarei/flared would not read `value` of deploy setting `key` as meant, or "" if they
// would. The forms are flare 1.3.4's own (src/flarei/ini_option.cc, src/flared/ini_option.cc:
// boost::program_options int, uint32_t, uint64_t and string values; storage::type_cast,
// storage::compress_cast, key_resolver::type_cast, storage::hash_algorithm_cast; the
// index-servers list NAME:PORT,...), with floors where a smaller number is accepted but
// means nothing sensible (a thread pool of -5 threads). A switch (daemonize) is on whenever
// its line is present, whatever the value, so only "true" is written. Throws nothing.
inline std::string deploy_value_problem(std::string_view key, std::string_view value);

// Settings given on the command line, in the order given: key and value (flags: "true").
using DeploySettings = std::vector<std::pair<std::string, std::string>>;

// Why settings that are each accepted do not go together, or "" when they do: flarei 1.3.4's
// modular key table holds partition-size x partition-modular-virtual entries of 4 bytes
// (src/lib/key_resolver_modular.cc; flared builds the same table from the index's values): at
// 2147483647 virtual buckets it aborts with std::bad_alloc (seen). Bounded here at 2^26 entries
// (256 MiB); the defaults make 1024 x 4096. `flared_count`: the flared deployed at once, which
// cannot share one --data-dir (one flare.hdb, one flared.pid). Throws nothing.
inline std::string deploy_settings_problem(const DeploySettings& settings, size_t flared_count);

// One server to deploy: where its folder goes and what it holds.
struct DeployTarget {
  Daemon daemon = Daemon::flared;
  Endpoint server;          // where it listens
  std::string dir;          // BASE/HOST:PORT
  std::string executable;   // flarei or flared binary
  ServerConf conf;

  std::string conf_path() const { return dir + "/" + daemon_name(daemon) + ".conf"; }
  // flare writes DATA-DIR/NAME.pid itself, so the scripts look for it there (0.7.3 kept
  // HOST:PORT/data even when --data-dir moved it, and then could not stop the server).
  std::string pid_path() const;
  std::string unit_name() const { return std::string(daemon_name(daemon)) + "-" + server.key() + ".service"; }
};

inline DeployTarget plan_flarei(const std::string& base, const Endpoint& index, const std::string& executable,
                                const DeploySettings& settings);

inline DeployTarget plan_flared(const std::string& base, const Endpoint& node, const Endpoint& index,
                                const std::string& executable, const DeploySettings& settings);

// A file of a deploy folder: name inside the folder, content, permission bits.
struct DeployFile {
  std::string name;
  std::string content;
  unsigned mode;
};

inline std::vector<DeployFile> deploy_files(const DeployTarget& t, bool with_systemd_unit);

// Writes a server's folder. It is built complete under a temporary name and then renamed into
// place, so the folder is either the old one or the whole new one, never half of each. An
// existing folder is refused unless `replace` (--delete), which removes it with its data.
inline void deploy_folder(const DeployTarget& t, bool replace, bool with_systemd_unit);

// ---- 10. Keycheck ------------------------------------------------------------------------
//
// How keys would spread over a cluster of 1..N partitions, grouped by key prefix, computed
// with flare's own hash (key_hash) and modular resolver (section 6b): the offline planning
// tool of 0.7.3 (flare-keychecker), which used its own approximations of both.

struct KeycheckSettings {
  KeyHashAlgorithm algorithm = KeyHashAlgorithm::simple;
  int virtual_buckets = 4096;  // flarei's partition-modular-virtual
  int hint = 1;                // flarei's partition-modular-hint
  int partitions = 100;        // N: partition counts 1..N are shown
  std::string delimiter = "::";
};

// Why the settings cannot be simulated, or "" when they can. The work is N x virtual steps
// and the table N x N / 2 cells per prefix: the bounds keep both within reach.
inline std::string keycheck_settings_problem(const KeycheckSettings& s);

// A key's prefix: everything before the last delimiter; "" when there is none.
inline std::string_view key_prefix(std::string_view key, std::string_view delimiter);

// Collects keys, then answers how many of each prefix each partition holds for any partition
// count. Memory: 4 bytes per key while collecting, then one (bucket, count) pair per bucket
// used by each prefix. Not thread-safe (the resolver caches rows).
class KeyDistribution {
public:
  explicit KeyDistribution(const KeycheckSettings& s);

  const KeycheckSettings& settings() const { return settings_; }

  void add(std::string_view key);

  // Call once after the last add(): turns the collected buckets into counted ones.
  void finish();

  unsigned long long keys() const { return keys_; }
  // Keys the server could not place (counted in keys(), in no prefix).
  unsigned long long unplaced() const { return unplaced_; }
  size_t prefix_count() const { return prefixes_.size(); }
  const std::string& prefix(size_t i) const { return prefixes_.at(i).name; }
  unsigned long long prefix_keys(size_t i) const { return prefixes_.at(i).keys; }

  // Keys of prefix i on each partition of a cluster of n partitions (1 <= n <= N + 1).
  std::vector<unsigned long long> counts(size_t i, int n) const;

  // Keys of prefix i whose partition differs between n and n + 1 partitions (n <= N).
  unsigned long long moved(size_t i, int n) const;

private:
  struct Prefix {
    // cppcheck-suppress unusedStructMember
    std::string name;  // read by prefix()
    unsigned long long keys;
    std::vector<std::uint32_t> collected;
    std::vector<std::pair<std::uint32_t, unsigned long long>> buckets;
  };
  KeycheckSettings settings_;
  ModularResolver resolver_;
  std::vector<Prefix> prefixes_;  // in order of first appearance, as 0.7.3 prints them
  std::unordered_map<std::string, size_t> index_;
  unsigned long long keys_ = 0, unplaced_ = 0;
};

// 0.7.3's CSV, streamed to `out` a line at a time:
//   partition size, prefix, 0 ,1 ,2
//   1, a,2
//   2, a,1 ,1
// A prefix that holds a comma, a quote or edge spaces is quoted (0.7.3 wrote it raw).
template <typename Out> inline void write_keycheck_csv(const KeyDistribution& d, Out&& out);

// The same as one JSON document, streamed; "moved" counts the keys that change partition when
// the cluster grows from N to N + 1 partitions.
template <typename Out> inline void write_keycheck_json(const KeyDistribution& d, Out&& out);

// Keys that change partition when the cluster grows from N to N + 1 partitions, all prefixes.
inline unsigned long long keycheck_moved(const KeyDistribution& d);

// ==============================================================================================
// Part 2. Implementation
// ==============================================================================================

// ---- 1. Errors and small helpers ---------------------------------------------------------

namespace detail {

// A duration in milliseconds as a message shows it, in seconds: "10", "0.5", "2.25" (a
// --timeout of 0.5 is not "0 s"). Never throws.
inline std::string seconds_text(long long ms) {
  std::string out = std::to_string(ms / 1000);
  long long frac = ms % 1000;
  if (frac < 0) frac = -frac;
  if (frac == 0) return out;
  std::string f = std::to_string(frac);
  f = std::string(3 - f.size(), '0') + f;
  while (!f.empty() && f.back() == '0') f.pop_back();
  return out + "." + f;
}

// Retries a system call interrupted by a signal: the library never lets EINTR leak out,
// and never installs handlers of its own to avoid it.
template <typename F> inline auto handle_EINTR(F fn) -> decltype(fn()) {
  decltype(fn()) res;
  do {
    res = fn();
  } while (res < 0 && errno == EINTR);
  return res;
}

inline bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

inline std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// Splits on runs of spaces (flare's word separator is the space character only).
inline std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// Printable form of bytes from a peer, for error messages: never more than `max` chars,
// control and non-ASCII bytes escaped so that one message stays one line.
inline std::string printable(std::string_view s, size_t max = 80) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

inline std::string errno_text(int err) { return std::strerror(err); }

} // namespace detail

inline std::string printable(std::string_view s, size_t max) { return detail::printable(s, max); }

inline std::optional<long long> to_int(std::string_view s) {
  if (s.empty()) return std::nullopt;
  bool neg = false;
  size_t i = 0;
  if (s[0] == '-') {
    neg = true;
    i = 1;
    if (s.size() == 1) return std::nullopt;
  }
  unsigned long long v = 0;
  const unsigned long long limit = neg ? static_cast<unsigned long long>(LLONG_MAX) + 1ULL
                                       : static_cast<unsigned long long>(LLONG_MAX);
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c < '0' || c > '9') return std::nullopt;
    unsigned d = static_cast<unsigned>(c - '0');
    if (v > (limit - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  if (neg) return v == static_cast<unsigned long long>(LLONG_MAX) + 1ULL ? LLONG_MIN : -static_cast<long long>(v);
  return static_cast<long long>(v);
}

inline std::optional<int> to_int32(std::string_view s) {
  auto v = to_int(s);
  if (!v || *v < INT_MIN || *v > INT_MAX) return std::nullopt;
  return static_cast<int>(*v);
}

// ---- 2. Addresses ------------------------------------------------------------------------

inline std::string Endpoint::display() const {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port) : key();
}

namespace detail {

inline std::optional<int> parse_port(std::string_view s) {
  if (!is_digits(s) || s.size() > 5) return std::nullopt;
  auto v = to_int(s);
  if (!v || *v < 1 || *v > 65535) return std::nullopt;
  return static_cast<int>(*v);
}

// Splits "host:a:b..." honouring "[v6]:a:b". Returns the host and the remaining fields.
inline bool split_host_fields(std::string_view arg, std::string& host, std::vector<std::string_view>& fields) {
  fields.clear();
  std::string_view rest;
  if (!arg.empty() && arg.front() == '[') {
    size_t close = arg.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    host = std::string(arg.substr(1, close - 1));
    rest = arg.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    rest.remove_prefix(1);
  } else {
    size_t colon = arg.find(':');
    host = std::string(arg.substr(0, colon));
    if (colon == std::string_view::npos) return true;
    rest = arg.substr(colon + 1);
  }
  fields = split(rest, ':');
  return true;
}

inline bool valid_host(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (unsigned char c : h)
    if (c <= 0x20 || c >= 0x7f || c == '/' || c == '[' || c == ']') return false;
  return true;
}

} // namespace detail

inline Endpoint parse_host_port(std::string_view arg, int default_port) {
  std::string host;
  std::vector<std::string_view> fields;
  if (!detail::split_host_fields(arg, host, fields) || !detail::valid_host(host) || fields.size() > 1)
    throw Error("invalid address '" + detail::printable(arg) + "'");
  Endpoint ep{host, default_port};
  if (fields.size() == 1) {
    auto port = detail::parse_port(fields[0]);
    if (!port) throw Error("invalid port in '" + detail::printable(arg) + "'");
    ep.port = *port;
  }
  return ep;
}

inline NodeArg parse_node_arg(std::string_view arg, int min_fields, int max_fields) {
  std::string host;
  std::vector<std::string_view> fields;
  const std::string bad = "invalid argument '" + detail::printable(arg, 200) + "'.";
  if (!detail::split_host_fields(arg, host, fields) || !detail::valid_host(host)) throw Error(bad);
  int count = 1 + static_cast<int>(fields.size());
  if (count < min_fields || count > max_fields || count < 2) throw Error(bad);
  NodeArg out;
  out.text = std::string(arg);
  auto port = detail::parse_port(fields[0]);
  if (!port) throw Error(bad);
  out.endpoint = Endpoint{host, *port};
  if (count >= 3) {
    auto b = to_int32(fields[1]);
    if (!b || *b < 0) throw Error(bad);
    out.balance = *b;
  }
  if (count >= 4) {
    auto p = to_int32(fields[2]);
    if (!p || *p < 0) throw Error(bad);
    out.partition = *p;
  }
  return out;
}

inline std::optional<int> parse_port(std::string_view s) { return detail::parse_port(s); }

inline std::optional<Endpoint> cluster_index_server(std::string_view servers, std::string_view name) {
  for (auto entry : detail::split(servers, ';')) {
    auto f = detail::split(detail::trim(entry), ':');
    if (f.size() >= 3 && f[0] == name) {
      auto p = detail::parse_port(f[2]);
      if (!p) throw Error("invalid port for cluster '" + std::string(name) + "' in FLARE_INDEX_SERVERS");
      return Endpoint{std::string(f[1]), *p};
    }
  }
  return std::nullopt;
}

// ---- 3. Socket ---------------------------------------------------------------------------

namespace detail {

inline int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : static_cast<int>(left);
}

// Waits for `events` on `fd` until `deadline`. A signal (EINTR) never restarts the wait: it
// goes on for the time left only. With a cancel check the wait runs in slices of
// FLARE_TOOLS_CANCEL_CHECK_MS and throws Interrupted once the check says stop.
// Returns the revents, or 0 when the deadline passed.
inline short poll_until(int fd, short events, Clock::time_point deadline, const CancelFn& cancel) {
  for (;;) {
    if (cancel && cancel()) throw Interrupted("interrupted");
    int ms = remaining_ms(deadline);
    if (cancel) ms = std::min(ms, FLARE_TOOLS_CANCEL_CHECK_MS);
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, ms);
    if (rc > 0) return p.revents;
    if (rc < 0 && errno != EINTR) return POLLERR;
    if (rc == 0 && remaining_ms(deadline) == 0) return 0;
  }
}

inline void set_nonblocking(int fd) {
  int flags = handle_EINTR([&] { return ::fcntl(fd, F_GETFL, 0); });
  if (flags >= 0) handle_EINTR([&] { return ::fcntl(fd, F_SETFL, flags | O_NONBLOCK); });
}

// Resolves host:port to a list of addresses. getaddrinfo cannot be given a deadline; numeric
// addresses (the usual case for cluster members) never touch the resolver.
inline std::vector<std::pair<sockaddr_storage, socklen_t>> resolve(const Endpoint& ep) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(ep.port);
  int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    throw NetworkError("cannot resolve '" + printable(ep.host) + "': " + ::gai_strerror(rc));
  }
  std::vector<std::pair<sockaddr_storage, socklen_t>> out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    out.emplace_back(ss, static_cast<socklen_t>(ai->ai_addrlen));
  }
  ::freeaddrinfo(res);
  if (out.empty()) throw NetworkError("cannot resolve '" + printable(ep.host) + "'");
  return out;
}

} // namespace detail

inline std::string unknown_node_text(const std::string& prefix, const Endpoint& ep) {
  std::string why;
  try {
    detail::resolve(ep);
    why = "the index lists no such node (see: flare-admin list)";
  } catch (const Error& e) {
    why = std::string(e.what()) + " (the name does not resolve)";
  }
  return prefix + ep.key() + ": " + why;
}

namespace detail {

// The flags of every send: no SIGPIPE where the system has MSG_NOSIGNAL (see "Socket
// portability" at the top; elsewhere new_socket sets SO_NOSIGPIPE).
#if FLARE_TOOLS_HAVE_MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

// A TCP socket, close-on-exec, that does not raise SIGPIPE where the system offers a way;
// returns -1 with errno set on failure. Every socket of the library comes from here.
// Every socket is non-blocking: the waits are poll()'s, with their deadlines. Where socket()
// takes the flags, that saves two fcntl calls a socket (a gather of 2,000 nodes makes 2,000).
inline int new_socket(int family) {
#if FLARE_TOOLS_HAVE_SOCK_CLOEXEC
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
#else
  int fd = ::socket(family, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  set_nonblocking(fd);
#endif
#if !FLARE_TOOLS_HAVE_MSG_NOSIGNAL && defined(SO_NOSIGPIPE)
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) < 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
#endif
  return fd;
}

// Starts a non-blocking connect; returns the fd (connect may still be in progress) or -1.
inline int start_connect(const sockaddr_storage& addr, socklen_t len, int& err) {
  int fd = new_socket(addr.ss_family);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rc = handle_EINTR([&] { return ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len); });
  if (rc < 0 && errno != EINPROGRESS) {
    err = errno;
    ::close(fd);
    return -1;
  }
  err = 0;
  return fd;
}

inline int connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

inline Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    o.fd_ = -1;
    buf_ = std::move(o.buf_);
    pos_ = o.pos_;
    end_ = o.end_;
    total_read_ = o.total_read_;
    peer_ = std::move(o.peer_);
    deadline_ = o.deadline_;
    idle_ms_ = o.idle_ms_;
    cancel_ = std::move(o.cancel_);
  }
  return *this;
}
inline void Socket::connect(const Endpoint& ep, int timeout_ms) {
  close();
  peer_ = ep.display();
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto addrs = resolve(ep);
  int last_err = ETIMEDOUT;
  for (auto& [addr, len] : addrs) {
    int err = 0;
    int fd = start_connect(addr, len, err);
    if (fd < 0) {
      last_err = err;
      continue;
    }
    short rev = 0;
    try {
      rev = poll_until(fd, POLLOUT, deadline, cancel_);
    } catch (const Interrupted&) {
      ::close(fd);
      throw;
    }
    int rc = rev == 0 ? 0 : 1;
    if (rc == 1) {
      err = connect_result(fd);
      if (err == 0) {
        fd_ = fd;
        // Room for the longest line we accept, so a full buffer always means "too long".
        buf_.resize(std::max<size_t>(FLARE_TOOLS_READ_BUFFER_BYTES, FLARE_TOOLS_MAX_LINE_BYTES + 2));
        pos_ = end_ = 0;
        return;
      }
      last_err = err;
    } else {
      last_err = ETIMEDOUT;
    }
    ::close(fd);
    if (remaining_ms(deadline) == 0) break;
  }
  if (last_err == ETIMEDOUT) throw NetworkError("cannot connect to " + peer_ + ": timed out");
  throw NetworkError("cannot connect to " + peer_ + ": " + errno_text(last_err));
}
inline void Socket::adopt(int fd, std::string peer) {
  close();
  set_nonblocking(fd);
  fd_ = fd;
  peer_ = std::move(peer);
  buf_.resize(std::max<size_t>(FLARE_TOOLS_READ_BUFFER_BYTES, FLARE_TOOLS_MAX_LINE_BYTES + 2));
  pos_ = end_ = 0;
}
inline void Socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pos_ = end_ = 0;
}
inline void Socket::set_idle_timeout(int timeout_ms) {
  idle_ms_ = timeout_ms;
  if (timeout_ms > 0) set_timeout(timeout_ms);
}
inline void Socket::send_all(std::string_view data) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = handle_EINTR([&] { return ::send(fd_, p, left, kSendFlags); });
    if (n > 0) {
      p += n;
      left -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) fail("send to " + peer_ + " failed", errno);
    wait_for(POLLOUT, "sending to");
  }
}
inline std::string_view Socket::read_line() {
  size_t scanned = pos_;
  for (;;) {
    const char* base = buf_.data();
    size_t nlpos = line_end(scanned);
    if (nlpos != std::string::npos) {
      size_t len = nlpos - pos_;
      if (len > 0 && base[nlpos - 1] == '\r') --len;
      std::string_view line(base + pos_, len);
      pos_ = nlpos + 1;
      return line;
    }
    if (end_ - pos_ >= FLARE_TOOLS_MAX_LINE_BYTES) line_too_long();
    scanned = end_;
    size_t before = pos_;
    fill();
    scanned -= before - pos_; // fill() may have moved the unread bytes to the front
  }
}
template <typename Sink>
inline void Socket::read_exact(size_t n, Sink&& sink) {
  while (n > 0) {
    if (pos_ == end_) fill();
    size_t take = std::min(n, end_ - pos_);
    sink(std::string_view(buf_.data() + pos_, take));
    pos_ += take;
    n -= take;
  }
}
inline bool Socket::wait_readable(int timeout_ms) {
  if (pos_ < end_) return true;
  return poll_until(fd_, POLLIN, Clock::now() + std::chrono::milliseconds(timeout_ms), cancel_) != 0;
}
inline void Socket::set_buffer_size(size_t n) {
  n = std::max<size_t>(n, FLARE_TOOLS_MAX_LINE_BYTES + 2);
  if (pos_ > 0) {
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (n > end_) buf_.resize(n);
}
inline bool Socket::read_available() {
  if (pos_ > 0) {
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == buf_.size()) return false; // full: the caller must take from it first
  ssize_t n = handle_EINTR([&] { return ::read(fd_, buf_.data() + end_, buf_.size() - end_); });
  if (n == 0) {
    std::string peer = peer_;
    close();
    throw NetworkError("connection closed by " + peer);
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    fail("receive from " + peer_ + " failed", errno);
  }
  end_ += static_cast<size_t>(n);
  total_read_ += static_cast<unsigned long long>(n);
  if (idle_ms_ > 0) set_timeout(idle_ms_);
  return true;
}
inline std::optional<std::string_view> Socket::buffered_line() {
  if (line_end(pos_) == std::string::npos) {
    if (end_ - pos_ >= FLARE_TOOLS_MAX_LINE_BYTES) line_too_long();
    return std::nullopt;
  }
  return read_line();
}
inline std::string_view Socket::take(size_t n) {
  std::string_view v(buf_.data() + pos_, n);
  pos_ += n;
  return v;
}
inline bool Socket::at_eof() {
  if (pos_ < end_) return false;
  try {
    fill();
  } catch (const NetworkError&) {
    return true;
  }
  return false;
}
inline size_t Socket::send_some(std::string_view data) {
  // kSendFlags is 0 on the fallback (which is what cppcheck, without system headers, sees).
  // cppcheck-suppress badBitmaskCheck
  ssize_t n = handle_EINTR([&] { return ::send(fd_, data.data(), data.size(), kSendFlags | MSG_DONTWAIT); });
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    throw NetworkError("send to " + peer_ + " failed: " + errno_text(errno));
  }
  return static_cast<size_t>(n);
}
inline size_t Socket::line_end(size_t from) const {
  const char* base = buf_.data();
  while (from < end_) {
    const void* nl = std::memchr(base + from, '\n', end_ - from);
    if (!nl) return std::string::npos;
    size_t at = static_cast<size_t>(static_cast<const char*>(nl) - base);
    if (!crlf_only_ || (at > pos_ && base[at - 1] == '\r')) return at;
    from = at + 1;
  }
  return std::string::npos;
}
[[noreturn]] inline void Socket::fail(const std::string& what, int err) {
  close();
  throw NetworkError(what + ": " + errno_text(err));
}
[[noreturn]] inline void Socket::line_too_long() {
  std::string peer = peer_;
  close();
  throw ProtocolError("reply line from " + peer + " longer than " + std::to_string(FLARE_TOOLS_MAX_LINE_BYTES) +
                      " bytes");
}
inline void Socket::wait_for(short events, const char* doing) {
  short rev;
  try {
    rev = poll_until(fd_, events, deadline_, cancel_);
  } catch (const Interrupted&) {
    close();
    throw;
  }
  if (rev == 0) {
    std::string peer = peer_;
    close();
    throw NetworkError(std::string("timed out ") + doing + " " + peer);
  }
}
inline void Socket::fill() {
  if (pos_ > 0) {
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  for (;;) {
    // read(), not recv(): the same buffered reader serves files (restore input) too.
    ssize_t n = handle_EINTR([&] { return ::read(fd_, buf_.data() + end_, buf_.size() - end_); });
    if (n > 0) {
      end_ += static_cast<size_t>(n);
      total_read_ += static_cast<unsigned long long>(n);
      if (idle_ms_ > 0) set_timeout(idle_ms_);
      return;
    }
    if (n == 0) {
      std::string peer = peer_;
      close();
      throw NetworkError("connection closed by " + peer);
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail("receive from " + peer_ + " failed", errno);
    wait_for(POLLIN, "waiting for");
  }
}

} // namespace detail

// ---- 4. Protocol reader ------------------------------------------------------------------

inline bool Reply::ok() const {
  return status == "OK" || status == "END" || status == "STORED" || status == "DELETED";
}

inline bool Reply::is_error() const {
  return status == "ERROR" || status.rfind("SERVER_ERROR", 0) == 0 || status.rfind("CLIENT_ERROR", 0) == 0;
}

namespace detail {

inline bool is_terminal_line(std::string_view line) {
  static const char* const exact[] = {"END",       "OK",     "ERROR",   "STORED", "NOT_STORED",
                                      "DELETED",   "EXISTS", "NOT_FOUND", "TOUCHED"};
  for (const char* e : exact)
    if (line == e) return true;
  return line.rfind("SERVER_ERROR", 0) == 0 || line.rfind("CLIENT_ERROR", 0) == 0 ||
         line.rfind("VERSION ", 0) == 0;
}

} // namespace detail

inline Reply read_reply(detail::Socket& sock, const TraceFn& trace) {
  Reply r;
  size_t total = 0;
  for (;;) {
    std::string_view line = sock.read_line();
    if (trace) trace("<-- " + detail::printable(line, 400));
    if (detail::is_terminal_line(line)) {
      r.status = std::string(line);
      return r;
    }
    if (line.rfind("STAT ", 0) != 0 && line.rfind("META ", 0) != 0 && line.rfind("KEY ", 0) != 0) {
      sock.close();
      throw ProtocolError("unexpected reply line from " + sock.peer() + ": '" + detail::printable(line) + "'");
    }
    total += line.size() + 2;
    if (total > FLARE_TOOLS_MAX_REPLY_BYTES) {
      sock.close();
      throw ProtocolError("reply from " + sock.peer() + " larger than " +
                          std::to_string(FLARE_TOOLS_MAX_REPLY_BYTES) + " bytes");
    }
    r.lines.emplace_back(line);
  }
}

inline const std::string* NodeStats::find(std::string_view name) const {
  const std::string* found = nullptr;
  for (auto& f : fields)
    if (f.first == name) found = &f.second; // a repeated field: the last one wins
  return found;
}

inline std::string NodeStats::get(std::string_view name) const {
  auto* v = find(name);
  return v ? *v : std::string();
}

inline std::optional<long long> NodeStats::number(std::string_view name) const {
  auto* v = find(name);
  if (!v) return std::nullopt;
  auto n = to_int(*v);
  if (!n || *n < 0) return std::nullopt;
  return n;
}

inline NodeStats parse_stats(const std::vector<std::string>& lines) {
  NodeStats s;
  s.fields.reserve(lines.size()); // a gather keeps one per node: no room to spare (2,000 x 35)
  for (auto& line : lines) {
    std::string_view l(line);
    if (l.rfind("STAT ", 0) != 0) throw ProtocolError("malformed stats line '" + detail::printable(l) + "'");
    l.remove_prefix(5);
    size_t sp = l.find(' ');
    std::string name(l.substr(0, sp));
    std::string value(sp == std::string_view::npos ? std::string_view() : l.substr(sp + 1));
    if (name.empty()) throw ProtocolError("malformed stats line '" + detail::printable(line) + "'");
    s.fields.emplace_back(std::move(name), std::move(value));
  }
  return s;
}

inline bool is_known_role(std::string_view r) { return r == "master" || r == "slave" || r == "proxy"; }

inline bool is_known_state(std::string_view s) {
  return s == "active" || s == "prepare" || s == "down" || s == "ready";
}

inline std::vector<NodeInfo> parse_stats_nodes(const std::vector<std::string>& lines) {
  struct Partial {
    NodeInfo info;
    unsigned seen = 0;
  };
  std::vector<Partial> nodes;
  std::map<std::string, size_t> index;
  for (auto& line : lines) {
    std::string_view l(line);
    auto bad = [&](const char* why) {
      return ProtocolError(std::string("malformed stats nodes line (") + why + "): '" + detail::printable(line) + "'");
    };
    if (l.rfind("STAT ", 0) != 0) throw bad("no STAT");
    l.remove_prefix(5);
    size_t sp = l.find(' ');
    if (sp == std::string_view::npos) throw bad("no value");
    std::string_view name = l.substr(0, sp);
    std::string_view value = detail::trim(l.substr(sp + 1));
    size_t c2 = name.rfind(':');
    if (c2 == std::string_view::npos || c2 == 0) throw bad("no field");
    size_t c1 = name.rfind(':', c2 - 1);
    if (c1 == std::string_view::npos || c1 == 0) throw bad("no port");
    std::string_view host = name.substr(0, c1), port = name.substr(c1 + 1, c2 - c1 - 1), field = name.substr(c2 + 1);
    auto p = detail::parse_port(port);
    if (!p) throw bad("bad port");
    std::string key(name.substr(0, c2));
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, nodes.size()).first;
      Partial fresh;
      fresh.info.key = key;
      fresh.info.host = std::string(host);
      fresh.info.port = *p;
      nodes.push_back(std::move(fresh));
    }
    Partial& n = nodes[it->second];
    if (field == "role") {
      n.info.role = std::string(value);
      n.seen |= 1;
    } else if (field == "state") {
      n.info.state = std::string(value);
      n.seen |= 2;
    } else if (field == "partition") {
      auto v = to_int32(value);
      // Partitions are numbered below the index's partition-size (1024 by default); a bound
      // keeps "number of partitions" arithmetic far from overflow.
      if (!v || *v < -1 || *v > kMaxPartition) throw bad("bad partition");
      n.info.partition = *v;
      n.seen |= 4;
    } else if (field == "balance") {
      auto v = to_int32(value);
      if (!v || *v < 0) throw bad("bad balance");
      n.info.balance = *v;
      n.seen |= 8;
    } else if (field == "thread_type") {
      auto v = to_int32(value);
      if (!v) throw bad("bad thread_type");
      n.info.thread_type = *v;
    } // unknown fields of newer servers are ignored
  }
  std::vector<NodeInfo> out;
  out.reserve(nodes.size());
  for (auto& n : nodes) {
    if ((n.seen & 15) != 15)
      throw ProtocolError("stats nodes entry for " + detail::printable(n.info.key) +
                          " lacks one of role, state, partition, balance");
    out.push_back(std::move(n.info));
  }
  return out;
}

inline std::vector<ThreadInfo> parse_stats_threads(const std::vector<std::string>& lines) {
  std::vector<ThreadInfo> out;
  std::map<std::string, size_t> index;
  for (auto& line : lines) {
    std::string_view l(line);
    if (l.rfind("STAT ", 0) != 0) throw ProtocolError("malformed stats threads line '" + detail::printable(l) + "'");
    l.remove_prefix(5);
    size_t colon = l.find(':');
    if (colon == std::string_view::npos || colon == 0)
      throw ProtocolError("malformed stats threads line '" + detail::printable(line) + "'");
    std::string id(l.substr(0, colon));
    std::string_view rest = l.substr(colon + 1);
    size_t sp = rest.find(' ');
    std::string_view field = rest.substr(0, sp);
    std::string value(sp == std::string_view::npos ? std::string_view() : detail::trim(rest.substr(sp + 1)));
    auto it = index.find(id);
    if (it == index.end()) {
      it = index.emplace(id, out.size()).first;
      out.push_back(ThreadInfo{});
      out.back().id = id;
    }
    ThreadInfo& t = out[it->second];
    if (field == "type") t.type = value;
    else if (field == "peer") t.peer = value;
    else if (field == "op") t.op = value;
    else if (field == "uptime") t.uptime = value;
    else if (field == "state") t.state = value;
    else if (field == "info") t.info = value;
    else if (field == "queue") t.queue = value;
    else if (field == "behind") t.behind = value;
  }
  return out;
}

inline std::string Meta::get(std::string_view name) const {
  for (const auto& f : fields)
    if (f.first == name) return f.second;
  return std::string();
}

inline Meta parse_meta(const std::vector<std::string>& lines) {
  Meta m;
  for (auto& line : lines) {
    std::string_view l(line);
    if (l.rfind("META ", 0) != 0) throw ProtocolError("malformed meta line '" + detail::printable(l) + "'");
    l.remove_prefix(5);
    size_t sp = l.find(' ');
    if (sp == std::string_view::npos || sp == 0)
      throw ProtocolError("malformed meta line '" + detail::printable(line) + "'");
    m.fields.emplace_back(std::string(l.substr(0, sp)), std::string(detail::trim(l.substr(sp + 1))));
  }
  return m;
}

inline bool expired_at(const ItemHeader& h, long long now_unix) { return h.expire > 0 && h.expire <= now_unix; }

inline bool valid_item_key(std::string_view k) {
  return !k.empty() && k.size() <= FLARE_TOOLS_MAX_KEY_BYTES &&
         k.find_first_of(std::string_view(" \0", 2)) == std::string_view::npos && k.find("\r\n") == std::string_view::npos;
}

inline std::string text_key_problem(std::string_view k) {
  if (k.empty()) return "the key is empty";
  if (k.size() > FLARE_TOOLS_MAX_TEXT_KEY_BYTES)
    return "flared's text protocol takes keys of at most " + std::to_string(FLARE_TOOLS_MAX_TEXT_KEY_BYTES) + " bytes";
  if (k.find(' ') != std::string_view::npos)
    return "the key holds a space, where flared's text protocol splits a request (only the binary protocol stores it)";
  if (k.find('\n') != std::string_view::npos)
    return "the key holds a line feed, where flared's text protocol ends a request (only the binary protocol stores it)";
  if (k.find('\0') != std::string_view::npos)
    return "the key holds a NUL byte, which flared's text protocol refuses (only the binary protocol stores it)";
  return "";
}

namespace detail {
// The four numbers that end a VALUE line ("flags length version expire"), split off its end:
// the key before them may hold anything. False if the line does not end so.
inline bool split_value_tail(std::string_view line, std::string_view& head, unsigned long long& flags,
                             size_t& length, unsigned long long& version, long long& expire) {
  std::string_view f[4];
  size_t end = line.size();
  for (int k = 3; k >= 0; --k) {
    size_t sp = end == 0 ? std::string_view::npos : line.rfind(' ', end - 1);
    if (sp == std::string_view::npos) return false;
    f[k] = line.substr(sp + 1, end - sp - 1);
    end = sp;
  }
  auto fl = to_int(f[0]), len = to_int(f[1]), ver = to_int(f[2]), exp = to_int(f[3]);
  if (!fl || *fl < 0 || *fl > UINT32_MAX || !len || *len < 0 || *len > FLARE_TOOLS_MAX_VALUE_BYTES || !ver ||
      *ver < 0 || !exp || *exp < 0)
    return false;
  head = line.substr(0, end);
  flags = static_cast<unsigned long long>(*fl);
  length = static_cast<size_t>(*len);
  version = static_cast<unsigned long long>(*ver);
  expire = *exp;
  return true;
}
} // namespace detail

inline ItemHeader parse_value_line(std::string_view line) {
  auto bad = [&](const std::string& why) {
    return ProtocolError("malformed VALUE line (" + why + "): '" + detail::printable(line) + "'");
  };
  if (line.rfind("VALUE ", 0) != 0) throw bad("expected VALUE key flags length version expire");
  ItemHeader h;
  std::string_view head;
  if (!detail::split_value_tail(line.substr(6), head, h.flags, h.length, h.version, h.expire)) {
    if (std::count(line.begin() + 6, line.end(), ' ') < 4)
      throw bad("too few fields: the key may hold CR LF (stored through the binary protocol), which flare's text dump "
                "cannot frame");
    throw bad("expected VALUE key flags length version expire");
  }
  if (head.empty()) throw bad("empty key");
  if (head.find(' ') != std::string_view::npos)
    throw bad("the key holds a space (stored through the binary protocol), which flare's text dump cannot frame");
  if (head.size() > FLARE_TOOLS_MAX_KEY_BYTES)
    throw bad("key longer than " + std::to_string(FLARE_TOOLS_MAX_KEY_BYTES) + " bytes");
  if (head.find('\0') != std::string_view::npos)
    throw bad("the key holds a NUL byte, which flared never writes in a dump");
  h.key.assign(head.data(), head.size());
  return h;
}

// ---- 5. Clients --------------------------------------------------------------------------

inline ServerClient::ServerClient(Endpoint ep, int timeout_ms)
    : ep_(std::move(ep)), timeout_ms_(timeout_ms) {}

inline void ServerClient::close() {
  if (sock_.is_open()) {
    // Be polite but never wait for the peer: "quit" needs no answer.
    try {
      sock_.set_timeout(200);
      sock_.send_all("quit\r\n");
    } catch (const Error&) {
    }
  }
  sock_.close();
}

inline Reply ServerClient::request(const std::string& line) {
  send_line(line);
  return read_reply(sock_, trace_);
}

inline Reply ServerClient::request_ok(const std::string& line) {
  Reply r = request(line);
  if (r.is_error() || !r.ok())
    throw ServerError(ep_.display() + " answered '" + detail::printable(r.status) + "' to '" + line + "'");
  return r;
}

inline Reply ServerClient::request_change(const std::string& line) {
  if (log_ && log_->interrupted && log_->interrupted())
    throw Interrupted("interrupted: '" + line + "' was not sent to " + ep_.display());
  if (log_) log_->sent.push_back(ep_.key() + " " + line);
  try {
    return request(line);
  } catch (const Interrupted&) {
    throw Interrupted("interrupted while waiting for " + ep_.display() + " to answer '" + line +
                      "': it was sent and may have been done");
  }
}

inline std::string ServerClient::version() {
  send_line("version");
  auto line = sock_.read_line();
  if (trace_) trace_("<-- " + detail::printable(line));
  if (line.rfind("VERSION ", 0) != 0)
    throw ProtocolError("unexpected answer to version from " + ep_.display() + ": '" + detail::printable(line) + "'");
  return std::string(line.substr(8));
}

inline void ServerClient::send_line(const std::string& line) {
  if (sock_.cancel() && sock_.cancel()()) throw Interrupted("interrupted");
  if (trace_) trace_("--> " + ep_.display() + " " + line);
  if (!sock_.is_open()) {
    sock_.connect(ep_, timeout_ms_);
  }
  sock_.set_timeout(timeout_ms_);
  sock_.send_all(line + "\r\n");
}

inline void ServerClient::send_raw(std::string_view bytes) {
  if (sock_.cancel() && sock_.cancel()()) throw Interrupted("interrupted");
  if (!sock_.is_open()) sock_.connect(ep_, timeout_ms_);
  sock_.set_timeout(timeout_ms_);
  sock_.send_all(bytes);
}

inline void ServerClient::connect() {
  if (!sock_.is_open()) sock_.connect(ep_, timeout_ms_);
}

inline detail::Socket& ServerClient::socket() { return sock_; }

inline void IndexClient::require_index() {
  if (is_index_) return;
  Reply r = request("meta");
  if (r.status == "ERROR")
    throw NotAnIndexError(ep_.display() + " is a data node (flared), not an index server (flarei): it answers ERROR "
                          "to `meta`; give flarei's address with -i/--index-server and -p/--index-server-port (to "
                          "write flare.xml from the map this node holds: flare-admin index --from-node " + ep_.key() + ")");
  if (!r.ok()) throw ServerError(ep_.display() + ": `meta` answered '" + r.status + "'");
  is_index_ = true;
}

inline std::string IndexClient::node_role(const Endpoint& n, const std::string& role, int balance, int partition) {
  return request_change("node role " + n.host + " " + std::to_string(n.port) + " " + role + " " +
                        std::to_string(balance) + " " + std::to_string(partition))
      .status;
}

inline std::string IndexClient::node_state(const Endpoint& n, const std::string& state) {
  return request_change("node state " + n.host + " " + std::to_string(n.port) + " " + state).status;
}

inline std::string IndexClient::node_remove(const Endpoint& n) {
  return request_change("node remove " + n.host + " " + std::to_string(n.port)).status;
}

namespace detail {

// One node's progress through connect -> send its requests (pipelined) -> read a reply to each.
struct StatsProbe {
  StatsResult result;                         // the connection's outcome (ok: every reply read)
  std::string request;                        // the lines sent, each with its CR LF
  std::vector<std::string> asked;             // each request line, without CR LF
  std::vector<std::vector<std::string>> lines; // each reply's lines before END, once complete
  std::vector<std::string> reply_error;        // each reply's error ("" when it ended in END)
  size_t scanned = 0, terminals = 0;          // reply lines looked at, and the replies ended in them
  std::vector<std::pair<sockaddr_storage, socklen_t>> addrs;
  size_t next_addr = 0;
  int fd = -1;
  enum Phase { waiting, connecting, sending, reading, done } phase = waiting;
  bool traced = false; // its requests were given to GatherHooks::trace (a probe may start twice)
  size_t sent = 0;
  std::string inbuf;
  Clock::time_point deadline{}; // from the moment its connect starts
  bool out_of_fds = false;      // the last socket() failed with EMFILE/ENFILE

  void finish_error(const std::string& why) {
    if (fd >= 0) ::close(fd);
    fd = -1;
    phase = done;
    result.ok = false;
    result.error = why;
  }
};

inline void probe_try_connect(StatsProbe& p) {
  p.out_of_fds = false;
  while (p.next_addr < p.addrs.size()) {
    int err = 0;
    const auto& a = p.addrs[p.next_addr++];
    p.fd = start_connect(a.first, a.second, err);
    if (p.fd >= 0) {
      p.phase = StatsProbe::connecting;
      return;
    }
    p.result.error = errno_text(err);
    if (err == EMFILE || err == ENFILE) {
      p.out_of_fds = true;
      break; // the address is fine: the process is out of descriptors
    }
  }
  p.finish_error(p.result.error.empty() ? "cannot connect" : p.result.error);
}

// The last complete line of `buf` when `buf` ends with one ("" otherwise).
inline std::string_view last_line(const std::string& buf) {
  if (buf.size() < 2 || buf.compare(buf.size() - 2, 2, "\r\n") != 0) return {};
  size_t start = buf.rfind('\n', buf.size() - 3);
  start = start == std::string::npos ? 0 : start + 1;
  return std::string_view(buf).substr(start, buf.size() - 2 - start);
}

// A reply ends at its END line, or at an error line that replaces it.
inline bool is_reply_end(std::string_view line) {
  return line == "END" || line == "ERROR" || line.rfind("SERVER_ERROR", 0) == 0 || line.rfind("CLIENT_ERROR", 0) == 0;
}

// Whether every reply the probe waits for has ended (the lines received since the last call
// are looked at once).
inline bool probe_reply_complete(StatsProbe& p) {
  for (;;) {
    size_t nl = p.inbuf.find('\n', p.scanned);
    if (nl == std::string::npos) break;
    std::string_view line(p.inbuf.data() + p.scanned, nl - p.scanned);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (is_reply_end(line)) ++p.terminals;
    p.scanned = nl + 1;
  }
  return p.terminals >= p.asked.size() && p.scanned == p.inbuf.size();
}

// Raises this process's soft limit on open files toward `wanted`, never above the hard limit
// and never lowering it, and returns the soft limit in force afterwards. A library changing a
// process-wide resource, on purpose: a gather of N nodes needs N sockets at once, the soft
// limit (often 1,024) is only a default, and the hard limit, the administrator's decision, is
// respected. Above the hard limit the gather works in a window instead (gather_window).
inline rlim_t raise_open_files_limit(rlim_t wanted) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return RLIM_INFINITY; // unknown: EMFILE will tell
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= wanted) return rl.rlim_cur;
  rlimit raised = rl;
  raised.rlim_cur = (rl.rlim_max == RLIM_INFINITY || wanted < rl.rlim_max) ? wanted : rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) return raised.rlim_cur;
  return rl.rlim_cur;
}

// How many of `n` connections a gather may hold open at once: all of them when the (raised)
// limit allows, else the limit less FLARE_TOOLS_RESERVED_FDS (at least one).
inline size_t gather_window(size_t n) {
  const rlim_t reserve = FLARE_TOOLS_RESERVED_FDS;
  rlim_t limit = raise_open_files_limit(static_cast<rlim_t>(n) + reserve);
  if (limit == RLIM_INFINITY || limit >= static_cast<rlim_t>(n) + reserve) return n;
  rlim_t w = limit > 2 * reserve ? limit - reserve : limit / 2;
  return std::max<size_t>(1, std::min<size_t>(n, static_cast<size_t>(w)));
}

// Splits the complete replies into the probe's lines, one vector per request (result.ok); a
// reply that ended in an error line instead of END has its reply_error.
inline void probe_finish_reply(StatsProbe& p) {
  ::close(p.fd);
  p.fd = -1;
  p.phase = StatsProbe::done;
  p.result.fetched_at = Clock::now();
  p.lines.assign(p.asked.size(), {});
  p.reply_error.assign(p.asked.size(), std::string());
  try {
    std::string_view all(p.inbuf);
    size_t start = 0, k = 0;
    while (start < all.size() && k < p.asked.size()) {
      size_t nl = all.find('\n', start);
      if (nl == std::string_view::npos) nl = all.size();
      std::string_view line = all.substr(start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      start = nl + 1;
      if (line.size() > FLARE_TOOLS_MAX_LINE_BYTES) throw ProtocolError("reply line too long");
      if (is_reply_end(line)) {
        if (line != "END")
          p.reply_error[k] = ServerError("answered '" + printable(line) + "' to " + printable(p.asked[k])).what();
        ++k;
        continue;
      }
      p.lines[k].emplace_back(line);
    }
    p.result.ok = true;
  } catch (const Error& e) {
    p.result.ok = false;
    p.result.error = e.what();
  }
  p.inbuf.clear();
  p.inbuf.shrink_to_fit();
}

// Moves a probe on after poll() saw activity on its socket.
inline void probe_service(StatsProbe& p) {
  const std::string& request = p.request;
  const size_t max_reply = FLARE_TOOLS_MAX_REPLY_BYTES;
  if (p.phase == StatsProbe::connecting) {
    int err = connect_result(p.fd);
    if (err != 0) {
      ::close(p.fd);
      p.fd = -1;
      p.result.error = errno_text(err);
      probe_try_connect(p);
      return;
    }
    p.phase = StatsProbe::sending;
  }
  if (p.phase == StatsProbe::sending) {
    ssize_t n = handle_EINTR(
        [&] { return ::send(p.fd, request.data() + p.sent, request.size() - p.sent, kSendFlags); });
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      p.finish_error(errno_text(errno));
      return;
    }
    if (n > 0) p.sent += static_cast<size_t>(n);
    if (p.sent == request.size()) p.phase = StatsProbe::reading;
    return;
  }
  if (p.phase == StatsProbe::reading) {
    char buf[16384];
    ssize_t n = handle_EINTR([&] { return ::recv(p.fd, buf, sizeof buf, 0); });
    if (n == 0) {
      p.finish_error("connection closed in the middle of the reply");
      return;
    }
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) p.finish_error(errno_text(errno));
      return;
    }
    p.inbuf.append(buf, static_cast<size_t>(n));
    if (p.inbuf.size() > max_reply) {
      p.finish_error("reply larger than " + std::to_string(max_reply) + " bytes");
      return;
    }
    if (probe_reply_complete(p)) probe_finish_reply(p);
  }
}

} // namespace detail

namespace detail {
// The trace of one probe that has ended: its replies' lines, or why it failed.
inline void trace_probe(const StatsProbe& p, const TraceFn& trace) {
  const std::string who = "<-- " + p.result.endpoint.display() + " ";
  if (!p.result.ok) {
    trace(who + "(" + p.result.error + ")");
    return;
  }
  for (size_t k = 0; k < p.lines.size(); ++k) {
    for (const auto& line : p.lines[k]) trace(who + printable(line));
    trace(who + (p.reply_error[k].empty() ? std::string("END") : p.reply_error[k]));
  }
}

// One probe per (endpoint, request lines) of `asks`: the requests are sent pipelined on one
// connection (flare answers them in order: tests/data/transcripts/README.md).
// `on_reply` (if set) is called for each probe as soon as its replies are in (result.ok), e.g. to
// parse and drop its lines: 2,000 nodes' lines held until the end cost 2 MB more.
inline std::vector<StatsProbe> gather_probes(const std::vector<std::pair<Endpoint, std::vector<std::string>>>& asks,
                                             int timeout_ms, const std::function<void(StatsProbe&)>& on_reply = nullptr,
                                             const GatherHooks& hooks = {}) {
  const size_t n = asks.size();
  size_t window = detail::gather_window(n);
  std::vector<StatsProbe> probes(n);
  for (size_t i = 0; i < n; ++i) {
    probes[i].result.endpoint = asks[i].first;
    probes[i].asked = asks[i].second;
    for (const auto& r : asks[i].second) probes[i].request += r + "\r\n";
  }
  size_t next = 0;            // the next probe to start
  std::vector<size_t> active; // probes with an open socket
  std::vector<pollfd> fds;
  auto close_all = [&] {
    for (auto& p : probes)
      if (p.fd >= 0) {
        ::close(p.fd);
        p.fd = -1;
      }
  };
  for (;;) {
    if (hooks.cancel && hooks.cancel()) {
      close_all();
      throw Interrupted("interrupted");
    }
    // Start a batch of connections, as far as the window allows.
    for (size_t started = 0; next < n && active.size() < window && started < FLARE_TOOLS_GATHER_CONNECT_BATCH;
         ++started) {
      auto& p = probes[next];
      p.deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
      if (hooks.trace && !p.traced)
        for (const auto& r : p.asked) hooks.trace("--> " + p.result.endpoint.display() + " " + printable(r));
      p.traced = true;
      try {
        if (p.addrs.empty()) p.addrs = detail::resolve(asks[next].first);
        detail::probe_try_connect(p);
      } catch (const Error& e) {
        p.finish_error(e.what());
      }
      if (p.out_of_fds && !active.empty()) {
        // More descriptors in use than the limit suggested: wait for one to be freed.
        window = active.size();
        p.phase = StatsProbe::waiting;
        p.next_addr = 0;
        p.out_of_fds = false;
        p.result.error.clear();
        break;
      }
      if (p.phase != StatsProbe::done) active.push_back(next);
      else if (hooks.trace) trace_probe(p, hooks.trace);
      ++next;
    }
    if (active.empty()) {
      if (next >= n) break;
      continue;
    }
    auto soonest = Clock::time_point::max();
    fds.clear();
    for (size_t i : active) {
      auto& p = probes[i];
      soonest = std::min(soonest, p.deadline);
      fds.push_back(pollfd{p.fd, static_cast<short>(p.phase == StatsProbe::reading ? POLLIN : POLLOUT), 0});
    }
    bool more_to_start = next < n && active.size() < window;
    int ms = more_to_start ? 0 : detail::remaining_ms(soonest);
    if (hooks.cancel) ms = std::min(ms, FLARE_TOOLS_CANCEL_CHECK_MS);
    // A signal ends poll early; the next round asks `cancel`, then waits for the time left only.
    int rc = ::poll(fds.data(), fds.size(), ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      std::string why = std::string("poll failed: ") + detail::errno_text(errno);
      for (size_t i : active) probes[i].finish_error(why);
      for (; next < n; ++next) probes[next].finish_error(why);
      break;
    }
    auto now = Clock::now();
    for (size_t k = 0; k < fds.size(); ++k) {
      auto& p = probes[active[k]];
      if (fds[k].revents != 0) {
        detail::probe_service(p);
        if (p.phase == StatsProbe::done && hooks.trace) trace_probe(p, hooks.trace);
        if (p.phase == StatsProbe::done && p.result.ok && on_reply) on_reply(p);
      }
      if (p.phase != StatsProbe::done && now >= p.deadline) {
        p.finish_error("timed out");
        if (hooks.trace) trace_probe(p, hooks.trace);
      }
    }
    active.erase(std::remove_if(active.begin(), active.end(),
                                [&](size_t i) { return probes[i].phase == StatsProbe::done; }),
                 active.end());
  }
  close_all();
  return probes;
}
} // namespace detail

inline std::vector<GatherReply> gather_replies(const std::vector<std::pair<Endpoint, std::string>>& asks, int timeout_ms,
                                               const GatherHooks& hooks) {
  std::vector<std::pair<Endpoint, std::vector<std::string>>> grouped;
  std::vector<std::pair<size_t, size_t>> where(asks.size()); // ask -> (probe, reply)
  std::unordered_map<std::string, size_t> probe_of;
  for (size_t i = 0; i < asks.size(); ++i) {
    auto it = probe_of.emplace(asks[i].first.key(), grouped.size()).first;
    if (it->second == grouped.size()) grouped.emplace_back(asks[i].first, std::vector<std::string>());
    where[i] = {it->second, grouped[it->second].second.size()};
    grouped[it->second].second.push_back(asks[i].second);
  }
  auto probes = detail::gather_probes(grouped, timeout_ms, nullptr, hooks);
  std::vector<GatherReply> out(asks.size());
  for (size_t i = 0; i < asks.size(); ++i) {
    auto& p = probes[where[i].first];
    const size_t k = where[i].second;
    out[i].endpoint = asks[i].first;
    out[i].request = asks[i].second;
    out[i].ok = p.result.ok && p.reply_error[k].empty();
    out[i].error = !p.result.ok ? p.result.error : p.reply_error[k];
    if (p.result.ok) out[i].lines = std::move(p.lines[k]);
  }
  return out;
}

namespace detail {
// gather_stats() for any `stats ...` requests whose replies are STAT lines up to END: endpoint
// i is sent whats[i] (without CR LF); each reply parsed with parse_stats (name = up to the
// first space), as it completes. whats.size() == endpoints.size().
inline std::vector<StatsResult> gather_stat_lines(const std::vector<Endpoint>& endpoints, int timeout_ms,
                                                  const std::vector<std::string>& whats, const GatherHooks& hooks = {}) {
  std::vector<std::pair<Endpoint, std::vector<std::string>>> asks;
  asks.reserve(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i) asks.emplace_back(endpoints[i], std::vector<std::string>{whats.at(i)});
  auto parse = [](StatsProbe& p) {
    if (!p.reply_error[0].empty()) {
      p.result.ok = false;
      p.result.error = p.reply_error[0];
      return;
    }
    try {
      p.result.stats = parse_stats(p.lines[0]);
    } catch (const Error& e) {
      p.result.ok = false;
      p.result.error = e.what();
    }
    p.lines.clear();
    p.lines.shrink_to_fit();
  };
  auto probes = detail::gather_probes(asks, timeout_ms, parse, hooks);
  std::vector<StatsResult> out;
  out.reserve(probes.size());
  for (auto& p : probes) out.push_back(std::move(p.result));
  return out;
}
} // namespace detail

inline std::vector<StatsResult> gather_stats(const std::vector<Endpoint>& endpoints, int timeout_ms,
                                             const GatherHooks& hooks) {
  return detail::gather_stat_lines(endpoints, timeout_ms, std::vector<std::string>(endpoints.size(), "stats"), hooks);
}

// ---- 5b. Replication lag -----------------------------------------------------------------

namespace detail {
// Names the slave of a replication thread: its peer when the map (if any) has that key, else
// the node whose thread_type is the thread's type. Built once per gather.
class SlaveNamer {
public:
  explicit SlaveNamer(const std::vector<NodeInfo>& nodes) {
    for (const auto& n : nodes) {
      keys_.insert(n.key);
      by_type_.emplace(n.thread_type, n.key);
    }
  }
  std::string name(const ThreadInfo& t) const {
    if (keys_.empty() || keys_.count(t.peer)) return t.peer;
    auto type = to_int(t.type);
    auto it = type ? by_type_.find(*type) : by_type_.end();
    return it != by_type_.end() ? it->second : t.peer;
  }

private:
  std::unordered_set<std::string> keys_;
  std::unordered_map<long long, std::string> by_type_;
};

inline std::vector<SlaveLag> slave_lags(const std::vector<ThreadInfo>& threads, const SlaveNamer& namer) {
  std::map<std::string, SlaveLag> by;
  for (const auto& t : threads) {
    std::string who = namer.name(t);
    SlaveLag& l = by[who];
    l.slave = who;
    // A count that is not one is not 0: the lag would read as none (every flared 1.3.4 thread
    // shows queue and behind, whole numbers from 0: tests/data/transcripts/index_stats_threads.txt).
    auto count = [&](const std::string& field, const std::string& v) {
      auto n = to_int(v);
      if (!n || *n < 0)
        throw ProtocolError("stats threads: thread " + printable(t.id) + "'s " + field + " is '" + printable(v) +
                            "', not a count");
      return *n;
    };
    long long q = count("queue", t.queue);
    l.queue = q > LLONG_MAX - l.queue ? LLONG_MAX : l.queue + q; // a hostile peer's numbers never overflow
    if (t.behind) l.behind = std::max(l.behind, count("behind", *t.behind));
    l.threads += 1;
    if (t.state == "execute") l.writing = true;
  }
  std::vector<SlaveLag> out;
  for (auto& kv : by) out.push_back(std::move(kv.second));
  return out;
}
} // namespace detail

inline std::vector<SlaveLag> slave_lags(const std::vector<ThreadInfo>& threads, const std::vector<NodeInfo>& nodes) {
  return detail::slave_lags(threads, detail::SlaveNamer(nodes));
}

inline std::vector<SlaveLag> ask_slave_lag(const Endpoint& master, int timeout_ms, const std::vector<NodeInfo>& nodes,
                                           const TraceFn& trace, const CancelFn& cancel) {
  ServerClient c(master, timeout_ms);
  c.set_trace(trace);
  if (cancel) c.set_cancel(cancel);
  return slave_lags(parse_stats_threads(c.request_ok("stats threads slave").lines), nodes);
}

inline const SlaveLag* LagResult::find(const std::string& slave_key) const {
  for (const auto& l : slaves)
    if (l.slave == slave_key) return &l;
  return nullptr;
}

namespace detail {
inline LagResult lag_result(StatsResult&& r, const SlaveNamer& namer) {
  LagResult l;
  l.master = std::move(r.endpoint);
  l.ok = r.ok;
  l.error = std::move(r.error);
  if (r.ok) {
    try {
      std::vector<std::string> lines;
      lines.reserve(r.stats.fields.size());
      for (const auto& f : r.stats.fields) lines.push_back("STAT " + f.first + " " + f.second);
      l.slaves = slave_lags(parse_stats_threads(lines), namer);
    } catch (const Error& e) {
      l.ok = false;
      l.error = e.what();
    }
  }
  return l;
}
} // namespace detail

inline std::vector<LagResult> gather_slave_lag(const std::vector<Endpoint>& masters, int timeout_ms,
                                               const std::vector<NodeInfo>& nodes, const GatherHooks& hooks) {
  std::vector<LagResult> out;
  out.reserve(masters.size());
  detail::SlaveNamer namer(nodes);
  for (auto& r : detail::gather_stat_lines(masters, timeout_ms, std::vector<std::string>(masters.size(), "stats threads slave"),
                                           hooks))
    out.push_back(detail::lag_result(std::move(r), namer));
  return out;
}

inline StatsAndLag gather_stats_and_lag(const std::vector<Endpoint>& endpoints, const std::vector<Endpoint>& masters,
                                        int timeout_ms, const std::vector<NodeInfo>& nodes,
                                        const GatherHooks& hooks) {
  // One connection per node: a master shown is asked `stats` and `stats threads slave` on it,
  // pipelined, so that its curr_connections counts the tool once, as a raw `stats` (and 0.7.3)
  // does (two connections showed 3 where flare 1.3.4 has 2).
  std::vector<std::pair<Endpoint, std::vector<std::string>>> asks;
  std::unordered_map<std::string, size_t> probe_of; // endpoint key -> its `stats` probe
  asks.reserve(endpoints.size() + masters.size());
  for (const auto& e : endpoints) {
    probe_of.emplace(e.key(), asks.size());
    asks.emplace_back(e, std::vector<std::string>{"stats"});
  }
  std::vector<std::pair<size_t, size_t>> lag_at; // master i -> (probe, reply)
  for (const auto& m : masters) {
    auto it = probe_of.find(m.key());
    if (it != probe_of.end()) {
      lag_at.emplace_back(it->second, asks[it->second].second.size());
      asks[it->second].second.push_back("stats threads slave");
    } else {
      lag_at.emplace_back(asks.size(), 0);
      asks.emplace_back(m, std::vector<std::string>{"stats threads slave"});
    }
  }
  // Each `stats` reply is parsed as its node's replies are in, and its lines dropped (2,000
  // nodes' lines held to the end cost 2 MB more); the few lines of `stats threads slave` stay.
  auto parse = [](detail::StatsProbe& p) {
    for (size_t k = 0; k < p.asked.size() && k < p.lines.size() && k < p.reply_error.size(); ++k) {
      if (p.asked[k] != "stats" || !p.reply_error[k].empty()) continue;
      try {
        p.result.stats = parse_stats(p.lines[k]);
      } catch (const Error& e) {
        p.reply_error[k] = e.what();
      }
      std::vector<std::string>().swap(p.lines[k]);
    }
  };
  auto probes = detail::gather_probes(asks, timeout_ms, parse, hooks);
  auto reply = [&](size_t probe, size_t k) {
    detail::StatsProbe& p = probes[probe];
    StatsResult r;
    r.endpoint = p.result.endpoint;
    r.ok = p.result.ok;
    r.error = p.result.error;
    r.fetched_at = p.result.fetched_at;
    if (p.asked.at(k) == "stats") r.stats = std::move(p.result.stats); // each read once: moved, not copied
    if (r.ok && k < p.reply_error.size() && !p.reply_error[k].empty()) {
      r.ok = false;
      r.error = p.reply_error[k];
    }
    if (r.ok && p.asked.at(k) != "stats") {
      try {
        r.stats = parse_stats(p.lines.at(k));
      } catch (const Error& e) {
        r.ok = false;
        r.error = e.what();
      }
    }
    if (!r.ok) r.stats = NodeStats();
    return r;
  };
  detail::SlaveNamer namer(nodes);
  StatsAndLag out;
  out.stats.reserve(endpoints.size());
  out.lags.reserve(masters.size());
  for (size_t i = 0; i < endpoints.size(); ++i) out.stats.push_back(reply(i, 0));
  for (size_t i = 0; i < masters.size(); ++i) {
    StatsResult r = reply(lag_at[i].first, lag_at[i].second);
    r.endpoint = masters[i];
    out.lags.push_back(detail::lag_result(std::move(r), namer));
  }
  return out;
}

// ---- 6. Cluster model --------------------------------------------------------------------

inline Cluster::Cluster(std::vector<NodeInfo> nodes)
    : nodes_(std::move(nodes)) {
  // Indexes, so that a question about one node or partition does not walk 2,000 nodes (check
  // asks one per partition and per node: O(n^2) was a tenth of its time at 2,000 nodes).
  for (size_t i = 0; i < nodes_.size(); ++i) {
    by_key_.emplace(nodes_[i].key, i); // the first of a key listed twice, as a walk finds it
    if (nodes_[i].partition >= 0) by_partition_[nodes_[i].partition].push_back(i);
    partition_count_ = std::max(partition_count_, nodes_[i].partition + 1);
  }
}

inline const NodeInfo* Cluster::find(const std::string& key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : &nodes_[it->second];
}

inline const NodeInfo* Cluster::master_of(int partition) const {
  const NodeInfo* down = nullptr;
  for (auto* n : masters_of(partition)) {
    if (n->state != "down") return n;
    if (!down) down = n;
  }
  return down;
}

inline std::vector<const NodeInfo*> Cluster::masters_of(int partition) const {
  std::vector<const NodeInfo*> out;
  auto it = by_partition_.find(partition);
  if (it == by_partition_.end()) return out;
  for (size_t i : it->second)
    if (nodes_[i].is_master()) out.push_back(&nodes_[i]);
  return out;
}

inline const NodeInfo* Cluster::preserved_down_master(int partition) const {
  const NodeInfo* m = master_of(partition);
  return m && m->state == "down" ? m : nullptr;
}

inline std::vector<const NodeInfo*> Cluster::slaves_of(int partition) const {
  std::vector<const NodeInfo*> out;
  auto it = by_partition_.find(partition);
  if (it == by_partition_.end()) return out;
  for (size_t i : it->second)
    if (nodes_[i].is_slave()) out.push_back(&nodes_[i]);
  return out;
}

inline int Cluster::active_slave_count(int partition, const std::string& except_key) const {
  int c = 0;
  for (auto* s : slaves_of(partition))
    if (s->is_active() && s->key != except_key) ++c;
  return c;
}

inline std::vector<NodeInfo> Cluster::list_order() const {
  auto out = nodes_;
  int pc = partition_count();
  std::sort(out.begin(), out.end(), [pc](const NodeInfo& a, const NodeInfo& b) {
    int pa = a.partition < 0 ? pc : a.partition, pb = b.partition < 0 ? pc : b.partition;
    if (pa != pb) return pa < pb;
    if (a.role != b.role) return a.role < b.role;
    return a.key < b.key;
  });
  return out;
}

inline std::vector<NodeInfo> Cluster::stats_order() const {
  auto out = nodes_;
  std::sort(out.begin(), out.end(), [](const NodeInfo& a, const NodeInfo& b) {
    if (a.partition != b.partition) return a.partition < b.partition;
    if (a.role != b.role) return a.role < b.role;
    return a.key < b.key;
  });
  return out;
}

inline bool Cluster::reconstructable(const NodeInfo& n) const {
  if (!n.is_active() || n.is_proxy()) return false;
  if (n.is_slave()) return true;
  return active_slave_count(n.partition) >= 1;
}

inline bool Cluster::safely_reconstructable(const NodeInfo& n) const {
  if (!n.is_active() || n.is_proxy()) return false;
  if (n.is_master()) return active_slave_count(n.partition) >= 2;
  return active_slave_count(n.partition, n.key) >= 1;
}

inline std::vector<Endpoint> lag_masters(const Cluster& cluster, const std::vector<NodeInfo>& shown) {
  std::vector<Endpoint> out;
  std::unordered_set<std::string> asked;
  for (const auto& n : shown) {
    const NodeInfo* m = n.is_slave() ? cluster.master_of(n.partition) : nullptr;
    if (m && asked.insert(m->key).second) out.push_back(m->endpoint());
  }
  return out;
}

inline std::map<std::string, SlaveLag> lags_by_slave(const Cluster& cluster, const std::vector<LagResult>& lags) {
  std::unordered_map<std::string, const LagResult*> by_master;
  for (const auto& l : lags) by_master.emplace(l.master.key(), &l);
  std::map<std::string, SlaveLag> out;
  for (const auto& n : cluster.nodes()) {
    const NodeInfo* m = n.is_slave() ? cluster.master_of(n.partition) : nullptr;
    auto it = m ? by_master.find(m->key) : by_master.end();
    if (it == by_master.end() || !it->second->ok) continue;
    const SlaveLag* l = it->second->find(n.key);
    SlaveLag none;
    none.slave = n.key;
    out[n.key] = l ? *l : none;
  }
  return out;
}

inline std::optional<SlaveLag> lag_of(const Cluster& cluster, const NodeInfo& slave, const std::vector<LagResult>& lags) {
  const NodeInfo* m = slave.is_slave() ? cluster.master_of(slave.partition) : nullptr;
  for (const auto& r : lags) {
    if (!m || r.master.key() != m->key) continue;
    if (!r.ok) return std::nullopt;
    if (const SlaveLag* l = r.find(slave.key)) return *l;
    SlaveLag none;
    none.slave = slave.key;
    return none;
  }
  return std::nullopt;
}

// ---- 6b. Key hashing and partitions ------------------------------------------------------

inline bool parse_key_hash_algorithm(std::string_view name, KeyHashAlgorithm& out) {
  struct Entry { std::string_view name; KeyHashAlgorithm alg; };
  static constexpr Entry table[] = {
    {"simple", KeyHashAlgorithm::simple},   {"bitshift", KeyHashAlgorithm::bitshift},
    {"crc32", KeyHashAlgorithm::crc32},     {"adler32", KeyHashAlgorithm::adler32},
    {"murmur", KeyHashAlgorithm::murmur},   {"jenkins", KeyHashAlgorithm::jenkins},
  };
  for (const Entry& e : table) {
    if (e.name == name) {
      out = e.alg;
      return true;
    }
  }
  return false;
}

inline const char* to_string(KeyHashAlgorithm alg) {
  switch (alg) {
  case KeyHashAlgorithm::simple: return "simple";
  case KeyHashAlgorithm::bitshift: return "bitshift";
  case KeyHashAlgorithm::crc32: return "crc32";
  case KeyHashAlgorithm::adler32: return "adler32";
  case KeyHashAlgorithm::murmur: return "murmur";
  case KeyHashAlgorithm::jenkins: return "jenkins";
  }
  return "";
}

namespace detail {
namespace keyhash {

// All mixing is done in uint32_t so that overflow is defined; the server does
// the same sums in int and relies on two's complement wrap-around.
inline std::int32_t as_int32(std::uint32_t u) {
  // Portable two's complement reinterpretation (pre-C++20 casts are
  // implementation-defined for values above INT32_MAX).
  return u <= 0x7fffffffu ? static_cast<std::int32_t>(u)
              : -static_cast<std::int32_t>(~u) - 1;
}

inline std::uint32_t load_le32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
     (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

inline std::uint32_t rotl32(std::uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

// The server reads each byte as plain char, which is signed on x86: bytes
// >= 0x80 count as negative numbers. Fixed here so ARM hosts agree with x86.
inline std::uint32_t signed_byte(char ch) {
  const auto u = static_cast<unsigned char>(ch);
  return static_cast<std::uint32_t>(u) - (u >= 0x80u ? 256u : 0u);  // wraps mod 2^32
}

inline std::uint32_t simple_sum(std::string_view key) {
  std::uint32_t r = 0;
  for (char c : key) r += signed_byte(c);
  return r;
}

inline std::uint32_t bitshift(std::string_view key) {
  std::uint32_t r = 19790217u;
  for (char c : key) r = r * 37u + signed_byte(c);  // (r<<5)+(r<<2)+r
  return r;
}

// zlib's CRC-32 (reflected polynomial 0xEDB88320, starting from 0).
struct Crc32Table {
  std::uint32_t v[256];
  constexpr Crc32Table() : v() {
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      v[n] = c;
    }
  }
};

inline std::uint32_t crc32(std::string_view key) {
  static constexpr Crc32Table table{};
  std::uint32_t c = 0xFFFFFFFFu;
  for (char b : key) c = table.v[(c ^ static_cast<unsigned char>(b)) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// zlib's Adler-32 starting from 1 (what adler32(0, NULL, 0) yields).
inline std::uint32_t adler32(std::string_view key) {
  constexpr std::uint32_t mod = 65521u;
  constexpr std::size_t chunk = 5552;  // largest run whose sums cannot overflow 32 bits
  std::uint32_t a = 1, b = 0;
  std::size_t i = 0;
  while (i < key.size()) {
    const std::size_t end = key.size() - i > chunk ? i + chunk : key.size();
    for (; i < end; ++i) {
      a += static_cast<unsigned char>(key[i]);
      b += a;
    }
    a %= mod;
    b %= mod;
  }
  return (b << 16) | a;
}

// libhashkit's "murmur": MurmurHash2 whose seed is 0xdeadbeef times the key
// length, words read little-endian (what x86 builds of every version do).
inline std::uint32_t murmur(std::string_view key) {
  constexpr std::uint32_t m = 0x5bd1e995u;
  const std::uint32_t len = static_cast<std::uint32_t>(key.size());
  std::uint32_t h = (0xdeadbeefu * len) ^ len;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(key.data());
  std::size_t n = key.size();
  for (; n >= 4; n -= 4, p += 4) {
    std::uint32_t k = load_le32(p);
    k *= m;
    k ^= k >> 24;
    k *= m;
    h = (h * m) ^ k;
  }
  if (n > 0) {
    std::uint32_t tail = 0;
    for (std::size_t i = n; i-- > 0;) tail = (tail << 8) | p[i];
    h = (h ^ tail) * m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

// libhashkit's "jenkins": Bob Jenkins' lookup3 hashlittle() with initval 13.
// Its aligned fast paths give the same result as this byte-wise form.
inline std::uint32_t jenkins(std::string_view key) {
  std::uint32_t a, b, c;
  a = b = c = 0xdeadbeefu + static_cast<std::uint32_t>(key.size()) + 13u;
  if (key.empty()) return c;  // no final mixing for the empty key

  auto mix = [&]() {
    a -= c; a ^= rotl32(c, 4);  c += b;
    b -= a; b ^= rotl32(a, 6);  a += c;
    c -= b; c ^= rotl32(b, 8);  b += a;
    a -= c; a ^= rotl32(c, 16); c += b;
    b -= a; b ^= rotl32(a, 19); a += c;
    c -= b; c ^= rotl32(b, 4);  b += a;
  };
  const unsigned char* p = reinterpret_cast<const unsigned char*>(key.data());
  std::size_t n = key.size();
  for (; n > 12; n -= 12, p += 12) {
    a += load_le32(p);
    b += load_le32(p + 4);
    c += load_le32(p + 8);
    mix();
  }
  // Last 1..12 bytes, zero padded, little-endian.
  unsigned char last[12] = {};
  for (std::size_t i = 0; i < n; ++i) last[i] = p[i];
  a += load_le32(last);
  b += load_le32(last + 4);
  c += load_le32(last + 8);

  c ^= b; c -= rotl32(b, 14);
  a ^= c; a -= rotl32(c, 11);
  b ^= a; b -= rotl32(a, 25);
  c ^= b; c -= rotl32(b, 16);
  a ^= c; a -= rotl32(c, 4);
  b ^= a; b -= rotl32(a, 14);
  c ^= b; c -= rotl32(b, 24);
  return c;
}

} // namespace keyhash
} // namespace detail

inline int key_hash(std::string_view key, KeyHashAlgorithm alg) {
  const std::size_t nul = key.find('\0');
  if (nul != std::string_view::npos) key = key.substr(0, nul);

  std::uint32_t raw = 0;
  switch (alg) {
  case KeyHashAlgorithm::simple: raw = detail::keyhash::simple_sum(key); break;
  case KeyHashAlgorithm::bitshift: raw = detail::keyhash::bitshift(key); break;
  case KeyHashAlgorithm::crc32: raw = detail::keyhash::crc32(key); break;
  case KeyHashAlgorithm::adler32: raw = detail::keyhash::adler32(key); break;
  case KeyHashAlgorithm::murmur: raw = detail::keyhash::murmur(key); break;
  case KeyHashAlgorithm::jenkins: raw = detail::keyhash::jenkins(key); break;
  }
  const std::int32_t r = detail::keyhash::as_int32(raw);
  if (r < 0 && r != INT32_MIN) return -r;
  return r;
}

inline ModularResolver::ModularResolver(int max_partitions, int hint, int virtual_buckets)
    : max_(max_partitions), hint_(hint), virtual_(virtual_buckets) {}

inline int ModularResolver::bucket_of(int hash) const {
  if (virtual_ <= 0) return -1;
  const int b = hash % virtual_;
  return b < 0 ? -1 : b;
}

inline int ModularResolver::partition_of(int hash, int partition_count) const {
  if (!valid() || partition_count < 1 || partition_count >= max_) return -1;
  const int b = bucket_of(hash);
  if (b < 0) return -1;
  if (partition_count <= hint_) return b % partition_count;  // plain-modulo rows
  return row(partition_count)[static_cast<std::size_t>(b)];
}

inline const std::vector<int>& ModularResolver::row(int n) const {
  static const std::vector<int> none;
  if (!valid() || n < 1 || n >= max_) return none;
  auto found = rows_.find(n);
  if (found != rows_.end()) return found->second;

  std::vector<int> prev(static_cast<std::size_t>(virtual_));
  int from;  // row number held in prev
  auto below = rows_.lower_bound(n);
  if (below != rows_.begin() && std::prev(below)->first > hint_) {
    --below;
    from = below->first;
    prev = below->second;
  } else {
    from = hint_ < n ? hint_ : n;
    for (int j = 0; j < virtual_; ++j) prev[static_cast<std::size_t>(j)] = j % from;
  }

  std::vector<int> cur(prev.size());
  // One counter array for all rows, reset entry by entry: zeroing it whole for every row
  // made building row n cost O(n^2) on top of O(n x virtual).
  std::vector<int> seen(static_cast<size_t>(n), 0);
  for (int i = from + 1; i <= n; ++i) {
    for (size_t j = 0; j < prev.size(); ++j) {
      const int k = prev[j];
      const int c = ++seen[static_cast<size_t>(k)];
      cur[j] = (c % i == i - 1) ? i - 1 : k;
    }
    for (int k : prev) seen[static_cast<size_t>(k)] = 0;
    prev.swap(cur);
  }

  if (rows_.size() >= kMaxCachedRows) rows_.erase(rows_.begin());
  return rows_.emplace(n, std::move(prev)).first->second;
}

// ---- 6c. Node map versions

inline std::vector<std::pair<std::string, long long>> MapVersions::newer() const {
  std::vector<std::pair<std::string, long long>> out;
  if (index < 0) return out;
  for (const auto& n : nodes)
    if (n.second > index) out.push_back(n);
  return out;
}

inline long long MapVersions::highest() const {
  long long h = -1;
  for (const auto& n : nodes) h = std::max(h, n.second);
  return h;
}

inline std::string MapVersions::highest_node() const {
  for (const auto& n : nodes)
    if (n.second == highest()) return n.first;
  return std::string();
}

inline MapVersions map_versions(long long index_version, const std::vector<StatsResult>& results) {
  MapVersions v;
  v.index = index_version;
  for (const auto& r : results)
    if (r.ok)
      if (auto n = r.stats.number("node_map_version")) v.nodes.emplace_back(r.endpoint.key(), *n);
  return v;
}

inline MapVersions settle_map_versions(MapVersions v, const std::function<long long()>& index_version_now) {
  if (v.newer().empty() || !index_version_now) return v;
  try {
    v.index = std::max(v.index, index_version_now());
  } catch (const Error&) {
  }
  return v;
}

inline std::string map_version_warning(const MapVersions& v) {
  auto newer = v.newer();
  if (newer.empty()) return std::string();
  std::string who = v.highest_node() + " holds " + std::to_string(v.highest());
  if (newer.size() > 1) who += ", and " + std::to_string(newer.size() - 1) + " more node" + (newer.size() > 2 ? "s" : "");
  return "the nodes hold a newer node map than the index (index node_map_version " + std::to_string(v.index) + "; " +
         who + "): they ignore every change the index makes.";
}

inline std::string map_version_way_out(const MapVersions&) {
  return "To get out: flare-admin index --increment 1 -o flare.xml (it writes the map the nodes hold, not the index's "
         "older one, one version above theirs), stop flarei, put that file in its data dir as flare.xml, and start "
         "flarei again.";
}

// ---- one reading of a cluster: the index's map, its version, and the nodes' ----

namespace detail {
// The index's node_map_version (-1 when it reports none).
inline long long node_map_version_of(IndexClient& index) { return index.stats().number("node_map_version").value_or(-1); }

// Runs `read` between two reads of the index's node_map_version, again while they differ, at
// most `tries` times. Returns {before, after} of the last try: equal, what `read` read is of that
// version. Read the other way round (the map, then the version), a change between the two gave
// the old map under the new version.
template <typename Read> std::pair<long long, long long> between_versions(IndexClient& index, int tries, Read read) {
  std::pair<long long, long long> v{-1, -1};
  for (int attempt = 1; attempt <= std::max(1, tries); ++attempt) {
    v.first = node_map_version_of(index);
    read();
    v.second = node_map_version_of(index);
    if (v.first == v.second) break;
  }
  return v;
}

// Whether the server at `ep` answers `ping` within timeout_ms: false on any failure but
// Interrupted (`cancel`, when given, said stop).
inline bool answers_ping(const Endpoint& ep, int timeout_ms, const TraceFn& trace, const CancelFn& cancel = nullptr) {
  try {
    ServerClient sc(ep, timeout_ms);
    sc.set_trace(trace);
    if (cancel) sc.set_cancel(cancel);
    return sc.ping();
  } catch (const Interrupted&) {
    throw;
  } catch (const Error&) {
    return false;
  }
}
} // namespace detail

inline std::vector<Endpoint> with_version_nodes(std::vector<Endpoint> asked, const Cluster& c) {
  std::set<std::string> known;
  for (const auto& e : asked) known.insert(e.key());
  for (const auto& n : c.nodes())
    if (n.state != "down" && known.insert(n.key).second) asked.push_back(n.endpoint());
  return asked;
}

inline ClusterReading read_cluster(IndexClient& index, int timeout_ms, const ShownFn& shown, bool lags,
                                   const GatherHooks& hooks, int tries) {
  ClusterReading r;
  const auto [before, after] = detail::between_versions(index, tries, [&] {
    r.cluster = Cluster(index.stats_nodes());
    r.shown = shown ? shown(r.cluster) : std::vector<NodeInfo>();
    std::vector<Endpoint> eps;
    for (const auto& n : r.shown) eps.push_back(n.endpoint());
    eps = with_version_nodes(std::move(eps), r.cluster);
    if (lags) {
      StatsAndLag g = gather_stats_and_lag(eps, lag_masters(r.cluster, r.shown), timeout_ms, r.cluster.nodes(), hooks);
      r.stats = std::move(g.stats);
      r.lags = std::move(g.lags);
    } else {
      r.stats = gather_stats(eps, timeout_ms, hooks);
    }
  });
  r.node_map_version = before;
  r.version_after = after;
  r.stable = after == before;
  r.versions = map_versions(before, r.stats);
  // Not stable: reported as it stands after the last try, a node that seems ahead compared with
  // the version read after it.
  if (!r.stable) r.versions = settle_map_versions(r.versions, [v = after] { return v; });
  return r;
}

inline std::string reading_note(const ClusterReading& r) {
  if (r.stable) return std::string();
  return "the node map changed while it was read (node_map_version " + std::to_string(r.node_map_version) + ", then " +
         std::to_string(r.version_after) + "): what is shown may be from before that change, or mix both maps; run it "
         "again to see the cluster after it.";
}

inline std::string map_version_problem(const MapVersions& v) {
  const std::string w = map_version_warning(v);
  return w.empty() ? w : w + " " + map_version_way_out(v);
}

namespace detail {
inline std::string map_entry_text(const NodeInfo* n) {
  if (!n) return "not listed";
  return n->role + " " + n->state + " partition " + std::to_string(n->partition) + " balance " +
         std::to_string(n->balance) + " thread_type " + std::to_string(n->thread_type);
}
} // namespace detail

inline std::vector<std::string> node_map_differences(const Cluster& ours, const Cluster& theirs) {
  std::vector<std::string> out;
  auto line = [&](const std::string& key) {
    const NodeInfo* a = ours.find(key);
    const NodeInfo* b = theirs.find(key);
    const std::string ta = detail::map_entry_text(a), tb = detail::map_entry_text(b);
    if (ta != tb) out.push_back(key + ": the index's map: " + ta + "; the nodes': " + tb);
  };
  for (const auto& n : theirs.nodes()) line(n.key);
  for (const auto& n : ours.nodes())
    if (!theirs.find(n.key)) line(n.key);
  return out;
}

inline IndexMapChoice choose_index_map(const Cluster& index_map, const MapVersions& v, int timeout_ms) {
  IndexMapChoice c;
  c.cluster = index_map;
  c.version = v.index;
  if (v.newer().empty()) return c;
  const long long newest = v.highest();
  std::vector<std::pair<Endpoint, std::string>> asks;
  for (const auto& n : v.nodes)
    if (n.second == newest)
      if (const NodeInfo* node = index_map.find(n.first)) asks.emplace_back(node->endpoint(), "stats nodes");
  std::optional<Cluster> agreed;
  std::string errors;
  for (auto& r : gather_replies(asks, timeout_ms)) {
    const std::string key = r.endpoint.key();
    std::optional<Cluster> map;
    if (r.ok) {
      try {
        map = Cluster(parse_stats_nodes(r.lines));
      } catch (const Error& e) {
        r.error = e.what();
      }
    }
    if (!map) {
      errors += (errors.empty() ? "" : "; ") + key + ": " + r.error;
      continue;
    }
    if (!agreed) {
      agreed = std::move(map);
      c.from = key;
    } else if (!node_map_differences(*agreed, *map).empty()) {
      throw ServerError("the nodes holding node_map_version " + std::to_string(newest) + " answer different maps (" + c.from +
                        " and " + key + ": " + node_map_differences(*agreed, *map).front() +
                        "): no map is known to be the cluster's");
    }
    ++c.agreeing;
  }
  if (!agreed)
    throw NetworkError("no node holding node_map_version " + std::to_string(newest) + " answered `stats nodes` (" + errors + ")");
  c.differences = node_map_differences(index_map, *agreed);
  c.cluster = std::move(*agreed);
  c.version = newest;
  return c;
}

inline IndexMapChoice map_from_node(const Endpoint& node, int timeout_ms) {
  NodeClient n(node, timeout_ms);
  const long long version = n.stats().number("node_map_version").value_or(-1);
  Cluster map(n.stats_nodes());
  if (map.nodes().empty() || version < 0)
    throw ProtocolError(node.display() + " answers no node map (`stats nodes` lists no node, or `stats` has no node_map_version)");
  std::vector<Endpoint> others;
  for (const auto& x : map.nodes())
    if (x.state != "down" && x.key != node.key()) others.push_back(x.endpoint());
  // `node` stands for the index here: a listed node holding a newer map is read instead.
  MapVersions v = map_versions(version, gather_stats(others, timeout_ms));
  IndexMapChoice c = choose_index_map(map, v, timeout_ms);
  if (c.from.empty()) {
    c.from = node.key();
    c.agreeing = 1;
  }
  return c;
}

// ---- 7. Operations and waiting ----------------------------------------------------------

inline std::string with_index_option(const std::string& text, const Endpoint& index) {
  static const char* const kAsksIndex[] = {"list",  "stats",  "check", "master",      "slave", "balance", "down", "activate",
                                           "remove", "reconstruct", "part", "dump", "dumpkey", "verify", "summary", "threads", "apply"};
  const std::string prefix = "flare-admin ";
  std::string out;
  size_t at = 0;
  for (;;) {
    size_t hit = text.find(prefix, at);
    if (hit == std::string::npos) break;
    size_t word_end = hit + prefix.size();
    while (word_end < text.size() && std::islower(static_cast<unsigned char>(text[word_end]))) ++word_end;
    const std::string word = text.substr(hit + prefix.size(), word_end - hit - prefix.size());
    bool asks = false;
    for (const char* w : kAsksIndex) asks = asks || word == w;
    // the subcommand as a whole word (not "listing"), followed by nothing, a blank or punctuation
    bool whole = word_end >= text.size() || !std::isalnum(static_cast<unsigned char>(text[word_end]));
    out.append(text, at, word_end - at);
    if (asks && whole && text.compare(word_end, 4, " -i ") != 0) out += " -i " + index.key();
    at = word_end;
  }
  out.append(text, at, std::string::npos);
  return out;
}

inline Outcome worse(Outcome a, Outcome b) { return static_cast<int>(a) > static_cast<int>(b) ? a : b; }

inline std::string eta_text(const ConstructionProgress& p) {
  if (p.items <= 0 || p.elapsed <= 0 || p.master_total_is_bound) return "n/a";
  double rate = static_cast<double>(p.items) / p.elapsed;
  // In double throughout: the master's count comes from a peer, and a long long difference or a
  // quotient beyond its range would be undefined behaviour (as fuzzing found in hit_rate_cell).
  double eta = (static_cast<double>(p.master_items) - static_cast<double>(p.items)) / rate;
  if (!(eta > 0)) return "0";
  if (eta >= 9.2e18) return "n/a";
  return std::to_string(static_cast<long long>(eta));
}

inline std::string format_slave_progress(const ConstructionProgress& p) {
  return std::to_string(p.items) + "/" + std::to_string(p.master_items) + (p.master_total_is_bound ? " at most" : "") +
         " (role = " + p.role + ", state = " + p.state +
         ") [ETA: " + eta_text(p) + " sec (elapsed = " + std::to_string(static_cast<long long>(p.elapsed)) + " sec)]";
}

inline std::string format_master_progress(const ConstructionProgress& p) {
  return std::to_string(p.items) + " (role = " + p.role + ", state = " + p.state + ") [ETA: n/a sec (elapsed = " +
         std::to_string(static_cast<long long>(p.elapsed)) + " sec)]";
}

inline ConstructionStopped::ConstructionStopped(const std::string& what, Why why_, ConstructionProgress last_)
    : Error(what), why(why_), last(std::move(last_)) {}

inline std::string copy_running(const Endpoint& node, const std::vector<Endpoint>& sources, int timeout_ms,
                                const TraceFn& trace, const CancelFn& cancel) {
  try {
    NodeClient c(node, timeout_ms);
    c.set_trace(trace);
    if (cancel) c.set_cancel(cancel);
    for (const auto& t : c.stats_threads()) {
      if (t.op != "dump") continue;
      for (const auto& s : sources) {
        if (t.peer != s.key()) continue;
        NodeClient sc(s, timeout_ms);
        sc.set_trace(trace);
        if (cancel) sc.set_cancel(cancel);
        for (const auto& st : sc.stats_threads())
          if (st.op == "dump") return s.key();
      }
    }
  } catch (const Interrupted&) {
    throw;
  } catch (const Error&) {
  }
  return std::string();
}

inline std::string copy_blocked_on(const Endpoint& node, int timeout_ms, const TraceFn& trace, const CancelFn& cancel) {
  try {
    NodeClient c(node, timeout_ms);
    c.set_trace(trace);
    if (cancel) c.set_cancel(cancel);
    for (const auto& t : c.stats_threads()) {
      if (t.op != "dump") continue;
      Endpoint src;
      try {
        src = parse_host_port(t.peer, 0);
      } catch (const Error&) {
        continue;
      }
      if (src.port <= 0) continue;
      try {
        NodeClient sc(src, timeout_ms);
        sc.set_trace(trace);
        if (cancel) sc.set_cancel(cancel);
        bool serving = false;
        for (const auto& st : sc.stats_threads()) serving = serving || st.op == "dump";
        if (!serving) return t.peer;
      } catch (const Interrupted&) {
        throw;
      } catch (const Error&) {
        return t.peer;
      }
    }
  } catch (const Interrupted&) {
    throw;
  } catch (const Error&) {
  }
  return std::string();
}

namespace detail {

// For the length of a wait that only reads: the client's requests also stop (Interrupted, the
// connection closed) once `also` says so, beside its own cancel (the cancellation rule's, which
// after the first change lets a change's answer be waited for). Restores that cancel at the end.
class ReadsStopAt {
public:
  ReadsStopAt(ServerClient& c, const CancelFn& also) : c_(c), saved_(c.socket().cancel()) {
    if (also) c_.set_cancel([saved = saved_, also] { return (saved && saved()) || also(); });
  }
  ~ReadsStopAt() { c_.set_cancel(saved_); }
  ReadsStopAt(const ReadsStopAt&) = delete;
  ReadsStopAt& operator=(const ReadsStopAt&) = delete;

private:
  ServerClient& c_;
  CancelFn saved_;
};

// `cancel`: Interrupted once it says stop (a stopped node does not hold Ctrl-C up for timeout_ms).
inline long long items_of(const Endpoint& ep, int timeout_ms, const TraceFn& trace = nullptr, const CancelFn& cancel = nullptr) {
  NodeClient c(ep, timeout_ms);
  c.set_trace(trace);
  if (cancel) c.set_cancel(cancel);
  return c.stats().number("curr_items").value_or(0);
}

// Sleeps in small steps so that Ctrl-C is seen within 50 ms.
inline bool pause(int ms, const OperationIO& io) {
  auto until = Clock::now() + std::chrono::milliseconds(ms);
  while (Clock::now() < until) {
    if (io.interrupted && io.interrupted()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50, std::max(1, remaining_ms(until)))));
  }
  return !(io.interrupted && io.interrupted());
}

// A NetworkError whose message already says where the job was left (ride_out_index's give_up,
// ChangeExecutor::lost_index_text): passed on as it is, never wrapped in that text again.
class IndexLost : public NetworkError {
public:
  using NetworkError::NetworkError;
};

// Asks the index `fn` again, on a new connection, while it does not answer (a flarei killed and
// restarted, or silent), for up to opt.timeout_ms from the start of the first question that
// failed; says once (io.warn) that it does not answer and once that it answers again. A real
// flarei restarted from its flare.xml answers within seconds with the map it had. When the time
// is up, throws NetworkError with give_up(why) as its message ("the index H:P has not answered
// for N s (why)" when give_up is empty); Interrupted when io.interrupted() says stop meanwhile.
template <typename Fn>
auto ride_out_index(IndexClient& index, const OperationOptions& opt, const OperationIO& io, Fn fn,
                    const std::function<std::string(const std::string&)>& give_up = nullptr, bool* was_gone = nullptr)
    -> decltype(fn()) {
  bool gone = false;
  Clock::time_point gone_at{};
  for (;;) {
    auto asked = Clock::now();
    try {
      auto r = fn();
      if (gone && io.warn) io.warn("the index " + index.endpoint().display() + " answers again.");
      if (was_gone) *was_gone = gone;
      return r;
    } catch (const NetworkError& e) {
      index.close(); // the next question connects again
      if (!gone) {
        gone = true;
        gone_at = asked;
        if (io.warn && Clock::now() - gone_at < std::chrono::milliseconds(opt.timeout_ms))
          io.warn("the index " + index.endpoint().display() + " does not answer (" + e.what() + "); asking it again for up to " +
                  seconds_text(opt.timeout_ms) + " s.");
      }
      if (Clock::now() - gone_at >= std::chrono::milliseconds(opt.timeout_ms)) {
        std::string why = "the index " + index.endpoint().display() + " has not answered for " + seconds_text(opt.timeout_ms) +
                          " s (" + e.what() + ")";
        if (give_up) throw IndexLost(give_up(why));
        throw NetworkError(why);
      }
      if (!pause(200, io)) throw Interrupted("interrupted while the index " + index.endpoint().display() + " did not answer");
    }
  }
}

// The common loop of the construction waits. Each poll interval: the node's role and state from
// the index, its items (and, for a slave, its master's) from the nodes; reports a progress line;
// returns at the goal. A construction is alive while its items, role or state move, or while the
// node shows its copy running (copy_running: a bwlimit-slowed copy is silent for size/rate
// seconds). An index that does not answer is asked again on a new connection at the next poll,
// for up to --timeout. The node questions of a poll share one deadline: the stall deadline (last
// progress + --timeout), at least 200 ms each, so a silent node or master (SIGSTOP) ends the wait
// within about --timeout plus a poll of its last progress. Throws ConstructionStopped when the node leaves the role being built
// (lost), when nothing moved and no copy showed for --timeout (stalled), or when the index has
// not answered for --timeout (index_unreachable); Error when the index no longer lists the node.
template <typename Goal, typename Lost>
inline WaitEnd construction_wait(IndexClient& index, const Endpoint& node, bool slave, const OperationOptions& opt,
                                 const OperationIO& io, Goal goal, Lost lost, ConstructionProgress& last) {
  const ReadsStopAt reads_stop(index, io.interrupted); // a stopped index does not hold Ctrl-C up
  const auto timeout = std::chrono::milliseconds(opt.timeout_ms);
  auto start = Clock::now();
  auto last_change = start;
  bool index_gone = false;           // the index has not answered since index_gone_at
  Clock::time_point index_gone_at = start;
  std::optional<ConstructionProgress> previous;
  std::vector<Endpoint> sources;
  ConstructionProgress p;
  bool seen_once = false;
  bool second_look = false; // a stall is declared on two looks in a row (a copy's threads end just before its state changes)
  for (;;) {
    bool seen = false;
    auto asked = Clock::now();
    try {
      Cluster c(index.stats_nodes());
      const NodeInfo* n = c.find(node);
      if (!n) throw Error(node.key() + " disappeared from the cluster while it was being constructed");
      seen = seen_once = true;
      if (index_gone && io.warn) io.warn("the index " + index.endpoint().display() + " answers again.");
      index_gone = false;
      p.index_error.clear();
      p.role = n->role;
      p.state = n->state;
      sources.clear();
      p.master_total_is_bound = slave && c.partition_count() > 1;
      if (slave) {
        if (const NodeInfo* m = c.master_of(n->partition)) sources.push_back(m->endpoint());
      } else {
        for (int q = 0; q < n->partition; ++q)
          if (const NodeInfo* m = c.master_of(q)) sources.push_back(m->endpoint());
      }
    } catch (const Interrupted&) {
      return WaitEnd::interrupted; // its connection closed: the next request connects again
    } catch (const NetworkError& e) {
      index.close(); // the next look connects again (a restarted flarei, or one that was silent)
      if (!index_gone) {
        index_gone = true;
        index_gone_at = asked;
        if (io.warn)
          io.warn("the index " + index.endpoint().display() + " does not answer (" + e.what() + "); asking it again for up to " +
                  detail::seconds_text(opt.timeout_ms) + " s.");
      }
      p.index_error = e.what();
    }
    const auto ask_until = std::max(Clock::now() + std::chrono::milliseconds(200), last_change + timeout);
    auto ask_ms = [&] { return std::max(200, std::min(opt.timeout_ms, remaining_ms(ask_until))); };
    auto node_answered = Clock::now();
    try {
      p.items = items_of(node, ask_ms(), index.trace(), io.interrupted);
      node_answered = Clock::now();
      p.node_error.clear();
    } catch (const NetworkError& e) {
      p.node_error = e.what();
    } catch (const Interrupted&) {
      return WaitEnd::interrupted; // Ctrl-C while a node did not answer yet (SIGSTOPped: up to timeout_ms)
    }
    p.source.clear();
    p.source_error.clear();
    if (slave && !sources.empty()) {
      p.source = sources.front().key();
      try {
        p.master_items = items_of(sources.front(), ask_ms(), index.trace(), io.interrupted);
      } catch (const NetworkError& e) {
        p.source_error = e.what();
      } catch (const Interrupted&) {
        return WaitEnd::interrupted;
      }
    }
    p.elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    p.copying = false;
    if (seen_once && io.progress) io.progress(slave ? format_slave_progress(p) : format_master_progress(p));
    last = p;
    if (seen && goal(p)) return WaitEnd::reached;
    if (seen && lost(p))
      throw ConstructionStopped("construction of " + node.key() + " stopped: the node is now " + p.role + " " + p.state,
                                ConstructionStopped::Why::lost, p);
    bool moved = !previous || previous->items != p.items || previous->state != p.state || previous->role != p.role;
    try {
      if (!moved && p.node_error.empty() && p.source_error.empty())
        p.copying = !copy_running(node, sources, ask_ms(), index.trace(), io.interrupted).empty();
      p.blocked_on.clear();
      if (!slave && !moved && !p.copying && p.node_error.empty() && Clock::now() - last_change >= timeout)
        p.blocked_on = copy_blocked_on(node, ask_ms(), index.trace(), io.interrupted);
    } catch (const Interrupted&) {
      return WaitEnd::interrupted;
    }
    last = p;
    if (moved || p.copying) {
      // progress dates from the node's answer, not from the end of the questions (a silent master
      // after it); the first look is no progress of its own
      last_change = !previous ? start : p.copying ? Clock::now() : node_answered;
      second_look = false;
    }
    previous = p;
    if (index_gone && Clock::now() - index_gone_at >= timeout)
      throw ConstructionStopped("the index " + index.endpoint().display() + " has not answered for " + detail::seconds_text(opt.timeout_ms) +
                                    " s (" + p.index_error + ")",
                                ConstructionStopped::Why::index_unreachable, p);
    if (Clock::now() - last_change >= timeout && !second_look) {
      second_look = true;
      if (!pause(std::min(opt.poll_interval_ms, 200), io)) return WaitEnd::interrupted;
      continue;
    }
    if (Clock::now() - last_change >= timeout)
      throw ConstructionStopped("construction of " + node.key() + " made no progress for " + detail::seconds_text(opt.timeout_ms) +
                                    " s (role = " + p.role + ", state = " + p.state + ", items = " + std::to_string(p.items) + ")" +
                                    (!p.node_error.empty()     ? "; " + node.key() + " does not answer (" + p.node_error + ")"
                                     : !p.source_error.empty() ? "; the partition's master " + p.source + " does not answer (" +
                                                                     p.source_error + ")"
                                     : !p.blocked_on.empty()   ? "; its copy reads " + p.blocked_on + ", which does not answer or serve it"
                                                               : std::string(" and no copy is running on it")),
                                ConstructionStopped::Why::stalled, p);
    if (!pause(opt.poll_interval_ms, io)) return WaitEnd::interrupted;
  }
}

} // namespace detail

inline WaitEnd wait_for_slave_active(IndexClient& index, const Endpoint& node, const OperationOptions& opt,
                                     const OperationIO& io, ConstructionProgress& last) {
  return detail::construction_wait(
      index, node, true, opt, io, [](const ConstructionProgress& p) { return p.role == "slave" && p.state == "active"; },
      [](const ConstructionProgress& p) { return p.role != "slave" || p.state == "down"; }, last);
}

inline WaitEnd wait_for_master_ready(IndexClient& index, const Endpoint& node, const OperationOptions& opt,
                                     const OperationIO& io, ConstructionProgress& last) {
  return detail::construction_wait(
      index, node, false, opt, io,
      [](const ConstructionProgress& p) { return p.role == "master" && (p.state == "ready" || p.state == "active"); },
      [](const ConstructionProgress& p) { return p.role != "master" || p.state == "down"; }, last);
}

inline WaitEnd wait_for_proxy_active(IndexClient& index, const Endpoint& node, const OperationOptions& opt,
                                     const OperationIO& io) {
  const detail::ReadsStopAt reads_stop(index, io.interrupted); // a stopped index does not hold Ctrl-C up
  auto start = Clock::now();
  for (;;) {
    bool was_gone = false;
    Cluster c;
    try {
      c = detail::ride_out_index(index, opt, io, [&] { return Cluster(index.stats_nodes()); }, nullptr, &was_gone);
    } catch (const Interrupted&) {
      return WaitEnd::interrupted;
    }
    if (was_gone) start = Clock::now(); // its monitor, which brings the node back, was gone with it
    const NodeInfo* n = c.find(node);
    if (!n) throw Error(node.key() + " disappeared from the cluster");
    if (n->is_proxy() && n->is_active()) return WaitEnd::reached;
    if (Clock::now() - start >= std::chrono::milliseconds(opt.timeout_ms))
      throw Error(node.key() + " did not come back as proxy active within " + detail::seconds_text(opt.timeout_ms) +
                  " s (it is " + n->role + " " + n->state + "); is its flared running?");
    if (!detail::pause(std::min(opt.poll_interval_ms, 200), io)) return WaitEnd::interrupted;
  }
}

inline std::string set_role_with_retry(IndexClient& index, const Endpoint& node, const std::string& role, int balance,
                                       int partition, const OperationOptions& opt, const OperationIO& io) {
  std::string status = "not sent";
  for (int attempt = 1; attempt <= opt.retry; ++attempt) {
    status = index.node_role(node, role, balance, partition);
    if (status == "OK" || attempt == opt.retry) break;
    if (io.say) io.say("waiting " + std::to_string(attempt) + " sec...");
    if (!detail::pause(attempt * 1000, io)) return "interrupted";
    if (io.say) io.say("retrying...");
  }
  return status;
}

inline std::optional<PendingBalance> BalanceRecord::find(const std::string& index, const std::string& node) const {
  for (const auto& b : read())
    if (b.index == index && b.node == node) return b;
  return std::nullopt;
}

inline void BalanceRecord::keep(const PendingBalance& b) {
  auto all = read();
  all.erase(std::remove_if(all.begin(), all.end(), [&](const PendingBalance& x) { return x.index == b.index && x.node == b.node; }),
            all.end());
  all.push_back(b);
  write(all);
}

inline void BalanceRecord::forget(const std::string& index, const std::string& node) {
  auto all = read();
  auto before = all.size();
  all.erase(std::remove_if(all.begin(), all.end(), [&](const PendingBalance& x) { return x.index == index && x.node == node; }),
            all.end());
  if (all.size() != before) write(all);
}

inline std::vector<PendingBalance> BalanceRecord::read() const {
  std::vector<PendingBalance> out;
  if (path_.empty()) return out;
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return out;
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = detail::handle_EINTR([&] { return ::read(fd, buf, sizeof buf); });
    if (n <= 0 || text.size() > kMaxBytes) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  for (auto line : detail::split(text, '\n')) {
    auto w = detail::split(line, ' ');
    if (w.size() != 5) continue;
    auto part = to_int32(w[2]), bal = to_int32(w[3]);
    auto since = to_int(w[4]);
    if (!part || !bal || !since || *bal <= 0) continue;
    out.push_back({std::string(w[0]), std::string(w[1]), *part, *bal, *since});
  }
  return out;
}

inline void BalanceRecord::write(const std::vector<PendingBalance>& all) const {
  if (path_.empty()) return;
  auto slash = path_.find_last_of('/');
  if (slash != std::string::npos && slash > 0) ::mkdir(path_.substr(0, slash).c_str(), 0700); // exists: fine
  std::string text;
  for (const auto& b : all)
    text += b.index + " " + b.node + " " + std::to_string(b.partition) + " " + std::to_string(b.balance) + " " +
            std::to_string(b.since) + "\n";
  write_file_atomically(path_, text, 0600);
}

inline bool is_yes(std::string a) {
  while (!a.empty() && (a.back() == ' ' || a.back() == '\t')) a.pop_back();
  size_t i = 0;
  while (i < a.size() && (a[i] == ' ' || a[i] == '\t')) ++i;
  a.erase(0, i);
  for (auto& ch : a) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return a == "y" || a == "yes";
}

inline bool confirm(const OperationIO& io, const std::string& prompt) {
  if (!io.ask) return false;
  auto a = io.ask(prompt);
  return a && is_yes(*a);
}

inline std::shared_ptr<ChangeLog> guard_changes(IndexClient& index, const CancelFn& interrupted) {
  auto log = std::make_shared<ChangeLog>();
  log->interrupted = interrupted;
  index.set_change_log(log);
  index.set_cancel([interrupted] { return interrupted && interrupted(); });
  return log;
}

inline std::string interruption_text(const ChangeLog& log, const std::string& what, const Endpoint& index) {
  if (log.sent.empty()) {
    const std::string unsent = what.rfind("interrupted: '", 0) == 0 ? " (" + what.substr(13) + ")" : "";
    return "interrupted: nothing was changed" + unsent + ".";
  }
  std::string sent;
  for (const auto& r : log.sent) sent += (sent.empty() ? "" : ", ") + std::string("'") + r + "'";
  return what + ". Sent before: " + sent + "; check the cluster with: " + with_index_option("flare-admin list", index);
}

// ---- 7a. Layouts: the cluster an operator declares, and the plan that gets there (apply) ----

inline const LayoutNode* Layout::find(const std::string& node) const {
  for (const auto& n : nodes)
    if (n.node == node) return &n;
  return nullptr;
}

inline Layout parse_layout(std::string_view text) {
  Layout l;
  int line_no = 0;
  for (auto raw : detail::split(text, '\n')) {
    ++line_no;
    std::string_view line = detail::trim(raw);
    size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = detail::trim(line.substr(0, hash));
    if (line.empty()) continue;
    std::vector<std::string> w;
    for (auto part : detail::split(line, ' '))
      for (auto word : detail::split(part, '\t'))
        if (!word.empty()) w.emplace_back(word);
    auto fail = [&](const std::string& why) {
      throw InputError("line " + std::to_string(line_no) + ": " + why + ": " + std::string(line));
    };
    if (w.size() == 5 && w[0] == "node" && w[1] == "partition" && w[2] == "role") continue; // list's header
    if (w.size() != 5 && w.size() != 4)
      fail("a node is 'HOST:PORT PARTITION ROLE STATE BALANCE' as flare-admin list prints it (STATE may be left out)");
    LayoutNode n;
    n.line = line_no;
    NodeArg a;
    try {
      a = parse_node_arg(w[0], 2, 2);
    } catch (const Error& e) {
      fail("'" + w[0] + "' is not HOST:PORT");
    }
    n.node = a.endpoint.key();
    n.role = w[2];
    if (n.role != "master" && n.role != "slave" && n.role != "proxy") fail("the role is master, slave or proxy");
    if (w[1] == "-" || w[1] == "-1") {
      if (n.role != "proxy") fail("a " + n.role + " needs a partition");
    } else {
      auto p = to_int32(w[1]);
      if (!p || *p < 0 || *p > kMaxPartition || !detail::is_digits(w[1])) fail("the partition is a number (or - for a proxy)");
      if (n.role == "proxy") fail("a proxy has no partition (write -)");
      n.partition = *p;
    }
    auto b = to_int32(w.back());
    if (!b || *b < 0 || !detail::is_digits(w.back())) fail("the balance is a number, 0 or more");
    n.balance = *b;
    if (n.role == "proxy" && n.balance != 0) fail("a proxy's balance is 0");
    if (n.role == "master" && n.balance == 0) fail("a master's balance is more than 0 (flarei refuses a master of balance 0)");
    if (auto* before = l.find(n.node)) fail(n.node + " is listed twice (line " + std::to_string(before->line) + " too)");
    l.nodes.push_back(std::move(n));
  }
  return l;
}

namespace detail {

// A node as a plan expects it to be after the steps planned so far.
struct PlannedNode {
  std::string role, state;
  int partition = -1, balance = 0;
  bool released = false; // set down by this plan: it holds a copy it may drop
};

// The slave flare 1.3.4 promotes when the master of `partition` is set down: among its active
// slaves in node-key order (the index's std::map), the first of the highest balance; "" none.
inline std::string failover_candidate(const std::map<std::string, PlannedNode>& nodes, int partition) {
  std::string best;
  int best_balance = 0;
  for (const auto& [key, n] : nodes)
    if (n.role == "slave" && n.partition == partition && n.state == "active" && (best.empty() || n.balance > best_balance)) {
      best = key;
      best_balance = n.balance;
    }
  return best;
}

inline std::string node_words(const std::string& key, const PlannedNode& n) {
  return key + " (" + n.role + " " + n.state + (n.partition >= 0 ? ", partition " + std::to_string(n.partition) : "") + ")";
}

} // namespace detail

inline LayoutPlan plan_layout(const Cluster& c, const Layout& l, const LayoutOptions& o) {
  using detail::PlannedNode;
  LayoutPlan plan;
  std::map<std::string, PlannedNode> sim;
  for (const auto& n : c.nodes()) sim[n.key] = PlannedNode{n.role, n.state, n.partition, n.balance, false};
  auto refuse = [&](const std::string& why) { plan.refusals.push_back(why); };

  // The layout's partitions: each a master, numbered from 0 without a gap, none dropped.
  std::map<int, const LayoutNode*> masters;
  std::set<int> parts;
  for (const auto& n : l.nodes) {
    if (n.partition >= 0) parts.insert(n.partition);
    if (n.role != "master") continue;
    if (masters.count(n.partition))
      refuse("partition " + std::to_string(n.partition) + " has two masters in the layout: " + masters[n.partition]->node + " and " +
             n.node + " (lines " + std::to_string(masters[n.partition]->line) + ", " + std::to_string(n.line) + ")");
    else masters[n.partition] = &n;
  }
  for (int p : parts)
    if (!masters.count(p))
      refuse("partition " + std::to_string(p) + " has slaves but no master in the layout: name its master");
  // A partition the layout does not mention at all is left as it is (its nodes are not in the
  // layout), unless --prune would take its master away, or the layout moves its master elsewhere.
  std::set<int> kept; // partitions served after the plan: the layout's, and those left alone
  for (const auto& [p, m] : masters) kept.insert(p);
  for (int p = 0; p < c.partition_count(); ++p) {
    if (kept.count(p) || parts.count(p)) continue;
    const NodeInfo* m = c.master_of(p);
    if (!m) continue;
    if (o.prune || l.find(m->key))
      refuse("the layout has no partition " + std::to_string(p) + ", which the cluster serves" +
             (l.find(m->key) ? " (it moves its master " + m->key + " elsewhere)" : " (--prune would take its master " + m->key + " away)") +
             ": flare 1.3.4 cannot take a partition away (its keys would be lost to readers); list its master in the layout");
    else kept.insert(p);
  }
  const int layout_parts = kept.empty() ? 0 : *kept.rbegin() + 1;
  for (int p = 0; p < layout_parts; ++p)
    if (!kept.count(p) && !parts.count(p))
      refuse("partition " + std::to_string(p) + " has no master in the layout, though partition " + std::to_string(layout_parts - 1) +
             " has: flare numbers its partitions from 0 without a gap");

  // Every node named must be one the index lists, able to take its part.
  for (const auto& n : l.nodes) {
    const NodeInfo* now = c.find(n.node);
    if (!now) {
      refuse(n.node + " (line " + std::to_string(n.line) + ") is not in the cluster: start its flared with this index as its "
             "index-servers (it registers as a proxy), then run apply again");
      continue;
    }
    const bool same = now->role == n.role && now->partition == n.partition;
    if (now->state == "down" && !(n.role == "proxy" && now->is_proxy())) {
      refuse(n.node + " is " + now->role + " down: start its flared (the index brings it back" +
             (now->is_master() ? " with its data" : " as a proxy") + "), then run apply again");
      continue;
    }
    if ((now->state == "prepare" || now->state == "ready") && !same)
      refuse(n.node + " is " + now->role + " " + now->state + " of partition " + std::to_string(now->partition) +
             " (a copy under way): let it finish (flare-admin " + (now->is_master() ? "master --activate " : "slave ") + n.node +
             ":" + std::to_string(std::max(1, now->balance)) + ":" + std::to_string(now->partition) + "), then run apply again");
  }
  // A partition whose master changes: only to the slave flare promotes, with the old master named.
  for (const auto& [p, want] : masters) {
    const NodeInfo* cur = c.master_of(p);
    if (!cur || cur->key == want->node) continue;
    if (cur->state == "down") {
      refuse("partition " + std::to_string(p) + "'s master " + cur->key + " is down: start its flared (it comes back with its "
             "data), or replace it by hand (flare-admin master --unsafe), then run apply again");
      continue;
    }
    if (!cur->is_active()) continue; // its own refusal above (prepare / ready)
    const NodeInfo* w = c.find(want->node);
    if (!l.find(cur->key) && !o.prune)
      refuse("partition " + std::to_string(p) + "'s master " + cur->key + " is not in the layout, which makes " + want->node +
             " its master: list " + cur->key + " (a slave of partition " + std::to_string(p) + " keeps a copy; a proxy holds none)");
    if (!w) continue;
    if (!(w->is_slave() && w->partition == p)) {
      refuse(want->node + " would become the master of partition " + std::to_string(p) + " with none of its data: make it a "
             "slave of partition " + std::to_string(p) + " first (apply a layout with it as a slave), then make it the master");
      continue;
    }
    if (!w->is_active()) continue; // prepare: refused above
    std::string cand = detail::failover_candidate(sim, p);
    if (cand != want->node)
      refuse("a failover of partition " + std::to_string(p) + " goes to " + cand + ", not " + want->node + ": flare 1.3.4 "
             "promotes the active slave of the highest balance (the first by name on a tie). Give " + want->node +
             " the highest balance first (flare-admin balance " + want->node + ":N), or make " + cand + " the master in the layout");
  }
  if (!plan.refusals.empty()) return plan;

  // Where each node is to end. Nodes left out stay as they are (with --prune: a master or
  // slave becomes a proxy, a down proxy is removed).
  std::map<std::string, LayoutNode> goal;
  for (const auto& n : l.nodes) goal[n.node] = n;
  for (const auto& n : c.list_order()) {
    if (goal.count(n.key)) continue;
    if (!o.prune || n.is_proxy()) {
      if (!(o.prune && n.is_proxy() && n.state == "down"))
        plan.not_in_layout.push_back(n.key + " (" + n.role + " " + n.state +
                                     (n.partition >= 0 ? ", partition " + std::to_string(n.partition) : "") + ")");
      continue;
    }
    LayoutNode g;
    g.node = n.key;
    g.role = "proxy";
    goal[n.key] = g;
  }

  auto partitions_now = [&] {
    int count = 0;
    for (const auto& [key, n] : sim)
      if (n.role == "master") count = std::max(count, n.partition + 1);
    return count;
  };
  auto active_master = [&](int p) -> std::string {
    for (const auto& [key, n] : sim)
      if (n.role == "master" && n.partition == p && n.state == "active") return key;
    return std::string();
  };
  auto at_goal = [&](const std::string& key) {
    const PlannedNode& n = sim[key];
    const LayoutNode& g = goal[key];
    if (g.role == "proxy") return n.role == "proxy";
    return n.role == g.role && n.partition == g.partition && n.state == "active";
  };
  auto node_text = [](const std::string& key, int b, int p) { return key + ":" + std::to_string(b) + ":" + std::to_string(p); };
  // "HOST PORT" of a node, as the index's requests name it.
  auto host_port = [](const std::string& key) {
    const Endpoint ep = parse_host_port(key, FLARE_TOOLS_DEFAULT_NODE_PORT);
    return ep.host + " " + std::to_string(ep.port);
  };
  const std::string in_effect = "the nodes to route by the index's new map";

  const size_t most = 4 * (goal.size() + sim.size()) + 8; // every node moves at most a few times
  while (plan.steps.size() < most) {
    PlanStep s;
    bool found = false;
    // 1. Build: a proxy that is to be a master (of the next new partition) or a slave (of a
    //    partition with an active master), or a node whose build was cut short (run again).
    for (int pass = 0; pass < 2 && !found; ++pass)
      for (auto& [key, g] : goal) {
        if (found) break;
        PlannedNode& n = sim[key];
        if (at_goal(key) || g.role == "proxy") continue;
        const bool resume = n.role == g.role && n.partition == g.partition && (n.state == "prepare" || n.state == "ready");
        const bool is_proxy = n.role == "proxy" && n.state == "active";
        if (!resume && !is_proxy) continue;
        if (pass == 0 && g.role != "master") continue; // masters first: a slave needs its partition
        if (g.role == "master") {
          if (!resume && g.partition != partitions_now()) continue;
          // The copy reads every older partition's master (flare's reconstruction of a new partition).
          bool sources = true;
          for (int q = 0; q < g.partition; ++q) sources = sources && !active_master(q).empty();
          if (!sources) continue;
          s.kind = PlanStep::Kind::master;
          s.source = g.partition > 0 ? active_master(0) : std::string();
          s.items_bound = g.partition > 0;
          s.what = (resume ? "finish " + key + " as" : "make " + key) + " the master of new partition " +
                   std::to_string(g.partition) + " (balance " + std::to_string(g.balance) + "), and activate it";
          s.commands.push_back("flare-admin master --activate " + std::string(n.released ? "--discard-items " : "") +
                               node_text(key, g.balance, g.partition));
          // As `master --activate` sends them (ClusterAdmin::construct_master, finish_master);
          // partition 0's master is active at once, a later one copies, is ready, then activated.
          const std::string hp = host_port(key);
          const std::string ready = "its copy from the older partitions' masters, until it is master ready";
          if (!resume) {
            s.requests.push_back({key, "flush_all", ""});
            s.requests.push_back({"", "node role " + hp + " master " + std::to_string(g.balance) + " " + std::to_string(g.partition),
                                  in_effect + (g.partition > 0 ? "; then for " + ready : std::string())});
          }
          if (g.partition > 0 && !(resume && n.state == "active"))
            s.requests.push_back({"", "node state " + hp + " active", in_effect});
          if (resume && n.balance != g.balance)
            s.requests.push_back({"", "node role " + hp + " master " + std::to_string(g.balance) + " " + std::to_string(g.partition),
                                  in_effect});
        } else {
          std::string m = active_master(g.partition);
          if (m.empty()) continue;
          // A failover still to come in this partition must go to the layout's master: a new
          // slave that would outrank it is built at balance 0 and gets its balance last.
          int bal = g.balance;
          auto w = masters.find(g.partition);
          if (w != masters.end() && w->second->node != m && !resume) {
            const std::string built = key;
            const int part = g.partition;
            auto promoted_with = [&](int b) {
              auto trial = sim;
              trial[built] = PlannedNode{"slave", "active", part, b, false};
              return detail::failover_candidate(trial, part) == w->second->node;
            };
            if (!promoted_with(bal)) bal = 0;
            if (!promoted_with(bal)) continue; // after the failover, then
          }
          s.kind = PlanStep::Kind::slave;
          s.source = m;
          s.items_bound = partitions_now() > 1; // a master keeps stale keys of other partitions: not copied
          s.what = (resume ? "finish building " + key + " as" : "build " + key + " as") + " a slave of partition " +
                   std::to_string(g.partition) + " from " + m + ", then give it balance " + std::to_string(bal) +
                   (bal != g.balance ? " (" + std::to_string(g.balance) + " once the failover is made)" : "");
          s.commands.push_back("flare-admin slave " + std::string(n.released ? "--discard-items " : "") +
                               node_text(key, bal, g.partition));
          s.balance = bal;
          // As `slave` sends them (ClusterAdmin::construct_slave, finish_slave): built at balance
          // 0, given its balance once its copy is done.
          const std::string hp = host_port(key);
          if (!resume) {
            s.requests.push_back({key, "flush_all", ""});
            s.requests.push_back({"", "node role " + hp + " slave 0 " + std::to_string(g.partition),
                                  in_effect + "; then for its copy from " + m + ", until it is slave active"});
          }
          if (bal > 0 && (!resume || n.balance != bal))
            s.requests.push_back({"", "node role " + hp + " slave " + std::to_string(bal) + " " + std::to_string(g.partition), in_effect});
        }
        s.node = key;
        s.partition = g.partition;
        s.resume = resume;
        if (s.kind == PlanStep::Kind::master) s.balance = g.balance;
        s.discard = n.released;
        // Set down by an earlier step, its flared running: the index brings it back as a proxy
        // (ChangeExecutor::step_moved waits for that).
        if (n.released) s.waits_first = "the index to bring " + key + " back as proxy active (an earlier step set it down)";
        n = PlannedNode{g.role, "active", g.partition, s.balance, false};
        found = true;
      }
    // 2. A planned failover: the layout's master of a partition is its slave flare promotes.
    if (!found)
      for (const auto& [p, want] : masters) {
        std::string cur = active_master(p);
        if (cur.empty() || cur == want->node) continue;
        if (detail::failover_candidate(sim, p) != want->node) continue;
        PlannedNode& w = sim[want->node];
        int slaves_balance = 0;
        for (const auto& [key, n] : sim)
          if (n.role == "slave" && n.partition == p) slaves_balance += n.balance;
        s.kind = PlanStep::Kind::failover;
        s.node = cur;
        s.partition = p;
        s.source = want->node;
        s.what = "fail partition " + std::to_string(p) + " over from " + cur + " to its slave " + want->node +
                 " (once the slave has caught up); " + cur + " comes back a proxy";
        s.commands.push_back("flare-admin down " + cur);
        s.requests.push_back({"", "node state " + host_port(cur) + " down", in_effect + " (" + want->node + " its master)"});
        w.role = "master";
        if (slaves_balance == 0) ++w.balance;
        s.balance = w.balance;
        sim[cur] = PlannedNode{"proxy", "active", -1, 0, true};
        found = true;
        break;
      }
    // 3. Release: a slave to be a proxy, or to go to another partition.
    if (!found)
      for (auto& [key, g] : goal) {
        PlannedNode& n = sim[key];
        if (n.role != "slave" || n.state != "active" || (g.role == "slave" && g.partition == n.partition)) continue;
        s.kind = PlanStep::Kind::release;
        s.node = key;
        s.partition = n.partition;
        s.what = "take " + key + " out of partition " + std::to_string(n.partition) + (g.role == "proxy" ? ": it becomes a proxy" : " (it is to be a " + g.role + " of partition " + std::to_string(g.partition) + ")");
        s.commands.push_back("flare-admin down " + key);
        s.requests.push_back({"", "node state " + host_port(key) + " down", in_effect});
        n = PlannedNode{"proxy", "active", -1, 0, true};
        found = true;
        break;
      }
    // 4. Balances, last.
    if (!found)
      for (auto& [key, g] : goal) {
        PlannedNode& n = sim[key];
        if (g.role == "proxy" || !at_goal(key) || n.balance == g.balance) continue;
        s.kind = PlanStep::Kind::balance;
        s.node = key;
        s.partition = g.partition;
        s.balance = g.balance;
        s.what = "change the balance of " + key + " from " + std::to_string(n.balance) + " to " + std::to_string(g.balance);
        s.commands.push_back("flare-admin balance " + key + ":" + std::to_string(g.balance));
        s.requests.push_back({"", "node role " + host_port(key) + " " + n.role + " " + std::to_string(g.balance) + " " +
                                      std::to_string(n.partition),
                              in_effect});
        n.balance = g.balance;
        found = true;
        break;
      }
    if (!found) break;
    plan.steps.push_back(std::move(s));
  }
  // --prune: down proxies the layout leaves out leave the map.
  if (o.prune)
    for (const auto& n : c.list_order())
      if (!l.find(n.key) && n.is_proxy() && n.state == "down") {
        PlanStep s;
        s.kind = PlanStep::Kind::remove;
        s.node = n.key;
        s.what = "remove the down proxy " + n.key + " from the map";
        s.commands.push_back("flare-admin remove " + n.key);
        s.requests.push_back({"", "node remove " + n.endpoint().host + " " + std::to_string(n.endpoint().port), in_effect});
        plan.steps.push_back(std::move(s));
      }
  // Whatever the steps cannot reach is said, and nothing is done.
  for (const auto& [p, want] : masters) {
    std::string cur = active_master(p);
    if (cur.empty() || cur == want->node) continue;
    const std::string cand = detail::failover_candidate(sim, p);
    if (cand.empty()) {
      refuse("partition " + std::to_string(p) + " has no active slave to fail over to " + want->node);
      continue;
    }
    refuse("a failover of partition " + std::to_string(p) + " would go to " + cand + ", not " +
           want->node + " (flare 1.3.4 promotes the active slave of the highest balance, the first by name on a tie): give " +
           want->node + " the highest balance first, or make the other the master in the layout");
  }
  for (const auto& [key, g] : goal)
    if (!at_goal(key))
      refuse("no step takes " + detail::node_words(key, sim[key]) + " to " +
             (g.role == "proxy" ? std::string("proxy") : g.role + " of partition " + std::to_string(g.partition)) +
             ": change the layout, or do that part by hand first");
  if (!plan.refusals.empty()) plan.steps.clear();
  bool swap = false;
  for (const auto& s : plan.steps) swap = swap || s.kind == PlanStep::Kind::failover;
  if (swap)
    plan.warnings.push_back("a failover loses the writes its master takes after the slave last caught up (flare replicates "
                            "asynchronously): stop the writers, or accept that loss");
  return plan;
}

inline void annotate_plan(LayoutPlan& plan, const std::map<std::string, long long>& items,
                          const std::vector<std::string>& masters) {
  std::map<std::string, const PlanStep*> built; // masters the plan makes: what they hold is their copy's part
  for (auto& s : plan.steps) {
    if (s.kind != PlanStep::Kind::slave && s.kind != PlanStep::Kind::master) continue;
    if (s.kind == PlanStep::Kind::slave) {
      auto made = built.find(s.source);
      auto it = items.find(s.source);
      if (made != built.end()) {
        s.items = made->second->items; // a part of these: the keys its master copied
        s.items_bound = true;
      } else if (it != items.end()) {
        s.items = it->second;
      }
    } else {
      built[s.node] = &s;
      long long all = 0;
      bool known = !masters.empty();
      for (const auto& m : masters) {
        auto it = items.find(m);
        if (it == items.end()) known = false;
        else all += it->second;
      }
      if (known) s.items = all;
    }
    auto held = items.find(s.node);
    if (held != items.end() && !s.resume) s.held = held->second;
    // Run by hand, the step's command refuses to flush what the node holds unless told.
    if (s.held > 0)
      for (auto& cmd : s.commands)
        for (const std::string verb : {"flare-admin slave ", "flare-admin master --activate "})
          if (cmd.rfind(verb, 0) == 0 && cmd.find("--discard-items") == std::string::npos) cmd.insert(verb.size(), "--discard-items ");
  }
}

inline LayoutPlan plan_layout_live(const Cluster& c, const Layout& l, const LayoutOptions& o, int timeout_ms,
                                   const GatherHooks& hooks) {
  LayoutPlan plan = plan_layout(c, l, o);
  std::vector<Endpoint> eps;
  std::vector<std::string> masters;
  for (const auto& n : c.nodes()) {
    if (n.state != "down") eps.push_back(n.endpoint());
    if (n.is_master() && n.is_active()) masters.push_back(n.key);
  }
  std::map<std::string, long long> items;
  for (const auto& r : gather_stats(eps, timeout_ms, hooks))
    if (r.ok)
      if (auto v = r.stats.number("curr_items")) items[r.endpoint.key()] = *v;
  annotate_plan(plan, items, masters);
  for (auto it = plan.steps.begin(); it != plan.steps.end();) {
    if (it->kind == PlanStep::Kind::remove &&
        detail::answers_ping(parse_host_port(it->node, FLARE_TOOLS_DEFAULT_NODE_PORT), timeout_ms, hooks.trace, hooks.cancel)) {
      plan.not_in_layout.push_back(it->node + " (proxy down, but its flared answers: the index brings it back as a proxy)");
      it = plan.steps.erase(it);
    } else {
      ++it;
    }
  }
  return plan;
}

inline std::string format_layout_plan(const LayoutPlan& plan, bool requests) {
  std::string out;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const auto& s = plan.steps[i];
    out += "  " + std::to_string(i + 1) + ". " + s.what;
    if (s.items >= 0 && (s.kind != PlanStep::Kind::master || s.items_bound))
      out += s.kind == PlanStep::Kind::master ? " (copies its part of " + std::to_string(s.items) + " items)"
             : s.items_bound                  ? " (copies at most " + std::to_string(s.items) + " items)"
                                              : " (copies " + std::to_string(s.items) + " items)";
    if (s.held > 0) out += "; flush_all first deletes the " + std::to_string(s.held) + " items it holds";
    out += "\n";
    for (const auto& cmd : s.commands) out += "       " + cmd + "\n";
    if (requests && !s.waits_first.empty()) out += "         waits first for " + s.waits_first + "\n";
    for (const auto& r : requests ? s.requests : std::vector<PlanStep::Request>())
      out += "         sends '" + r.line + "' to " + (r.to.empty() ? std::string("the index") : r.to) +
             (r.then.empty() ? std::string() : "; waits for " + r.then) + "\n";
  }
  for (const auto& n : plan.not_in_layout) out += "  not in the layout, left as it is: " + n + "\n";
  return out;
}

inline std::vector<std::string> layout_differences(const Cluster& c, const Layout& l, const LayoutOptions& o) {
  std::vector<std::string> out;
  auto where = [](const std::string& role, int part, int bal, const std::string& state) {
    return role + (state.empty() ? "" : " " + state) + (part >= 0 ? " of partition " + std::to_string(part) : "") +
           (role != "proxy" ? ", balance " + std::to_string(bal) : "");
  };
  for (const auto& want : l.nodes) {
    const NodeInfo* n = c.find(want.node);
    const std::string wanted = where(want.role, want.partition, want.balance, "");
    if (!n) out.push_back(want.node + ": not in the cluster; the layout: " + wanted);
    else if (want.role == "proxy" ? !n->is_proxy()
                                  : n->role != want.role || n->partition != want.partition || n->balance != want.balance ||
                                        n->state != "active")
      out.push_back(want.node + ": " + where(n->role, n->partition, n->balance, n->state) + "; the layout: " + wanted);
  }
  if (o.prune)
    for (const auto& n : c.list_order())
      if (!l.find(n.key) && (!n.is_proxy() || n.state == "down"))
        out.push_back(n.key + ": " + where(n.role, n.partition, n.balance, n.state) + "; not in the layout (--prune)");
  return out;
}

inline std::string format_layout(const Layout& l) {
  std::vector<NodeInfo> nodes;
  for (const auto& n : l.nodes) {
    NodeInfo x;
    x.key = n.node;
    x.role = n.role;
    x.state = "active";
    x.partition = n.partition;
    x.balance = n.balance;
    nodes.push_back(std::move(x));
  }
  return format_node_table(Cluster(std::move(nodes)).list_order());
}

inline std::string format_saved_plan(const SavedPlan& p, const LayoutPlan& plan) {
  std::string out = std::string(kSavedPlanFirstLine) + " (a plan of flare-admin apply; run it with: flare-admin apply --plan FILE)\n";
  out += "# index " + p.index + "\n# node_map_version " + std::to_string(p.node_map_version) + "\n# prune " +
         (p.prune ? "yes" : "no") + "\n";
  const std::string steps = format_layout_plan(plan, true);
  for (auto line : detail::split(steps, '\n'))
    if (!line.empty()) out += "#" + std::string(line) + "\n";
  return out + format_layout(p.layout);
}

inline SavedPlan parse_saved_plan(std::string_view text) {
  if (text.substr(0, std::string_view(kSavedPlanFirstLine).size()) != kSavedPlanFirstLine)
    throw InputError("not a saved plan: its first line is not '" + std::string(kSavedPlanFirstLine) + " ...' (write one with "
                     "flare-admin apply -n --plan-out FILE LAYOUT)");
  SavedPlan p;
  bool prune_seen = false;
  for (auto raw : detail::split(text, '\n')) {
    std::string_view line = detail::trim(raw);
    auto value = [&](std::string_view name) -> std::optional<std::string_view> {
      std::string head = "# " + std::string(name) + " ";
      if (line.substr(0, head.size()) != head) return std::nullopt;
      return detail::trim(line.substr(head.size()));
    };
    if (auto v = value("index")) p.index = std::string(*v);
    else if (auto v = value("node_map_version")) p.node_map_version = to_int(*v).value_or(-1);
    else if (auto v = value("prune")) {
      prune_seen = *v == "yes" || *v == "no";
      p.prune = *v == "yes";
    }
  }
  if (p.index.empty() || p.node_map_version < 0 || !prune_seen)
    throw InputError("a saved plan names its index, node_map_version and prune (# index HOST:PORT, # node_map_version N, "
                     "# prune yes|no): this one does not");
  p.layout = parse_layout(text);
  return p;
}

inline std::string read_layout_text(const std::string& path) {
  constexpr size_t kMax = 16u << 20;
  int fd = path == "-" ? ::dup(0) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot read " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = detail::handle_EINTR([&] { return ::read(fd, buf, sizeof buf); });
    if (n < 0) {
      int e = errno;
      ::close(fd);
      throw Error("cannot read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMax) {
      ::close(fd);
      throw Error(path + " is over 16 MiB: not a layout");
    }
  }
  ::close(fd);
  return text;
}

inline IndexReading read_index_map(IndexClient& index) {
  Cluster c;
  const auto [before, after] = detail::between_versions(index, 3, [&] { c = Cluster(index.stats_nodes()); });
  if (before == after) return IndexReading{std::move(c), after};
  throw Error("the index's node_map_version moved three times while its map was read (a change under way): try again");
}

// ---- one node's part of a change, decided from the map alone ----

namespace detail {
// The node `a` names, as the map lists it; when the map does not, null, and `d` says so (its
// message starting with `prefix`, as each command words it).
inline const NodeInfo* decided_node(const Cluster& c, const NodeArg& a, const char* prefix, NodeDecision& d) {
  const NodeInfo* n = c.find(a.endpoint);
  if (!n) {
    d.kind = NodeDecision::Kind::unknown;
    d.message = unknown_node_text(prefix, a.endpoint);
  }
  return n;
}
} // namespace detail

inline std::optional<std::string> no_reader_left(const Cluster& c, const NodeInfo& n, int bal) {
  if (bal > 0 || !n.is_active() || n.partition < 0 || !(n.is_master() || n.is_slave())) return std::nullopt;
  for (const auto* s : c.slaves_of(n.partition))
    if (s->key != n.key && s->is_active() && s->balance > 0) return std::nullopt;
  const NodeInfo* m = c.master_of(n.partition);
  if (n.is_slave() && m && m->is_active() && m->balance > 0) return std::nullopt;
  return "balance 0 on " + n.key + " leaves partition " + std::to_string(n.partition) +
         " no active node of balance above 0 to read from.";
}

inline NodeDecision decide_balance(const Cluster& c, const NodeArg& a, bool unsafe) {
  NodeDecision d;
  const NodeInfo* n = detail::decided_node(c, a, "unknown node: ", d);
  if (!n) return d;
  const std::string key = a.endpoint.key();
  const int bal = a.balance.value_or(0);
  if (n->is_proxy()) {
    d.message = key + " is a proxy: a balance applies to masters and slaves only.";
    return d;
  }
  if (n->balance == bal) {
    d.kind = NodeDecision::Kind::skip;
    d.message = "no need to change the balance of " + key + ".";
    return d;
  }
  if (n->is_slave() && n->state == "prepare") {
    // flarei refuses a slave's balance while it copies (SERVER_ERROR failed to set role: a real
    // flare 1.3.4, tests/data/transcripts/SCENARIO.md (c)).
    d.message = key + " is slave prepare, still copying: the index refuses its balance until its copy is done.";
    d.advice = "To give it balance " + std::to_string(bal) + " once it is, run: flare-admin slave " + key + ":" + std::to_string(bal) +
               ":" + std::to_string(n->partition) + " (it waits for the copy, then gives the balance)";
    return d;
  }
  if (auto why = no_reader_left(c, *n, bal); why && !unsafe) {
    d.message = "refused: " + *why + " Nothing was changed; --unsafe sets it anyway.";
    return d;
  }
  d.kind = NodeDecision::Kind::send;
  d.request = "node role " + a.endpoint.host + " " + std::to_string(a.endpoint.port) + " " + n->role + " " +
              std::to_string(bal) + " " + std::to_string(n->partition);
  d.prompt = "updating node balance (node=" + key + ", balance=" + std::to_string(n->balance) + " -> " +
             std::to_string(bal) + ") (y/n): ";
  return d;
}

inline NodeDecision decide_slave(const Cluster& c, const NodeArg& a) {
  NodeDecision d;
  const NodeInfo* n = detail::decided_node(c, a, "invalid 'hostname:port' pair: ", d);
  if (!n) return d;
  const std::string key = a.endpoint.key();
  const int part = a.partition.value_or(0);
  const std::string again = "flare-admin slave " + key + ":" + std::to_string(a.balance.value_or(0)) + ":" + std::to_string(part);
  if (n->is_slave() && n->partition == part && n->state != "down") {
    d.kind = NodeDecision::Kind::resume;
    return d;
  }
  if (!n->is_proxy()) {
    d.message = key + " is not a proxy.";
    if (n->is_slave())
      d.advice = key + " is already a slave of partition " + std::to_string(n->partition) + " (" + n->state +
                 "); to move it to partition " + std::to_string(part) + " (`reconstruct` keeps its partition), turn it "
                 "down: flare-admin down " + key + "; once the index brings it back as proxy active, run: " + again;
    return d;
  }
  if (n->state == "down") {
    d.advice = key + " is proxy down: its flared is not running, or it was set down a moment ago and the index brings "
               "it back as a proxy. Start it if it is not running; once it is proxy active, run: " + again;
    return d;
  }
  const NodeInfo* m = c.master_of(part);
  if (!m || m->state == "down") {
    d.message = "partition " + std::to_string(part) + " has no master to copy from.";
    return d;
  }
  d.kind = NodeDecision::Kind::send;
  d.request = "node role " + a.endpoint.host + " " + std::to_string(a.endpoint.port) + " slave 0 " + std::to_string(part);
  return d;
}

inline NodeDecision decide_master(const Cluster& c, const NodeArg& a, bool unsafe) {
  NodeDecision d;
  const NodeInfo* n = detail::decided_node(c, a, "unknown node: ", d);
  if (!n) return d;
  const std::string key = a.endpoint.key();
  const int part = a.partition.value_or(0);
  if (n->is_master() && n->partition == part) {
    d.kind = NodeDecision::Kind::resume;
    return d;
  }
  const NodeInfo* existing = c.master_of(part);
  if (existing && existing->state != "down") {
    d.message = "the partition already has a master " + existing->key + ".";
    return d;
  }
  if (!n->is_proxy()) {
    d.message = key + " is not a proxy.";
    return d;
  }
  if (existing && !unsafe) {
    d.message = "partition " + std::to_string(part) + " has a master that is down: " + existing->key +
                " holds its only copy of the data. Start its flared again (the index makes it active with its data), "
                "or, to give that data up, replace it with: flare-admin master --unsafe " + a.text;
    return d;
  }
  bool unfinished = false;
  for (const auto& x : c.nodes())
    unfinished = unfinished || (x.is_master() && (x.state == "prepare" || x.state == "ready"));
  if (part > c.partition_count() || (part == c.partition_count() && unfinished)) {
    d.message = "partition " + std::to_string(part) + " cannot be made now: the next new partition is " +
                std::to_string(c.partition_count()) + (unfinished ? ", after the ready one is activated." : ".");
    return d;
  }
  if (existing)
    d.advice = "replacing the down master " + existing->key + " of partition " + std::to_string(part) + ": " + key +
               " starts empty; the items on " + existing->key + " are lost to the cluster (its flared, if it returns, "
               "comes back as a proxy).";
  d.kind = NodeDecision::Kind::send;
  d.request = "node role " + a.endpoint.host + " " + std::to_string(a.endpoint.port) + " master " +
              std::to_string(a.balance.value_or(0)) + " " + std::to_string(part);
  return d;
}

inline NodeDecision decide_remove(const Cluster& c, const NodeArg& a) {
  NodeDecision d;
  const NodeInfo* n = c.find(a.endpoint);
  const std::string key = a.endpoint.key();
  if (!n) {
    d.message = "node not found in cluster. (node=" + key + ")";
    return d;
  }
  const bool replaced_master = n->is_master() && n->state == "down" && c.master_of(n->partition) != n;
  if (n->is_master() && n->state == "down" && !replaced_master) {
    d.message = "node is the down master of partition " + std::to_string(n->partition) +
                " and holds its only copy; the index keeps it. (node=" + key + ")";
    return d;
  }
  if (!(n->is_proxy() && n->state == "down") && !replaced_master) {
    d.message = "node should role=proxy and state=down. (node=" + key + " role=" + n->role + " state=" + n->state + ")";
    return d;
  }
  d.kind = NodeDecision::Kind::send;
  d.request = "node remove " + a.endpoint.host + " " + std::to_string(a.endpoint.port);
  d.prompt = "remove the node from a cluster (node=" + key + ", role=" + n->role + ", state=" + n->state + ") (y/n): ";
  return d;
}

inline NodeDecision decide_down(const Cluster& c, const NodeArg& a) {
  NodeDecision d;
  const NodeInfo* n = detail::decided_node(c, a, "invalid 'hostname:port' pair: ", d);
  if (!n) return d;
  const std::string key = a.endpoint.key();
  if (n->state == "down") {
    d.kind = NodeDecision::Kind::skip;
    d.message = key + " is already down.";
    return d;
  }
  if (n->is_slave() && n->is_active() && c.active_slave_count(n->partition, n->key) == 0)
    d.advice = "warning: " + key + " is the last active slave of partition " + std::to_string(n->partition) +
               ": set down, the partition has no redundancy until a slave is built (flare-admin slave HOST:PORT:BALANCE:" +
               std::to_string(n->partition) + ").";
  d.kind = NodeDecision::Kind::send;
  d.request = "node state " + a.endpoint.host + " " + std::to_string(a.endpoint.port) + " down";
  d.prompt = "turning node down (node=" + key + ", state=" + n->state + " -> down) (y/n): ";
  return d;
}

inline NodeDecision decide_activate(const Cluster& c, const NodeArg& a) {
  NodeDecision d;
  const NodeInfo* n = detail::decided_node(c, a, "invalid 'hostname:port' pair: ", d);
  if (!n) return d;
  const std::string key = a.endpoint.key();
  if (n->state == "prepare" && (n->is_master() || n->is_slave())) {
    d.kind = NodeDecision::Kind::resume;
    return d;
  }
  if (n->state == "active") {
    d.kind = NodeDecision::Kind::skip;
    d.message = key + " is already active.";
    return d;
  }
  d.kind = NodeDecision::Kind::send;
  d.request = "node state " + a.endpoint.host + " " + std::to_string(a.endpoint.port) + " active";
  d.prompt = "turning node up (node=" + key + ", state=" + n->state + " -> activate) (y/n): ";
  return d;
}

inline std::string reconstruct_way_out(const Cluster& c, const NodeInfo& n, const std::optional<PendingBalance>& kept) {
  const std::string key = n.key;
  const int part = kept ? kept->partition : c.partition_count() == 1 ? 0 : -1;
  const std::string figures = (kept ? std::to_string(kept->balance) : std::string("BALANCE")) + ":" +
                              (part >= 0 ? std::to_string(part) : std::string("PARTITION"));
  if (n.is_proxy() && n.state == "down")
    return key + " is proxy down: its flared is not running (a node whose flared stops loses its partition), or it was "
           "set down a moment ago and the index brings it back as a proxy. Start its flared if it is not running; once it "
           "is proxy active, rebuild it with: flare-admin slave --discard-items " + key + ":" + figures;
  if (n.is_proxy())
    return key + " is a proxy: it holds no partition to rebuild. If an earlier rebuild of it was cut short, make it a "
           "slave again: flare-admin slave --discard-items " + key + ":" + figures;
  if (n.is_master() && (n.state == "prepare" || n.state == "ready"))
    return key + " is a new partition's master still being built (master " + n.state + "); finish it with: flare-admin "
           "master --activate " + key + ":" + std::to_string(n.balance) + ":" + std::to_string(n.partition);
  if (n.state == "down") return key + " is " + n.role + " down: its flared is not running. Start its flared again.";
  if (n.is_master())
    return key + " is the master of partition " + std::to_string(n.partition) +
           " and the partition has no active slave to take over while it is rebuilt; add one first: flare-admin slave "
           "HOST:PORT:BALANCE:" + std::to_string(n.partition);
  return key + " is " + n.role + " " + n.state + ".";
}

inline NodeDecision decide_reconstruct(const Cluster& c, const NodeArg& a, bool unsafe,
                                       const std::optional<PendingBalance>& kept) {
  NodeDecision d;
  const NodeInfo* n = c.find(a.endpoint);
  const std::string key = a.endpoint.key();
  if (!n) {
    d.kind = NodeDecision::Kind::unknown;
    d.message = key + " is not found in this cluster.";
    return d;
  }
  if (n->is_slave() && n->state == "prepare") {
    d.kind = NodeDecision::Kind::resume;
    return d;
  }
  if (!c.reconstructable(*n)) {
    d.message = key + " is not reconstructable.";
    d.advice = reconstruct_way_out(c, *n, kept);
    return d;
  }
  const bool safe = c.safely_reconstructable(*n);
  if (!safe && !unsafe) {
    d.message = "The partition needs one more slave to reconstruct " + key + " safely.";
    d.advice = "--unsafe rebuilds it anyway: its partition then has no other copy that serves until the rebuild is done; "
               "or give the partition another slave first (flare-admin slave HOST:PORT:BALANCE:" +
               std::to_string(n->partition) + ", then run this again).";
    return d;
  }
  if (!safe) d.advice = "you are trying to reconstruct " + key + " without redanduncy.";
  d.kind = NodeDecision::Kind::send;
  d.request = "node state " + a.endpoint.host + " " + std::to_string(a.endpoint.port) + " down";
  d.prompt = "reconstructing node (node=" + key + ", role=" + n->role + ") (y/n/a/q/h:help): ";
  return d;
}

inline PartPlan plan_part(const std::vector<NodeArg>& args) {
  PartPlan p;
  std::set<int> seen;
  for (const auto& a : args)
    (seen.insert(a.partition.value_or(0)).second ? p.masters : p.slaves).push_back(a);
  return p;
}

inline ChangeExecutor::ChangeExecutor(IndexClient& index, OperationOptions opt, OperationIO io)
    : index_(index), opt_(std::move(opt)), io_(advising(std::move(io), index.endpoint())),
      balances_(opt_.balance_record) {
  if (io_.interrupted && !index_.change_log()) guard_changes(index_, io_.interrupted);
}

inline std::optional<Outcome> ChangeExecutor::preflight() {
  if (preflight_done_) return std::nullopt;
  index_.require_index();
  Cluster c = cluster();
  long long iv = detail::node_map_version_of(index_);
  std::vector<Endpoint> eps;
  for (const auto& n : c.nodes())
    if (n.state != "down") eps.push_back(n.endpoint());
  MapVersions v = settle_map_versions(map_versions(iv, gather_stats(eps, opt_.timeout_ms, hooks())),
                                      [&] { return detail::node_map_version_of(index_); });
  watched_.clear();
  for (const auto& n : v.nodes) watched_.push_back(n.first);
  std::string warning = map_version_warning(v);
  if (!warning.empty()) {
    if (io_.warn) io_.warn("refused: " + warning + " Nothing was changed. " + map_version_way_out(v));
    return Outcome::failed;
  }
  preflight_done_ = true;
  return std::nullopt;
}

template <typename Decide>
inline Outcome ChangeExecutor::run(const std::vector<NodeArg>& args, Decide decide,
                                   Outcome (ChangeExecutor::*act)(const Cluster&, const NodeInfo&, const NodeArg&, const NodeDecision&)) {
  Outcome result = each_node(args, decide, [&](const Cluster& c, const NodeInfo& n, const NodeArg& a, const NodeDecision& d) {
    return (this->*act)(c, n, a, d);
  });
  if (result != Outcome::interrupted && !stopped_) print_table(args);
  return result;
}

inline void ChangeExecutor::show_nodes(const std::vector<NodeInfo>& nodes) { say(trim_newline(format_node_table(nodes))); }

inline void ChangeExecutor::say(const std::string& s) {
  last_blank_ = s.empty() || s.back() == '\n';
  if (io_.say) io_.say(s);
}

inline void ChangeExecutor::complain(const std::string& s) {
  if (io_.warn) io_.warn(s);
  else say(s);
}

inline Cluster ChangeExecutor::cluster() {
  Cluster c(detail::ride_out_index(index_, opt_, io_, [&] { return index_.stats_nodes(); },
                                   [&](const std::string& why) { return lost_index_text(why); }));
  if (job_)
    if (const NodeInfo* n = c.find(job_->node)) job_seen_ = *n;
  return c;
}

inline void ChangeExecutor::print_table(const std::vector<NodeArg>& args) {
  if (io_.interrupted && io_.interrupted()) return; // nothing more is asked after Ctrl-C
  Cluster c;
  try {
    c = cluster();
  } catch (const NetworkError&) {
    return;
  }
  std::vector<NodeInfo> shown;
  for (auto& n : c.nodes())
    for (auto& a : args)
      if (a.endpoint.key() == n.key) {
        shown.push_back(n);
        break;
      }
  say(trim_newline(format_node_table(shown)));
}

inline std::optional<PendingBalance> ChangeExecutor::kept_balance(const Endpoint& ep, int part) const {
  auto b = balances_.find(index_.endpoint().key(), ep.key());
  if (b && (part < 0 || b->partition == part)) return b;
  return std::nullopt;
}

template <typename Decide, typename Act>
inline Outcome ChangeExecutor::each_node(const std::vector<NodeArg>& args, Decide decide, Act act) {
  stopped_ = false;
  Outcome result = Outcome::ok;
  for (const auto& a : args) {
    const Cluster c = as_planned(cluster());
    const NodeDecision d = decide(c, a);
    switch (d.kind) {
    case NodeDecision::Kind::unknown:
      complain(d.message);
      stopped_ = true;
      return Outcome::failed;
    case NodeDecision::Kind::skip:
      complain(d.message);
      continue;
    case NodeDecision::Kind::refuse:
      if (!d.message.empty()) complain(d.message);
      if (!d.advice.empty()) complain(d.advice);
      result = worse(result, Outcome::failed);
      continue;
    case NodeDecision::Kind::send:
    case NodeDecision::Kind::resume:
      break;
    }
    Outcome o;
    try {
      o = act(c, *c.find(a.endpoint), a, d);
    } catch (const Interrupted& e) {
      // Ctrl-C cut a wait short (the index or a node not answering, or a change's answer): after
      // a change to this node, said as any interruption of its job is: where the node is, and
      // the way on from wherever that is.
      const auto& log = index_.change_log();
      if (!log || log->sent.empty() || !job_ || !(job_->node == a.endpoint)) throw;
      const std::string what = e.what();
      const std::string sent = what.rfind("interrupted while waiting for ", 0) == 0
                                   ? "Ctrl-C came " + what.substr(12) + ". "
                                   : std::string();
      o = interrupted_at(a.endpoint, sent + "To carry the job on from where it is, run: " + job_->again);
    }
    result = worse(result, o);
    if (o == Outcome::interrupted || stopped_) return result;
  }
  return result;
}

inline Outcome ChangeExecutor::dry_finish_slave(const NodeInfo& n, const std::string& why) {
  const auto kept = kept_balance(n.endpoint(), n.partition);
  if (!kept || kept->balance <= 0 || kept->balance == n.balance) {
    say("dry run: " + n.key + " is slave prepare: " + why + "; would wait for it to be active, and send nothing");
    return Outcome::ok;
  }
  say("dry run: " + n.key + " is slave prepare: " + why + "; would wait for it to be active, then give it the balance " +
      "kept by the run that started its copy (" + std::to_string(kept->balance) + ")");
  change("node role " + n.host + " " + std::to_string(n.port) + " slave " + std::to_string(kept->balance) + " " +
             std::to_string(n.partition),
         [] { return std::string("OK"); });
  return Outcome::ok;
}

inline ChangeExecutor::Answer ChangeExecutor::ask_each(const std::string& prompt) {
  for (;;) {
    auto answer = io_.ask ? io_.ask(prompt) : std::nullopt;
    std::string ans = answer ? *answer : "n";
    for (auto& ch : ans) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (ans == "Y") return Answer::yes;
    if (ans == "A") {
      yes_to_all_ = true;
      return Answer::yes;
    }
    if (ans == "Q") return Answer::quit;
    if (ans == "N") return Answer::no;
    complain("y: execute, n: skip, a: execute all the left nodes, q: quit, h: help");
  }
}

inline Outcome ChangeExecutor::set_state(Cluster c, const NodeInfo& node, const NodeArg& a, const NodeDecision& d, const std::string& state) {
  const NodeInfo* n = &node;
  const std::string key = a.endpoint.key();
  working_on(a.endpoint, std::string("flare-admin ") + (state == "active" ? "activate " : "down ") + key);
  job_seen_ = *n;
  if (state == "active" && !opt_.dry_run && !answers_ping(a.endpoint)) {
    // flarei answers OK and its monitor sets the node down again: it would look done.
    complain(key + " is not answering (is its flared running?): not activated.");
    return Outcome::failed;
  }
  // Setting an active master down makes the index fail over to one of its slaves.
  const bool failover = state == "down" && n->is_master() && n->is_active();
  if (!d.advice.empty()) note(d.advice);
  std::optional<std::vector<SlaveLag>> lags;
  if (failover)
    if (auto refused = takeover_check(c, *n, lags)) return *refused;
  const bool asked = !(opt_.force || opt_.dry_run || yes_to_all_);
  if (!ask_yes(d.prompt)) {
    declined(key, *n, std::string("flare-admin ") + (state == "active" ? "activate " : opt_.unsafe ? "down --unsafe " : "down ") + key);
    return Outcome::declined;
  }
  if (failover && asked) {
    // The answer may come long after the checks above: the map, the slaves' liveness
    // and their lag are read again, so that the change goes by what is true now.
    c = cluster();
    n = c.find(a.endpoint);
    if (!n || !(n->is_master() && n->is_active())) {
      complain(key + " changed while the question was asked (now " +
               (n ? "role=" + n->role + ", state=" + n->state : std::string("not in the map")) +
               "): nothing was sent. Run it again.");
      return Outcome::failed;
    }
    lags.reset();
    if (auto refused = takeover_check(c, *n, lags)) return *refused;
  }
  if (failover)
    if (auto refused = drain_check(c, *n, lags)) return *refused;
  std::string st = failover ? down_master(*n)
                            : change(d.request, [&] { return index_.node_state(a.endpoint, state); },
                                     [&, was_proxy = n->is_proxy()](const Cluster& now) {
                                       const NodeInfo* x = now.find(a.endpoint);
                                       // set down, a live node comes back as a proxy a second later
                                       return x && (x->state == state || (state == "down" && !was_proxy && x->is_proxy()));
                                     });
  if (st == "OK") return Outcome::ok;
  if (interrupted_status(st))
    return interrupted_change(a.endpoint, st, d.request, std::string("flare-admin ") + (state == "active" ? "activate " : "down ") + key,
                              "");
  complain("failed to set " + key + " " + state + ": " + st);
  return Outcome::failed;
}

inline Outcome ChangeExecutor::master_node(const Cluster& c, const NodeInfo& n, const NodeArg& a, const NodeDecision& d) {
  const std::string key = a.endpoint.key();
  const int part = *a.partition;
  working_on(a.endpoint, master_again(a));
  job_seen_ = n;
  if (d.kind == NodeDecision::Kind::resume) return resume_master(a, n); // run again after an interruption
  if (!d.advice.empty()) complain(d.advice);
  if (auto why = copy_source_problem(c, part)) {
    // Sent anyway, the node is flushed and stays master prepare with nothing, and each run
    // again says to restart its flared (seen on a real flare 1.3.4). Nothing is sent.
    complain("refused: partition " + std::to_string(part) + "'s master copies its keys from the master of every "
             "older partition, and " + *why + ". Nothing was changed. Start that flared again (the index makes it "
             "active with its data), then run this again: flare-admin master " + a.text);
    return Outcome::failed;
  }
  auto flushing = flush_plan(n, "flare-admin master --discard-items " + a.text);
  if (!flushing) return Outcome::failed;
  if (!ask_yes("making the node master (node=" + key + ", role=" + n.role + " -> master" + *flushing + ") (y/n): ")) {
    declined(key, n, "flare-admin master " + a.text);
    return Outcome::declined;
  }
  return construct_master(a, n);
}

inline Outcome ChangeExecutor::slave_node(const Cluster&, const NodeInfo& n, const NodeArg& a, const NodeDecision& d) {
  const std::string key = a.endpoint.key();
  const int part = a.partition.value_or(0);
  const std::string again = "flare-admin slave " + key + ":" + std::to_string(a.balance.value_or(0)) + ":" + std::to_string(part);
  working_on(a.endpoint, again);
  job_seen_ = n;
  if (d.kind == NodeDecision::Kind::resume) return resume_slave(n, a.balance.value_or(0), again); // run again
  auto flushing = flush_plan(n, "flare-admin slave --discard-items " + a.text);
  if (!flushing) return Outcome::failed;
  if (!ask_yes("making node slave (node=" + key + ", role=" + n.role + " -> slave" + *flushing + ") (y/n): ")) {
    declined(key, n, "flare-admin slave " + a.text);
    return Outcome::declined;
  }
  return construct_slave(a.endpoint, part, a.balance.value_or(0), "started constructing slave node...", true, again, false);
}

inline Outcome ChangeExecutor::balance_node(const Cluster&, const NodeInfo& n, const NodeArg& a, const NodeDecision& d) {
  const std::string key = a.endpoint.key();
  const int bal = *a.balance;
  working_on(a.endpoint, "flare-admin balance " + a.text);
  job_seen_ = n;
  if (!ask_yes(d.prompt)) {
    declined(key, n, "flare-admin balance " + a.text);
    return Outcome::declined;
  }
  std::string st = change(d.request, [&] { return index_.node_role(a.endpoint, n.role, bal, n.partition); },
                          [&, role = n.role](const Cluster& now) {
                            const NodeInfo* x = now.find(a.endpoint);
                            return x && x->role == role && x->balance == bal;
                          });
  if (st == "OK") return Outcome::ok;
  if (interrupted_status(st)) return interrupted_change(a.endpoint, st, d.request, "flare-admin balance " + a.text, "");
  complain("failed to change the balance of " + key + ": " + st);
  return Outcome::failed;
}

inline Outcome ChangeExecutor::activate_node(const Cluster& c, const NodeInfo& n, const NodeArg& a, const NodeDecision& d) {
  if (d.kind == NodeDecision::Kind::send) return set_state(c, n, a, d, "active");
  const std::string key = n.key;
  working_on(a.endpoint, "flare-admin activate " + key);
  job_seen_ = n;
  if (opt_.dry_run) {
    // The plan of a real run: a master waits for its copy, then is activated; a slave becomes
    // active by itself when its copy is done, and is sent nothing.
    if (n.is_slave()) return dry_finish_slave(n, "it becomes active by itself when its copy is done");
    say("dry run: " + key + " is master prepare; would wait for it to be ready, then send 'node state " + a.endpoint.host +
        " " + std::to_string(a.endpoint.port) + " active' to " + index_.endpoint().display());
    return Outcome::ok;
  }
  if (n.is_slave()) {
    say(key + " is slave prepare, still copying: it becomes active by itself when its copy is done (made active now, "
              "it would serve reads it does not hold yet). Waiting for it.");
    return finish_slave(n.endpoint(), n.partition, -1,
                        "flare-admin slave " + key + ":" + kept_balance_text(n.endpoint(), n.partition), false);
  }
  say(key + " is master prepare, still copying: waiting for it to be ready before activating it.");
  NodeArg m = a;
  m.balance = n.balance;
  m.partition = n.partition;
  OperationOptions saved = opt_;
  opt_.activate = false;
  Outcome o = finish_master(m);
  opt_ = saved;
  if (o == Outcome::failed && io_.warn) io_.warn("to activate it once it is ready: flare-admin activate " + key);
  if (o != Outcome::ok) return o;
  // Ready now: activated as any other node, from the map as it is now.
  Cluster now = cluster();
  const NodeDecision ready = decide_activate(now, a);
  if (ready.kind != NodeDecision::Kind::send) {
    complain(ready.message.empty() ? key + " is still in prepare." : ready.message);
    return ready.kind == NodeDecision::Kind::skip ? Outcome::ok : Outcome::failed;
  }
  return set_state(now, *now.find(a.endpoint), a, ready, "active");
}

inline Outcome ChangeExecutor::remove_node(const Cluster&, const NodeInfo& n, const NodeArg& a, const NodeDecision& d) {
  const std::string key = a.endpoint.key();
  working_on(a.endpoint, "flare-admin remove " + key);
  job_seen_ = n;
  if (n.is_proxy() && answers_ping(a.endpoint)) {
    // Its flared runs: set down a moment ago, the index brings it back as a proxy. flarei
    // removes it all the same, and it then stays out of the map while it runs, until its
    // flared is restarted (seen on a real flare 1.3.4).
    complain("refused: " + key + " is proxy down, but its flared answers: the index brings it back as a proxy in a "
             "moment, and removed now it would stay out of the map while it runs. Stop its flared first, then remove it. "
             "(node=" + key + ")");
    return Outcome::failed;
  }
  if (!ask_yes(d.prompt)) {
    declined(key, n, "flare-admin remove " + key);
    return Outcome::declined;
  }
  for (int attempt = 0; attempt <= std::max(0, opt_.retry); ++attempt) {
    say("removing " + key + ".");
    std::string st = change(d.request, [&] { return index_.node_remove(a.endpoint); },
                            [&](const Cluster& now) { return now.find(a.endpoint) == nullptr; });
    if (st == "OK") return Outcome::ok;
    if (interrupted_status(st)) return interrupted_change(a.endpoint, st, d.request, "flare-admin remove " + key, "");
    if (st.rfind("the index answered OK", 0) == 0) {
      complain(st);
      break;
    }
    if (attempt < opt_.retry && !detail::pause(500, io_)) return Outcome::interrupted;
  }
  complain("node remove failed. (node=" + key + ")");
  return Outcome::failed;
}

inline Outcome ChangeExecutor::reconstruct_node(const Cluster&, const NodeInfo& n, const NodeArg& a, const NodeDecision& d) {
  const std::string key = a.endpoint.key();
  if (d.kind == NodeDecision::Kind::resume) {
    // An earlier rebuild cut short (its tool interrupted or killed) while the node copied.
    const std::string again = "flare-admin slave " + key + ":" + kept_balance_text(a.endpoint, n.partition);
    if (opt_.dry_run) return dry_finish_slave(n, "its copy from the master is under way (an earlier rebuild?)");
    say(key + " is slave prepare: its copy from the master is under way (an earlier rebuild?): waiting for it.");
    return finish_slave(a.endpoint, n.partition, -1, again, true);
  }
  if (!opt_.force && !yes_to_all_ && !opt_.dry_run) {
    if (!d.advice.empty()) complain(d.advice);
    switch (ask_each(d.prompt)) {
    case Answer::yes: break;
    case Answer::quit:
      complain("quit: " + key + " and the nodes after it were left as they are.");
      stopped_ = true;
      return Outcome::declined;
    case Answer::no:
      declined(key, n, "flare-admin reconstruct " + key);
      return Outcome::declined;
    }
  }
  return reconstruct_one(n);
}

inline Outcome ChangeExecutor::down_node(const Cluster& c, const NodeInfo& n, const NodeArg& a, const NodeDecision& d) {
  return set_state(c, n, a, d, "down");
}

inline Outcome ChangeExecutor::run_layout(const Layout& layout, const LayoutOptions& lo, long long made_from,
                                          const std::function<Outcome(const PlanStep&)>& run_step) {
  // The map and its version read as one (the version before and after the map agree): read
  // the other way round, a change between them passed a saved plan against the old map.
  Cluster c;
  const auto [before, version] = detail::between_versions(index_, 3, [&] { c = cluster(); });
  if (version != before) {
    complain("refused: the node map changed while it was read (node_map_version " + std::to_string(before) + ", then " +
             std::to_string(version) + "), three times. Nothing was changed. Run it again when no change is under way.");
    return Outcome::failed;
  }
  if (made_from >= 0 && version != made_from) {
    complain("refused: the plan was made from node_map_version " + std::to_string(made_from) + "; the index is at " +
             std::to_string(version) + " now: the cluster changed since. Nothing was changed. Make a new plan "
             "(flare-admin apply -n --plan-out FILE LAYOUT) and review it.");
    return Outcome::failed;
  }
  LayoutPlan plan = planned_layout(c, layout, lo);
  for (const auto& r : plan.refusals) complain("refused: " + r);
  if (!plan.refusals.empty()) {
    complain("Nothing was changed.");
    return Outcome::failed;
  }
  if (plan.steps.empty()) {
    say("the cluster matches the layout (node_map_version " + std::to_string(version) + "): nothing to do.");
    for (const auto& n : plan.not_in_layout) say("  not in the layout, left as it is: " + n);
    return Outcome::ok;
  }
  say("plan (node_map_version " + std::to_string(version) + ", " + std::to_string(plan.steps.size()) +
      (plan.steps.size() == 1 ? " step" : " steps") + "):");
  say(trim_newline(format_layout_plan(plan, opt_.dry_run)));
  for (const auto& w : plan.warnings) complain("warning: " + w);
  // A node the plan builds that holds items it did not put there (a copy from an earlier role,
  // or a partition's only copy when the index lost its map) is flushed only when told.
  bool holding = false;
  for (const auto& s : plan.steps)
    if (s.held > 0 && !s.discard && !opt_.discard_items) {
      complain("refused: " + s.node + " is a proxy holding " + std::to_string(s.held) + " items, which step " +
               std::to_string(&s - plan.steps.data() + 1) + " deletes (flush_all) before it copies. If they are a stale "
               "copy, give --discard-items; if the index may have lost its map, they may be a partition's only copy: see "
               "flare-admin check first.");
      holding = true;
    }
  if (holding) {
    complain("Nothing was changed.");
    return Outcome::failed;
  }
  if (opt_.dry_run) {
    say("dry run: nothing was changed.");
    return Outcome::ok;
  }
  if (!ask_yes("apply the plan (" + std::to_string(plan.steps.size()) + (plan.steps.size() == 1 ? " step" : " steps") +
               ") (y/n): ")) {
    if (!(io_.interrupted && io_.interrupted())) complain("nothing was changed.");
    return Outcome::declined;
  }
  const OperationOptions saved = opt_;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep& s = plan.steps[i];
    const std::string at = "step " + std::to_string(i + 1) + "/" + std::to_string(plan.steps.size());
    if (!last_blank_) say(""); // one empty line between steps (a step's table may end with one)
    say(at + ": " + s.what);
    opt_.force = true; // the one question was asked above
    opt_.activate = s.kind == PlanStep::Kind::master;
    opt_.discard_items = saved.discard_items || s.discard;
    Outcome o = Outcome::failed;
    std::string moved = step_moved(s);
    if (!moved.empty()) complain(at + " was not run: " + moved + ". Nothing of it was sent.");
    else o = run_step(s);
    opt_ = saved;
    if (o != Outcome::ok) {
      if (o == Outcome::interrupted)
        complain(at + " was interrupted" + (i ? " (the steps before it are done)" : "") + ". To finish the plan, run apply "
                 "again with the same layout: it plans from where the cluster is now, and carries a copy under way on "
                 "(apply -n shows what is left).");
      else
        complain(at + " did not finish" + (i ? " (the steps before it did)" : "") + ". Once the way out said above is "
                 "taken, run apply again: it plans from where the cluster is now (apply -n shows what is left).");
      return o;
    }
  }
  LayoutPlan left = planned_layout(cluster(), layout, lo);
  if (!left.converged()) {
    complain("the plan ran, but the cluster does not match the layout yet (" + std::to_string(left.steps.size()) +
             (left.steps.size() == 1 ? " step" : " steps") + " left" +
             (left.refusals.empty() ? "" : ", " + left.refusals.front()) + "): run apply again.");
    return Outcome::failed;
  }
  if (!last_blank_) say("");
  say("the cluster matches the layout.");
  return Outcome::ok;
}

inline void ChangeExecutor::seen_in_wait(const Endpoint& ep, const ConstructionProgress& p) {
  if (job_seen_ && job_seen_->key == ep.key() && !p.role.empty()) {
    job_seen_->role = p.role;
    job_seen_->state = p.state;
  }
}

inline void ChangeExecutor::working_on(const Endpoint& node, const std::string& again, const std::string& if_taken) {
  if (!job_ || !(job_->node == node)) job_seen_.reset();
  job_ = Job{node, again, if_taken};
}

inline OperationIO ChangeExecutor::advising(OperationIO io, const Endpoint& index) {
  for (auto* f : {&io.say, &io.warn, &io.progress})
    if (*f) *f = [inner = *f, index](const std::string& s) { inner(with_index_option(s, index)); };
  return io;
}

inline void ChangeExecutor::expect_seen(const Endpoint& ep, const std::string& role, const std::string& state, int part, int bal) {
  NodeInfo n;
  n.key = ep.key();
  n.host = ep.host;
  n.port = ep.port;
  n.role = role;
  n.state = state;
  n.partition = part;
  n.balance = bal;
  job_seen_ = n;
}

inline std::string ChangeExecutor::lost_index_text(const std::string& why) const {
  return with_index_option(lost_index_text_plain(why), index_.endpoint());
}

inline std::string ChangeExecutor::lost_index_text_plain(const std::string& why) const {
  if (!job_) return why + ". When the index answers again, see where the cluster is: flare-admin list";
  std::string seen;
  if (job_seen_)
    seen = "When last seen, " + job_seen_->key + " was " + job_seen_->role + " " + job_seen_->state +
           (job_seen_->partition >= 0 ? " (balance " + std::to_string(job_seen_->balance) + ", partition " +
                                            std::to_string(job_seen_->partition) + ")"
                                      : std::string()) + ". ";
  std::string stuck;
  if (job_seen_ && job_seen_->state == "prepare" && (job_seen_->is_slave() || job_seen_->is_master()))
    // seen on a real flare 1.3.4: a copy that ended while flarei was gone for longer than flared
    // retries its report (about 8 s, cluster::activate_node) leaves the node in prepare for good
    stuck = " If its copy ended while the index was gone, flared could not report it and the node stays in prepare "
            "(that command then says so): restart its flared, then run: " + with_discard(job_->again);
  std::string doubt;
  if (!in_doubt_.empty() && !job_->if_taken.empty())
    doubt = " The index may have taken '" + in_doubt_ + "' before it stopped answering: if flare-admin list shows it did, run "
            "instead: " + job_->if_taken + ".";
  return why + ". " + seen + "When the index answers again, finish the job with: " + job_->again + "." + doubt + stuck;
}

template <typename Send>
inline std::string ChangeExecutor::send_to_index(const std::string& request, Send send, const std::function<bool(const Cluster&)>& applied) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(opt_.timeout_ms);
  for (;;) {
    try {
      return send();
    } catch (const detail::IndexLost&) {
      throw; // said already where the job was left (a read inside `send` gave up on the index)
    } catch (const NetworkError& e) {
      index_.close();
      in_doubt_ = request;
      if (!applied) throw detail::IndexLost(lost_index_text(std::string(e.what()) + " (sending '" + request + "')"));
      Cluster now = cluster(); // rides out the index; its give-up names the request in doubt
      in_doubt_.clear();
      if (applied(now)) {
        note("the index did not answer '" + request + "' (" + e.what() + ") but made the change.");
        return "OK";
      }
      if (Clock::now() >= deadline)
        throw detail::IndexLost(lost_index_text("the index " + index_.endpoint().display() + " did not answer '" + request +
                                           "' within " + detail::seconds_text(opt_.timeout_ms) + " s (" + e.what() + ")"));
      if (said_.insert("resend " + request).second)
        note("the index did not answer '" + request + "' (" + e.what() + ") and has not made the change: sending it again.");
      if (!detail::pause(200, io_)) return "interrupted";
    }
  }
}

inline std::string ChangeExecutor::in_effect(const std::string& status) {
  if (status != "OK" || opt_.dry_run) return status;
  auto start = Clock::now();
  auto deadline = start + std::chrono::milliseconds(opt_.timeout_ms);
  // An index that stops answering (restarted, stopped) is asked again for up to --timeout.
  auto ask_index = [&](auto fn) {
    return detail::ride_out_index(index_, opt_, io_, fn, [&](const std::string& why) { return lost_index_text(why); });
  };
  const detail::ReadsStopAt reads_stop(index_, io_.interrupted); // a stopped index does not hold Ctrl-C up
  long long iv = -1;
  try {
    iv = ask_index([&] { return detail::node_map_version_of(index_); });
  } catch (const Interrupted&) {
    return kInterruptedTaken; // the index answered OK: it took the change
  }
  if (iv < 0) return status;
  for (;;) {
    Cluster c;
    try {
      c = ask_index([&] { return Cluster(index_.stats_nodes()); });
    } catch (const Interrupted&) {
      return kInterruptedTaken;
    }
    if (job_)
      if (const NodeInfo* n = c.find(job_->node)) job_seen_ = *n;
    std::vector<Endpoint> eps;
    for (const auto& n : c.nodes())
      if (n.state != "down" && std::find(watched_.begin(), watched_.end(), n.key) != watched_.end())
        eps.push_back(n.endpoint());
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    std::vector<StatsResult> results;
    try {
      results = gather_stats(eps, static_cast<int>(std::max(200LL, static_cast<long long>(left))), hooks());
    } catch (const Interrupted&) {
      return kInterruptedTaken;
    }
    std::vector<std::string> behind;
    for (const auto& r : results) {
      auto nv = r.ok ? r.stats.number("node_map_version") : std::nullopt;
      if (!r.ok) behind.push_back(r.endpoint.key() + " (" + r.error + ")");
      else if (!nv || *nv < iv) behind.push_back(r.endpoint.key() + " (holds " + (nv ? std::to_string(*nv) : "no version") + ")");
    }
    if (behind.empty()) return "OK";
    if (Clock::now() >= deadline) {
      long long secs = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
      std::string list;
      for (const auto& b : behind) list += (list.empty() ? "" : ", ") + b;
      return "the index answered OK (its node_map_version is now " + std::to_string(iv) + "), but after " +
             std::to_string(secs) + " s these nodes still do not route by that map: " + list +
             "; the change is not in effect (check with: flare-admin stats)";
    }
    if (!detail::pause(100, io_)) return kInterruptedTaken;
  }
}

inline Outcome ChangeExecutor::interrupted_change(const Endpoint& ep, const std::string& st, const std::string& request, const std::string& again,
                                                  const std::string& finish) {
  if (st == kInterruptedTaken)
    return interrupted_at(ep, "The index took '" + request + "'; not every node routed by its new map yet (see their "
                              "node_map_version: flare-admin stats)" + (finish.empty() ? "." : ". To finish the job, run: " + finish));
  return interrupted_at(ep, "The index did not take '" + request + "': nothing was changed by it; to do it, run: " + again);
}

inline bool ChangeExecutor::ask_yes(const std::string& prompt) {
  return opt_.force || opt_.dry_run || yes_to_all_ || confirm(io_, prompt);
}

inline void ChangeExecutor::note(const std::string& s) {
  if (opt_.dry_run) say(s);
  else if (io_.warn) io_.warn(s);
}

inline std::string ChangeExecutor::trim_newline(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

template <typename Send>
inline std::string ChangeExecutor::change(const std::string& request, Send send, const std::function<bool(const Cluster&)>& applied) {
  return in_effect(change_at(index_.endpoint(), request, [&] { return send_to_index(request, send, applied); }));
}

template <typename Send>
inline std::string ChangeExecutor::change_at(const Endpoint& to, const std::string& request, Send send) {
  if (opt_.dry_run) {
    say("dry run: would send '" + request + "' to " + to.display());
    return "OK";
  }
  return send();
}

inline void ChangeExecutor::declined(const std::string& key, const NodeInfo& n, const std::string& how) {
  if (io_.interrupted && io_.interrupted()) return;
  complain("skipped: " + key + " left as it is (role=" + n.role + ", state=" + n.state + ", balance=" +
      std::to_string(n.balance) + "); to do it later: " + how);
}

inline std::optional<std::string> ChangeExecutor::flush_plan(const NodeInfo& n, const std::string& discard_again) {
  if (opt_.without_clean) return std::string();
  long long items = -1;
  try {
    items = detail::items_of(n.endpoint(), opt_.timeout_ms, index_.trace(), io_.interrupted);
  } catch (const Interrupted&) {
    throw;
  } catch (const Error&) {
    return std::string(); // its flush_all fails the same way, and says so
  }
  if (items <= 0) return std::string();
  const std::string count = std::to_string(items) + (items == 1 ? " item" : " items");
  if (n.is_proxy() && !opt_.discard_items) {
    complain("refused: " + n.key + " is a proxy holding " + count + ", and flush_all would delete them before it is "
             "made a copy of a partition. A proxy holds items only from an earlier role: if the index lost its map (see "
             "flare-admin list and check), give flarei its flare.xml back first (flare-admin index --from-node HOST:PORT "
             "-o flare.xml writes it from a node's own map) and rebuild no node before it; to delete them: " + discard_again);
    return std::nullopt;
  }
  note("flush_all deletes the " + count + " " + n.key + " holds (--discard-items)");
  return "; flush_all deletes its " + count;
}

inline std::string ChangeExecutor::send_role(const Endpoint& ep, const std::string& role, int bal, int part) {
  return send_to_index("node role " + ep.host + " " + std::to_string(ep.port) + " " + role + " " + std::to_string(bal) + " " +
                           std::to_string(part),
                       [&] { return set_role_with_retry(index_, ep, role, bal, part, opt_, io_); },
                       [&](const Cluster& c) {
                         const NodeInfo* x = c.find(ep);
                         return x && x->role == role && x->partition == part;
                       });
}

inline std::string ChangeExecutor::given_role(const Endpoint& ep, const std::string& role, int bal, int part, const std::string& again) {
  std::string st = send_role(ep, role, bal, part);
  if (st != "OK") return st;
  working_on(ep, again);
  expect_seen(ep, role, role == "master" && part == 0 ? "active" : "prepare", part, role == "master" ? bal : 0);
  return st;
}

inline std::string ChangeExecutor::flush(const Endpoint& ep) {
  return change_at(ep, "flush_all", [&] {
    NodeClient node(ep, opt_.timeout_ms);
    node.set_trace(index_.trace());
    node.set_change_log(index_.change_log());
    if (io_.interrupted) node.set_cancel(io_.interrupted); // a stopped node does not hold Ctrl-C up
    return node.flush_all();
  });
}

inline Outcome ChangeExecutor::interrupted_at(const Endpoint& ep, const std::string& resume) {
  return interrupted_at(ep, [&](const NodeInfo*) { return resume; });
}

inline Outcome ChangeExecutor::interrupted_at(const Endpoint& ep, const std::function<std::string(const NodeInfo*)>& resume) {
  std::string now = "unknown";
  std::optional<NodeInfo> seen;
  try {
    // One look after Ctrl-C, briefly: a stopped index costs 2 s at most, not --timeout.
    IndexClient look(index_.endpoint(), std::min(opt_.timeout_ms, 2000));
    look.set_trace(index_.trace());
    Cluster c(look.stats_nodes());
    if (auto* n = c.find(ep)) {
      seen = *n;
      now = n->role + " " + n->state + ", balance " + std::to_string(n->balance);
    }
  } catch (const Error& e) {
    now = "unknown (" + std::string(e.what()) + ")";
  }
  if (seen) {
    try {
      now += ", " + std::to_string(detail::items_of(ep, std::min(opt_.timeout_ms, 2000), index_.trace())) + " items";
    } catch (const Error&) {
    }
  }
  if (io_.warn) io_.warn("interrupted: " + ep.key() + " is now " + now + ". " + resume(seen ? &*seen : nullptr));
  return Outcome::interrupted;
}

inline Outcome ChangeExecutor::construct_master(const NodeArg& a, const NodeInfo& before) {
  const Endpoint& ep = a.endpoint;
  int part = *a.partition, bal = *a.balance;
  if (!opt_.without_clean) {
    if (flush(ep) != "OK") {
      complain("executing flush_all failed.");
      return Outcome::failed;
    }
    if (!opt_.dry_run) say("executed flush_all command before constructing the master node.");
  }
  std::string st = opt_.dry_run ? change("node role " + ep.host + " " + std::to_string(ep.port) + " master " +
                                             std::to_string(bal) + " " + std::to_string(part),
                                         [] { return std::string("OK"); })
                                : in_effect(given_role(ep, "master", bal, part, master_again(a)));
  if (interrupted_status(st))
    return interrupted_change(ep, st, "node role " + ep.host + " " + std::to_string(ep.port) + " master " + std::to_string(bal) +
                                          " " + std::to_string(part), master_again(a), master_again(a));
  if (st != "OK") {
    complain("failed to change the state.");
    if (io_.warn) io_.warn(ep.key() + ": the index answered '" + st + "'; the node is still " + before.role + " " + before.state);
    return Outcome::failed;
  }
  if (opt_.dry_run) {
    // Partition 0's master is active at once; a later one ends ready (or active with --activate).
    if (part != 0 && opt_.activate)
      say("dry run: would wait for it to be ready, then send 'node state " + ep.host + " " + std::to_string(ep.port) +
          " active' to " + index_.endpoint().display());
    planned_as(before, "master", part == 0 || opt_.activate ? "active" : "ready", part, bal);
    return Outcome::ok;
  }
  say("started constructing the master node...");
  return finish_master(a);
}

inline std::string ChangeExecutor::with_discard(const std::string& cmd) {
  for (const char* verb : {"flare-admin slave ", "flare-admin master "}) {
    std::string v = verb;
    if (cmd.rfind(v, 0) == 0 && cmd.find("--discard-items") == std::string::npos) return v + "--discard-items " + cmd.substr(v.size());
  }
  return cmd;
}

inline std::string ChangeExecutor::master_again(const NodeArg& a) const {
  return std::string("flare-admin master ") + (opt_.activate ? "--activate " : "") + a.endpoint.key() + ":" +
         std::to_string(*a.balance) + ":" + std::to_string(*a.partition);
}

inline Outcome ChangeExecutor::finish_master(const NodeArg& a) {
  const Endpoint& ep = a.endpoint;
  int part = *a.partition;
  ConstructionProgress last;
  try {
    const WaitEnd end = wait_for_master_ready(index_, ep, opt_, io_, last);
    seen_in_wait(ep, last);
    if (end == WaitEnd::interrupted)
      return interrupted_at(ep, "Its copy goes on by itself; to finish the job, run again: " + master_again(a));
  } catch (const ConstructionStopped& e) {
    return master_stopped(e, a);
  }
  if (last.state == "active" && part != 0)
    complain("The master should be ready after the reconstruction but it became active.");
  say("state is ready -> stop waiting");
  if (last.state == "ready" && opt_.activate) {
    if (!ask_yes("changing node's state (node=" + ep.key() + ", state=ready -> active) (y/n): ")) {
      complain("skipped: " + ep.key() + " is master ready and serves no data yet; to activate it: flare-admin activate " +
          ep.key());
      return io_.interrupted && io_.interrupted() ? Outcome::interrupted : Outcome::declined; // Ctrl-C at the question: 130
    }
    std::string s = in_effect(send_to_index("node state " + ep.host + " " + std::to_string(ep.port) + " active",
                                            [&] { return index_.node_state(ep, "active"); },
                                            [&](const Cluster& c) {
                                              const NodeInfo* x = c.find(ep);
                                              return x && x->is_master() && x->state == "active";
                                            }));
    if (interrupted_status(s))
      return interrupted_change(ep, s, "node state " + ep.host + " " + std::to_string(ep.port) + " active", master_again(a),
                                master_again(a));
    if (s != "OK") {
      complain("failed to activate " + ep.key() + (s.rfind("ERROR", 0) == 0 || s.rfind("SERVER_ERROR", 0) == 0 ? "" : ": " + s));
      return Outcome::failed;
    }
  }
  const NodeInfo* now = nullptr;
  Cluster c = cluster();
  now = c.find(ep);
  if (now && now->is_master() && now->balance != *a.balance) return give_balance(*now, *a.balance);
  return Outcome::ok;
}

inline Outcome ChangeExecutor::master_stopped(const ConstructionStopped& e, const NodeArg& a) {
  const std::string key = a.endpoint.key();
  // A copy cut short leaves items on the node: back as a proxy, `master` deletes them only when told.
  auto master_again = [&](const NodeArg& x) { return with_discard(this->master_again(x)); };
  const ConstructionProgress& p = e.last;
  std::string msg = e.what();
  if (e.why == ConstructionStopped::Why::index_unreachable) {
    msg += ". When last seen, " + key + " was " + p.role + " " + p.state + " with " + std::to_string(p.items) +
           " items; its copy goes on by itself. When the index answers again, finish the job with: " + this->master_again(a);
  } else if (e.why == ConstructionStopped::Why::stalled && !p.node_error.empty()) {
    msg += ". Start its flared again, then run: " + master_again(a);
  } else if (e.why == ConstructionStopped::Why::stalled && !p.blocked_on.empty()) {
    msg += " (stopped, e.g. SIGSTOP, or overloaded); restarting " + key + " does not help. If " + p.blocked_on +
           " answers again, the copy goes on by itself; finish the job with: " + this->master_again(a) + ". If its flared "
           "died, the copy fails and " + key + " falls back to proxy; once it is proxy active, run: " + master_again(a) + ".";
  } else if (e.why == ConstructionStopped::Why::stalled) {
    msg += ": flared leaves a new partition's master in prepare for good when its first copy failed. The way out: "
           "restart the flared of " + key + ", then run the command again: " + master_again(a);
  } else {
    msg += ". To build the partition on it again: " + master_again(a);
  }
  if (io_.warn) io_.warn(msg);
  return Outcome::failed;
}

inline Outcome ChangeExecutor::construct_slave(const Endpoint& ep, int part, int bal, const std::string& started, bool clean,
                                               const std::string& again, bool rebuild) {
  if (clean && !opt_.without_clean) {
    if (flush(ep) != "OK") {
      complain("executing flush_all failed.");
      return Outcome::failed;
    }
    if (!opt_.dry_run) say("executed flush_all command before constructing the slave node.");
  }
  keep_balance(ep, part, bal);
  std::string st = opt_.dry_run ? change("node role " + ep.host + " " + std::to_string(ep.port) + " slave 0 " +
                                             std::to_string(part),
                                         [] { return std::string("OK"); })
                                : in_effect(given_role(ep, "slave", 0, part, again));
  if (interrupted_status(st))
    return interrupted_change(ep, st, "node role " + ep.host + " " + std::to_string(ep.port) + " slave 0 " + std::to_string(part),
                              again, again);
  if (st != "OK") {
    complain("failed to change the state.");
    if (io_.warn) io_.warn(ep.key() + ": the index answered '" + st + "'");
    return Outcome::failed;
  }

  if (opt_.dry_run) {
    if (bal > 0)
      change("node role " + ep.host + " " + std::to_string(ep.port) + " slave " + std::to_string(bal) + " " +
                 std::to_string(part),
             [] { return std::string("OK"); });
    NodeInfo n;
    n.key = ep.key();
    n.host = ep.host;
    n.port = ep.port;
    planned_as(n, "slave", "active", part, std::max(0, bal));
    return Outcome::ok;
  }
  say(started);
  return finish_slave(ep, part, bal, again, rebuild);
}

inline Outcome ChangeExecutor::finish_slave(const Endpoint& ep, int part, int bal, const std::string& again, bool rebuild) {
  if (bal < 0)
    if (auto k = kept_balance(ep, part)) {
      bal = k->balance;
      note("the balance to give " + ep.key() + " once it is slave active: " + std::to_string(bal) +
           " (kept by the run that started its copy)");
    }
  std::optional<Endpoint> source;
  ConstructionProgress last;
  // Run now, `balance` is refused while the node copies (flarei: SERVER_ERROR failed to set
  // role, seen on a real flare 1.3.4); `slave` run again waits for the copy, then gives it.
  std::string finish = bal > 0 ? " To finish the job (it waits for the copy, then gives balance " + std::to_string(bal) +
                                     "), run: flare-admin slave " + ep.key() + ":" + std::to_string(bal) + ":" + std::to_string(part)
                               : "";
  WaitEnd end = WaitEnd::interrupted;
  try {
    Cluster c = cluster();
    if (const NodeInfo* m = c.master_of(part)) source = m->endpoint();
    end = wait_for_slave_active(index_, ep, opt_, io_, last);
    seen_in_wait(ep, last);
  } catch (const ConstructionStopped& e) {
    return slave_stopped(e, ep, part, source, again, rebuild);
  } catch (const Interrupted&) {
    // Ctrl-C while the map was read (a stopped index): as in the wait
  }
  if (end == WaitEnd::interrupted)
    return interrupted_at(ep, [&](const NodeInfo* n) -> std::string {
      if (n && n->is_slave() && n->is_active())
        return bal > 0 && n->balance != bal ? "Its copy is done; give it its balance: flare-admin balance " + ep.key() + ":" +
                                                  std::to_string(bal)
                                            : std::string("Its copy is done.");
      return "The node keeps copying from its master." + finish;
    });
  say("state is active -> stop waiting");
  Cluster c = cluster();
  const NodeInfo* now = c.find(ep);
  if (!now) return Outcome::ok;
  if (auto refused = masterless_slave(c, ep, part, again)) return *refused;
  if (bal < 0) {
    if (now->balance > 0) return Outcome::ok;
    if (io_.warn)
      io_.warn(ep.key() + " is slave active with balance 0: it serves no reads. To finish, give it the balance it had: "
               "flare-admin balance " + ep.key() + ":BALANCE");
    return Outcome::failed;
  }
  if (now->balance == bal) {
    forget_balance(ep);
    return Outcome::ok;
  }
  Outcome given = give_balance(*now, bal);
  if (given == Outcome::ok) forget_balance(ep);
  return given;
}

inline std::optional<Outcome> ChangeExecutor::masterless_slave(const Cluster& c, const Endpoint& ep, int part, const std::string& again) {
  const NodeInfo* m = c.master_of(part);
  if (m && m->state != "down") return std::nullopt;
  complain("partition " + std::to_string(part) + " has no active master" +
           (m ? " (its master " + m->key + " is down)" : std::string(" (the index lists none)")) + ": " + ep.key() +
           " is not given a balance and its copy is not waited for.");
  if (io_.warn)
    io_.warn(m ? "Start the flared of " + m->key + " again (the index keeps it as the partition's master and brings it back "
                 "with its data), then run: " + again
               : "Make a node master of partition " + std::to_string(part) + " first, then run: " + again);
  return Outcome::failed;
}

inline Outcome ChangeExecutor::slave_stopped(const ConstructionStopped& e, const Endpoint& ep, int part, const std::optional<Endpoint>& source,
                                             const std::string& again_asked, bool rebuild) {
  const std::string key = ep.key();
  // A copy cut short leaves items on the node: back as a proxy, `slave` deletes them only when told.
  const std::string again = with_discard(again_asked);
  const ConstructionProgress& p = e.last;
  const std::string fewer = rebuild ? " Until it is rebuilt, partition " + std::to_string(part) + " has one copy fewer." : "";
  std::string msg = e.what();
  if (e.why == ConstructionStopped::Why::index_unreachable) {
    msg += ". When last seen, " + key + " was " + p.role + " " + p.state + " with " + std::to_string(p.items) +
           " items; its copy goes on by itself on the nodes." + fewer +
           " When the index answers again, finish the job with: " + again_asked + ". If its copy ended while the index "
           "was gone, flared could not report it and the node stays in prepare (that command then says so): restart its "
           "flared, then run: " + again;
  } else if (e.why == ConstructionStopped::Why::stalled) {
    if (!p.node_error.empty())
      msg += ". Start its flared again, then run: " + again;
    else if (!p.source_error.empty())
      msg += ": no data reaches " + key + " while " + p.source + " is silent (stopped, e.g. SIGSTOP, or overloaded); "
             "restarting " + key + " does not help. If " + p.source + " answers again, the copy resumes by itself; finish "
             "the job with: " + again_asked + ". If the index fails " + p.source + " over instead (it shows it down), the copy "
             "fails and " + key + " falls back to proxy; once it is proxy active, run: " + again;
    else
      msg += ": it will not finish by itself. Restart the flared of " + key + " (it comes back as a proxy), then run: " + again;
    msg += fewer;
  } else if (p.role == "proxy" && p.state != "down" && source && !answers_ping(*source)) {
    msg = "construction of " + key + " stopped: the partition's master " + source->key() +
          " does not answer (its flared died?), so the copy failed and " + key + " fell back to proxy. Partition " +
          std::to_string(part) + " now has one copy fewer (" + source->key() + "'s)" +
          (rebuild ? ", and " + key + ", flushed for the rebuild, holds none" : std::string()) +
          "; the index hands the partition to an active slave, if it has one, once it sees " + source->key() +
          " down. Then make " + key + " a slave again: " + again;
  } else if (p.role == "proxy" && p.state != "down") {
    // A flared whose copy from the master fails (the master answers `SERVER_ERROR database busy`
    // while a dump or another construction reads it) gives up and goes back to proxy.
    complain("construction of " + key + " failed: the node fell back to proxy " + p.state + " because its copy from the master " +
        (source ? source->key() : std::string("of partition ") + std::to_string(part)) +
        " failed (flared does so when the master is busy with a dump or another construction: SERVER_ERROR database "
        "busy). When the master is free, try again: " + again);
    return Outcome::failed;
  } else if (p.role == "proxy") {
    msg += " (its flared stopped?). Start its flared again; once it is proxy active, run: " + again + fewer;
  } else {
    msg += "." + fewer + " To make it a slave again: " + again;
  }
  if (io_.warn) io_.warn(msg);
  return Outcome::failed;
}

inline Outcome ChangeExecutor::give_balance(const NodeInfo& n, int bal) {
  const std::string key = n.key;
  const Endpoint ep = n.endpoint();
  if (!ask_yes("changing node's balance (node=" + key + ", balance=" + std::to_string(n.balance) + " -> " +
               std::to_string(bal) + ") (y/n): ")) {
    complain("skipped: " + key + " is " + n.role + " " + n.state + " with balance " + std::to_string(n.balance) +
        (n.balance == 0 ? " (it serves no reads)" : "") + "; to finish: flare-admin balance " + key + ":" + std::to_string(bal));
    return io_.interrupted && io_.interrupted() ? Outcome::interrupted : Outcome::declined; // Ctrl-C at the question: 130
  }
  if (opt_.dry_run) { // a dry run of a run again (`slave -n`, `master -n`) changes nothing
    change("node role " + ep.host + " " + std::to_string(ep.port) + " " + n.role + " " + std::to_string(bal) + " " +
               std::to_string(n.partition),
           [] { return std::string("OK"); });
    return Outcome::ok;
  }
  auto deadline = Clock::now() + std::chrono::milliseconds(opt_.timeout_ms);
  std::string b;
  for (;;) {
    try {
      b = index_.node_role(ep, n.role, bal, n.partition);
      break;
    } catch (const NetworkError& e) {
      index_.close();
      if (Clock::now() >= deadline || !detail::pause(500, io_)) {
        if (io_.warn)
          io_.warn("the index " + index_.endpoint().display() + " did not answer (" + e.what() + "): " + key + " is " +
                   n.role + " " + n.state + " with balance " + std::to_string(n.balance) + "; to finish: flare-admin balance " +
                   key + ":" + std::to_string(bal));
        return io_.interrupted && io_.interrupted() ? Outcome::interrupted : Outcome::failed;
      }
      try { // the lost request may have been carried out
        Cluster c = cluster();
        if (const NodeInfo* now = c.find(ep); now && now->balance == bal) {
          b = "OK";
          break;
        }
      } catch (const NetworkError&) {
        index_.close();
      }
    }
  }
  b = in_effect(b);
  if (interrupted_status(b))
    return interrupted_change(ep, b, "node role " + ep.host + " " + std::to_string(ep.port) + " " + n.role + " " +
                                         std::to_string(bal) + " " + std::to_string(n.partition),
                              "flare-admin balance " + key + ":" + std::to_string(bal), "");
  if (b != "OK") {
    complain("failed to change the balance of " + key + ": " + b);
    return Outcome::failed;
  }
  return Outcome::ok;
}

inline Outcome ChangeExecutor::resume_master(const NodeArg& a, const NodeInfo& n) {
  const std::string key = a.endpoint.key();
  int part = *a.partition;
  if (n.state == "down") {
    complain(key + " is master of partition " + std::to_string(part) + " but down.");
    Cluster c = cluster();
    const NodeInfo* serving = c.master_of(part);
    if (io_.warn)
      io_.warn(key + " does not run (is its flared stopped?): start its flared again; the index makes it active with its "
               "data" + (serving && serving->key != key ? ", unless another master took the partition over (" + serving->key +
                                                              "; then it comes back as a proxy)"
                                                        : std::string()) + ".");
    return Outcome::failed;
  }
  if (n.state == "active") {
    if (n.balance == *a.balance) {
      say("no need to change the role of " + key + ".");
      return Outcome::ok;
    }
    return give_balance(n, *a.balance);
  }
  if (opt_.dry_run) {
    say("dry run: " + key + " is master " + n.state + "; would wait for it to be ready" +
        (opt_.activate ? ", then send 'node state " + a.endpoint.host + " " + std::to_string(a.endpoint.port) + " active'" : "") +
        " to " + index_.endpoint().display());
    return Outcome::ok;
  }
  if (n.state == "prepare")
    say(key + " is already master of partition " + std::to_string(part) + " and still copying (prepare): waiting for it to be ready.");
  else
    say(key + " is already master of partition " + std::to_string(part) + " (" + n.state + ").");
  Outcome o = finish_master(a);
  if (o == Outcome::ok && !opt_.activate && io_.warn) {
    Cluster c = cluster();
    if (const NodeInfo* now = c.find(a.endpoint); now && now->state == "ready")
      io_.warn(key + " is master ready: built, serving no data until it is activated: flare-admin activate " + key);
  }
  return o;
}

inline Outcome ChangeExecutor::resume_slave(const NodeInfo& n, int bal, const std::string& again) {
  const std::string key = n.key;
  if (auto refused = masterless_slave(cluster(), n.endpoint(), n.partition, again)) return *refused;
  if (n.state == "active") {
    if (n.balance == bal) {
      say("no need to change the role of " + key + ".");
      return Outcome::ok;
    }
    say(key + " is already slave active of partition " + std::to_string(n.partition) + ", with balance " +
        std::to_string(n.balance) + ".");
    return give_balance(n, bal);
  }
  if (opt_.dry_run) {
    say("dry run: " + key + " is slave " + n.state + "; would wait for it to be active" +
        (bal > 0 ? ", then send 'node role " + n.host + " " + std::to_string(n.port) + " slave " + std::to_string(bal) + " " +
                       std::to_string(n.partition) + "'"
                 : std::string()) +
        " to " + index_.endpoint().display());
    return Outcome::ok;
  }
  say(key + " is already a slave of partition " + std::to_string(n.partition) + " and still copying (" + n.state +
      "): waiting for it.");
  return finish_slave(n.endpoint(), n.partition, bal, again, false);
}

inline bool ChangeExecutor::answers_ping(const Endpoint& ep) {
  return detail::answers_ping(ep, opt_.timeout_ms, index_.trace(), io_.interrupted);
}

inline Outcome ChangeExecutor::reconstruct_one(const NodeInfo& n) {
  const Endpoint ep = n.endpoint();
  const bool failover = n.is_master() && n.is_active();
  const std::string rebuild = "flare-admin slave " + n.key + ":" + std::to_string(n.balance) + ":" + std::to_string(n.partition);
  // Set down and not yet flushed, it is a proxy holding its old copy, which `slave` refuses to
  // delete unless told: the partition's master holds the data it is rebuilt from (rebuild_unflushed).
  const std::string rebuild_unflushed =
      "flare-admin slave --discard-items " + n.key + ":" + std::to_string(n.balance) + ":" + std::to_string(n.partition);
  working_on(ep, "flare-admin reconstruct " + n.key, rebuild_unflushed + " (once it is proxy active)");
  job_seen_ = n;
  keep_balance(ep, n.partition, n.balance); // a run cut short from here on leaves the figure to the next
  if (failover) {
    Cluster c = cluster();
    if (auto refused = failover_checks(c, n)) {
      forget_balance(ep);
      return *refused;
    }
  }
  say("turning down...");
  // Set down, it is out of its partition: from there on, the way to finish is to make it a slave.
  // Said as soon as the index takes the down, before the wait for the nodes to route by it.
  auto set_down = [&] {
    working_on(ep, rebuild_unflushed + " (once it is proxy active; it was set down to be rebuilt)");
    // what the index makes of a node set down: a slave proxy down, a master failed over master down
    if (failover) expect_seen(ep, "master", "down", n.partition, n.balance);
    else expect_seen(ep, "proxy", "down", -1, 0);
  };
  std::string st;
  const std::string request = "node state " + ep.host + " " + std::to_string(ep.port) + " down";
  if (failover) {
    st = down_master(n);
  } else {
    st = change_at(index_.endpoint(), request, [&] {
      return send_to_index(request, [&] { return index_.node_state(ep, "down"); },
                           [&](const Cluster& now) {
                             const NodeInfo* x = now.find(ep);
                             return x && (x->state == "down" || x->is_proxy());
                           });
    });
    if (st == "OK" && !opt_.dry_run) set_down();
    st = in_effect(st);
  }
  if (st == kInterruptedTaken) {
    set_down();
    return interrupted_change(ep, st, request, "flare-admin reconstruct " + n.key, rebuild_unflushed + " (once it is proxy active)");
  }
  if (st != "OK") {
    if (!job_ || job_->again.rfind("flare-admin reconstruct", 0) == 0) forget_balance(ep); // not set down: nothing to finish
    if (st == "interrupted") return interrupted_change(ep, st, request, "flare-admin reconstruct " + n.key, "");
    complain("failed to turn " + n.key + " down: " + st);
    return Outcome::failed;
  }
  set_down();
  if (!opt_.dry_run) cluster(); // where it is now, for a message if the index is lost from here on
  say("waiting for node to be active again...");
  WaitEnd back = WaitEnd::reached;
  try {
    if (!opt_.dry_run) back = wait_for_proxy_active(index_, ep, opt_, io_);
  } catch (const NetworkError& e) {
    throw detail::IndexLost(lost_index_text(e.what()));
  }
  if (back == WaitEnd::interrupted) return interrupted_at(ep, "It was set down; to rebuild it: " + rebuild_unflushed);
  if (flush(ep) != "OK") {
    complain("executing flush_all failed.");
    return Outcome::failed;
  }
  Outcome o = construct_slave(ep, n.partition, n.balance, "started constructing node...", false, rebuild, true);
  if (o == Outcome::ok) say("done.");
  return o;
}

inline std::vector<const NodeInfo*> ChangeExecutor::active_slaves(const Cluster& c, const NodeInfo& m) {
  std::vector<const NodeInfo*> active;
  for (const auto* s : c.slaves_of(m.partition))
    if (s->is_active()) active.push_back(s);
  return active;
}

inline std::vector<const NodeInfo*> ChangeExecutor::takeover_candidates(const Cluster& c, const NodeInfo& m) {
  std::vector<const NodeInfo*> active = active_slaves(c, m);
  int top = 0;
  for (const auto* s : active) top = std::max(top, s->balance);
  std::vector<const NodeInfo*> out;
  for (const auto* s : active)
    if (s->balance == top) out.push_back(s);
  return out;
}

inline std::string ChangeExecutor::lag_text(const SlaveLag& l) {
  if (l.pending() == 0) return "caught up (no write waiting)";
  return std::to_string(l.queue) + " writes waiting" + (l.writing ? " (and one being sent)" : "") + ", the oldest " +
         std::to_string(l.behind) + " s old";
}

inline std::optional<std::vector<SlaveLag>> ChangeExecutor::read_lags(const Cluster& c, const NodeInfo& m) {
  try {
    return ask_slave_lag(m.endpoint(), opt_.timeout_ms, c.nodes(), index_.trace(), io_.interrupted);
  } catch (const Interrupted&) {
    throw;
  } catch (const Error& e) {
    if (io_.warn)
      io_.warn("warning: the replication lag of " + m.key + "'s slaves is unknown: " + m.key + " did not answer `stats threads slave` (" +
               e.what() + "); writes it has not sent to them yet are lost if it is down");
    return std::nullopt;
  }
}

inline std::optional<std::string> ChangeExecutor::copy_source_problem(const Cluster& c, int part) {
  std::vector<Endpoint> eps;
  std::vector<std::string> keys;
  for (int p = 0; p < part; ++p) {
    const NodeInfo* m = c.master_of(p);
    if (!m) return "partition " + std::to_string(p) + " has no master";
    if (!m->is_active())
      return "partition " + std::to_string(p) + "'s master " + m->key + " is " + m->state + ", not active";
    eps.push_back(m->endpoint());
    keys.push_back(m->key);
  }
  auto answers = gather_stats(eps, opt_.timeout_ms, hooks());
  for (size_t i = 0; i < answers.size(); ++i)
    if (!answers[i].ok)
      return "partition " + std::to_string(i) + "'s master " + keys[i] + " does not answer (" + answers[i].error + ")";
  return std::nullopt;
}

inline std::optional<Outcome> ChangeExecutor::takeover_check(const Cluster& c, const NodeInfo& m, std::optional<std::vector<SlaveLag>>& lags) {
  auto cands = takeover_candidates(c, m);
  if (!cands.empty() && said_.insert("failover " + m.key).second) {
    note("a failover: writes made while the partition switches masters may be lost (flare replicates asynchronously; "
         "the slave promoted has only what reached it)");
    // Who takes over, before anything is sent (flarei's down_node: the active slave of the
    // highest balance; on a tie, the first in its own order, which the map does not show).
    std::string who;
    for (const auto* s : cands) who += (who.empty() ? "" : ", ") + s->key;
    note("the index promotes " + (cands.size() == 1 ? who : "one of " + who + " (a tie in balance: the index's choice)") +
         ", the active slave of the highest balance (" + std::to_string(cands.front()->balance) + "), to master of partition " +
         std::to_string(m.partition));
  }
  if (cands.empty()) {
    // No slave to take over: set down, the partition serves nothing, and while its flared runs
    // flarei's monitor makes it master active again about a second later (seen on a real flare
    // 1.3.4: 100 of 100 gets failed meanwhile): an outage, and nothing lasting. Refused first.
    if (opt_.unsafe) {
      if (said_.insert("only copy " + m.key).second)
        note("--unsafe: " + m.key + " is the only active copy of partition " + std::to_string(m.partition) +
             ": the partition serves nothing while it is down.");
      return std::nullopt;
    }
    complain("refused: " + m.key + " is the master of partition " + std::to_string(m.partition) +
             " and it has no active slave to take over: set down, the partition would serve nothing, and while its "
             "flared runs the index makes it master active again a second later (an outage, nothing lasting). "
             "Nothing was changed. To take it out of service, give the partition a slave first (flare-admin slave "
             "HOST:PORT:" + std::to_string(std::max(1, m.balance)) + ":" + std::to_string(m.partition) +
             " on a proxy), then run this again; --unsafe sets it down anyway.");
    return Outcome::failed;
  }
  std::vector<Endpoint> eps;
  for (const auto* s : cands) eps.push_back(s->endpoint());
  auto answers = gather_stats(eps, opt_.timeout_ms, hooks());
  std::string dead, dead_keys;
  size_t dead_count = 0;
  for (size_t i = 0; i < answers.size(); ++i)
    if (!answers[i].ok) {
      dead += (dead.empty() ? "" : ", ") + cands[i]->key + " (" + answers[i].error + ")";
      dead_keys += " " + cands[i]->key;
      ++dead_count;
    }
  if (!dead.empty()) {
    // The advice names the slaves that do not answer, never a live one (downing that would
    // leave the dead one the index's only choice).
    const bool one = dead_count == 1;
    if (io_.warn)
      io_.warn("refused: " + m.key + " is the master of partition " + std::to_string(m.partition) +
               "; the index would hand the partition to " + (cands.size() == 1 ? "its slave " : "one of its slaves ") +
               dead + (one ? ", which does not answer" : ", which do not answer") +
               ": the partition would be left without a working master. Nothing was changed. Start " +
               (one ? "that slave's flared" : "those slaves' flared") + " again; or give the partition a working slave "
               "first (flare-admin slave HOST:PORT:" + std::to_string(std::max(1, cands.front()->balance)) + ":" +
               std::to_string(m.partition) + " on a proxy), then set " + (one ? "the dead one" : "the dead ones") +
               " down (flare-admin down" + dead_keys + ") and run this again.");
    return Outcome::failed;
  }
  lags = read_lags(c, m);
  if (lags) {
    for (const auto* s : active_slaves(c, m)) {
      SlaveLag none;
      none.slave = s->key;
      const SlaveLag* l = &none;
      for (const auto& x : *lags)
        if (x.slave == s->key) l = &x;
      // The plan of a dry run is its output; in a real run, a note (stderr in flare-admin).
      note("replication from " + m.key + " to " + s->key + ": " + lag_text(*l));
      if (opt_.dry_run && l->pending() > 0)
        say("dry run: a real run would wait up to " + detail::seconds_text(opt_.timeout_ms) + " s for " + s->key +
            " to catch up, and refuse if it does not" + (opt_.unsafe ? " (--unsafe: it would go on)." : " (unless --unsafe)."));
    }
  }
  return std::nullopt;
}

inline std::optional<Outcome> ChangeExecutor::drain_check(const Cluster& c, const NodeInfo& m, const std::optional<std::vector<SlaveLag>>& first) {
  if (opt_.dry_run || !first) return std::nullopt;
  // Every active slave: the one promoted lacks what it has not received, the others would
  // never receive it (they follow the new master from then on).
  auto cands = active_slaves(c, m);
  auto behind = [&](const std::vector<SlaveLag>& lags) {
    std::vector<SlaveLag> out;
    for (const auto* s : cands)
      for (const auto& l : lags)
        if (l.slave == s->key && l.pending() > 0) out.push_back(l);
    return out;
  };
  auto start = Clock::now(), shown = start - std::chrono::seconds(1);
  std::vector<SlaveLag> late = behind(*first);
  while (!late.empty()) {
    if (Clock::now() - start >= std::chrono::milliseconds(opt_.timeout_ms)) break;
    if (io_.progress && Clock::now() - shown >= std::chrono::seconds(1)) { // a line a second, as constructions
      io_.progress("waiting for " + late.front().slave + " to catch up with " + m.key + ": " + lag_text(late.front()));
      shown = Clock::now();
    }
    if (!detail::pause(200, io_)) {
      if (io_.warn) io_.warn("interrupted while waiting for the slaves of " + m.key + " to catch up: nothing was changed.");
      return Outcome::interrupted;
    }
    auto now = read_lags(c, m);
    if (!now) return std::nullopt; // m stopped answering: nothing more to wait for
    late = behind(*now);
  }
  if (late.empty()) return std::nullopt;
  std::string figures;
  for (const auto& l : late) figures += (figures.empty() ? "" : "; ") + l.slave + ": " + lag_text(l);
  long long waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  waited = waited >= 1000 ? waited / 1000 * 1000 : waited / 100 * 100; // whole seconds, or tenths under one
  if (opt_.unsafe) {
    if (io_.warn) io_.warn("warning: --unsafe: failing " + m.key + " over although its slaves are behind (" + figures + "); those writes are lost");
    return std::nullopt;
  }
  if (io_.warn)
    io_.warn("refused: the slaves of " + m.key + " did not catch up within " + detail::seconds_text(waited) + " s (" + figures +
             "); a failover now would lose those writes. Nothing was changed. Run it again when they have caught up "
             "(see flare-admin stats, column behind), with a longer --timeout, or with --unsafe to give those writes up.");
  return Outcome::failed;
}

inline std::optional<Outcome> ChangeExecutor::failover_checks(const Cluster& c, const NodeInfo& m) {
  std::optional<std::vector<SlaveLag>> lags;
  if (auto r = takeover_check(c, m, lags)) return r;
  return drain_check(c, m, lags);
}

inline std::string ChangeExecutor::down_master(const NodeInfo& m) {
  const Endpoint ep = m.endpoint();
  const std::string request = "node state " + ep.host + " " + std::to_string(ep.port) + " down";
  // flare replicates asynchronously: a write the master acknowledged and had not sent on when
  // the switch was made is not on the slave promoted (seen on a real flare 1.3.4: 1 of 6,260
  // writes made during a planned failover). What each slave lacked is read right before.
  std::optional<std::vector<SlaveLag>> at_switch;
  if (!opt_.dry_run) {
    Cluster before = cluster();
    at_switch = read_lags(before, m);
  }
  std::string st = change(request, [&] {
    try {
      return index_.node_state(ep, "down");
    } catch (const NetworkError& e) {
      // The change was made if `m` is no longer its partition's master: down, or (a few
      // seconds on, its flared being alive) back as a proxy, as seen on a real flare 1.3.4.
      Cluster after = cluster(); // a new connection: the late answer is dropped with the old one
      const NodeInfo* now = after.find(ep);
      if (!now || (now->state != "down" && now->is_master())) throw;
      note("the index did not answer '" + request + "' (" + e.what() + ") but made the change.");
      return std::string("OK");
    }
  });
  if (st != "OK" || opt_.dry_run) return st;
  Cluster after = cluster();
  const NodeInfo* nm = after.master_of(m.partition);
  if (nm && nm->key != m.key && nm->is_active()) {
    std::string lacked = "unknown (the old master's replication threads could not be read)";
    if (at_switch) {
      long long pending = 0;
      for (const auto& l : *at_switch)
        if (l.slave == nm->key) pending = l.pending();
      lacked = std::to_string(pending);
    }
    note("partition " + std::to_string(m.partition) + " failed over: its master is now " + nm->key + " (balance " +
         std::to_string(nm->balance) + "). Writes made while it switched may be lost (flare replicates "
         "asynchronously): writes " + nm->key + " had not received when the switch was sent: " + lacked + ".");
    if (after.active_slave_count(m.partition) == 0)
      note("partition " + std::to_string(m.partition) + " has no active slave now: no redundancy until one is built "
           "(flare-admin slave HOST:PORT:BALANCE:" + std::to_string(m.partition) + ").");
  }
  else if (io_.warn)
    io_.warn("warning: partition " + std::to_string(m.partition) + " has no active master now" +
             (nm ? " (" + nm->key + " is master " + nm->state + ")" : std::string()) + ": its reads and writes fail.");
  return st;
}

inline void ChangeExecutor::planned_as(NodeInfo n, const std::string& role, const std::string& state, int part, int bal) {
  n.role = role;
  n.state = state;
  n.partition = part;
  n.balance = bal;
  planned_[n.key] = std::move(n);
}

inline Cluster ChangeExecutor::as_planned(Cluster c) const {
  if (!opt_.dry_run || planned_.empty()) return c;
  std::vector<NodeInfo> nodes = c.nodes();
  for (auto& n : nodes) {
    auto it = planned_.find(n.key);
    if (it != planned_.end()) n = it->second;
  }
  return Cluster(std::move(nodes));
}

inline LayoutPlan ChangeExecutor::planned_layout(const Cluster& c, const Layout& layout, const LayoutOptions& lo) {
  return plan_layout_live(c, layout, lo, opt_.timeout_ms, hooks());
}

inline std::string ChangeExecutor::step_moved(const PlanStep& s) {
  Cluster c = cluster();
  const NodeInfo* n = c.find(s.node);
  if (!n) return s.node + " is no longer in the map";
  const std::string now = s.node + " is " + n->role + " " + n->state;
  switch (s.kind) {
  case PlanStep::Kind::master:
  case PlanStep::Kind::slave: {
    const std::string role = s.kind == PlanStep::Kind::master ? "master" : "slave";
    if (n->role == role && n->partition == s.partition) return "";
    if (!n->is_proxy()) return now;
    if (n->state == "down") {
      // Set down by an earlier step, its flared still running: the index brings it back.
      say(s.node + " is proxy down: waiting for the index to bring it back as a proxy.");
      if (wait_for_proxy_active(index_, n->endpoint(), opt_, io_) != WaitEnd::reached) return now + " (interrupted)";
    }
    return "";
  }
  case PlanStep::Kind::failover: {
    if (!(n->is_master() && n->is_active() && n->partition == s.partition)) return now;
    std::map<std::string, detail::PlannedNode> sim;
    for (const auto& x : c.nodes()) sim[x.key] = detail::PlannedNode{x.role, x.state, x.partition, x.balance, false};
    std::string cand = detail::failover_candidate(sim, s.partition);
    return cand == s.source ? "" : "a failover of partition " + std::to_string(s.partition) + " would now go to " +
                                       (cand.empty() ? std::string("no slave") : cand) + ", not " + s.source;
  }
  case PlanStep::Kind::release:
    return n->is_slave() && n->partition == s.partition && n->is_active() ? "" : now;
  case PlanStep::Kind::balance:
    return n->is_proxy() ? now : "";
  case PlanStep::Kind::remove:
    return n->is_proxy() && n->state == "down" ? "" : now;
  }
  return now;
}

inline void ChangeExecutor::keep_balance(const Endpoint& ep, int part, int bal) {
  if (bal <= 0 || opt_.dry_run || balances_.path().empty()) return;
  try {
    balances_.keep({index_.endpoint().key(), ep.key(), part, bal, static_cast<long long>(std::time(nullptr))});
  } catch (const Error& e) {
    if (said_.insert("balance record").second)
      complain(std::string("warning: the balance to give ") + ep.key() + " could not be kept (" + e.what() +
               "); if this run is cut short, the next one will not know it");
  }
}

inline void ChangeExecutor::forget_balance(const Endpoint& ep) {
  if (opt_.dry_run || balances_.path().empty()) return;
  try {
    balances_.forget(index_.endpoint().key(), ep.key());
  } catch (const Error&) {
  }
}

inline std::string ChangeExecutor::kept_balance_text(const Endpoint& ep, int part) const {
  auto b = kept_balance(ep, part);
  return (b ? std::to_string(b->balance) : std::string("BALANCE")) + ":" +
         (part >= 0 ? std::to_string(part) : b ? std::to_string(b->partition) : std::string("PARTITION"));
}

inline Outcome ClusterAdmin::master(std::vector<NodeArg> args) {
  if (auto refused = preflight()) return *refused;
  // Every argument first: flarei refuses a master of balance 0, after the flush_all.
  for (const auto& a : args)
    if (!a.balance || *a.balance <= 0 || !a.partition) {
      x_.complain("invalid balance '" + a.text + "'.");
      return Outcome::failed;
    }
  std::stable_sort(args.begin(), args.end(), [](const NodeArg& a, const NodeArg& b) { return *a.partition < *b.partition; });
  // A down master with no replacement holds the partition's only copy: a new master would
  // start empty and the index would list two masters. --force answers questions; it does
  // not choose to lose data. Only --unsafe does (decide_master).
  const bool unsafe = x_.options().unsafe;
  return x_.run(args, [unsafe](const Cluster& c, const NodeArg& a) { return decide_master(c, a, unsafe); },
                &ChangeExecutor::master_node);
}

inline Outcome ClusterAdmin::slave(const std::vector<NodeArg>& args) {
  if (auto refused = preflight()) return *refused;
  return x_.run(args, decide_slave, &ChangeExecutor::slave_node);
}

inline Outcome ClusterAdmin::balance(const std::vector<NodeArg>& args) {
  if (auto refused = preflight()) return *refused;
  const bool unsafe = x_.options().unsafe;
  return x_.run(args, [unsafe](const Cluster& c, const NodeArg& a) { return decide_balance(c, a, unsafe); },
                &ChangeExecutor::balance_node);
}

inline Outcome ClusterAdmin::down(const std::vector<NodeArg>& args) {
  if (auto refused = preflight()) return *refused;
  Outcome result = x_.run(args, decide_down, &ChangeExecutor::down_node);
  if (result != Outcome::interrupted && !x_.stopped() && !x_.interrupted()) x_.say(""); // 0.7.3 ends down's table (not activate's) with an empty line
  return result;
}

inline Outcome ClusterAdmin::activate(const std::vector<NodeArg>& args) {
  if (auto refused = preflight()) return *refused;
  return x_.run(args, decide_activate, &ChangeExecutor::activate_node);
}

inline Outcome ClusterAdmin::remove(const std::vector<NodeArg>& args) {
  if (auto refused = preflight()) return *refused;
  Outcome result = x_.each_node(args, decide_remove, [&](const Cluster& c, const NodeInfo& n, const NodeArg& a,
                                                         const NodeDecision& d) { return x_.remove_node(c, n, a, d); });
  if (result == Outcome::interrupted || x_.interrupted()) return result;
  x_.say("");
  x_.show_nodes(x_.cluster().nodes());
  x_.say("");
  return result;
}

inline Outcome ClusterAdmin::reconstruct(const std::vector<NodeArg>& args) {
  if (auto refused = preflight()) return *refused;
  {
    Cluster c = x_.cluster();
    std::vector<NodeInfo> targets;
    for (const auto& a : args)
      if (auto* n = c.find(a.endpoint)) targets.push_back(*n);
    x_.show_nodes(targets);
    x_.say("");
  }
  const bool unsafe = x_.options().unsafe;
  auto decide = [&, unsafe](const Cluster& c, const NodeArg& a) {
    return decide_reconstruct(c, a, unsafe, x_.kept_balance(a.endpoint));
  };
  Outcome result = x_.run(args, decide, &ChangeExecutor::reconstruct_node);
  if (result != Outcome::interrupted && !x_.stopped() && !x_.interrupted()) x_.say("");
  return result;
}

inline Outcome ClusterAdmin::part(const std::vector<NodeArg>& args) {
  if (auto refused = preflight()) return *refused;
  const PartPlan plan = plan_part(args);
  x_.say("master:");
  const OperationOptions saved = x_.options();
  x_.options().activate = true;
  Outcome r = master(plan.masters);
  x_.options() = saved;
  if (r == Outcome::interrupted || r == Outcome::failed) return r;
  x_.say("slaves:");
  return worse(r, slave(plan.slaves));
}

inline Outcome ClusterAdmin::apply(const Layout& layout, const LayoutOptions& lo, long long made_from) {
  if (auto refused = preflight()) return *refused;
  return x_.run_layout(layout, lo, made_from, [this](const PlanStep& s) { return run_step(s); });
}

inline Outcome ClusterAdmin::run_step(const PlanStep& s) {
  NodeArg a{parse_host_port(s.node, FLARE_TOOLS_DEFAULT_NODE_PORT), s.balance, s.partition, s.node};
  switch (s.kind) {
  case PlanStep::Kind::master: a.text = s.node + ":" + std::to_string(s.balance) + ":" + std::to_string(s.partition); return master({a});
  case PlanStep::Kind::slave: a.text = s.node + ":" + std::to_string(s.balance) + ":" + std::to_string(s.partition); return slave({a});
  case PlanStep::Kind::failover:
  case PlanStep::Kind::release: return down({a});
  case PlanStep::Kind::balance: a.text = s.node + ":" + std::to_string(s.balance); return balance({a});
  case PlanStep::Kind::remove: return remove({a});
  }
  return Outcome::failed;
}

// ---- 7b. Data: dump, restore, verify ----------------------------------------------------

inline std::optional<unsigned long long> parse_bandwidth(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0 || i > 15) return std::nullopt;
  unsigned long long v = static_cast<unsigned long long>(*to_int(s.substr(0, i)));
  std::string_view unit = s.substr(i);
  bool bytes = false;
  if (!unit.empty() && unit.back() == 'B') {
    bytes = true;
    unit.remove_suffix(1);
  }
  unsigned long long mult = 1;
  if (unit == "k") mult = 1024ULL;
  else if (unit == "M") mult = 1024ULL * 1024;
  else if (unit == "G") mult = 1024ULL * 1024 * 1024;
  else if (!unit.empty()) return std::nullopt;
  if (v > (1ULL << 62) / mult) return std::nullopt; // no rate that large exists; never wrap
  v *= mult;
  // 0 means unlimited; a rate that rounds down to 0 bytes per second would mean the same by
  // accident, so anything from 1 to 7 bits per second is refused instead.
  if (!bytes && v > 0 && v < 8) return std::nullopt;
  return bytes ? v : v / 8;
}

inline RateLimiter::RateLimiter(unsigned long long bytes_per_second, CancelFn cancel)
    : rate_(bytes_per_second), cancel_(std::move(cancel)) {}

inline void RateLimiter::consume(size_t bytes) {
  if (rate_ == 0) return;
  if (total_ == 0) start_ = Clock::now();
  total_ += bytes;
  auto due = start_ + std::chrono::microseconds(static_cast<long long>(static_cast<double>(total_) * 1e6 / static_cast<double>(rate_)));
  for (auto now = Clock::now(); due > now; now = Clock::now()) {
    if (cancel_ && cancel_()) throw Interrupted("interrupted");
    std::this_thread::sleep_for(std::min<Clock::duration>(due - now, std::chrono::milliseconds(FLARE_TOOLS_CANCEL_CHECK_MS)));
  }
}

inline size_t RateLimiter::chunk(size_t most) const { return rate_ == 0 ? most : static_cast<size_t>(std::clamp<unsigned long long>(rate_ / 5, 1, most)); }

inline FdWriter::~FdWriter() {
  try {
    flush();
  } catch (const Error&) {
  }
}

inline void FdWriter::write(std::string_view s) {
  if (buf_.size() + s.size() > kSize) flush();
  if (s.size() >= kSize) {
    write_all(s);
    return;
  }
  // cppcheck-suppress invalidLifetime ; a false positive: `s` is the caller's, used before it returns
  buf_.append(s.data(), s.size());
}

inline void FdWriter::flush() {
  write_all(buf_);
  buf_.clear();
}

inline void FdWriter::write_all(std::string_view s) {
  while (!s.empty()) {
    // cppcheck-suppress invalidLifetime ; as in write()
    ssize_t n = detail::handle_EINTR([&] { return ::write(fd_, s.data(), s.size()); });
    if (n < 0) throw Error("cannot write " + name_ + ": " + detail::errno_text(errno));
    s.remove_prefix(static_cast<size_t>(n));
    written_ += static_cast<unsigned long long>(n);
  }
}

namespace detail {

// "dir/.NAME.XXXXXX" for mkstemp: beside `path`, hidden, NAME cut so the whole name stays
// within NAME_MAX (255 bytes) on every file system we know.
// The folder of a path ("." for a bare name, "/" at the root).
inline std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

// The mark in a temporary's name that says it is ours and which process wrote it:
// ".NAME.flare-tmp-PID.XXXXXX" (see leftover_temporaries()).
constexpr const char* kTempMark = ".flare-tmp-";

inline std::string temp_template_beside(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string dir = dir_of(path);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.size() > 200) base.resize(200);
  return (dir == "/" ? "" : dir) + "/." + base + kTempMark + std::to_string(static_cast<long>(::getpid())) + ".XXXXXX";
}

// mkstemp's unique, exclusive creation (O_CREAT | O_EXCL: a symbolic or hard link planted at the
// name is never followed; mode 0600), close-on-exec where the system can do it atomically.
inline int make_temp_file(std::string& tmpl) {
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
#if defined(__GLIBC__) || defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
  int fd = ::mkostemp(buf.data(), O_CLOEXEC);
#else
  int fd = ::mkstemp(buf.data());
  if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  if (fd >= 0) tmpl.assign(buf.data());
  return fd;
}

inline bool is_stream_device(mode_t m) { return S_ISCHR(m) || S_ISFIFO(m); }

} // namespace detail

inline std::vector<LeftoverTemporary> leftover_temporaries(const std::string& dir) {
  std::vector<LeftoverTemporary> out;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  const std::string mark = detail::kTempMark;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() < 1 + 1 + mark.size() + 1 + 7 || name[0] != '.') continue;
    const size_t at = name.rfind(mark);
    if (at == std::string::npos || at < 2) continue;
    const size_t dot = name.find('.', at + mark.size());
    if (dot == std::string::npos || name.size() - dot - 1 != 6) continue;
    const std::string digits = name.substr(at + mark.size(), dot - at - mark.size());
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::stol(digits);
    if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue; // its writer runs
    const std::string path = (dir == "/" ? "" : dir) + "/" + name;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    out.push_back({path, static_cast<unsigned long long>(st.st_size), pid});
  }
  std::sort(out.begin(), out.end(), [](const LeftoverTemporary& a, const LeftoverTemporary& b) { return a.path < b.path; });
  return out;
}

inline OutputFile::OutputFile(std::string path, unsigned mode)
    : path_(std::move(path)), mode_(mode & 07777) {
  if (path_.empty()) throw Error("no file name given");
  struct stat lst;
  if (::lstat(path_.c_str(), &lst) == 0) {
    struct stat st = lst;
    const bool link = S_ISLNK(lst.st_mode);
    if (link && ::stat(path_.c_str(), &st) != 0) st = lst; // a dangling link is replaced
    if (S_ISDIR(st.st_mode)) throw Error("'" + path_ + "' is a directory" + (link ? " (through a symbolic link)" : ""));
    if (S_ISBLK(st.st_mode)) throw Error("'" + path_ + "' is a block device; not writing onto it");
    if (S_ISSOCK(st.st_mode)) throw Error("'" + path_ + "' is a socket");
    if (detail::is_stream_device(st.st_mode)) {
      if (link && lst.st_uid != 0 && lst.st_uid != ::geteuid())
        throw Error("'" + path_ + "' is a symbolic link of another user's to a device; not following it");
      open_in_place(link);
      return;
    }
  } else if (errno != ENOENT) {
    throw Error("cannot write '" + path_ + "': " + detail::errno_text(errno));
  }
  temp_ = detail::temp_template_beside(path_);
  fd_ = detail::make_temp_file(temp_);
  if (fd_ < 0) {
    int err = errno;
    std::string where = temp_.substr(0, temp_.find_last_of('/') + 1);
    throw Error("cannot create a file in '" + (where.empty() ? std::string("./") : where) + "' for '" + path_ +
                "': " + detail::errno_text(err));
  }
}

inline OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

inline void OutputFile::commit() {
  if (committed_) return;
  if (fd_ < 0) throw Error("'" + path_ + "' is not open");
  if (!temp_.empty()) {
    if (::fchmod(fd_, static_cast<mode_t>(mode_)) != 0 || ::fsync(fd_) != 0)
      throw Error("cannot write '" + temp_ + "': " + detail::errno_text(errno));
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0 && errno != EINTR) throw Error("cannot write '" + display_name() + "': " + detail::errno_text(errno));
  if (!temp_.empty() && std::rename(temp_.c_str(), path_.c_str()) != 0)
    throw Error("cannot rename '" + temp_ + "' to '" + path_ + "': " + detail::errno_text(errno));
  committed_ = true;
}

inline void OutputFile::open_in_place(bool through_link) {
  fd_ = detail::handle_EINTR(
      [&] { return ::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | (through_link ? 0 : O_NOFOLLOW)); });
  if (fd_ < 0) throw Error("cannot write '" + path_ + "': " + detail::errno_text(errno));
  struct stat st;
  if (::fstat(fd_, &st) != 0 || !detail::is_stream_device(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    throw Error("'" + path_ + "' changed while being opened; not writing it in place");
  }
}

inline void write_file_atomically(const std::string& path, std::string_view data, unsigned mode) {
  OutputFile f(path, mode);
  {
    FdWriter w(f.fd(), "'" + (f.in_place() ? f.path() : f.temp_path()) + "'");
    w.write(data);
    w.flush();
  }
  f.commit();
}

inline std::optional<DataFormat> parse_data_format(std::string_view s) {
  if (s == "flare" || s == "default") return DataFormat::flare;
  if (s == "csv") return DataFormat::csv;
  return std::nullopt;
}

namespace detail {

inline const char* const kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

inline void base64_encode(std::string_view in, std::string& out) {
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kBase64[v >> 18];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += kBase64[v & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kBase64[v >> 18];
    out += kBase64[(v >> 12) & 63];
    out += i + 1 < in.size() ? kBase64[(v >> 6) & 63] : '=';
    out += '=';
  }
}

inline bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() % 4 != 0) return false;
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  for (size_t i = 0; i < in.size(); i += 4) {
    int a = val(in[i]), b = val(in[i + 1]);
    bool last = i + 4 == in.size();
    int c = (last && in[i + 2] == '=') ? -2 : val(in[i + 2]);
    int d = (last && in[i + 3] == '=') ? -2 : val(in[i + 3]);
    if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2)) return false;
    unsigned v = (static_cast<unsigned>(a) << 18) | (static_cast<unsigned>(b) << 12) |
                 (c >= 0 ? static_cast<unsigned>(c) << 6 : 0) | (d >= 0 ? static_cast<unsigned>(d) : 0);
    out += static_cast<char>(v >> 16);
    if (c >= 0) out += static_cast<char>((v >> 8) & 255);
    if (d >= 0) out += static_cast<char>(v & 255);
  }
  return true;
}

// Valid UTF-8 with no control characters but tab, CR and LF: safe to put in a CSV cell.
inline bool is_csv_text(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f) return false;
      ++i;
      continue;
    }
    int len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || i + static_cast<size_t>(len) > s.size()) return false;
    unsigned cp = c & (0x7f >> len);
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += static_cast<size_t>(len);
  }
  return true;
}

inline void csv_cell(std::string_view s, std::string& out) {
  bool quote = s.find_first_of(",\"\r\n") != std::string_view::npos || (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) {
    out.append(s.data(), s.size());
    return;
  }
  out += '"';
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

} // namespace detail

inline const char* csv_header() { return "key,flag,len,version,expire,data,encoding\r\n"; }

inline ItemWriter::ItemWriter(FdWriter& out, DataFormat f)
    : out_(out), format_(f) {
  if (format_ == DataFormat::csv) out_.write(csv_header());
}

inline void ItemWriter::write(const ItemHeader& h, std::string_view data) {
  ItemHeader sized = h;
  sized.length = data.size();
  begin(sized);
  this->data(data);
  end();
}

inline void ItemWriter::begin(const ItemHeader& h) {
  header_ = h;
  if (format_ == DataFormat::csv) {
    if (static_cast<long long>(h.length) > FLARE_TOOLS_MAX_HELD_VALUE_BYTES)
      throw Error("the value of '" + detail::printable(h.key) + "' is " + std::to_string(h.length) +
                  " bytes, more than a CSV dump holds (" + std::to_string(FLARE_TOOLS_MAX_HELD_VALUE_BYTES) +
                  "); use the flare format");
    held_.clear();
    return;
  }
  line_.clear();
  line_ += "VALUE ";
  line_ += h.key;
  line_ += ' ';
  line_ += std::to_string(h.flags);
  line_ += ' ';
  line_ += std::to_string(h.length);
  line_ += ' ';
  line_ += std::to_string(h.version);
  line_ += ' ';
  line_ += std::to_string(h.expire);
  line_ += "\r\n";
  out_.write(line_);
}

inline void ItemWriter::data(std::string_view chunk) {
  if (format_ == DataFormat::csv) held_.append(chunk.data(), chunk.size());
  else out_.write(chunk);
}

inline void ItemWriter::end() {
  if (format_ == DataFormat::flare) {
    out_.write("\r\n");
    return;
  }
  line_.clear();
  detail::csv_cell(header_.key, line_);
  line_ += ',' + std::to_string(header_.flags) + ',' + std::to_string(held_.size()) + ',' +
           std::to_string(header_.version) + ',' + std::to_string(header_.expire) + ',';
  if (detail::is_csv_text(held_)) {
    detail::csv_cell(held_, line_);
    line_ += ",\r\n";
  } else {
    detail::base64_encode(held_, line_);
    line_ += ",base64\r\n";
  }
  out_.write(line_);
}

inline void ItemWriter::finish() {
  if (format_ == DataFormat::flare) out_.write("END\r\n");
  out_.flush();
}

inline ItemReader::ItemReader(int fd, const std::string& name, DataFormat f)
    : format_(f), name_(name) {
  in_.adopt(fd, name);
  in_.set_timeout(24 * 3600 * 1000); // a file never makes us wait; the deadline is moot
  in_.set_crlf_only(f == DataFormat::flare); // a record's line ends at CR LF only: a key may hold a lone CR or LF
  if (format_ == DataFormat::csv) {
    if (in_.at_eof()) throw InputError(name_ + ": empty file (no CSV header)");
    std::string_view first = in_.read_line();
    if (std::string(first) + "\r\n" != csv_header() && std::string(first) + "\n" != std::string("key,flag,len,version,expire,data,encoding\n"))
      throw InputError(name_ + ": not a flare-tools CSV dump (header is '" + detail::printable(first) + "')");
  }
}

inline bool ItemReader::next_header(ItemHeader& h) {
  if (data_pending_) read_data([](std::string_view) {});
  if (ended_) return false;
  bool more = format_ == DataFormat::flare ? next_flare_header(h) : next_csv(h);
  data_pending_ = more;
  ended_ = !more;
  return more;
}

template <typename Sink>
inline void ItemReader::read_data(Sink&& sink) {
  if (!data_pending_) return;
  data_pending_ = false;
  if (format_ == DataFormat::csv) {
    sink(std::string_view(csv_data_));
    return;
  }
  try {
    in_.read_exact(length_, sink);
    std::string_view end = in_.read_line();
    if (!end.empty()) bad("the data is longer than its length field says");
  } catch (const NetworkError&) {
    bad("the input ends inside the data of '" + detail::printable(key_) + "'");
  }
}

inline bool ItemReader::next(Item& item, bool with_data) {
  if (!next_header(item.header)) return false;
  item.data.clear();
  read_data([&](std::string_view chunk) {
    if (with_data) item.data.append(chunk.data(), chunk.size());
  });
  return true;
}

inline void ItemReader::skip_to(unsigned long long target) {
  if (target == 0) return;
  ItemHeader h;
  while (position() < target) {
    if (!next_header(h))
      throw InputError(name_ + ": byte " + std::to_string(target) + " is past the last record (they end at byte " +
                       std::to_string(record_offset_) + ")");
    read_data([](std::string_view) {});
  }
  if (position() != target)
    throw InputError(name_ + ": byte " + std::to_string(target) + " is not the start of a record (one starts at byte " +
                     std::to_string(record_offset_) + ", the next at byte " + std::to_string(position()) + ")");
}

[[noreturn]] inline void ItemReader::bad(const std::string& why) {
  throw InputError(name_ + ": malformed record at byte " + std::to_string(record_offset_) + ": " + why);
}

inline bool ItemReader::next_flare_header(ItemHeader& h) {
  record_offset_ = in_.offset();
  if (in_.at_eof()) bad("the input ends without END (it was cut short)");
  std::string_view line;
  try {
    line = in_.read_line();
  } catch (const NetworkError&) {
    bad("the input ends inside a VALUE line");
  } catch (const Error& e) {
    bad(e.what());
  }
  if (line == "END") {
    if (!in_.at_eof()) bad("data after END");
    return false;
  }
  try {
    h = parse_value_line(line);
  } catch (const ProtocolError& e) {
    bad(e.what());
  }
  length_ = h.length;
  key_ = h.key;
  return true;
}

inline bool ItemReader::next_csv(ItemHeader& h) {
  record_offset_ = in_.offset();
  if (in_.at_eof()) return false;
  cells_.clear();
  std::string cell;
  bool in_quotes = false, after_quote = false;
  auto limit = [&] {
    return cells_.size() == 5 ? static_cast<size_t>(FLARE_TOOLS_MAX_HELD_VALUE_BYTES / 3 * 4 + 8)
                              : static_cast<size_t>(FLARE_TOOLS_MAX_KEY_BYTES + 2);
  };
  auto add = [&](char c) {
    cell += c;
    if (cell.size() > limit()) bad("cell " + std::to_string(cells_.size() + 1) + " too large");
  };
  for (;;) {
    char c;
    if (in_.at_eof()) {
      if (in_quotes) bad("the input ends inside a quoted cell");
      break;
    }
    in_.read_exact(1, [&](std::string_view b) { c = b[0]; });
    if (in_quotes) {
      if (c == '"') {
        in_quotes = false;
        after_quote = true;
      } else {
        add(c);
      }
      continue;
    }
    if (c == '"') {
      if (after_quote) {
        add('"');
        in_quotes = true;
        after_quote = false;
        continue;
      }
      if (!cell.empty()) bad("a quote inside an unquoted cell");
      in_quotes = true;
      continue;
    }
    if (c == ',') {
      if (cells_.size() == 6) bad("more than 7 cells (key,flag,len,version,expire,data,encoding)");
      cells_.push_back(std::move(cell));
      cell.clear();
      after_quote = false;
      continue;
    }
    if (c == '\r') continue;
    if (c == '\n') break;
    if (after_quote) bad("text after a closing quote");
    add(c);
  }
  cells_.push_back(std::move(cell));
  if (cells_.size() != 7) bad("expected 7 cells (key,flag,len,version,expire,data,encoding), found " + std::to_string(cells_.size()));
  auto num = [&](size_t i, const char* what, long long max) {
    auto v = to_int(cells_[i]);
    if (!v || *v < 0 || *v > max) bad(std::string("bad ") + what + " '" + detail::printable(cells_[i]) + "'");
    return *v;
  };
  h.key = cells_[0];
  if (h.key.empty()) bad("empty key");
  if (h.key.size() > FLARE_TOOLS_MAX_KEY_BYTES)
    bad("key longer than " + std::to_string(FLARE_TOOLS_MAX_KEY_BYTES) + " bytes: '" + detail::printable(cells_[0]) + "'");
  if (h.key.find('\0') != std::string::npos) bad("the key holds a NUL byte: '" + detail::printable(cells_[0]) + "'");
  // What no flare dump frames and flared's text protocol cannot store (valid_item_key).
  if (h.key.find(' ') != std::string::npos) bad("the key holds a space, which no flare dump frames: '" + detail::printable(cells_[0]) + "'");
  if (h.key.find("\r\n") != std::string::npos) bad("the key holds CR LF, which no flare dump frames: '" + detail::printable(cells_[0]) + "'");
  h.flags = static_cast<unsigned long long>(num(1, "flag", UINT32_MAX));
  long long len = num(2, "len", FLARE_TOOLS_MAX_HELD_VALUE_BYTES);
  h.version = static_cast<unsigned long long>(num(3, "version", LLONG_MAX));
  h.expire = num(4, "expire", LLONG_MAX);
  if (cells_[6] == "base64") {
    if (!detail::base64_decode(cells_[5], csv_data_)) bad("data marked base64 is not base64");
  } else if (cells_[6].empty()) {
    csv_data_.swap(cells_[5]);
  } else {
    bad("unknown encoding '" + detail::printable(cells_[6]) + "'");
  }
  if (static_cast<long long>(csv_data_.size()) != len)
    bad("data is " + std::to_string(csv_data_.size()) + " bytes, its len field says " + std::to_string(len));
  h.length = csv_data_.size();
  return true;
}

namespace detail {
inline bool is_probe_answer(std::string_view line) { return line.rfind("VERSION ", 0) == 0; }

// `refused` names the request ("the dump"), `stream` the stream ("dump", "key dump").
[[noreturn]] inline void bad_stream_line(NodeClient& node, std::string_view line, const char* refused, const char* stream) {
  std::string shown = printable(line);
  node.socket().close();
  if (line == "ERROR" || line.rfind("SERVER_ERROR", 0) == 0 || line.rfind("CLIENT_ERROR", 0) == 0)
    throw ServerError(node.endpoint().display() + " refused " + refused + ": " + shown);
  throw ProtocolError("unexpected line in the " + std::string(stream) + " from " + node.endpoint().display() + ": '" +
                      shown + "' (a key holding CR LF, stored through the binary protocol, ends a line inside it: " +
                      "flare's text protocol cannot frame such a key)");
}

// The error for a stream whose END was not its end. `stream`: "dump" or "key listing".
inline ProtocolError unframed_end(const Endpoint& ep, const char* stream, unsigned long long count,
                                  std::string_view next) {
  return ProtocolError("the " + std::string(stream) + " from " + ep.display() + " did not end at its END line: '" +
                       printable(next) + "' came after it (a key holding CR LF, stored through the binary protocol, " +
                       "put that END inside it; flare's text protocol cannot frame such a key); " +
                       std::to_string(count) + (std::string(stream) == "dump" ? " records" : " keys") +
                       " read before it, the rest unknown");
}

// After a stream's END line: the probe's answer must come next (the END was the stream's own),
// or the stream is closed and unframed_end thrown. Throws NetworkError as read_line does.
inline void expect_probe_after_end(Socket& sock, const Endpoint& ep, const char* stream, unsigned long long count) {
  std::string_view next = sock.read_line();
  if (is_probe_answer(next)) return;
  std::string n(next);
  sock.close();
  throw unframed_end(ep, stream, count, n);
}
} // namespace detail

inline std::string dump_request(const DumpRange& r) {
  if (r.partition < 0) return r.bwlimit ? "dump 0 -1 0 " + std::to_string(std::max(1ULL, r.bwlimit / 1024)) : "dump";
  return "dump 0 " + std::to_string(r.partition) + " " + std::to_string(r.partition_size) + " " +
         std::to_string(r.bwlimit / 1024);
}

template <typename OnHeader, typename OnData, typename OnEnd>
inline unsigned long long dump_node_streamed(NodeClient& node, const DumpRange& range, OnHeader&& on_header,
                                             OnData&& on_data, OnEnd&& on_end, const CancelFn& cancel,
                                             const std::function<void(const UnframedRecord&)>& on_unframed) {
  RateLimiter limiter(range.bwlimit, cancel);
  node.send_raw(dump_request(range) + "\r\n" + kStreamProbe + "\r\n");
  auto& sock = node.socket();
  sock.set_idle_timeout(node.timeout_ms());
  sock.set_crlf_only(true);
  const unsigned long long start = sock.offset();
  ItemHeader header;
  unsigned long long count = 0;
  auto restore = [&] {
    sock.set_idle_timeout(0);
    sock.set_crlf_only(false);
  };
  try {
    for (;;) {
      unsigned long long line_at = sock.offset();
      std::string_view line = sock.read_line();
      if (line == "END") {
        detail::expect_probe_after_end(sock, node.endpoint(), "dump", count);
        break;
      }
      if (line.rfind("VALUE ", 0) != 0) {
        std::string what = detail::printable(line);
        sock.close();
        if (line == "ERROR" || line.rfind("SERVER_ERROR", 0) == 0 || line.rfind("CLIENT_ERROR", 0) == 0)
          throw ServerError(node.endpoint().display() + " refused the dump: " + what);
        throw ProtocolError("unexpected line in the dump from " + node.endpoint().display() + ": '" + what + "'");
      }
      size_t line_size = line.size();
      try {
        header = parse_value_line(line);
      } catch (const ProtocolError& e) {
        if (!on_unframed) {
          sock.close();
          throw ProtocolError(std::string(e.what()) + " in the dump from " + node.endpoint().display());
        }
        // Resynchronise: find the line that ends this record's header.
        UnframedRecord u;
        u.offset = line_at - start;
        std::string text(line.substr(6));
        std::string_view head;
        unsigned long long fl = 0, ver = 0;
        long long exp = 0;
        for (;;) {
          if (detail::split_value_tail(text, head, fl, u.length, ver, exp) && !head.empty()) break;
          if (text.size() > FLARE_TOOLS_MAX_LINE_BYTES) {
            sock.close();
            throw ProtocolError("a record from " + node.endpoint().display() + " at byte " + std::to_string(u.offset) +
                                " of its dump cannot be framed and no end of it was found: '" +
                                detail::printable(text) + "'");
          }
          text += "\r\n";
          text += sock.read_line();
        }
        u.key.assign(head.data(), head.size());
        sock.read_exact(u.length, [](std::string_view) {});
        if (!sock.read_line().empty()) {
          sock.close();
          throw ProtocolError("a record from " + node.endpoint().display() + " at byte " + std::to_string(u.offset) +
                              " of its dump cannot be framed: its data does not end where its length says ('" +
                              detail::printable(u.key) + "')");
        }
        u.size = sock.offset() - start - u.offset;
        limiter.consume(u.size);
        on_unframed(static_cast<const UnframedRecord&>(u));
        continue;
      }
      on_header(static_cast<const ItemHeader&>(header));
      sock.read_exact(header.length, [&](std::string_view chunk) { on_data(chunk); });
      std::string_view crlf = sock.read_line();
      if (!crlf.empty()) {
        sock.close();
        throw ProtocolError("the data of '" + detail::printable(header.key) + "' from " + node.endpoint().display() +
                            " is longer than its VALUE line says");
      }
      limiter.consume(line_size + header.length + 4);
      on_end();
      ++count;
      if (cancel && cancel()) {
        sock.close();
        throw Interrupted("interrupted");
      }
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return count;
}

template <typename OnItem>
inline unsigned long long dump_node(NodeClient& node, const DumpRange& range, OnItem&& on_item) {
  Item item;
  return dump_node_streamed(
      node, range,
      [&](const ItemHeader& h) {
        item.header = h;
        item.data.clear();
      },
      [&](std::string_view chunk) { item.data.append(chunk.data(), chunk.size()); },
      [&] { on_item(static_cast<const Item&>(item)); });
}

template <typename OnKey>
inline unsigned long long dump_keys(NodeClient& node, int partition, int partition_size, OnKey&& on_key) {
  node.send_raw((partition < 0 ? std::string("dump_key")
                               : "dump_key " + std::to_string(partition) + " " + std::to_string(partition_size)) +
                "\r\n" + kStreamProbe + "\r\n");
  auto& sock = node.socket();
  sock.set_idle_timeout(node.timeout_ms());
  sock.set_crlf_only(true);
  unsigned long long count = 0;
  try {
    for (;;) {
      std::string_view line = sock.read_line();
      if (line == "END") {
        detail::expect_probe_after_end(sock, node.endpoint(), "key listing", count);
        break;
      }
      if (line.rfind("KEY ", 0) != 0 || line.size() == 4) detail::bad_stream_line(node, line, "dump_key", "key dump");
      on_key(line.substr(4));
      ++count;
    }
  } catch (...) {
    sock.set_idle_timeout(0);
    sock.set_crlf_only(false);
    throw;
  }
  sock.set_idle_timeout(0);
  sock.set_crlf_only(false);
  return count;
}

namespace detail {

// Many dump streams read at once from one poll loop, one connection per node, so that P
// partitions take about as long as the slowest, not P times one. `handle(i, sock)` takes
// what stream i has buffered and returns true once its END was read. The deadline of each
// stream is idle time; a cancel check stops everything within a slice.
template <typename Handle>
inline void read_streams(std::vector<std::unique_ptr<NodeClient>>& nodes, int timeout_ms, const CancelFn& cancel,
                         Handle&& handle, const std::function<void(size_t, const Error&)>& on_error = nullptr) {
  const size_t count = nodes.size();
  std::vector<bool> done(count, false);
  std::vector<Clock::time_point> last(count, Clock::now());
  size_t active = count;
  std::vector<pollfd> fds;
  std::vector<size_t> owner;
  while (active > 0) {
    if (cancel && cancel()) throw Interrupted("interrupted");
    fds.clear();
    owner.clear();
    auto wake = Clock::now() + std::chrono::milliseconds(cancel ? FLARE_TOOLS_CANCEL_CHECK_MS : timeout_ms);
    for (size_t i = 0; i < count; ++i) {
      if (done[i]) continue;
      fds.push_back(pollfd{nodes[i]->socket().fd(), POLLIN, 0});
      owner.push_back(i);
      wake = std::min(wake, last[i] + std::chrono::milliseconds(timeout_ms));
    }
    int rc = ::poll(fds.data(), fds.size(), remaining_ms(wake));
    if (rc < 0 && errno != EINTR) throw NetworkError(std::string("poll failed: ") + errno_text(errno));
    auto now = Clock::now();
    for (size_t k = 0; rc > 0 && k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      size_t i = owner[k];
      auto& sock = nodes[i]->socket();
      bool finished = false;
      try {
        if (sock.read_available()) last[i] = now;
        finished = handle(i, sock);
      } catch (const Interrupted&) {
        throw;
      } catch (const Error& e) {
        if (!on_error) throw;
        on_error(i, e);
        finished = true;
      }
      if (finished) {
        done[i] = true;
        --active;
        nodes[i]->close();
      }
      // A value streamed through keeps the others waiting on us: that is not their silence.
      auto after = Clock::now();
      if (after - now > std::chrono::milliseconds(100)) {
        for (auto& t : last) t = std::max(t, after);
        now = after;
      }
    }
    for (size_t k = 0; k < owner.size(); ++k) {
      size_t i = owner[k];
      if (done[i] || now - last[i] < std::chrono::milliseconds(timeout_ms)) continue;
      NetworkError e("timed out waiting for " + nodes[i]->endpoint().display() + " (nothing received for " +
                     detail::seconds_text(timeout_ms) + " s)");
      if (!on_error) throw e;
      on_error(i, e);
      done[i] = true;
      --active;
      nodes[i]->close();
    }
  }
}

inline std::vector<std::unique_ptr<NodeClient>> open_streams(const std::vector<Endpoint>& eps, const DumpOptions& opt,
                                                             std::vector<std::string>* errors = nullptr) {
  std::vector<std::unique_ptr<NodeClient>> nodes;
  // Each connection reads in large pieces, within a bound on the whole (64 MiB).
  size_t buffer = std::clamp<size_t>((64u << 20) / std::max<size_t>(1, eps.size()), 128u << 10, 1u << 20);
  for (const auto& ep : eps) {
    nodes.push_back(std::make_unique<NodeClient>(ep, opt.timeout_ms));
    nodes.back()->set_trace(opt.trace);
    nodes.back()->set_cancel(opt.cancel);
    try {
      nodes.back()->connect();
      nodes.back()->socket().set_buffer_size(buffer);
      if (errors) errors->emplace_back();
    } catch (const Interrupted&) {
      throw;
    } catch (const Error& e) {
      if (!errors) throw;
      errors->emplace_back(e.what()); // reported by the caller; this stream is left out
    }
  }
  return nodes;
}

} // namespace detail

inline unsigned long long dump_items(const std::vector<DumpTarget>& targets, ItemWriter& out, const DumpOptions& opt) {
  if (targets.empty()) return 0;
  unsigned long long bwlimit = targets.front().range.bwlimit;
  if (targets.size() == 1 || opt.on_unframed) { // one node: the plain stream is the fastest path
    unsigned long long total = 0;
    for (size_t i = 0; i < targets.size(); ++i) {
      NodeClient node(targets[i].endpoint, opt.timeout_ms);
      node.set_trace(opt.trace);
      node.set_cancel(opt.cancel);
      if (opt.on_node_start) opt.on_node_start(targets[i]);
      unsigned long long items = 0;
      std::function<void(const UnframedRecord&)> unframed;
      if (opt.on_unframed) unframed = [&](const UnframedRecord& u) { opt.on_unframed(targets[i], u); };
      unsigned long long n = dump_node_streamed(
          node, targets[i].range, [&](const ItemHeader& h) { out.begin(h); }, [&](std::string_view c) { out.data(c); },
          [&] {
            out.end();
            ++items;
            ++total; // counted whether or not a hook is set: the return value is the item count
            if (opt.on_item) opt.on_item(total);
            if (opt.on_node_item) opt.on_node_item(i, items);
          },
          opt.cancel, unframed);
      if (opt.on_node_done) opt.on_node_done(targets[i], n);
    }
    return total;
  }
  std::vector<Endpoint> eps;
  for (const auto& t : targets) eps.push_back(t.endpoint);
  auto nodes = detail::open_streams(eps, opt);
  for (size_t i = 0; i < targets.size(); ++i) {
    DumpRange r = targets[i].range;
    // The servers share the limit; our own limiter holds the total to it exactly.
    if (r.bwlimit) r.bwlimit = std::max<unsigned long long>(1024, r.bwlimit / targets.size());
    if (opt.on_node_start) opt.on_node_start(targets[i]);
    nodes[i]->socket().set_crlf_only(true);
    nodes[i]->send_raw(dump_request(r) + "\r\n" + kStreamProbe + "\r\n");
  }
  RateLimiter limiter(bwlimit, opt.cancel);
  struct State {
    bool has_header = false, after_end = false;
    ItemHeader header;
    size_t line_bytes = 0;
    unsigned long long items = 0;
  };
  std::vector<State> st(targets.size());
  unsigned long long total = 0;
  auto finish_item = [&](size_t i, State& s, NodeClient& node, bool crlf) {
    if (!crlf) {
      node.socket().close();
      throw ProtocolError("the data of '" + detail::printable(s.header.key) + "' from " + node.endpoint().display() +
                          " is longer than its VALUE line says");
    }
    out.end();
    s.has_header = false;
    ++s.items;
    ++total; // counted whether or not a hook is set
    if (opt.on_item) opt.on_item(total);
    if (opt.on_node_item) opt.on_node_item(i, s.items);
    limiter.consume(s.line_bytes + s.header.length + 4);
  };
  detail::read_streams(nodes, opt.timeout_ms, opt.cancel, [&](size_t i, detail::Socket& sock) {
    State& s = st[i];
    NodeClient& node = *nodes[i];
    for (;;) {
      if (!s.has_header) {
        auto line = sock.buffered_line();
        if (!line) return false;
        if (s.after_end) {
          if (!detail::is_probe_answer(*line)) {
            std::string next(*line);
            node.socket().close();
            throw detail::unframed_end(node.endpoint(), "dump", s.items, next);
          }
          if (opt.on_node_done) opt.on_node_done(targets[i], s.items);
          return true;
        }
        if (*line == "END") {
          s.after_end = true;
          continue;
        }
        if (line->rfind("VALUE ", 0) != 0) detail::bad_stream_line(node, *line, "the dump", "dump");
        s.line_bytes = line->size();
        try {
          s.header = parse_value_line(*line);
        } catch (const ProtocolError& e) {
          node.socket().close();
          throw ProtocolError(std::string(e.what()) + " in the dump from " + node.endpoint().display());
        }
        s.has_header = true;
      }
      size_t need = s.header.length + 2;
      if (sock.buffered() >= need) {
        out.begin(s.header);
        out.data(sock.take(s.header.length));
        finish_item(i, s, node, sock.take(2) == "\r\n");
        continue;
      }
      if (need <= sock.capacity()) return false; // the rest is on its way
      // Larger than the buffer: stream it through now; the other nodes wait in their sockets.
      sock.set_idle_timeout(opt.timeout_ms);
      out.begin(s.header);
      sock.read_exact(s.header.length, [&](std::string_view c) { out.data(c); });
      bool crlf = sock.read_line().empty();
      sock.set_idle_timeout(0);
      finish_item(i, s, node, crlf);
    }
  });
  return total;
}

template <typename OnKey>
inline std::vector<unsigned long long> dump_keys_all(const std::vector<DumpTarget>& targets, OnKey&& on_key,
                                                     const DumpOptions& opt) {
  std::vector<Endpoint> eps;
  for (const auto& t : targets) eps.push_back(t.endpoint);
  std::vector<std::string> open_errors;
  auto nodes = detail::open_streams(eps, opt, opt.on_node_error ? &open_errors : nullptr);
  std::vector<std::unique_ptr<NodeClient>> live;
  std::vector<size_t> index; // live stream -> target
  for (size_t i = 0; i < targets.size(); ++i) {
    const DumpRange& r = targets[i].range;
    if (opt.on_node_start) opt.on_node_start(targets[i]);
    try {
      if (!open_errors.empty() && !open_errors[i].empty()) throw NetworkError(open_errors[i]);
      nodes[i]->socket().set_crlf_only(true);
      nodes[i]->send_raw((r.partition < 0 ? std::string("dump_key")
                                          : "dump_key " + std::to_string(r.partition) + " " + std::to_string(r.partition_size)) +
                         "\r\n" + kStreamProbe + "\r\n");
    } catch (const Interrupted&) {
      throw;
    } catch (const Error& e) {
      if (!opt.on_node_error) throw;
      opt.on_node_error(targets[i], e);
      continue;
    }
    live.push_back(std::move(nodes[i]));
    index.push_back(i);
  }
  std::vector<unsigned long long> counts(targets.size(), 0);
  std::vector<bool> after_end(targets.size(), false);
  // With on_unframed_key, each key is held until the next line shows where it ends: a line
  // that is neither KEY nor the END before the probe's answer is a line of the key held.
  const bool skip = static_cast<bool>(opt.on_unframed_key);
  struct Pending {
    std::string key;
    bool held = false, continued = false;
  };
  std::vector<Pending> pending(targets.size());
  unsigned long long total = 0;
  std::function<void(size_t, const Error&)> on_error;
  if (opt.on_node_error) on_error = [&](size_t k, const Error& e) { opt.on_node_error(targets[index[k]], e); };
  detail::read_streams(
      live, opt.timeout_ms, opt.cancel,
      [&](size_t k, detail::Socket& sock) {
        size_t i = index[k];
        auto emit = [&](std::string_view key) {
          on_key(i, key);
          ++counts[i];
          if (opt.on_item) opt.on_item(++total);
          if (opt.on_node_item) opt.on_node_item(i, counts[i]);
        };
        Pending& p = pending[i];
        auto flush_pending = [&] {
          if (!p.held) return;
          p.held = false;
          if (p.continued) opt.on_unframed_key(targets[i], p.key);
          else emit(p.key);
        };
        while (auto line = sock.buffered_line()) {
          if (after_end[i]) {
            after_end[i] = false;
            if (detail::is_probe_answer(*line)) {
              flush_pending();
              if (opt.on_node_done) opt.on_node_done(targets[i], counts[i]);
              return true;
            }
            if (!skip || !p.held) {
              std::string next(*line);
              live[k]->socket().close();
              throw detail::unframed_end(targets[i].endpoint, "key listing", counts[i], next);
            }
            p.key += "\r\nEND"; // that END was a line of the key held
            p.continued = true;
          }
          if (*line == "END") {
            after_end[i] = true;
            continue;
          }
          if (line->rfind("KEY ", 0) == 0 && line->size() > 4) {
            if (!skip) {
              emit(line->substr(4));
              continue;
            }
            flush_pending();
            p.key.assign(line->data() + 4, line->size() - 4);
            p.held = true;
            p.continued = false;
            continue;
          }
          if (!skip || !p.held) detail::bad_stream_line(*live[k], *line, "dump_key", "key dump");
          if (p.key.size() > FLARE_TOOLS_MAX_LINE_BYTES) {
            live[k]->socket().close();
            throw ProtocolError("a key from " + targets[i].endpoint.display() + " holds CR LF and no end of it was found: '" +
                                detail::printable(p.key) + "'");
          }
          p.key += "\r\n"; // a line of the key held: it holds CR LF
          p.key.append(line->data(), line->size());
          p.continued = true;
        }
        return false;
      },
      on_error);
  return counts;
}

namespace detail {
// A key as a restore's failure line names it: whole up to memcached's 250 bytes, else its start
// and size.
inline std::string failure_key(const std::string& key) {
  if (key.size() <= 250) return printable(key, 1000);
  return printable(key.substr(0, 40), 200) + "... (" + std::to_string(key.size()) + " bytes)";
}
} // namespace detail

inline PipelinedWriter::PipelinedWriter(NodeClient& node, unsigned long long bwlimit, size_t window_bytes)
    : node_(node), own_limiter_(bwlimit, node.socket().cancel()), limiter_(&own_limiter_), window_(window_bytes) {
  node_.connect();
  replies_.resize(kReadBytes + FLARE_TOOLS_MAX_LINE_BYTES);
  last_progress_ = Clock::now();
}

inline PipelinedWriter::PipelinedWriter(NodeClient& node, RateLimiter& shared, size_t window_bytes)
    : node_(node), limiter_(&shared), window_(window_bytes) {
  node_.connect();
  replies_.resize(kReadBytes + FLARE_TOOLS_MAX_LINE_BYTES);
  last_progress_ = Clock::now();
}

inline PipelinedWriter::~PipelinedWriter() {
#ifdef SO_RCVLOWAT
  int one = 1; // the connection may serve other requests after us
  if (low_water_ != 1 && node_.socket().is_open())
    ::setsockopt(node_.socket().fd(), SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
#endif
}

inline void PipelinedWriter::set(const ItemHeader& h, std::string_view data, unsigned long long offset) {
  ItemHeader sized = h;
  sized.length = data.size();
  set_streamed(sized, offset, [&](auto&& sink) { sink(data); });
}

template <typename Feed>
inline void PipelinedWriter::set_streamed(const ItemHeader& h, unsigned long long offset, Feed&& feed) {
  if (stopped_) throw Error("the restore through " + node_.endpoint().display() + " has stopped");
  unsigned long long start = queued_;
  size_t before = pending_.size();
  pending_ += "set ";
  pending_ += h.key;
  pending_ += ' ';
  pending_ += std::to_string(h.flags);
  pending_ += ' ';
  pending_ += std::to_string(h.expire);
  pending_ += ' ';
  pending_ += std::to_string(h.length);
  pending_ += "\r\n";
  queued_ += pending_.size() - before;
  try {
    size_t fed = 0;
    feed([&](std::string_view chunk) {
      fed += chunk.size();
      pending_.append(chunk.data(), chunk.size());
      queued_ += chunk.size();
      while (pending_.size() - sent_off_ > kSendBytes) pump();
    });
    if (fed != h.length) throw Error("the data of '" + detail::printable(h.key) + "' is not the size its header says");
  } catch (...) {
    // An item cut short must not reach the server: drop it if none of it went out yet;
    // otherwise the stream is broken and only the replies to whole requests may still come.
    if (sent_total_ <= start) {
      pending_.resize(pending_.size() - static_cast<size_t>(queued_ - start));
      queued_ = start;
    } else {
      broken_ = true;
    }
    throw;
  }
  pending_ += "\r\n";
  queued_ += 2;
  size_t bytes = static_cast<size_t>(queued_ - start);
  in_flight_.push_back(Request{h.key, bytes, offset, queued_});
  unanswered_bytes_ += bytes;
  ++report_.sent;
  if (pending_.size() - sent_off_ >= kSendBytes / 4) send_some();
  while (unanswered_bytes_ > window_) pump();
}

inline RestoreReport PipelinedWriter::finish() {
  while (!in_flight_.empty()) pump();
  return report_;
}

inline unsigned long long PipelinedWriter::unacknowledged() const {
  unsigned long long n = 0;
  for (const auto& r : in_flight_) n += r.end <= sent_total_ ? 1 : 0;
  return n;
}

inline unsigned long long PipelinedWriter::first_unanswered_offset(unsigned long long otherwise) const {
  return in_flight_.empty() ? otherwise : in_flight_.front().offset;
}

inline short PipelinedWriter::prepare_wait() {
  send_some();
  bool want_out = sent_off_ < pending_.size() && !broken_;
  short events = static_cast<short>((want_out ? POLLOUT : 0) | (in_flight_.empty() ? 0 : POLLIN));
  if (events) tune_low_water();
  return events;
}

inline void PipelinedWriter::serve(short rev) {
  if (rev & (POLLIN | POLLERR | POLLHUP)) {
    read_replies();
  } else if (rev == 0 && !in_flight_.empty()) {
    int avail = 0;
    if (::ioctl(node_.socket().fd(), FIONREAD, &avail) == 0 && avail > 0) read_replies();
  }
  if (rev & POLLOUT) send_some();
}

inline void PipelinedWriter::check_idle() {
  if (Clock::now() < idle_deadline()) return;
  std::string who = node_.endpoint().display();
  node_.socket().close();
  stopped_ = true;
  throw NetworkError("timed out waiting for " + who + " (nothing sent or answered for " +
                     std::to_string(node_.timeout_ms() / 1000) + " s)");
}

inline void PipelinedWriter::failure(const std::string& key, std::string_view why) {
  ++report_.failed;
  if (report_.first_failures.size() < 10) report_.first_failures.push_back(shown_key(key) + ": " + detail::printable(why, 200));
}

inline std::string PipelinedWriter::shown_key(const std::string& key) { return detail::failure_key(key); }

inline void PipelinedWriter::send_some() {
  while (sent_off_ < pending_.size() && !broken_ && !stopped_) {
    size_t want = limiter_->chunk(std::min(pending_.size() - sent_off_, kSendBytes));
    size_t n = 0;
    try {
      n = node_.socket().send_some(std::string_view(pending_.data() + sent_off_, want));
    } catch (const NetworkError&) {
      read_what_is_left();
      node_.socket().close();
      stopped_ = true;
      throw;
    }
    if (n == 0) break;
    sent_off_ += n;
    sent_total_ += n;
    last_progress_ = Clock::now();
    limiter_->consume(n);
    // Paced (--bwlimit), sending takes the whole run, and the window of unanswered requests
    // may never fill: the replies already there are read between the paced writes, so that
    // what is acknowledged counts as it comes. Read only at the end, a Ctrl-C or a failure
    // said "0 items acknowledged ... --resume-from 0" (seen on a real flare 1.3.4).
    if (limiter_->rate() > 0) read_available();
  }
  if (sent_off_ == pending_.size() || sent_off_ > (8 << 20)) {
    pending_.erase(0, sent_off_);
    sent_off_ = 0;
  }
}

inline void PipelinedWriter::tune_low_water() {
#ifdef SO_RCVLOWAT
  size_t owed = in_flight_.size() * 7;
  owed = owed > rend_ ? owed - rend_ : 1;
  int want = static_cast<int>(std::min<size_t>(owed, kLowWaterBytes));
  want = std::max(want, 1);
  if (want != low_water_) {
    ::setsockopt(node_.socket().fd(), SOL_SOCKET, SO_RCVLOWAT, &want, sizeof want);
    low_water_ = want;
  }
#endif
}

inline void PipelinedWriter::pump() {
  if (wait_) {
    wait_();
    return;
  }
  const auto& sock = node_.socket();
  short events = prepare_wait();
  if (!events) return;
  // Wake at least every quarter second: a trickle below the low-water mark still counts
  // as progress (FIONREAD in serve), and the idle deadline is checked.
  auto deadline = std::min(idle_deadline(), Clock::now() + std::chrono::milliseconds(250));
  serve(detail::poll_until(sock.fd(), events, deadline, sock.cancel()));
  check_idle();
}

inline void PipelinedWriter::read_available() {
  if (in_flight_.empty() || !node_.socket().is_open()) return;
  int avail = 0;
  if (::ioctl(node_.socket().fd(), FIONREAD, &avail) == 0 && avail > 0) read_replies();
}

inline void PipelinedWriter::read_what_is_left() {
  try {
    const auto& sock = node_.socket();
    for (int rounds = 0; rounds < 4096 && sock.is_open() && !in_flight_.empty(); ++rounds) {
      int avail = 0;
      if (::ioctl(sock.fd(), FIONREAD, &avail) != 0 || avail <= 0) break;
      read_replies();
    }
  } catch (const Error&) {
  }
}

inline void PipelinedWriter::read_replies() {
  auto& sock = node_.socket();
  ssize_t n = detail::handle_EINTR([&] { return ::read(sock.fd(), replies_.data() + rend_, kReadBytes); });
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
    int err = errno;
    std::string who = node_.endpoint().display();
    sock.close();
    stopped_ = true;
    if (n == 0) throw NetworkError("connection closed by " + who);
    throw NetworkError("receive from " + who + " failed: " + detail::errno_text(err));
  }
  if (n < 0) return;
  rend_ += static_cast<size_t>(n);
  last_progress_ = Clock::now();
  size_t start = 0;
  for (;;) {
    const void* nl = std::memchr(replies_.data() + start, '\n', rend_ - start);
    if (!nl) break;
    size_t end = static_cast<size_t>(static_cast<const char*>(nl) - replies_.data());
    std::string_view line(replies_.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    start = end + 1;
    answer(line);
  }
  std::memmove(replies_.data(), replies_.data() + start, rend_ - start);
  rend_ -= start;
  if (rend_ >= FLARE_TOOLS_MAX_LINE_BYTES) {
    sock.close();
    stopped_ = true;
    throw ProtocolError("reply line from " + node_.endpoint().display() + " longer than " +
                        std::to_string(FLARE_TOOLS_MAX_LINE_BYTES) + " bytes");
  }
}

inline void PipelinedWriter::answer(std::string_view line) {
  auto& sock = node_.socket();
  if (in_flight_.empty()) {
    sock.close();
    stopped_ = true;
    throw ProtocolError(node_.endpoint().display() + " answered a request that was not sent: '" +
                        detail::printable(line) + "'");
  }
  Request r = std::move(in_flight_.front());
  in_flight_.pop_front();
  unanswered_bytes_ -= r.bytes;
  if (line == "STORED") {
    ++report_.stored;
    return;
  }
  failure(r.key, line);
  if (line == "ERROR") {
    // A request the server could not parse: it may now read our data as commands. Stop.
    sock.close();
    stopped_ = true;
    throw ServerError(node_.endpoint().display() + " answered ERROR to 'set " + detail::printable(r.key) + "'");
  }
  if (!detail::is_terminal_line(line)) {
    sock.close();
    stopped_ = true;
    throw ProtocolError("unexpected answer to set from " + node_.endpoint().display() + ": '" +
                        detail::printable(line) + "'");
  }
}

inline Partitioning partitioning_from_meta(const Meta& m) {
  Partitioning p;
  std::string alg = m.get("key-hash-algorithm");
  if (!alg.empty() && !parse_key_hash_algorithm(alg, p.algorithm))
    throw Error("the index uses key-hash-algorithm '" + detail::printable(alg) + "', which this tool does not know");
  std::string type = m.get("partition-type");
  if (!type.empty() && type != "modular")
    throw Error("the index uses partition-type '" + detail::printable(type) + "'; only modular is supported");
  auto num = [&](const char* name, int def) {
    std::string v = m.get(name);
    if (v.empty()) return def;
    auto n = to_int32(v);
    if (!n || *n <= 0) throw Error(std::string("the index's meta has a bad ") + name + " '" + detail::printable(v) + "'");
    return *n;
  };
  int size = num("partition-size", 1024), hint = num("partition-modular-hint", 1), virt = num("partition-modular-virtual", 4096);
  // Building one row of the map costs partitions x virtual steps and `virtual` ints: bound
  // both, so that a broken or hostile index cannot make verify run for hours or exhaust memory.
  // flare's defaults are 1024 x 4096 (flare-zkadmin's 65536 virtual buckets also fit).
  if (size > (1 << 16) || virt > (1 << 20) || static_cast<long long>(size) * virt > (1LL << 26))
    throw Error("the index's meta asks for " + std::to_string(size) + " partitions of " + std::to_string(virt) +
                " virtual buckets: more than this tool computes (at most 2^26 in all)");
  p.resolver = ModularResolver(size, hint, virt);
  return p;
}

inline int routing_partition_count(const Cluster& c) {
  int n = 0;
  for (const auto& node : c.nodes())
    if (node.is_master() && (node.is_active() || node.state == "down")) n = std::max(n, node.partition + 1);
  return n;
}

inline int serving_partition_count(const Cluster& c) {
  int n = 0;
  for (const auto& node : c.nodes())
    if (node.is_master() && node.is_active()) n = std::max(n, node.partition + 1);
  return n;
}

inline std::optional<std::string> partial_copy_reason(const Cluster& c, const NodeInfo& node, const std::string& command) {
  if ((node.is_master() || node.is_slave()) && node.is_active()) return std::nullopt;
  std::string what;
  if (node.is_proxy())
    what = node.key + " is a proxy" + (node.state == "active" ? "" : " (" + node.state + ")") +
           ": it holds no partition, only what it kept from an earlier role, if anything";
  else if (node.state == "prepare" || node.state == "ready")
    what = node.key + " is a " + node.role + " of partition " + std::to_string(node.partition) + " in " + node.state +
           ": " + (node.state == "prepare" ? "its copy is still being made, so it holds a part of the partition"
                                           : "it serves no data yet");
  else
    what = node.key + " is " + node.role + " " + node.state + " (partition " + std::to_string(node.partition) +
           "): it holds what it had when it went down, not what the partition holds now";
  std::string instead;
  if (node.partition >= 0) {
    const NodeInfo* m = c.master_of(node.partition);
    const NodeInfo* copy = m && m->is_active() && m->key != node.key ? m : nullptr;
    if (!copy)
      for (const auto* s : c.slaves_of(node.partition))
        if (s->is_active() && s->key != node.key) {
          copy = s;
          break;
        }
    instead = copy ? "; read partition " + std::to_string(node.partition) + " from its active " + copy->role + " instead: flare-admin " + command + " " + copy->key
                   : "; partition " + std::to_string(node.partition) + " has no active master or slave to dump now";
  } else {
    instead = "; for the whole cluster: flare-admin " + command + " --all";
  }
  return what + instead;
}

inline DumpChoice dump_targets(const Cluster& cluster, const DumpSelection& s, const Endpoint& index) {
  const int serving = serving_partition_count(cluster);
  DumpChoice out;
  std::vector<NodeInfo> nodes;
  if (s.all) {
    for (auto& n : cluster.list_order()) {
      if (!n.is_master() || cluster.master_of(n.partition)->key != n.key) continue;
      if (n.state == "down") throw Error("partition " + std::to_string(n.partition) + " cannot be dumped: its master " + n.key + " is down");
      if (!n.is_active()) {
        out.notes.push_back("partition " + std::to_string(n.partition) + " is skipped: its master " + n.key + " is " + n.state +
                            ", not yet active; its keys are read from the partitions that serve them now");
        continue;
      }
      nodes.push_back(n);
    }
  } else {
    for (const auto& ep : s.nodes) {
      const NodeInfo* n = cluster.find(ep);
      if (!n) throw Error(unknown_node_text("unknown node: ", ep));
      if (auto why = partial_copy_reason(cluster, *n, s.command)) {
        if (!s.partial)
          throw Error("refused: " + with_index_option(*why, index) +
                      " (--partial dumps what it holds anyway, knowing it is not a whole copy)");
        out.notes.push_back("warning: " + *why + "; dumping what it holds (--partial)");
      }
      nodes.push_back(*n);
    }
  }
  for (const auto& n : nodes) {
    DumpTarget t{n.endpoint(), {}};
    t.range.bwlimit = s.bwlimit;
    if (s.partition && s.partition_size) {
      t.range.partition = *s.partition;
      t.range.partition_size = *s.partition_size;
    } else if (n.partition >= 0 && n.partition < serving && serving > 1) {
      t.range.partition = n.partition;
      t.range.partition_size = serving;
    }
    out.targets.push_back(t);
  }
  return out;
}

inline int RestoreRouting::partition_of(std::string_view key) const {
  return partitioning.resolver.partition_of(key_hash(key, partitioning.algorithm), static_cast<int>(masters.size()));
}

inline RestoreRouting restore_routing(const Cluster& c, const Meta& meta) {
  RestoreRouting r;
  r.partitioning = partitioning_from_meta(meta);
  int count = 0;
  for (const auto& n : c.nodes())
    if (n.is_master() && n.partition >= 0) count = std::max(count, n.partition + 1);
  if (count == 0) throw Error("the cluster has no partition (no master in the index's map): nothing can be restored into it");
  if (count >= r.partitioning.resolver.max_partitions())
    throw Error("the cluster lists " + std::to_string(count) + " partitions, more than its partition-size (" +
                std::to_string(r.partitioning.resolver.max_partitions()) + ") allows");
  std::vector<std::string> refused;
  bool unwritable = false; // a partition no node can write: its master down, or none
  for (int p = 0; p < count; ++p) {
    std::vector<const NodeInfo*> active, other;
    for (const NodeInfo* m : c.masters_of(p)) {
      if (m->is_active()) active.push_back(m);
      else other.push_back(m);
    }
    std::string why;
    if (active.size() == 1) {
      r.masters.push_back(*active[0]);
      continue;
    }
    if (active.size() > 1) {
      why = "two active masters (" + active[0]->key + ", " + active[1]->key + "): it is being changed";
    } else if (other.empty()) {
      why = "no master";
      unwritable = true;
    } else {
      const NodeInfo* m = other[0];
      for (const NodeInfo* o : other)
        if (o->state != "down") m = o;
      if (m->state == "down") {
        why = "its master " + m->key + " is down";
        unwritable = true;
      }
      else if (m->state == "prepare") why = "its master " + m->key + " is in prepare (the partition is being built)";
      else if (m->state == "ready") why = "its master " + m->key + " is ready, not yet active (flare-admin activate " + m->key + ")";
      else why = "its master " + m->key + " is " + m->state;
    }
    refused.push_back("partition " + std::to_string(p) + ": " + why);
  }
  if (!refused.empty()) {
    std::string msg = "cannot restore into the cluster, nothing was sent: ";
    for (size_t i = 0; i < refused.size(); ++i) msg += (i ? "; " : "") + refused[i];
    // Written through a node, a partition whose master is down refuses its keys all the same.
    throw Error(msg + (unwritable ? " (its keys cannot be written through any node either: start the down master's flared "
                                    "again, or give the partition a master, then run this again)"
                                  : " (name one node to write through instead, and it forwards each item as it would a "
                                    "client's)"));
  }
  return r;
}

inline std::vector<std::string> acknowledgement_doubts(const std::vector<Acknowledger>& nodes,
                                                       const std::vector<StatsResult>& answers, const Cluster* now) {
  std::vector<std::string> out;
  for (const auto& a : nodes) {
    if (a.acknowledged == 0 || !a.keeps_items) continue;
    std::string why;
    for (const auto& r : answers)
      if (r.endpoint == a.node && !r.ok) why = "does not answer (" + r.error + ")";
    if (why.empty() && now && a.partition >= 0) {
      const NodeInfo* n = now->find(a.node.key());
      const NodeInfo* m = now->master_of(a.partition);
      if (!n) why = "the index no longer lists it";
      else if (!n->is_master() || n->partition != a.partition || !n->is_active())
        why = "the index now lists it as " + n->role + " " + n->state +
              (m && m->key != n->key ? " (partition " + std::to_string(a.partition) + "'s master is now " + m->key + ")" : "");
    }
    if (why.empty()) continue;
    if (a.forwarded)
      out.push_back(a.node.key() + ", the master of partition " + std::to_string(a.partition) +
                    " that items written through another node were forwarded to, " + why);
    else
      out.push_back(a.node.key() + " acknowledged " + std::to_string(a.acknowledged) + " items, and then " + why);
  }
  return out;
}

namespace detail {

// The check run after a restore (see RestoreReport::doubts): each node that acknowledged items
// (without opt.index: each whose connection failed) answers a `stats` on a new connection
// (opt.check_timeout_ms), and the index's map (opt.index) still lists it as its partition's
// active master. Interrupted: nothing is asked (a silent node
// would hold up Ctrl-C); a node whose connection failed is then doubted as such.
inline std::vector<std::string> recheck_acknowledgers(const std::vector<Acknowledger>& nodes, const RestoreOptions& opt,
                                                      bool interrupted) {
  // A node whose connection failed is asked on a new one. With an index to check against (a
  // cluster restore), every node that acknowledged items is, even one whose own connection
  // ended well: a master killed right after its last answer is gone all the same.
  std::vector<Endpoint> ask;
  for (const auto& a : nodes)
    if (a.acknowledged > 0 && a.keeps_items && (a.connection_failed || a.forwarded || opt.index)) ask.push_back(a.node);
  std::vector<StatsResult> answers;
  std::optional<Cluster> now;
  if (interrupted) {
    for (const auto& a : nodes) {
      if (!a.connection_failed) continue;
      StatsResult r;
      r.endpoint = a.node;
      r.error = "its connection failed; not asked again after the interruption";
      answers.push_back(r);
    }
  } else {
    if (!ask.empty()) answers = gather_stats(ask, opt.check_timeout_ms);
    bool any = false;
    for (const auto& a : nodes) any = any || a.acknowledged > 0;
    if (opt.index && any) {
      try {
        IndexClient ic(*opt.index, opt.check_timeout_ms);
        now = Cluster(ic.stats_nodes());
      } catch (const Error&) {
        // the index cannot say: the nodes' own answers decide
      }
    }
  }
  return acknowledgement_doubts(nodes, answers, now ? &*now : nullptr);
}

// Several PipelinedWriters driven from one poll loop: whichever must wait serves them all, each
// at its own server's pace.
class WriterGroup {
public:
  explicit WriterGroup(CancelFn cancel) : cancel_(std::move(cancel)) {}
  void add(PipelinedWriter& w) {
    writers_.push_back(&w);
    w.set_wait([this] { wait(); });
  }
  // One wait for every writer that is not stopped. Throws what a writer throws (it is then
  // stopped()), Interrupted on the cancel check.
  void wait() {
    fds_.clear();
    owner_.clear();
    auto deadline = Clock::now() + std::chrono::milliseconds(250);
    for (auto* w : writers_) {
      if (w->stopped()) continue;
      short ev = w->prepare_wait();
      if (!ev) continue;
      fds_.push_back(pollfd{w->fd(), ev, 0});
      owner_.push_back(w);
      deadline = std::min(deadline, w->idle_deadline());
    }
    if (fds_.empty()) return;
    int rc = 0;
    for (;;) {
      if (cancel_ && cancel_()) throw Interrupted("interrupted");
      int ms = remaining_ms(deadline);
      if (cancel_) ms = std::min(ms, FLARE_TOOLS_CANCEL_CHECK_MS);
      rc = ::poll(fds_.data(), fds_.size(), ms);
      if (rc > 0) break;
      if (rc < 0 && errno != EINTR) throw NetworkError(std::string("poll failed: ") + errno_text(errno));
      if (rc == 0 && remaining_ms(deadline) == 0) break;
    }
    // Each socket without events is also looked at (FIONREAD) every quarter second: replies
    // below its low-water mark count as progress even while other sockets keep poll busy.
    auto now = Clock::now();
    bool sweep = rc == 0 || now - last_sweep_ >= std::chrono::milliseconds(250);
    if (sweep) last_sweep_ = now;
    for (size_t k = 0; k < fds_.size(); ++k)
      if (sweep || fds_[k].revents != 0) owner_[k]->serve(rc == 0 ? 0 : fds_[k].revents);
    for (auto* w : owner_) w->check_idle();
  }
  // Waits until every writer not stopped has every reply; a writer that fails meanwhile is left
  // stopped and the others go on (`quiet`), or its error is thrown.
  void finish(bool quiet) {
    for (;;) {
      bool waiting = false;
      for (const auto* w : writers_) waiting = waiting || (!w->stopped() && !w->idle());
      if (!waiting) return;
      try {
        wait();
      } catch (const Interrupted&) {
        throw;
      } catch (const Error&) {
        if (!quiet) throw;
      }
    }
  }

private:
  CancelFn cancel_;
  Clock::time_point last_sweep_ = Clock::now();
  std::vector<PipelinedWriter*> writers_;
  std::vector<pollfd> fds_;
  std::vector<PipelinedWriter*> owner_;
};

// The restore loop shared by restore_items and restore_items_routed: each record read goes to
// writers[route(key)] (route < 0: failed locally, not sent); then the report, the check of the
// acknowledgers (ack[i] describes writers[i]; `forwarded` are masters a node given forwarded
// to, judged with writer 0) and where to resume.
template <typename Route>
inline RestoreReport run_restore(ItemReader& reader, std::vector<std::unique_ptr<PipelinedWriter>>& writers,
                                 WriterGroup& group, Route&& route, const RestoreOptions& opt,
                                 std::vector<Acknowledger> ack, const std::vector<Acknowledger>& forwarded) {
  RestoreReport report, local;
  report.run_start = opt.resume_from;
  unsigned long long skipped = 0, expired = 0;
  unsigned long long next_record = reader.position(); // first record not yet queued whole
  ItemHeader h;
  bool interrupted = false, complete = false;
  std::string stopped_by;
  try {
    for (;;) {
      next_record = reader.position();
      if (opt.cancel && opt.cancel()) throw Interrupted("interrupted");
      if (!reader.next_header(h)) break;
      if (opt.select && !opt.select(h.key)) {
        reader.read_data([](std::string_view) {});
        ++skipped;
        continue;
      }
      if (expired_at(h, static_cast<long long>(std::time(nullptr)))) {
        reader.read_data([](std::string_view) {});
        ++expired;
        continue;
      }
      if (std::string why = text_key_problem(h.key); !why.empty()) {
        reader.read_data([](std::string_view) {});
        ++local.failed;
        if (local.first_failures.size() < 10)
          local.first_failures.push_back(failure_key(h.key) + ": " + printable("not sent: " + why, 200));
        continue;
      }
      int w = route(static_cast<const std::string&>(h.key));
      if (w < 0) {
        reader.read_data([](std::string_view) {});
        ++local.failed;
        if (local.first_failures.size() < 10)
          local.first_failures.push_back(failure_key(h.key) + ": not sent: the cluster's partitioning has no partition for it");
        continue;
      }
      if (opt.on_key) opt.on_key(h.key);
      writers[static_cast<size_t>(w)]->set_streamed(h, reader.offset(), [&](auto&& sink) { reader.read_data(sink); });
    }
    group.finish(false); // next_record stays where the records end (before END)
    complete = true;
  } catch (const Interrupted&) {
    interrupted = true;
    stopped_by = "interrupted";
  } catch (const InputError& e) {
    stopped_by = e.what();
    try {
      group.finish(true); // the input is bad from here on; what was sent is still counted
    } catch (const Error&) {
    }
  } catch (const Error& e) {
    stopped_by = e.what();
    try {
      group.finish(true); // the other writers' replies still count
    } catch (const Error&) {
    }
  }
  // The sums, local failures first (they were found first).
  report.first_failures = local.first_failures;
  report.failed = local.failed;
  unsigned long long resume = next_record;
  for (size_t i = 0; i < writers.size(); ++i) {
    const RestoreReport& r = writers[i]->report();
    report.sent += r.sent;
    report.stored += r.stored;
    report.failed += r.failed;
    for (const auto& f : r.first_failures)
      if (report.first_failures.size() < 10) report.first_failures.push_back(f);
    report.unacknowledged += writers[i]->unacknowledged();
    resume = std::min(resume, writers[i]->first_unanswered_offset(next_record));
    ack[i].acknowledged = r.stored;
    ack[i].connection_failed = writers[i]->stopped();
  }
  for (auto a : forwarded) {
    a.acknowledged = ack.empty() ? 0 : ack[0].acknowledged;
    ack.push_back(a);
  }
  report.skipped = skipped;
  report.expired = expired;
  report.complete = complete;
  report.interrupted = interrupted;
  report.stopped_by = stopped_by;
  report.resume_offset = resume;
  report.doubts = recheck_acknowledgers(ack, opt, interrupted);
  if (!report.doubts.empty()) {
    report.complete = false;
    report.resume_offset = report.run_start;
    if (report.stopped_by.empty()) report.stopped_by = report.doubts.front();
  }
  return report;
}

} // namespace detail

inline RestoreReport restore_items(ItemReader& reader, NodeClient& node, const RestoreOptions& opt) {
  reader.set_cancel(opt.cancel);
  reader.skip_to(opt.resume_from);
  node.set_cancel(opt.cancel);
  std::vector<std::unique_ptr<PipelinedWriter>> writers;
  writers.push_back(std::make_unique<PipelinedWriter>(node, opt.bwlimit, opt.window_bytes));
  detail::WriterGroup group(opt.cancel);
  group.add(*writers[0]);
  // Who acknowledges: the node itself if it is a master (or its role is unknown); when it
  // forwards (a proxy, or keys of other partitions), the masters it forwards to.
  Acknowledger self{node.endpoint(), -1, 0, false, true, false};
  std::vector<Acknowledger> forwarded;
  if (opt.cluster) {
    const NodeInfo* me = opt.cluster->find(node.endpoint());
    if (me && me->is_master()) self.partition = me->partition;
    if (me && !me->is_master()) self.keeps_items = false; // a proxy keeps nothing: the masters count
    for (const auto& n : opt.cluster->nodes())
      if (n.is_master() && n.is_active() && !(me && n.key == me->key))
        forwarded.push_back(Acknowledger{n.endpoint(), n.partition, 0, false, true, true});
  }
  return detail::run_restore(reader, writers, group, [](const std::string&) { return 0; }, opt, {self}, forwarded);
}

inline RestoreReport restore_items_routed(ItemReader& reader, const RestoreRouting& routing, const RestoreOptions& opt) {
  reader.set_cancel(opt.cancel);
  reader.skip_to(opt.resume_from);
  std::vector<std::unique_ptr<NodeClient>> nodes;
  std::vector<std::unique_ptr<PipelinedWriter>> writers;
  std::vector<Acknowledger> ack;
  RateLimiter total(opt.bwlimit, opt.cancel);
  detail::WriterGroup group(opt.cancel);
  for (size_t p = 0; p < routing.masters.size(); ++p) {
    nodes.push_back(std::make_unique<NodeClient>(routing.masters[p].endpoint(), opt.timeout_ms));
    nodes.back()->set_trace(opt.trace);
    nodes.back()->set_cancel(opt.cancel);
    writers.push_back(std::make_unique<PipelinedWriter>(*nodes.back(), total, opt.window_bytes));
    group.add(*writers.back());
    ack.push_back(Acknowledger{routing.masters[p].endpoint(), static_cast<int>(p), 0, false, true, false});
  }
  return detail::run_restore(
      reader, writers, group, [&](const std::string& key) { return routing.partition_of(key); }, opt, ack, {});
}

template <typename F> auto naming_index(const Endpoint& index, F fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const NetworkError& e) {
    std::string msg = e.what();
    const std::string who = index.display();
    const size_t at = msg.find(who);
    if (at != std::string::npos) throw Error(msg.insert(at, "index server "));
    throw Error("index server " + who + ": " + msg);
  }
}

inline RestoreReport run_restore(ItemReader& reader, const RestoreJob& job) {
  RestoreOptions opt = job.options;
  opt.index = job.index;
  if (job.through) {
    opt.index.reset();
    opt.cluster.reset();
    try {
      IndexClient ic(job.index, std::min(opt.timeout_ms, opt.check_timeout_ms));
      ic.set_trace(opt.trace);
      Cluster cluster(ic.stats_nodes());
      if (cluster.find(*job.through)) {
        opt.cluster = cluster;
        opt.index = job.index;
      }
    } catch (const Error&) {
    }
    NodeClient node(*job.through, opt.timeout_ms);
    node.set_trace(opt.trace);
    return restore_items(reader, node, opt);
  }
  IndexClient ic(job.index, opt.timeout_ms);
  ic.set_trace(opt.trace);
  ic.set_cancel(opt.cancel);
  Cluster cluster = naming_index(job.index, [&] {
    ic.require_index();
    return Cluster(ic.stats_nodes());
  });
  const RestoreRouting routing = restore_routing(cluster, naming_index(job.index, [&] { return ic.meta(); }));
  opt.cluster = cluster;
  return restore_items_routed(reader, routing, opt);
}

inline RestoreSummary summarize_restore(const RestoreReport& report) {
  RestoreSummary s;
  auto& out = s.lines;
  if (report.complete) out.push_back(std::to_string(report.stored) + " entries have been restored.");
  // Items whose expire time had passed are not sent, and not counted as restored.
  if (report.expired) out.push_back(std::to_string(report.expired) + " entries had already expired: not sent.");
  if (report.failed > 0) {
    std::string f = std::to_string(report.failed) + " entries failed:";
    for (const auto& x : report.first_failures) f += "\n  " + x;
    if (report.failed > report.first_failures.size()) f += "\n  ...";
    out.push_back(f);
    s.failures = true;
  }
  if (report.complete) return s;
  s.end = report.interrupted ? RestoreSummary::End::interrupted : RestoreSummary::End::stopped;
  const bool doubted = !report.doubts.empty();
  // Every record sent and answered, and then a node doubted: the restore ended, not stopped.
  const bool ended = doubted && report.stopped_by == report.doubts.front();
  if (!report.interrupted && !ended) out.push_back(report.stopped_by);
  std::string how = "restore " + std::string(report.interrupted ? "interrupted" : ended ? "ended" : "stopped") + ": " +
                    std::to_string(report.acknowledged()) + " items acknowledged (" + std::to_string(report.stored) +
                    " stored, " + std::to_string(report.failed) + " failed), " + std::to_string(report.unacknowledged) +
                    " sent but not acknowledged (their fate is unknown)";
  const std::string offset = std::to_string(report.resume_offset);
  if (!doubted) {
    out.push_back(how + "; the first record not known to be stored starts at byte " + offset + ": resume with --resume-from " +
                  offset);
    return s;
  }
  how += "; these acknowledgements do not all count:";
  for (const auto& d : report.doubts) how += "\n  " + d;
  out.push_back(how);
  std::string why = "a master answers STORED before its slaves have the item, and a slave promoted in its place holds only "
                    "what reached it: every item this run sent may be missing from that partition. The first record not "
                    "known to be stored is where this run started, byte " + offset + ": resume with --resume-from " + offset +
                    " once every partition has an active master again (an item written twice is harmless)";
  if (report.resume_offset > 0)
    why += "; the records before it were written by an earlier run: if it ended only moments before this one, they may "
           "not have reached the slaves either, and --resume-from 0 covers them";
  out.push_back(why);
  return s;
}

inline std::vector<KeyPlacement> check_key_placement(const Cluster& cluster, const Partitioning& p, int count,
                                                     DumpOptions opt, bool skip_unframed) {
  std::vector<KeyPlacement> checks;
  std::vector<DumpTarget> targets;
  std::vector<size_t> of_target;
  std::map<std::string, size_t> by_key;
  for (const auto& n : cluster.stats_order()) {
    if (n.partition < 0 || n.partition >= count || !(n.is_master() || n.is_slave())) continue;
    KeyPlacement k;
    k.node = n;
    k.skipped = n.state == "down"; // a replaced master stays listed, down
    checks.push_back(std::move(k));
    if (checks.back().skipped) continue;
    by_key[n.key] = targets.size();
    targets.push_back(DumpTarget{n.endpoint(), {}});
    of_target.push_back(checks.size() - 1);
  }
  opt.on_node_error = [&](const DumpTarget& t, const Error& e) {
    auto it = by_key.find(t.endpoint.key());
    if (it == by_key.end()) return;
    KeyPlacement& k = checks[of_target[it->second]];
    k.error = e.what();
    k.framing_error = dynamic_cast<const ProtocolError*>(&e) != nullptr;
  };
  if (skip_unframed)
    opt.on_unframed_key = [&](const DumpTarget& t, const std::string&) {
      auto it = by_key.find(t.endpoint.key());
      if (it != by_key.end()) ++checks[of_target[it->second]].unframed;
    };
  else
    opt.on_unframed_key = nullptr;
  // A misplaced key is looked up afterwards on the master of the partition it belongs to (a
  // second listing of those masters only): there too, it is a stale copy; not there, it is lost
  // to readers. The keys kept for that are bounded (kMaxTracked keys, kMaxTrackedBytes bytes);
  // those over the bound are counted unchecked.
  constexpr size_t kMaxTracked = 1000000, kMaxTrackedBytes = 64u << 20;
  std::map<int, std::unordered_map<std::string, std::vector<size_t>>> tracked; // partition -> key -> checks holding it
  size_t tracked_keys = 0, tracked_bytes = 0;
  struct Example {
    size_t check;
    std::string key;
    int want;
  };
  std::vector<Example> examples;
  std::vector<int> candidates(checks.size(), 0); // examples kept per node, chosen from afterwards
  auto counts = dump_keys_all(
      targets,
      [&](size_t i, std::string_view key) {
        const size_t ci = of_target[i];
        KeyPlacement& k = checks[ci];
        int want = p.resolver.partition_of(key_hash(key, p.algorithm), count);
        if (want == k.node.partition) return;
        ++k.misplaced;
        if (candidates[ci] < 100) {
          ++candidates[ci];
          examples.push_back({ci, std::string(key), want});
        }
        if (tracked_keys >= kMaxTracked || tracked_bytes + key.size() > kMaxTrackedBytes) {
          ++k.unchecked;
          return;
        }
        auto& holders = tracked[want][std::string(key)];
        if (holders.empty()) {
          ++tracked_keys;
          tracked_bytes += key.size() + 64;
        }
        holders.push_back(ci);
      },
      opt);
  for (size_t i = 0; i < targets.size(); ++i) checks[of_target[i]].keys = counts[i];
  // The second look: each master a misplaced key belongs to lists its keys once more.
  std::vector<DumpTarget> masters;
  std::vector<int> master_part;
  for (const auto& [part, keys] : tracked) {
    const NodeInfo* m = cluster.master_of(part);
    if (!m || !m->is_active()) continue;
    masters.push_back(DumpTarget{m->endpoint(), {}});
    master_part.push_back(part);
  }
  std::set<std::pair<int, std::string>> found;
  std::vector<bool> master_failed(masters.size(), false);
  DumpOptions again = opt;
  again.on_node_start = nullptr;
  again.on_node_done = nullptr;
  again.on_node_error = [&](const DumpTarget& t, const Error&) {
    for (size_t i = 0; i < masters.size(); ++i)
      if (masters[i].endpoint == t.endpoint) master_failed[i] = true;
  };
  again.on_unframed_key = [](const DumpTarget&, const std::string&) {};
  if (!masters.empty())
    dump_keys_all(
        masters,
        [&](size_t i, std::string_view key) {
          const auto& keys = tracked.at(master_part[i]);
          auto it = keys.find(std::string(key));
          if (it != keys.end()) found.insert({master_part[i], it->first});
        },
        again);
  std::set<int> readable;
  for (size_t i = 0; i < masters.size(); ++i)
    if (!master_failed[i]) readable.insert(master_part[i]);
  for (const auto& [part, keys] : tracked)
    for (const auto& [key, holders] : keys) {
      const bool known = readable.count(part) > 0;
      const bool there = known && found.count({part, key}) > 0;
      for (size_t ci : holders) {
        if (!known) ++checks[ci].unchecked;
        else if (there) ++checks[ci].stale;
        else {
          ++checks[ci].only_here;
          checks[ci].only_here_partitions.insert(part);
        }
      }
    }
  // Examples: the keys only here first (the ones that may need the operator), then the others.
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& e : examples) {
      auto t = tracked.find(e.want);
      const bool known = readable.count(e.want) > 0 && t != tracked.end() && t->second.count(e.key) > 0;
      const bool there = known && found.count({e.want, e.key}) > 0;
      const bool here_only = known && !there;
      if ((pass == 0) != here_only || checks[e.check].examples.size() >= 10) continue;
      checks[e.check].examples.push_back(
          detail::printable(e.key, 250) + " belongs to partition " + std::to_string(e.want) +
          (!known ? " (not looked up on its master)"
           : there ? " (a stale copy: its master holds it too)"
                   : " (only here: its master does not hold it)"));
    }
  return checks;
}

// ---- 8. Formatting -----------------------------------------------------------------------

namespace detail {

inline std::string pad_left(const std::string& s, size_t w) {
  return s.size() >= w ? s : std::string(w - s.size(), ' ') + s;
}
inline std::string pad_right(const std::string& s, size_t w) {
  return s.size() >= w ? s : s + std::string(w - s.size(), ' ');
}

// A printf-like "%*s" that never truncates (as Ruby's format).
inline std::string fixed(const std::string& s, int width) {
  return width < 0 ? pad_right(s, static_cast<size_t>(-width)) : pad_left(s, static_cast<size_t>(width));
}

inline std::string json_escape(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default:
      if (c < 0x20 || c >= 0x7f) {
        // Bytes from a peer are not guaranteed UTF-8: escape everything outside ASCII so the
        // document is always valid JSON (non-ASCII bytes become \u00XX, i.e. Latin-1).
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  out += '"';
  return out;
}

inline std::string json_string_array(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + json_escape(v[i]);
  return out + "]";
}

inline std::string json_number_or_null(const std::optional<long long>& v) {
  return v ? std::to_string(*v) : std::string("null");
}

} // namespace detail

inline std::string format_node_table(const std::vector<NodeInfo>& nodes) {
  using detail::fixed;
  std::string out = fixed("node", -32) + " " + fixed("partition", 9) + " " + fixed("role", 6) + " " +
                    fixed("state", 6) + " " + fixed("balance", 7) + "\n";
  for (const auto& n : nodes) {
    out += fixed(n.key, -32) + " " + fixed(n.partition < 0 ? "-" : std::to_string(n.partition), 9) + " " +
           fixed(n.role, 6) + " " + fixed(n.state, 6) + " " + fixed(std::to_string(n.balance), 7) + "\n";
  }
  return out;
}

inline std::string format_node_json(const std::vector<NodeInfo>& nodes) {
  std::string out = "[";
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    out += i ? ",\n  " : "\n  ";
    out += "{\"node\":" + detail::json_escape(n.key) + ",\"host\":" + detail::json_escape(n.host) +
           ",\"port\":" + std::to_string(n.port) + ",\"partition\":" + std::to_string(n.partition) +
           ",\"role\":" + detail::json_escape(n.role) + ",\"state\":" + detail::json_escape(n.state) +
           ",\"balance\":" + std::to_string(n.balance) + ",\"thread_type\":" + std::to_string(n.thread_type) + "}";
  }
  out += nodes.empty() ? "]" : "\n]";
  return out;
}

inline std::string format_list_json(const Endpoint& index, const std::vector<NodeInfo>& nodes, const MapVersions& v) {
  std::vector<std::string> warnings;
  const std::string w = map_version_warning(v);
  if (!w.empty()) warnings.push_back(w + " " + map_version_way_out(v));
  return "{\"index\":" + detail::json_escape(index.display()) + ",\"nodes\":" + format_node_json(nodes) +
         ",\"node_map_version\":" + detail::json_number_or_null(v.index >= 0 ? std::optional<long long>(v.index) : std::nullopt) +
         ",\"warnings\":" + detail::json_string_array(warnings) + "}";
}

inline std::string short_duration(long long seconds) {
  if (seconds < 60) return std::to_string(seconds) + "s";
  long long m = seconds / 60;
  if (m < 60) return std::to_string(m) + "m";
  long long h = m / 60;
  if (h < 24) return std::to_string(h) + "h";
  return std::to_string(h / 24) + "d";
}

inline std::string hit_rate_cell(const NodeStats& s) {
  auto gets = s.number("cmd_get"), hits = s.number("get_hits");
  if (!gets || *gets == 0 || !hits) return "-";
  if (*gets < 0 || *hits < 0 || *hits > *gets) return "?";
  double pct = 100.0 * static_cast<double>(*hits) / static_cast<double>(*gets);
  return std::to_string(static_cast<long long>(std::floor(pct + 0.5)));
}

inline std::optional<QpsSample> qps_sample(const StatsResult& r) {
  if (!r.ok) return std::nullopt;
  auto g = r.stats.number("cmd_get"), s = r.stats.number("cmd_set");
  if (!g || !s) return std::nullopt;
  return QpsSample{*g, *s, r.fetched_at};
}

inline QpsRates qps_between(const std::optional<QpsSample>& prev, const std::optional<QpsSample>& cur) {
  QpsRates r;
  if (!prev || !cur) return r;
  double secs = std::chrono::duration<double>(cur->at - prev->at).count();
  if (secs <= 0) return r;
  if (cur->gets < prev->gets || cur->sets < prev->sets) return r;
  // In double: counters come from peers and may be anywhere up to 2^63-1.
  double dg = static_cast<double>(cur->gets) - static_cast<double>(prev->gets);
  double ds = static_cast<double>(cur->sets) - static_cast<double>(prev->sets);
  r.total = (dg + ds) / secs;
  r.reads = dg / secs;
  r.writes = ds / secs;
  return r;
}

inline std::string qps_cell(const std::optional<double>& v) {
  if (!v || *v <= 0) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", *v);
  return buf;
}

inline StatsSampler::StatsSampler(IndexClient& index, int timeout_ms, std::vector<std::string> filter, GatherHooks hooks)
    : index_(index), timeout_ms_(timeout_ms), filter_(std::move(filter)), hooks_(std::move(hooks)) {}

inline StatsSampler::Sample StatsSampler::sample() {
  Sample s;
  s.reading = read_cluster(index_, timeout_ms_, [this](const Cluster& c) {
    std::vector<NodeInfo> out;
    for (const auto& n : c.stats_order())
      if (filter_.empty() || std::find(filter_.begin(), filter_.end(), n.key) != filter_.end()) out.push_back(n);
    return out;
  }, true, hooks_);
  const ClusterReading& r = s.reading;
  std::set<std::string> failed; // rows that say so themselves
  const std::map<std::string, SlaveLag> behind = lags_by_slave(r.cluster, r.lags);
  for (size_t i = 0; i < r.shown.size(); ++i) {
    const StatsResult& result = r.stats[i];
    StatsRow row;
    row.node = r.shown[i];
    row.result = &result;
    row.index_map_version = r.versions.index >= 0 ? std::optional<long long>(r.versions.index) : std::nullopt;
    auto b = behind.find(row.node.key);
    if (b != behind.end()) row.lag = b->second;
    auto now = qps_sample(result);
    row.qps = qps_between(previous_[row.node.key], now);
    previous_[row.node.key] = now;
    if (!result.ok) {
      failed.insert(row.node.key);
      s.unreachable.push_back(row.node.key + ": " + result.error);
    }
    s.rows.push_back(std::move(row));
  }
  for (const auto& l : r.lags)
    if (!l.ok && !failed.count(l.master.key())) s.lag_errors.push_back(l.master.key() + ": its slaves' lag is unknown: " + l.error);
  return s;
}

inline std::vector<std::string> stats_header(bool with_qps) {
  std::vector<std::string> h = {"hostname:port", "state", "role", "partition", "balance", "items",
                                "conn",          "behind", "hit", "size",      "uptime",  "version"};
  if (with_qps) {
    h.push_back("qps");
    h.push_back("qps-r");
    h.push_back("qps-w");
  }
  return h;
}

inline std::string behind_cell(const StatsRow& row) {
  if (row.node.is_slave()) {
    if (!row.lag) return "-";
    if (row.lag->queue == 0) return std::to_string(row.lag->behind);
    return std::to_string(row.lag->behind) + "s/" + std::to_string(row.lag->queue);
  }
  return row.result && row.result->ok ? "0" : "-";
}

inline std::vector<std::string> stats_cells(const StatsRow& row, bool with_qps) {
  const NodeInfo& n = row.node;
  std::vector<std::string> c = {n.key, n.state, n.role, std::to_string(n.partition), std::to_string(n.balance)};
  bool up = row.result && row.result->ok;
  auto num = [&](const char* name) {
    auto v = row.result->stats.number(name);
    return v ? std::to_string(*v) : std::string("-");
  };
  if (up) {
    c.push_back(num("curr_items"));
    c.push_back(num("curr_connections"));
  } else {
    c.push_back("");
    c.push_back("");
  }
  c.push_back(behind_cell(row));
  if (up) {
    const NodeStats& s = row.result->stats;
    c.push_back(hit_rate_cell(s));
    auto bytes = s.number("bytes");
    c.push_back(!bytes ? "-" : *bytes == 0 ? "-" : std::to_string(*bytes / (1024LL * 1024 * 1024)));
    auto uptime = s.number("uptime");
    c.push_back(uptime ? short_duration(*uptime) : "-");
    std::string v = s.get("version");
    c.push_back(v.empty() ? "-" : detail::printable(v, 40));
  } else {
    for (int i = 0; i < 4; ++i) c.push_back("");
  }
  if (with_qps) {
    c.push_back(qps_cell(row.qps.total));
    c.push_back(qps_cell(row.qps.reads));
    c.push_back(qps_cell(row.qps.writes));
  }
  return c;
}

inline std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                                size_t left_columns, const std::string& delimiter) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::string out;
  for (size_t i = 0; i < header.size(); ++i) {
    if (i) out += delimiter;
    out += detail::pad_right(header[i], width[i]);
  }
  out += "\n";
  for (const auto& r : rows) {
    for (size_t i = 0; i < header.size(); ++i) {
      if (i) out += delimiter;
      const std::string cell = i < r.size() ? r[i] : std::string();
      out += i < left_columns ? detail::pad_right(cell, width[i]) : detail::pad_left(cell, width[i]);
    }
    out += "\n";
  }
  return out;
}

inline std::string format_stats_table(const std::vector<StatsRow>& rows, bool with_qps, const std::string& delimiter) {
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size());
  for (const auto& r : rows) cells.push_back(stats_cells(r, with_qps));
  return render_table(stats_header(with_qps), cells, 3, delimiter);
}

inline std::string format_stats_json(const std::vector<StatsRow>& rows, bool with_qps) {
  using detail::json_escape;
  using detail::json_number_or_null;
  std::string out = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    const StatsRow& row = rows[i];
    const NodeInfo& n = row.node;
    out += i ? ",\n  " : "\n  ";
    out += "{\"node\":" + json_escape(n.key) + ",\"state\":" + json_escape(n.state) + ",\"role\":" + json_escape(n.role) +
           ",\"partition\":" + std::to_string(n.partition) + ",\"balance\":" + std::to_string(n.balance);
    bool up = row.result && row.result->ok;
    out += ",\"reachable\":" + std::string(up ? "true" : "false");
    // behind: seconds (as the table); a slave also gets queue: the writes waiting for it
    std::optional<long long> behind;
    if (n.is_slave()) {
      if (row.lag) behind = row.lag->behind;
    } else if (up) {
      behind = 0;
    }
    out += ",\"behind\":" + json_number_or_null(behind);
    if (n.is_slave()) out += ",\"queue\":" + json_number_or_null(row.lag ? std::optional<long long>(row.lag->queue) : std::nullopt);
    if (up) {
      const NodeStats& s = row.result->stats;
      auto gets = s.number("cmd_get"), hits = s.number("get_hits");
      out += ",\"items\":" + json_number_or_null(s.number("curr_items")) +
             ",\"conn\":" + json_number_or_null(s.number("curr_connections"));
      std::string hit = "null";
      if (gets && *gets > 0 && hits && *hits >= 0 && *hits <= *gets) { // as hit_rate_cell: no made-up rate
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.2f", 100.0 * static_cast<double>(*hits) / static_cast<double>(*gets));
        hit = buf;
      }
      out += ",\"hit\":" + hit + ",\"bytes\":" + json_number_or_null(s.number("bytes")) +
             ",\"uptime\":" + json_number_or_null(s.number("uptime")) + ",\"version\":" + json_escape(s.get("version")) +
             ",\"cmd_get\":" + json_number_or_null(gets) + ",\"cmd_set\":" + json_number_or_null(s.number("cmd_set"));
      auto nmv = s.number("node_map_version");
      out += ",\"node_map_version\":" + json_number_or_null(nmv);
      if (row.index_map_version && nmv && *nmv > *row.index_map_version) out += ",\"map_newer_than_index\":true";
    } else {
      out += ",\"error\":" + json_escape(row.result ? row.result->error : std::string("not asked"));
    }
    if (with_qps) {
      auto num = [](const std::optional<double>& v) {
        if (!v) return std::string("null");
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.1f", *v);
        return std::string(buf);
      };
      out += ",\"qps\":" + num(row.qps.total) + ",\"qps_r\":" + num(row.qps.reads) + ",\"qps_w\":" + num(row.qps.writes);
    }
    out += "}";
  }
  out += rows.empty() ? "]" : "\n]";
  return out;
}

inline std::vector<ThreadInfo> threads_order(std::vector<ThreadInfo> threads) {
  std::stable_sort(threads.begin(), threads.end(), [](const ThreadInfo& a, const ThreadInfo& b) {
    if (a.peer != b.peer) return a.peer < b.peer;
    return a.id < b.id;
  });
  return threads;
}

inline std::string format_threads_table(const std::vector<ThreadInfo>& threads) {
  using detail::fixed;
  std::string out = fixed("id", 5) + " " + fixed("peer", -32) + " " + fixed("operation", -13) + " " + fixed("type", 4) +
                    " " + fixed("queue", 8) + "\n";
  for (auto& t : threads_order(threads)) {
    out += fixed(detail::printable(t.id, 20), 5) + " " + fixed(detail::printable(t.peer, 200), -32) + " " +
           fixed(t.op.empty() ? "-" : detail::printable(t.op, 40), -13) + " " + fixed(detail::printable(t.type, 20), 4) +
           " " + fixed(detail::printable(t.queue, 20), 8) + "\n";
  }
  return out;
}

inline std::string format_threads_json(const std::vector<ThreadInfo>& threads) {
  using detail::json_escape;
  std::string out = "[";
  auto sorted = threads_order(threads);
  for (size_t i = 0; i < sorted.size(); ++i) {
    auto& t = sorted[i];
    auto num = [](const std::string& v) { return detail::json_number_or_null(to_int(v)); };
    out += i ? ",\n  " : "\n  ";
    out += "{\"id\":" + num(t.id) + ",\"peer\":" + json_escape(t.peer) + ",\"op\":" + json_escape(t.op) +
           ",\"type\":" + num(t.type) + ",\"uptime\":" + num(t.uptime) + ",\"state\":" + json_escape(t.state) +
           ",\"info\":" + json_escape(t.info) + ",\"queue\":" + num(t.queue) +
           ",\"behind\":" + (t.behind ? num(*t.behind) : std::string("null")) + "}";
  }
  out += sorted.empty() ? "]" : "\n]";
  return out;
}

inline Summary summarize(const std::string& name, const Cluster& cluster, const std::vector<StatsResult>& results) {
  Summary s;
  s.name = name;
  for (const auto& n : cluster.nodes()) {
    ++s.nodes;
    if (n.is_master()) {
      ++s.masters;
      s.partitions = std::max(s.partitions, n.partition + 1);
    } else if (n.is_slave()) {
      ++s.slaves;
    }
  }
  for (auto& r : results) {
    auto* n = cluster.find(r.endpoint);
    if (!n || !n->is_master()) continue;
    if (!r.ok) {
      ++s.unreachable_masters;
      continue;
    }
    // Saturate instead of wrapping: a peer can send any counter up to 2^63-1.
    auto add = [](long long& total, long long v) {
      if (__builtin_add_overflow(total, v, &total)) total = LLONG_MAX;
    };
    add(s.bytes, r.stats.number("bytes").value_or(0));
    add(s.items, r.stats.number("curr_items").value_or(0));
  }
  return s;
}

inline std::string format_summary(const Summary& s) {
  using detail::fixed;
  std::string name = s.name.substr(0, 30);
  std::string out = fixed("#cluster", -30) + fixed("part", 6) + fixed("node", 6) + fixed("master", 7) + fixed("slave", 6) +
                    fixed("size", 16) + fixed("items", 13) + "\n";
  out += fixed(name, -30) + fixed(std::to_string(s.partitions), 6) + fixed(std::to_string(s.nodes), 6) +
         fixed(std::to_string(s.masters), 7) + fixed(std::to_string(s.slaves), 6) + fixed(std::to_string(s.bytes), 16) +
         fixed(std::to_string(s.items), 13) + "\n";
  return out;
}

inline std::string format_summary_json(const Summary& s) {
  return "{\"cluster\":" + detail::json_escape(s.name) + ",\"partitions\":" + std::to_string(s.partitions) +
         ",\"nodes\":" + std::to_string(s.nodes) + ",\"masters\":" + std::to_string(s.masters) +
         ",\"slaves\":" + std::to_string(s.slaves) + ",\"bytes\":" + std::to_string(s.bytes) +
         ",\"items\":" + std::to_string(s.items) + ",\"unreachable_masters\":" + std::to_string(s.unreachable_masters) +
         ",\"warnings\":" + detail::json_string_array(s.warnings) + "}";
}

inline StreamsProgress::StreamsProgress(std::string verb, std::vector<std::string> names, std::string unit, size_t width)
    : verb_(std::move(verb)), unit_(std::move(unit)), names_(std::move(names)), counts_(names_.size(), 0),
      done_(names_.size(), false), width_(width) {}

inline void StreamsProgress::count(size_t i, unsigned long long n) {
  if (i < counts_.size()) counts_[i] = n;
}

inline void StreamsProgress::finish(size_t i) {
  if (i < done_.size()) done_[i] = true;
}

inline std::string StreamsProgress::line() const {
  unsigned long long total = 0;
  size_t done = 0;
  for (size_t i = 0; i < names_.size(); ++i) {
    total += counts_[i];
    done += done_[i] ? 1 : 0;
  }
  std::string tail = "; " + std::to_string(total) + " " + unit_;
  std::string all = verb_ + ": ";
  for (size_t i = 0; i < names_.size(); ++i)
    all += (i ? ", " : "") + names_[i] + " " + std::to_string(counts_[i]) + (done_[i] ? " done" : "");
  all += tail;
  if (all.size() <= width_) return all;
  std::string out = verb_ + ": " + std::to_string(done) + " of " + std::to_string(names_.size()) + " nodes done" + tail;
  size_t behind = names_.size();
  for (size_t i = 0; i < names_.size(); ++i)
    if (!done_[i] && (behind == names_.size() || counts_[i] < counts_[behind])) behind = i;
  if (behind < names_.size()) out += "; behind: " + names_[behind] + " " + std::to_string(counts_[behind]);
  if (out.size() > width_) out.resize(width_); // a wrapped line cannot be redrawn in place
  return out;
}

inline std::optional<std::string> StreamsProgress::line_if_due(int interval_ms) {
  auto now = Clock::now();
  if (shown_ && now - last_ < std::chrono::milliseconds(interval_ms)) return std::nullopt;
  shown_ = true;
  last_ = now;
  return line();
}

// ---- 8b. Prometheus text exposition format, version 0.0.4 --------------------------------

namespace detail {

// Label values escape backslash, double quote and newline (the format's only escapes). Other
// control bytes and non-ASCII bytes, which a broken peer could send and which would make the
// file invalid UTF-8 or unreadable, become '?'.
inline std::string prom_label_value(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else if (c < 0x20 || c >= 0x7f) out += '?';
    else out += static_cast<char>(c);
  }
  return out;
}

// A value as flare sends it, checked: digits, optionally a fraction ("2.766564"). Passed on
// as text so that no precision is lost; anything else is left out rather than guessed.
inline bool prom_plain_number(std::string_view s) {
  size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  if (!is_digits(whole)) return false;
  return dot == std::string_view::npos || is_digits(s.substr(dot + 1));
}

// Appends one family: HELP, TYPE, then its samples (already formatted "name{labels} value").
inline void prom_family(std::string& out, const char* name, const char* type, const char* help,
                        const std::vector<std::string>& samples) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  for (const auto& s : samples) out += s;
}

// A node's series are labelled by its cluster and itself only: its role, state and partition
// change (a failover, a rebuild) and would start new series, breaking rate() across the change;
// they are the labels of flare_node_info instead (as redis_exporter's redis_instance_info).
inline std::string prom_node_labels(const std::string& index_label, const NodeInfo& n) {
  return index_label + ",node=\"" + prom_label_value(n.key) + "\"";
}

// The node `stats` fields exported, in output order.
struct PromStat {
  const char* name;
  const char* type;
  const char* field;
  const char* help;
};
inline const std::vector<PromStat>& prom_stats() {
  static const std::vector<PromStat> table = {
      {"flare_uptime_seconds", "gauge", "uptime", "Seconds since the node started."},
      {"flare_current_items", "gauge", "curr_items", "Items stored on the node."},
      {"flare_items_total", "counter", "total_items", "Items stored since the node started."},
      {"flare_bytes", "gauge", "bytes", "Bytes the node uses for its items."},
      {"flare_limit_bytes", "gauge", "limit_maxbytes", "The node's storage limit in bytes (0: none)."},
      {"flare_current_connections", "gauge", "curr_connections", "Open client connections."},
      {"flare_connections_total", "counter", "total_connections", "Client connections accepted."},
      {"flare_cmd_get_total", "counter", "cmd_get", "get requests."},
      {"flare_cmd_set_total", "counter", "cmd_set", "set requests."},
      {"flare_get_hits_total", "counter", "get_hits", "get requests that found the key."},
      {"flare_get_misses_total", "counter", "get_misses", "get requests that did not find the key."},
      {"flare_delete_hits_total", "counter", "delete_hits", "delete requests that found the key."},
      {"flare_delete_misses_total", "counter", "delete_misses", "delete requests that did not find the key."},
      {"flare_incr_hits_total", "counter", "incr_hits", "incr requests that found the key."},
      {"flare_incr_misses_total", "counter", "incr_misses", "incr requests that did not find the key."},
      {"flare_decr_hits_total", "counter", "decr_hits", "decr requests that found the key."},
      {"flare_decr_misses_total", "counter", "decr_misses", "decr requests that did not find the key."},
      {"flare_cas_hits_total", "counter", "cas_hits", "cas requests that stored the item."},
      {"flare_cas_misses_total", "counter", "cas_misses", "cas requests that did not find the key."},
      {"flare_cas_badval_total", "counter", "cas_badval", "cas requests refused for a changed item."},
      {"flare_touch_hits_total", "counter", "touch_hits", "touch requests that found the key."},
      {"flare_touch_misses_total", "counter", "touch_misses", "touch requests that did not find the key."},
      {"flare_evictions_total", "counter", "evictions", "Items evicted to make room."},
      {"flare_read_bytes_total", "counter", "bytes_read", "Bytes received from clients."},
      {"flare_written_bytes_total", "counter", "bytes_written", "Bytes sent to clients."},
      {"flare_cpu_user_seconds_total", "counter", "rusage_user", "User CPU time of the node process."},
      {"flare_cpu_system_seconds_total", "counter", "rusage_system", "System CPU time of the node process."},
      {"flare_threads", "gauge", "threads", "Threads of the node process."},
      {"flare_pool_threads", "gauge", "pool_threads", "Idle threads in the node's pool."},
      {"flare_node_map_version", "gauge", "node_map_version", "Version of the node map the node holds."},
  };
  return table;
}

} // namespace detail

inline std::string format_prometheus(const std::string& index_name, const Cluster& cluster,
                                     const std::vector<StatsResult>& results) {
  using detail::prom_family;
  std::string out;
  const std::string index_label = "index=\"" + detail::prom_label_value(index_name) + "\"";
  auto cluster_sample = [&](const char* name, const std::string& extra, long long v) {
    return std::string(name) + "{" + index_label + extra + "} " + std::to_string(v) + "\n";
  };

  // Cluster-level gauges.
  Summary sum = summarize(index_name, cluster, results);
  prom_family(out, "flare_index_up", "gauge", "1 when the index server answered.",
              {cluster_sample("flare_index_up", "", 1)});
  prom_family(out, "flare_cluster_partitions", "gauge", "Partitions of the cluster (1 + the highest in use).",
              {cluster_sample("flare_cluster_partitions", "", cluster.partition_count())});
  {
    // Every known role and state, zeros included (an alert on "no active slave" needs the 0),
    // then any other pair the index reported.
    std::vector<std::pair<std::string, std::string>> keys;
    for (const char* r : {"master", "slave", "proxy"})
      for (const char* s : {"active", "prepare", "down", "ready"}) keys.emplace_back(r, s);
    std::map<std::pair<std::string, std::string>, long long> count;
    for (const auto& k : keys) count[k] = 0;
    for (const auto& n : cluster.nodes()) {
      auto k = std::make_pair(n.role, n.state);
      if (count.find(k) == count.end()) keys.push_back(k);
      ++count[k];
    }
    std::vector<std::string> samples;
    for (const auto& k : keys)
      samples.push_back(cluster_sample("flare_cluster_nodes",
                                       ",role=\"" + detail::prom_label_value(k.first) + "\",state=\"" +
                                           detail::prom_label_value(k.second) + "\"",
                                       count[k]));
    prom_family(out, "flare_cluster_nodes", "gauge", "Nodes of the cluster by role and state.", samples);
  }
  prom_family(out, "flare_cluster_items", "gauge", "Items stored in the cluster (sum over the masters that answered).",
              {cluster_sample("flare_cluster_items", "", sum.items)});
  prom_family(out, "flare_cluster_bytes", "gauge", "Bytes used in the cluster (sum over the masters that answered).",
              {cluster_sample("flare_cluster_bytes", "", sum.bytes)});
  prom_family(out, "flare_cluster_unreachable_masters", "gauge",
              "Masters whose stats could not be read (the cluster sums leave them out).",
              {cluster_sample("flare_cluster_unreachable_masters", "", sum.unreachable_masters)});

  // Per-node families, nodes in stats order.
  std::map<std::string, const StatsResult*> by_key;
  for (const auto& r : results) by_key[r.endpoint.key()] = &r;
  auto nodes = cluster.stats_order();
  std::vector<std::string> labels;
  std::vector<const StatsResult*> answered;
  for (const auto& n : nodes) {
    labels.push_back(detail::prom_node_labels(index_label, n));
    auto it = by_key.find(n.key);
    answered.push_back(it != by_key.end() && it->second->ok ? it->second : nullptr);
  }
  std::vector<std::string> samples;
  samples.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string* version = answered[i] ? answered[i]->stats.find("version") : nullptr;
    samples.push_back("flare_node_info{" + labels[i] + ",role=\"" + detail::prom_label_value(nodes[i].role) + "\",state=\"" +
                      detail::prom_label_value(nodes[i].state) + "\",partition=\"" + std::to_string(nodes[i].partition) +
                      "\",version=\"" + (version ? detail::prom_label_value(*version) : std::string()) + "\"} 1\n");
  }
  prom_family(out, "flare_node_info", "gauge",
              "The node's role, state, partition and flare version, from the index and its stats (1 for each node).", samples);
  samples.clear();
  for (size_t i = 0; i < nodes.size(); ++i)
    samples.push_back("flare_up{" + labels[i] + "} " + (answered[i] ? "1" : "0") + "\n");
  prom_family(out, "flare_up", "gauge", "1 when the node answered stats, 0 when it did not.", samples);
  samples.clear();
  for (size_t i = 0; i < nodes.size(); ++i)
    samples.push_back("flare_balance{" + labels[i] + "} " + std::to_string(nodes[i].balance) + "\n");
  prom_family(out, "flare_balance", "gauge", "The node's weight for reads, from the index server.", samples);
  for (const auto& m : detail::prom_stats()) {
    samples.clear();
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (!answered[i]) continue;
      const std::string* v = answered[i]->stats.find(m.field);
      if (!v || !detail::prom_plain_number(*v)) continue;
      samples.push_back(std::string(m.name) + "{" + labels[i] + "} " + *v + "\n");
    }
    prom_family(out, m.name, m.type, m.help, samples);
  }
  return out;
}

inline std::string format_prometheus_index_down(const std::string& index_name) {
  std::string out;
  detail::prom_family(out, "flare_index_up", "gauge", "1 when the index server answered.",
                      {"flare_index_up{index=\"" + detail::prom_label_value(index_name) + "\"} 0\n"});
  return out;
}

// ---- 8c. Health check (`flare-admin check`) ------------------------------------------------

inline const char* to_string(Severity s) {
  switch (s) {
  case Severity::ok: return "OK";
  case Severity::warning: return "WARNING";
  case Severity::critical: return "CRITICAL";
  default: return "UNKNOWN";
  }
}

inline Severity worse(Severity a, Severity b) {
  auto rank = [](Severity s) { return s == Severity::critical ? 3 : s == Severity::unknown ? 2 : s == Severity::warning ? 1 : 0; };
  return rank(a) >= rank(b) ? a : b;
}

inline const std::vector<CheckCode>& check_codes() {
  static const std::vector<CheckCode> codes = {
      {"index_down", Severity::critical, "the index server does not answer: nothing can fail over"},
      {"index_is_node", Severity::critical, "the address given as the index server is a data node"},
      {"no_active_master", Severity::critical, "a partition has no active master"},
      {"no_partition", Severity::critical, "the cluster has no partition (no master at all): it serves no data"},
      {"master_down_no_slave", Severity::critical,
       "a master is down or does not answer and its partition has no active slave that answers: every copy is offline"},
      {"map_newer_than_index", Severity::critical, "nodes hold a newer node map than the index and ignore its changes"},
      {"keys_unframed", Severity::critical, "a key listing cannot be framed (a key holds CR LF; --keys)"},
      {"no_active_slave", Severity::warning, "a partition has no active slave: no redundancy"},
      {"slave_lag", Severity::warning, "a slave is behind its master by more than --lag-warning items or seconds"},
      {"lag_unknown", Severity::warning, "a master did not answer stats threads slave: its slaves' lag is unknown"},
      {"node_down", Severity::warning, "a node is down in the index's map"},
      {"node_unreachable", Severity::warning, "a node the index lists as up does not answer"},
      {"map_differs", Severity::warning, "a node holds an older node map than the index"},
      {"master_not_serving", Severity::warning,
       "a partition's master is ready, or in prepare with no copy running or copying for over --prepare-seconds: "
       "the partition does not serve (critical when no partition has an active master)"},
      {"master_building", Severity::ok, "a new partition's master is copying its data (prepare): not serving yet, not late"},
      {"slaves_balance_zero", Severity::warning, "every active slave of a partition has balance 0"},
      {"slave_same_host", Severity::warning, "a slave is on the same host as its master"},
      {"versions_differ", Severity::warning, "the servers run different flare versions"},
      {"items_differ", Severity::warning, "a slave's item count differs from its master's by more than a bound with nothing queued"},
      {"keys_misplaced", Severity::warning, "a node holds keys of another partition (--keys)"},
      {"keys_unreadable", Severity::warning, "a node's keys could not be listed (--keys)"},
      {"layout_drift", Severity::warning, "the cluster differs from the layout given with --layout (apply would change it)"},
  };
  return codes;
}

namespace detail {
// The start of the error of a node whose `stats` answered with a figure that is not a count
// (collect_check; check_node_findings says so instead of "does not answer").
constexpr const char* kStatsNotACount = "its stats give ";
} // namespace detail

inline CheckData collect_check(const Endpoint& index, int timeout_ms, const DumpOptions* keys,
                               const TraceFn& trace, const CancelFn& cancel) {
  CheckData d;
  d.index_name = index.display();
  IndexClient ic(index, timeout_ms);
  ic.set_trace(trace);
  ic.set_cancel(cancel);
  std::optional<Partitioning> part;
  try {
    ic.require_index();
    d.cluster = Cluster(ic.stats_nodes());
    NodeStats st = ic.stats();
    d.index_map_version = st.number("node_map_version").value_or(-1);
    d.index_version = st.get("version");
    if (keys) part = partitioning_from_meta(ic.meta());
  } catch (const NotAnIndexError& e) {
    d.index_is_node = true;
    d.index_error = e.what();
    return d;
  } catch (const NetworkError& e) {
    d.index_error = e.what();
    return d;
  }
  std::vector<std::pair<Endpoint, std::string>> asks;
  const auto& nodes = d.cluster.nodes();
  for (const auto& n : nodes) asks.emplace_back(n.endpoint(), "stats");
  for (const auto& n : nodes)
    if (n.is_master() && n.state != "down") asks.emplace_back(n.endpoint(), "stats threads slave");
  const size_t lag_end = asks.size();
  for (const auto& n : nodes)
    if (n.is_master() && n.state == "prepare") asks.emplace_back(n.endpoint(), "stats threads");
  auto replies = gather_replies(asks, timeout_ms, GatherHooks{cancel, trace});
  d.stats.resize(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    StatsResult& r = d.stats[i];
    r.endpoint = replies[i].endpoint;
    r.fetched_at = Clock::now();
    r.ok = replies[i].ok;
    r.error = replies[i].error;
    if (!r.ok) continue;
    try {
      r.stats = parse_stats(replies[i].lines);
      // The counts the findings are made of: one that is not a count would read as none (no
      // items, no map), and hide a finding. flared gives whole numbers from 0 (node_stats.txt).
      for (const char* field : {"curr_items", "node_map_version"})
        if (const std::string* v = r.stats.find(field); v && !(to_int(*v) && *to_int(*v) >= 0))
          throw ProtocolError(detail::kStatsNotACount + std::string(field) + " '" + detail::printable(*v) + "', not a count");
    } catch (const Error& e) {
      r.ok = false;
      r.error = e.what();
    }
  }
  // A node that seems ahead of the index: the index is asked again (as settle_map_versions does).
  if (!map_versions(d.index_map_version, d.stats).newer().empty()) {
    try {
      d.index_map_version_now = ic.stats().number("node_map_version").value_or(-1);
    } catch (const Error&) {
    }
  }
  const detail::SlaveNamer namer(nodes); // once: 2,000 nodes x 1,000 masters would be 2M inserts
  for (size_t i = nodes.size(); i < lag_end; ++i) {
    const std::string key = replies[i].endpoint.key();
    if (!replies[i].ok) {
      d.lag_errors[key] = replies[i].error;
      continue;
    }
    try {
      d.lags[key] = detail::slave_lags(parse_stats_threads(replies[i].lines), namer);
    } catch (const Error& e) {
      d.lag_errors[key] = e.what();
    }
  }
  for (size_t i = lag_end; i < replies.size(); ++i) {
    if (!replies[i].ok) continue; // not known: the finding says prepare, without a figure
    try {
      std::vector<CheckData::CopyThread> threads;
      for (const auto& t : parse_stats_threads(replies[i].lines))
        if (t.op == "dump" && d.cluster.find(t.peer)) threads.push_back({t.peer, std::max(0LL, to_int(t.uptime).value_or(0))});
      d.copies[replies[i].endpoint.key()] = std::move(threads);
    } catch (const Error&) {
    }
  }
  // A copy that ended between `stats nodes` and the gather leaves no thread behind: the index is
  // asked again, and a master that has moved on (ready) is shown as it is now, not as stuck.
  if (std::any_of(d.copies.begin(), d.copies.end(), [](const auto& kv) { return kv.second.empty(); })) {
    try {
      Cluster now(ic.stats_nodes());
      std::vector<NodeInfo> updated = d.cluster.nodes();
      for (auto& n : updated) {
        auto it = d.copies.find(n.key);
        const NodeInfo* m = now.find(n.key);
        if (it == d.copies.end() || !it->second.empty() || !m || m->state == "prepare") continue;
        n = *m;
        d.copies.erase(it);
      }
      d.cluster = Cluster(std::move(updated));
    } catch (const NetworkError&) {
    }
  }
  if (keys) {
    int count = serving_partition_count(d.cluster) > 0 ? routing_partition_count(d.cluster) : 0;
    if (count > 0) {
      // Nodes that did not answer `stats` are findings already: not asked again (a wedged node
      // costs one timeout in all).
      std::vector<NodeInfo> answering;
      for (size_t i = 0; i < nodes.size(); ++i)
        if (d.stats[i].ok) answering.push_back(nodes[i]);
      d.placement = check_key_placement(Cluster(answering), *part, count, *keys, true);
      d.keys_checked = true;
    }
  }
  return d;
}

namespace detail {

inline std::string plural(long long n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Whether node `n` (an entry of d.cluster.nodes(), whose order d.stats follows) answered its
// `stats` in this check; a node not asked counts as answering.
inline bool answered(const CheckData& d, const NodeInfo& n) {
  const auto& nodes = d.cluster.nodes();
  if (nodes.empty() || &n < nodes.data() || &n >= nodes.data() + nodes.size()) return true;
  const auto i = static_cast<size_t>(&n - nodes.data());
  return i >= d.stats.size() || d.stats[i].ok;
}

// The active slaves of partition p (in the index's map) whose flared answered.
inline size_t answering_active_slaves(const CheckData& d, int p) {
  size_t n = 0;
  for (const NodeInfo* s : d.cluster.slaves_of(p))
    if (s->state == "active" && answered(d, *s)) ++n;
  return n;
}

// An active master whose partition has no active slave that answers: nothing to fail over to
// (or only to a slave that is as silent), so when it does not answer, the partition's data is
// offline (a real flare 1.3.4's flarei keeps such a master as master, down, once its monitor
// notices: tests/data/transcripts/index_master_down_no_slave.txt).
inline bool only_copy(const CheckData& d, const NodeInfo& n) {
  return n.is_master() && n.state == "active" && d.cluster.master_of(n.partition) == &n &&
         answering_active_slaves(d, n.partition) == 0;
}

inline void check_node_findings(const CheckData& d, std::vector<Finding>& out) {
  const auto& nodes = d.cluster.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeInfo& n = nodes[i];
    const StatsResult* r = i < d.stats.size() ? &d.stats[i] : nullptr;
    if (n.state == "down") {
      // A preserved master (the partition's only copy) is the partition's finding, not this one.
      if (n.is_master() && d.cluster.master_of(n.partition) == &n) continue;
      Finding f;
      f.code = "node_down";
      f.node = n.key;
      f.partition = n.partition;
      f.message = n.key + " is down";
      const bool answers = r && r->ok;
      f.figure = n.role + " down" + (n.partition >= 0 ? " in partition " + std::to_string(n.partition) : "") +
                 (answers ? "; its flared answers: the index brings it back as a proxy" : "");
      f.fix = answers ? "no restart needed: once the index lists it as a proxy (its monitor's next pings), give it a role "
                        "again (flare-admin slave " + n.key + ":1:" + (n.partition >= 0 ? std::to_string(n.partition) : std::string("PARTITION")) +
                        "; it copies its data anew), or stop it and flare-admin remove " + n.key
              : n.is_master() ? "its partition failed over: flare-admin remove " + n.key +
                                  ", or restart flared there and make it a slave (flare-admin slave " + n.key + ":1:" +
                                  std::to_string(n.partition) + ")"
                            : "restart flared on " + n.key + " and give it a role again (flare-admin slave " + n.key +
                                  ":1:PARTITION), or flare-admin remove " + n.key;
      out.push_back(std::move(f));
    } else if (r && !r->ok) {
      // A master that is its partition's only copy: the partition's finding (master_down_no_slave).
      if (only_copy(d, n)) continue;
      Finding f;
      f.code = "node_unreachable";
      f.node = n.key;
      f.partition = n.partition;
      const bool garbled = r->error.rfind(kStatsNotACount, 0) == 0;
      f.message = n.key + " (" + n.role + " " + n.state + ")" +
                  (garbled ? " answers stats that cannot be read" : " does not answer");
      f.figure = r->error;
      f.fix = "see whether flared runs on " + n.key + " (flare-admin ping " + n.key +
              "); the index marks it down after its monitor threshold";
      out.push_back(std::move(f));
    }
  }
}

inline void check_partition_findings(const CheckData& d, const CheckThresholds& t, std::vector<Finding>& out) {
  const Cluster& c = d.cluster;
  if (c.partition_count() == 0) {
    // Nothing serves: a client's set answers SERVER_ERROR no partition available (flare-protocol.md).
    Finding f;
    f.severity = Severity::critical;
    f.code = "no_partition";
    f.message = "the cluster has no partition: it serves no data";
    const auto n = static_cast<long long>(c.nodes().size());
    f.figure = n == 0 ? "no node registered with the index" : plural(n, "node", "nodes") + ", no master";
    // Proxies holding items: nodes restarted after the index lost its map register as proxies
    // with their data on disk (seen on a real flare 1.3.4); `master` of one would flush it.
    std::string holding;
    for (size_t i = 0; i < c.nodes().size() && i < d.stats.size(); ++i)
      if (d.stats[i].ok)
        if (auto items = d.stats[i].stats.number("curr_items"); items && *items > 0)
          holding += (holding.empty() ? "" : ", ") + c.nodes()[i].key + " " + plural(*items, "item", "items");
    if (!holding.empty()) {
      f.message += "; proxies hold items (" + holding + "): the index has likely lost its map";
    }
    // A new cluster looks like this, and so does an index that lost its flare.xml (restarted on
    // an empty data dir: version 0, no node listed, while the nodes still serve by their own map,
    // seen on a real flare 1.3.4). The advice never flushes a node that may hold the data.
    const std::string lost = "if this cluster held data, the index may have lost its map: rebuild no node; write flare.xml "
                             "from a node's own map (flare-admin index --from-node HOST:PORT -o flare.xml) and restart flarei "
                             "with it. A new cluster: ";
    f.fix = lost + (n == 0 ? "start flared with the index as its index-servers, then flare-admin master HOST:PORT:1:0"
                           : "flare-admin master HOST:PORT:1:0 with one of its proxy nodes (refused while it holds items)");
    out.push_back(std::move(f));
    return;
  }
  std::map<std::string, const StatsResult*> by_key;
  for (const auto& r : d.stats) by_key[r.endpoint.key()] = &r;
  for (int p = 0; p < c.partition_count(); ++p) {
    const std::string part = "partition " + std::to_string(p);
    auto masters = c.masters_of(p);
    auto slaves = c.slaves_of(p);
    const NodeInfo* master = nullptr;
    for (auto* m : masters)
      if (m->state == "active") master = m;
    if (!master) {
      const NodeInfo* building = nullptr;
      for (auto* m : masters)
        if (m->state == "prepare" || m->state == "ready") building = m;
      Finding f;
      f.partition = p;
      if (building) {
        // A master in prepare copies every older partition's share of the keys at once (its
        // flared's reconstruction threads, one per source); it is late past --prepare-seconds,
        // and not copying with no thread, or with one whose source is no longer an active master
        // (a source SIGSTOPped and failed over leaves its thread blocked; seen on a real flare
        // 1.3.4). A ready one waits for the operator's activate.
        auto copy = d.copies.find(building->key);
        long long seconds = 0;
        std::string blocked;
        if (copy != d.copies.end())
          for (const auto& th : copy->second) {
            seconds = std::max(seconds, th.seconds);
            const NodeInfo* src = c.find(th.source);
            if (blocked.empty() && !(src && src->is_master() && src->is_active()))
              blocked = th.source + (src ? " (now " + src->role + " " + src->state + ")" : "");
          }
        const std::string again = "restart the flared of " + building->key + ", then flare-admin master " +
                                  building->key + ":" + std::to_string(building->balance) + ":" + std::to_string(p) +
                                  " --activate";
        f.code = "master_not_serving";
        f.node = building->key;
        f.message = part + "'s master " + building->key + " is " + building->state + ": the partition does not serve yet";
        f.figure = "master " + building->state;
        if (building->state == "ready") {
          f.fix = "flare-admin activate " + building->key;
        } else if (copy == d.copies.end()) {
          f.fix = "wait for its copy (flare-admin stats " + building->key + " shows its items grow); if it stopped, " +
                  again;
        } else if (copy->second.empty()) {
          f.message = part + "'s master " + building->key + " is in prepare with no copy running: the partition does not serve";
          f.figure = "master prepare, no reconstruction thread";
          f.fix = again;
        } else if (!blocked.empty()) {
          f.message = part + "'s master " + building->key + " is copying from " + blocked +
                      ": its copy does not move, the partition does not serve";
          f.figure = "prepare for " + std::to_string(seconds) + " s";
          f.fix = "start the flared of " + blocked.substr(0, blocked.find(' ')) + " again (a stopped process: SIGCONT); if "
                  "the copy does not go on, " + again;
        } else if (seconds > t.prepare_seconds) {
          f.message = part + "'s master " + building->key + " has been copying for " + std::to_string(seconds) +
                      " s: the partition does not serve yet";
          f.figure = "prepare for " + std::to_string(seconds) + " s, over " + std::to_string(t.prepare_seconds) + " s";
          f.fix = "see that its items grow (flare-admin stats " + building->key + "; its flared's reconstruction-bwlimit slows it); if "
                  "it stopped, " + again;
        } else {
          f.severity = Severity::ok;
          f.code = "master_building";
          f.message = part + "'s master " + building->key + " is copying its data: the partition serves once it is active";
          f.figure = "prepare for " + std::to_string(seconds) + " s of " + std::to_string(t.prepare_seconds) + " s";
          f.fix = "";
        }
      } else if (!masters.empty() && slaves.empty()) {
        f.severity = Severity::critical;
        f.code = "master_down_no_slave";
        f.node = masters.front()->key;
        f.message = part + " is offline: its master " + f.node + " is down and it has no slave";
        f.figure = "master down, 0 slaves";
        f.fix = "start flared on " + f.node + " again (the index keeps it as " + part + "'s master)";
      } else {
        f.severity = Severity::critical;
        f.code = "no_active_master";
        f.message = part + " has no active master";
        std::string who;
        for (auto* m : masters) who += (who.empty() ? "" : ", ") + m->key + " " + m->state;
        f.figure = masters.empty() ? "no master" : "master " + who;
        if (!masters.empty()) f.node = masters.front()->key;
        f.fix = masters.empty() ? "flare-admin master HOST:PORT:1:" + std::to_string(p) + " with a proxy node"
                                : "start flared on " + masters.front()->key + " again, or flare-admin activate " +
                                      masters.front()->key;
      }
      // No partition has an active master: a new cluster's first master still in prepare or
      // ready is not a partition on its way while others serve, it is a cluster serving nothing.
      if (building && serving_partition_count(c) == 0) {
        f.severity = Severity::critical;
        f.code = "master_not_serving";
        f.message = part + "'s master " + building->key + " is " +
                    (building->state == "prepare" ? std::string("in prepare") : building->state) +
                    " and no partition has an active master: the cluster serves no data";
        if (f.fix.empty())
          f.fix = "wait for its copy to end (flare-admin list); if it stays in prepare, restart the flared of " +
                  building->key + ", then flare-admin master " + building->key + ":" + std::to_string(building->balance) +
                  ":" + std::to_string(p) + " --activate";
      }
      out.push_back(std::move(f));
      continue;
    }
    std::vector<const NodeInfo*> active;
    for (auto* s : slaves)
      if (s->state == "active") active.push_back(s);
    auto answer = by_key.find(master->key);
    if (answer != by_key.end() && !answer->second->ok && answering_active_slaves(d, p) == 0) {
      // The index still lists it active (its monitor has not noticed, or cannot see what we see),
      // and no slave to fail over to answers either: every copy of the partition is offline.
      Finding f;
      f.severity = Severity::critical;
      f.code = "master_down_no_slave";
      f.partition = p;
      f.node = master->key;
      std::string silent;
      for (auto* s : active) silent += " " + s->key;
      if (active.empty()) {
        f.message = part + " is offline: its master " + master->key + " does not answer and it has no active slave";
        f.figure = "master active in the index, " + answer->second->error + "; " +
                   (slaves.empty() ? std::string("0 slaves")
                                   : plural(static_cast<long long>(slaves.size()), "slave", "slaves") + ", none active");
        f.fix = "see whether flared runs on " + master->key + " (flare-admin ping " + master->key +
                "; a stopped process: SIGCONT) and start it again; the index keeps it as " + part + "'s master";
      } else {
        f.message = part + " is offline: its master " + master->key + " does not answer, nor do its active slaves";
        f.figure = "master active in the index, " + answer->second->error + "; " +
                   plural(static_cast<long long>(active.size()), "active slave", "active slaves") + ", none answers";
        f.fix = "see whether flared runs on " + master->key + " and" + silent + " (flare-admin ping " + master->key +
                silent + "; a stopped process: SIGCONT) and start them again";
      }
      out.push_back(std::move(f));
      continue;
    }
    if (active.empty()) {
      Finding f;
      f.code = "no_active_slave";
      f.partition = p;
      f.node = master->key;
      f.message = part + " has no active slave: no redundancy";
      std::string who;
      for (auto* s : slaves) who += (who.empty() ? "" : ", ") + s->key + " " + s->state;
      f.figure = slaves.empty() ? "0 slaves" : "slaves: " + who;
      f.fix = "flare-admin slave HOST:PORT:1:" + std::to_string(p) + " with a proxy node";
      out.push_back(std::move(f));
    } else if (std::all_of(active.begin(), active.end(), [](const NodeInfo* s) { return s->balance == 0; })) {
      Finding f;
      f.code = "slaves_balance_zero";
      f.partition = p;
      f.node = active.front()->key;
      f.message = "every slave of " + part + " has balance 0: the master serves every read";
      f.figure = plural(static_cast<long long>(active.size()), "active slave", "active slaves") + " at balance 0";
      f.fix = "flare-admin balance " + active.front()->key + ":1";
      out.push_back(std::move(f));
    }
    for (auto* s : slaves) {
      if (s->state == "down" || s->host != master->host) continue;
      Finding f;
      f.code = "slave_same_host";
      f.partition = p;
      f.node = s->key;
      f.message = "slave " + s->key + " is on its master's host: one machine failing loses " + part;
      f.figure = "master " + master->key;
      f.fix = "flare-admin slave OTHERHOST:PORT:1:" + std::to_string(p) + ", then flare-admin down " + s->key +
              " and flare-admin remove " + s->key;
      out.push_back(std::move(f));
    }
  }
}

inline void check_lag_findings(const CheckData& d, const CheckThresholds& t, std::vector<Finding>& out) {
  std::map<std::string, const StatsResult*> by_key;
  for (const auto& r : d.stats) by_key[r.endpoint.key()] = &r;
  auto items_of = [&](const std::string& key) -> std::optional<long long> {
    auto it = by_key.find(key);
    if (it == by_key.end() || !it->second->ok) return std::nullopt;
    return it->second->stats.number("curr_items");
  };
  for (const auto& n : d.cluster.stats_order()) {
    if (!n.is_master() || n.state == "down") continue;
    auto err = d.lag_errors.find(n.key);
    auto st = by_key.find(n.key);
    if (err != d.lag_errors.end() && st != by_key.end() && st->second->ok && !d.cluster.slaves_of(n.partition).empty()) {
      Finding f;
      f.code = "lag_unknown";
      f.partition = n.partition;
      f.node = n.key;
      f.message = "master " + n.key + " did not tell its slaves' replication lag";
      f.figure = "stats threads slave: " + err->second;
      f.fix = "flare-admin threads " + n.key + " (servers older than flare 1.0.10 have no stats threads)";
      out.push_back(std::move(f));
    }
    auto lags = d.lags.find(n.key);
    if (lags == d.lags.end()) continue;
    for (const auto& l : lags->second) {
      const long long behind = l.behind, queue = l.pending();
      Severity s = Severity::ok;
      if (queue > t.lag_critical_items || behind > t.lag_critical_seconds) s = Severity::critical;
      else if (queue > t.lag_warning_items || behind > t.lag_warning_seconds) s = Severity::warning;
      if (s != Severity::ok) {
        Finding f;
        f.severity = s;
        f.code = "slave_lag";
        f.partition = n.partition;
        f.node = l.slave;
        f.message = "slave " + l.slave + " is " + std::to_string(queue) + " items, " + std::to_string(behind) +
                    " s behind its master " + n.key;
        f.figure = "queue " + std::to_string(queue) + " items, behind " + std::to_string(behind) + " s; warning above " +
                   std::to_string(t.lag_warning_items) + " items or " + std::to_string(t.lag_warning_seconds) +
                   " s, critical above " + std::to_string(t.lag_critical_items) + " items or " +
                   std::to_string(t.lag_critical_seconds) + " s";
        f.fix = "see why " + l.slave + " is slow (stopped, overloaded, its network); if it does not catch up: "
                "flare-admin reconstruct " + l.slave;
        out.push_back(std::move(f));
        continue;
      }
      const NodeInfo* slave = d.cluster.find(l.slave);
      if (queue != 0 || !slave || !slave->is_slave() || slave->state != "active") continue;
      auto mi = items_of(n.key), si = items_of(l.slave);
      if (!mi || !si) continue;
      long long diff = *mi > *si ? *mi - *si : *si - *mi;
      if (diff <= t.items_difference) continue;
      Finding f;
      f.code = "items_differ";
      f.partition = n.partition;
      f.node = l.slave;
      f.message = "slave " + l.slave + " holds " + std::to_string(*si) + " items, its master " + n.key + " " +
                  std::to_string(*mi) + ", with nothing queued";
      f.figure = "difference " + std::to_string(diff) + " items (bound " + std::to_string(t.items_difference) +
                 "; stale copies left on a master after a new partition count too)";
      f.fix = "flare-admin reconstruct " + l.slave;
      out.push_back(std::move(f));
    }
  }
}

inline void check_map_findings(const CheckData& d, std::vector<Finding>& out) {
  // Ahead of the index: of its version read after the nodes' (if it was), since a change made
  // while check asked bumps it; behind it: of its version read before (settle_map_versions).
  MapVersions v = map_versions(std::max(d.index_map_version, d.index_map_version_now), d.stats);
  if (!v.newer().empty()) {
    Finding f;
    f.severity = Severity::critical;
    f.code = "map_newer_than_index";
    f.node = v.highest_node();
    f.message = "nodes hold a newer node map than the index: they ignore its changes";
    f.figure = "index node_map_version " + std::to_string(v.index) + ", " + v.highest_node() + " holds " +
               std::to_string(v.highest()) +
               (v.newer().size() > 1 ? " (" + plural(static_cast<long long>(v.newer().size()), "node holds", "nodes hold") +
                                           " a newer map than the index)"
                                     : "");
    // The map the nodes hold, not the index's older one (flare-admin index writes theirs then).
    f.fix = "flare-admin index --increment 1 -o flare.xml (the nodes' map, one version above theirs), stop flarei, put "
            "that file in its data dir, start flarei";
    out.push_back(std::move(f));
  }
  v.index = d.index_map_version;
  if (v.index < 0) return;
  for (const auto& n : v.nodes) {
    if (n.second >= v.index) continue;
    Finding f;
    f.code = "map_differs";
    f.node = n.first;
    if (const NodeInfo* ni = d.cluster.find(n.first)) f.partition = ni->partition;
    f.message = n.first + " holds an older node map than the index";
    f.figure = "node_map_version " + std::to_string(n.second) + ", index " + std::to_string(v.index);
    f.fix = "the index's next change sends its map to every node (a flarei restarted from a flare.xml sends none "
            "until then): e.g. flare-admin balance of a node to another value and back; or restart flared on " + n.first;
    out.push_back(std::move(f));
  }
}

inline void check_layout_findings(const CheckData& d, std::vector<Finding>& out) {
  if (!d.layout) return;
  auto diff = layout_differences(d.cluster, *d.layout);
  LayoutPlan plan = plan_layout(d.cluster, *d.layout);
  if (diff.empty() && plan.refusals.empty()) return;
  Finding f;
  f.code = "layout_drift";
  if (diff.empty()) { // nothing differs, but the layout cannot be applied as it stands
    f.message = "apply refuses the layout " + d.layout_name;
    f.figure = plan.refusals.front();
    f.fix = "correct the layout";
    out.push_back(std::move(f));
    return;
  }
  f.message = "the cluster differs from the layout " + d.layout_name + " on " + std::to_string(diff.size()) +
              (diff.size() == 1 ? " node" : " nodes");
  f.figure = diff.front() + (diff.size() > 1 ? " (and " + std::to_string(diff.size() - 1) + " more)" : "");
  f.fix = plan.refusals.empty() ? "flare-admin apply --diff " + d.layout_name + " lists them; flare-admin apply -n " + d.layout_name +
                                      " shows the plan that converges"
                                : "apply refuses that layout (" + plan.refusals.front() + "): change the layout or the cluster";
  out.push_back(std::move(f));
}

inline void check_version_findings(const CheckData& d, std::vector<Finding>& out) {
  std::map<std::string, std::vector<std::string>> by_version;
  if (!d.index_version.empty()) by_version[d.index_version].push_back(d.index_name + " (index)");
  for (const auto& r : d.stats)
    if (r.ok && r.stats.find("version")) by_version[r.stats.get("version")].push_back(r.endpoint.key());
  if (by_version.size() < 2) return;
  // The most common version is the cluster's; the others are named.
  auto common = by_version.begin();
  for (auto it = by_version.begin(); it != by_version.end(); ++it)
    if (it->second.size() > common->second.size()) common = it;
  Finding f;
  f.code = "versions_differ";
  f.message = "the servers run " + std::to_string(by_version.size()) + " flare versions";
  for (auto it = by_version.begin(); it != by_version.end(); ++it) {
    if (!f.figure.empty()) f.figure += "; ";
    f.figure += detail::printable(it->first, 40) + " on " + plural(static_cast<long long>(it->second.size()), "server", "servers");
    if (it != common) {
      f.figure += " (" + it->second.front() + (it->second.size() > 1 ? ", ..." : "") + ")";
      if (f.node.empty()) f.node = it->second.front();
    }
  }
  f.fix = "upgrade every server to one flare version (" + detail::printable(common->first, 40) + " runs on most)";
  out.push_back(std::move(f));
}

inline void check_key_findings(const CheckData& d, std::vector<Finding>& out) {
  for (const auto& k : d.placement) {
    if (k.skipped) continue;
    if (k.unframed > 0 || k.framing_error) {
      Finding f;
      f.severity = Severity::critical;
      f.code = "keys_unframed";
      f.partition = k.node.partition;
      f.node = k.node.key;
      f.message = "the key listing of " + k.node.key + " cannot be framed: a key holds CR LF";
      f.figure = k.framing_error ? k.error : plural(static_cast<long long>(k.unframed), "key", "keys") + " holding CR LF";
      f.fix = "flare-admin dumpkey --skip-unframed " + k.node.key +
              " names them; delete them through the binary protocol (the text protocol cannot)";
      out.push_back(std::move(f));
    } else if (!k.error.empty()) {
      Finding f;
      f.code = "keys_unreadable";
      f.partition = k.node.partition;
      f.node = k.node.key;
      f.message = "the keys of " + k.node.key + " could not be listed";
      f.figure = k.error;
      f.fix = "flare-admin dumpkey " + k.node.key + " (a dump or a construction running makes it busy)";
      out.push_back(std::move(f));
    }
    if (k.only_here + k.unchecked > 0) {
      // Stale copies alone (the partition's master holds the key too) are normal once a partition
      // was added, and never read: no finding. A key only here is lost to readers, and rebuilding
      // this node would delete its only copy.
      Finding f;
      f.code = "keys_misplaced";
      f.partition = k.node.partition;
      f.node = k.node.key;
      f.message = k.node.key + " holds keys of another partition that its master does not hold" +
                  (k.unchecked ? " (or that could not be looked up)" : "") +
                  ": deleted or expired there since the partition was added, or lost with that master's data";
      f.figure = std::to_string(k.only_here) + " only here, " + std::to_string(k.unchecked) + " not looked up, " +
                 std::to_string(k.stale) + " stale copies, of " + std::to_string(k.keys) + " keys" +
                 (k.examples.empty() ? "" : ", e.g. " + k.examples.front());
      f.fix = "flare-admin verify names them; if that master lost its data, do not rebuild or flush " + k.node.key +
              " (it holds their only copy) and copy them back as verify says";
      out.push_back(std::move(f));
    }
  }
}

} // namespace detail

inline std::vector<LagResult> lag_results(const CheckData& d) {
  std::vector<LagResult> out;
  for (const auto& n : d.cluster.nodes()) {
    auto ok = d.lags.find(n.key);
    auto bad = d.lag_errors.find(n.key);
    if (ok == d.lags.end() && bad == d.lag_errors.end()) continue;
    LagResult l;
    l.master = n.endpoint();
    l.ok = ok != d.lags.end();
    if (l.ok) l.slaves = ok->second;
    else l.error = bad->second;
    out.push_back(std::move(l));
  }
  return out;
}

inline CheckReport evaluate_check(const CheckData& d, const CheckThresholds& t) {
  CheckReport r;
  r.thresholds = t;
  std::vector<Finding> all;
  if (!d.index_error.empty()) {
    Finding f;
    f.severity = Severity::critical;
    f.code = d.index_is_node ? "index_is_node" : "index_down";
    f.node = d.index_name;
    f.message = d.index_is_node ? d.index_name + " is a data node, not the index server"
                                : "the index server " + d.index_name + " does not answer: nothing can fail over";
    // A flared answers ERROR to `meta`: the message says so; the figure need not repeat it.
    f.figure = d.index_is_node ? "it answers ERROR to `meta`, as a flared does" : d.index_error;
    // Connected but no answer in time (a stopped or hung flarei) is not a flarei that is not running.
    const bool hung = d.index_error.rfind("timed out", 0) == 0;
    f.fix = d.index_is_node ? "give flarei's address with -i/--index-server"
            : hung ? "flarei on " + d.index_name + " accepts connections but does not answer in time: see whether it is "
                     "stopped (SIGCONT) or hung (restart it; its data dir holds the map, flare.xml)"
                   : "start flarei on " + d.index_name + " (its data dir holds the map, flare.xml)";
    all.push_back(std::move(f));
  } else {
    detail::check_node_findings(d, all);
    detail::check_partition_findings(d, t, all);
    detail::check_lag_findings(d, t, all);
    detail::check_map_findings(d, all);
    detail::check_version_findings(d, all);
    detail::check_key_findings(d, all);
    detail::check_layout_findings(d, all);
  }
  // A fix names the index it was found on (-i), as every piece of advice does: followed as
  // printed, it must not go to the default index (seen on a real cluster: `slave HOST:PORT:1:0`).
  std::optional<Endpoint> index;
  try {
    if (!d.index_name.empty()) index = parse_host_port(d.index_name, FLARE_TOOLS_DEFAULT_INDEX_PORT);
  } catch (const Error&) {
  }
  for (auto& f : all) {
    if (index) f.fix = with_index_option(f.fix, *index);
    if (!t.ignore.count(f.code)) r.findings.push_back(std::move(f));
    else r.ignored.insert(f.code);
  }
  // Worst first (an OK finding, such as master_building, after every warning), then cluster order.
  std::stable_sort(r.findings.begin(), r.findings.end(), [](const Finding& a, const Finding& b) {
    return static_cast<int>(a.severity) > static_cast<int>(b.severity);
  });
  for (const auto& f : r.findings) r.status = worse(r.status, f.severity);
  // The index not read and its finding left out: nothing was looked at, which is not OK.
  if (!d.index_error.empty() && r.findings.empty()) r.status = Severity::unknown;
  r.figures_known = d.index_error.empty();
  r.nodes = static_cast<int>(d.cluster.nodes().size());
  r.partitions = d.cluster.partition_count();
  for (const auto& [master, lags] : d.lags)
    for (const auto& l : lags) {
      r.max_lag_items = std::max(r.max_lag_items, l.pending());
      r.max_lag_seconds = std::max(r.max_lag_seconds, l.behind);
    }
  const auto& nodes = d.cluster.nodes();
  for (size_t i = 0; i < nodes.size() && i < d.stats.size(); ++i)
    if (nodes[i].is_master() && nodes[i].is_active() && d.stats[i].ok)
      if (__builtin_add_overflow(r.items, d.stats[i].stats.number("curr_items").value_or(0), &r.items)) r.items = LLONG_MAX;
  if (d.keys_checked) {
    r.keys = 0;
    for (const auto& k : d.placement)
      if (!k.skipped) r.keys = k.keys > static_cast<unsigned long long>(LLONG_MAX - r.keys) ? LLONG_MAX : r.keys + static_cast<long long>(k.keys);
  }
  return r;
}

// "FLARE CRITICAL - partition 3 has no active master; 1 more critical; 2 warnings", or
// "FLARE OK - 4 nodes, 2 partitions, every partition has an active master and slave".
inline std::string CheckReport::summary() const {
  std::string out = std::string("FLARE ") + to_string(status) + " - ";
  long long criticals = 0, warnings = 0;
  for (const auto& f : findings) {
    if (f.severity == Severity::critical) ++criticals;
    else if (f.severity == Severity::warning) ++warnings;
  }
  // The claim below is not made when a finding that denies it was left out (--ignore).
  static const char* const denying[] = {"no_active_master", "no_partition", "master_down_no_slave", "no_active_slave",
                                        "master_not_serving", "master_building", "index_down", "index_is_node"};
  if (status == Severity::unknown && findings.empty())
    for (const char* code : {"index_down", "index_is_node"})
      if (ignored.count(code))
        return out + "the index server was not read and --ignore left out why (" + code + "): nothing was checked";
  for (const char* code : denying)
    if (findings.empty() && ignored.count(code))
      return out + detail::plural(nodes, "node", "nodes") + ", " + detail::plural(partitions, "partition", "partitions") +
             ", nothing found but what --ignore left out (" + code + ")";
  if (findings.empty())
    return out + detail::plural(nodes, "node", "nodes") + ", " + detail::plural(partitions, "partition", "partitions") +
           ", every partition has an active master and slave" +
           (keys >= 0 ? ", " + detail::plural(keys, "key", "keys") + " listed, each in its partition" : "");
  out += findings.front().message;
  if (criticals > 1) out += "; " + std::to_string(criticals - 1) + " more critical";
  long long more_warnings = warnings - (status == Severity::warning ? 1 : 0);
  if (more_warnings > 0)
    out += "; " + std::to_string(more_warnings) + (status == Severity::warning ? " more" : "") +
           (more_warnings == 1 ? " warning" : " warnings");
  return out;
}

// The plugins' performance data: 'label'=value[unit];warn;crit;min;max, space separated.
// A figure that could not be read (the index was not) is U, as the plugins' guidelines say: a
// graph then shows a gap, not a cluster of 0 nodes.
inline std::string CheckReport::perfdata() const {
  const CheckThresholds& t = thresholds;
  auto v = [&](long long x, const char* unit = "") { return figures_known ? std::to_string(x) + unit : std::string("U"); };
  return "nodes=" + v(nodes) + ";;;0 partitions=" + v(partitions) + ";;;0 lag_items=" + v(max_lag_items) + ";" +
         std::to_string(t.lag_warning_items) + ";" + std::to_string(t.lag_critical_items) + ";0 lag_seconds=" +
         v(max_lag_seconds, "s") + ";" + std::to_string(t.lag_warning_seconds) + ";" +
         std::to_string(t.lag_critical_seconds) + ";0 items=" + v(items) + ";;;0" +
         (keys >= 0 ? " keys=" + std::to_string(keys) + ";;;0" : "");
}

inline std::string format_check_text(const CheckReport& r) {
  std::string out = r.summary() + " | " + r.perfdata() + "\n";
  for (const auto& f : r.findings) {
    out += std::string(to_string(f.severity)) + " " + f.code;
    if (f.partition >= 0) out += " partition " + std::to_string(f.partition);
    if (!f.node.empty()) out += " " + f.node;
    out += ": " + f.message;
    if (!f.figure.empty()) out += " (" + f.figure + ")";
    if (!f.fix.empty()) out += "; fix: " + f.fix;
    out += "\n";
  }
  return out;
}

inline std::string format_check_unknown(const std::string& why, bool json) {
  std::string summary = "FLARE UNKNOWN - " + detail::printable(why, 300);
  if (!json) return summary + "\n";
  return "{\"status\":\"UNKNOWN\",\"exit\":3,\"summary\":" + detail::json_escape(summary) +
         ",\"perfdata\":null,\"findings\":[]}\n";
}

inline std::string format_check_json(const CheckReport& r) {
  using detail::json_escape;
  auto known = [&](long long x) { return r.figures_known ? std::to_string(x) : std::string("null"); };
  std::string out = "{\"status\":" + json_escape(to_string(r.status)) + ",\"exit\":" +
                    std::to_string(static_cast<int>(r.status)) + ",\"summary\":" + json_escape(r.summary()) +
                    ",\"perfdata\":{\"nodes\":" + known(r.nodes) + ",\"partitions\":" + known(r.partitions) +
                    ",\"lag_items\":" + known(r.max_lag_items) + ",\"lag_seconds\":" + known(r.max_lag_seconds) +
                    ",\"items\":" + known(r.items) + ",\"keys\":" + (r.keys >= 0 ? std::to_string(r.keys) : "null") + "},\"findings\":[";
  for (size_t i = 0; i < r.findings.size(); ++i) {
    const Finding& f = r.findings[i];
    std::string sev = to_string(f.severity);
    std::transform(sev.begin(), sev.end(), sev.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out += std::string(i ? "," : "") + "{\"severity\":" + json_escape(sev) + ",\"code\":" + json_escape(f.code) +
           ",\"partition\":" + (f.partition >= 0 ? std::to_string(f.partition) : "null") +
           ",\"node\":" + (f.node.empty() ? "null" : json_escape(f.node)) + ",\"message\":" + json_escape(f.message) +
           ",\"figure\":" + json_escape(f.figure) + ",\"fix\":" + json_escape(f.fix) + "}";
  }
  return out + "]}";
}

inline std::string format_prometheus_health(const CheckData& d) {
  using detail::prom_family;
  using detail::prom_label_value;
  std::string out;
  const std::string idx = "index=\"" + prom_label_value(d.index_name) + "\"";
  std::vector<std::string> s;
  if (d.index_map_version >= 0)
    s.push_back("flare_index_node_map_version{" + idx + "} " + std::to_string(d.index_map_version) + "\n");
  prom_family(out, "flare_index_node_map_version", "gauge", "Version of the node map the index server holds.", s);
  s.clear();
  const auto& nodes = d.cluster.nodes();
  for (size_t i = 0; i < nodes.size() && i < d.stats.size(); ++i) {
    if (!d.stats[i].ok || d.index_map_version < 0) continue;
    auto v = d.stats[i].stats.number("node_map_version");
    if (!v) continue;
    s.push_back("flare_node_map_version_delta{" + idx + ",node=\"" + prom_label_value(nodes[i].key) + "\"} " +
                std::to_string(*v - d.index_map_version) + "\n");
  }
  prom_family(out, "flare_node_map_version_delta", "gauge",
              "The node's node_map_version less the index's (above 0: the node ignores the index's changes).", s);
  s.clear();
  std::map<std::string, const StatsResult*> by_key;
  for (const auto& r : d.stats) by_key[r.endpoint.key()] = &r;
  std::vector<std::string> balance, same_host, master_up, slaves_up;
  for (int p = 0; p < d.cluster.partition_count(); ++p) {
    const std::string pl = idx + ",partition=\"" + std::to_string(p) + "\"";
    std::map<std::pair<std::string, std::string>, long long> count;
    for (const char* r : {"master", "slave"})
      for (const char* st : {"active", "prepare", "down", "ready"}) count[{r, st}] = 0;
    const NodeInfo* master = nullptr;
    for (const auto& n : nodes)
      if (n.partition == p && (n.is_master() || n.is_slave())) {
        ++count[{n.role, n.state}];
        if (n.is_master() && n.state != "down") master = &n;
      }
    for (const auto& [k, v] : count)
      s.push_back("flare_partition_nodes{" + pl + ",role=\"" + prom_label_value(k.first) + "\",state=\"" +
                  prom_label_value(k.second) + "\"} " + std::to_string(v) + "\n");
    long long bal = 0, near = 0;
    for (const auto& n : nodes) {
      if (n.partition != p || !n.is_slave()) continue;
      if (n.state == "active") bal += n.balance;
      if (master && n.state != "down" && n.host == master->host) ++near;
    }
    balance.push_back("flare_partition_active_slave_balance{" + pl + "} " + std::to_string(bal) + "\n");
    slaves_up.push_back("flare_partition_active_slaves_up{" + pl + "} " +
                        std::to_string(detail::answering_active_slaves(d, p)) + "\n");
    if (const NodeInfo* m = d.cluster.master_of(p); m && m->state == "active") {
      auto st = by_key.find(m->key);
      master_up.push_back("flare_partition_master_up{" + pl + ",node=\"" + prom_label_value(m->key) + "\"} " +
                          (st != by_key.end() && st->second->ok ? "1" : "0") + "\n");
    }
    same_host.push_back("flare_partition_slaves_on_master_host{" + pl + "} " + std::to_string(near) + "\n");
  }
  prom_family(out, "flare_partition_nodes", "gauge", "Masters and slaves of each partition by role and state.", s);
  prom_family(out, "flare_partition_active_slave_balance", "gauge", "Sum of the balances of the partition's active slaves.",
              balance);
  prom_family(out, "flare_partition_slaves_on_master_host", "gauge",
              "Slaves of the partition on the same host as its master.", same_host);
  prom_family(out, "flare_partition_master_up", "gauge",
              "1 when the partition's active master answered stats, 0 when it did not (no sample: no active master).",
              master_up);
  prom_family(out, "flare_partition_active_slaves_up", "gauge",
              "Active slaves of the partition (in the index's map) that answered stats.", slaves_up);
  auto items_of = [&](const std::string& key) -> std::optional<long long> {
    auto it = by_key.find(key);
    if (it == by_key.end() || !it->second->ok) return std::nullopt;
    return it->second->stats.number("curr_items");
  };
  std::vector<std::string> queue, behind, diff;
  for (const auto& n : d.cluster.stats_order()) {
    auto it = d.lags.find(n.key);
    if (it == d.lags.end()) continue;
    for (const auto& l : it->second) {
      const std::string ll = idx + ",partition=\"" + std::to_string(n.partition) + "\",master=\"" +
                             prom_label_value(n.key) + "\",slave=\"" + prom_label_value(l.slave) + "\"";
      queue.push_back("flare_slave_queue_items{" + ll + "} " + std::to_string(l.pending()) + "\n");
      behind.push_back("flare_slave_behind_seconds{" + ll + "} " + std::to_string(l.behind) + "\n");
      auto mi = items_of(n.key), si = items_of(l.slave);
      if (mi && si) diff.push_back("flare_slave_items_difference{" + ll + "} " + std::to_string(*mi > *si ? *mi - *si : *si - *mi) + "\n");
    }
  }
  prom_family(out, "flare_slave_queue_items", "gauge", "Writes the master holds for the slave (its stats threads slave).",
              queue);
  prom_family(out, "flare_slave_behind_seconds", "gauge", "Seconds since the oldest write the master holds for the slave.",
              behind);
  prom_family(out, "flare_slave_items_difference", "gauge", "Items the slave and its master hold, the difference.", diff);
  s.clear();
  for (const auto& n : d.cluster.stats_order()) {
    if (!n.is_master() || n.state == "down" || d.cluster.slaves_of(n.partition).empty()) continue;
    auto st = by_key.find(n.key);
    if (st == by_key.end() || !st->second->ok) continue; // flare_up 0 tells
    s.push_back("flare_slave_lag_known{" + idx + ",master=\"" + prom_label_value(n.key) + "\"} " +
                (d.lags.count(n.key) ? "1" : "0") + "\n");
  }
  prom_family(out, "flare_slave_lag_known", "gauge",
              "1 when the master (with slaves) answered stats threads slave, 0 when its slaves' lag is unknown.", s);
  s.clear();
  if (!d.index_version.empty())
    s.push_back("flare_version_info{" + idx + ",node=\"" + prom_label_value(d.index_name) + "\",version=\"" +
                prom_label_value(d.index_version) + "\"} 1\n");
  for (size_t i = 0; i < nodes.size() && i < d.stats.size(); ++i)
    if (d.stats[i].ok && d.stats[i].stats.find("version"))
      s.push_back("flare_version_info{" + idx + ",node=\"" + prom_label_value(nodes[i].key) + "\",version=\"" +
                  prom_label_value(d.stats[i].stats.get("version")) + "\"} 1\n");
  prom_family(out, "flare_version_info", "gauge", "The flare version each server runs (the index too), as a label.", s);
  return out;
}

inline std::string format_index_xml(const Cluster& cluster, long long version) {
  auto role_code = [](const std::string& r) -> std::string {
    return r == "master" ? "0" : r == "slave" ? "1" : r == "proxy" ? "2" : "";
  };
  auto state_code = [](const std::string& s) -> std::string {
    return s == "active" ? "0" : s == "prepare" ? "1" : s == "down" ? "2" : s == "ready" ? "3" : "";
  };
  auto xml = [](const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '&') o += "&amp;";
      else if (c == '<') o += "&lt;";
      else if (c == '>') o += "&gt;";
      else o += c;
    }
    return o;
  };
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\" ?>\n"
                    "<!DOCTYPE boost_serialization>\n"
                    "<boost_serialization signature=\"serialization::archive\" version=\"4\">\n";
  out += "<version>" + std::to_string(version) + "</version>\n";
  out += "<node_map class_id=\"0\" tracking_level=\"0\" version=\"0\">\n";
  out += "\t<count>" + std::to_string(cluster.nodes().size()) + "</count>\n";
  out += "\t<item_version>0</item_version>\n";
  long long max_tt = -1; // thread_type comes from the server: INT_MAX + 1 must not overflow
  bool first = true;
  for (auto& n : cluster.nodes()) {
    max_tt = std::max(max_tt, static_cast<long long>(n.thread_type));
    out += first ? "\t<item class_id=\"1\" tracking_level=\"0\" version=\"0\">\n" : "\t<item>\n";
    out += "\t\t<first>" + xml(n.key) + "</first>\n";
    out += first ? "\t\t<second class_id=\"2\" tracking_level=\"0\" version=\"0\">\n" : "\t\t<second>\n";
    out += "\t\t\t<node_server_name>" + xml(n.host) + "</node_server_name>\n";
    out += "\t\t\t<node_server_port>" + std::to_string(n.port) + "</node_server_port>\n";
    out += "\t\t\t<node_role>" + role_code(n.role) + "</node_role>\n";
    out += "\t\t\t<node_state>" + state_code(n.state) + "</node_state>\n";
    out += "\t\t\t<node_partition>" + std::to_string(n.partition) + "</node_partition>\n";
    out += "\t\t\t<node_balance>" + std::to_string(n.balance) + "</node_balance>\n";
    out += "\t\t\t<node_thread_type>" + std::to_string(n.thread_type) + "</node_thread_type>\n";
    out += "\t\t</second>\n\t</item>\n";
    first = false;
  }
  out += "</node_map>\n";
  out += "<thread_type>" + std::to_string(cluster.nodes().empty() ? 0 : max_tt + 1) + "</thread_type>\n";
  out += "</boost_serialization>\n";
  return out;
}

// ---- 8d. Exporter: /metrics over HTTP (flare-exporter) -----------------------------------------

inline ScrapeResult prometheus_scrape(const Endpoint& index, int timeout_ms, const CancelFn& cancel) {
  ScrapeResult r;
  try {
    CheckData d = collect_check(index, timeout_ms, nullptr, nullptr, cancel);
    if (!d.index_error.empty()) {
      r.errors.push_back("index server " + index.display() + ": " + d.index_error);
      r.text = format_prometheus_index_down(index.display());
      return r;
    }
    for (const auto& s : d.stats)
      if (!s.ok) r.errors.push_back(s.endpoint.display() + ": " + s.error);
    r.text = format_prometheus(index.display(), d.cluster, d.stats) + format_prometheus_health(d);
    r.index_up = true;
  } catch (const Interrupted&) {
    throw;
  } catch (const Error& e) {
    r.errors.push_back("index server " + index.display() + ": " + e.what());
    r.text = format_prometheus_index_down(index.display());
  }
  return r;
}

inline std::map<std::string, Endpoint> index_servers(std::string_view servers) {
  std::map<std::string, Endpoint> out;
  for (auto entry : detail::split(servers, ';')) {
    entry = detail::trim(entry);
    if (entry.empty()) continue;
    auto f = detail::split(entry, ':');
    auto port = f.size() == 3 ? detail::parse_port(f[2]) : std::nullopt;
    if (f.size() != 3 || f[0].empty() || f[1].empty() || !port)
      throw Error("FLARE_INDEX_SERVERS: '" + detail::printable(entry) + "' is not NAME:HOST:PORT");
    out[std::string(f[0])] = Endpoint{std::string(f[1]), *port};
  }
  return out;
}

inline Exporter::Exporter(ExporterOptions o, ScrapeFn scrape)
    : opt_(std::move(o)), scrape_(std::move(scrape)) {
  // A gather under way when the exporter stops ends at once (Interrupted), not at its deadline.
  if (!scrape_)
    scrape_ = [t = opt_.timeout_ms, stopping = stopping_](const Endpoint& ep) {
      return prometheus_scrape(ep, t, [stopping] { return stopping->load(); });
    };
}

inline void Exporter::bind() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(opt_.listen.port);
  int rc = ::getaddrinfo(opt_.listen.host.empty() ? nullptr : opt_.listen.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || !res) throw Error("cannot listen on " + opt_.listen.display() + ": " + ::gai_strerror(rc));
  std::string why;
  for (addrinfo* a = res; a && listen_fd_ < 0; a = a->ai_next) {
    int fd = detail::new_socket(a->ai_family); // close-on-exec, non-blocking, no SIGPIPE
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      listen_fd_ = fd;
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
        bound_port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    } else {
      why = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(res);
  if (listen_fd_ < 0) throw Error("cannot listen on " + opt_.listen.display() + ": " + why);
  if (::pipe(wake_) != 0) throw Error(std::string("pipe: ") + std::strerror(errno));
  for (int fd : wake_) {
    detail::set_nonblocking(fd);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
}

inline void Exporter::serve(const CancelFn& stop, const std::function<void(const std::string&)>& log) {
  log_ = log;
  while (!(stop && stop())) {
    std::vector<pollfd> fds;
    fds.push_back({listen_fd_, static_cast<short>(clients_.size() < opt_.max_connections ? POLLIN : 0), 0});
    fds.push_back({wake_[0], POLLIN, 0});
    for (auto& c : clients_)
      fds.push_back({c.fd, static_cast<short>(c.phase == Client::writing ? POLLOUT
                                              : c.phase == Client::reading || c.phase == Client::draining ? POLLIN : 0), 0});
    int wait_ms = 200;
    const auto now = Clock::now();
    for (auto& c : clients_)
      wait_ms = std::max(0, std::min<int>(wait_ms, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now).count())));
    int n = detail::handle_EINTR([&] { return ::poll(fds.data(), fds.size(), wait_ms); });
    if (n < 0) throw Error(std::string("poll: ") + std::strerror(errno));
    if (fds[1].revents) drain_wake();
    if (fds[0].revents & POLLIN) accept_all();
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      auto it = std::find_if(clients_.begin(), clients_.end(), [&](const Client& c) { return c.fd == fds[i].fd; });
      if (it == clients_.end()) continue;
      if (it->phase == Client::reading) read_from(*it);
      else if (it->phase == Client::writing) write_to(*it);
      else if (it->phase == Client::draining) drain(*it);
    }
    finish_gathers();
    const auto later = Clock::now();
    for (auto& c : clients_)
      if (c.fd >= 0 && later >= c.deadline) { // a silent or slow client: dropped, not logged (a flood could fill the log)
        ::close(c.fd);
        c.fd = -1;
      }
    clients_.erase(std::remove_if(clients_.begin(), clients_.end(), [](const Client& c) { return c.fd < 0; }), clients_.end());
    parked_ = static_cast<size_t>(std::count_if(clients_.begin(), clients_.end(), [](const Client& c) { return c.phase == Client::waiting; }));
  }
  *stopping_ = true;
  shut();
}

inline void Exporter::accept_all() {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = detail::handle_EINTR([&] { return ::accept(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len); });
    if (fd < 0) return;
    if (clients_.size() >= opt_.max_connections) {
      ::close(fd);
      continue;
    }
    detail::set_nonblocking(fd);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
#ifdef SO_NOSIGPIPE
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    Client c;
    c.fd = fd;
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
    c.peer = std::string(host) + ":" + serv;
    c.deadline = Clock::now() + std::chrono::milliseconds(opt_.client_timeout_ms);
    clients_.push_back(std::move(c));
  }
}

inline void Exporter::read_from(Client& c) {
  char buf[4096];
  ssize_t n = detail::handle_EINTR([&] { return ::recv(c.fd, buf, sizeof buf, 0); });
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    ::close(c.fd);
    c.fd = -1;
    return;
  }
  c.in.append(buf, static_cast<size_t>(n));
  // Headers end at an empty line; a line may end in a bare LF (RFC 9112 allows it), and empty
  // lines before the request line are skipped.
  while (!c.in.empty() && (c.in[0] == '\r' || c.in[0] == '\n')) c.in.erase(0, 1);
  size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) end = c.in.find("\n\n");
  if (end == std::string::npos) {
    size_t mixed = c.in.find("\n\r\n");
    if (mixed != std::string::npos) end = mixed;
  }
  if (end == std::string::npos && c.in.size() > opt_.max_request_bytes) {
    reply(c, 431, "Request Header Fields Too Large", "text/plain", "request line and headers over " +
                                                                       std::to_string(opt_.max_request_bytes) + " bytes\n");
    return;
  }
  if (end == std::string::npos) return;
  if (end > opt_.max_request_bytes) {
    reply(c, 431, "Request Header Fields Too Large", "text/plain", "request line and headers over " +
                                                                       std::to_string(opt_.max_request_bytes) + " bytes\n");
    return;
  }
  std::string line = c.in.substr(0, c.in.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  route(c, line);
}

inline std::string Exporter::url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

inline void Exporter::route(Client& c, const std::string& request_line) {
  auto w = detail::split(request_line, ' ');
  if (w.size() != 3 || w[2].substr(0, 5) != "HTTP/") {
    reply(c, 400, "Bad Request", "text/plain", "not an HTTP request line\n");
    return;
  }
  const std::string method(w[0]), target(w[1]);
  c.head = method == "HEAD";
  if (method != "GET" && method != "HEAD") {
    reply(c, 405, "Method Not Allowed", "text/plain", "only GET and HEAD\n", "Allow: GET, HEAD\r\n");
    return;
  }
  std::string target_path = target;
  if (target_path.rfind("http://", 0) == 0 || target_path.rfind("https://", 0) == 0) { // absolute form
    size_t slash = target_path.find('/', target_path.find("//") + 2);
    target_path = slash == std::string::npos ? "/" : target_path.substr(slash);
  }
  const size_t q = target_path.find('?');
  const std::string path = target_path.substr(0, q);
  std::map<std::string, std::string> query;
  if (q != std::string::npos)
    for (auto kv : detail::split(std::string_view(target_path).substr(q + 1), '&')) {
      size_t eq = kv.find('=');
      query[url_decode(kv.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(kv.substr(eq + 1));
    }
  if (path == "/") {
    std::string body = "<html><head><title>flare exporter</title></head><body><h1>flare exporter</h1>"
                       "<p><a href=\"" + opt_.telemetry_path + "\">Metrics</a> of " + opt_.index.display() + "</p>";
    for (const auto& [name, ep] : opt_.clusters)
      body += "<p><a href=\"/probe?cluster=" + name + "\">" + name + "</a> (" + ep.display() + ")</p>";
    reply(c, 200, "OK", "text/html; charset=utf-8", body + "</body></html>\n");
  } else if (path == opt_.telemetry_path) {
    start_scrape(c, opt_.index);
  } else if (path == "/probe") {
    if (query.count("cluster") && query.count("target")) {
      reply(c, 400, "Bad Request", "text/plain", "give ?cluster=NAME or ?target=HOST:PORT, not both\n");
    } else if (query.count("cluster")) {
      auto it = opt_.clusters.find(query["cluster"]);
      if (it == opt_.clusters.end())
        reply(c, 404, "Not Found", "text/plain", "no cluster '" + detail::printable(query["cluster"]) + "' in FLARE_INDEX_SERVERS\n");
      else start_scrape(c, it->second);
    } else if (query.count("target")) {
      Endpoint ep;
      try {
        ep = parse_host_port(query["target"], FLARE_TOOLS_DEFAULT_INDEX_PORT);
      } catch (const Error&) {
        reply(c, 400, "Bad Request", "text/plain", "target is HOST[:PORT]\n");
        return;
      }
      if (!opt_.allowed_targets.count(ep.key()))
        reply(c, 403, "Forbidden", "text/plain", "target " + detail::printable(ep.key()) +
                                                     " is not allowed (the exporter's --web.allowed-targets)\n");
      else start_scrape(c, ep);
    } else {
      reply(c, 400, "Bad Request", "text/plain", "give ?cluster=NAME (from FLARE_INDEX_SERVERS) or ?target=HOST:PORT\n");
    }
  } else {
    reply(c, 404, "Not Found", "text/plain", "not found: try " + opt_.telemetry_path + "\n");
  }
}

inline void Exporter::reply(Client& c, int code, const char* reason, const char* type, const std::string& body, const std::string& extra) {
  reply(c, code, reason, type, std::make_shared<const std::string>(body), extra);
}

inline void Exporter::reply(Client& c, int code, const char* reason, const char* type, std::shared_ptr<const std::string> body,
                            const std::string& extra) {
  c.out = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type + "\r\nContent-Length: " +
          std::to_string(body->size()) + "\r\nConnection: close\r\n" + extra + "\r\n";
  c.body = c.head ? nullptr : std::move(body);
  c.sent = 0;
  c.phase = Client::writing;
  c.deadline = Clock::now() + std::chrono::milliseconds(opt_.client_timeout_ms);
  write_to(c);
}

inline void Exporter::write_to(Client& c) {
  const size_t total = c.out.size() + (c.body ? c.body->size() : 0);
  while (c.sent < total) {
    const bool in_head = c.sent < c.out.size();
    const char* from = in_head ? c.out.data() + c.sent : c.body->data() + (c.sent - c.out.size());
    const size_t left = in_head ? c.out.size() - c.sent : total - c.sent;
    ssize_t n = detail::handle_EINTR([&] { return ::send(c.fd, from, left, detail::kSendFlags); });
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) break;
    c.sent += static_cast<size_t>(n);
  }
  c.body.reset();
  // The reply is out: the write side is closed and what the client still sends is read and
  // dropped until it closes (or a short deadline): closed with unread bytes, the socket would
  // reset, and the client could lose the reply (a 431 sent before the whole request was read).
  ::shutdown(c.fd, SHUT_WR);
  c.phase = Client::draining;
  c.deadline = Clock::now() + std::chrono::milliseconds(std::min(opt_.client_timeout_ms, 2000));
}

inline void Exporter::drain(Client& c) {
  char buf[4096];
  for (;;) {
    ssize_t n = detail::handle_EINTR([&] { return ::recv(c.fd, buf, sizeof buf, 0); });
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    ::close(c.fd);
    c.fd = -1;
    return;
  }
}

inline void Exporter::start_scrape(Client& c, const Endpoint& index) {
  c.phase = Client::waiting;
  c.gather = index.key();
  // Parked until its gather ends: the gather's own deadlines bound it; the client's runs after.
  c.deadline = Clock::time_point::max();
  if (gathers_.count(c.gather)) return; // a gather of this cluster is under way: shared
  Gather g;
  g.index = index;
  g.started = Clock::now();
  g.result = std::make_shared<std::pair<std::atomic<bool>, ScrapeResult>>();
  g.result->first = false;
  auto result = g.result;
  ScrapeFn scrape = scrape_;
  const int wake = wake_[1];
  g.thread = std::thread([result, scrape, index, wake] {
    ScrapeResult r;
    try {
      r = scrape(index);
    } catch (const std::exception& e) {
      r.errors.push_back(e.what());
      r.text = format_prometheus_index_down(index.display());
    }
    result->second = std::move(r);
    result->first = true;
    char b = 1;
    ssize_t ignored = ::write(wake, &b, 1);
    (void)ignored;
  });
  gathers_.emplace(c.gather, std::move(g));
}

inline void Exporter::drain_wake() {
  char buf[64];
  while (::read(wake_[0], buf, sizeof buf) > 0) {
  }
}

inline void Exporter::finish_gathers() {
  for (auto it = gathers_.begin(); it != gathers_.end();) {
    Gather& g = it->second;
    if (!g.result->first) {
      ++it;
      continue;
    }
    g.thread.join();
    const ScrapeResult& r = g.result->second;
    const double seconds = std::chrono::duration<double>(Clock::now() - g.started).count();
    const std::string label = "index=\"" + detail::prom_label_value(g.index.display()) + "\"";
    if (!r.errors.empty()) {
      ++errors_[g.index.display()];
      if (log_)
        for (const auto& e : r.errors) log_("scrape of " + g.index.display() + ": " + detail::printable(e, 300));
    }
    char dur[64];
    std::snprintf(dur, sizeof dur, "%.6f", seconds);
    std::string own;
    detail::prom_family(own, "flare_exporter_scrape_duration_seconds", "gauge",
                        "How long the gather behind this reply took.",
                        {"flare_exporter_scrape_duration_seconds{" + label + "} " + dur + "\n"});
    // This cluster's count only: a /probe of one cluster does not carry another's.
    detail::prom_family(own, "flare_exporter_scrape_errors_total", "counter",
                        "Gathers of this cluster that met an error (its index or a node did not answer), since the exporter started.",
                        {"flare_exporter_scrape_errors_total{" + label + "} " + std::to_string(errors_[g.index.display()]) + "\n"});
    detail::prom_family(own, "flare_exporter_build_info", "gauge", "The exporter's version.",
                        {std::string("flare_exporter_build_info{version=\"") + FLARE_TOOLS_VERSION + "\"} 1\n"});
    auto body = std::make_shared<const std::string>(r.text + own);
    for (auto& c : clients_)
      if (c.fd >= 0 && c.phase == Client::waiting && c.gather == it->first)
        reply(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
    it = gathers_.erase(it);
  }
}

inline void Exporter::shut() {
  *stopping_ = true;
  for (auto& [key, g] : gathers_)
    if (g.thread.joinable()) g.thread.join();
  gathers_.clear();
  for (auto& c : clients_) {
    if (c.fd < 0) continue;
    if (c.phase == Client::waiting) { // its scrape will not be answered: said, not left to time out
      static const char kBye[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n"
                                 "Connection: close\r\n\r\nthe exporter is stopping";
      ssize_t ignored = ::send(c.fd, kBye, sizeof kBye - 1, detail::kSendFlags);
      (void)ignored;
    }
    ::close(c.fd);
  }
  clients_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  for (int& fd : wake_)
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
}

// ---- 9. Deploy ---------------------------------------------------------------------------

inline const char* daemon_name(Daemon d) { return d == Daemon::flarei ? "flarei" : "flared"; }

inline void ServerConf::set(const std::string& key, const std::string& value) {
  for (auto& e : entries_)
    if (e.first == key) {
      e.second = value;
      return;
    }
  entries_.emplace_back(key, value);
}

inline void ServerConf::erase(const std::string& key) {
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(), [&](const auto& e) { return e.first == key; }),
                 entries_.end());
}

inline const std::string* ServerConf::find(const std::string& key) const {
  for (const auto& e : entries_)
    if (e.first == key) return &e.second;
  return nullptr;
}

inline std::string ServerConf::text() const {
  std::string out;
  for (const auto& e : entries_) out += e.first + " = " + e.second + "\n";
  return out;
}

inline ServerConf flarei_defaults() {
  ServerConf c;
  for (const auto& [k, v] : std::initializer_list<std::pair<const char*, const char*>>{
           {"data-dir", "/tmp"}, {"log-facility", "local0"}, {"max-connection", "256"}, {"monitor-threshold", "3"},
           {"monitor-interval", "1"}, {"server-name", "localhost"}, {"server-port", "12120"}, {"thread-pool-size", "8"}})
    c.set(k, v);
  return c;
}

inline ServerConf flared_defaults() {
  ServerConf c;
  for (const auto& [k, v] : std::initializer_list<std::pair<const char*, const char*>>{
           {"data-dir", "/tmp"}, {"index-server-name", "localhost"}, {"index-server-port", "12120"},
           {"log-facility", "local1"}, {"max-connection", "256"}, {"mutex-slot", "32"}, {"proxy-concurrency", "2"},
           {"server-name", "localhost"}, {"server-port", "12121"}, {"storage-type", "tch"}, {"thread-pool-size", "16"}})
    c.set(k, v);
  return c;
}

inline const std::vector<DeploySetting>& deploy_settings() {
  static const std::vector<DeploySetting> table = {
      // both daemons
      {"thread-pool-size", "SIZE", true, true, "thread pool size", nullptr},
      {"daemonize", "BOOL", true, true, "daemonize (start.sh passes --daemonize anyway)", nullptr},
      {"data-dir", "PATH", true, true, "data folder instead of HOST:PORT/data (absolute, existing; one flared)", nullptr},
      {"log-facility", "NAME", true, true, "syslog facility: auth daemon user local0..local7", nullptr},
      {"max-connection", "SIZE", true, true, "most concurrent connections, up to 524280", nullptr},
      {"stack-size", "KB", true, true, "thread stack size, 32 to 2097151", nullptr},
      // flarei
      {"monitor-threshold", "COUNT", true, false, "flarei: failed checks before a node is down", nullptr},
      {"monitor-interval", "SECOND", true, false, "flarei: seconds between node checks, 1 to 3600", nullptr},
      {"monitor-read-timeout", "MILLISECOND", true, false, "flarei: read timeout of a node check", nullptr},
      {"partition-type", "NAME", true, false, "flarei: partition type (modular)", nullptr},
      {"key-hash-algorithm", "NAME", true, false, "flarei: simple, crc32 or jenkins", nullptr},
      {"partition-size", "SIZE", true, false, "flarei: most partitions + 1, 2 to 65536 (default 1024)", nullptr},
      {"partition-modular-hint", "SIZE", true, false, "flarei: partitions placed by plain modulo", nullptr},
      {"partition-modular-virtual", "SIZE", true, false, "flarei: virtual buckets, 1 to 65536 (default 4096)", nullptr},
      // flared
      {"back-log", "BACKLOG", false, true, "flared: backlog of listen()", nullptr},
      {"net-read-timeout", "SECOND", false, true, "flared: network read timeout, up to 2147483", nullptr},
      {"proxy-concurrency", "SIZE", false, true, "flared: proxy threads per node, 1 to 4096", nullptr},
      {"mutex-slot", "SIZE", false, true, "flared: mutex slots for storage I/O, up to 1048576", nullptr},
      {"reconstruction-interval", "MICROSEC", false, true, "flared: pause between items of a dump", nullptr},
      {"reconstruction-bwlimit", "KBYTES", false, true, "flared: bandwidth of a dump, KB per second", nullptr},
      {"storage-ap", "SIZE", false, true, "flared: record alignment, power of 2, 0 to 16 (tch)", nullptr},
      {"storage-bucket-size", "SIZE", false, true, "flared: bucket array elements, up to 4294967295 (tch; 4-8 bytes each on disk)", nullptr},
      {"storage-cache-size", "SIZE", false, true, "flared: storage cache size", nullptr},
      {"storage-compress", "NAME", false, true, "flared: deflate, bz2 or tcbs (tch)", nullptr},
      {"storage-large", nullptr, false, true, "flared: large storage (tch)", nullptr},
      {"storage-type", "NAME", false, true, "flared: tch or tcb", nullptr},
      {"proxy-prior-netmask", "SIZE", false, true, "flared: prefer proxies in this netmask (24 = /24)", nullptr},
      {"max-total-thread-queue", "SIZE", false, true, "flared: longest thread queue", nullptr},
      {"index-servers", "HOST:PORT,...", false, true, "flared: index servers (replaces index-server-name/port)", nullptr},
      {"noreply-window-limit", "SIZE", false, true, "flared: noreply window limit", nullptr},
      {"mysql-replication", nullptr, false, true, "flared: MySQL replication",
       "flared knows it only when built with --enable-mysql-replication"},
      {"mysql-replication-port", "PORT", false, true, "flared: MySQL replication port",
       "flared knows it only when built with --enable-mysql-replication"},
      {"mysql-replication-id", "ID", false, true, "flared: MySQL replication server id",
       "flared knows it only when built with --enable-mysql-replication"},
      {"mysql-replication-db", "NAME", false, true, "flared: MySQL replication database",
       "flared knows it only when built with --enable-mysql-replication"},
      {"mysql-replication-table", "NAME", false, true, "flared: MySQL replication table",
       "flared knows it only when built with --enable-mysql-replication"},
      {"proxy-cache-size", "SIZE", false, true, "flared: proxy cache entries (0.7.3; not in flare 1.3.4)",
       "flared 1.3.4 has no such setting and will not start with it"},
      {"proxy-cache-expire", "SECOND", false, true, "flared: proxy cache life time (0.7.3; not in flare 1.3.4)",
       "flared 1.3.4 has no such setting and will not start with it"},
  };
  return table;
}

inline const DeploySetting* find_deploy_setting(std::string_view key) {
  for (const auto& s : deploy_settings())
    if (key == s.key) return &s;
  return nullptr;
}

inline std::string deploy_value_problem(std::string_view key, std::string_view value) {
  enum Kind { integer, unsigned32, unsigned64, choice, word, path, on, servers };
  struct Rule {
    const char* key;
    Kind kind;
    long long min, max;
    const char* choices;
  };
  constexpr long long kInt = 2147483647LL, kU32 = 4294967295LL;
  static const Rule rules[] = {
      {"thread-pool-size", integer, 1, kInt, nullptr}, {"daemonize", on, 0, 0, nullptr},
      {"data-dir", path, 0, 0, nullptr},
      {"log-facility", choice, 0, 0, "auth daemon user local0 local1 local2 local3 local4 local5 local6 local7"},
      {"max-connection", integer, 1, 524280, nullptr}, {"stack-size", integer, 32, 2097151, nullptr},
      {"monitor-threshold", integer, 1, kInt, nullptr}, {"monitor-interval", integer, 1, 3600, nullptr},
      {"monitor-read-timeout", integer, 1, kInt, nullptr}, {"partition-type", choice, 0, 0, "modular"},
      {"key-hash-algorithm", choice, 0, 0, "simple crc32 jenkins"},
      {"partition-size", integer, 2, 65536, nullptr}, {"partition-modular-hint", integer, 1, kInt, nullptr},
      {"partition-modular-virtual", integer, 1, 65536, nullptr}, {"back-log", integer, 1, kInt, nullptr},
      {"net-read-timeout", integer, 1, 2147483, nullptr}, {"proxy-concurrency", integer, 1, 4096, nullptr},
      {"mutex-slot", integer, 1, 1048576, nullptr}, {"reconstruction-interval", integer, 0, kInt, nullptr},
      {"reconstruction-bwlimit", integer, 0, kInt, nullptr}, {"storage-ap", unsigned32, 0, 16, nullptr},
      {"storage-bucket-size", unsigned32, 0, kU32, nullptr}, {"storage-cache-size", integer, 0, kInt, nullptr},
      {"storage-compress", choice, 0, 0, "deflate bz2 tcbs"}, {"storage-large", on, 0, 0, nullptr},
      {"storage-type", choice, 0, 0, "tch tcb"}, {"proxy-prior-netmask", unsigned32, 0, 32, nullptr},
      {"max-total-thread-queue", unsigned32, 0, kU32, nullptr}, {"index-servers", servers, 0, 0, nullptr},
      {"noreply-window-limit", integer, 0, kInt, nullptr}, {"mysql-replication", on, 0, 0, nullptr},
      {"mysql-replication-port", integer, 1, 65535, nullptr}, {"mysql-replication-id", unsigned32, 0, kU32, nullptr},
      {"mysql-replication-db", word, 0, 0, nullptr}, {"mysql-replication-table", word, 0, 0, nullptr},
      {"proxy-cache-size", integer, 0, kInt, nullptr}, {"proxy-cache-expire", integer, 0, kInt, nullptr},
  };
  const Rule* rule = nullptr;
  for (const auto& r : rules)
    if (key == r.key) rule = &r;
  if (!rule) return "deploy does not know this setting";
  // A value is copied into a `key = value` line, which boost reads up to the line's end and
  // trims: a line break would add a setting, blanks at either end would be lost.
  if (value.empty()) return "give a value";
  for (unsigned char ch : value)
    if (ch < 0x20 || ch == 0x7f) return "a value cannot hold a control character or a line break";
  if (value.front() == ' ' || value.back() == ' ') return "a value cannot start or end with a space";
  auto whole = [&](unsigned long long most) -> std::optional<unsigned long long> {
    if (!detail::is_digits(value) || value.size() > 20) return std::nullopt;
    unsigned long long v = 0;
    for (char ch : value) {
      if (v > (~0ULL - static_cast<unsigned>(ch - '0')) / 10) return std::nullopt;
      v = v * 10 + static_cast<unsigned>(ch - '0');
    }
    if (v > most) return std::nullopt;
    return v;
  };
  auto range = [&]() {
    return "give a whole number from " + std::to_string(rule->min) + " to " + std::to_string(rule->max);
  };
  switch (rule->kind) {
  case integer:
  case unsigned32: {
    auto v = whole(static_cast<unsigned long long>(rule->max));
    if (!v || static_cast<long long>(*v) < rule->min) return range();
    return "";
  }
  case unsigned64:
    if (!whole(~0ULL)) return "give a whole number from 0 to 18446744073709551615";
    return "";
  case choice:
    for (auto c : detail::split(rule->choices, ' '))
      if (c == value) return "";
    if (key == "key-hash-algorithm" && (value == "bitshift" || value == "adler32" || value == "murmur"))
      return "flarei 1.3.4 refuses it and exits at once, saying nothing (src/flarei/flarei.cc keeps it for its own use); "
             "give one of: " + std::string(rule->choices);
    if (key == "storage-type" && value == "kch")
      return "flared 1.3.4 knows kch only when built with Kyoto Cabinet, and otherwise exits 'unknown storage type [kch]'; "
             "give one of: " + std::string(rule->choices);
    if (key == "log-facility")
      return "flare sends any other name to facility kern (src/lib/logger.cc); give one of: " + std::string(rule->choices);
    return std::string("give one of: ") + rule->choices;
  case word:
    if (value.find(' ') != std::string_view::npos) return "give one word";
    return "";
  case path:
    // flarei and flared 1.3.4 exit when it is relative or missing (src/lib/app.cc, storage_tch.cc)
    if (value.front() != '/') return "give an absolute path (flarei and flared do not start with a relative one)";
    return "";
  case on:
    if (value != "true")
      return "flare turns it on whenever its line is present, whatever the value: give true, or leave the option out";
    return "";
  case servers:
    for (auto one : detail::split(value, ',')) {
      try {
        NodeArg a = parse_node_arg(one, 2, 2);
        (void)a;
      } catch (const Error&) {
        return "give HOST:PORT[,HOST:PORT...] (no spaces)";
      }
      if (one.find('[') != std::string_view::npos) return "flared reads NAME:PORT: an IPv6 address cannot be given here";
    }
    return "";
  }
  return "";
}

inline std::string deploy_settings_problem(const DeploySettings& settings, size_t flared_count) {
  long long size = 1024, virt = 4096;
  bool data_dir = false;
  for (const auto& [k, v] : settings) {
    if (k == "partition-size") size = to_int(v).value_or(size);
    if (k == "partition-modular-virtual") virt = to_int(v).value_or(virt);
    if (k == "data-dir") data_dir = true;
  }
  if (size * virt > (1LL << 26))
    return "--partition-size " + std::to_string(size) + " with --partition-modular-virtual " + std::to_string(virt) +
           " makes a key table of " + std::to_string(size * virt) + " entries (4 bytes each) in flarei and every flared; "
           "give a product of at most 67108864";
  if (data_dir && flared_count > 1)
    return "--data-dir would be shared by " + std::to_string(flared_count) + " flared (one flare.hdb, one flared.pid): "
           "deploy each node on its own with its own --data-dir, or leave it out (HOST:PORT/data each)";
  return "";
}

inline std::string DeployTarget::pid_path() const {
  const std::string* d = conf.find("data-dir");
  return (d ? *d : dir + "/data") + "/" + daemon_name(daemon) + ".pid";
}

inline DeployTarget plan_flarei(const std::string& base, const Endpoint& index, const std::string& executable,
                                const DeploySettings& settings) {
  DeployTarget t{Daemon::flarei, index, base + "/" + index.key(), executable, flarei_defaults()};
  t.conf.set("server-name", index.host);
  t.conf.set("server-port", std::to_string(index.port));
  t.conf.set("data-dir", t.dir + "/data");
  for (const auto& [k, v] : settings) {
    const DeploySetting* s = find_deploy_setting(k);
    if (s && s->flarei) t.conf.set(k, v);
  }
  return t;
}

inline DeployTarget plan_flared(const std::string& base, const Endpoint& node, const Endpoint& index,
                                const std::string& executable, const DeploySettings& settings) {
  DeployTarget t{Daemon::flared, node, base + "/" + node.key(), executable, flared_defaults()};
  t.conf.set("index-server-name", index.host);
  t.conf.set("index-server-port", std::to_string(index.port));
  t.conf.set("server-name", node.host);
  t.conf.set("server-port", std::to_string(node.port));
  t.conf.set("data-dir", t.dir + "/data");
  for (const auto& [k, v] : settings) {
    const DeploySetting* s = find_deploy_setting(k);
    if (s && s->flared) t.conf.set(k, v);
  }
  // flared reads either index-servers or the single name/port pair.
  if (t.conf.find("index-servers")) {
    t.conf.erase("index-server-name");
    t.conf.erase("index-server-port");
  }
  return t;
}

namespace detail {

// A word for /bin/sh: left as it is when nothing in it is special, else single-quoted.
inline std::string shell_word(const std::string& s) {
  bool plain = !s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                 "0123456789_@%+=:,./-") == std::string::npos;
  if (plain) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A word of a systemd ExecStart= line: `%` is systemd's specifier, quotes and spaces split.
inline std::string systemd_word(const std::string& s) {
  std::string esc;
  bool quote = s.empty();
  for (char c : s) {
    if (c == '%') esc += "%%";
    else if (c == '"' || c == '\\') esc += std::string("\\") + c;
    else esc += c;
    if (c == ' ' || c == '\t' || c == '"' || c == '\'' || c == '\\' || c == ';') quote = true;
  }
  return quote ? "\"" + esc + "\"" : esc;
}

} // namespace detail

inline std::vector<DeployFile> deploy_files(const DeployTarget& t, bool with_systemd_unit) {
  const std::string name = daemon_name(t.daemon);
  const std::string pid = detail::shell_word(t.pid_path()), exec = detail::shell_word(t.executable);
  const std::string start = "/sbin/start-stop-daemon --start --quiet --pidfile " + pid + " --exec " + exec + " -- -f " +
                            detail::shell_word(t.conf_path()) + " --daemonize\n";
  const std::string stop = "/sbin/start-stop-daemon --stop --retry=TERM/30/KILL/5 --quiet --pidfile " + pid +
                           " --exec " + exec + "\n";
  std::vector<DeployFile> files = {
      {name + ".conf", t.conf.text(), 0644},
      {"start.sh", "#!/bin/sh\n" + start, 0744},
      {"stop.sh", "#!/bin/sh\n" + stop, 0744},
      {"restart.sh", "#!/bin/sh\n" + stop + "sleep 5\n" + start, 0744},
  };
  if (with_systemd_unit) {
    // Without `daemonize` flare stays in the foreground, as systemd prefers; with it, it forks
    // and writes its pid file, which systemd must then be told about.
    const bool forks = t.conf.find("daemonize") != nullptr;
    std::string unit = "[Unit]\nDescription=flare " +
                       std::string(t.daemon == Daemon::flarei ? "index server (flarei) " : "node (flared) ") +
                       t.server.key() + "\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\n";
    unit += forks ? "Type=forking\nPIDFile=" + t.pid_path() + "\n" : "Type=simple\n";
    unit += "ExecStart=" + detail::systemd_word(t.executable) + " -f " + detail::systemd_word(t.conf_path()) + "\n";
    unit += "Restart=on-failure\nLimitNOFILE=65536\n\n[Install]\nWantedBy=multi-user.target\n";
    files.push_back({t.unit_name(), unit, 0644});
  }
  return files;
}

namespace detail {

inline bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Removes a file or a folder with everything in it (symbolic links themselves, never what
// they point to); a path that does not exist is fine.
inline void remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) throw Error("cannot remove '" + path + "': " + ec.message());
}

inline void write_new_file(const std::string& path, const std::string& content, unsigned mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw Error("cannot create '" + path + "': " + errno_text(errno));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw Error("cannot write '" + path + "': " + errno_text(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0 || ::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    throw Error("cannot write '" + path + "': " + errno_text(err));
  }
  if (::close(fd) != 0) throw Error("cannot write '" + path + "': " + errno_text(errno));
}

// A new, empty, uniquely named folder next to `path` (mkdtemp's).
inline std::string temp_folder_beside(const std::string& path, const char* what) {
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmpl = dir + "/." + base + "." + what + ".XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw Error("cannot create a folder beside '" + path + "': " + errno_text(errno));
  return buf.data();
}

} // namespace detail

inline void deploy_folder(const DeployTarget& t, bool replace, bool with_systemd_unit) {
  struct stat st;
  const bool exists = ::lstat(t.dir.c_str(), &st) == 0;
  if (exists && !replace) throw Error("directory already exists: " + t.dir + " (--delete replaces it)");
  if (exists && !S_ISDIR(st.st_mode)) throw Error(t.dir + " exists and is not a folder; not replacing it");
  std::string tmp = detail::temp_folder_beside(t.dir, "new");
  try {
    if (::chmod(tmp.c_str(), 0755) != 0) throw Error("cannot set the mode of '" + tmp + "': " + detail::errno_text(errno));
    if (::mkdir((tmp + "/data").c_str(), 0755) != 0)
      throw Error("cannot create '" + tmp + "/data': " + detail::errno_text(errno));
    for (const auto& f : deploy_files(t, with_systemd_unit)) detail::write_new_file(tmp + "/" + f.name, f.content, f.mode);
    if (exists) {
      // rename() may replace an empty folder only: move the old one aside onto an empty one.
      std::string old = detail::temp_folder_beside(t.dir, "old");
      if (std::rename(t.dir.c_str(), old.c_str()) != 0) {
        int err = errno;
        ::rmdir(old.c_str());
        throw Error("cannot move '" + t.dir + "' aside: " + detail::errno_text(err));
      }
      if (std::rename(tmp.c_str(), t.dir.c_str()) != 0) {
        int err = errno;
        std::string kept = std::rename(old.c_str(), t.dir.c_str()) == 0 ? "" : " (the old folder is now '" + old + "')";
        throw Error("cannot rename '" + tmp + "' to '" + t.dir + "': " + detail::errno_text(err) + kept);
      }
      detail::remove_tree(old);
    } else if (std::rename(tmp.c_str(), t.dir.c_str()) != 0) {
      throw Error("cannot rename '" + tmp + "' to '" + t.dir + "': " + detail::errno_text(errno));
    }
  } catch (...) {
    try {
      detail::remove_tree(tmp);
    } catch (const Error&) {
      // The first error is the one to report.
    }
    throw;
  }
}

// ---- 10. Keycheck ------------------------------------------------------------------------

inline std::string keycheck_settings_problem(const KeycheckSettings& s) {
  if (s.partitions < 1 || s.partitions > 4096) return "the partition size must be 1 to 4096";
  if (s.hint < 1) return "the hint must be 1 or more";
  if (s.virtual_buckets < 1 || s.virtual_buckets > (1 << 20)) return "the virtual size must be 1 to 1048576";
  if (static_cast<long long>(s.partitions + 1) * s.virtual_buckets > (1LL << 28))
    return "partition size x virtual size must stay under 2^28";
  if (s.delimiter.empty()) return "the delimiter must not be empty";
  return "";
}

inline std::string_view key_prefix(std::string_view key, std::string_view delimiter) {
  size_t at = delimiter.empty() ? std::string_view::npos : key.rfind(delimiter);
  return at == std::string_view::npos ? std::string_view() : key.substr(0, at);
}

inline KeyDistribution::KeyDistribution(const KeycheckSettings& s)
    : settings_(s), resolver_(s.partitions + 2, s.hint, s.virtual_buckets) {}

inline void KeyDistribution::add(std::string_view key) {
  const int bucket = resolver_.bucket_of(key_hash(key, settings_.algorithm));
  ++keys_;
  if (bucket < 0) {
    // Only INT_MIN hashes with a virtual size not dividing 2^31: the server has no bucket.
    ++unplaced_;
    return;
  }
  std::string_view prefix = key_prefix(key, settings_.delimiter);
  auto found = index_.find(std::string(prefix));
  size_t i;
  if (found == index_.end()) {
    i = prefixes_.size();
    index_.emplace(std::string(prefix), i);
    prefixes_.push_back(Prefix{std::string(prefix), 0, {}, {}});
  } else {
    i = found->second;
  }
  prefixes_[i].keys++;
  prefixes_[i].collected.push_back(static_cast<std::uint32_t>(bucket));
}

inline void KeyDistribution::finish() {
  for (auto& p : prefixes_) {
    std::sort(p.collected.begin(), p.collected.end());
    for (size_t j = 0; j < p.collected.size();) {
      size_t k = j;
      while (k < p.collected.size() && p.collected[k] == p.collected[j]) ++k;
      p.buckets.emplace_back(p.collected[j], static_cast<unsigned long long>(k - j));
      j = k;
    }
    std::vector<std::uint32_t>().swap(p.collected);
  }
  index_.clear();
}

inline std::vector<unsigned long long> KeyDistribution::counts(size_t i, int n) const {
  std::vector<unsigned long long> out(static_cast<size_t>(n > 0 ? n : 0), 0);
  const std::vector<int>& row = resolver_.row(n);
  if (row.empty()) return out;
  for (const auto& [bucket, count] : prefixes_.at(i).buckets) out[static_cast<size_t>(row[bucket])] += count;
  return out;
}

inline unsigned long long KeyDistribution::moved(size_t i, int n) const {
  if (n < 1 || n > settings_.partitions) return 0;
  std::vector<int> before = resolver_.row(n);  // a copy: the next call may evict it
  const std::vector<int>& after = resolver_.row(n + 1);
  unsigned long long total = 0;
  for (const auto& [bucket, count] : prefixes_.at(i).buckets)
    if (before[bucket] != after[bucket]) total += count;
  return total;
}

template <typename Out> inline void write_keycheck_csv(const KeyDistribution& d, Out&& out) {
  const int n_max = d.settings().partitions;
  std::string line = "partition size, prefix, ";
  for (int p = 0; p < n_max; ++p) line += (p ? " ," : "") + std::to_string(p);
  out(line + "\n");
  for (int n = 1; n <= n_max; ++n) {
    for (size_t i = 0; i < d.prefix_count(); ++i) {
      line = std::to_string(n) + ", ";
      detail::csv_cell(d.prefix(i), line);
      line += ",";
      const auto c = d.counts(i, n);
      for (size_t p = 0; p < c.size(); ++p) line += (p ? " ," : "") + std::to_string(c[p]);
      out(line + "\n");
    }
  }
}

template <typename Out> inline void write_keycheck_json(const KeyDistribution& d, Out&& out) {
  const KeycheckSettings& s = d.settings();
  unsigned long long moved_total = 0;
  std::string head = std::string("{\"key_hash_algorithm\":\"") + to_string(s.algorithm) +
                     "\",\"partition_type\":\"modular\",\"virtual\":" + std::to_string(s.virtual_buckets) +
                     ",\"hint\":" + std::to_string(s.hint) + ",\"partition_size\":" + std::to_string(s.partitions) +
                     ",\"delimiter\":" + detail::json_escape(s.delimiter) + ",\"keys\":" + std::to_string(d.keys()) +
                     ",\"unplaced\":" + std::to_string(d.unplaced()) + ",\"prefixes\":[";
  out(head);
  for (size_t i = 0; i < d.prefix_count(); ++i) {
    const unsigned long long m = d.moved(i, s.partitions);
    moved_total += m;
    out(std::string(i ? "," : "") + "{\"prefix\":" + detail::json_escape(d.prefix(i)) +
        ",\"keys\":" + std::to_string(d.prefix_keys(i)) + ",\"moved\":" + std::to_string(m) + "}");
  }
  out("],\"moves\":{\"from\":" + std::to_string(s.partitions) + ",\"to\":" + std::to_string(s.partitions + 1) +
      ",\"keys\":" + std::to_string(moved_total) + "},\"distribution\":[");
  for (int n = 1; n <= s.partitions; ++n) {
    std::string line = std::string(n > 1 ? "," : "") + "{\"partitions\":" + std::to_string(n) + ",\"prefixes\":[";
    for (size_t i = 0; i < d.prefix_count(); ++i) {
      line += std::string(i ? "," : "") + "{\"prefix\":" + detail::json_escape(d.prefix(i)) + ",\"keys\":[";
      const auto c = d.counts(i, n);
      for (size_t p = 0; p < c.size(); ++p) line += (p ? "," : "") + std::to_string(c[p]);
      line += "]}";
    }
    out(line + "]}");
  }
  out("]}\n");
}

inline unsigned long long keycheck_moved(const KeyDistribution& d) {
  unsigned long long total = 0;
  for (size_t i = 0; i < d.prefix_count(); ++i) total += d.moved(i, d.settings().partitions);
  return total;
}
} // namespace flare

#endif // FLARE_TOOLS_HPP
