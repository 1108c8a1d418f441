#!/usr/bin/env python3
"""Regenerates the seed corpora in tests/fuzz/corpus/<target>/.

Server bytes are taken verbatim from the transcripts of a real flare 1.3.4 cluster
(/work/shared/real-flare-1.3.4/*.txt, see transcripts.py); the CSV seeds are written the way
flare_tools.hpp's ItemWriter writes them. Run from anywhere:

    python3 tests/fuzz/make_corpus.py [TRANSCRIPT_DIR]

The corpora are checked in; this script only documents where the seeds come from.
"""
import base64
import shutil
import sys
from pathlib import Path

sys.dont_write_bytecode = True
from transcripts import exchanges  # noqa: E402

HERE = Path(__file__).resolve().parent
SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else Path('/work/shared/real-flare-1.3.4')
CORPUS = HERE / 'corpus'


def find(file, request, nth=0, section_has=None):
    """The response bytes of the nth exchange of `file` whose request is `request`."""
    hits = [resp for sec, req, resp in exchanges(SRC / file)
            if req == request and (section_has is None or section_has in sec)]
    if len(hits) <= nth:
        raise SystemExit(f'{file}: no exchange #{nth} for {request!r}')
    return hits[nth]


def without_terminal(resp):
    """The data lines of a reply (what read_reply hands to a parser): drop the END line."""
    assert resp.endswith(b'END\r\n'), resp[-20:]
    return resp[:-5]


seeds = {}


def seed(target, name, data):
    seeds.setdefault(target, {})[name] = data


# ---- exact server replies ------------------------------------------------------------------
nodes_0 = find('index_stats_nodes_0_1_3.txt', b'stats nodes\r\n', 0)
nodes_1 = find('index_stats_nodes_0_1_3.txt', b'stats nodes\r\n', 1)
nodes_3 = find('index_stats_nodes_0_1_3.txt', b'stats nodes\r\n', 2)
nodes_ms = find('failover_kill9.txt', b'stats nodes\r\n', 0)          # master + slave + proxy
nodes_2 = find('index_node_remove.txt', b'stats nodes\r\n', 0)        # 349 bytes: two nodes
nodes_down = find('index_master_down_no_slave.txt', b'stats nodes\r\n', 0)
stats_index = find('index_stats.txt', b'stats\r\n')
stats_node = find('node_stats.txt', b'stats\r\n')
threads_all = find('index_stats_threads.txt', b'stats threads\r\n')
threads_req = find('index_verbosity_kill.txt', b'stats threads request\r\n')
threads_queue = find('index_stats_threads.txt', b'stats threads queue\r\n')
meta = find('index_meta_show.txt', b'meta\r\n')
dump_all = find('node_dump.txt', b'dump\r\n')
dump_part = find('node_dump.txt', b'dump 0 0 2\r\n')
dump_key_all = find('node_dump_key.txt', b'dump_key\r\n')
dump_key_part = find('node_dump_key.txt', b'dump_key 1 2\r\n')
error = find('index_invalid.txt', b'foo\r\n')
server_error = find('index_node_role.txt', b'node role 127.0.0.1 12121 proxy\r\n')
client_error = find('index_verbosity_kill.txt', b'kill 999999\r\n')
pipelined = find('index_master_down_no_slave.txt',
                 [req for _, req, _ in exchanges(SRC / 'index_master_down_no_slave.txt')
                  if req and req.startswith(b'node state 127.0.0.1 12121 down\r\nnode remove')][0])
version = find('index_ping_version_quit.txt', b'version\r\n')
ok = find('index_ping_version_quit.txt', b'ping\r\n')
get_reply = find('node_storage.txt', b'gets k1\r\n')

# fuzz_reply: byte 0 cuts the stream into reads (0 = one read; see fuzz::feed), then replies.
for name, sel, data in [
    ('stats-nodes-0', 0, nodes_0), ('stats-nodes-1', 0, nodes_1), ('stats-nodes-3', 0x2b, nodes_3),
    ('stats-nodes-master-slave', 0x13, nodes_ms), ('stats-index', 0x07, stats_index),
    ('stats-node', 0, stats_node), ('stats-threads', 0x35, threads_all), ('stats-threads-queue', 0, threads_queue),
    ('meta', 0, meta), ('error', 0, error), ('server-error', 0, server_error), ('client-error', 0, client_error),
    ('pipelined-ok-error-stats', 0x01, pipelined), ('dump-key', 0, dump_key_all), ('version', 0, version),
    # stats nodes, stats and meta of one cluster in one stream: summary and verify's inputs
    ('nodes-stats-meta', 0x02, nodes_ms + stats_node + meta),
]:
    seed('fuzz_reply', name, bytes([sel]) + data)

