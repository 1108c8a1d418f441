#!/usr/bin/env bash
# Dump and restore throughput against tests/fake-flare, beside the raw loopback ceiling.
#   bench/data_bench.sh [flare-admin] [fake-flare] [runs]
# dump:    100,000 items of 10,000 bytes (about 1 GB), to stdout (/dev/null) against the raw
#          read of the same stream; then once to a file on disk, beside dd+sync of that file
# restore: 1,000,000 items of 100 bytes, pipelined into one node: against the fake at full
#          speed, then against the fake paced like a real flared (PACE_US per set, replies
#          written one by one; 35 us is about the 28,000 sets/s a real node takes)
# Each figure is the median of RUNS runs; restores run in pairs with raw_client, the order
# alternating; CPU is user+system seconds; peak memory (max RSS) is flare-admin's.
set -e
ADMIN=${1:-./flare-admin}
FAKE=${2:-build/plain/fake-flare}
RUNS=${3:-3}
PACE_US=${PACE_US:-35}
RAW=build/bench/raw_client
mkdir -p build/bench
${CXX:-g++} -std=c++17 -O2 -Wall -Wextra -Werror -pthread -o "$RAW" bench/raw_client.cpp
dir=$(mktemp -d /var/tmp/flare-bench-XXXXXX)
trap 'kill $FAKE_PID 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
. "$(dirname "$0")/fake.sh"
start_fake "$FAKE" "$dir" --nodes 1 || exit 1
pid=$FAKE_PID IPORT=$INDEX_PORT CPORT=$CONTROL_PORT NPORT=${NODE_PORTS[0]}
INDEX=127.0.0.1:$IPORT
NODE=127.0.0.1:$NPORT
ctl() { exec 3<>/dev/tcp/127.0.0.1/$CPORT; printf '%s\r\n' "$1" >&3; read -r _ <&3; exec 3>&-; }
node() { exec 4<>/dev/tcp/127.0.0.1/$NPORT; printf '%s\r\n' "$1" >&4; read -r _ <&4; exec 4>&-; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

ctl "set-node $NODE master active 0 1"
ctl "fill $NODE 100000 10000"

echo "== dump 100,000 x 10,000 bytes"
: > "$dir/raw"; : > "$dir/ours"; : > "$dir/rss"
for r in $(seq "$RUNS"); do
  "$RAW" dump "$NPORT" >> "$dir/raw"
  /usr/bin/time -f '%e %M' -o "$dir/t" "$ADMIN" dump --all -i "$INDEX" > /dev/null 2>/dev/null
  awk '{print $1}' "$dir/t" >> "$dir/ours"; awk '{print $2}' "$dir/t" >> "$dir/rss"
done
"$ADMIN" dump --all -i "$INDEX" -o "$dir/dump.flare" 2>/dev/null
bytes=$(stat -c %s "$dir/dump.flare")
raw=$(awk '{print $1}' "$dir/raw" | median); ours=$(median < "$dir/ours"); rss=$(sort -n "$dir/rss" | tail -1)
awk -v b="$bytes" -v raw="$raw" -v ours="$ours" -v rss="$rss" 'BEGIN {
  printf "raw loopback read: %.0f MB/s (%.3f s)\nflare-admin dump:  %.0f MB/s (%.2f s) = %.0f%% of the ceiling, peak RSS %d KB\n",
    b/raw/1e6, raw, b/ours/1e6, ours, 100*raw/ours, rss }'
rm -f "$dir/dump.flare"
/usr/bin/time -f '%e' -o "$dir/t" "$ADMIN" dump --all -i "$INDEX" -o "$dir/dump.flare" 2>/dev/null
/usr/bin/time -f '%e' -o "$dir/t2" sh -c "dd if=$dir/dump.flare of=$dir/copy bs=1M 2>/dev/null && sync"
echo "to a file on disk (written, fsync'd, renamed): $(cat "$dir/t") s; dd+sync of the same file: $(cat "$dir/t2") s"
rm -f "$dir/dump.flare" "$dir/copy"

# One restore of small.flare by flare-admin and one of small.sets by raw_client per run, the
# order alternating; the node is flushed before each.
restore_pairs() {
  : > "$dir/raw"; : > "$dir/ours"; : > "$dir/rss"
  for r in $(seq "$RUNS"); do
    for who in $( [ $((r % 2)) = 1 ] && echo "raw ours" || echo "ours raw"); do
      node flush_all
      if [ "$who" = raw ]; then
        /usr/bin/time -f '%e %U %S' -o "$dir/t" "$RAW" restore "$NPORT" "$dir/small.sets" >/dev/null 2>&1
        awk '{print $1, $2 + $3}' "$dir/t" >> "$dir/raw"
      else
        /usr/bin/time -f '%e %U %S %M' -o "$dir/t" "$ADMIN" restore --input "$dir/small.flare" --index-server "$INDEX" 2>/dev/null
        awk '{print $1, $2 + $3}' "$dir/t" >> "$dir/ours"; awk '{print $4}' "$dir/t" >> "$dir/rss"
      fi
    done
  done
  rawt=$(awk '{print $1}' "$dir/raw" | median); rawc=$(awk '{print $2}' "$dir/raw" | median)
  ourt=$(awk '{print $1}' "$dir/ours" | median); ourc=$(awk '{print $2}' "$dir/ours" | median)
  rss=$(sort -n "$dir/rss" | tail -1)
  awk -v rt="$rawt" -v rc="$rawc" -v ot="$ourt" -v oc="$ourc" -v rss="$rss" 'BEGIN {
    printf "raw client:          %.0f items/s (%.2f s, CPU %.2f s)\n", 1e6/rt, rt, rc
    printf "flare-admin restore: %.0f items/s (%.2f s, CPU %.2f s) = %.2fx the raw time, %.2fx its CPU, peak RSS %d KB\n",
      1e6/ot, ot, oc, ot/rt, (rc > 0 ? oc/rc : 0), rss }'
}

echo "== restore 1,000,000 x 100 bytes"
node flush_all
ctl "fill $NODE 1000000 100"
"$ADMIN" dump --all -i "$INDEX" -o "$dir/small.flare" 2>/dev/null
# the same sets a raw client sends: VALUE lines turned into set lines (no version field)
awk 'BEGIN{RS="\r\n"; ORS="\r\n"} /^VALUE /{print "set " $2 " " $3 " " $6 " " $4; next} /^END$/{next} {print}' "$dir/small.flare" > "$dir/small.sets"
restore_pairs

echo "== restore 1,000,000 x 100 bytes, the node paced at $PACE_US us per set"
ctl "set-service $NODE $PACE_US"
restore_pairs
ctl "set-service $NODE 0"

echo "== --bwlimit 20MB (20 MiB/s) on a 100 MB dump"
node flush_all
ctl "fill $NODE 100000 1000"
/usr/bin/time -f '%e' -o "$dir/t" "$ADMIN" dump --all -i "$INDEX" --bwlimit 20MB -o "$dir/bw.flare" 2>/dev/null
bytes=$(stat -c %s "$dir/bw.flare")
awk -v b="$bytes" -v t="$(cat "$dir/t")" 'BEGIN { r=b/t/1048576; printf "achieved %.2f MiB/s for a 20 MiB/s limit (%.1f%% off)\n", r, 100*(r-20)/20 }'
