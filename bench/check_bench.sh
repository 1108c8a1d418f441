#!/usr/bin/env bash
# check: wall time and peak memory against 1, 100, 1,000 and 2,000 fake nodes, each delaying its
# `stats` reply by 100 ms: half the nodes masters of their own partition, the other half their
# slaves (so check asks every node's stats and every master's `stats threads slave` at once).
# Then one node wedged (it reads, never answers): check must cost one --timeout, not one per node.
# Usage: bench/check_bench.sh [flare-admin] [fake-flare] [runs] [sizes]
# Prints one line per size: median and worst wall time over the runs, the peak RSS, the tool's own
# CPU time (user + system, median) and the fake's CPU time per run (mean): on a small machine the
# fake shares the CPUs with the tool, and its part of the wall time is not the tool's. Then the
# wedged run; then the load average, since the figures mean little on a busy machine.
# FAKE_OPTS adds options to the fake's command line: FAKE_OPTS=--thread-per-connection measures
# against the fake without its event loop (2,000 threads woken at once, as before issue 20).
set -e
ADMIN=${1:-./flare-admin}
FAKE=${2:-build/plain/fake-flare}
RUNS=${3:-11}
SIZES=${4:-1 100 1000 2000}
[ -x /usr/bin/time ] || { echo "bench needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
ulimit -n 8192 2>/dev/null || true
. "$(dirname "$0")/fake.sh"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-8s %-10s %-10s %-12s %-12s %-12s %s\n' nodes command median_ms max_ms peak_rss_kb tool_cpu_ms fake_cpu_ms verdict
# CPU time of process $1 so far, in ms (utime + stime from /proc; clock ticks of 1/100 s here).
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / hz}' "/proc/$1/stat"; }
# One line from the runs' "wall_s rss_kb user_s sys_s" lines on stdin: N COMMAND FAKE_MS VERDICT.
summarize() {
  local runs cpu
  runs=$(cat)
  cpu=$(printf '%s\n' "$runs" | awk '{print ($3 + $4) * 1000}' | sort -n | awk '{c[NR]=$1} END {printf "%.0f", c[int((NR+1)/2)]}')
  printf '%s\n' "$runs" | sort -n | awk -v n="$1" -v c="$2" -v f="$3" -v v="$4" -v cpu="$cpu" \
    '{t[NR]=$1*1000; if ($2>m) m=$2}
     END {printf "%-6s %-8s %-10.0f %-10.0f %-12s %-12s %-12s %s\n", n, c, t[int((NR+1)/2)], t[NR], m, cpu, f, v}'
}
for n in $SIZES; do
  dir=$(mktemp -d)
  # shellcheck disable=SC2086 # FAKE_OPTS: words on purpose
  start_fake "$FAKE" "$dir" --nodes "$n" --stats-delay-ms 100 --partition-size 4096 $FAKE_OPTS || exit 1
  pid=$FAKE_PID index=127.0.0.1:$INDEX_PORT cport=$CONTROL_PORT
  # Node 2k the master of partition k, node 2k+1 its slave (balance 1); an odd last node a master.
  exec 3<>/dev/tcp/127.0.0.1/"$cport"
  awk '$1=="node"{k=i++; if (k%2==0) printf "set-node 127.0.0.1:%s master active %d 1\r\n", $2, k/2;
                         else printf "set-node 127.0.0.1:%s slave active %d 1\r\n", $2, (k-1)/2}' "$dir/ready" >&3
  k=0; while [ $k -lt "$n" ] && read -r reply <&3; do
    [ "${reply%$'\r'}" = OK ] || { echo "set-node: $reply" >&2; kill $pid; exit 1; }
    k=$((k+1))
  done
  exec 3>&-
  args=(check -i "$index" --ignore slave_same_host)
  "$ADMIN" "${args[@]}" >/dev/null || true # warm up
  : > "$dir/times"
  r=0
  fake0=$(cpu_ms "$pid")
  while [ $r -lt "$RUNS" ]; do
    /usr/bin/time -q -f '%e %M %U %S' -o "$dir/one" "$ADMIN" "${args[@]}" > "$dir/out" || true
    head -n 1 "$dir/out" | grep -q "nodes=$n;" || { echo "check: not $n nodes: $(head -n 1 "$dir/out")" >&2; kill $pid; exit 1; }
    cat "$dir/one" >> "$dir/times"
    r=$((r+1))
  done
  fake=$(awk -v a="$fake0" -v b="$(cpu_ms "$pid")" -v r="$RUNS" 'BEGIN {printf "%.0f", (b - a) / r}')
  verdict=$(head -n 1 "$dir/out" | cut -d' ' -f2)
  summarize "$n" check "$fake" "$verdict" < "$dir/times"
  # stats on the same cluster, for scale: the same gather without the replication threads.
  : > "$dir/times"
  r=0
  fake0=$(cpu_ms "$pid")
  while [ $r -lt "$RUNS" ]; do
    /usr/bin/time -q -f '%e %M %U %S' -o "$dir/one" "$ADMIN" stats -i "$index" > /dev/null
    cat "$dir/one" >> "$dir/times"
    r=$((r+1))
  done
  fake=$(awk -v a="$fake0" -v b="$(cpu_ms "$pid")" -v r="$RUNS" 'BEGIN {printf "%.0f", (b - a) / r}')
  summarize "$n" stats "$fake" - < "$dir/times"
  if [ "$n" = "${SIZES##* }" ]; then
    # One node wedged: with --timeout 1, check ends after about one second, naming it.
    exec 3<>/dev/tcp/127.0.0.1/"$cport"
    printf 'hang 127.0.0.1:%s 1\r\n' "${NODE_PORTS[1]}" >&3
    read -r reply <&3
    exec 3>&-
    /usr/bin/time -q -f '%e %M %U %S' -o "$dir/one" "$ADMIN" "${args[@]}" --timeout 1 > "$dir/out" || true
    printf '%-6s %-8s %-10.0f %-10s %-12s %-12s %-12s %s\n' "$n" "wedged" "$(awk '{print $1*1000}' "$dir/one")" - \
      "$(awk '{print $2}' "$dir/one")" "$(awk '{print ($3 + $4) * 1000}' "$dir/one")" - \
      "$(head -n 1 "$dir/out" | cut -d' ' -f2) ($(grep -c node_unreachable "$dir/out") node_unreachable)"
  fi
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$dir"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