for name, data in [('nodes-1', nodes_1), ('nodes-3-proxies', nodes_3), ('nodes-master-slave', nodes_ms),
                   ('nodes-2', nodes_2), ('nodes-master-down', nodes_down)]:
    seed('fuzz_stats_nodes', name, without_terminal(data))

for name, data in [('threads-index', threads_all), ('threads-request', threads_req),
                   ('threads-queue', threads_queue)]:
    seed('fuzz_stats_threads', name, without_terminal(data))

for name, data in [('stats-index', stats_index), ('stats-node', stats_node),
                   ('stats-threads-queue', threads_queue)]:
    seed('fuzz_stats', name, without_terminal(data))

# VALUE lines exactly as the node sends them (without their CRLF).
value_lines = [l for l in dump_all.split(b'\r\n') if l.startswith(b'VALUE ')]
seed('fuzz_value_line', 'value-key0', value_lines[0])
seed('fuzz_value_line', 'value-withexp', value_lines[-1])
seed('fuzz_value_line', 'value-gets', get_reply.split(b'\r\n')[0])  # get's 4-word form: refused
seed('fuzz_value_line', 'value-max', b'VALUE k 4294967295 67108864 9223372036854775807 9223372036854775807')

# Dump files in the flare format are the node's dump bytes (that is what dump writes).
seed('fuzz_dump_stream', 'dump-all', dump_all)
seed('fuzz_dump_stream', 'dump-partition', dump_part)
seed('fuzz_dump_stream', 'dump-empty', b'END\r\n')
seed('fuzz_dump_stream', 'dump-cut-short', dump_all[:-5])
seed('fuzz_dump_stream', 'dump-binary', b'VALUE bin 0 5 3 0\r\n\x00\r\n\xff\n\r\nEND\r\n')

# fuzz_node_stream: byte 0 cuts the stream into reads, byte 1 picks the request (0 dump,
# 1 dump_key, 2 version + stats).
seed('fuzz_node_stream', 'dump', b'\x00\x00' + dump_all)
seed('fuzz_node_stream', 'dump-twice', b'\x1a\x00' + dump_part + dump_all)
seed('fuzz_node_stream', 'dump-error', b'\x00\x00' + error)
seed('fuzz_node_stream', 'dump-key', b'\x00\x01' + dump_key_all)
seed('fuzz_node_stream', 'dump-key-partition', b'\x03\x01' + dump_key_part + dump_key_all)
seed('fuzz_node_stream', 'version-stats', b'\x00\x02' + version + stats_node)

# ---- our CSV dump format (flare_tools.hpp ItemWriter) -------------------------------------


def csv_cell(s):
    quote = any(c in s for c in b',"\r\n') or (s[:1] == b' ' or s[-1:] == b' ')
    if not quote:
        return s
    return b'"' + s.replace(b'"', b'""') + b'"'


def is_csv_text(s):
    try:
        t = s.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return all(not ((ord(c) < 0x20 and c not in '\t\r\n') or ord(c) == 0x7f) for c in t)


def csv_row(key, flags, data, version, expire):
    row = csv_cell(key) + b',%d,%d,%d,%d,' % (flags, len(data), version, expire)
    if is_csv_text(data):
        return row + csv_cell(data) + b',\r\n'
    return row + base64.b64encode(data) + b',base64\r\n'


HEADER = b'key,flag,len,version,expire,data,encoding\r\n'
dump_items = []
rest = dump_all
while rest.startswith(b'VALUE '):
    line, rest = rest.split(b'\r\n', 1)
    _, key, flags, length, ver, exp = line.split(b' ')
    data, rest = rest[:int(length)], rest[int(length) + 2:]
    dump_items.append((key, int(flags), data, int(ver), int(exp)))

