# The commands people type. `just --list` shows them.

# Format the workspace.
fmt:
    cargo fmt --all

# Lints as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Tests that need no services (SQLite, in-process servers).
test:
    cargo test --workspace

# Everything, with PostgreSQL started and provisioned as CI does.
test-all:
    bash -c '. .ci/services.sh && cargo test --workspace -- --include-ignored'

# The full CI gate.
ci:
    bash .ci/run

# The console in headless Chromium (installed from Debian's packages if missing): the browser
# stories, the JavaScript-off pass and the axe-core accessibility pass.
test-browser:
    bash -c 'command -v chromedriver >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)'
    cargo test -p canopy-e2e --test console_browser -- --ignored

# Screenshots of the console (desktop and 390 px) into docs/console/, over the demo estate.
screenshots:
    bash -c 'command -v chromedriver >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)'
    cargo run -q -p canopy-e2e --bin canopy-screenshots -- --out docs/console

# Regenerate the committed OpenAPI document from the handlers.
openapi:
    cargo run -q -p canopy-app -- openapi --output openapi/openapi.json

# Run the service on the embedded SQLite database.
serve:
    cargo run -p canopy-app -- serve

# Benchmarks (see docs/benchmarks.md): the API on PostgreSQL, the metrics fan-out, discovery,
# detection scans.
bench: bench-api bench-metrics bench-discovery bench-scan bench-coverage bench-console

# API benchmark: a release `canopy serve` on PostgreSQL driven by wrk (installed if missing).
bench-api:
    bash -c 'command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)'
    cargo build --release -p canopy-app --bin canopy -p canopy-e2e --bin canopy-bench
    bash -c '. .ci/services.sh && t="${CARGO_TARGET_DIR:-target}" && "$t/release/canopy-bench" --canopy "$t/release/canopy" --database-url "${CANOPY_TEST_POSTGRES_URL}"'

# Metrics fan-out over 3, 10, 100 and 500 accounts against the local STS + CloudWatch (100 ms per call).
bench-metrics:
    cargo run --release -p canopy-e2e --bin canopy-metrics-bench

# AWS Organization discovery: 5,000 accounts in 250 OUs (depth 4), 50 ms per call, through the
# whole stack on SQLite and PostgreSQL; unchanged re-sync writes; 10 % throttled.
bench-discovery:
    bash -c '. .ci/services.sh && cargo run --release -p canopy-e2e --bin canopy-discovery-bench'

# Detection scans: an organization of 500 connected accounts, 50 ms per AWS call, organization
# and members scans through the whole stack on SQLite and PostgreSQL, tuned and default
# concurrency; peak calls in flight asserted against the bound, and memory.
bench-scan:
    bash -c '. .ci/services.sh && cargo run --release -p canopy-e2e --bin canopy-scan-bench'

# Coverage: 1,000 accounts on a 4-level OU tree, 100 own and 50 organization detections. The
# computation (every account and the organization view, full and compact paths), then the
# organization view over HTTP from a release `canopy serve` on PostgreSQL driven by wrk at 8
# connections, then the console's pages of that organization with a session cookie. A larger
# estate: `canopy-coverage-http-bench --accounts 5000 --own 10` (see docs/benchmarks.md).
bench-coverage:
    bash -c 'command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)'
    cargo build --release -p canopy-app --bin canopy -p canopy-e2e --bin canopy-coverage-bench --bin canopy-coverage-http-bench
    bash -c 't="${CARGO_TARGET_DIR:-target}" && "$t/release/canopy-coverage-bench"'
    bash -c '. .ci/services.sh && t="${CARGO_TARGET_DIR:-target}" && "$t/release/canopy-coverage-http-bench" --canopy "$t/release/canopy" --database-url "${CANOPY_TEST_POSTGRES_URL}"'

# Console: a release `canopy serve --demo` on PostgreSQL; wrk with a session cookie on the
# dashboard shell, the settings pages and the figures fragment (warm cache) at 64 connections;
# then headless Chromium timing the dashboard's first view (navigation start to chart drawn).
bench-console:
    bash -c 'command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)'
    bash -c 'command -v chromedriver >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)'
    cargo build --release -p canopy-app --bin canopy -p canopy-e2e --bin canopy-console-bench
    bash -c '. .ci/services.sh && t="${CARGO_TARGET_DIR:-target}" && "$t/release/canopy-console-bench" --canopy "$t/release/canopy" --database-url "${CANOPY_TEST_POSTGRES_URL}"'

# Regenerates the ATT&CK IaaS catalog and the CTID scores shipped in crates/detection/data from
# a mitre/cti checkout (or a STIX bundle) and the two CTID mapping files; see its README.
attack-catalog stix version aws gcp:
    python3 crates/detection/data/generate.py --stix {{stix}} --attack-version {{version}} \
        --aws {{aws}} --gcp {{gcp}} --out-dir crates/detection/data
