// fake_flare.cpp - a fake flare 1.3.4 cluster for the flare-tools tests: one index server (flarei)
// and N data nodes (flared) in one process, on loopback.  Spec: tests/data/flare-protocol.md and the
// raw transcripts in tests/data/transcripts/.  Standard library + POSIX only; one global mutex
// over the cluster state, one timer thread (copy / revive / dead node). On Linux the acceptor's
// event loop answers a connection while it asks only stats, meta, ping or version with no fault
// armed (EventLoop, below); any other connection has a thread of its own (kept and reused).
//
// Build:  g++ -std=c++17 -O2 -Wall -Wextra -Werror -pthread tests/fake_flare.cpp -o tests/fake-flare
//
// Usage:
//   tests/fake-flare [--host 127.0.0.1] [--index-port N] [--nodes N] [--node-port P]...
//       [--ready-file PATH] [--exit-on-stdin-eof] [--control-port N] [--thread-per-connection]
//       [--test-monitor-clock]
//       [--copy-rate ITEMS_PER_SEC] [--revive-ms MS] [--dead-after-ms MS] [--stats-delay-ms MS]
//       [--report-retry-ms MS]
//       [--set-service-us US] [--stopped-node-port P]...
//       [--key-hash-algorithm simple|bitshift|crc32] [--partition-size 1024]
//       [--partition-type modular] [--partition-modular-hint 1] [--partition-modular-virtual 4096]
//   Port 0 = ephemeral.  Defaults: 3 nodes (or one per --node-port), copy-rate 100000 items/s,
//   revive-ms 1000, dead-after-ms 3000, stats-delay-ms 0 (applies to the nodes' plain `stats`),
//   report-retry-ms 8000 (a slave whose copy ends while the index is gone reports it for that long).
//   --thread-per-connection: no event loop, every connection its own thread from the start (as
//   on systems without epoll); the same answers, for comparing the two.
//   --set-service-us US: a real node's pace. Every storage command (set/add/replace/append/
//   prepend/cas) on a node takes US microseconds, and its reply is written by itself as soon as
//   it is produced (one small write per reply, not batched), so a pipelining client sees the
//   trickle of a real flared (about 28,000 sets/s, i.e. ~35 us per set). 0 (default) = as fast
//   as possible, replies batched. Per node at run time: control `set-service NODE US`.
//   --stopped-node-port P: a node whose flared is not running yet: not in the map, its port
//   closed, until control `start` (then it registers, as flared's `node add`).
//   Once every listener is bound it prints (and writes PATH.tmp -> PATH for --ready-file):
//       index PORT / control PORT / node PORT (one line per node, in order; `stopped PORT` for
//       a --stopped-node-port)
//   Nodes are registered as HOST:PORT, proxy/active, thread_type 16, 17, ...
//   Runs until SIGTERM/SIGINT, or stdin EOF with --exit-on-stdin-eof; exits 0.
//   --test-monitor-clock: the index's monitor (dead-after-ms, revive-ms) runs on a clock the
//   test sets with control `monitor-clock`, not on the real one.
//
// One dump or dump_key at a time per node: another one asked meanwhile answers
// `SERVER_ERROR database busy` (a real flared iterates its database once at a time), and so does
// one asked of a node a construction is copying from (a master while its slave is in prepare).
//
// Control port (test only): one command per line, reply `OK` or `ERROR <reason>` (CRLF).
// TARGET = a node key HOST:PORT (or just its port) or the word `index`.
//   ping                               -> OK
//   monitor-clock MS                   (--test-monitor-clock) the index's monitor's time is MS now
//                                      (from 0 at the start, never backwards); it looks at every
//                                      node at once, before the reply
//   delay TARGET MS                    wait MS before every reply (0 = off)
//   set-service NODE US                a service time per storage command, replies written one
//                                      by one (0 = off); see --set-service-us
//   dump-rate NODE KB                  serve every dump at most KB KiB/s (0 = off), as a node on
//                                      a slow disk or link would
//   stats-delay TARGET MS              wait MS before replies to exactly `stats`
//   hang TARGET 0|1                    read requests, never answer
//   refuse TARGET 0|1                  close the listening socket / listen again on the same port
//   cut TARGET N                       close each connection after N bytes of reply (0 = off)
//   drip TARGET MS                     send replies one byte at a time, MS apart (0 = off)
//   override TARGET WORD HEX [REPEAT] [close] [once]   answer requests whose first word is WORD with
//                                      the bytes HEX (`-` = no bytes) REPEAT times, then close if asked
//                                      (once: the first such request only)
//                                      (`+WORD`: only a request that is WORD alone, e.g. `+stats`)
//   override TARGET WORD off           remove it
//   kill-after NODE COUNT              NODE's process dies (as kill) right after it answers COUNT
//                                      more storage commands (0 = off): a master killed mid-restore
//   repl-lag NODE WRITES               slave NODE applies its master's writes WRITES behind (0 = at
//                                      once, the default): the writes waiting are lost if the master
//                                      is killed (flarei then promotes a slave that lacks them, as a
//                                      real flared's asynchronous replication; flare-protocol.md)
//   kill NODE / start NODE             node "process" dies (listener + connections closed, marked
//                                      down dead-after-ms later) / comes back (re-registers, keeps items)
//   stall 0|1                          freeze every construction (a stuck slave) / let it go on;
//                                      a frozen construction shows no copy threads (below)
//   reconstruction-bwlimit NODE KB     NODE's flared.conf reconstruction-bwlimit (0 = off): a
//                                      construction of NODE takes each item whole, then is silent
//                                      size/rate seconds (item count flat) before the next or END
//   index-gone MS / index-back         flarei's process gone: its connections closed, and every new
//                                      one at its first request; its monitor stopped. Back with the
//                                      same map MS later (0 = at index-back). `hang index 1` = silent
//   later MS LINE...                   run control LINE MS from now (one shot)
//   at-items NODE K LINE...            run control LINE once NODE's item count reaches K from below
//                                      (one shot): a fault at a chosen moment of a construction
//   at-state HOST:PORT ROLE STATE LINE...  run control LINE once the index lists the node as ROLE
//                                      STATE (one shot): a fault at a chosen step of a change
//   stall TARGET 0|1                   the server stops as on SIGSTOP: it reads and answers nothing
//                                      (connections are still accepted) / goes on with what was sent;
//                                      a stalled master sends nothing to a construction copying from
//                                      it (the new node still shows its copy thread, blocked reading);
//                                      the index's monitor marks a stalled node down after
//                                      dead-after-ms, as a dead one (it does not answer its ping),
//                                      except a stalled slave it has just promoted to master: that
//                                      one stays master/active while stalled (flarei blocks syncing it)
//   sync-delay MS                      after `node state HOST PORT down` of an active master that
//                                      promotes a slave, answer OK only MS later (flarei first syncs
//                                      the new master, which may be slow); 0 = off
//   lag SLAVE QUEUE BEHIND [DRAIN]     its master's `stats threads slave` shows QUEUE writes waiting
//                                      towards SLAVE, the oldest BEHIND s old (aging), draining DRAIN
//                                      items/s (default 0); thread state execute/proxy_write meanwhile
//   put NODE KEY [VALUE]               store one item on NODE alone (no routing, no slaves)
//   put-hex NODE KEYHEX [VALUEHEX]     the same, key and value in hex: any byte, a space or CR LF
//                                      too, as the binary protocol stores it (dump/dump_key write it raw)
//   fill NODE COUNT SIZE [PREFIX]      store COUNT items PREFIX%05d (default `key`) of SIZE bytes on
//                                      NODE and its slaves, bypassing routing
//   set-node HOST:PORT ROLE STATE PARTITION BALANCE   force a node-map entry
//   thread-type HOST:PORT N            set a node's thread_type (the next new node gets max + 1)
//   requests                           `REQ TARGET LINE` for every state-changing request received
//                                      (index node role|state|remove|add, shutdown; node storage,
//                                      delete, incr/decr, touch/gat, flush_all) then `END`
//                                      (at most 100000 kept; `DROPPED N` before END if more)
//   requests-clear                     -> OK
//   items NODE                         -> ITEMS N
//   connections TARGET                 -> COUNT N: the connections TARGET accepted so far (a
//                                      stalled one accepts too), so that a test acts once the
//                                      tool is seen to have connected, not after a guessed delay
//   received TARGET                    -> COUNT N: the request bytes TARGET has read so far (a
//                                      hung one reads too)
//   map-hold NODE 1|0                  NODE keeps the map (and node_map_version) it holds and takes
//                                      none of the index's, until 0: a change not yet in effect there
//   index-restart VERSION              flarei restarted from an older flare.xml: its node_map_version
//                                      becomes VERSION; each node keeps its map and ignores the index's
//                                      until one is newer than its own (as flared's reconstruct_node)
// A slave made (`node role ... slave`) while its master is busy with a dump/dump_key falls back to
// proxy at once, as a real flared's construction does on `SERVER_ERROR database busy`; slaves
// copying from a master that is killed fall back to proxy at once too.
// While a construction copies, `stats threads` shows it as a real flared 1.3.4 does: on the new
// node a thread `type 3, peer SOURCE_KEY, op dump, state execute` per source node, on each
// source a request thread `op dump, state execute`; `node state H P active` of a new partition's
// master still in prepare is refused (SERVER_ERROR failed to set state).
// The monitor (revive-ms after a live node was set down, or after `start`): a live node set down
// comes back as proxy/active, a preserved master (down, still the only master of its partition)
// as master/active; after a takeover the old master stays in the map as master/down (it may be
// removed) and comes back as a proxy. tests/test_replay.cpp replays every recorded exchange of a
// real flare 1.3.4 against this fake; its known-differences list names what still differs.

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fcntl.h>
#include <iterator>
#include <list>
#include <map>
#include <unordered_set>
#include <memory>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <new>
#include <poll.h>
#include <string>
#include <string_view>
#ifdef __linux__
#include <sys/epoll.h>
#endif
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <thread>
#include <unistd.h>
#include <stdexcept>
#include <utility>
#include <vector>

namespace {

// ------------------------------------------------------------------------------------------ config

enum class HashAlgo { Simple, Bitshift, Crc32 };

struct Config {
  std::string host = "127.0.0.1";
  int index_port = 0;
  int nodes = 3;
  bool nodes_given = false;
  std::vector<int> node_ports;
  std::vector<int> stopped_ports;  // --stopped-node-port: nodes whose flared is not running yet
  std::string ready_file;
  double copy_rate = 100000;
  int64_t revive_ms = 1000;
  int64_t report_retry_ms = 8000; // --report-retry-ms: how long a node retries reporting its copy done
  int64_t dead_after_ms = 3000;
  int stats_delay_ms = 0;
  int64_t set_service_us = 0;
  std::string hash_name = "simple";
  int partition_size = 1024;
  std::string partition_type = "modular";
  int modular_hint = 1;
  int modular_virtual = 4096;
  int control_port = 0;
  bool exit_on_stdin_eof = false;
  bool thread_per_connection = false;  // --thread-per-connection: no event loop (Linux), as elsewhere
  bool test_monitor_clock = false;     // --test-monitor-clock: the monitor reads the test's clock
};

Config g_cfg;
HashAlgo g_hash = HashAlgo::Simple;

constexpr size_t kReadBuf = 256 * 1024;
constexpr size_t kMaxLine = 64 * 1024;
constexpr int64_t kMaxData = 64LL * 1024 * 1024;
constexpr size_t kFlushAt = 1024 * 1024;
// A real flared's `bytes` is its Tokyo Cabinet file size: 528704 empty, then per item about
// key + value + 40 bytes rounded up to 16 (recorded: "pk"/2 bytes and "fk0"/1 byte -> 48 each,
// "key00000"/1000 bytes -> 1056).
constexpr uint64_t kItemOverhead = 40;
constexpr uint64_t item_bytes(uint64_t key, uint64_t val) { return (key + val + kItemOverhead + 15) / 16 * 16; }
constexpr uint64_t kBaseBytes = 528704;
constexpr size_t kReqLogMax = 100000;

// ------------------------------------------------------------------------------------------ helpers

int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t unix_now() { return static_cast<int64_t>(::time(nullptr)); }

// The clock of the index's monitor (when a node died, was set down, was started; when it is
// marked down or brought back): the real one, or with --test-monitor-clock the one the test
// sets (control `monitor-clock MS`, from 0), so that what the monitor has done by a given moment
// of a test does not depend on how fast a busy machine ran the test.
std::atomic<int64_t> g_monitor_clock{0};
int64_t monitor_ms() { return g_cfg.test_monitor_clock ? g_monitor_clock.load() : mono_ms(); }

bool parse_i64(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '-') {
    neg = true;
    i = 1;
    if (s.size() == 1) return false;
  }
  int64_t v = 0;
  for (; i < s.size(); i++) {
    char ch = s[i];
    if (ch < '0' || ch > '9') return false;
    if (v > (INT64_MAX - 9) / 10) return false;
    v = v * 10 + (ch - '0');
  }
  out = neg ? -v : v;
  return true;
}

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  out = v;
  return true;
}

void append_u64(std::string& o, uint64_t v) {
  char buf[24];
  char* end = buf + sizeof(buf);
  char* p = end;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  o.append(p, static_cast<size_t>(end - p));
}

void append_i64(std::string& o, int64_t v) {
  if (v < 0) {
    o += '-';
    append_u64(o, static_cast<uint64_t>(0) - static_cast<uint64_t>(v));
  } else {
    append_u64(o, static_cast<uint64_t>(v));
  }
}

// flared and flarei read each word of a request into a buffer of BUFSIZ (8192) bytes: a longer
// word is cut after 8191 bytes and its rest is read as the next word (node_long_key.txt: a set
// of an 8192-byte key is ERROR twice, a get of one looks up its first 8191 bytes and a 1-byte key).
constexpr size_t kMaxWord = 8191;

void split_words(std::string_view line, std::vector<std::string_view>& w) {
  w.clear();
  size_t i = 0, n = line.size();
  while (i < n) {
    while (i < n && line[i] == ' ') i++;
    if (i >= n) break;
    size_t j = i;
    while (j < n && line[j] != ' ' && j - i < kMaxWord) j++;
    w.push_back(line.substr(i, j - i));
    i = j;
  }
}

bool split_key(std::string_view key, std::string& host, int& port) {
  size_t c = key.rfind(':');
  if (c == std::string_view::npos || c == 0) return false;
  int64_t p;
  if (!parse_i64(key.substr(c + 1), p) || p < 0 || p > 65535) return false;
  host = std::string(key.substr(0, c));
  port = static_cast<int>(p);
  return true;
}

// ------------------------------------------------------------------------------------------ hashing

uint32_t g_crc_table[256];

void init_crc() {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
    g_crc_table[i] = c;
  }
}

int64_t key_hash(std::string_view k) {
  uint32_t r = 0;
  switch (g_hash) {
    case HashAlgo::Simple:
      for (char ch : k) r += static_cast<uint32_t>(static_cast<int32_t>(static_cast<signed char>(ch)));
      break;
    case HashAlgo::Bitshift:
      r = 19790217u;
      for (char ch : k)
        r = r * 37u + static_cast<uint32_t>(static_cast<int32_t>(static_cast<signed char>(ch)));
      break;
    case HashAlgo::Crc32: {
      uint32_t c = 0xFFFFFFFFu;
      for (char ch : k) c = g_crc_table[(c ^ static_cast<unsigned char>(ch)) & 0xFF] ^ (c >> 8);
      r = c ^ 0xFFFFFFFFu;
      break;
    }
  }
  int64_t v = static_cast<int32_t>(r);
  if (v < 0) v = -v;
  return v;
}

// Modular partition map: row n = partition of each virtual bucket when n partitions exist.
class PartitionMap {
 public:
  const int* row(int n) {
    std::lock_guard<std::mutex> lk(mu_);
    while (static_cast<int>(rows_.size()) <= n) build_next();
    return rows_[static_cast<size_t>(n)]->data();
  }

 private:
  void build_next() {
    int i = static_cast<int>(rows_.size());
    size_t v = static_cast<size_t>(g_cfg.modular_virtual);
    auto r = std::make_unique<std::vector<int>>(v, 0);
    if (i == 0) {
    } else if (i <= g_cfg.modular_hint) {
      for (size_t j = 0; j < v; j++) (*r)[j] = static_cast<int>(j % static_cast<size_t>(i));
    } else {
      const std::vector<int>& prev = *rows_.back();
      std::vector<int> cnt(static_cast<size_t>(i), 0);
      for (size_t j = 0; j < v; j++) {
        int k = prev[j];
        cnt[static_cast<size_t>(k)]++;
        (*r)[j] = (cnt[static_cast<size_t>(k)] % i == i - 1) ? i - 1 : k;
      }
    }
    rows_.push_back(std::move(r));
  }
  std::mutex mu_;
  std::vector<std::unique_ptr<std::vector<int>>> rows_;
};

PartitionMap g_pmap;

bool g_stalled = false; // control `stall 1`: constructions make no progress (guarded by g_mu)
std::atomic<int64_t> g_sync_delay_ms{0}; // control `sync-delay`: a failover's `node state` answered late
// control index-gone: flarei's process gone. Its port stays bound meanwhile (every connection is
// closed at its first request): on ephemeral test ports, a port let go could be taken by another
// program, and the tool would then ask something that is not this cluster's index.
std::atomic<bool> g_index_alive{true};

// Partition of KEY when COUNT partitions exist (-1 when COUNT is out of range).
int partition_of(std::string_view key, int count) {
  if (count <= 0 || count > g_cfg.partition_size) return -1;
  int64_t b = key_hash(key) % g_cfg.modular_virtual;
  if (b < 0) b += g_cfg.modular_virtual;
  return g_pmap.row(count)[b];
}

// ------------------------------------------------------------------------------------------ values

struct Blob {
  std::atomic<uint32_t> rc;
  size_t len;
  char* data() { return reinterpret_cast<char*>(this) + sizeof(Blob); }
};

class BlobRef {
 public:
  BlobRef() = default;
  static BlobRef make(size_t len) {
    void* p = std::malloc(sizeof(Blob) + len + 1);
    if (!p) throw std::bad_alloc();
    Blob* b = new (p) Blob;
    b->rc.store(1, std::memory_order_relaxed);
    b->len = len;
    BlobRef r;
    r.b_ = b;
    return r;
  }
  BlobRef(const BlobRef& o) : b_(o.b_) {
    if (b_) b_->rc.fetch_add(1, std::memory_order_relaxed);
  }
  BlobRef(BlobRef&& o) noexcept : b_(o.b_) { o.b_ = nullptr; }
  BlobRef& operator=(const BlobRef& o) {
    if (this != &o) {
      BlobRef tmp(o);
      std::swap(b_, tmp.b_);
    }
    return *this;
  }
  BlobRef& operator=(BlobRef&& o) noexcept {
    if (this != &o) {
      release();
      b_ = o.b_;
      o.b_ = nullptr;
    }
    return *this;
  }
  ~BlobRef() { release(); }
  const char* data() const { return b_ ? b_->data() : ""; }
  char* wdata() { return b_->data(); }
  size_t size() const { return b_ ? b_->len : 0; }

 private:
  void release() {
    if (b_ && b_->rc.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      b_->~Blob();
      std::free(b_);
    }
    b_ = nullptr;
  }
  Blob* b_ = nullptr;
};

struct Item {
  uint32_t flags = 0;
  int64_t expire = 0;  // absolute unix time, 0 = never
  uint64_t version = 0;
  BlobRef val;
};

using Store = std::map<std::string, Item, std::less<>>;

bool expired(const Item& it, int64_t now) { return it.expire != 0 && it.expire <= now; }

int64_t calc_expire(int64_t exptime) {
  if (exptime == 0) return 0;
  if (exptime < 0) return 1;
  if (exptime <= 2592000) return unix_now() + exptime;
  return exptime;
}

// ------------------------------------------------------------------------------------------ model

enum class Role { Master, Slave, Proxy };
enum class State { Active, Prepare, Down, Ready };
enum class Kind { Index, Node, Control };

