#!/bin/bash
# Every file `flare-admin deploy` writes starts a real flarei/flared (issue 19, part 5).
# CI has no flare, so this is not part of `make test`; run it where flare is installed:
#
#   FLARE_BIN=/tmp/flare-inst/bin tests/deploy-real.sh [path/to/flare-admin]
#
# Without FLARE_BIN it says so and exits 0 (skipped). Ports: $FLARE_BASE_PORT (default 26120)
# for the index, the next one for the node. For each variant below (the defaults; every
# setting deploy passes through, with a value flare 1.3.4 accepts; index-servers in place of
# index-server-name/port; tcb storage) it deploys an index and a node into a scratch folder,
# runs the folder's start.sh (start-stop-daemon, as the folder is meant to be used), checks
# that each daemon answers `stats` on its port and that the node registered with the index,
# runs stop.sh, and checks the daemons are gone. Exit 0 when every variant passed.
set -u
if [[ -z ${FLARE_BIN:-} ]]; then
    echo "deploy-real.sh: FLARE_BIN is not set (the folder holding flarei and flared): skipped"
    exit 0
fi
ADMIN=$(realpath "${1:-build/plain/flare-admin}")
BASE=${FLARE_BASE_PORT:-26120}
IDX=127.0.0.1:$BASE
NODE=127.0.0.1:$((BASE + 1))
WORK=$(mktemp -d /tmp/flare-deploy-real-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
failed=0

ask() { # ask HOST:PORT REQUEST: the reply, or nothing within 2 s
    printf '%s\r\n' "$2" | timeout 2 nc -q1 "${1%:*}" "${1##*:}" 2>/dev/null
}

wait_for() { # wait_for HOST:PORT: until it answers stats (10 s)
    local i
    for ((i = 0; i < 50; i++)); do
        ask "$1" stats | grep -q '^END' && return 0
        sleep 0.2
    done
    return 1
}

variant() { # variant NAME ARGS...: deploy, start, check, stop
    local name=$1
    shift
    local dir=$WORK/$name
    mkdir -p "$dir"
    echo "== $name: deploy $*"
    if ! (cd "$dir" && "$ADMIN" deploy --deploy-index -i "$IDX" "$NODE" --flarei "$FLARE_BIN/flarei" \
        --flared "$FLARE_BIN/flared" "$@" >/dev/null); then
        echo "FAIL $name: deploy refused"
        failed=1
        return
    fi
    local ok=1
    for server in "$IDX" "$NODE"; do
        (cd "$dir/$server" && sh ./start.sh) || { echo "FAIL $name: $server start.sh exited $?"; ok=0; }
        if ! wait_for "$server"; then
            echo "FAIL $name: $server does not answer after start.sh; its files:"
            sed 's/^/    /' "$dir/$server/"*.conf
            ok=0
        fi
    done
    if ((ok)); then
        local i
        for ((i = 0; i < 50; i++)); do
            ask "$IDX" "stats nodes" | grep -q "STAT $NODE:role" && break
            sleep 0.2
        done
        ask "$IDX" "stats nodes" | grep -q "STAT $NODE:role" || { echo "FAIL $name: $NODE did not register"; ok=0; }
    fi
    for server in "$NODE" "$IDX"; do
        (cd "$dir/$server" && sh ./stop.sh) >/dev/null 2>&1
    done
    sleep 0.5
    for server in "$NODE" "$IDX"; do
        if ask "$server" stats | grep -q '^END'; then
            echo "FAIL $name: $server still answers after stop.sh"
            ok=0
            local pidfile
            for pidfile in "$dir/$server/data/"*.pid; do [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null; done
        fi
    done
    if ((ok)); then echo "ok   $name"; else failed=1; fi
}

variant defaults
variant every-setting \
    --thread-pool-size=4 --daemonize=true --log-facility=local2 --max-connection=128 --stack-size=256 \
    --monitor-threshold=2 --monitor-interval=2 --monitor-read-timeout=500 --partition-type=modular \
    --key-hash-algorithm=crc32 --partition-size=64 --partition-modular-hint=1 --partition-modular-virtual=1024 \
    --back-log=64 --net-read-timeout=30 --proxy-concurrency=3 --mutex-slot=16 --reconstruction-interval=0 \
    --reconstruction-bwlimit=0 --storage-ap=4 --storage-bucket-size=131071 --storage-cache-size=65536 \
    --storage-compress=deflate --storage-large --storage-type=tch --proxy-prior-netmask=24 \
    --max-total-thread-queue=1000 --noreply-window-limit=10
variant index-servers --index-servers="$IDX"
variant tcb --storage-type=tcb
mkdir -p "$WORK/data dir with spaces"
variant data-dir --data-dir="$WORK/data dir with spaces"

if ((failed)); then
    echo "deploy-real.sh: FAILED"
    exit 1
fi
echo "deploy-real.sh: every variant started and stopped"
