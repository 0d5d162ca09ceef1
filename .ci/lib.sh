# Shared set-up for .ci/serve and .ci/test. Every step checks before it acts,
# so running it again is cheap and changes nothing.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/servicetsunami/target}"
# Builds never need a database: the query metadata is committed in .sqlx/.
export SQLX_OFFLINE=true
export SQLX_OFFLINE_DIR="$ROOT/.sqlx"
# leptos reads this at compile time; cargo-leptos sets it, so plain cargo
# commands set it too, or each would rebuild what the other built.
export LEPTOS_OUTPUT_NAME=servicetsunami
# Incremental artifacts of our crates grow without bound across many builds
# (tens of GB seen); the dependencies are never incremental anyway.
export CARGO_INCREMENTAL=0

# One package selection for every cargo command (tests, clippy, the server
# binary, benchmarks). Cargo unifies the features of build-time dependencies
# across the packages it builds at once, and DuckDB's build script depends on
# some of them: a different selection means another 25-minute DuckDB build and
# another ~12 GB of artifacts. So build the server-side crates together, with
# their dev-dependencies, always. (The front end builds in its own target dir.)
CARGO_PACKAGES=(-p app -p servicetsunami-server -p servicetsunami-mcp
                -p servicetsunami-contract -p servicetsunami-stack)