const char* role_name(Role r) {
  switch (r) {
    case Role::Master: return "master";
    case Role::Slave: return "slave";
    default: return "proxy";
  }
}
int role_code(Role r) { return r == Role::Master ? 0 : r == Role::Slave ? 1 : 2; }
const char* state_name(State s) {
  switch (s) {
    case State::Active: return "active";
    case State::Prepare: return "prepare";
    case State::Down: return "down";
    default: return "ready";
  }
}
int state_code(State s) {
  switch (s) {
    case State::Active: return 0;
    case State::Prepare: return 1;
    case State::Down: return 2;
    default: return 3;
  }
}
bool parse_role(std::string_view w, Role& r) {
  if (w == "master") r = Role::Master;
  else if (w == "slave") r = Role::Slave;
  else if (w == "proxy") r = Role::Proxy;
  else return false;
  return true;
}
bool parse_state(std::string_view w, State& s) {
  if (w == "active") s = State::Active;
  else if (w == "prepare") s = State::Prepare;
  else if (w == "down") s = State::Down;
  else if (w == "ready") s = State::Ready;
  else return false;
  return true;
}

struct MapEntry {
  std::string key, host;
  int port = 0;
  Role role = Role::Proxy;
  State state = State::Active;
  int partition = -1;
  int balance = 0;
  int thread_type = 0;
  int monitor_tid = 0, repl_tid = 0;
  int recon_tid = 0, dump_tid = 0;  // its copy threads while it is built (stats threads)
  int64_t added_unix = 0;
  int node_idx = -1;          // fake node serving this key, -1 = nothing listens there
  int64_t down_since = 0;     // mono ms
  int64_t unreach_since = -1; // mono ms, -1 = reachable
  // Promoted by the monitor while stopped (stall): flarei's down handler syncs the new master
  // first and blocks on it, so it is not marked down while it stays stopped (a real flare 1.3.4:
  // master and slave SIGSTOPped, the slave promoted and listed master active for over a minute).
  bool sync_blocked = false;
  // control `lag`: replication towards this slave as its master shows it (`stats threads slave`)
  int64_t lag_queue = 0, lag_behind = 0, lag_drain = 0, lag_set_ms = 0;
  // copy job while state == prepare
  std::string cursor;
  bool cursor_valid = false;
  int src_part = 0;
  double allowance = 0;
  double byte_credit = 0;      // the new node's reconstruction-bwlimit: bytes it may still take
  int64_t copy_started_unix = 0;
  // A new partition's master: the node it reads partition src_part's share from, fixed once it
  // began (a real flared reads it over one connection: a failover meanwhile does not move the
  // copy, a SIGSTOPped source leaves it blocked, a source that dies fails it).
  std::string copy_from;
  // A slave whose copy ended while the index was gone (control index-gone): flared 1.3.4 retries
  // its report (cluster::activate_node, 16 tries 500 ms apart) and then gives up, leaving the node
  // slave prepare for good with no copy running (seen on a real cluster, flarei killed for 20 s).
  int64_t done_at = -1; // mono ms the copy ended unreported, -1 none
  bool report_lost = false;
  void reset_copy() {
    done_at = -1;
    report_lost = false;
    cursor.clear();
    cursor_valid = false;
    src_part = 0;
    copy_from.clear();
    allowance = 0;
    byte_credit = 0;
    copy_started_unix = unix_now();
  }
};

using NodeMap = std::map<std::string, MapEntry>;

struct Endpoint;

struct FakeNode {
  int idx = 0;
  Endpoint* ep = nullptr;
  std::string key;
  // guarded by g_mu
  bool alive = true;
  int64_t alive_since = 0;  // mono ms of the last `start`
  Store store;
  uint64_t data_bytes = 0;
  int64_t start_unix = 0;
  uint64_t total_items = 0, cmd_get = 0, cmd_set = 0, get_hits = 0, get_misses = 0;
  uint64_t delete_hits = 0, delete_misses = 0, incr_hits = 0, incr_misses = 0, decr_hits = 0,
           decr_misses = 0;
  uint64_t cas_hits = 0, cas_misses = 0, cas_badval = 0, touch_hits = 0, touch_misses = 0;
  // one iteration of the database at a time (dump, dump_key): another answers
  // `SERVER_ERROR database busy`, as a real flared 1.3.4 does (tests/data/flare-protocol.md)
  bool iterating = false;
  // the map a node held when the index went back to an older one (control index-restart): it
  // ignores the index's maps until one is newer than floor_version (0 = none)
  uint64_t floor_version = 0;
  NodeMap floor_map;
  // control `map-hold`: the node keeps the map it holds and takes none of the index's (a node
  // the index's pushes do not reach), until `map-hold NODE 0`
  bool map_held = false;
  uint64_t held_version = 0;
  NodeMap held_map;
  // flared's reconstruction-bwlimit (KB/s, 0 = unlimited; control reconstruction-bwlimit): a
  // construction of this node takes each item whole, then waits size/rate before the next one
  int64_t recon_bwlimit_kb = 0;
  bool has_snapshot = false;
  NodeMap snapshot;
  uint64_t snapshot_version = 0;
  // replication lag (control repl-lag): writes its master replicated to it that it has not
  // applied yet, oldest first (erase = a delete); at most repl_lag of them wait
  struct Pending {
    std::string key;
    Item item;
    bool erase = false;
  };
  uint64_t repl_lag = 0;
  std::deque<Pending> repl_queue;
  // the map pushed by `node sync`, shown until the index's map changes again
  bool has_synced = false;
  NodeMap synced;
  uint64_t synced_version = 0, synced_at = 0;
  void reset_counters() {
    total_items = cmd_get = cmd_set = get_hits = get_misses = 0;
    delete_hits = delete_misses = incr_hits = incr_misses = decr_hits = decr_misses = 0;
    cas_hits = cas_misses = cas_badval = touch_hits = touch_misses = 0;
  }
};

struct Override {
  std::string bytes;
  uint64_t repeat = 1;
  bool once = false; // the first request only, then gone
  bool close = false;
};

struct Endpoint {
  Kind kind = Kind::Index;
  int node_idx = -1;
  std::string key;
  int port = 0;
  std::atomic<int> delay_ms{0}, stats_delay_ms{0}, drip_ms{0};
  std::atomic<int64_t> set_service_us{0};
  std::atomic<int64_t> kill_after{0};  // control kill-after: storage commands left before it dies
  std::atomic<int64_t> dump_kbps{0};
  std::atomic<int64_t> cut{0};
  std::atomic<bool> hang{false}, has_override{false};
  std::atomic<bool> stalled{false};  // control `stall TARGET 1`: as a SIGSTOPped process
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0};
  // guarded by g_mu
  std::map<std::string, Override, std::less<>> overrides;
  bool refused = false, want_listen = true;
  std::string listen_err;
  uint64_t total_connections = 0;
  size_t open_connections = 0;  // its entries in g_conns (O(1) for 2,000 nodes' stats)
  // acceptor thread only (main before the acceptor starts)
  int listen_fd = -1;
  uint64_t listen_opens = 0;  // listeners opened so far: a reopened one may reuse its fd number
  // While it does not listen: a socket bound to its port, not listening (park_listener). The
  // port refuses connections (as a dead process's) yet stays this process's.
  int parked_fd = -1;
};

struct Conn {
  int fd = -1;
  Endpoint* ep = nullptr;
  int tid = 0;
  std::string peer;
  int64_t accepted_unix = 0;
  std::atomic<bool> killed{false}, done{false};  // done: its worker no longer touches it
  // guarded by g_mu
  std::list<Conn*>::iterator in_conns;  // its place in g_conns: removal in O(1)
  std::string op;
  bool executing = false;
  // owner thread only (the acceptor's event loop, then the worker it is handed to)
  std::string out;
  uint64_t sent = 0;
  std::vector<std::string_view> words;
  std::string pending_in;         // read by the event loop, not yet answered: the worker's first input
  bool skip_stats_delay = false;  // the event loop has waited stats-delay for the next `stats` already
  bool stats_timer = false;       // the event loop: waiting out stats-delay
};

// ------------------------------------------------------------------------------------------ globals

std::mutex g_mu;
std::condition_variable g_listen_cv;
uint64_t g_listen_req = 0, g_listen_done = 0;
NodeMap g_map;
uint64_t g_map_version = 0;
int g_next_thread_type = 16;
std::vector<std::unique_ptr<FakeNode>> g_nodes;  // fixed after startup
std::unique_ptr<Endpoint> g_index_ep, g_control_ep;
std::vector<std::unique_ptr<Endpoint>> g_node_eps;
std::vector<Endpoint*> g_endpoints;  // fixed after startup
std::list<Conn*> g_conns;            // g_mu
// The request log has a mutex of its own: every request of 2,000 connections at once taking
// g_mu for it made them queue behind each other.
std::mutex g_reqlog_mu;
std::deque<std::string> g_reqlog;    // g_reqlog_mu
uint64_t g_reqlog_dropped = 0;       // g_reqlog_mu
std::vector<std::unique_ptr<Conn>> g_owned;  // acceptor thread, then main

std::atomic<bool> g_stop{false};
// Sleepers wait on one of several condition variables (by connection): 2,000 connections
// waking together from one `stats-delay` would otherwise queue for a single mutex.
struct SleepShard {
  std::mutex mu;
  std::condition_variable cv;
};
SleepShard g_sleep[64];
int g_wake_pipe[2] = {-1, -1};
int g_sig_pipe[2] = {-1, -1};
int64_t g_start_unix = 0;
std::atomic<int> g_next_tid{3};

void wake_sleepers() {
  for (auto& sh : g_sleep) {
    { std::lock_guard<std::mutex> lk(sh.mu); }
    sh.cv.notify_all();
  }
}

// Sleep up to US microseconds; false when the connection was killed or we are stopping.
bool nap_us(int64_t us, Conn* c) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  SleepShard& sh = g_sleep[c ? static_cast<size_t>(c->tid) % std::size(g_sleep) : 0];
  std::unique_lock<std::mutex> lk(sh.mu);
  while (!g_stop.load() && !(c && c->killed.load())) {
    if (sh.cv.wait_until(lk, deadline) == std::cv_status::timeout) break;
  }
  return !(g_stop.load() || (c && c->killed.load()));
}

bool nap_ms(int64_t ms, Conn* c) { return nap_us(ms * 1000, c); }

void log_request(const Endpoint* ep, std::string_view line) {
  std::lock_guard<std::mutex> lk(g_reqlog_mu);
  if (g_reqlog.size() >= kReqLogMax) {
    g_reqlog_dropped++;
    return;
  }
  std::string s;
  s.reserve(ep->key.size() + 1 + line.size());
  s += ep->key;
  s += ' ';
  s += line;
  g_reqlog.push_back(std::move(s));
}

// ------------------------------------------------------------------------------------------ cluster (g_mu held)

FakeNode* node_of(const MapEntry& e) {
  return e.node_idx >= 0 ? g_nodes[static_cast<size_t>(e.node_idx)].get() : nullptr;
}
// g_mu held: a node's process starts or dies. Counted, so that tick() can tell nothing changed.
uint64_t g_alive_edits = 0;
void set_alive(FakeNode& n, bool alive) {
  n.alive = alive;
  g_alive_edits++;
}
// A node whose flared process runs (killed: not; stopped by `stall`, as SIGSTOP: still runs).
bool entry_alive(const MapEntry& e) {
  FakeNode* n = node_of(e);
  return n && n->alive;
}

// What flarei's monitor sees: a node that answers its ping. A stopped process (`stall NODE 1`,
// as SIGSTOP) does not: the monitor marks it down after its threshold as it does a dead one, as
// a real flarei does (handler_monitor pings each node and counts the failures).
bool monitor_alive(const MapEntry& e) {
  FakeNode* n = node_of(e);
  return n && n->alive && !n->ep->stalled.load();
}

int resolve_node(const std::string& host, int port) {
  bool loop_alias = host == g_cfg.host || host == "localhost" || host == "127.0.0.1";
  if (!loop_alias) return -1;
  for (auto& n : g_nodes)
    if (n->ep->port == port) return n->idx;
  return -1;
}

// Every change of the map: the version goes up, and so does g_map_edits, which never goes back
// (index-restart lowers the version) and keys the caches built from the map.
uint64_t g_map_edits = 0;
void bump() {
  g_map_version++;
  g_map_edits++;
}

MapEntry& add_entry(const std::string& host, int port) {
  MapEntry e;
  e.key = host + ":" + std::to_string(port);
  e.host = host;
  e.port = port;
  e.thread_type = g_next_thread_type++;
  e.monitor_tid = g_next_tid++;
  e.repl_tid = g_next_tid++;
  e.recon_tid = g_next_tid++;
  e.dump_tid = g_next_tid++;
  e.added_unix = unix_now();
  e.node_idx = resolve_node(host, port);
  std::string key = e.key;
  MapEntry& ref = g_map[key] = std::move(e);
  bump();
  return ref;
}

MapEntry* master_of(int p) {
  MapEntry* found = nullptr;
  for (auto& kv : g_map) {
    MapEntry& e = kv.second;
    if (e.role == Role::Master && e.partition == p) {
      if (!found || (found->state == State::Down && e.state != State::Down)) found = &e;
    }
  }
  return found;
}

// Number of partitions used to route keys: leading partitions whose master is active or down.
int routing_count() {
  int k = 0;
  for (;;) {
    MapEntry* m = master_of(k);
    if (m && (m->state == State::Active || m->state == State::Down)) k++;
    else return k;
  }
}

void to_proxy(MapEntry& e, State s) {
  e.role = Role::Proxy;
  e.state = s;
  e.partition = -1;
  e.balance = 0;
  e.reset_copy();
}

void reset_partition_slaves(int p, bool only_prepare) {
  for (auto& kv : g_map) {
    MapEntry& e = kv.second;
    if (e.role == Role::Slave && e.partition == p && (!only_prepare || e.state == State::Prepare))
      to_proxy(e, State::Active);
  }
}

// POS = n.store.lower_bound(key)
void node_put_at(FakeNode& n, Store::iterator pos, std::string_view key, const Item& it) {
  if (pos != n.store.end() && pos->first == key) {
    n.data_bytes -= item_bytes(pos->first.size(), pos->second.val.size());
    pos->second = it;
  } else {
    n.store.emplace_hint(pos, std::string(key), it);
  }
  n.total_items++;
  n.data_bytes += item_bytes(key.size(), it.val.size());
}

void node_put(FakeNode& n, std::string_view key, const Item& it) {
  node_put_at(n, n.store.lower_bound(key), key, it);
}

bool node_erase(FakeNode& n, std::string_view key) {
  auto pos = n.store.find(key);
  if (pos == n.store.end()) return false;
  n.data_bytes -= item_bytes(pos->first.size(), pos->second.val.size());
  n.store.erase(pos);
  return true;
}

bool copy_target(const MapEntry& s, const FakeNode* master_node) {
  return s.role == Role::Slave && (s.state == State::Active || s.state == State::Prepare) &&
         entry_alive(s) && node_of(s) != master_node;
}

// Store on master entry M's node and on its partition's slaves.
void put_with_slaves(MapEntry& m, std::string_view key, const Item& it) {
  FakeNode* mn = node_of(m);
  if (!mn) return;
  node_put(*mn, key, it);
  for (auto& kv : g_map) {
    MapEntry& s = kv.second;
    if (s.partition == m.partition && copy_target(s, mn)) node_put(*node_of(s), key, it);
  }
}

void mark_down(MapEntry& e) {
  if (e.state == State::Down) return;
  if (e.role == Role::Master) {
    int p = e.partition;
    if (e.state == State::Active) {
      MapEntry* best = nullptr;
      bool any_pos = false;
      for (auto& kv : g_map) {
        MapEntry& s = kv.second;
        // As flarei's down_node: the map decides, not whether the slave's flared still runs
        // (a slave killed a moment ago, still listed active, is promoted: issue 18 part 4).
        if (s.role == Role::Slave && s.partition == p && s.state == State::Active) {
          if (!best || s.balance > best->balance) best = &s;
          if (s.balance > 0) any_pos = true;
        }
      }
      if (best) {
        best->role = Role::Master;
        best->state = State::Active;
        if (!any_pos) best->balance = 1;
        if (FakeNode* bn = node_of(*best)) {
          bn->repl_queue.clear();  // the old master's writes not yet replicated
          if (bn->ep->stalled.load()) best->sync_blocked = true;
        }
        best->reset_copy();
        for (auto& kv : g_map) {
          MapEntry& s = kv.second;
          if (s.role == Role::Slave && s.partition == p && s.state == State::Prepare) s.reset_copy();
        }
        to_proxy(e, State::Down);
      } else {
        e.state = State::Down;  // preserved master
        reset_partition_slaves(p, true);
      }
    } else {
      reset_partition_slaves(p, false);
      to_proxy(e, State::Down);
    }
  } else {
    to_proxy(e, State::Down);
  }
  e.down_since = monitor_ms();
  bump();
}

int64_t partition_total(int p, const MapEntry* skip) {
  int64_t t = 0;
  for (auto& kv : g_map) {
    const MapEntry& e = kv.second;
    if (&e != skip && e.role != Role::Proxy && e.partition == p) t += e.balance;
  }
  return t;
}

bool set_role(MapEntry& e, Role role, int64_t balance, int64_t partition) {
  if (balance < 0 || balance > INT_MAX) return false;
  if (e.state == State::Down) return false;
  int b = static_cast<int>(balance);
  switch (e.role) {
    case Role::Proxy: {
      if (role == Role::Proxy) return true;
      if (partition < 0 || partition >= g_cfg.partition_size) return false;
      int p = static_cast<int>(partition);
      MapEntry* m = master_of(p);
      if (role == Role::Master) {
        if (b <= 0) return false;
        if (m) {
          if (m->state != State::Down) return false;
          // Take over a preserved master's partition: like flarei, the old master stays in the
          // map as master/down beside the new one (index_takeover_of_down_master.txt).
          e.role = Role::Master;
          e.state = State::Active;
          e.partition = p;
          e.balance = b;
          e.reset_copy();
          bump();
          return true;
        }
        int next = 0;
        for (auto& kv : g_map)
          if (kv.second.role == Role::Master) next = std::max(next, kv.second.partition + 1);
        if (p != next) return false;
        e.role = Role::Master;
        e.partition = p;
        e.balance = b;
        e.state = p == 0 ? State::Active : State::Prepare;
        e.reset_copy();
        bump();
        return true;
      }
      if (!m || m->state == State::Down) return false;
      e.role = Role::Slave;
      e.partition = p;
      e.state = State::Prepare;
      e.balance = m->state == State::Active ? 0 : b;
      e.reset_copy();
      bump();
      if (FakeNode* src = node_of(*m); src && src->iterating) {
        // The master is busy with a dump: its `dump` answers SERVER_ERROR database busy, the
        // construction fails at once and flared falls back to proxy (log: "failed to reconstruct
        // (SERVER_ERROR database busy)"; tests/data/flare-protocol.md "Hard states").
        to_proxy(e, State::Active);
        bump();
      }
      return true;
    }
    case Role::Master:
      if (role == Role::Slave) return false;
      if (role == Role::Proxy) {
        if (e.state == State::Active) return false;
        reset_partition_slaves(e.partition, false);
        to_proxy(e, State::Active);
        bump();
        return true;
      }
      if (partition_total(e.partition, &e) + b <= 0) return false;
      e.balance = b;
      bump();
      return true;
    case Role::Slave:
      if (role == Role::Master) return false;
      if (role == Role::Proxy) {
        to_proxy(e, State::Active);
        bump();
        return true;
      }
      if (e.state == State::Prepare && b != e.balance) {
        MapEntry* m = master_of(e.partition);
        if (m && m->state == State::Active) return false;
      }
      if (partition_total(e.partition, &e) + b <= 0) return false;
      e.balance = b;
      bump();
      return true;
  }
  return false;
}

bool set_state(MapEntry& e, State s) {
  switch (s) {
    case State::Prepare:
      return false;
    case State::Ready:
      if (e.state != State::Prepare) return false;
      e.state = State::Ready;
      bump();
      return true;
    case State::Active:
      if (e.state == State::Active) return true;
      // A new partition's master still copying: flarei refuses (seen on a real flare 1.3.4:
      // `node state H P active` -> SERVER_ERROR failed to set state); a slave in prepare is
      // made active at once, its copy unfinished (also seen there).
      if (e.role == Role::Master && e.state == State::Prepare) return false;
      if (e.state == State::Down) {
        if (e.role == Role::Master) e.state = State::Active;
        else to_proxy(e, State::Active);
        e.unreach_since = monitor_alive(e) ? -1 : monitor_ms();
      } else {
        e.state = State::Active;
      }
      e.reset_copy();
      bump();
      return true;
    case State::Down:
      mark_down(e);
      return true;
  }
  return false;
}