seed('fuzz_csv', 'csv-from-dump', HEADER + b''.join(csv_row(*i) for i in dump_items))
seed('fuzz_csv', 'csv-header-only', HEADER)
seed('fuzz_csv', 'csv-quoted', HEADER + csv_row(b'k,1', 0, b'say "hi", then\r\nleave', 1, 0)
     + csv_row(b'k"2', 7, b' padded ', 2, 3600) + csv_row(b'empty', 0, b'', 1, 0))
seed('fuzz_csv', 'csv-base64', HEADER + csv_row(b'bin', 1, b'\x00\x01\xfe\xff', 5, 0)
     + csv_row(b'bad-utf8', 0, b'caf\xe9', 1, 0) + csv_row(b'utf8', 0, 'café ✓'.encode(), 1, 0))
seed('fuzz_csv', 'csv-lf-only', b'key,flag,len,version,expire,data,encoding\nk,0,1,1,0,x,\n')

# ---- addresses, options, keys ------------------------------------------------------------
for name, text in [('host-port', b'127.0.0.1:12121'), ('host', b'localhost'),
                   ('node-balance', b'127.0.0.1:12122:1'), ('node-full', b'127.0.0.1:12121:1:0'),
                   ('v6', b'[::1]:12120'), ('v6-full', b'[fe80::1%eth0]:12121:2:3'),
                   ('bad-port', b'host:65536'), ('empty-fields', b'h::1:')]:
    seed('fuzz_address', name, text)

for name, words in [('index', [b'-i', b'127.0.0.1', b'-p', b'12120']),
                    ('long-eq', [b'--index-server=127.0.0.1:12120', b'--timeout=2.5', b'--debug']),
                    ('abbrev', [b'--ind', b'h:1', b'--json', b'--force', b'127.0.0.1:12121:1:0']),
                    ('stats', [b'-q', b'-w', b'2', b'-c3', b'-d', b',', b'127.0.0.1:12121']),
                    ('dump', [b'--all', b'-o', b'out.csv', b'-f', b'csv', b'--bwlimit=1M', b'--partition', b'0',
                              b'--partition-size=2']),
                    ('restore', [b'-i', b'in.csv', b'--include=^k', b'--print-keys', b'-n']),
                    ('dashdash', [b'--cluster', b'prod', b'--', b'-x', b'--help']),
                    ('bad', [b'--', b'-', b'---', b'--timeout', b'-ix'])]:
    seed('fuzz_options', name, b'\x00'.join(words))

for key in sorted({dump_items[0][0], dump_items[-1][0]} | {b'k1', b'newkey-after-split-d', b'key00001', b'',
                                                 b'\x80\xff high bytes', b'a\x00after-nul'}):
    seed('fuzz_keyhash', 'key-' + (key.hex() if key else 'empty')[:40], key)

# ---- boundary variants -------------------------------------------------------------------
# Real replies with numbers moved to one step below a limit (none of these is refused or
# overflows as it is): one ASCII-integer mutation away from the edge, where the arithmetic
# downstream (partition + 1, sums of counters, rate units) has to hold.
def replace(data, old, new):
    assert old in data, old
    return data.replace(old, new)


edge_nodes = replace(replace(replace(nodes_ms, b'12121:partition 0', b'12121:partition 2147483646'),
                             b'12121:thread_type 16', b'12121:thread_type 2147483646'),
                     b'12121:balance 1', b'12121:balance 2147483646')
seed('fuzz_stats_nodes', 'edge-nodes-master-slave', without_terminal(edge_nodes))
edge_stats = replace(replace(replace(stats_node, b'STAT cmd_get 0', b'STAT cmd_get 9223372036854775806'),
                             b'STAT cmd_set 0', b'STAT cmd_set 1'), b'STAT bytes 528704', b'STAT bytes 4611686018427387903')
seed('fuzz_stats', 'edge-stats-node', without_terminal(edge_stats))
edge_meta = replace(meta, b'partition-modular-virtual 4096', b'partition-modular-virtual 65536')
seed('fuzz_reply', 'edge-nodes-stats-meta', b'\x00' + edge_nodes + edge_stats + edge_stats + edge_meta)
seed('fuzz_options', 'edge-bwlimit', b'--bwlimit=17179869183G\x00--partition=2147483646\x00--timeout=86399.999')

# ---- write -------------------------------------------------------------------------------
for target, files in seeds.items():
    d = CORPUS / target
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    print(f'{target}: {len(files)} seeds')
