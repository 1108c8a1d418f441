#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ and runs each for a while.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET ...]
#
# SECONDS per target (default 30); TARGETs are names like fuzz_reply (default: all of
# tests/fuzz/fuzz_*.cpp). Binaries go to build/fuzz/, each run works on a fresh copy of
# tests/fuzz/corpus/<target>/ under build/fuzz/work/ (the checked-in corpus is never
# touched) with the dictionary of tests/fuzz/dict/ that fits its input, and a crashing
# input is saved as build/fuzz/artifacts/<target>-crash-<sha1>.
# Exit status: 0 when every target ran clean, 1 when one crashed (or hit a sanitizer report,
# a timeout, an out-of-memory) or could not be built.
#
# Environment: CXX (default clang++; must be clang with libFuzzer), FUZZ_JOBS (targets run
# at once, default 1), FUZZ_FLAGS (extra libFuzzer flags, e.g. "-only_ascii=1").
#
# Reproduce a crash: build/fuzz/<target> <file>   (e.g. tests/fuzz/crashes/<target>-<name>)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

duration=${1:-30}
if ! [[ $duration =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS] [TARGET ...]   (SECONDS: a whole number >= 1)" >&2
  exit 2
fi
shift || true

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
for t in "${targets[@]}"; do
  if [ ! -f "tests/fuzz/$t.cpp" ]; then
    echo "no such target: $t (expected tests/fuzz/$t.cpp)" >&2
    exit 2
  fi
done

CXX=${CXX:-clang++}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FLAGS=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer -I.)
out=build/fuzz
mkdir -p "$out/work" "$out/artifacts" "$out/logs"

# ---- can this machine build a libFuzzer binary at all? ------------------------------------
cannot_build() {
  cat >&2 <<EOF
run.sh: cannot build libFuzzer targets with '$CXX'.
  $1
  libFuzzer comes with clang: on Debian/Ubuntu 'apt-get install clang' (Debian 12: clang 14,
  whose libFuzzer and sanitizer runtimes are in libclang-rt-14-dev; other versions:
  libclang-rt-NN-dev or libclang-common-NN-dev). gcc has no -fsanitize=fuzzer.
  Another clang: CXX=clang++-NN $0 ...
EOF
  exit 1
}
if ! command -v "$CXX" >/dev/null 2>&1; then
  cannot_build "'$CXX' is not installed."
fi
probe_dir=$out/probe
mkdir -p "$probe_dir"
printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
  'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }' >"$probe_dir/probe.cpp"
if ! "$CXX" "${FLAGS[@]}" -o "$probe_dir/probe" "$probe_dir/probe.cpp" >"$probe_dir/log" 2>&1; then
  cannot_build "A trivial fuzz target does not compile and link; the compiler said:
$(sed 's/^/    /' "$probe_dir/log" | head -20)"
fi

# ---- build ------------------------------------------------------------------------------
# fuzz_options compiles cli.cpp itself, with its main() switched off.
if printf '%s\n' "${targets[@]}" | grep -qx fuzz_options && ! grep -q FLARE_CLI_NO_MAIN cli.cpp; then
  cat >&2 <<'EOF'
run.sh: fuzz_options needs cli.cpp's main() to be optional. Wrap it in cli.cpp:
    #ifndef FLARE_CLI_NO_MAIN
    int main(int argc, char** argv) { ... }
    #endif
(or leave fuzz_options out: tests/fuzz/run.sh SECONDS fuzz_reply fuzz_csv ...)
EOF
  exit 1
fi