bool remove_entry(const std::string& key) {
  auto it = g_map.find(key);
  if (it == g_map.end()) return false;
  const MapEntry& d = it->second;
  if (d.state != State::Down) return false;
  if (d.role == Role::Master) {
    // A preserved master (the last of its partition) stays; after a takeover it may go.
    bool other = false;
    for (auto& kv : g_map)
      if (&kv.second != &d && kv.second.role == Role::Master && kv.second.partition == d.partition) other = true;
    if (!other) return false;
  }
  FakeNode* n = node_of(it->second);
  if (n && n->key == key) {
    n->snapshot = g_map;
    n->has_snapshot = true;
    n->snapshot_version = g_map_version;
  }
  g_map.erase(it);
  bump();
  return true;
}

const NodeMap& node_view(const FakeNode& n, uint64_t& version) {
  if (n.map_held) {
    version = n.held_version;
    return n.held_map;
  }
  if (n.floor_version > 0) {
    // A node that holds a newer map than the index's (index-restart) ignores the index's maps
    // until one is newer than its own; from then on it follows the index again.
    if (g_map_version <= n.floor_version) {
      version = n.floor_version;
      return n.floor_map;
    }
    const_cast<FakeNode&>(n).floor_version = 0;
    const_cast<FakeNode&>(n).floor_map.clear();
  }
  if (n.has_synced && n.synced_at == g_map_version) {
    version = n.synced_version;
    return n.synced;
  }
  if (g_map.count(n.key) || !n.has_snapshot) {
    version = g_map_version;
    return g_map;
  }
  version = n.snapshot_version;
  return n.snapshot;
}

// ---- copy jobs (timer thread)

// A new node with a reconstruction-bwlimit takes each item whole and then owes its size: it
// takes nothing more until its credit is back above 0, and its copy ends only then (a real
// flared 1.3.4 with reconstruction-bwlimit 4096: a 64 MiB value arrives at once, then the node
// is silent for 16 s, its item count flat, its reconstruction thread still in `dump`).
bool byte_credit_left(const MapEntry& e, const FakeNode* dst) { return !dst || dst->recon_bwlimit_kb <= 0 || e.byte_credit > 0; }
void owe_bytes(MapEntry& e, const FakeNode* dst, const Item& it) {
  if (dst && dst->recon_bwlimit_kb > 0) e.byte_credit -= static_cast<double>(it.val.size());
}

void copy_slave(MapEntry& e) {
  if (e.done_at >= 0) { // the copy is over; its report waits for the index
    if (e.report_lost) return;
    if (mono_ms() - e.done_at > g_cfg.report_retry_ms) {
      e.report_lost = true;
      return;
    }
    if (!g_index_alive) return;
    e.state = State::Active;
    e.reset_copy();
    bump();
    return;
  }
  MapEntry* m = master_of(e.partition);
  if (!m || m->state == State::Down || !entry_alive(*m) || !entry_alive(e)) return;
  FakeNode* src = node_of(*m);
  FakeNode* dst = node_of(e);
  // A master stopped as on SIGSTOP (`stall MASTER 1`) sends nothing: the copy waits, its
  // reconstruction thread still shown on the new node, blocked reading (copy_sources).
  if (src != dst && src->ep->stalled.load()) return;
  long budget = static_cast<long>(e.allowance);
  long n = 0;
  if (src != dst) {
    auto it = e.cursor_valid ? src->store.upper_bound(e.cursor) : src->store.begin();
    auto end = src->store.end();
    for (; it != end && n < budget && byte_credit_left(e, dst); ++it, ++n) {
      node_put(*dst, it->first, it->second);
      owe_bytes(e, dst, it->second);
      e.cursor = it->first;
      e.cursor_valid = true;
    }
    e.allowance -= static_cast<double>(n);
    if (it != end) return;
  }
  if (dst && dst->recon_bwlimit_kb > 0 && e.byte_credit < 0) return;  // the dump's END comes after the wait
  if (m->state != State::Prepare && !g_index_alive) {
    e.done_at = mono_ms(); // reported when the index is back within report-retry-ms, else never
    return;
  }
  if (m->state != State::Prepare) {
    e.state = State::Active;
    e.reset_copy();
    bump();
  }
}

void copy_master(MapEntry& e) {
  if (!entry_alive(e)) return;
  FakeNode* dst = node_of(e);
  int P = e.partition;
  int cnt = P + 1;
  long budget = static_cast<long>(e.allowance);
  long n = 0, scanned = 0, scan_limit = budget * 8 + 4096;
  while (e.src_part < P && n < budget && scanned < scan_limit && byte_credit_left(e, dst)) {
    MapEntry* m = nullptr;
    if (!e.copy_from.empty()) {
      auto from = g_map.find(e.copy_from);
      m = from != g_map.end() && entry_alive(from->second) ? &from->second : nullptr;
    } else {
      m = master_of(e.src_part);
      if (m && (m->state != State::Active || !entry_alive(*m) || node_of(*m) == dst)) m = nullptr;
    }
    if (!m) {
      e.src_part++;
      e.cursor_valid = false;
      e.copy_from.clear();
      continue;
    }
    e.copy_from = m->key;
    FakeNode* src = node_of(*m);
    if (src->ep->stalled.load()) break;  // a source stopped as on SIGSTOP sends nothing (copy_slave)
    auto it = e.cursor_valid ? src->store.upper_bound(e.cursor) : src->store.begin();
    auto end = src->store.end();
    for (; it != end && n < budget && scanned < scan_limit && byte_credit_left(e, dst); ++it) {
      ++scanned;
      e.cursor = it->first;
      e.cursor_valid = true;
      if (partition_of(it->first, cnt) == P) {
        put_with_slaves(e, it->first, it->second);
        owe_bytes(e, dst, it->second);
        ++n;
      }
    }
    if (it == end) {
      e.src_part++;
      e.cursor_valid = false;
      e.copy_from.clear();
    }
  }
  e.allowance -= static_cast<double>(n);
  if (e.src_part >= P && byte_credit_left(e, dst)) {
    e.state = State::Ready;
    e.reset_copy();
    bump();
  }
}

// g_mu held: the entries in prepare, from a list rebuilt when the map changes (as
// slaves_of_partition: every `stats` of 2,000 nodes walking the whole map was 4M steps).
const std::vector<MapEntry*>& entries_in_prepare() {
  static uint64_t built_version = UINT64_MAX;
  static size_t built_size = 0;
  static std::vector<MapEntry*> list;
  if (built_version != g_map_edits || built_size != g_map.size()) {
    list.clear();
    for (auto& kv : g_map)
      if (kv.second.state == State::Prepare) list.push_back(&kv.second);
    built_version = g_map_edits;
    built_size = g_map.size();
  }
  return list;
}

// g_mu held: the index's monitor looks at every node once, at monitor time `now`.
void monitor_walk(int64_t now) {
  // The monitor's walk over the map finds nothing to do while every node is alive and none is
  // down; it is skipped until the map or a node's life changes (2,000 entries every 10 ms held
  // g_mu for most of a millisecond, and cost the fake 7% of a core while idle).
  static uint64_t quiet_edits = UINT64_MAX, quiet_alive = UINT64_MAX;
  bool quiet = g_index_alive && quiet_edits == g_map_edits && quiet_alive == g_alive_edits;
  bool all_well = g_index_alive.load();
  for (auto it = g_map.begin(); !quiet && it != g_map.end(); ++it) {
    MapEntry& e = it->second;
    if (!g_index_alive) break;  // flarei's monitor is gone with it (control index-gone)
    if (e.state == State::Down) all_well = false;
    if (!monitor_alive(e)) {
      all_well = false;
      if (e.unreach_since < 0) e.unreach_since = now;
      if (e.state != State::Down && !e.sync_blocked && now - e.unreach_since >= g_cfg.dead_after_ms) mark_down(e);
    } else {
      e.unreach_since = -1;
      e.sync_blocked = false;
      int64_t since = std::max(e.down_since, node_of(e)->alive_since);
      if (e.state == State::Down && now - since >= g_cfg.revive_ms) {
        // The monitor's next good ping: a live node set down comes back as proxy/active, except a
        // preserved master (still the only master of its partition), which comes back as
        // master/active (index_master_down_no_slave.txt); a master whose partition was taken over
        // comes back as a proxy (index_takeover_then_old_master_returns.txt).
        bool taken = false;
        if (e.role == Role::Master)
          for (auto& o : g_map)
            if (&o.second != &e && o.second.role == Role::Master && o.second.partition == e.partition &&
                o.second.state != State::Down)
              taken = true;
        if (e.role == Role::Master && !taken) e.state = State::Active;
        else to_proxy(e, State::Active);
        bump();
      }
    }
  }
  if (!quiet) {
    quiet_edits = all_well ? g_map_edits : UINT64_MAX;
    quiet_alive = all_well ? g_alive_edits : UINT64_MAX;
  }
}

void tick(double dt) {
  std::lock_guard<std::mutex> lk(g_mu);
  monitor_walk(monitor_ms());
  double cap = std::max(g_cfg.copy_rate * 0.05, 1.0);
  // A copy, since a copy step may change the map (and so the list).
  std::vector<MapEntry*> preparing = entries_in_prepare();
  for (MapEntry* pe : preparing) {
    MapEntry& e = *pe;
    if (e.state != State::Prepare || g_stalled) continue;
    e.allowance = std::min(e.allowance + g_cfg.copy_rate * dt, cap);
    if (FakeNode* dst = node_of(e); dst && dst->recon_bwlimit_kb > 0) {
      double rate = static_cast<double>(dst->recon_bwlimit_kb) * 1024;
      e.byte_credit = std::min(e.byte_credit + rate * dt, rate * 0.05);
    }
    if (e.role == Role::Slave) copy_slave(e);
    else if (e.role == Role::Master) copy_master(e);
  }
}

// ---- routing for data requests

struct Route {
  int pc = 0;
  int p = -1;
  MapEntry* m = nullptr;
  FakeNode* mn = nullptr;
};
enum class RouteRes { Ok, NoPartition, ProxyFailure };

RouteRes route(std::string_view key, Route& r) {
  r.pc = routing_count();
  if (r.pc == 0) return RouteRes::NoPartition;
  r.p = partition_of(key, r.pc);
  r.m = master_of(r.p);
  if (!r.m || r.m->state != State::Active || !entry_alive(*r.m)) return RouteRes::ProxyFailure;
  r.mn = node_of(*r.m);
  return RouteRes::Ok;
}

MapEntry* preparing_target(const Route& r, std::string_view key) {
  if (r.pc + 1 > g_cfg.partition_size) return nullptr;
  MapEntry* nm = master_of(r.pc);
  if (nm && (nm->state == State::Prepare || nm->state == State::Ready) && entry_alive(*nm) &&
      partition_of(key, r.pc + 1) == r.pc)
    return nm;
  return nullptr;
}

// A write the master replicates to slave node S: applied at once, or queued behind the writes
// before it when S lags (control repl-lag), the oldest applied once more than the lag wait.
void replicate_to(FakeNode& s, std::string_view key, const Item* it) {
  if (s.repl_lag == 0 && s.repl_queue.empty()) {
    if (it) node_put(s, key, *it);
    else node_erase(s, key);
    return;
  }
  FakeNode::Pending w;
  w.key.assign(key.data(), key.size());
  if (it) w.item = *it;
  w.erase = it == nullptr;
  s.repl_queue.push_back(std::move(w));
  while (s.repl_queue.size() > s.repl_lag) {
    FakeNode::Pending& f = s.repl_queue.front();
    if (f.erase) node_erase(s, f.key);
    else node_put(s, f.key, f.item);
    s.repl_queue.pop_front();
  }
}

void replicate_put(const Route& r, std::string_view key, const Item& it) {
  for (auto& kv : g_map) {
    MapEntry& s = kv.second;
    if (s.partition == r.p && copy_target(s, r.mn)) replicate_to(*node_of(s), key, &it);
  }
  if (MapEntry* nm = preparing_target(r, key)) put_with_slaves(*nm, key, it);
}

void replicate_erase(const Route& r, std::string_view key) {
  for (auto& kv : g_map) {
    MapEntry& s = kv.second;
    if (s.partition == r.p && copy_target(s, r.mn)) replicate_to(*node_of(s), key, nullptr);
  }
  if (MapEntry* nm = preparing_target(r, key)) {
    FakeNode* mn = node_of(*nm);
    node_erase(*mn, key);
    for (auto& kv : g_map) {
      MapEntry& s = kv.second;
      if (s.partition == nm->partition && copy_target(s, mn)) node_erase(*node_of(s), key);
    }
  }
}

const Item* read_item(std::string_view key, int64_t now) {
  Route r;
  if (route(key, r) != RouteRes::Ok) return nullptr;
  auto it = r.mn->store.find(key);
  if (it == r.mn->store.end() || expired(it->second, now)) return nullptr;
  return &it->second;
}

// ------------------------------------------------------------------------------------------ output

bool send_raw(Conn* c, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(c->fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
    c->ep->bytes_written.fetch_add(static_cast<uint64_t>(w), std::memory_order_relaxed);
  }
  return true;
}

// Send honoring the cut/drip knobs; false = close the connection.
bool write_bytes(Conn* c, const char* p, size_t n) {
  if (c->killed.load()) return false;
  int64_t cut = c->ep->cut.load();
  bool cut_hit = false;
  if (cut > 0) {
    uint64_t limit = static_cast<uint64_t>(cut);
    if (c->sent >= limit) return false;
    uint64_t allow = limit - c->sent;
    if (n >= allow) {
      n = static_cast<size_t>(allow);
      cut_hit = true;
    }
  }
  int drip = c->ep->drip_ms.load();
  if (drip > 0) {
    for (size_t i = 0; i < n; i++) {
      if (!nap_ms(drip, c)) return false;
      if (!send_raw(c, p + i, 1)) return false;
      c->sent++;
    }
  } else {
    if (!send_raw(c, p, n)) return false;
    c->sent += n;
  }
  return !cut_hit;
}

bool flush(Conn* c) {
  if (c->out.empty()) return true;
  bool ok = write_bytes(c, c->out.data(), c->out.size());
  c->out.clear();
  if (c->out.capacity() > (8u << 20)) c->out.shrink_to_fit();
  return ok;
}

// Delays applied before a reply.
bool pre_reply(Conn* c, std::string_view line) {
  int d = c->ep->delay_ms.load();
  if (d > 0) {
    if (!flush(c)) return false;
    if (!nap_ms(d, c)) return false;
  }
  if (line == "stats") {
    int sd = c->ep->stats_delay_ms.load();
    if (std::exchange(c->skip_stats_delay, false)) sd = 0;
    if (sd > 0) {
      if (!flush(c)) return false;
      if (!nap_ms(sd, c)) return false;
    }
  }
  return true;
}

// WORD matches every request whose first word it is; `+WORD` only the request WORD alone
// (`+stats`: a node's plain `stats`, not its `stats threads slave`).
bool check_override(Conn* c, std::string_view word, Override& ov, bool alone = false) {
  if (!c->ep->has_override.load()) return false;
  std::lock_guard<std::mutex> lk(g_mu);
  if (alone) {
    auto exact = c->ep->overrides.find("+" + std::string(word));
    if (exact != c->ep->overrides.end()) {
      ov = exact->second;
      return true;
    }
  }
  auto it = c->ep->overrides.find(word);
  if (it == c->ep->overrides.end()) return false;
  ov = it->second;
  if (ov.once) {
    c->ep->overrides.erase(it);
    c->ep->has_override = !c->ep->overrides.empty();
  }
  return true;
}

bool send_override(Conn* c, const Override& ov, std::string_view line) {
  if (!pre_reply(c, line)) return false;
  if (!flush(c)) return false;
  if (!ov.bytes.empty() && ov.repeat > 0) {
    uint64_t per = std::max<uint64_t>(1, 65536 / ov.bytes.size());
    per = std::min(per, ov.repeat);
    std::string chunk;
    chunk.reserve(static_cast<size_t>(per) * ov.bytes.size());
    for (uint64_t i = 0; i < per; i++) chunk += ov.bytes;
    uint64_t left = ov.repeat;
    while (left >= per) {
      if (!write_bytes(c, chunk.data(), chunk.size())) return false;
      left -= per;
    }
    for (uint64_t i = 0; i < left; i++)
      if (!write_bytes(c, ov.bytes.data(), ov.bytes.size())) return false;
  }
  return !ov.close;
}

void stat_line(std::string& o, const char* name, uint64_t v) {
  o += "STAT ";
  o += name;
  o += ' ';
  append_u64(o, v);
  o += "\r\n";
}

void append_map(std::string& o, const NodeMap& m) {
  for (auto& kv : m) {
    const MapEntry& e = kv.second;
    o += "STAT " + e.key + ":role " + role_name(e.role) + "\r\n";
    o += "STAT " + e.key + ":state " + state_name(e.state) + "\r\n";
    o += "STAT " + e.key + ":partition " + std::to_string(e.partition) + "\r\n";
    o += "STAT " + e.key + ":balance " + std::to_string(e.balance) + "\r\n";
    o += "STAT " + e.key + ":thread_type " + std::to_string(e.thread_type) + "\r\n";
  }
  o += "END\r\n";
}

void thread_entry(std::string& o, int id, int type, const std::string& peer, std::string_view op,
                  int64_t uptime, const char* state, int64_t queue = 0, int64_t behind = 0) {
  std::string p = "STAT " + std::to_string(id) + ":";
  o += p + "type " + std::to_string(type) + "\r\n";
  o += p + "peer " + peer + "\r\n";
  o += p + "op ";
  o += op;
  o += "\r\n";
  o += p + "uptime " + std::to_string(uptime) + "\r\n";
  o += p + "state " + state + "\r\n";
  o += p + "info \r\n";
  o += p + "queue " + std::to_string(queue) + "\r\n";
  o += p + "behind " + std::to_string(behind) + "\r\n";
}

// g_mu held
size_t conn_count(const Endpoint* ep) { return ep->open_connections; }

// g_mu held
void append_conn_threads(std::string& o, Conn* self, std::string_view self_op) {
  int64_t now = unix_now();
  for (Conn* c : g_conns) {
    if (c->ep != self->ep) continue;
    if (c == self) thread_entry(o, c->tid, 1, c->peer, self_op, now - c->accepted_unix, "execute");
    else if (c->executing) thread_entry(o, c->tid, 1, c->peer, c->op, now - c->accepted_unix, "execute");
    else thread_entry(o, c->tid, 1, c->peer, "", now - c->accepted_unix, "wait");
  }
}

// g_mu held: the slaves of partition P, from a list rebuilt when the map changes (every change
// bump()s g_map_edits). A master's `stats` counts its replication threads: 2,000 masters each
// walking the whole map was the fake's hottest loop, run under g_mu.
const std::vector<const MapEntry*>& slaves_of_partition(int p) {
  static uint64_t built_version = UINT64_MAX;
  static size_t built_size = 0;
  static std::map<int, std::vector<const MapEntry*>> by_partition;
  static const std::vector<const MapEntry*> none;
  if (built_version != g_map_edits || built_size != g_map.size()) {
    by_partition.clear();
    for (auto& kv : g_map)
      if (kv.second.role == Role::Slave) by_partition[kv.second.partition].push_back(&kv.second);
    built_version = g_map_edits;
    built_size = g_map.size();
  }
  auto it = by_partition.find(p);
  return it == by_partition.end() ? none : it->second;
}

// g_mu held: replication threads of node N (one per slave when it is a master)
size_t append_repl_threads(std::string* o, const FakeNode& n) {
  auto it = g_map.find(n.key);
  if (it == g_map.end() || it->second.role != Role::Master) return 0;
  size_t cnt = 0;
  int64_t now = unix_now();
  for (const MapEntry* sp : slaves_of_partition(it->second.partition)) {
    const MapEntry& s = *sp;
    if (s.role == Role::Slave && s.partition == it->second.partition) {
      cnt++;
      if (!o) continue;
      // A lag set by control `lag`: the queue drains at lag_drain items/s; its oldest write
      // ages meanwhile. A thread with writes waiting is sending one (a real master's
      // `execute` / proxy_write).
      int64_t queue = s.lag_queue, behind = 0;
      if (queue > 0) {
        int64_t ms = mono_ms() - s.lag_set_ms;
        queue = std::max<int64_t>(0, queue - s.lag_drain * ms / 1000);
        behind = queue > 0 ? s.lag_behind + ms / 1000 : 0;
      }
      if (queue > 0)
        thread_entry(*o, s.repl_tid, s.thread_type, s.key, "proxy_write", now - s.added_unix, "execute", queue, behind);
      else
        thread_entry(*o, s.repl_tid, s.thread_type, s.key, "", now - s.added_unix, "wait");
    }
  }
  return cnt;
}

