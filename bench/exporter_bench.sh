#!/usr/bin/env bash
# flare-exporter: scrape latency, the exporter's CPU per scrape and its peak memory against 1,
# 100, 1,000 and 2,000 fake nodes, each delaying its `stats` reply by 100 ms (half the nodes
# masters of their own partition, the other half their slaves, as check_bench.sh sets them).
# Each scrape is one gather of the whole cluster (the same reading as check and
# flare-stats --prometheus). Then a burst of 200 concurrent scrapes: how many gathers they cost.
# Usage: bench/exporter_bench.sh [flare-admin] [fake-flare] [runs] [sizes]
# Prints one line per size: median and worst scrape time (curl's time_total), the exporter's CPU
# time per scrape (user + system from /proc), its peak RSS (VmHWM), and the fake's CPU per scrape
# (on a small machine it shares the CPUs); then the burst, and the load average.
set -e
ADMIN=${1:-./flare-admin}
FAKE=${2:-build/plain/fake-flare}
RUNS=${3:-11}
SIZES=${4:-1 100 1000 2000}
command -v curl >/dev/null || { echo "bench needs curl" >&2; exit 1; }
ulimit -n 8192 2>/dev/null || true
. "$(dirname "$0")/fake.sh"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-10s %-10s %-16s %-12s %s\n' nodes median_ms max_ms cpu_ms_per_scrape peak_rss_kb fake_cpu_ms
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / hz}' "/proc/$1/stat"; }
for n in $SIZES; do
  dir=$(mktemp -d)
  start_fake "$FAKE" "$dir" --nodes "$n" --stats-delay-ms 100 --partition-size 4096 || exit 1
  pid=$FAKE_PID index=127.0.0.1:$INDEX_PORT cport=$CONTROL_PORT
  exec 3<>/dev/tcp/127.0.0.1/"$cport"
  awk '$1=="node"{k=i++; if (k%2==0) printf "set-node 127.0.0.1:%s master active %d 1\r\n", $2, k/2;
                         else printf "set-node 127.0.0.1:%s slave active %d 1\r\n", $2, (k-1)/2}' "$dir/ready" >&3
  k=0; while [ $k -lt "$n" ] && read -r reply <&3; do k=$((k+1)); done
  exec 3>&-
  "$ADMIN" exporter -i "$index" --web.listen-address 127.0.0.1:0 2> "$dir/log" &
  xpid=$!
  while ! grep -q 'listening on' "$dir/log" 2>/dev/null; do sleep 0.05; done
  port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$dir/log")
  url=http://127.0.0.1:$port/metrics
  curl -s -o /dev/null "$url" # warm up
  x0=$(cpu_ms "$xpid") f0=$(cpu_ms "$pid")
  : > "$dir/times"
  r=0
  while [ $r -lt "$RUNS" ]; do
    curl -s -o "$dir/out" -w '%{time_total}\n' "$url" >> "$dir/times"
    grep -q "flare_index_up{index=\"$index\"} 1" "$dir/out" || { echo "scrape failed: $(head -c 300 "$dir/out")" >&2; kill $pid $xpid; exit 1; }
    r=$((r+1))
  done
  x1=$(cpu_ms "$xpid") f1=$(cpu_ms "$pid")
  rss=$(awk '/VmHWM/{print $2}' "/proc/$xpid/status")
  sort -n "$dir/times" | awk -v n="$n" -v x="$(awk -v a="$x0" -v b="$x1" -v r="$RUNS" 'BEGIN{printf "%.0f", (b-a)/r}')" \
    -v rss="$rss" -v f="$(awk -v a="$f0" -v b="$f1" -v r="$RUNS" 'BEGIN{printf "%.0f", (b-a)/r}')" \
    '{t[NR]=$1*1000} END {printf "%-6s %-10.0f %-10.0f %-16s %-12s %s\n", n, t[int((NR+1)/2)], t[NR], x, rss, f}'
  if [ "$n" = "${SIZES##* }" ]; then
    # 200 scrapes at once: every one answered, in a few gathers (those that wait share one).
    s0=$(printf 'received index\r\n' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$cport; cat >&3; head -n1 <&3" || echo ?)
    seq 200 | xargs -P 200 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$url" | sort | uniq -c | tr '\n' ' '
    echo "(200 concurrent scrapes: statuses)"
    echo "peak RSS after the burst: $(awk '/VmHWM/{print $2}' "/proc/$xpid/status") kB"
    [ "$s0" = ? ] || true
  fi
  kill $xpid; wait $xpid 2>/dev/null || true
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$dir"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
