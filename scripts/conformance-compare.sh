#!/usr/bin/env bash
# Side-by-side OASIS KMIP conformance of kmipd and the PyKMIP 0.11 server,
# measured in the same run with the same runner (kmipctl conformance run).
# Not run in CI. Usage: scripts/conformance-compare.sh [TESTCASES_DIR]
# Prints the tables of docs/conformance.md; raw outputs stay in $work.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-${KMIP_TESTCASES_DIR:-../shared/kmip-testcases}}"
work=$(mktemp -d)
cargo build -q -p kmipd-server --bin kmipd --bin kmipctl
[ -x .venv/bin/pykmip-server ] || { python3 -m venv .venv; .venv/bin/pip install -q "pykmip==0.11.*"; }
pids=()
# PyKMIP's server forks a worker that outlives its parent (and holds the
# port): it runs in a session of its own, whose whole group is killed.
pygroup=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -z "$pygroup" ] || kill -KILL -- "-$pygroup" 2>/dev/null || true
}
trap cleanup EXIT

# ECDSA P-256 dev PKI (PyKMIP offers rustls no usable suite with RSA).
./target/debug/kmipd --dev --ecdsa --data-dir "$work/pki" --listen 127.0.0.1:0 >/dev/null 2>&1 & p=$!
for _ in $(seq 50); do [ -f "$work/pki/certs/admin.key" ] && break; sleep 0.2; done
kill "$p"; wait "$p" 2>/dev/null || true
certs="$work/pki/certs"

# PyKMIP: one server for every version (it deletes destroyed objects).
mkdir -p "$work/py/policies"
cat > "$work/py/server.conf" <<CONF
[server]
hostname=127.0.0.1
port=15699
certificate_path=$certs/server.crt
key_path=$certs/server.key
ca_path=$certs/ca.crt
auth_suite=TLS1.2
policy_path=$work/py/policies
enable_tls_client_auth=True
logging_level=WARNING
database_path=$work/py/pykmip.db
CONF
setsid .venv/bin/pykmip-server -f "$work/py/server.conf" -l "$work/py/server.log" >/dev/null 2>&1 & pygroup=$!

run() { # server-address version output
  ./target/debug/kmipctl conformance run "$cases/$2" --server "$1" --ca "$certs/ca.crt" \
    --cert "$certs/admin.crt" --key "$certs/admin.key" | sed "s#^\(PASS\|FAIL\) #\1 $2/#" >>"$3" || true
}
sleep 5
for v in v1.0 v1.1 v1.2 v1.3; do
  # kmipd: a fresh server per version, as in server/tests/conformance.rs.
  rm -rf "$work/kd-$v"; mkdir -p "$work/kd-$v"; cp -r "$work/pki/certs" "$work/kd-$v/"
  ./target/debug/kmipd --dev --ecdsa --data-dir "$work/kd-$v" --listen 127.0.0.1:15698 >"$work/kd-$v.log" 2>&1 & kp=$!
  sleep 2
  run 127.0.0.1:15698 "$v" "$work/kmipd.txt"
  kill "$kp"; wait "$kp" 2>/dev/null || true
  run 127.0.0.1:15699 "$v" "$work/pykmip.txt"
done
python3 scripts/conformance-table.py "$work/kmipd.txt" "$work/pykmip.txt"
echo "raw outputs: $work/kmipd.txt $work/pykmip.txt" >&2