// g_mu held: the nodes a construction of E is reading now (none when it is not copying: not in
// prepare, `stall 1`, or its node or source dead). A slave reads its master; a new partition's
// master reads every older partition's master it has not finished yet, at once.
std::vector<const MapEntry*> copy_sources(const MapEntry& e) {
  std::vector<const MapEntry*> out;
  if (e.state != State::Prepare || g_stalled || !entry_alive(e) || e.done_at >= 0) return out;
  if (e.role == Role::Slave) {
    const MapEntry* m = master_of(e.partition);
    if (m && m->state != State::Down && entry_alive(*m) && node_of(*m) != node_of(e)) out.push_back(m);
  } else if (e.role == Role::Master) {
    for (int p = e.src_part; p < e.partition; p++) {
      if (p == e.src_part && !e.copy_from.empty()) {
        // The source it began with, whatever the map says of it now (copy_master).
        auto from = g_map.find(e.copy_from);
        if (from != g_map.end() && entry_alive(from->second)) out.push_back(&from->second);
        continue;
      }
      const MapEntry* m = master_of(p);
      if (m && m->state == State::Active && entry_alive(*m) && node_of(*m) != node_of(e)) out.push_back(m);
    }
  }
  return out;
}

// g_mu held: whether new partition master E still has to read from node KEY (copy_sources,
// whether or not KEY's node is alive now).
bool copies_from(const MapEntry& e, const std::string& key) {
  if (e.role != Role::Master || e.state != State::Prepare) return false;
  if (e.copy_from == key) return true;
  for (int p = e.src_part + (e.copy_from.empty() ? 0 : 1); p < e.partition; p++) {
    const MapEntry* m = master_of(p);
    if (m && m->key == key && m->state == State::Active) return true;
  }
  return false;
}

// g_mu held: whether a construction is reading from node N now. Its flared then answers every
// other dump or dump_key `SERVER_ERROR database busy` (seen on a real flare 1.3.4: a master
// refused `dump` and `dump_key` while a slave of it was in prepare).
bool serving_a_copy(const FakeNode& n) {
  for (const MapEntry* ep : entries_in_prepare())
    for (const MapEntry* src : copy_sources(*ep))
      if (src->key == n.key) return true;
  return false;
}

// g_mu held: the threads of the constructions node N takes part in, as a real flared 1.3.4 shows
// them in `stats threads` while one runs (reconstruction-bwlimit 4096, a 64 MiB value): the node
// being built has a reconstruction thread per source (type 3, peer = the source's key, op dump,
// state execute), and each source serves it from a request thread (type 1, op dump, execute).
// Returns how many; appends them to O unless null.
size_t append_copy_threads(std::string* o, const FakeNode& n) {
  size_t cnt = 0;
  int64_t now = unix_now();
  for (const MapEntry* ep : entries_in_prepare()) {
    const MapEntry& e = *ep;
    if (e.state != State::Prepare) continue;
    auto sources = copy_sources(e);
    for (size_t i = 0; i < sources.size(); i++) {
      const MapEntry& src = *sources[i];
      if (e.key == n.key) {
        cnt++;
        if (o) thread_entry(*o, e.recon_tid + static_cast<int>(i) * 100000, 3, src.key, "dump", now - e.copy_started_unix, "execute");
      } else if (src.key == n.key) {
        cnt++;
        if (o)
          thread_entry(*o, e.dump_tid, 1, g_cfg.host + ":" + std::to_string(32768 + e.dump_tid % 28000), "dump",
                       now - e.copy_started_unix, "execute");
      }
    }
  }
  return cnt;
}

// g_mu held: the index's monitor connection, seen by a registered node as a request thread
void append_monitor_thread(std::string& o, const FakeNode& n) {
  auto it = g_map.find(n.key);
  if (it == g_map.end()) return;
  thread_entry(o, it->second.monitor_tid, 1, g_cfg.host + ":" + std::to_string(g_index_ep->port), "",
               unix_now() - n.start_unix, "wait");
}

void append_rusage(std::string& o) {
  // getrusage(RUSAGE_SELF) walks every thread: with 2,000 connections open, taken at most
  // every 100 ms (g_mu is held, so the cache needs no lock of its own).
  static struct rusage ru;
  static int64_t taken_ms = -1000;
  if (mono_ms() - taken_ms >= 100) {
    std::memset(&ru, 0, sizeof(ru));
    getrusage(RUSAGE_SELF, &ru);
    taken_ms = mono_ms();
  }
  char buf[160];
  std::snprintf(buf, sizeof(buf), "STAT rusage_user %ld.%06ld\r\nSTAT rusage_system %ld.%06ld\r\n",
                static_cast<long>(ru.ru_utime.tv_sec), static_cast<long>(ru.ru_utime.tv_usec),
                static_cast<long>(ru.ru_stime.tv_sec), static_cast<long>(ru.ru_stime.tv_usec));
  o += buf;
}

// `stats ...` on the index (node == nullptr) or a node.
void do_stats(Conn* c, const std::vector<std::string_view>& w, FakeNode* node) {
  std::string& o = c->out;
  std::lock_guard<std::mutex> lk(g_mu);
  if (w.size() == 1) {
    int64_t now = unix_now();
    uint64_t version = g_map_version;
    stat_line(o, "pid", static_cast<uint64_t>(getpid()));
    stat_line(o, "uptime", static_cast<uint64_t>(now - (node ? node->start_unix : g_start_unix)));
    stat_line(o, "time", static_cast<uint64_t>(now));
    o += "STAT version 1.3.4\r\n";
    stat_line(o, "pointer_size", sizeof(void*) * 8);
    append_rusage(o);
    size_t conns = conn_count(c->ep);
    if (node) {
      node_view(*node, version);
      stat_line(o, "curr_items", node->store.size());
      stat_line(o, "total_items", node->total_items);
      stat_line(o, "bytes", kBaseBytes + node->data_bytes);
      stat_line(o, "curr_connections", conns + 1);
      stat_line(o, "total_connections", c->ep->total_connections + 1);
    } else {
      stat_line(o, "curr_items", 0);
      stat_line(o, "total_items", 0);
      stat_line(o, "bytes", 0);
      stat_line(o, "curr_connections", conns);
      stat_line(o, "total_connections", c->ep->total_connections);
    }
    stat_line(o, "connection_structures", 0);
    stat_line(o, "cmd_get", node ? node->cmd_get : 0);
    stat_line(o, "cmd_set", node ? node->cmd_set : 0);
    stat_line(o, "get_hits", node ? node->get_hits : 0);
    stat_line(o, "get_misses", node ? node->get_misses : 0);
    stat_line(o, "delete_hits", node ? node->delete_hits : 0);
    stat_line(o, "delete_misses", node ? node->delete_misses : 0);
    stat_line(o, "incr_hits", node ? node->incr_hits : 0);
    stat_line(o, "incr_misses", node ? node->incr_misses : 0);
    stat_line(o, "decr_hits", node ? node->decr_hits : 0);
    stat_line(o, "decr_misses", node ? node->decr_misses : 0);
    stat_line(o, "cas_hits", node ? node->cas_hits : 0);
    stat_line(o, "cas_misses", node ? node->cas_misses : 0);
    stat_line(o, "cas_badval", node ? node->cas_badval : 0);
    stat_line(o, "touch_hits", node ? node->touch_hits : 0);
    stat_line(o, "touch_misses", node ? node->touch_misses : 0);
    stat_line(o, "evictions", 0);
    stat_line(o, "bytes_read", c->ep->bytes_read.load());
    stat_line(o, "bytes_written", c->ep->bytes_written.load());
    stat_line(o, "limit_maxbytes", 0);
    if (node) stat_line(o, "threads", conns + 2 + append_repl_threads(nullptr, *node) + append_copy_threads(nullptr, *node));
    else stat_line(o, "threads", conns + 2 + g_map.size());
    stat_line(o, "pool_threads", 0);
    stat_line(o, "node_map_version", version);
    o += "END\r\n";
    return;
  }
  std::string_view sub = w[1];
  if (sub == "items" || sub == "slabs" || sub == "sizes") {
    o += "END\r\n";
  } else if (sub == "nodes") {
    uint64_t v;
    append_map(o, node ? node_view(*node, v) : g_map);
  } else if (sub == "threads") {
    std::string_view which = w.size() > 2 ? w[2] : std::string_view();
    int64_t now = unix_now();
    if (which.empty()) {
      if (node) append_monitor_thread(o, *node);
      append_conn_threads(o, c, "stats");
      if (node) {
        thread_entry(o, 1, 2, ":0", "", now, "wait");
        append_repl_threads(&o, *node);
        append_copy_threads(&o, *node);
      } else {
        thread_entry(o, 2, 2, ":0", "", now, "wait");
        thread_entry(o, 1, 4, ":0", "", now, "wait");
        for (auto& kv : g_map)
          thread_entry(o, kv.second.monitor_tid, kv.second.thread_type, kv.second.key, "",
                       now - kv.second.added_unix, "wait");
      }
      o += "END\r\n";
    } else if (which == "request") {
      if (node) append_monitor_thread(o, *node);
      append_conn_threads(o, c, "stats");
      o += "END\r\n";
    } else if (which == "slave") {
      if (node) append_repl_threads(&o, *node);
      o += "END\r\n";
    } else if (which == "queue") {
      o += "STAT total_thread_queue 0\r\nEND\r\n";
    } else {
      o += "ERROR\r\n";
    }
  } else {
    o += "ERROR\r\n";
  }
}

bool do_verbosity(Conn* c, const std::vector<std::string_view>& w) {
  int64_t lvl;
  if (w.size() < 2 || w.size() > 3 || !parse_i64(w[1], lvl) || (w.size() == 3 && w[2] != "noreply")) {
    c->out += "ERROR\r\n";
    return true;
  }
  if (w.size() == 2) c->out += "OK\r\n";
  return true;
}

void show_var(std::string& o, size_t width, const std::string& name, const std::string& val) {
  std::string k = name + ":";
  if (k.size() < width) k.append(width - k.size(), ' ');
  else if (k.size() > width) k += ' ';
  o += k + val + "\r\n";
}

// `show variables` (static, modelled on the real servers' output)
void do_show(Conn* c, const std::vector<std::string_view>& w, const FakeNode* node) {
  std::string& o = c->out;
  if (w.size() < 2 || w[1] != "variables") {
    o += "ERROR\r\n";
    return;
  }
  const std::string run = "/tmp/fake-flare";
  if (!node) {
    const size_t W = 26;
    show_var(o, W, "config_path", run + "/conf/flarei.conf");
    show_var(o, W, "pid_path", run + "/pid/flarei.pid");
    show_var(o, W, "daemonize", "false");
    show_var(o, W, "data_dir", run + "/data/flarei");
    show_var(o, W, "max_connection", "256");
    show_var(o, W, "monitor_threshold", "3");
    show_var(o, W, "monitor_interval", "1");
    show_var(o, W, "monitor_read_timeout", "1000");
    show_var(o, W, "net_read_timeout", "600000");
    show_var(o, W, "partition_modular_hint", std::to_string(g_cfg.modular_hint));
    show_var(o, W, "partition_modular_virtual", std::to_string(g_cfg.modular_virtual));
    show_var(o, W, "partition_size", std::to_string(g_cfg.partition_size));
    show_var(o, W, "partition_type", g_cfg.partition_type);
    show_var(o, W, "key_hash_algorithm", g_cfg.hash_name);
    show_var(o, W, "server_name", g_cfg.host);
    show_var(o, W, "server_port", std::to_string(g_index_ep->port));
    show_var(o, W, "server_socket", "");
    show_var(o, W, "stack_size", "128");
    show_var(o, W, "thread_pool_size", "8");
  } else {
    const size_t W = 24;
    std::string port = std::to_string(node->ep->port);
    show_var(o, W, "back_log", "30");
    show_var(o, W, "config_path", run + "/conf/node" + port + ".conf");
    show_var(o, W, "pid_path", run + "/pid/node" + port + ".pid");
    show_var(o, W, "daemonize", "false");
    show_var(o, W, "data_dir", run + "/data/node" + port);
    show_var(o, W, "index_server(s)", g_cfg.host + ":" + std::to_string(g_index_ep->port));
    show_var(o, W, "max_connection", "256");
    show_var(o, W, "mutex_slot", "32");
    show_var(o, W, "noreply_window_limit", "0");
    show_var(o, W, "net_read_timeout", "600");
    show_var(o, W, "proxy_concurrency", "2");
    show_var(o, W, "reconstruction_interval", "0");
    show_var(o, W, "reconstruction_bwlimit", std::to_string(node->recon_bwlimit_kb));
    show_var(o, W, "replication_type", "async");
    show_var(o, W, "server_name", g_cfg.host);
    show_var(o, W, "server_port", port);
    show_var(o, W, "server_socket", "");
    show_var(o, W, "stack_size", "128");
    show_var(o, W, "storage_ap", "4");
    show_var(o, W, "storage_bucket_size", "131071");
    show_var(o, W, "storage_cache_size", "65536");
    show_var(o, W, "storage_compress", "");
    show_var(o, W, "storage_large", "false");
    show_var(o, W, "storage_lmemb", "128");
    show_var(o, W, "storage_nmemb", "256");
    show_var(o, W, "storage_dfunit", "0");
    show_var(o, W, "storage_type", "tch");
    show_var(o, W, "thread_pool_size", "16");
    show_var(o, W, "proxy_prior_netmask", "0");
    show_var(o, W, "max_total_thread_queue", "0");
    show_var(o, W, "time_watcher_enabled", "false");
    show_var(o, W, "time_watcher_polling_interval_msec", "0");
    show_var(o, W, "storage_access_watch_threshold_warn_msec", "0");
    show_var(o, W, "storage_access_watch_threshold_ping_ng_msec", "0");
    show_var(o, W, "cluster_replication", "0");
    show_var(o, W, "cluster_replication_server_name", "");
    show_var(o, W, "cluster_replication_server_port", port);
    show_var(o, W, "cluster_replication_concurrency", "2");
    show_var(o, W, "cluster_replication_mode", "duplicate");
  }
  o += "END\r\n";
}

// `kill <thread id>`: close another connection of the same server
void do_kill_thread(Conn* c, const std::vector<std::string_view>& w) {
  int64_t id;
  if (w.size() != 2 || !parse_i64(w[1], id)) {
    c->out += "ERROR\r\n";
    return;
  }
  std::lock_guard<std::mutex> lk(g_mu);
  for (Conn* k : g_conns) {
    if (k->ep == c->ep && k->tid == id) {
      c->out += "OK\r\n";
      k->killed = true;
      ::shutdown(k->fd, SHUT_RDWR);
      wake_sleepers();
      return;
    }
  }
  c->out += "CLIENT_ERROR thread not found\r\n";
}

// ------------------------------------------------------------------------------------------ index