deps=(flare_tools.hpp cli.cpp tests/fuzz/*.hpp)
build_one() {
  local t=$1 bin=$out/$1
  local stale=0
  if [ ! -x "$bin" ] || [ "tests/fuzz/$t.cpp" -nt "$bin" ]; then stale=1; fi
  for d in "${deps[@]}"; do [ "$d" -nt "$bin" ] && stale=1; done
  if [ $stale -eq 0 ]; then return 0; fi
  if ! "$CXX" "${FLAGS[@]}" -o "$bin.tmp" "tests/fuzz/$t.cpp" >"$out/logs/$t.build.log" 2>&1; then
    echo "BUILD FAILED: $t (see $out/logs/$t.build.log)" >&2
    sed 's/^/    /' "$out/logs/$t.build.log" | head -30 >&2
    rm -f "$bin.tmp"
    return 1
  fi
  mv "$bin.tmp" "$bin"
}

echo "building ${#targets[@]} targets into $out/ ..."
build_failed=0
pids=()
for t in "${targets[@]}"; do
  build_one "$t" &
  pids+=($!)
  # Two compilers at once at most: each takes about 1 GB.
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || build_failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || build_failed=1; done
if [ $build_failed -ne 0 ]; then
  echo "run.sh: some targets did not build" >&2
  exit 1
fi

if [ "$duration" -eq 0 ]; then
  echo "built ${#targets[@]} targets (SECONDS=0: nothing run)"
  exit 0
fi

# ---- run --------------------------------------------------------------------------------
# The options parser reads these; keep runs reproducible.
unset FLARE_INDEX_SERVER FLARE_INDEX_SERVER_PORT FLARE_INDEX_SERVERS
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The dictionary of tokens each target's input is made of (tests/fuzz/dict/).
dict_of() {
  case $1 in
    fuzz_reply | fuzz_stats | fuzz_stats_nodes | fuzz_stats_threads | fuzz_node_stream) echo protocol ;;
    fuzz_dump_stream | fuzz_csv | fuzz_value_line) echo items ;;
    fuzz_options) echo options ;;
    fuzz_address) echo address ;;
    *) echo none ;;
  esac
}

run_one() {
  local t=$1
  local work=$out/work/$t
  local dict=tests/fuzz/dict/$(dict_of "$t").dict
  local dict_flag=()
  [ -f "$dict" ] && dict_flag=(-dict="$dict")
  rm -rf "$work"
  mkdir -p "$work/corpus"
  if [ -d "tests/fuzz/corpus/$t" ]; then cp -R "tests/fuzz/corpus/$t/." "$work/corpus/"; fi
  # Every input that once crashed this target runs again first: a regression fails the run.
  for crash in tests/fuzz/crashes/"$t"-*; do [ -f "$crash" ] && cp "$crash" "$work/corpus/"; done
  local rc=0
  # shellcheck disable=SC2086
  "$out/$t" -max_total_time="$duration" -max_len=65536 -rss_limit_mb=2048 -timeout=60 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" ${dict_flag[@]+"${dict_flag[@]}"} ${FUZZ_FLAGS:-} \
    "$work/corpus" >"$work/log" 2>&1 || rc=$?
  echo "$rc" >"$work/rc"
}

echo "running each target for ${duration}s (logs: $out/work/<target>/log) ..."
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$FUZZ_JOBS" ]; then
    wait "${pids[0]}" || true
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || true; done

failed=0
printf '\n%-22s %14s  %s\n' target executions result
for t in "${targets[@]}"; do
  work=$out/work/$t
  rc=$(cat "$work/rc" 2>/dev/null || echo "?")
  execs=$(grep -a 'stat::number_of_executed_units:' "$work/log" | tail -1 | awk '{print $2}' || true)
  if [ "$rc" = 0 ]; then
    printf '%-22s %14s  %s\n' "$t" "${execs:-?}" ok
  else
    failed=1
    artifact=$(grep -a -o "Test unit written to [^ ]*" "$work/log" | tail -1 | sed 's/Test unit written to //' || true)
    printf '%-22s %14s  %s\n' "$t" "${execs:-?}" "FAILED (exit $rc)${artifact:+, input: $artifact}"
  fi
done

if [ $failed -ne 0 ]; then
  echo
  for t in "${targets[@]}"; do
    work=$out/work/$t
    [ "$(cat "$work/rc" 2>/dev/null)" = 0 ] && continue
    echo "==== $t: end of $work/log"
    grep -a -v '^#[0-9]' "$work/log" | tail -40
  done
  exit 1
fi
echo "all ${#targets[@]} targets ran ${duration}s without a crash"