# npm's tools: restate-server and its CLI, playwright, and wasm-opt (binaryen),
# which cargo-leptos needs for the release front end.
export PATH="$HOME/.cargo/bin:$ROOT/end2end/node_modules/.bin:$PATH"
# The stack harness (end2end/stack): how every script starts the services.
STACK="$CARGO_TARGET_DIR/debug/stack"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { printf '\033[1;34m==>\033[0m [%ss] %s\n' "$SECONDS" "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

apt_install() {
  log "installing with apt: $*"
  if [ ! -f /tmp/.servicetsunami-apt-updated ]; then
    $SUDO apt-get update -qq && touch /tmp/.servicetsunami-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

ensure_rust() {
  command -v cargo >/dev/null || die "Rust is required: install rustup from your package manager or rustup.rs"
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  # DuckDB (C++) and jemalloc (configure, make) are built from source.
  if ! command -v c++ >/dev/null || ! command -v make >/dev/null; then
    apt_install build-essential
  fi
}

# The exact wasm-bindgen the workspace pins (Cargo.lock).
pinned_wasm_bindgen() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

ensure_cargo_leptos() {
  if ! command -v cargo-leptos >/dev/null; then
    # cargo-leptos's locked dependencies need a newer rustc than stable 1.95.
    local toolchain=nightly
    if ! rustup toolchain list | grep -q '^nightly'; then
      log "installing a nightly toolchain for cargo-leptos"
      rustup toolchain install nightly --profile minimal
    fi
    log "installing cargo-leptos (about 15 minutes, once)"
    cargo "+$toolchain" install cargo-leptos --locked --features no_downloads
  fi
  local want have
  want="$(pinned_wasm_bindgen)"
  # Absent on a fresh machine: that is an empty version, not a failure.
  have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
  if [ "$have" != "$want" ]; then
    log "installing wasm-bindgen-cli $want"
    # Not --locked: its lock file names a crate version the registry does not serve.
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
}

ensure_node_deps() {
  command -v npm >/dev/null || apt_install nodejs npm
  local dir
  for dir in "$ROOT/end2end" "$ROOT/mcp/client-check"; do
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
      log "installing npm packages in ${dir#"$ROOT"/} (npm ci)"
      (cd "$dir" && npm ci --no-audit --no-fund)
    fi
  done
}

# The server-side binaries (servicetsunami, servicetsunami-mcp, stack) with
# the package selection every script uses, without the test binaries. The
# dependencies' features are the same as the tests' (dev-dependencies add
# none), so this shares the tests' build of DuckDB.
build_binaries() {
  cargo build "${CARGO_PACKAGES[@]}" --bins
}

# The browser bundle, as served: the wasm-release profile (opt-level z, LTO,
# wasm-opt), into target/site.
build_front() {
  cargo leptos build --release --frontend-only
}

# The gzipped size of the served wasm, checked against the budget.
WASM_BUDGET_BYTES=$((350 * 1024))
check_wasm_size() {
  local wasm="$ROOT/target/site/pkg/servicetsunami.wasm" gz
  [ -f "$wasm" ] || wasm="$ROOT/target/site/pkg/servicetsunami_bg.wasm"
  [ -f "$wasm" ] || die "no wasm under target/site/pkg; build the front end first"
  gz="$(gzip -9 -c "$wasm" | wc -c)"
  log "hydrate wasm: $(wc -c <"$wasm") bytes, $gz bytes gzipped (budget $WASM_BUDGET_BYTES)"
  [ "$gz" -le "$WASM_BUDGET_BYTES" ] || die "the wasm is over budget: $gz > $WASM_BUDGET_BYTES bytes gzipped"
}

# sqlx-cli, for `cargo sqlx prepare --check` (the offline query data in .sqlx/).
ensure_sqlx_cli() {
  if ! cargo sqlx --version 2>/dev/null | grep -q ' 0\.8\.6'; then
    log "installing sqlx-cli 0.8.6 (Postgres only, once)"
    cargo install sqlx-cli --version 0.8.6 --locked --no-default-features --features rustls,postgres
  fi
}

# cargo-fuzz (nightly, like cargo-leptos), for the fuzz smoke run.
ensure_cargo_fuzz() {
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (once)"
    cargo +nightly install cargo-fuzz --locked
  fi
}

# Each fuzz target for a few seconds, in a target directory of its own
# (nightly, coverage instrumentation). The MCP targets link DuckDB, so their
# first build takes DuckDB's build time once; they run without a sanitizer
# (DuckDB's C++ is not instrumented anyway). Longer runs: the README.md in
# mcp/contract/fuzz and mcp/fuzz.
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
fuzz_smoke() {
  local out="$HOME/.cache/servicetsunami/fuzz.log" entry dir target sanitizer
  mkdir -p "$(dirname "$out")"
  for entry in mcp/contract/fuzz:column_names:address mcp/fuzz:query_sandbox:none \
    mcp/fuzz:silver_plan:none; do
    IFS=: read -r dir target sanitizer <<<"$entry"
    if ! CARGO_TARGET_DIR="$HOME/.cache/servicetsunami/fuzz-target" \
      cargo +nightly fuzz run "$target" --fuzz-dir "$ROOT/$dir" -s "$sanitizer" \
      -- -max_total_time="$FUZZ_SECONDS" -timeout=20 >"$out" 2>&1; then
      tail -n 40 "$out" >&2
      die "fuzz target $target failed (its crash input is under $dir/artifacts/)"
    fi
    log "fuzz $target: $(grep -E '^Done [0-9]+ runs' "$out" | tail -n 1)"
  done
}

# The Spark tier (mcp/tests/spark_guard.rs): pyspark from PyPI in a venv of
# its own, and a Java runtime from Debian. SPARK_PYTHON tells the tests where.
SPARK_VENV="$HOME/.cache/servicetsunami/spark-venv"
export SPARK_PYTHON="$SPARK_VENV/bin/python"
ensure_pyspark() {
  if ! command -v java >/dev/null; then apt_install openjdk-17-jre-headless; fi
  if ! "$SPARK_PYTHON" -c 'import pyspark' >/dev/null 2>&1; then
    log "installing pyspark 4.3.0 in $SPARK_VENV (once)"
    python3 -m venv "$SPARK_VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$SPARK_VENV"; }
    "$SPARK_VENV/bin/pip" install -q pyspark==4.3.0
  fi
}

# A TrueType font for the benchmark report's plots (stack::report).
ensure_fonts() {
  if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then apt_install fonts-dejavu-core; fi
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then apt_install chromium; fi
}

pg_ok() { psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1; }

# A cluster of the project's own under .data/postgres (trust auth, loopback
# only, port 54329), for machines whose Postgres is missing or closed to us.
# It leaves the system's Postgres configuration alone.
start_private_postgres() {
  local bindir dir="$ROOT/.data/postgres" port=54329 as=()
  if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then apt_install postgresql; fi
  bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    # initdb refuses to run as root.
    chown postgres "$dir"
    as=(runuser -u postgres --)
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    log "creating a private PostgreSQL cluster in $dir"
    "${as[@]}" "$bindir/initdb" -D "$dir" -A trust -U postgres >/dev/null
  fi
  if ! "${as[@]}" "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    log "starting the private PostgreSQL cluster on 127.0.0.1:$port"
    "${as[@]}" "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
  fi
  PG_BASE="postgres://postgres@127.0.0.1:$port"
}

# Makes sure the Postgres named by the variable $1 (a postgres:// URL) answers
# and its database exists. If it does not answer, starts the machine's
# cluster, and failing that a private one (installing PostgreSQL with apt if
# needed), and points the variable at it.
ensure_postgres() {
  local -n url_var="$1"
  local base="${url_var%/*}" db="${url_var##*/}"
  db="${db%%\?*}"
  command -v psql >/dev/null || apt_install postgresql-client
  if ! pg_ok "$base/postgres" && command -v pg_ctlcluster >/dev/null && ls -d /etc/postgresql/*/main >/dev/null 2>&1; then
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n1)"
    log "starting the machine's PostgreSQL $version cluster"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    for _ in $(seq 1 15); do pg_ok "$base/postgres" && break; sleep 1; done
  fi
  if ! pg_ok "$base/postgres"; then
    log "no PostgreSQL answers at $base"
    start_private_postgres
    base="$PG_BASE"
    pg_ok "$base/postgres" || die "PostgreSQL could not be started; see $ROOT/.data/postgres/server.log"
    url_var="$base/$db"
  fi
  if [ -n "$db" ] && [ "$db" != "postgres" ] &&
     [ "$(psql "$base/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
    log "creating database $db"
    psql "$base/postgres" -qc "CREATE DATABASE \"$db\"" >/dev/null
  fi
}

# `cargo sqlx prepare --check` against a scratch database with every
# migration: the committed .sqlx/ must match the queries exactly. sqlx-cli
# touches the crates' sources to make the macros run again; their times are
# put back afterwards, so the build that follows does not recompile them.
check_sqlx_data() {
  local db="st_sqlx_check_$$" url stamps status=0
  url="${TEST_DATABASE_URL%/*}/$db"
  stamps="$(mktemp)"
  find "$ROOT/app" "$ROOT/server" "$ROOT/mcp" "$ROOT/end2end/stack" -name '*.rs' \
    -not -path '*/node_modules/*' -printf '%T@ %p\n' >"$stamps"
  psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  DATABASE_URL="$url" cargo sqlx migrate run --source "$ROOT/migrations" >/dev/null || status=$?
  if [ "$status" -eq 0 ]; then
    DATABASE_URL="$url" SQLX_OFFLINE=false cargo sqlx prepare --workspace --check -- \
      "${CARGO_PACKAGES[@]}" --all-targets || status=$?
  fi
  while read -r stamp path; do touch -m -d "@$stamp" "$path"; done <"$stamps"
  rm -f "$stamps"
  psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  return "$status"
}
