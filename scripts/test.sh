#!/usr/bin/env bash
# The whole kmipd test suite, on a fresh Debian machine or a developer's.
#
# Installs what the tests need (SoftHSM2 and openssl through apt-get, PyKMIP
# 0.11 into ./.venv), checks formatting and lints, then runs every test of
# the workspace. Tests find the OASIS KMIP test cases through
# KMIP_TESTCASES_DIR and the KMIP tag tables through KMIP_SPEC_DIR when set.
# The last line is "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# 1. System packages.
missing=()
command -v softhsm2-util >/dev/null 2>&1 && [ -e /usr/lib/softhsm/libsofthsm2.so ] || missing+=(softhsm2)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3 python3-venv)
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)  # Debian splits venv/ensurepip out of python3
fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. PyKMIP 0.11 (client for interoperability tests) in a local virtualenv.
if ! .venv/bin/python -c 'import kmip, sys; sys.exit(0 if kmip.__version__.startswith("0.11") else 1)' 2>/dev/null; then
  log "installing PyKMIP 0.11 into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "pykmip==0.11.*"
fi
export KMIPD_TEST_PYTHON="$PWD/.venv/bin/python"

# 3. Reference material, when it sits beside the checkout.
if [ -z "${KMIP_TESTCASES_DIR:-}" ] && [ -d ../shared/kmip-testcases ]; then
  export KMIP_TESTCASES_DIR="$PWD/../shared/kmip-testcases"
fi
if [ -z "${KMIP_SPEC_DIR:-}" ] && [ -d ../shared/spec ]; then
  export KMIP_SPEC_DIR="$PWD/../shared/spec"
fi

# 4. Formatting and lints.
log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

# 5. Tests.
log "cargo test"
out=$(mktemp)
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$out" || status=$?
passed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
failed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\2/p' "$out" | awk '{s+=$1} END {print s+0}')
rm -f "$out"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # a test binary failed to build or crashed
fi
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
