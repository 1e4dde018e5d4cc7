#!/usr/bin/env bash
# Side-by-side benchmark on this machine, in one run: the bare cost of mutual
# TLS (a server that answers every message with a fixed response), kmipd, and
# the PyKMIP 0.11 server, driven by the same load generator
# (server/examples/loadgen.rs). Prints a Markdown table with ratios.
#
#   bash scripts/bench.sh [SECONDS] [WORKERS]
#
# Not part of the test suite: performance is reported as ratios from one run,
# never asserted by timed tests. Needs PyKMIP in ./.venv (scripts/test.sh
# installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
workers=${2:-8}
cargo build -q --release -p kmipd-server --bin kmipd --bin kmipctl --example loadgen
bin=target/release
work=$(mktemp -d)
pids=()
# PyKMIP's server forks a worker that outlives its parent (and holds the
# port): it runs in a session of its own, whose whole group is killed.
pygroup=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -z "$pygroup" ] || kill -KILL -- "-$pygroup" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# kmipd (ECDSA P-256 certificates: PyKMIP's server offers AES-GCM only with ECDSA).
$bin/kmipd --dev --ecdsa --data-dir "$work/kmipd" --listen 127.0.0.1:25696 >"$work/kmipd.log" 2>&1 &
pids+=($!)
certs="$work/kmipd/certs"
for _ in $(seq 100); do [ -f "$certs/vcenter.key" ] && grep -q serving "$work/kmipd.log" && break; sleep 0.2; done

# The bare TLS floor, with the same certificates.
$bin/examples/loadgen bare --listen 127.0.0.1:25697 --cert "$certs/server.crt" --key "$certs/server.key" --ca "$certs/ca.crt" >"$work/bare.log" 2>&1 &
pids+=($!)

# PyKMIP's server.
mkdir -p "$work/policies"
cat >"$work/pykmip.conf" <<CONF
[server]
hostname=127.0.0.1
port=25698
certificate_path=$certs/server.crt
key_path=$certs/server.key
ca_path=$certs/ca.crt
auth_suite=TLS1.2
policy_path=$work/policies
enable_tls_client_auth=True
logging_level=ERROR
database_path=$work/pykmip.db
CONF
setsid .venv/bin/pykmip-server -f "$work/pykmip.conf" -l "$work/pykmip.log" >/dev/null 2>&1 &
pygroup=$!
sleep 3

client=(--ca "$certs/ca.crt" --cert "$certs/vcenter.crt" --key "$certs/vcenter.key")
kid=$($bin/kmipctl keys create --dev "$work/kmipd" --server 127.0.0.1:25696)
# The key must belong to the vcenter identity's group for Get as vcenter; admin-created keys are in the same default group.
pid=$(.venv/bin/python - "$certs" <<'PY'
import sys
from kmip.pie.client import ProxyKmipClient
from kmip import enums
d = sys.argv[1]
c = ProxyKmipClient(hostname="127.0.0.1", port=25698, cert=d+"/vcenter.crt", key=d+"/vcenter.key", ca=d+"/ca.crt", config_file="/dev/null")
with c:
    print(c.create(enums.CryptographicAlgorithm.AES, 256))
PY
)

run() { # name addr id pattern
  $bin/examples/loadgen client --server "$2" "${client[@]}" --id "$3" --pattern "$4" --workers "$workers" --seconds "$secs"
}
ops() { sed -n 's/.*"ops_per_sec":\([0-9.]*\).*/\1/p'; }
p99() { sed -n 's/.*"p99_ms":\([0-9.]*\).*/\1/p'; }
errs() { sed -n 's/.*"errors":\([0-9]*\).*/\1/p'; }

echo "| pattern | bare TLS ops/s | kmipd ops/s | kmipd / bare | kmipd p99 ms | PyKMIP ops/s | kmipd / PyKMIP |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for pattern in handshake vcenter-get get create; do
  b=$(run bare 127.0.0.1:25697 x "$pattern")
  k=$(run kmipd 127.0.0.1:25696 "$kid" "$pattern")
  p=$(run pykmip 127.0.0.1:25698 "$pid" "$pattern")
  bo=$(echo "$b" | ops); ko=$(echo "$k" | ops); po=$(echo "$p" | ops)
  [ "$(echo "$k" | errs)" = 0 ] || echo "kmipd errors in $pattern: $k" >&2
  [ "$(echo "$p" | errs)" = 0 ] || echo "PyKMIP errors in $pattern: $p" >&2
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$pattern" "$bo" "$ko" \
    "$(awk -v a="$ko" -v b="$bo" 'BEGIN{printf "%.2f", (b>0)?a/b:0}')" "$(echo "$k" | p99)" "$po" \
    "$(awk -v a="$ko" -v b="$po" 'BEGIN{printf "%.1f", (b>0)?a/b:0}')"
done
