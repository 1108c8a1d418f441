#!/bin/sh
# flare-stats wall time and peak memory against 1, 10 and 100 fake nodes, each delaying its
# `stats` reply by 100 ms. Usage: bench/stats_bench.sh [flare-admin] [fake-flare] [runs]
# Prints one line per size: median and worst wall time over the runs, and the peak RSS.
set -e
ADMIN=${1:-./flare-admin}
FAKE=${2:-build/plain/fake-flare}
RUNS=${3:-11}
[ -x /usr/bin/time ] || { echo "bench needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
ulimit -n 4096 2>/dev/null || true
printf '%-6s %-12s %-12s %-10s\n' nodes median_ms max_ms peak_rss_kb
for n in 1 10 100; do
  dir=$(mktemp -d)
  "$FAKE" --nodes "$n" --stats-delay-ms 100 --ready-file "$dir/ready" >/dev/null &
  pid=$!
  i=0; while [ ! -f "$dir/ready" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
  index=127.0.0.1:$(awk '$1=="index"{print $2}' "$dir/ready")
  "$ADMIN" stats -i "$index" >/dev/null # warm up
  : > "$dir/times"
  r=0
  while [ $r -lt "$RUNS" ]; do
    /usr/bin/time -f '%e %M' -o "$dir/one" "$ADMIN" stats -i "$index" > "$dir/out"
    rows=$(($(wc -l < "$dir/out") - 1))
    [ "$rows" -eq "$n" ] || { echo "expected $n rows, got $rows" >&2; kill $pid; exit 1; }
    cat "$dir/one" >> "$dir/times"
    r=$((r+1))
  done
  kill $pid; wait $pid 2>/dev/null || true
  sort -n "$dir/times" | awk -v n="$n" '{t[NR]=$1*1000; if ($2>m) m=$2} END {printf "%-6s %-12.0f %-12.0f %-10s\n", n, t[int((NR+1)/2)], t[NR], m}'
  rm -rf "$dir"
done