bool index_line(Conn* c, std::string_view line, std::vector<std::string_view>& w) {
  std::string& o = c->out;
  if (w.empty()) {
    if (!pre_reply(c, line)) return false;
    o += "ERROR\r\n";
    return true;
  }
  std::string_view cmd = w[0];
  Override ov;
  if (check_override(c, cmd, ov, w.size() == 1)) return send_override(c, ov, line);
  if (cmd == "quit") return w.size() != 1;
  bool changes = (cmd == "node" && w.size() >= 2 &&
                  (w[1] == "role" || w[1] == "state" || w[1] == "remove" || w[1] == "add")) ||
                 cmd == "shutdown";
  if (changes) log_request(c->ep, line);
  if (!pre_reply(c, line)) return false;

  if (cmd == "ping") {
    o += w.size() == 1 ? "OK\r\n" : "ERROR\r\n";
  } else if (cmd == "version") {
    o += w.size() == 1 ? "VERSION flare-1.3.4\r\n" : "ERROR\r\n";
  } else if (cmd == "stats") {
    do_stats(c, w, nullptr);
  } else if (cmd == "meta") {
    if (w.size() != 1) {
      o += "ERROR\r\n";
    } else {
      o += "META partition-size " + std::to_string(g_cfg.partition_size) + "\r\n";
      o += "META key-hash-algorithm " + g_cfg.hash_name + "\r\n";
      o += "META partition-type " + g_cfg.partition_type + "\r\n";
      o += "META partition-modular-hint " + std::to_string(g_cfg.modular_hint) + "\r\n";
      o += "META partition-modular-virtual " + std::to_string(g_cfg.modular_virtual) + "\r\n";
      o += "END\r\n";
    }
  } else if (cmd == "verbosity") {
    do_verbosity(c, w);
  } else if (cmd == "show") {
    do_show(c, w, nullptr);
  } else if (cmd == "kill") {
    do_kill_thread(c, w);
  } else if (cmd == "shutdown") {
    int64_t port;
    if (w.size() != 3 || !parse_i64(w[2], port)) {
      o += "ERROR\r\n";
    } else {
      std::string key = std::string(w[1]) + ":" + std::to_string(port);
      std::lock_guard<std::mutex> lk(g_mu);
      auto it = g_map.find(key);
      if (it == g_map.end()) {
        o += "SERVER_ERROR failed to shutdown\r\n";
      } else {
        mark_down(it->second);
        o += "OK\r\n";
      }
    }
  } else if (cmd == "node" && w.size() >= 2) {
    std::string_view sub = w[1];
    int64_t port = 0;
    if (sub == "role") {
      Role role;
      if (w.size() < 5 || !parse_i64(w[3], port) || !parse_role(w[4], role)) {
        o += "ERROR\r\n";
        return true;
      }
      int64_t bal = 0, part = -1;
      if (w.size() > 5 && !parse_i64(w[5], bal)) bal = 0;
      if (w.size() > 6 && !parse_i64(w[6], part)) part = -1;
      std::string key = std::string(w[2]) + ":" + std::to_string(port);
      std::lock_guard<std::mutex> lk(g_mu);
      auto it = g_map.find(key);
      bool ok = it != g_map.end() && set_role(it->second, role, bal, part);
      o += ok ? "OK\r\n" : "SERVER_ERROR failed to set role (and balance)\r\n";
    } else if (sub == "state") {
      State st;
      if (w.size() != 5 || !parse_i64(w[3], port) || !parse_state(w[4], st)) {
        o += "ERROR\r\n";
        return true;
      }
      std::string key = std::string(w[2]) + ":" + std::to_string(port);
      bool ok, promoted = false;
      {
        std::lock_guard<std::mutex> lk(g_mu);
        auto it = g_map.find(key);
        bool was_master = it != g_map.end() && it->second.role == Role::Master && it->second.state == State::Active;
        ok = it != g_map.end() && set_state(it->second, st);
        promoted = ok && was_master && st == State::Down && it->second.role == Role::Proxy;
      }
      // flarei's down_node syncs the promoted slave before it answers: a slow new master
      // makes the answer late (control `sync-delay`), the failover being done meanwhile.
      if (promoted && g_sync_delay_ms.load() > 0) {
        int64_t until = mono_ms() + g_sync_delay_ms.load();
        while (mono_ms() < until && !g_stop.load() && !c->killed.load())
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      o += ok ? "OK\r\n" : "SERVER_ERROR failed to set state\r\n";
    } else if (sub == "remove") {
      if (w.size() != 4 || !parse_i64(w[3], port)) {
        o += "ERROR\r\n";
        return true;
      }
      std::string key = std::string(w[2]) + ":" + std::to_string(port);
      std::lock_guard<std::mutex> lk(g_mu);
      o += remove_entry(key) ? "OK\r\n" : "SERVER_ERROR failed to remove node\r\n";
    } else if (sub == "add") {
      if (w.size() != 4 || !parse_i64(w[3], port)) {
        o += "ERROR\r\n";
        return true;
      }
      std::string host(w[2]);
      std::string key = host + ":" + std::to_string(port);
      std::lock_guard<std::mutex> lk(g_mu);
      auto it = g_map.find(key);
      if (it != g_map.end() && it->second.state != State::Down) {
        o += "SERVER_ERROR failed to add node\r\n";
        return true;
      }
      if (it == g_map.end()) {
        if (port < INT_MIN || port > INT_MAX) {
          o += "SERVER_ERROR failed to add node\r\n";
          return true;
        }
        add_entry(host, static_cast<int>(port));
      } else {
        bump();  // a down node's re-add (a restart) is a map change too, as the fake's `start`
      }
      for (auto& kv : g_map) {
        const MapEntry& e = kv.second;
        o += "NODE " + e.host + " " + std::to_string(e.port) + " " + std::to_string(role_code(e.role)) +
             " " + std::to_string(state_code(e.state)) + " " + std::to_string(e.partition) + " " +
             std::to_string(e.balance) + " " + std::to_string(e.thread_type) + "\r\n";
      }
      o += "END\r\n";
    } else {
      o += "ERROR\r\n";
    }
  } else {
    o += "ERROR\r\n";
  }
  return true;
}

// ------------------------------------------------------------------------------------------ node

enum class SCmd { Set, Add, Replace, Append, Prepend, Cas };

struct Pending {
  bool active = false;
  SCmd cmd = SCmd::Set;
  std::string key;
  uint32_t flags = 0;
  int64_t exptime = 0;
  uint64_t cas = 0;
  uint64_t version = 0;  // the optional version after <bytes> of set/add/replace/append/prepend
  bool noreply = false;
  bool ov = false;
  Override ovr;
  BlobRef blob;
  size_t have = 0;
  int trailer = 0;
  // `node sync [<version>]` on a node: NODE lines are collected until END
  bool syncing = false;
  uint64_t sync_version = 0;
  NodeMap sync_map;
};

bool storage_cmd(std::string_view w, SCmd& c) {
  if (w == "set") c = SCmd::Set;
  else if (w == "add") c = SCmd::Add;
  else if (w == "replace") c = SCmd::Replace;
  else if (w == "append") c = SCmd::Append;
  else if (w == "prepend") c = SCmd::Prepend;
  else if (w == "cas") c = SCmd::Cas;
  else return false;
  return true;
}

// 0 = ok (P filled), 1 = syntax error, 2 = data too large
int parse_storage(const std::vector<std::string_view>& w, SCmd cmd, Pending& p) {
  size_t need = cmd == SCmd::Cas ? 6 : 5;
  if (w.size() < need) return 1;
  uint64_t flags, cas = 0;
  int64_t exptime, bytes;
  if (!parse_u64(w[2], flags) || flags > UINT32_MAX) return 1;
  if (!parse_i64(w[3], exptime)) return 1;
  if (!parse_i64(w[4], bytes) || bytes < 0) return 1;
  if (cmd == SCmd::Cas && !parse_u64(w[5], cas)) return 1;
  // flared takes a version after <bytes> on every storage command (storage::entry::parse): a
  // word starting with a digit or '-' there is one, and must be a whole unsigned number.
  uint64_t version = 0;
  if (cmd != SCmd::Cas && w.size() > need && (std::isdigit(static_cast<unsigned char>(w[need][0])) || w[need][0] == '-')) {
    if (!parse_u64(w[need], version)) return 1;
    ++need;
  }
  bool noreply = false;
  for (size_t i = need; i < w.size(); i++) {
    if (w[i] == "noreply") noreply = true;
    else if (w[i] != "sync" && w[i] != "async") return 1;
  }
  if (bytes > kMaxData) return 2;
  p.active = true;
  p.cmd = cmd;
  p.key.assign(w[1].data(), w[1].size());
  p.flags = static_cast<uint32_t>(flags);
  p.exptime = exptime;
  p.cas = cas;
  p.version = version;
  p.noreply = noreply;
  p.ov = false;
  p.blob = BlobRef::make(static_cast<size_t>(bytes));
  p.have = 0;
  p.trailer = 2;
  return 0;
}

bool exec_storage(Conn* c, Pending& p) {
  const char* res = "";
  {
    std::lock_guard<std::mutex> lk(g_mu);
    FakeNode& self = *g_nodes[static_cast<size_t>(c->ep->node_idx)];
    self.cmd_set++;
    Route r;
    RouteRes rr = route(p.key, r);
    if (rr == RouteRes::NoPartition) {
      res = "SERVER_ERROR no partition available\r\n";
    } else if (rr == RouteRes::ProxyFailure) {
      res = "SERVER_ERROR proxy failure\r\n";
    } else {
      FakeNode& m = *r.mn;
      int64_t now = unix_now();
      auto it = m.store.lower_bound(p.key);
      bool exists = it != m.store.end() && it->first == p.key;
      bool live = exists && !expired(it->second, now);
      Item ni;
      ni.flags = p.flags;
      ni.expire = calc_expire(p.exptime);
      ni.val = p.blob;
      ni.version = exists ? it->second.version + 1 : 1;
      bool store = false;
      // A version given (not cas): kept as the item's, and refused unless newer than the live
      // item's (node_long_key.txt [6]: `set K 7 0 0 1` over K at version 1 is NOT_STORED).
      bool stale = p.cmd != SCmd::Cas && p.version != 0 && live && p.version <= it->second.version;
      if (p.cmd != SCmd::Cas && p.version != 0) ni.version = p.version;
      if (stale) {
        res = "NOT_STORED\r\n";
      } else switch (p.cmd) {
        case SCmd::Set:
          store = true;
          break;
        case SCmd::Add:
          store = !live;
          break;
        case SCmd::Replace:
          store = live;
          break;
        case SCmd::Append:
        case SCmd::Prepend:
          if (live) {
            const Item& old = it->second;
            BlobRef nb = BlobRef::make(old.val.size() + p.blob.size());
            if (p.cmd == SCmd::Append) {
              std::memcpy(nb.wdata(), old.val.data(), old.val.size());
              std::memcpy(nb.wdata() + old.val.size(), p.blob.data(), p.blob.size());
            } else {
              std::memcpy(nb.wdata(), p.blob.data(), p.blob.size());
              std::memcpy(nb.wdata() + p.blob.size(), old.val.data(), old.val.size());
            }
            ni.flags = old.flags;
            ni.expire = old.expire;
            ni.val = std::move(nb);
            store = true;
          }
          break;
        case SCmd::Cas:
          if (!live) {
            self.cas_misses++;
            res = "NOT_FOUND\r\n";
          } else if (it->second.version != p.cas) {
            self.cas_badval++;
            res = "EXISTS\r\n";
          } else {
            self.cas_hits++;
            store = true;
          }
          break;
      }
      if (store) {
        node_put_at(m, it, p.key, ni);
        replicate_put(r, p.key, ni);
        res = "STORED\r\n";
      } else if (p.cmd != SCmd::Cas) {
        res = "NOT_STORED\r\n";  // also when stale
      }
    }
  }
  p.blob = BlobRef();
  if (!p.noreply) {
    if (!pre_reply(c, "")) return false;
    c->out += res;
  }
  return true;
}

std::string sync_listeners(std::unique_lock<std::mutex>& lk);
void kill_locked(Endpoint* ep, FakeNode& n);
void update_want(Endpoint* ep);

bool finish_storage(Conn* c, Pending& p) {
  if (p.ov) {
    p.blob = BlobRef();
    return send_override(c, p.ovr, "");
  }
  // A real flared's pace (--set-service-us / `set-service`): each storage command takes its
  // service time, and its reply is written on its own as soon as it is produced.
  int64_t us = c->ep->set_service_us.load();
  bool ok;
  if (us <= 0) {
    ok = exec_storage(c, p);
  } else {
    if (!nap_us(us, c)) return false;
    ok = exec_storage(c, p) && flush(c);
  }
  // control kill-after: the node's process dies once it has answered that many storage commands
  if (ok && c->ep->kill_after.load() > 0 && c->ep->kill_after.fetch_sub(1) == 1) {
    FakeNode& n = *g_nodes[static_cast<size_t>(c->ep->node_idx)];
    {
      // Its listener closes first, so that a client that has read the last answer and then
      // connects is refused, as by a dead process; then the answer goes out, then the rest dies.
      std::unique_lock<std::mutex> lk(g_mu);
      set_alive(n, false);
      update_want(c->ep);
      sync_listeners(lk);
    }
    flush(c);
    std::unique_lock<std::mutex> lk(g_mu);
    kill_locked(c->ep, n);
    return false;
  }
  return ok;
}

void do_get(Conn* c, const std::vector<std::string_view>& w, bool with_version) {
  struct Hit {
    size_t idx;
    uint32_t flags;
    uint64_t version;
    BlobRef val;
  };
  std::vector<Hit> hits;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    FakeNode& self = *g_nodes[static_cast<size_t>(c->ep->node_idx)];
    int64_t now = unix_now();
    for (size_t i = 1; i < w.size(); i++) {
      self.cmd_get++;
      const Item* it = read_item(w[i], now);
      if (it) {
        self.get_hits++;
        hits.push_back(Hit{i, it->flags, it->version, it->val});
      } else {
        self.get_misses++;
      }
    }
  }
  std::string& o = c->out;
  for (auto& h : hits) {
    o += "VALUE ";
    o += w[h.idx];
    o += ' ';
    append_u64(o, h.flags);
    o += ' ';
    append_u64(o, h.val.size());
    if (with_version) {
      o += ' ';
      append_u64(o, h.version);
    }
    o += "\r\n";
    o.append(h.val.data(), h.val.size());
    o += "\r\n";
    if (o.size() >= kFlushAt && !flush(c)) return;
  }
  o += "END\r\n";
}

// delete / incr / decr / touch / gat
void do_modify(Conn* c, const std::vector<std::string_view>& w) {
  std::string_view cmd = w[0];
  std::string& o = c->out;
  enum { Del, Incr, Decr, Touch, Gat } kind;
  if (cmd == "delete") kind = Del;
  else if (cmd == "incr") kind = Incr;
  else if (cmd == "decr") kind = Decr;
  else if (cmd == "touch") kind = Touch;
  else kind = Gat;
  bool noreply = false;
  uint64_t delta = 0;
  int64_t exptime = 0;
  if (kind == Del) {
    if (w.size() < 2) {
      o += "ERROR\r\n";
      return;
    }
    size_t i = 2;
    int64_t t;
    if (i < w.size() && parse_i64(w[i], t)) i++;
    for (; i < w.size(); i++) {
      if (w[i] == "noreply") noreply = true;
      else if (w[i] != "sync" && w[i] != "async") {
        o += "ERROR\r\n";
        return;
      }
    }
  } else {
    if (w.size() < 3 || w.size() > 4 || (w.size() == 4 && w[3] != "noreply")) {
      o += "ERROR\r\n";
      return;
    }
    noreply = w.size() == 4;
    if (kind == Incr || kind == Decr) {
      if (!parse_u64(w[2], delta)) {
        o += "ERROR\r\n";
        return;
      }
    } else if (!parse_i64(w[2], exptime)) {
      o += "ERROR\r\n";
      return;
    }
  }
  std::string_view key = w[1];
  std::string res;
  BlobRef gat_val;
  uint32_t gat_flags = 0;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    FakeNode& self = *g_nodes[static_cast<size_t>(c->ep->node_idx)];
    Route r;
    RouteRes rr = route(key, r);
    if (rr == RouteRes::NoPartition) {
      res = "SERVER_ERROR no partition available\r\n";
    } else if (rr == RouteRes::ProxyFailure) {
      res = "SERVER_ERROR proxy failure\r\n";
    } else {
      FakeNode& m = *r.mn;
      int64_t now = unix_now();
      auto it = m.store.find(key);
      bool live = it != m.store.end() && !expired(it->second, now);
      switch (kind) {
        case Del:
          if (live) {
            self.delete_hits++;
            node_erase(m, key);
            replicate_erase(r, key);
            res = "DELETED\r\n";
          } else {
            self.delete_misses++;
            res = "NOT_FOUND\r\n";
          }
          break;
        case Incr:
        case Decr:
          if (!live) {
            (kind == Incr ? self.incr_misses : self.decr_misses)++;
            res = "NOT_FOUND\r\n";
          } else {
            (kind == Incr ? self.incr_hits : self.decr_hits)++;
            uint64_t cur = 0;
            if (!parse_u64(std::string_view(it->second.val.data(), it->second.val.size()), cur)) cur = 0;
            if (kind == Incr) cur += delta;
            else cur = cur > delta ? cur - delta : 0;
            std::string num;
            append_u64(num, cur);
            Item ni = it->second;
            ni.version++;
            ni.val = BlobRef::make(num.size());
            std::memcpy(ni.val.wdata(), num.data(), num.size());
            node_put(m, key, ni);
            replicate_put(r, key, ni);
            res = num + "\r\n";
          }
          break;
        case Touch:
        case Gat:
          if (!live) {
            self.touch_misses++;
            res = "NOT_FOUND\r\n";
          } else {
            self.touch_hits++;
            Item ni = it->second;
            ni.expire = calc_expire(exptime);
            node_put(m, key, ni);
            replicate_put(r, key, ni);
            if (kind == Touch) {
              res = "TOUCHED\r\n";
            } else {
              gat_val = ni.val;
              gat_flags = ni.flags;
            }
          }
          break;
      }
    }
  }
  if (noreply) return;
  if (kind == Gat && res.empty()) {
    o += "VALUE ";
    o += key;
    o += ' ';
    append_u64(o, gat_flags);
    o += ' ';
    append_u64(o, gat_val.size());
    o += "\r\n";
    o.append(gat_val.data(), gat_val.size());
    o += "\r\n";
    return;
  }
  o += res;
}

void set_executing(Conn* c, const char* op, bool on) {
  std::lock_guard<std::mutex> lk(g_mu);
  c->executing = on;
  c->op = on ? op : "";
}

// dump / dump_key
bool do_dump(Conn* c, const std::vector<std::string_view>& w, bool keys_only) {
  std::string& o = c->out;
  size_t i = 1;
  int64_t wait_us = 0, part = -1, psize = -1, bw = 0;
  bool have_part = false, have_size = false;
  int64_t v;
  if (!keys_only) {
    if (i < w.size()) {
      if (parse_i64(w[i], v)) wait_us = v;
      i++;
    }
  }
  if (i < w.size()) {
    if (parse_i64(w[i], v)) {
      part = v;
      have_part = true;
    }
    i++;
  }
  if (i < w.size()) {
    if (parse_i64(w[i], v)) {
      psize = v;
      have_size = true;
    }
    i++;
  }
  if (i < w.size()) {
    if (parse_i64(w[i], v)) bw = v;
    i++;
  }
  bool bad = wait_us < 0 || bw < 0;
  // A node that serves dumps at a fixed pace (control `dump-rate`), the request's own limit aside.
  if (int64_t pace = c->ep->dump_kbps.load(); pace > 0 && (bw == 0 || pace < bw)) bw = pace;
  if (have_part && part >= 0) {
    if (!have_size || psize <= part || psize > g_cfg.partition_size) bad = true;
  } else if (have_part && part < -1) {
    bad = true;
  } else if (have_size && psize != 0) {
    bad = true;  // size without partition
  }
  if (bad) {
    o += "ERROR\r\n";
    return true;
  }
  int filter_part = (have_part && part >= 0) ? static_cast<int>(part) : -1;
  int filter_size = static_cast<int>(psize);

  struct Rec {
    std::string key;
    uint32_t flags;
    uint64_t version;
    int64_t expire;
    BlobRef val;
  };
  std::vector<Rec> batch;
  std::string cursor;
  bool have_cursor = false, done = false;
  auto t0 = std::chrono::steady_clock::now();
  uint64_t sent_bytes = 0;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    FakeNode& n = *g_nodes[static_cast<size_t>(c->ep->node_idx)];
    if (n.iterating || serving_a_copy(n)) {
      o += "SERVER_ERROR database busy\r\n";
      return true;
    }
    n.iterating = true;
  }
  set_executing(c, keys_only ? "dump_key" : "dump", true);
  bool ok = true;
  while (!done && ok) {
    batch.clear();
    {
      std::lock_guard<std::mutex> lk(g_mu);
      FakeNode& n = *g_nodes[static_cast<size_t>(c->ep->node_idx)];
      int64_t now = unix_now();
      auto it = have_cursor ? n.store.upper_bound(cursor) : n.store.begin();
      auto end = n.store.end();
      size_t scanned = 0, bytes = 0;
      for (; it != end && scanned < 8192 && batch.size() < 2048 && bytes < (4u << 20); ++it) {
        scanned++;
        cursor = it->first;
        have_cursor = true;
        if (expired(it->second, now)) continue;
        if (filter_part >= 0 && partition_of(it->first, filter_size) != filter_part) continue;
        batch.push_back(Rec{it->first, it->second.flags, it->second.version, it->second.expire,
                            keys_only ? BlobRef() : it->second.val});
        bytes += it->first.size() + it->second.val.size() + 64;
      }
      if (it == end) done = true;
    }
    for (auto& r : batch) {
      if (c->killed.load() || g_stop.load()) {
        ok = false;
        break;
      }
      if (bw > 0) {
        double need = static_cast<double>(sent_bytes) / (static_cast<double>(bw) * 1024.0);
        double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (need > el + 0.001) {
          if (!flush(c) || !nap_us(static_cast<int64_t>((need - el) * 1e6), c)) {
            ok = false;
            break;
          }
        }
      }
      size_t before = o.size();
      if (keys_only) {
        o += "KEY ";
        o += r.key;
        o += "\r\n";
      } else {
        o += "VALUE ";
        o += r.key;
        o += ' ';
        append_u64(o, r.flags);
        o += ' ';
        append_u64(o, r.val.size());
        o += ' ';
        append_u64(o, r.version);
        o += ' ';
        append_i64(o, r.expire);
        o += "\r\n";
        o.append(r.val.data(), r.val.size());
        o += "\r\n";
      }
      sent_bytes += o.size() - before;
      if (wait_us > 0) {
        if (!flush(c) || !nap_us(wait_us, c)) {
          ok = false;
          break;
        }
      } else if (o.size() >= kFlushAt && !flush(c)) {
        ok = false;
        break;
      }
    }
  }
  set_executing(c, "", false);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    g_nodes[static_cast<size_t>(c->ep->node_idx)]->iterating = false;
  }
  if (!ok) return false;
  o += "END\r\n";
  return true;
}

void do_fill_items(FakeNode& n, const std::string& prefix, uint64_t start, uint64_t count,
                   size_t size, const std::string& pattern);

// A line while `node sync` collects the map: NODE lines until END, which replaces the node's map.
void node_sync_line(Conn* c, std::string_view line, const std::vector<std::string_view>& w, Pending& p) {
  std::string& o = c->out;
  if (line == "END") {
    p.syncing = false;
    std::lock_guard<std::mutex> lk(g_mu);
    FakeNode& self = *g_nodes[static_cast<size_t>(c->ep->node_idx)];
    if (self.has_synced && p.sync_version < self.synced_version) {
      o += "SERVER_ERROR node sync error\r\n";
      return;
    }
    self.synced = std::move(p.sync_map);
    self.synced_version = p.sync_version;
    self.synced_at = g_map_version;
    self.has_synced = true;
    o += "OK\r\n";
    return;
  }
  int64_t port, role, state, part, bal, tt;
  if (w.size() != 8 || w[0] != "NODE" || !parse_i64(w[2], port) || !parse_i64(w[3], role) || !parse_i64(w[4], state) ||
      !parse_i64(w[5], part) || !parse_i64(w[6], bal) || !parse_i64(w[7], tt) || role < 0 || role > 2 || state < 0 ||
      state > 3 || port < 0 || port > 65535 || part < -1 || part > INT_MAX || bal < 0 || bal > INT_MAX || tt < 0 || tt > INT_MAX) {
    p.syncing = false;
    p.sync_map.clear();
    o += "CLIENT_ERROR format error\r\n";
    return;
  }
  static const Role kRoles[] = {Role::Master, Role::Slave, Role::Proxy};
  static const State kStates[] = {State::Active, State::Prepare, State::Down, State::Ready};
  MapEntry e;
  e.host = std::string(w[1]);
  e.port = static_cast<int>(port);
  e.key = e.host + ":" + std::to_string(port);
  e.role = kRoles[role];
  e.state = kStates[state];
  e.partition = static_cast<int>(part);
  e.balance = static_cast<int>(bal);
  e.thread_type = static_cast<int>(tt);
  std::string key = e.key;
  p.sync_map[key] = std::move(e);
}

