#!/usr/bin/env bash
# Starts the services the ignored tests need and prints the environment they read.
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
  as_postgres "psql -q -At -c \"SELECT 'DROP DATABASE IF EXISTS ' || quote_ident(datname) FROM pg_database WHERE datname LIKE 'canopy_test_%'\" | psql -q" || true
  export CANOPY_TEST_POSTGRES_URL="postgres://postgres:${PG_PASSWORD}@127.0.0.1:5432/postgres"
}

ensure_postgres
echo "ci: services ready (CANOPY_TEST_POSTGRES_URL set)"
