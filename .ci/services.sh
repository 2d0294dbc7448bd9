#!/usr/bin/env bash
# Starts the services the ignored tests need (PostgreSQL, moto, Redis; Chromium for the
# console's browser tests) and prints the environment they read.
# Source it (`. .ci/services.sh`) so the exports reach the caller. Idempotent.
set -euo pipefail

PG_PASSWORD="${CANOPY_CI_PG_PASSWORD:-postgres}"

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "$*"
  else
    sudo -u postgres sh -c "$*"
  fi
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "ci: installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "ci: starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main start
    for _ in $(seq 1 30); do
      pg_isready -q -h 127.0.0.1 -p 5432 && break
      sleep 1
    done
  fi
  pg_isready -h 127.0.0.1 -p 5432
  # Never assume trust auth: set a known password over the local socket (peer auth as the
  # postgres OS user), then connect over TCP with it.
  as_postgres "psql -q -v ON_ERROR_STOP=1 -c \"ALTER USER postgres PASSWORD '$PG_PASSWORD'\""
  # Drop databases left by earlier runs' tests (each test run creates its own).
  as_postgres "psql -q -At -c \"SELECT 'DROP DATABASE IF EXISTS ' || quote_ident(datname) || ';' FROM pg_database WHERE datname LIKE 'canopy_test_%'\" | psql -q" || true
  export CANOPY_TEST_POSTGRES_URL="postgres://postgres:${PG_PASSWORD}@127.0.0.1:5432/postgres"
}

MOTO_PORT="${CANOPY_CI_MOTO_PORT:-5123}"

moto_up() {
  python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:${MOTO_PORT}/moto-api/', timeout=2)" >/dev/null 2>&1
}

ensure_moto() {
  if ! command -v moto_server >/dev/null 2>&1; then
    echo "ci: installing moto[server] from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'
    hash -r
  fi
  if ! moto_up; then
    echo "ci: starting moto on 127.0.0.1:${MOTO_PORT}"
    nohup moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"${TMPDIR:-/tmp}/canopy-moto.log" 2>&1 &
    for _ in $(seq 1 50); do
      moto_up && break
      sleep 0.2
    done
  fi
  moto_up || { echo "ci: moto did not start"; cat "${TMPDIR:-/tmp}/canopy-moto.log"; return 1; }
  export CANOPY_TEST_MOTO_URL="http://127.0.0.1:${MOTO_PORT}"
}

REDIS_PORT="${CANOPY_CI_REDIS_PORT:-6379}"

redis_up() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null
  fi
}

ensure_redis() {
  if ! redis_up; then
    if ! command -v redis-server >/dev/null 2>&1; then
      echo "ci: installing Redis from Debian's packages"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq redis-server >/dev/null
    fi
    echo "ci: starting Redis on 127.0.0.1:${REDIS_PORT}"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
      --appendonly no --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/canopy-redis.log"
    for _ in $(seq 1 50); do
      redis_up && break
      sleep 0.2
    done
  fi
  redis_up || { echo "ci: redis did not start"; return 1; }
  export CANOPY_TEST_REDIS_URL="redis://127.0.0.1:${REDIS_PORT}"
}

# The e-mail tests deliver to aiosmtpd (PyPI), a real SMTP server run by tests/smtp/sink.py.
ensure_aiosmtpd() {
  if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
    echo "ci: installing aiosmtpd from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check 'aiosmtpd>=1.4,<2'
  fi
  python3 -c "import aiosmtpd; print('aiosmtpd', aiosmtpd.__version__)"
}

# The console's browser tests drive Debian's Chromium through its chromedriver.
ensure_chromium() {
  if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    echo "ci: installing Chromium and chromedriver from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  chromium --version
}

ensure_postgres
ensure_moto
ensure_redis
ensure_aiosmtpd
ensure_chromium
echo "ci: services ready (CANOPY_TEST_POSTGRES_URL, CANOPY_TEST_MOTO_URL, CANOPY_TEST_REDIS_URL set; aiosmtpd and Chromium installed)"
