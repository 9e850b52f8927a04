#!/usr/bin/env bash
# Regenerates the offline query data in .sqlx/ (with --check: verifies it is up to date) for the
# compile-time checked queries of renrakucho-store (docs/adr/0021-compile-time-checked-queries.md).
# Starts a throwaway private PostgreSQL cluster from the installed server binaries (as the
# `postgres` user when run as root, as in CI), migrates it as the owner role the testkit uses,
# runs `cargo sqlx prepare --workspace [--check]` against it, and removes it again. Needs
# sqlx-cli 0.8 (`cargo install sqlx-cli@0.8.6 --locked --no-default-features --features
# postgres,rustls`). Extra arguments go to `cargo sqlx prepare`.
set -euo pipefail
cd "$(dirname "$0")/.."

bindir=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
  bindir="$(pg_config --bindir)"
elif compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
elif command -v initdb >/dev/null 2>&1; then
  bindir="$(dirname "$(command -v initdb)")"
else
  echo "sqlx-prepare: no PostgreSQL server binaries (initdb) found" >&2
  exit 1
fi
command -v cargo-sqlx >/dev/null 2>&1 || {
  echo "sqlx-prepare: cargo-sqlx missing (see the comment at the top of $0)" >&2
  exit 1
}

dir="$(mktemp -d "${TMPDIR:-/tmp}/renrakucho-sqlx.XXXXXX")"
as_pg() { "$@"; }
if [ "$(id -u)" -eq 0 ]; then
  # initdb refuses to run as root: the cluster belongs to `postgres`.
  chown postgres "$dir"
  chmod 0755 "$dir"
  as_pg() { runuser -u postgres -- "$@"; }
fi
port="${SQLX_PREPARE_PORT:-55439}"
stop() {
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync >/dev/null
# Unix socket only, in the private directory: no port of the machine is taken.
as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/data/log" -w \
  -o "-p $port -k $dir -c listen_addresses='' -c fsync=off" start >/dev/null

psql_bin="$bindir/psql"
[ -x "$psql_bin" ] || psql_bin=psql
# As `renrakucho_store::provision_cluster` does: an owner role that runs the migrations.
"$psql_bin" -q -v ON_ERROR_STOP=1 "host=$dir port=$port user=postgres dbname=postgres" \
  -c "CREATE ROLE renrakucho_owner LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS NOCREATEDB" \
  -c "CREATE DATABASE renrakucho OWNER renrakucho_owner ENCODING 'UTF8' TEMPLATE template0"
sqlx migrate run --source migrations \
  --database-url "postgres://renrakucho_owner@localhost:$port/renrakucho?host=$dir" >/dev/null

# Described as the superuser: every table, function and catalog the store's queries name.
export DATABASE_URL="postgres://postgres@localhost:$port/renrakucho?host=$dir"
cargo sqlx prepare --workspace "$@"
