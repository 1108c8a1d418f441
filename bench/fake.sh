# Sourced by the bench scripts: starts tests/fake-flare and waits until it listens.
#   start_fake FAKE DIR [fake options...]
# Writes DIR/ready; sets FAKE_PID, INDEX_PORT, CONTROL_PORT and NODE_PORTS (an array, in order).
# Fails (return 1, a line on stderr) if the fake is not listening within 20 s. The caller kills
# FAKE_PID (its trap) and removes DIR.
start_fake() {
  local fake=$1 dir=$2 i=0
  shift 2
  "$fake" --ready-file "$dir/ready" "$@" >/dev/null &
  FAKE_PID=$!
  while [ ! -f "$dir/ready" ]; do
    i=$((i + 1))
    if [ $i -gt 400 ] || ! kill -0 "$FAKE_PID" 2>/dev/null; then
      echo "$fake did not start (options: $*)" >&2
      return 1
    fi
    sleep 0.05
  done
  INDEX_PORT=$(awk '$1=="index"{print $2}' "$dir/ready")
  CONTROL_PORT=$(awk '$1=="control"{print $2}' "$dir/ready")
  mapfile -t NODE_PORTS < <(awk '$1=="node"{print $2}' "$dir/ready")
}