bool node_line(Conn* c, std::string_view line, std::vector<std::string_view>& w, Pending& p) {
  std::string& o = c->out;
  if (p.syncing) {
    if (!pre_reply(c, line)) return false;
    node_sync_line(c, line, w, p);
    return true;
  }
  if (w.empty()) {
    if (!pre_reply(c, line)) return false;
    o += "ERROR\r\n";
    return true;
  }
  std::string_view cmd = w[0];
  Override ov;
  bool has_ov = check_override(c, cmd, ov, w.size() == 1);
  SCmd sc;
  if (storage_cmd(cmd, sc)) {
    log_request(c->ep, line);
    int r = parse_storage(w, sc, p);
    if (r == 0) {
      if (has_ov) {
        p.ov = true;
        p.ovr = std::move(ov);
      }
      return true;
    }
    if (has_ov) return send_override(c, ov, line) && r != 2;
    if (r == 2) {
      o += "SERVER_ERROR object too large for cache\r\n";
      flush(c);
      return false;
    }
    if (!pre_reply(c, line)) return false;
    o += "ERROR\r\n";
    return true;
  }
  if (has_ov) return send_override(c, ov, line);
  if (cmd == "quit") return w.size() != 1;
  if (cmd == "flush_all" || cmd == "delete" || cmd == "incr" || cmd == "decr" || cmd == "touch" ||
      cmd == "gat")
    log_request(c->ep, line);
  if (!pre_reply(c, line)) return false;
  FakeNode& self = *g_nodes[static_cast<size_t>(c->ep->node_idx)];
  if (cmd == "ping") {
    o += w.size() == 1 ? "OK\r\n" : "ERROR\r\n";
  } else if (cmd == "version") {
    o += w.size() == 1 ? "VERSION flare-1.3.4\r\n" : "ERROR\r\n";
  } else if (cmd == "stats") {
    do_stats(c, w, &self);
  } else if (cmd == "verbosity") {
    do_verbosity(c, w);
  } else if (cmd == "show") {
    do_show(c, w, &self);
  } else if (cmd == "kill") {
    do_kill_thread(c, w);
  } else if (cmd == "get" || cmd == "gets") {
    if (w.size() < 2) o += "ERROR\r\n";
    else do_get(c, w, cmd == "gets");
  } else if (cmd == "delete" || cmd == "incr" || cmd == "decr" || cmd == "touch" || cmd == "gat") {
    do_modify(c, w);
  } else if (cmd == "flush_all") {
    size_t i = 1;
    int64_t t;
    if (i < w.size() && parse_i64(w[i], t)) i++;
    bool noreply = false;
    if (i < w.size() && w[i] == "noreply") {
      noreply = true;
      i++;
    }
    if (i != w.size()) {
      o += "ERROR\r\n";
    } else {
      {
        std::lock_guard<std::mutex> lk(g_mu);
        self.store.clear();
        self.data_bytes = 0;
      }
      if (!noreply) o += "OK\r\n";
    }
  } else if (cmd == "dump") {
    return do_dump(c, w, false);
  } else if (cmd == "dump_key") {
    return do_dump(c, w, true);
  } else if (cmd == "node" && w.size() >= 2 && w[1] == "sync") {
    // node sync [<node_map_version>]: the index's push of its whole map (NODE lines, then END).
    int64_t v = 0;
    if (w.size() > 3 || (w.size() == 3 && (!parse_i64(w[2], v) || v < 0))) {
      o += "ERROR\r\n";
    } else {
      p.syncing = true;
      p.sync_version = static_cast<uint64_t>(v);
      p.sync_map.clear();
    }
  } else if (cmd == "keys") {
    int64_t lim;
    if (w.size() < 3 || !parse_i64(w.back(), lim)) o += "ERROR\r\n";
    else o += "SERVER_ERROR not available on current storage type\r\n";
  } else {
    o += "ERROR\r\n";
  }
  return true;
}

// ------------------------------------------------------------------------------------------ control

Endpoint* find_target(std::string_view t) {
  if (t == "index") return g_index_ep.get();
  for (auto& n : g_nodes)
    if (n->key == t) return n->ep;
  uint64_t port;
  if (parse_u64(t, port))
    for (auto& n : g_nodes)
      if (static_cast<uint64_t>(n->ep->port) == port) return n->ep;
  return nullptr;
}

void wake_acceptor() {
  char x = 'w';
  ssize_t r = ::write(g_wake_pipe[1], &x, 1);
  (void)r;
}

// g_mu held via LK: ask the acceptor to (re)open / close listeners; returns an error or "".
std::string sync_listeners(std::unique_lock<std::mutex>& lk) {
  uint64_t my = ++g_listen_req;
  wake_acceptor();
  g_listen_cv.wait_for(lk, std::chrono::seconds(5), [&] { return g_listen_done >= my || g_stop.load(); });
  if (g_listen_done < my) return "listener update timed out";
  for (Endpoint* ep : g_endpoints)
    if (!ep->listen_err.empty()) return ep->listen_err;
  return "";
}

void update_want(Endpoint* ep) {
  bool alive = ep->kind != Kind::Node || g_nodes[static_cast<size_t>(ep->node_idx)]->alive;
  ep->want_listen = alive && !ep->refused;
}

// g_mu held: node N's process dies (kill -9): its listener and connections close, and the writes
// it acknowledged but had not yet replicated to its slaves (control repl-lag) die with it.
void kill_locked(Endpoint* ep, FakeNode& n) {
  // Slaves copying from it lose their dump connection: each new node falls back to proxy at
  // once, before the index sees the master down (a real flared 1.3.4: "failed to reconstruct
  // ( )", then slave/prepare -> proxy/active). So does a new partition's master that still had
  // to read from it (a real flared 1.3.4, the source killed -9 mid-copy: "failed to
  // reconstruct", then master/prepare -> proxy/active).
  auto me = g_map.find(n.key);
  if (me != g_map.end() && me->second.role == Role::Master)
    for (auto& kv : g_map) {
      MapEntry& s = kv.second;
      if (node_of(s) == &n || s.state != State::Prepare) continue;
      if ((s.role == Role::Slave && s.partition == me->second.partition) || copies_from(s, n.key)) {
        to_proxy(s, State::Active);
        bump();
      }
    }
  set_alive(n, false);
  update_want(ep);
  for (Conn* k : g_conns) {
    if (k->ep != ep) continue;
    k->killed = true;
    ::shutdown(k->fd, SHUT_RDWR);
  }
  auto self = g_map.find(n.key);
  if (self != g_map.end() && self->second.role == Role::Master)
    for (auto& kv : g_map)
      if (kv.second.role == Role::Slave && kv.second.partition == self->second.partition)
        if (FakeNode* s = node_of(kv.second)) s->repl_queue.clear();
  wake_sleepers();
}

int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

std::string make_pattern(size_t size) {
  static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string s(size + 62, '\0');
  for (size_t j = 0; j < s.size(); j++) s[j] = alphabet[j % 62];
  return s;
}

void do_fill_items(FakeNode& n, const std::string& prefix, uint64_t start, uint64_t count,
                   size_t size, const std::string& pattern) {
  std::vector<std::pair<std::string, BlobRef>> batch;
  batch.reserve(static_cast<size_t>(count));
  char num[32];
  for (uint64_t i = start; i < start + count; i++) {
    std::snprintf(num, sizeof(num), "%05llu", static_cast<unsigned long long>(i));
    BlobRef b = BlobRef::make(size);
    if (size) std::memcpy(b.wdata(), pattern.data() + (i % 62), size);
    batch.emplace_back(prefix + num, std::move(b));
  }
  std::lock_guard<std::mutex> lk(g_mu);
  auto me = g_map.find(n.key);
  MapEntry* master = (me != g_map.end() && me->second.role == Role::Master) ? &me->second : nullptr;
  for (auto& kv : batch) {
    Item it;
    it.val = kv.second;
    auto old = n.store.find(kv.first);
    it.version = old != n.store.end() ? old->second.version + 1 : 1;
    if (master) put_with_slaves(*master, kv.first, it);
    else node_put(n, kv.first, it);
  }
}

// Faults armed for later (controls `later`, `at-items`, `index-gone`): control lines run by the
// timer thread, outside g_mu, when their moment comes. Guarded by g_mu.
struct ArmedFault {
  int64_t at_ms = -1;         // mono ms, or -1
  int node_idx = -1;          // at-items: the node whose item count is watched
  uint64_t items = 0;         //   and the count that fires it, reached from below
  bool below = false;         //   the count has been under `items` since it was armed
  std::string state_key;      // at-state: the node whose map entry is watched
  Role role = Role::Proxy;    //   and the role
  State state = State::Active; //   and state that fire it
  std::string line;
};
std::vector<ArmedFault> g_armed;

bool control_line(std::string& o, std::vector<std::string_view>& w);

bool control_cmd(Conn* c, std::vector<std::string_view>& w) { return control_line(c->out, w); }

// Runs the armed faults whose moment has come (timer thread, g_mu not held).
void run_armed_faults() {
  std::vector<std::string> due;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    int64_t now = mono_ms();
    for (size_t i = 0; i < g_armed.size();) {
      ArmedFault& a = g_armed[i];
      bool fire = now >= a.at_ms;
      if (a.node_idx >= 0) {
        size_t held = g_nodes[static_cast<size_t>(a.node_idx)]->store.size();
        a.below = a.below || held < a.items;
        fire = a.below && held >= a.items;
      }
      if (!a.state_key.empty()) {
        auto it = g_map.find(a.state_key);
        fire = it != g_map.end() && it->second.role == a.role && it->second.state == a.state;
      }
      if (fire) {
        due.push_back(a.line);
        g_armed.erase(g_armed.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        i++;
      }
    }
  }
  for (auto& line : due) {
    std::vector<std::string_view> w;
    split_words(line, w);
    std::string ignored;
    control_line(ignored, w);
  }
}

