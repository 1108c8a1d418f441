#!/usr/bin/env bash
# stats, summary and list: wall time and peak memory against 1, 10, 100, 1,000 and 2,000 fake
# nodes, every node a master (so that summary asks each one) delaying its `stats` reply by 100 ms.
# Usage: bench/stats_bench.sh [flare-admin] [fake-flare] [runs] [sizes]
# Prints one line per size and command: median and worst wall time over the runs, and the peak
# RSS; then the load average, since the figures mean little on a busy machine.
set -e
ADMIN=${1:-./flare-admin}
FAKE=${2:-build/plain/fake-flare}
RUNS=${3:-11}
SIZES=${4:-1 10 100 1000 2000}
[ -x /usr/bin/time ] || { echo "bench needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
# Not needed by the tools (they raise their own soft limit), but the fake needs 2 fds per node.
ulimit -n 8192 2>/dev/null || true
. "$(dirname "$0")/fake.sh"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-8s %-10s %-10s %-10s\n' nodes command median_ms max_ms peak_rss_kb
for n in $SIZES; do
  dir=$(mktemp -d)
  # flarei's default partition-size (1024) would leave the nodes above it proxies.
  start_fake "$FAKE" "$dir" --nodes "$n" --stats-delay-ms 100 --partition-size 4096 || exit 1
  pid=$FAKE_PID index=127.0.0.1:$INDEX_PORT cport=$CONTROL_PORT
  # Every node the master of its own partition, in one control connection.
  exec 3<>/dev/tcp/127.0.0.1/"$cport"
  awk '$1=="node"{printf "set-node 127.0.0.1:%s master active %d 1\r\n", $2, k++}' "$dir/ready" >&3
  k=0; while [ $k -lt "$n" ] && read -r reply <&3; do
    [ "${reply%$'\r'}" = OK ] || { echo "set-node: $reply" >&2; kill $pid; exit 1; }
    k=$((k+1))
  done
  exec 3>&-
  for cmd in stats summary list; do
    "$ADMIN" "$cmd" -i "$index" >/dev/null # warm up
    : > "$dir/times"
    r=0
    while [ $r -lt "$RUNS" ]; do
      /usr/bin/time -f '%e %M' -o "$dir/one" "$ADMIN" "$cmd" -i "$index" > "$dir/out"
      if [ "$cmd" != summary ]; then
        rows=$(($(wc -l < "$dir/out") - 1))
        [ "$rows" -eq "$n" ] || { echo "$cmd: expected $n rows, got $rows" >&2; kill $pid; exit 1; }
      else
        awk -v n="$n" 'NR==2 && $3!=n {exit 1}' "$dir/out" || { echo "summary: not $n nodes" >&2; kill $pid; exit 1; }
      fi
      cat "$dir/one" >> "$dir/times"
      r=$((r+1))
    done
    sort -n "$dir/times" | awk -v n="$n" -v c="$cmd" \
      '{t[NR]=$1*1000; if ($2>m) m=$2} END {printf "%-6s %-8s %-10.0f %-10.0f %-10s\n", n, c, t[int((NR+1)/2)], t[NR], m}'
  done
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$dir"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
