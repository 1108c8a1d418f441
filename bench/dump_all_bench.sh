#!/usr/bin/env bash
# dump --all of a cluster of 4 partitions beside a dump of one of them, every node serving its
# dump at the same fixed rate (the fake's `dump-rate`), as nodes limited by disk or link are.
#   bench/dump_all_bench.sh [flare-admin] [fake-flare] [runs] [KiB/s per node] [items per partition]
# Read one after another, 4 partitions take 4x one; read at once, about 1x.
set -e
ADMIN=${1:-./flare-admin}
FAKE=${2:-build/plain/fake-flare}
RUNS=${3:-3}
RATE=${4:-20000}
ITEMS=${5:-100000}
dir=$(mktemp -d /var/tmp/flare-bench-XXXXXX)
trap 'kill $FAKE_PID 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
. "$(dirname "$0")/fake.sh"
start_fake "$FAKE" "$dir" --nodes 5 || exit 1
pid=$FAKE_PID IPORT=$INDEX_PORT CPORT=$CONTROL_PORT
NODES=()
for p in "${NODE_PORTS[@]}"; do NODES+=("127.0.0.1:$p"); done
INDEX=127.0.0.1:$IPORT
ctl() { exec 3<>/dev/tcp/127.0.0.1/$CPORT; printf '%s\r\n' "$1" >&3; read -r _ <&3; exec 3>&-; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# The data: 4 x ITEMS items of 500 bytes, routed by key to the partitions' masters.
ctl "set-node ${NODES[4]} master active 0 1"
ctl "fill ${NODES[4]} $((4 * ITEMS)) 500"
"$ADMIN" dump --all -i "$INDEX" -o "$dir/all.flare" 2>/dev/null
ctl "set-node ${NODES[4]} proxy active -1 0"
for p in 0 1 2 3; do ctl "set-node ${NODES[$p]} master active $p 1"; done
"$ADMIN" restore -i "$dir/all.flare" --index-server "$INDEX" 2>/dev/null
rm -f "$dir/all.flare"
for p in 0 1 2 3; do ctl "dump-rate ${NODES[$p]} $RATE"; done

: > "$dir/one"; : > "$dir/all"; : > "$dir/rss"
for r in $(seq "$RUNS"); do
  for which in $( [ $((r % 2)) = 1 ] && echo "one all" || echo "all one"); do
    if [ "$which" = one ]; then
      /usr/bin/time -f '%e' -o "$dir/t" "$ADMIN" dump -i "$INDEX" > /dev/null "${NODES[0]}" 2>/dev/null
      cat "$dir/t" >> "$dir/one"
    else
      /usr/bin/time -f '%e %M' -o "$dir/t" "$ADMIN" dump --all -i "$INDEX" > /dev/null 2>/dev/null
      awk '{print $1}' "$dir/t" >> "$dir/all"; awk '{print $2}' "$dir/t" >> "$dir/rss"
    fi
  done
done
one=$(median < "$dir/one"); all=$(median < "$dir/all"); rss=$(sort -n "$dir/rss" | tail -1)
awk -v one="$one" -v all="$all" -v rss="$rss" -v rate="$RATE" 'BEGIN {
  printf "each node at %d KiB/s: one partition %.2f s, all 4 partitions %.2f s = %.2fx, peak RSS %d KB\n",
    rate, one, all, all/one, rss }'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