bool control_line(std::string& o, std::vector<std::string_view>& w) {
  auto err = [&](const std::string& why) {
    o += "ERROR " + why + "\r\n";
    return true;
  };
  auto ok = [&]() {
    o += "OK\r\n";
    return true;
  };
  if (w.empty()) return err("empty command");
  std::string_view cmd = w[0];
  if (cmd == "quit") return false;
  if (cmd == "ping") return ok();
  if (cmd == "monitor-clock") {
    int64_t v = 0;
    if (!g_cfg.test_monitor_clock) return err("the monitor reads the real clock (start with --test-monitor-clock)");
    if (w.size() != 2 || !parse_i64(w[1], v) || v < 0) return err("usage: monitor-clock MS");
    std::lock_guard<std::mutex> lk(g_mu);
    if (v < g_monitor_clock.load()) return err("the monitor's clock never goes back");
    // What changed since the clock was last set (a node killed, stopped, started) happened then:
    // the monitor notes it at that time first, as its own timer may not have looked yet.
    monitor_walk(g_monitor_clock.load());
    g_monitor_clock = v;
    monitor_walk(v);
    return ok();
  }
  if (cmd == "requests") {
    std::lock_guard<std::mutex> lk(g_reqlog_mu);
    for (auto& s : g_reqlog) o += "REQ " + s + "\r\n";
    if (g_reqlog_dropped) o += "DROPPED " + std::to_string(g_reqlog_dropped) + "\r\n";
    o += "END\r\n";
    return true;
  }
  if (cmd == "stall" && w.size() == 2) {
    // stall 1: constructions stop copying (a stuck slave), stall 0: they go on.
    if (w[1] != "0" && w[1] != "1") return err("usage: stall 0|1");
    std::lock_guard<std::mutex> lk(g_mu);
    g_stalled = w[1] == "1";
    return ok();
  }
  if (cmd == "sync-delay") {
    int64_t v = 0;
    if (w.size() != 2 || !parse_i64(w[1], v) || v < 0 || v > 600000) return err("usage: sync-delay MS");
    g_sync_delay_ms = v;
    return ok();
  }
  if (cmd == "lag") {
    // lag SLAVE QUEUE BEHIND [DRAIN]: the slave's master shows QUEUE writes waiting towards it,
    // the oldest BEHIND s old (aging), draining DRAIN items/s (default 0: a stopped slave).
    int64_t q = 0, b = 0, d = 0;
    if ((w.size() != 4 && w.size() != 5) || !parse_i64(w[2], q) || q < 0 || q > INT32_MAX || !parse_i64(w[3], b) ||
        b < 0 || b > INT32_MAX || (w.size() == 5 && (!parse_i64(w[4], d) || d < 0 || d > INT32_MAX)))
      return err("usage: lag SLAVE QUEUE BEHIND [DRAIN_PER_SEC]");
    std::lock_guard<std::mutex> lk(g_mu);
    Endpoint* ep = find_target(w[1]);
    auto it = ep && ep->kind == Kind::Node ? g_map.find(ep->key) : g_map.end();
    if (it == g_map.end()) return err("unknown node");
    it->second.lag_queue = q;
    it->second.lag_behind = b;
    it->second.lag_drain = d;
    it->second.lag_set_ms = mono_ms();
    return ok();
  }
  if (cmd == "at-state") {
    // at-state HOST:PORT ROLE STATE LINE...: run control LINE once the index lists the node as
    // ROLE STATE (one shot): a fault at a chosen step of a change (a slave set down to be rebuilt).
    ArmedFault a;
    if (w.size() < 5 || !parse_role(w[2], a.role) || !parse_state(w[3], a.state)) return err("usage: at-state HOST:PORT ROLE STATE LINE...");
    a.state_key = std::string(w[1]);
    for (size_t i = 4; i < w.size(); i++) a.line += (i > 4 ? " " : "") + std::string(w[i]);
    std::lock_guard<std::mutex> lk(g_mu);
    if (g_map.find(a.state_key) == g_map.end()) return err("unknown node");
    g_armed.push_back(std::move(a));
    return ok();
  }
  if (cmd == "later" || cmd == "at-items") {
    // later MS LINE...: run control LINE MS from now. at-items NODE K LINE...: run it once NODE's
    // item count reaches K from below (a construction reached K; a node that holds more is
    // waited for to be emptied first, as a rebuild's flush_all does). One shot each.
    int64_t v;
    uint64_t k;
    ArmedFault a;
    size_t rest = 2;
    if (cmd == "later") {
      if (w.size() < 3 || !parse_i64(w[1], v) || v < 0) return err("usage: later MS LINE...");
      a.at_ms = mono_ms() + v;
    } else {
      Endpoint* ep = w.size() >= 4 ? find_target(w[1]) : nullptr;
      if (!ep || ep->kind != Kind::Node || !parse_u64(w[2], k)) return err("usage: at-items NODE K LINE...");
      a.node_idx = ep->node_idx;
      a.items = k;
      rest = 3;
    }
    for (size_t i = rest; i < w.size(); i++) a.line += (i > rest ? " " : "") + std::string(w[i]);
    std::lock_guard<std::mutex> lk(g_mu);
    g_armed.push_back(std::move(a));
    return ok();
  }
  if (cmd == "index-gone" || cmd == "index-back") {
    // index-gone MS: flarei's process gone (killed): its listener and every connection to it
    // closed; MS later (0 = until index-back) it is back on the same port with the map it had
    // (a restarted flarei reads its flare.xml; a real one showed a slave still in prepare, its
    // copy going on meanwhile). index-back: back now.
    int64_t v = 0;
    if ((cmd == "index-gone" && (w.size() != 2 || !parse_i64(w[1], v) || v < 0)) || (cmd == "index-back" && w.size() != 1))
      return err("usage: index-gone MS | index-back");
    std::unique_lock<std::mutex> lk(g_mu);
    g_index_alive = cmd == "index-back";
    if (!g_index_alive) {
      for (Conn* k : g_conns) {
        if (k->ep != g_index_ep.get()) continue;
        k->killed = true;
        ::shutdown(k->fd, SHUT_RDWR);
      }
      wake_sleepers();
      if (v > 0) {
        ArmedFault a;
        a.at_ms = mono_ms() + v;
        a.line = "index-back";
        g_armed.push_back(std::move(a));
      }
    }
    return ok();
  }
  if (cmd == "requests-clear") {
    std::lock_guard<std::mutex> lk(g_reqlog_mu);
    g_reqlog.clear();
    g_reqlog_dropped = 0;
    return ok();
  }
  if (cmd == "set-node") {
    Role role;
    State st;
    int64_t part, bal;
    std::string host;
    int port;
    if (w.size() != 6 || !split_key(w[1], host, port) || !parse_role(w[2], role) ||
        !parse_state(w[3], st) || !parse_i64(w[4], part) || !parse_i64(w[5], bal) || part < -1 ||
        part >= g_cfg.partition_size || bal < 0 || bal > INT_MAX)
      return err("usage: set-node HOST:PORT ROLE STATE PARTITION BALANCE");
    std::lock_guard<std::mutex> lk(g_mu);
    std::string key = host + ":" + std::to_string(port);
    auto it = g_map.find(key);
    MapEntry& e = it != g_map.end() ? it->second : add_entry(host, port);
    e.role = role;
    e.state = st;
    e.partition = static_cast<int>(part);
    e.balance = static_cast<int>(bal);
    e.reset_copy();
    if (st == State::Down) e.down_since = monitor_ms();
    bump();
    return ok();
  }
  if (cmd == "thread-type") {
    // thread-type HOST:PORT N: the node's thread_type (flarei numbers nodes in the order their
    // flared registered, a race at startup); later nodes get the next free number.
    int64_t tt;
    if (w.size() != 3 || !parse_i64(w[2], tt) || tt < 0 || tt > INT_MAX) return err("usage: thread-type HOST:PORT N");
    std::lock_guard<std::mutex> lk(g_mu);
    auto it = g_map.find(std::string(w[1]));
    if (it == g_map.end()) return err("unknown node");
    it->second.thread_type = static_cast<int>(tt);
    for (auto& kv : g_map) g_next_thread_type = std::max(g_next_thread_type, kv.second.thread_type + 1);
    return ok();
  }
  if (cmd == "map-hold") {
    // map-hold NODE 1|0: NODE keeps the map it holds now and takes none of the index's until 0.
    if (w.size() != 3 || (w[2] != "0" && w[2] != "1")) return err("usage: map-hold NODE 0|1");
    std::lock_guard<std::mutex> lk(g_mu);
    Endpoint* ep = find_target(w[1]);
    if (!ep || ep->kind != Kind::Node) return err("unknown node");
    FakeNode& n = *g_nodes[static_cast<size_t>(ep->node_idx)];
    if (w[2] == "1" && !n.map_held) {
      uint64_t held = 0;
      n.held_map = node_view(n, held);
      n.held_version = held;
    }
    n.map_held = w[2] == "1";
    return ok();
  }
  if (cmd == "index-restart") {
    // index-restart VERSION: flarei restarted from an older flare.xml (same nodes, its
    // node_map_version back to VERSION). Every node keeps the map it holds, and ignores each map
    // from the index until one is newer than its own (flare 1.3.4 cluster::reconstruct_node:
    // "ignored: the current node_map_version (27) is newer than (8)").
    int64_t v;
    if (w.size() != 2 || !parse_i64(w[1], v) || v < 1) return err("usage: index-restart VERSION");
    std::lock_guard<std::mutex> lk(g_mu);
    for (auto& n : g_nodes) {
      uint64_t held = 0;
      NodeMap copy = node_view(*n, held);
      if (held > n->floor_version) {
        n->floor_map = std::move(copy);
        n->floor_version = held;
      }
    }
    g_map_version = static_cast<uint64_t>(v);
    return ok();
  }
  static const char* const kTargeted[] = {"delay", "stats-delay", "set-service", "dump-rate", "cut", "drip", "hang", "refuse", "stall",
                                          "override", "kill", "start", "fill", "put", "put-hex", "items",
                                          "reconstruction-bwlimit", "kill-after", "repl-lag", "connections", "received"};
  if (std::none_of(std::begin(kTargeted), std::end(kTargeted), [&](const char* k) { return cmd == k; }))
    return err("unknown command");
  if (w.size() < 2) return err("missing target");
  Endpoint* ep = find_target(w[1]);
  if (!ep) return err("unknown target");
  FakeNode* node = ep->kind == Kind::Node ? g_nodes[static_cast<size_t>(ep->node_idx)].get() : nullptr;
  int64_t v = 0;
  if (cmd == "dump-rate") {
    if (!node || w.size() != 3 || !parse_i64(w[2], v) || v < 0 || v > INT_MAX) return err("usage: dump-rate NODE KB_PER_SEC");
    ep->dump_kbps = v;
    return ok();
  }
  if (cmd == "reconstruction-bwlimit") {
    if (!node || w.size() != 3 || !parse_i64(w[2], v) || v < 0 || v > INT_MAX)
      return err("usage: reconstruction-bwlimit NODE KB_PER_SEC");
    std::lock_guard<std::mutex> lk(g_mu);
    node->recon_bwlimit_kb = v;
    return ok();
  }
  if (cmd == "set-service") {
    if (!node || w.size() != 3 || !parse_i64(w[2], v) || v < 0 || v > 60000000) return err("usage: set-service NODE US");
    ep->set_service_us = v;
    return ok();
  }
  if (cmd == "delay" || cmd == "stats-delay" || cmd == "cut" || cmd == "drip" || cmd == "hang" ||
      cmd == "refuse" || cmd == "stall") {
    if (w.size() != 3 || !parse_i64(w[2], v) || v < 0 || v > INT_MAX) return err("bad value");
    int iv = static_cast<int>(v);
    if (cmd == "delay") ep->delay_ms = iv;
    else if (cmd == "stats-delay") ep->stats_delay_ms = iv;
    else if (cmd == "cut") ep->cut = v;
    else if (cmd == "drip") ep->drip_ms = iv;
    else if (cmd == "hang") {
      if (v > 1) return err("bad value");
      ep->hang = v == 1;
    } else if (cmd == "stall") {
      if (v > 1) return err("bad value");
      std::lock_guard<std::mutex> lk(g_mu);
      ep->stalled = v == 1;
      g_alive_edits++;  // the monitor's view of the node changes (entry_alive)
    } else {
      if (v > 1) return err("bad value");
      std::unique_lock<std::mutex> lk(g_mu);
      ep->refused = v == 1;
      update_want(ep);
      std::string e = sync_listeners(lk);
      if (!e.empty()) return err(e);
    }
    return ok();
  }
  if (cmd == "override") {
    if (w.size() < 4) return err("usage: override TARGET WORD HEX [REPEAT] [close] | off");
    std::string word(w[2]);
    std::lock_guard<std::mutex> lk(g_mu);
    if (w[3] == "off" && w.size() == 4) {
      ep->overrides.erase(word);
      ep->has_override = !ep->overrides.empty();
      return ok();
    }
    Override ov;
    std::string_view hex = w[3];
    if (hex != "-") {
      if (hex.size() % 2) return err("bad hex");
      for (size_t i = 0; i < hex.size(); i += 2) {
        int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
        if (hi < 0 || lo < 0) return err("bad hex");
        ov.bytes += static_cast<char>(hi * 16 + lo);
      }
    }
    for (size_t i = 4; i < w.size(); i++) {
      uint64_t rep;
      if (w[i] == "close") ov.close = true;
      else if (w[i] == "once") ov.once = true;
      else if (parse_u64(w[i], rep)) ov.repeat = rep;
      else return err("bad override option");
    }
    ep->overrides[word] = std::move(ov);
    ep->has_override = true;
    return ok();
  }
  if (cmd == "kill-after") {
    if (!node || w.size() != 3 || !parse_i64(w[2], v) || v < 0) return err("usage: kill-after NODE COUNT");
    ep->kill_after = v;
    return ok();
  }
  if (cmd == "repl-lag") {
    uint64_t lag;
    if (!node || w.size() != 3 || !parse_u64(w[2], lag)) return err("usage: repl-lag NODE WRITES");
    std::lock_guard<std::mutex> lk(g_mu);
    node->repl_lag = lag;
    while (node->repl_queue.size() > lag) {
      FakeNode::Pending& f = node->repl_queue.front();
      if (f.erase) node_erase(*node, f.key);
      else node_put(*node, f.key, f.item);
      node->repl_queue.pop_front();
    }
    return ok();
  }
  if (cmd == "kill" || cmd == "start") {
    if (!node || w.size() != 2) return err("kill/start need a node target");
    std::unique_lock<std::mutex> lk(g_mu);
    if (cmd == "kill") {
      if (node->alive) kill_locked(ep, *node);
    } else if (!node->alive) {
      set_alive(*node, true);
      node->alive_since = monitor_ms();
      node->start_unix = unix_now();
      node->reset_counters();
      update_want(ep);
      auto it = g_map.find(node->key);
      if (it == g_map.end()) {
        std::string host;
        int port;
        if (split_key(node->key, host, port)) add_entry(host, port);
      } else {
        // Back in the map under its key: the monitor brings it back revive-ms later (flared's
        // `node add` of a down node leaves it down, index_node_add.txt).
        it->second.unreach_since = -1;
        bump();  // flarei re-broadcasts the map on a known node's `node add` (failover_kill9.txt)
      }
    }
    std::string e = sync_listeners(lk);
    if (!e.empty()) return err(e);
    return ok();
  }
  if (cmd == "fill") {
    uint64_t count, size;
    if (!node || w.size() < 4 || w.size() > 5 || !parse_u64(w[2], count) || !parse_u64(w[3], size) ||
        size > static_cast<uint64_t>(kMaxData))
      return err("usage: fill NODE COUNT SIZE [PREFIX]");
    std::string prefix = w.size() == 5 ? std::string(w[4]) : std::string("key");
    std::string pattern = make_pattern(static_cast<size_t>(size));
    for (uint64_t start = 0; start < count; start += 1000)
      do_fill_items(*node, prefix, start, std::min<uint64_t>(1000, count - start),
                    static_cast<size_t>(size), pattern);
    return ok();
  }
  if (cmd == "put") {
    // put NODE KEY [VALUE]: one item on NODE alone (no routing, no slaves), to misplace keys.
    if (!node || w.size() < 3 || w.size() > 4 || w[2].empty() || w[2].size() > 250) return err("usage: put NODE KEY [VALUE]");
    std::string value = w.size() == 4 ? std::string(w[3]) : std::string("v");
    BlobRef b = BlobRef::make(value.size());
    if (!value.empty()) std::memcpy(b.wdata(), value.data(), value.size());
    std::lock_guard<std::mutex> lk(g_mu);
    Item it;
    it.val = b;
    auto old = node->store.find(w[2]);
    it.version = old != node->store.end() ? old->second.version + 1 : 1;
    node_put(*node, w[2], it);
    return ok();
  }
  if (cmd == "put-hex") {
    // put-hex NODE KEYHEX [VALUEHEX]: as put, with the key (and value) given in hex, so that it may
    // hold any byte, a space or CR LF included, as a binary-protocol client stores it on a real
    // flared (which then writes it raw in dump and dump_key).
    auto unhex = [](std::string_view h, std::string& out) {
      out.clear();
      if (h.size() % 2) return false;
      for (size_t i = 0; i < h.size(); i += 2) {
        int hi = hexval(h[i]), lo = hexval(h[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out += static_cast<char>(hi * 16 + lo);
      }
      return true;
    };
    std::string key, value = "v";
    if (!node || w.size() < 3 || w.size() > 4 || !unhex(w[2], key) || key.empty() || key.size() > 65535 ||
        (w.size() == 4 && !unhex(w[3], value)))
      return err("usage: put-hex NODE KEYHEX [VALUEHEX]");
    BlobRef b = BlobRef::make(value.size());
    if (!value.empty()) std::memcpy(b.wdata(), value.data(), value.size());
    std::lock_guard<std::mutex> lk(g_mu);
    Item it;
    it.val = b;
    auto old = node->store.find(key);
    it.version = old != node->store.end() ? old->second.version + 1 : 1;
    node_put(*node, key, it);
    return ok();
  }
  if (cmd == "items") {
    if (!node) return err("items needs a node target");
    std::lock_guard<std::mutex> lk(g_mu);
    o += "ITEMS " + std::to_string(node->store.size()) + "\r\n";
    return true;
  }
  if (cmd == "connections") {
    std::lock_guard<std::mutex> lk(g_mu);
    o += "COUNT " + std::to_string(ep->total_connections) + "\r\n";
    return true;
  }
  if (cmd == "received") {
    o += "COUNT " + std::to_string(ep->bytes_read.load()) + "\r\n";
    return true;
  }
  return err("unknown command");
}

// ------------------------------------------------------------------------------------------ connections

bool handle_line(Conn* c, std::string_view line, Pending& p) {
  std::vector<std::string_view>& w = c->words;
  split_words(line, w);
  switch (c->ep->kind) {
    case Kind::Control: return control_cmd(c, w);
    case Kind::Index: return g_index_alive.load() && index_line(c, line, w);
    case Kind::Node: return node_line(c, line, w, p);
  }
  return false;
}

// Parse and execute what is buffered; false = close the connection.
bool process_input(Conn* c, std::vector<char>& rb, size_t& rpos, size_t rend, Pending& p) {
  bool hangable = c->ep->kind != Kind::Control;
  // A stalled server (SIGSTOP) reads and answers nothing; what was sent meanwhile is handled
  // once it goes on (the kernel still accepts connections and buffers the requests).
  while (hangable && c->ep->stalled.load() && !g_stop.load() && !c->killed.load())
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (;;) {
    if (hangable && c->ep->hang.load()) {
      rpos = rend;
      p = Pending();
      return true;
    }
    if (p.active) {
      size_t need = p.blob.size() - p.have;
      if (need > 0) {
        size_t take = std::min(need, rend - rpos);
        if (take) std::memcpy(p.blob.wdata() + p.have, rb.data() + rpos, take);
        p.have += take;
        rpos += take;
        if (p.have < p.blob.size()) return true;
      }
      while (p.trailer > 0 && rpos < rend) {
        p.trailer--;
        rpos++;
      }
      if (p.trailer > 0) return true;
      p.active = false;
      if (!finish_storage(c, p)) return false;
      if (c->out.size() >= kFlushAt && !flush(c)) return false;
      continue;
    }
    if (rpos >= rend) return true;
    const char* base = rb.data() + rpos;
    size_t avail = rend - rpos;
    const char* nl = static_cast<const char*>(std::memchr(base, '\n', avail));
    if (!nl) {
      if (avail > kMaxLine) {
        c->out += "ERROR\r\n";
        flush(c);
        return false;
      }
      return true;
    }
    size_t len = static_cast<size_t>(nl - base);
    rpos += len + 1;
    if (len > kMaxLine) {
      c->out += "ERROR\r\n";
      flush(c);
      return false;
    }
    if (len > 0 && base[len - 1] == '\r') len--;
    if (!handle_line(c, std::string_view(base, len), p)) return false;
    if (c->out.size() >= kFlushAt && !flush(c)) return false;
  }
}

void graceful_close(int fd, bool drain) {
  if (drain) {
    ::shutdown(fd, SHUT_WR);
    struct timeval tv;
    tv.tv_sec = 0;
    tv.tv_usec = 200000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::vector<char> buf(65536);
    size_t total = 0;
    int64_t deadline = mono_ms() + 500;
    while (total < (64u << 20) && mono_ms() < deadline) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      total += static_cast<size_t>(n);
    }
  }
  ::close(fd);
}

void conn_main(Conn* c) {
  // Starts small and grows to kReadBuf on demand: 2,000 connections at once must not each
  // zero (and fault in) 256 KB.
  std::vector<char> rb(std::max<size_t>(4096, c->pending_in.size()));
  size_t rpos = 0, rend = c->pending_in.size();
  if (rend) std::memcpy(rb.data(), c->pending_in.data(), rend);
  c->pending_in.clear();
  c->pending_in.shrink_to_fit();
  Pending p;
  bool we_close = false;
  try {
    // Handed over by the event loop: what it could not send goes first.
    if (!flush(c)) throw std::runtime_error("flush");
    while (!g_stop.load() && !c->killed.load()) {
      if (!process_input(c, rb, rpos, rend, p)) {
        we_close = true;
        break;
      }
      if (!flush(c)) {
        we_close = true;
        break;
      }
      if (rpos == rend) {
        rpos = rend = 0;
      } else if (rpos > 0) {
        std::memmove(rb.data(), rb.data() + rpos, rend - rpos);
        rend -= rpos;
        rpos = 0;
      }
      size_t space = rb.size() - rend;
      ssize_t n = ::recv(c->fd, rb.data() + rend, space, 0);
      if (n > 0 && static_cast<size_t>(n) == space && rb.size() < kReadBuf)
        rb.resize(std::min(rb.size() * 4, kReadBuf));  // a full read: more is coming
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (n == 0) break;
      rend += static_cast<size_t>(n);
      c->ep->bytes_read.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    }
    if (!c->killed.load()) flush(c);
  } catch (const std::exception&) {
    we_close = true;
  }
  {
    std::lock_guard<std::mutex> lk(g_mu);
    g_conns.erase(c->in_conns);
    c->ep->open_connections--;
  }
  graceful_close(c->fd, we_close && !c->killed.load() && !g_stop.load());
  c->fd = -1;
  c->done = true;
}

// A socket bound to host:port (0 = ephemeral; *bound_port gets it) and listening, or with
// listen = false only bound: a bound socket that does not listen refuses connections and holds
// the port, so that no other process can take it (park_listener).
int open_listener(const std::string& host, int port, std::string& err, int* bound_port, bool listen = true) {
  struct sockaddr_in sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    struct addrinfo hints;
    std::memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) {
      err = "cannot resolve " + host;
      return -1;
    }
    sa.sin_addr = reinterpret_cast<struct sockaddr_in*>(res->ai_addr)->sin_addr;
    freeaddrinfo(res);
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) != 0 || (listen && ::listen(fd, 512) != 0)) {
    err = "bind/listen " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (bound_port) {
    socklen_t len = sizeof(sa);
    getsockname(fd, reinterpret_cast<struct sockaddr*>(&sa), &len);
    *bound_port = ntohs(sa.sin_port);
  }
  err.clear();
  return fd;
}

// Stops listening and keeps the port: the listener is closed and a socket bound to the same
// port, not listening, takes its place until the endpoint listens again (on that socket).
// Closed alone, the port went back to the ephemeral pool, and another test's fake running at
// the same time could listen on it and answer in this node's place (a refused node seen
// "answering" with another cluster's map).
void park_listener(Endpoint& ep) {
  ::close(ep.listen_fd);
  ep.listen_fd = -1;
  std::string err;
  ep.parked_fd = open_listener(g_cfg.host, ep.port, err, nullptr, false);
}

void reconcile_listeners() {
  std::lock_guard<std::mutex> lk(g_mu);
  for (Endpoint* ep : g_endpoints) {
    if (ep->want_listen && ep->listen_fd < 0) {
      if (ep->parked_fd >= 0 && ::listen(ep->parked_fd, 512) == 0) {
        ep->listen_fd = ep->parked_fd;
        ep->listen_err.clear();
      } else {
        if (ep->parked_fd >= 0) ::close(ep->parked_fd);
        ep->listen_fd = open_listener(g_cfg.host, ep->port, ep->listen_err, nullptr);
      }
      ep->parked_fd = -1;
      ep->listen_opens++;
    } else if (!ep->want_listen && ep->listen_fd >= 0) {
      park_listener(*ep);
      ep->listen_err.clear();
    } else {
      ep->listen_err.clear();
    }
  }
  g_listen_done = g_listen_req;
  g_listen_cv.notify_all();
}

// Connection threads are kept and reused. Starting a thread per connection (and unmapping its
// stack when it ended) was half of the fake's CPU when a tool asked 2,000 nodes at once, and
// the benchmarks measure the tool, not the fake. A connection waits for an idle worker only if
// one is already waiting for it; otherwise a new worker starts, so no connection is ever queued
// behind another one's blocking reads.
std::mutex g_pool_mu;
std::condition_variable g_pool_cv;
std::deque<Conn*> g_pool_queue;       // g_pool_mu
size_t g_pool_waiting = 0;            // g_pool_mu: workers waiting for a connection
bool g_pool_stop = false;             // g_pool_mu
std::vector<std::thread> g_pool;      // g_pool_mu; joined by main once the acceptor is gone

void pool_worker() {
  std::unique_lock<std::mutex> lk(g_pool_mu);
  for (;;) {
    ++g_pool_waiting;
    g_pool_cv.wait(lk, [] { return g_pool_stop || !g_pool_queue.empty(); });
    --g_pool_waiting;
    if (g_pool_queue.empty()) return;  // stopping
    Conn* c = g_pool_queue.front();
    g_pool_queue.pop_front();
    lk.unlock();
    conn_main(c);
    lk.lock();
  }
}

// Hands C to a worker; false when no thread could be started for it.
bool pool_run(Conn* c) {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  g_pool_queue.push_back(c);
  if (g_pool_waiting >= g_pool_queue.size()) {
    g_pool_cv.notify_one();
    return true;
  }
  try {
    g_pool.emplace_back(pool_worker);
  } catch (const std::exception&) {
    g_pool_queue.pop_back();  // nobody took it: no worker was waiting
    return false;
  }
  return true;
}

void pool_stop_and_join() {
  std::vector<std::thread> ts;
  {
    std::lock_guard<std::mutex> lk(g_pool_mu);
    g_pool_stop = true;
    ts.swap(g_pool);
  }
  g_pool_cv.notify_all();
  for (auto& t : ts) t.join();
}

// Registers an accepted connection (g_conns, the endpoint's counters, g_owned); nullptr when its
// node is dead (the socket closed).
Conn* register_conn(Endpoint* ep, int fd, const struct sockaddr_in& peer) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto c = std::make_unique<Conn>();
  c->fd = fd;
  c->ep = ep;
  c->tid = g_next_tid++;
  char ip[INET_ADDRSTRLEN] = "";
  inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
  c->peer = std::string(ip) + ":" + std::to_string(ntohs(peer.sin_port));
  c->accepted_unix = unix_now();
  Conn* raw = c.get();
  {
    std::lock_guard<std::mutex> lk(g_mu);
    if (ep->kind == Kind::Node && !g_nodes[static_cast<size_t>(ep->node_idx)]->alive) {
      ::close(fd);
      return nullptr;
    }
    raw->in_conns = g_conns.insert(g_conns.end(), raw);
    ep->open_connections++;
    ep->total_connections++;
  }
  g_owned.push_back(std::move(c));
  return raw;
}

// Forgets a registered connection and closes its socket (no worker has it, or its worker is done).
void drop_conn(Conn* c) {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    g_conns.erase(c->in_conns);
    c->ep->open_connections--;
  }
  ::close(c->fd);
  c->fd = -1;
  c->done = true;
}

// Hands a registered connection to a worker thread for good; closes it if none can start.
void start_worker(Conn* c) {
  if (!pool_run(c)) drop_conn(c);
}

void spawn_conn(Endpoint* ep, int fd, const struct sockaddr_in& peer) {
  if (Conn* c = register_conn(ep, fd, peer)) start_worker(c);
}

