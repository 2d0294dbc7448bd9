#!/usr/bin/env bash
# The API as its users meet it, from outside the process, on SQLite and on PostgreSQL:
#   1. a Python client generated from openapi/openapi.json (openapi-python-client, warnings are
#      errors) drives a running server through a short story (tests/python/client_story.py);
#   2. schemathesis fuzzes every operation with every check (schemathesis.toml) for a bounded
#      time and fails on any 5xx, schema violation, undocumented status or content type;
#   3. every operation must have been reached past 404 (tests/python/fuzz_coverage.py prints
#      what the fuzzing reached, per operation, from its HAR recording);
#   4. the server's own log must hold no failed (5xx) request.
# Needs CANOPY_TEST_POSTGRES_URL (.ci/services.sh). Run by .ci/run; alone:
#   . .ci/services.sh && bash .ci/from-outside.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/canopy-ci-target}"
VENV="${CANOPY_CI_VENV:-$HOME/.cache/canopy-ci-venv}"
FUZZ_SECONDS="${CANOPY_FUZZ_SECONDS:-150}"
: "${CANOPY_TEST_POSTGRES_URL:?source .ci/services.sh first}"

work=${CANOPY_OUTSIDE_WORK:-$(mktemp -d)}
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

ensure_venv() {
  local stamp="$VENV/.requirements"
  if [ -f "$stamp" ] && cmp -s "$stamp" .ci/requirements-outside.txt; then
    return
  fi
  echo "ci: installing the Python tools into $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r .ci/requirements-outside.txt
  cp .ci/requirements-outside.txt "$stamp"
}

ensure_venv
export PATH="$VENV/bin:$PATH"

echo "ci: generating the Python client"
openapi-python-client generate --path openapi/openapi.json \
  --output-path "$work/python/canopy_client" --meta none --fail-on-warning >"$work/generate.log" 2>&1 \
  || { cat "$work/generate.log"; exit 1; }

# The binary the test step built (same package selection and features: nothing rebuilds).
cargo test --workspace --locked -q --no-run
canopy="$CARGO_TARGET_DIR/debug/canopy"

# A free port on the loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ready() {
  python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/readyz', timeout=2)" "$1" \
    >/dev/null 2>&1
}

run_against() {
  local name=$1 database_url=$2
  local port log
  port=$(free_port)
  log="$work/$name-server.log"
  echo "ci: $name: canopy serve --demo on 127.0.0.1:$port"
  # Cheap password hashing and no sign-in rate limit: the fuzzer signs in thousands of times.
  # AWS calls go to moto (a fuzzed role in an account without an organization is a 422,
  # as in AWS); metrics come from the demo cloud.
  env CANOPY_DATABASE_URL="$database_url" CANOPY_BIND="127.0.0.1:$port" CANOPY_DEMO=true \
    CANOPY_AUTH_RATE_PER_MINUTE=1000000 CANOPY_ARGON2_MEMORY_KIB=1024 CANOPY_ARGON2_ITERATIONS=1 \
    CANOPY_RETENTION_SWEEP_MINUTES=0 CANOPY_AWS_ENDPOINT_URL="${CANOPY_TEST_MOTO_URL:-http://127.0.0.1:9}" \
    CANOPY_AWS_ACCESS_KEY_ID=AKIDCANOPYCI CANOPY_AWS_SECRET_ACCESS_KEY=ci \
    CANOPY_SECRET_KEY="$(head -c 32 /dev/urandom | base64)" \
    CANOPY_LOG_FORMAT=json RUST_LOG=info "$canopy" serve >"$log" 2>&1 &
  server_pid=$!
  local url="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    ready "$url" && break
    sleep 0.2
  done
  ready "$url" || { echo "ci: $name: server did not start"; cat "$log"; exit 1; }

  # The scripts verify addresses as an operator would (`canopy admin verify-email`): this
  # server has no mail relay, so verification e-mails stay in its outbox.
  export CANOPY_CI_CANOPY="$canopy" CANOPY_CI_DATABASE_URL="$database_url"
  echo "ci: $name: the generated Python client"
  python3 tests/python/client_story.py "$work/python" "$url"

  echo "ci: $name: schemathesis, ${FUZZ_SECONDS}s"
  local status=0 attempt fixtures
  # The demo's ids and objects made for the fuzzing (CANOPY_FUZZ_*, read by schemathesis.toml).
  fixtures=$(python3 tests/python/fuzz_fixtures.py "$url") || { echo "ci: $name: fixtures failed"; exit 1; }
  eval "$fixtures"
  # A run that ends without a summary is schemathesis itself stopping (a crash of the tool,
  # never a finding: findings come with a summary); it is shown and run once more.
  for attempt in 1 2; do
    status=0
    CANOPY_URL="$url" schemathesis run openapi/openapi.json \
      --checks all --max-time "$FUZZ_SECONDS" --report junit,har --report-dir "$work/$name-report" \
      >"$work/$name-fuzz.log" 2>&1 || status=$?
    if grep -q 'SUMMARY' "$work/$name-fuzz.log"; then
      break
    fi
    echo "ci: $name: schemathesis ended (status $status) without a summary; its last lines:"
    tail -n 60 "$work/$name-fuzz.log" | cut -c1-400
    status=1
  done
  # The summary (and every failure) without the megabytes of generated URLs.
  cut -c1-400 "$work/$name-fuzz.log" | sed -n '/ERRORS\|FAILURES\|SUMMARY/,$p'
  # Every operation must have been exercised past "not found" (the ids below make that so).
  echo "ci: $name: what the fuzzing reached, per operation"
  local har
  har=$(ls -t "$work/$name-report"/har-*.json | head -n 1)
  python3 tests/python/fuzz_coverage.py openapi/openapi.json "$har" || status=1
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  if grep -q '"request failed"' "$log"; then
    echo "ci: $name: the server logged failed requests:"
    grep '"request failed"' "$log" | head -20
    status=1
  fi
  [ "$status" = 0 ] || { echo "ci: $name: the from-outside gate failed"; exit 1; }
}

# CANOPY_OUTSIDE_BACKENDS picks backends when reproducing one locally.
for backend in ${CANOPY_OUTSIDE_BACKENDS:-sqlite postgres}; do
  case "$backend" in
    sqlite) run_against sqlite "sqlite://$work/fuzz.db?mode=rwc" ;;
    postgres)
      pg_db="canopy_test_outside_$$"
      psql "$CANOPY_TEST_POSTGRES_URL" -q -c "CREATE DATABASE $pg_db"
      run_against postgres "${CANOPY_TEST_POSTGRES_URL%/*}/$pg_db"
      psql "$CANOPY_TEST_POSTGRES_URL" -q -c "DROP DATABASE IF EXISTS $pg_db" || true
      ;;
    *) echo "ci: unknown backend $backend"; exit 2 ;;
  esac
done
echo "ci: from outside: Python client and schemathesis clean on SQLite and PostgreSQL"
