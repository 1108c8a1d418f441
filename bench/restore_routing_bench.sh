#!/usr/bin/env bash
# Restore into a cluster straight to every partition's master (issue 21) against restoring the
# same file through one node, on tests/fake-flare with paced nodes.
#   bench/restore_routing_bench.sh [flare-admin] [fake-flare] [runs]
# 1,000,000 items of 100 bytes into 4 partitions; every node paced at PACE_US per set (35 us is
# about the 28,000 sets/s a real flared takes; replies written one by one). Through one node,
# that node takes every set (the fake forwards each to its master, as a flared does); routed,
# each master takes its own. The two run in pairs, the order alternating; each figure is the
# median of RUNS runs; CPU is flare-admin's user+system seconds, peak memory its max RSS.
set -e
ADMIN=${1:-build/plain/flare-admin}
FAKE=${2:-build/plain/fake-flare}
RUNS=${3:-3}
PACE_US=${PACE_US:-35}
ITEMS=${ITEMS:-1000000}
dir=$(mktemp -d /var/tmp/flare-bench-XXXXXX)
trap 'kill $FAKE_PID 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
. "$(dirname "$0")/fake.sh"
start_fake "$FAKE" "$dir" --nodes 4 || exit 1
INDEX=127.0.0.1:$INDEX_PORT
ctl() { exec 3<>/dev/tcp/127.0.0.1/$CONTROL_PORT; printf '%s\r\n' "$1" >&3; read -r _ <&3; exec 3>&-; }
node() { exec 4<>/dev/tcp/127.0.0.1/$1; printf '%s\r\n' "$2" >&4; read -r _ <&4; exec 4>&-; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
N0=127.0.0.1:${NODE_PORTS[0]}

ctl "set-node $N0 master active 0 1"
ctl "fill $N0 $ITEMS 100"
"$ADMIN" dump --all -i "$INDEX" -o "$dir/small.flare" 2>/dev/null
node "${NODE_PORTS[0]}" flush_all
for p in 1 2 3; do ctl "set-node 127.0.0.1:${NODE_PORTS[$p]} master active $p 1"; done
for p in 0 1 2 3; do ctl "set-service 127.0.0.1:${NODE_PORTS[$p]} $PACE_US"; done

: > "$dir/one"; : > "$dir/all"
for r in $(seq "$RUNS"); do
  for who in $( [ $((r % 2)) = 1 ] && echo "one all" || echo "all one"); do
    for p in 0 1 2 3; do node "${NODE_PORTS[$p]}" flush_all; done
    if [ "$who" = one ]; then
      /usr/bin/time -f '%e %U %S %M' -o "$dir/t" "$ADMIN" restore --input "$dir/small.flare" --index-server "$INDEX" "$N0" 2>"$dir/err"
    else
      /usr/bin/time -f '%e %U %S %M' -o "$dir/t" "$ADMIN" restore --input "$dir/small.flare" --index-server "$INDEX" 2>"$dir/err"
    fi
    grep -q "^$ITEMS entries have been restored" "$dir/err" || { echo "restore ($who) failed:"; cat "$dir/err"; exit 1; }
    awk -v who="$who" '{printf "%s: %.2f s, CPU %.2f s, RSS %d KB\n", who, $1, $2 + $3, $4}' "$dir/t"
    awk '{print $1, $2 + $3, $4}' "$dir/t" >> "$dir/$who"
  done
done
ot=$(awk '{print $1}' "$dir/one" | median); oc=$(awk '{print $2}' "$dir/one" | median); orss=$(awk '{print $3}' "$dir/one" | sort -n | tail -1)
at=$(awk '{print $1}' "$dir/all" | median); ac=$(awk '{print $2}' "$dir/all" | median); arss=$(awk '{print $3}' "$dir/all" | sort -n | tail -1)
awk -v n="$ITEMS" -v ot="$ot" -v oc="$oc" -v orss="$orss" -v at="$at" -v ac="$ac" -v arss="$arss" 'BEGIN {
  printf "through one node:    %.0f items/s (%.2f s), CPU %.2f us/item, peak RSS %d KB\n", n/ot, ot, oc*1e6/n, orss
  printf "to every master:     %.0f items/s (%.2f s), CPU %.2f us/item, peak RSS %d KB\n", n/at, at, ac*1e6/n, arss
  printf "speed-up %.2fx, CPU per item %.2fx\n", ot/at, (oc > 0 ? ac/oc : 0) }'