// Accepts up to 64 waiting connections of EP's listener (non-blocking).
void accept_some(Endpoint* ep) {
  for (int k = 0; k < 64; k++) {
    struct sockaddr_in peer;
    socklen_t len = sizeof(peer);
    int fd = ::accept4(ep->listen_fd, reinterpret_cast<struct sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (fd < 0) break;
    spawn_conn(ep, fd, peer);
  }
}

// Forgets the connections that ended; not on every accept (g_owned holds 2,000 at a time).
void reap_conns() {
  g_owned.erase(std::remove_if(g_owned.begin(), g_owned.end(), [](const std::unique_ptr<Conn>& c) { return c->done.load(); }),
                g_owned.end());
}

// Listeners change only on request (a wake), but a timeout (200 ms idle) re-checks them anyway;
// not on every accept, which with 2,000 listeners would walk them all under g_mu each time.
// On Linux the listeners sit in an epoll set kept in step with them: poll() over 2,001 listeners
// for every few accepts was most of the fake's kernel time when a tool asked 2,000 nodes at once.
#ifdef __linux__
// The event loop (Linux, unless --thread-per-connection). A new connection to the index or a
// node is first served by the acceptor thread itself, from its epoll set, for as long as it asks
// only what never blocks: `stats ...`, `meta`, `ping`, `version`, with no fault armed on its
// server (delay, drip, cut, hang, override, stall; index alive). Its first other request (a
// storage command, a dump, anything while a fault is armed) hands it, with what it has buffered
// and what could not be sent yet, to a worker thread for good, which answers exactly as before.
// stats-delay is waited out on a timer instead of a sleeping thread. Why: 2,000 nodes asked at
// once meant 2,000 thread wake-ups, each through a futex, and the fake's CPU time (twice the
// tool's own on two cores) was most of what the check and stats benchmarks measured.
class EventLoop {
 public:
  explicit EventLoop(int ep_fd) : ep_fd_(ep_fd) {}
  static constexpr uint64_t kConnTag = uint64_t(1) << 63;  // epoll data: a Conn*, not a listener's fd

  // Takes an accepted, registered, non-blocking connection.
  void adopt(Conn* c) {
    struct epoll_event ev {};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = kConnTag | static_cast<uint64_t>(reinterpret_cast<uintptr_t>(c));
    if (::epoll_ctl(ep_fd_, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
      hand_off(c);
      return;
    }
    conns_.insert(c);
  }

  // An epoll event for a connection (data.u64 with kConnTag).
  void on_event(uint64_t data) {
    Conn* c = reinterpret_cast<Conn*>(static_cast<uintptr_t>(data & ~kConnTag));
    if (!conns_.count(c)) return;  // closed or handed off earlier in this batch
    char buf[16384];
    bool eof = false;
    for (;;) {
      ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
      if (n > 0) {
        c->pending_in.append(buf, static_cast<size_t>(n));
        c->ep->bytes_read.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
        if (c->pending_in.size() > kMaxLine) break;  // a worker answers it as it answers any client
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) eof = true;
      break;
    }
    if (eof && (c->killed.load() || c->pending_in.empty())) {
      close_conn(c);
      return;
    }
    if (eof) {
      // The client sent its requests and shut its side: a worker answers them and closes, as
      // when it read them itself (after the stats-delay under way, if one is).
      if (!c->stats_timer) return hand_off(c);
      ::epoll_ctl(ep_fd_, EPOLL_CTL_DEL, c->fd, nullptr);  // no more events from this socket
      eof_.insert(c);
      return;
    }
    if (!c->stats_timer) serve(c);
  }

  // Answers the connections whose stats-delay is over; the next timer's wait in ms (-1: none).
  int run_timers(int cap_ms) {
    auto now = std::chrono::steady_clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      Conn* c = timers_.begin()->second;
      timers_.erase(timers_.begin());
      c->stats_timer = false;
      if (eof_.count(c)) hand_off(c);
      else serve(c);
    }
    if (timers_.empty()) return cap_ms;
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(timers_.begin()->first - now).count() + 1;
    return static_cast<int>(std::min<int64_t>(cap_ms, wait));
  }

  // At exit: every connection still here closed.
  void close_all() {
    while (!conns_.empty()) close_conn(*conns_.begin());
  }

 private:
  static bool quick_request(const Conn* c, std::string_view line) {
    const Endpoint* ep = c->ep;
    if (c->killed.load() || ep->delay_ms.load() || ep->drip_ms.load() || ep->cut.load() || ep->hang.load() ||
        ep->has_override.load() || ep->stalled.load())
      return false;
    if (ep->kind == Kind::Control || (ep->kind == Kind::Index && !g_index_alive.load())) return false;
    size_t sp = line.find(' ');
    std::string_view cmd = line.substr(0, sp);
    return cmd == "stats" || cmd == "meta" || cmd == "ping" || cmd == "version";
  }

  // Answers C's buffered requests while they are quick ones, then sends the replies.
  void serve(Conn* c) {
    for (;;) {
      size_t nl = c->pending_in.find('\n');
      if (nl == std::string::npos) {
        if (c->pending_in.size() > kMaxLine) return hand_off(c);
        break;
      }
      std::string_view line(c->pending_in.data(), nl);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!quick_request(c, line)) return hand_off(c);
      if (line == "stats" && !c->skip_stats_delay) {
        int sd = c->ep->stats_delay_ms.load();
        if (sd > 0) {
          c->skip_stats_delay = true;
          c->stats_timer = true;
          timers_.emplace(std::chrono::steady_clock::now() + std::chrono::milliseconds(sd), c);
          break;  // what is already answered goes out now, as a worker flushes before it sleeps
        }
      }
      Pending p;
      bool ok = handle_line(c, line, p);
      c->pending_in.erase(0, nl + 1);
      if (!ok) {
        send_some(c);
        return close_conn(c);
      }
    }
    if (!send_some(c)) return close_conn(c);
    if (!c->out.empty()) hand_off(c);  // the client reads slowly: a worker blocks on it
  }

  // Sends what it can of C's replies without blocking; false when the peer is gone.
  static bool send_some(Conn* c) {
    size_t done = 0;
    while (done < c->out.size()) {
      ssize_t w = ::send(c->fd, c->out.data() + done, c->out.size() - done, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      done += static_cast<size_t>(w);
      c->sent += static_cast<uint64_t>(w);
      c->ep->bytes_written.fetch_add(static_cast<uint64_t>(w), std::memory_order_relaxed);
    }
    c->out.erase(0, done);
    return true;
  }

  void forget(Conn* c) {
    conns_.erase(c);
    eof_.erase(c);
    if (c->stats_timer) {
      for (auto it = timers_.begin(); it != timers_.end(); ++it)
        if (it->second == c) {
          timers_.erase(it);
          break;
        }
      c->stats_timer = false;
    }
  }

  void close_conn(Conn* c) {
    ::epoll_ctl(ep_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
    forget(c);
    drop_conn(c);
  }

  // From now on a worker thread owns C (its socket blocking again).
  void hand_off(Conn* c) {
    ::epoll_ctl(ep_fd_, EPOLL_CTL_DEL, c->fd, nullptr);  // ENOENT if no longer watched: harmless
    forget(c);
    int fl = ::fcntl(c->fd, F_GETFL);
    if (fl >= 0) ::fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
    start_worker(c);
  }

  int ep_fd_;
  std::unordered_set<Conn*> conns_;  // in the loop
  std::unordered_set<Conn*> eof_;    // in the loop, their client done sending, a stats-delay pending
  std::multimap<std::chrono::steady_clock::time_point, Conn*> timers_;
};

void acceptor_main() {
  int ep_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep_fd < 0) {
    std::perror("fake-flare: epoll_create1");
    std::exit(1);
  }
  EventLoop loop(ep_fd);
  const bool events = !g_cfg.thread_per_connection;
  // listener fd -> its endpoint and which of its listeners, as registered in ep_fd
  std::map<int, std::pair<Endpoint*, uint64_t>> watched;
  auto resync = [&] {
    for (auto it = watched.begin(); it != watched.end();) {
      const Endpoint* ep = it->second.first;
      if (ep->listen_fd == it->first && ep->listen_opens == it->second.second) {
        ++it;
        continue;
      }
      ::epoll_ctl(ep_fd, EPOLL_CTL_DEL, it->first, nullptr);  // fails harmlessly once closed
      it = watched.erase(it);
    }
    for (Endpoint* ep : g_endpoints) {
      if (ep->listen_fd < 0 || watched.count(ep->listen_fd)) continue;
      struct epoll_event ev {};
      ev.events = EPOLLIN;
      ev.data.fd = ep->listen_fd;
      if (::epoll_ctl(ep_fd, EPOLL_CTL_ADD, ep->listen_fd, &ev) == 0) watched[ep->listen_fd] = {ep, ep->listen_opens};
    }
  };
  {
    struct epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.fd = g_wake_pipe[0];
    ::epoll_ctl(ep_fd, EPOLL_CTL_ADD, g_wake_pipe[0], &ev);
  }
  resync();
  std::vector<struct epoll_event> evs(256);
  size_t accepted = 0;
  int timeout_ms = 200;
  while (!g_stop.load()) {
    int r = ::epoll_wait(ep_fd, evs.data(), static_cast<int>(evs.size()), timeout_ms);
    if (g_stop.load()) break;
    if (r < 0 && errno != EINTR) break;
    bool woken = false;
    for (int i = 0; i < r; i++)
      if (evs[static_cast<size_t>(i)].data.u64 == static_cast<uint64_t>(g_wake_pipe[0])) woken = true;
    if (woken) {
      char buf[256];
      while (::read(g_wake_pipe[0], buf, sizeof(buf)) > 0) {
      }
    }
    if (woken || r == 0) {
      reconcile_listeners();
      resync();
      reap_conns();
    }
    for (int i = 0; i < r; i++) {
      const uint64_t data = evs[static_cast<size_t>(i)].data.u64;
      if (data & EventLoop::kConnTag) {
        loop.on_event(data);
        continue;
      }
      int fd = static_cast<int>(data);
      auto it = watched.find(fd);
      if (fd == g_wake_pipe[0] || it == watched.end() || it->second.first->listen_fd != fd) continue;  // closed by reconcile
      Endpoint* lep = it->second.first;
      if (!events || lep->kind == Kind::Control) {
        accept_some(lep);
      } else {
        for (int k = 0; k < 64; k++) {
          struct sockaddr_in peer;
          socklen_t len = sizeof(peer);
          int cfd = ::accept4(lep->listen_fd, reinterpret_cast<struct sockaddr*>(&peer), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (cfd < 0) break;
          if (Conn* c = register_conn(lep, cfd, peer)) loop.adopt(c);
        }
      }
      accepted++;
    }
    timeout_ms = loop.run_timers(200);
    if (accepted >= 256) {
      reap_conns();
      accepted = 0;
    }
  }
  loop.close_all();
  ::close(ep_fd);
  for (Endpoint* ep : g_endpoints) {
    if (ep->listen_fd >= 0) {
      ::close(ep->listen_fd);
      ep->listen_fd = -1;
    }
  }
}
#else
void acceptor_main() {
  std::vector<struct pollfd> pfds;
  std::vector<Endpoint*> eps;
  while (!g_stop.load()) {
    pfds.clear();
    eps.clear();
    pfds.push_back(pollfd{g_wake_pipe[0], POLLIN, 0});
    eps.push_back(nullptr);
    for (Endpoint* ep : g_endpoints) {
      if (ep->listen_fd >= 0) {
        pfds.push_back(pollfd{ep->listen_fd, POLLIN, 0});
        eps.push_back(ep);
      }
    }
    int r = ::poll(pfds.data(), pfds.size(), 200);
    if (g_stop.load()) break;
    if (r < 0 && errno != EINTR) break;
    if (pfds[0].revents) {
      char buf[256];
      while (::read(g_wake_pipe[0], buf, sizeof(buf)) > 0) {
      }
    }
    if (pfds[0].revents || r == 0) reconcile_listeners();
    for (size_t i = 1; i < pfds.size(); i++) {
      if (!(pfds[i].revents & POLLIN)) continue;
      Endpoint* ep = eps[i];
      if (ep->listen_fd != pfds[i].fd) continue;  // closed by reconcile
      accept_some(ep);
    }
    reap_conns();
  }
  for (Endpoint* ep : g_endpoints) {
    if (ep->listen_fd >= 0) {
      ::close(ep->listen_fd);
      ep->listen_fd = -1;
    }
  }
}
#endif

void timer_main() {
  auto last = std::chrono::steady_clock::now();
  while (nap_ms(10, nullptr)) {
    auto now = std::chrono::steady_clock::now();
    double dt = std::chrono::duration<double>(now - last).count();
    last = now;
    tick(dt);
    run_armed_faults();
  }
}

// ------------------------------------------------------------------------------------------ main

void on_signal(int) {
  int saved = errno;
  char x = 's';
  ssize_t r = ::write(g_sig_pipe[1], &x, 1);
  (void)r;
  errno = saved;
}

[[noreturn]] void usage(const char* msg) {
  if (msg && *msg) std::fprintf(stderr, "fake-flare: %s\n", msg);
  std::fprintf(stderr,
               "usage: fake-flare [--host H] [--index-port N] [--nodes N] [--node-port P]...\n"
               "       [--ready-file PATH] [--exit-on-stdin-eof] [--control-port N] [--thread-per-connection]\n"
               "       [--test-monitor-clock]\n"
               "       [--copy-rate N] [--revive-ms MS] [--dead-after-ms MS] [--stats-delay-ms MS] [--report-retry-ms MS]\n"
               "       [--set-service-us US] [--stopped-node-port P]...\n"
               "       [--key-hash-algorithm simple|bitshift|crc32] [--partition-size N]\n"
               "       [--partition-type modular] [--partition-modular-hint N]\n"
               "       [--partition-modular-virtual N]\n");
  std::exit(2);
}

int64_t num_arg(const std::string& name, const std::string& v, int64_t lo, int64_t hi) {
  int64_t x;
  if (!parse_i64(v, x) || x < lo || x > hi) usage(("bad value for " + name + ": " + v).c_str());
  return x;
}

void parse_args(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    std::string val;
    bool has_val = false;
    size_t eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
      val = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_val = true;
    }
    if (a == "--exit-on-stdin-eof") {
      g_cfg.exit_on_stdin_eof = true;
      continue;
    }
    if (a == "--thread-per-connection") {
      g_cfg.thread_per_connection = true;
      continue;
    }
    if (a == "--test-monitor-clock") {
      g_cfg.test_monitor_clock = true;
      continue;
    }
    if (a == "--help" || a == "-h") usage("");
    if (!has_val) {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      val = argv[++i];
    }
    if (a == "--host") g_cfg.host = val;
    else if (a == "--index-port") g_cfg.index_port = static_cast<int>(num_arg(a, val, 0, 65535));
    else if (a == "--nodes") {
      g_cfg.nodes = static_cast<int>(num_arg(a, val, 0, 2000));
      g_cfg.nodes_given = true;
    } else if (a == "--node-port") g_cfg.node_ports.push_back(static_cast<int>(num_arg(a, val, 0, 65535)));
    else if (a == "--stopped-node-port") g_cfg.stopped_ports.push_back(static_cast<int>(num_arg(a, val, 1, 65535)));
    else if (a == "--ready-file") g_cfg.ready_file = val;
    else if (a == "--copy-rate") {
      char* end = nullptr;
      double d = std::strtod(val.c_str(), &end);
      if (!end || *end || !(d > 0)) usage("bad --copy-rate");
      g_cfg.copy_rate = d;
    } else if (a == "--revive-ms") g_cfg.revive_ms = num_arg(a, val, 0, INT64_C(1) << 40);
    else if (a == "--report-retry-ms") g_cfg.report_retry_ms = num_arg(a, val, 0, INT64_C(1) << 40);
    else if (a == "--dead-after-ms") g_cfg.dead_after_ms = num_arg(a, val, 0, INT64_C(1) << 40);
    else if (a == "--stats-delay-ms") g_cfg.stats_delay_ms = static_cast<int>(num_arg(a, val, 0, INT_MAX));
    else if (a == "--set-service-us") g_cfg.set_service_us = num_arg(a, val, 0, 60000000);
    else if (a == "--key-hash-algorithm") g_cfg.hash_name = val;
    else if (a == "--partition-size") g_cfg.partition_size = static_cast<int>(num_arg(a, val, 1, 65536));
    else if (a == "--partition-type") g_cfg.partition_type = val;
    else if (a == "--partition-modular-hint") g_cfg.modular_hint = static_cast<int>(num_arg(a, val, 0, 65536));
    else if (a == "--partition-modular-virtual")
      g_cfg.modular_virtual = static_cast<int>(num_arg(a, val, 1, 1 << 24));
    else if (a == "--control-port") g_cfg.control_port = static_cast<int>(num_arg(a, val, 0, 65535));
    else usage(("unknown option " + a).c_str());
  }
  if (g_cfg.hash_name == "simple") g_hash = HashAlgo::Simple;
  else if (g_cfg.hash_name == "bitshift") g_hash = HashAlgo::Bitshift;
  else if (g_cfg.hash_name == "crc32") g_hash = HashAlgo::Crc32;
  // The other three are announced in `meta` (for verify tests, which place keys with `put`),
  // but writes are routed with crc32: the fake does not model them.
  else if (g_cfg.hash_name == "adler32" || g_cfg.hash_name == "murmur" || g_cfg.hash_name == "jenkins") g_hash = HashAlgo::Crc32;
  else usage("unsupported --key-hash-algorithm");
  if (g_cfg.partition_type != "modular") usage("only --partition-type modular is supported");
  int n = g_cfg.nodes_given ? g_cfg.nodes : (g_cfg.node_ports.empty() ? 3 : 0);
  n = std::max(n, static_cast<int>(g_cfg.node_ports.size()));
  g_cfg.nodes = n;
  while (static_cast<int>(g_cfg.node_ports.size()) < n) g_cfg.node_ports.push_back(0);
  for (int p : g_cfg.stopped_ports) g_cfg.node_ports.push_back(p);
  g_cfg.nodes = n + static_cast<int>(g_cfg.stopped_ports.size());
}

bool make_pipe(int p[2]) {
  if (::pipe(p) != 0) return false;
  for (int i = 0; i < 2; i++) {
    fcntl(p[i], F_SETFD, FD_CLOEXEC);
    fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
  }
  return true;
}

std::unique_ptr<Endpoint> bind_endpoint(Kind kind, int port, const char* what) {
  auto ep = std::make_unique<Endpoint>();
  ep->kind = kind;
  std::string err;
  int bound = 0;
  ep->listen_fd = open_listener(g_cfg.host, port, err, &bound);
  ep->listen_opens++;
  if (ep->listen_fd < 0) {
    std::fprintf(stderr, "fake-flare: %s: %s\n", what, err.c_str());
    std::exit(1);
  }
  ep->port = bound;
  return ep;
}

}  // namespace

int main(int argc, char** argv) {
  parse_args(argc, argv);
  {
    // 2,000 nodes need 2,000 listeners plus a descriptor per client connection: more than the
    // usual soft limit of 1,024. Raise it to the hard limit (never above it).
    struct rlimit rl;
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &rl);
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  if (!make_pipe(g_wake_pipe) || !make_pipe(g_sig_pipe)) {
    std::perror("fake-flare: pipe");
    return 1;
  }
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  init_crc();
  g_start_unix = unix_now();

  g_index_ep = bind_endpoint(Kind::Index, g_cfg.index_port, "index");
  g_index_ep->key = "index";
  g_control_ep = bind_endpoint(Kind::Control, g_cfg.control_port, "control");
  g_control_ep->key = "control";
  g_endpoints.push_back(g_index_ep.get());
  g_endpoints.push_back(g_control_ep.get());
  for (int i = 0; i < g_cfg.nodes; i++) {
    auto ep = bind_endpoint(Kind::Node, g_cfg.node_ports[static_cast<size_t>(i)], "node");
    ep->node_idx = i;
    ep->key = g_cfg.host + ":" + std::to_string(ep->port);
    ep->stats_delay_ms = g_cfg.stats_delay_ms;
    ep->set_service_us = g_cfg.set_service_us;
    auto n = std::make_unique<FakeNode>();
    n->idx = i;
    n->ep = ep.get();
    n->key = ep->key;
    n->start_unix = g_start_unix;
    g_endpoints.push_back(ep.get());
    g_nodes.push_back(std::move(n));
    g_node_eps.push_back(std::move(ep));
  }
  {
    std::lock_guard<std::mutex> lk(g_mu);
    size_t running = g_nodes.size() - g_cfg.stopped_ports.size();
    for (auto& n : g_nodes) {
      if (static_cast<size_t>(n->idx) < running) {
        add_entry(g_cfg.host, n->ep->port);
        continue;
      }
      // A stopped node: not in the map, its port closed until `start`.
      set_alive(*n, false);
      n->ep->want_listen = false;
      park_listener(*n->ep);
    }
  }

  std::string ready = "index " + std::to_string(g_index_ep->port) + "\ncontrol " +
                      std::to_string(g_control_ep->port) + "\n";
  for (auto& n : g_nodes) ready += (n->alive ? "node " : "stopped ") + std::to_string(n->ep->port) + "\n";
  std::fputs(ready.c_str(), stdout);
  std::fflush(stdout);
  if (!g_cfg.ready_file.empty()) {
    std::string tmp = g_cfg.ready_file + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f || std::fputs(ready.c_str(), f) < 0 || std::fclose(f) != 0 ||
        std::rename(tmp.c_str(), g_cfg.ready_file.c_str()) != 0) {
      std::fprintf(stderr, "fake-flare: cannot write %s\n", g_cfg.ready_file.c_str());
      return 1;
    }
  }

  std::thread acceptor(acceptor_main);
  std::thread timer(timer_main);

  for (;;) {
    struct pollfd pf[2];
    pf[0] = pollfd{g_sig_pipe[0], POLLIN, 0};
    pf[1] = pollfd{0, POLLIN, 0};
    nfds_t nf = g_cfg.exit_on_stdin_eof ? 2 : 1;
    int r = ::poll(pf, nf, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pf[0].revents) break;
    if (nf == 2 && pf[1].revents) {
      char buf[4096];
      ssize_t n = ::read(0, buf, sizeof(buf));
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
    }
  }

  g_stop = true;
  wake_sleepers();
  wake_acceptor();
  {
    std::lock_guard<std::mutex> lk(g_mu);
    g_listen_cv.notify_all();
  }
  acceptor.join();
  {
    std::lock_guard<std::mutex> lk(g_mu);
    for (Conn* c : g_conns) ::shutdown(c->fd, SHUT_RDWR);
  }
  timer.join();
  pool_stop_and_join();
  g_owned.clear();
  return 0;
}
