#!/usr/bin/env bash
# make demo: start a fake flare cluster on loopback, build a small cluster with flare-admin,
# and show the tables. The fake stops when this script ends.
set -e
ADMIN=${1:-./flare-admin}
FAKE=${2:-build/plain/fake-flare}
dir=$(mktemp -d)
trap 'kill $fake_pid 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
"$FAKE" --nodes 3 --ready-file "$dir/ready" > /dev/null &
fake_pid=$!
i=0; while [ ! -f "$dir/ready" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
INDEX=127.0.0.1:$(awk '$1=="index"{print $2}' "$dir/ready")
CONTROL=$(awk '$1=="control"{print $2}' "$dir/ready")
set -- $(awk '$1=="node"{print $2}' "$dir/ready")
echo "fake flare cluster: index $INDEX, nodes 127.0.0.1:$1 127.0.0.1:$2 127.0.0.1:$3"
echo
echo "\$ flare-admin list -i $INDEX"
"$ADMIN" list -i "$INDEX"
echo
echo "\$ flare-admin master --force -i $INDEX 127.0.0.1:$1:1:0"
"$ADMIN" master --force -i "$INDEX" "127.0.0.1:$1:1:0" 2>&1 || true
# 20000 items of 1000 bytes, straight into the fake master (as the tutorial stores them)
exec 3<>/dev/tcp/127.0.0.1/$CONTROL && printf 'fill 127.0.0.1:%s 20000 1000\r\n' "$1" >&3 && read -r _ <&3; exec 3>&-
echo
echo "\$ flare-admin slave --force -i $INDEX 127.0.0.1:$2:1:0"
"$ADMIN" slave --force -i "$INDEX" "127.0.0.1:$2:1:0" 2>&1 || true
echo
echo "\$ flare-admin list -i $INDEX"
"$ADMIN" list -i "$INDEX"
echo
echo "\$ flare-stats -i $INDEX"
"$(dirname "$ADMIN")/flare-stats" -i "$INDEX"
echo
echo "\$ flare-admin summary -i $INDEX"
"$ADMIN" summary -i "$INDEX"
