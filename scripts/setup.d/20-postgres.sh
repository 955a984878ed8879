# Sourced by scripts/test. Provides the throwaway PostgreSQL that edas-store's PostgreSQL tier
# runs against, and exports EDAS_TEST_PG_URL. Idempotent: installs PostgreSQL from Debian only
# if missing, initializes a cluster under /tmp only once, starts it only if it is not running.
# On failure it says why and leaves EDAS_TEST_PG_URL unset: in CI (CI set) the PostgreSQL tests
# then fail instead of skipping. An EDAS_TEST_PG_URL already set is used as it is.

edas_pg_setup() {
  local port="${EDAS_TEST_PG_PORT:-54329}"
  local root="${EDAS_TEST_PG_DIR:-/tmp/edas-test-pg}"
  local db=edas_test
  local bindir runas=()

  edas_pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
  bindir="$(edas_pg_bindir)"
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "postgres: PostgreSQL is not installed and this is not root, so it cannot be" \
        "installed (run as root, or: apt-get install postgresql)" >&2
      return 1
    fi
    echo "postgres: installing PostgreSQL from Debian"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }; then
      echo "postgres: apt-get install postgresql failed" >&2
      return 1
    fi
    bindir="$(edas_pg_bindir)"
    if [ -z "$bindir" ]; then
      echo "postgres: installed, but no /usr/lib/postgresql/*/bin found" >&2
      return 1
    fi
  fi

  # The server refuses to run as root: as root, run it as the postgres user Debian creates.
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      echo "postgres: running as root but there is no postgres user to run the server as" >&2
      return 1
    fi
    runas=(runuser -u postgres --)
  fi

  if [ ! -s "$root/data/PG_VERSION" ]; then
    echo "postgres: initializing a test cluster in $root/data"
    rm -rf "$root"
    mkdir -p "$root"
    [ "$(id -u)" = 0 ] && chown postgres: "$root"
    if ! "${runas[@]}" "$bindir/initdb" -D "$root/data" -U postgres --auth=trust \
      -E UTF8 --locale=C >"$root/initdb.log" 2>&1; then
      echo "postgres: initdb failed; see $root/initdb.log" >&2
      return 1
    fi
  fi

  if ! "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "postgres: starting on 127.0.0.1:$port"
    if ! "${runas[@]}" "$bindir/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $root -c max_connections=300 -c fsync=off" \
      start >/dev/null; then
      echo "postgres: the server did not start; see $root/server.log" >&2
      return 1
    fi
  fi

  if ! "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    if ! "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"; then
      echo "postgres: createdb $db failed" >&2
      return 1
    fi
  fi
  export EDAS_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/$db"
  echo "postgres: EDAS_TEST_PG_URL=$EDAS_TEST_PG_URL"
}

if [ -n "${EDAS_TEST_PG_URL:-}" ]; then
  echo "postgres: using EDAS_TEST_PG_URL from the environment"
elif ! edas_pg_setup; then
  echo "postgres: setup failed; the PostgreSQL tests will fail in CI (they skip elsewhere)" >&2
fi
unset -f edas_pg_setup edas_pg_bindir
