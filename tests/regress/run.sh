#!/bin/bash
#
# tests/regress/run.sh - run the pg_regress tier against a throw-away server
#
# Starts a temporary PostgreSQL 15 instance (as the postgres user when run as
# root) on a free port of 127.0.0.1 with pg_paxos preloaded and
# pg_paxos.node_id = 'regress', runs pg_regress --use-existing on the tests
# named in tests/regress/schedule (or every sql/*.sql, sorted), prints
# regression.diffs if anything failed, and always stops the server and
# removes its files.  The last line of output is "N passed, N failed".
#
# The extension must be installed (make install).  Environment:
#   PG_CONFIG        pg_config of the PostgreSQL to use
#   PGP_KEEP_TMP=1   keep the temporary directory (data, logs, results)
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ -z "${PG_CONFIG:-}" ]; then
	if [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
		PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
	else
		PG_CONFIG=pg_config
	fi
fi
BINDIR=$("$PG_CONFIG" --bindir)
PG_REGRESS=$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress
PYTHON=/usr/bin/python3

# Run a command as the postgres user if we are root.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# The tests to run: the schedule if there is one, else every sql/*.sql.
tests=()
if [ ! -f "$HERE/schedule" ]; then
	shopt -s nullglob
	for f in "$HERE"/sql/*.sql; do
		tests+=("$(basename "$f" .sql)")
	done
	shopt -u nullglob
	if [ ${#tests[@]} -eq 0 ]; then
		echo "regress: no tests in $HERE/sql" >&2
		echo "0 passed, 0 failed"
		exit 0
	fi
fi

TMP=$(mktemp -d /tmp/pgp-regress.XXXXXX)
chmod 755 "$TMP"
[ "$(id -u)" -eq 0 ] && chown postgres: "$TMP"
DATA=$TMP/data
LOG=$TMP/postgresql.log

cleanup() {
	if [ -f "$DATA/postmaster.pid" ]; then
		as_pg "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w stop \
			>/dev/null 2>&1 || true
	fi
	if [ "${PGP_KEEP_TMP:-0}" = 1 ]; then
		echo "regress: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port below the ephemeral range, bind-tested.
free_port() {
	"$PYTHON" - <<'EOF'
import random, socket
low = int(open('/proc/sys/net/ipv4/ip_local_port_range').read().split()[0])
for _ in range(1000):
    port = random.randint(max(10000, low - 12000), low - 1)
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit('no free port')
EOF
}

as_pg "$BINDIR/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C \
	--no-sync >"$TMP/initdb.log" 2>&1 || {
	cat "$TMP/initdb.log" >&2
	exit 1
}
cat >"$DATA/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF

started=0
for attempt in 1 2 3 4 5; do
	PORT=$(free_port)
	cat >"$DATA/regress.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TMP'
shared_preload_libraries = 'pg_paxos'
pg_paxos.node_id = 'regress'
max_connections = 100
logging_collector = off
lc_messages = 'C'
EOF
	grep -q "regress.conf" "$DATA/postgresql.conf" ||
		echo "include 'regress.conf'" >>"$DATA/postgresql.conf"
	if as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start \
		>"$TMP/pg_ctl.log" 2>&1; then
		started=1
		break
	fi
	grep -q "already in use" "$LOG" 2>/dev/null || break
done
if [ $started -ne 1 ]; then
	echo "regress: could not start PostgreSQL:" >&2
	cat "$TMP/pg_ctl.log" "$LOG" >&2 || true
	echo "0 passed, 1 failed"
	exit 1
fi

# The database pg_regress --use-existing expects, set up as pg_regress
# itself would create it.
as_pg "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" \
	-U postgres -d postgres >/dev/null <<'EOF'
CREATE DATABASE "regression" TEMPLATE = template0;
ALTER DATABASE "regression" SET lc_messages TO 'C';
ALTER DATABASE "regression" SET lc_monetary TO 'C';
ALTER DATABASE "regression" SET lc_numeric TO 'C';
ALTER DATABASE "regression" SET lc_time TO 'C';
ALTER DATABASE "regression" SET bytea_output TO 'hex';
ALTER DATABASE "regression" SET timezone_abbreviations TO 'Default';
EOF

# pg_regress runs as postgres: give it a copy of the tests it can read and
# an output directory it can write.
cp -r "$HERE" "$TMP/input"
rm -rf "$TMP/input/results" "$TMP/input/regression.diffs" \
	"$TMP/input/regression.out"
mkdir -p "$TMP/output"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$TMP/input" "$TMP/output"

args=(--use-existing --host=127.0.0.1 --port="$PORT" --user=postgres
	--bindir="$BINDIR" --inputdir="$TMP/input" --outputdir="$TMP/output")
if [ -f "$HERE/schedule" ]; then
	args+=(--schedule="$TMP/input/schedule")
fi

set +e
(cd "$TMP/output" && as_pg "$PG_REGRESS" "${args[@]}" "${tests[@]}") \
	2>&1 | tee "$TMP/pg_regress.out"
rc=${PIPESTATUS[0]}
set -e

# pg_regress prints one "... ok" or "... FAILED" line per test.
passed=$(grep -cE '\.\.\. +ok( |$)' "$TMP/pg_regress.out" || true)
failed=$(grep -ciE '\.\.\. +failed' "$TMP/pg_regress.out" || true)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	# pg_regress itself failed (bad schedule, lost connection...).
	failed=1
fi

if [ -s "$TMP/output/regression.diffs" ]; then
	echo "=== regression.diffs ==="
	cat "$TMP/output/regression.diffs"
fi
if [ "$failed" -ne 0 ]; then
	echo "=== server log (last 50 lines) ==="
	tail -n 50 "$LOG" || true
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
