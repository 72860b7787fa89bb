#!/bin/bash
#
# demo.sh - a local 3-node pg_paxos cluster to play with
#
#   scripts/demo.sh start    build and install pg_paxos, start the nodes,
#                            form the group 'demo' (make demo)
#   scripts/demo.sh stop     stop the nodes, keep their data (make demo-stop)
#   scripts/demo.sh status   which nodes run
#   scripts/demo.sh clean    stop the nodes and remove their data
#
# Environment:
#   PGP_DEMO_DIR     where the nodes live       (default /tmp/pg_paxos-demo)
#   PGP_DEMO_PORTS   their ports on 127.0.0.1   (default "6001 6002 6003")
#   PGP_DEMO_NO_BUILD=1   skip the build/install step
#
# The servers run as the postgres user, listen on 127.0.0.1 only and trust
# every local connection: a demo, not a deployment (see docs/security.md).
# They are stopped by data directory, never by process name.
#
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${PGP_DEMO_DIR:-/tmp/pg_paxos-demo}
read -r -a PORTS <<<"${PGP_DEMO_PORTS:-6001 6002 6003}"
GROUP=demo
MARKER=.pg_paxos-demo

if [ -z "${PG_CONFIG:-}" ]; then
	if [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
		PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
	else
		PG_CONFIG=pg_config
	fi
fi

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

bindir() {
	"$PG_CONFIG" --bindir
}

node_dir() { echo "$DIR/node$1"; }
data_dir() { echo "$DIR/node$1/data"; }
port_of() { echo "${PORTS[$(($1 - 1))]}"; }
connstr() { echo "host=127.0.0.1 port=$(port_of "$1") dbname=postgres user=postgres"; }

is_running() {
	[ -f "$(data_dir "$1")/postmaster.pid" ] &&
		as_pg "$(bindir)/pg_ctl" -D "$(data_dir "$1")" status >/dev/null 2>&1
}

# psql NODE SQL: run SQL on node NODE, unaligned, tuples only.
psql_node() {
	PGOPTIONS='-c client_min_messages=warning' "$(bindir)/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 \
		-p "$(port_of "$1")" -U postgres -d postgres -c "$2"
}

# Whether something listens on 127.0.0.1:PORT.  SO_REUSEADDR, as
# PostgreSQL sets it, so that connections in TIME_WAIT do not count.
port_in_use() {
	/usr/bin/python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(('127.0.0.1', int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
EOF
}

init_node() {
	local i=$1 dir data
	dir=$(node_dir "$i")
	data=$(data_dir "$i")
	mkdir -p "$dir"
	chmod 755 "$dir"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
	as_pg "$(bindir)/initdb" -D "$data" -U postgres -A trust -E UTF8 \
		--locale=C >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log" >&2
		exit 1
	}
	cat >"$data/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
	cat >>"$data/postgresql.conf" <<EOF

# pg_paxos demo node $i
port = $(port_of "$i")
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_paxos'
pg_paxos.node_id = 'node$i'
max_connections = 100
EOF
}

start_node() {
	local i=$1 port
	port=$(port_of "$i")
	if port_in_use "$port"; then
		echo "demo: port $port is in use by another program;" \
			"choose others with PGP_DEMO_PORTS=\"...\"" >&2
		exit 1
	fi
	as_pg "$(bindir)/pg_ctl" -D "$(data_dir "$i")" \
		-l "$(node_dir "$i")/postgresql.log" -w -t 60 start >/dev/null || {
		echo "demo: node$i did not start; its log:" >&2
		tail -n 20 "$(node_dir "$i")/postgresql.log" >&2
		exit 1
	}
}

has_group() {
	[ "$(psql_node "$1" "SELECT count(*) FROM pgp_metadata.\"group\"
		WHERE group_id = '$GROUP'")" != 0 ]
}

cmd_start() {
	local n=${#PORTS[@]} i already=1
	if [ "$n" -lt 1 ]; then
		echo "demo: PGP_DEMO_PORTS is empty" >&2
		exit 1
	fi
	if [ "${PGP_DEMO_NO_BUILD:-0}" != 1 ]; then
		"$ROOT/scripts/install-deps.sh"
		"${MAKE:-make}" --no-print-directory -C "$ROOT" install >/dev/null
	fi

	mkdir -p "$DIR"
	chmod 755 "$DIR"
	touch "$DIR/$MARKER"
	for i in $(seq 1 "$n"); do
		if [ ! -f "$(data_dir "$i")/PG_VERSION" ]; then
			init_node "$i"
		fi
		if is_running "$i"; then
			echo "node$i already running on port $(port_of "$i")"
		else
			already=0
			start_node "$i"
			echo "node$i started on port $(port_of "$i")"
		fi
	done

	for i in $(seq 1 "$n"); do
		psql_node "$i" "CREATE EXTENSION IF NOT EXISTS pg_paxos"
	done
	if ! has_group 1; then
		already=0
		psql_node 1 "SELECT paxos_create_group('$GROUP', '$(connstr 1)')" \
			>/dev/null
		echo "node1 created group '$GROUP'"
	fi
	for i in $(seq 2 "$n"); do
		if ! has_group "$i"; then
			already=0
			psql_node "$i" "SELECT paxos_join_group('$GROUP',
				'$(connstr 1)', '$(connstr "$i")')" >/dev/null
			echo "node$i joined group '$GROUP'"
		fi
	done
	[ $already = 1 ] && echo "The demo cluster was already running."

	cat <<EOF

pg_paxos demo: $n nodes in group '$GROUP', data in $DIR

Connect to a node (ports ${PORTS[*]}):
    psql -h 127.0.0.1 -p $(port_of 1) -U postgres

Append a value to the replicated log and read it back on another node:
    SELECT paxos_append('me/1', '$GROUP', 'primary = node-a');
    psql -h 127.0.0.1 -p $(port_of "$n") -U postgres -c \\
      "SELECT * FROM paxos('me/2', '$GROUP', paxos_max_group_round('$GROUP'))"

Server logs: $DIR/node*/postgresql.log
Stop:        make demo-stop    (or scripts/demo.sh stop; clean removes data)
EOF
}

cmd_stop() {
	local data stopped=0
	shopt -s nullglob
	for data in "$DIR"/node*/data; do
		if [ -f "$data/postmaster.pid" ]; then
			as_pg "$(bindir)/pg_ctl" -D "$data" -m fast -w -t 60 stop \
				>/dev/null && echo "stopped $(basename "$(dirname "$data")")"
			stopped=1
		fi
	done
	[ $stopped = 1 ] || echo "demo: no demo node is running (in $DIR)"
}

cmd_status() {
	local data name
	shopt -s nullglob
	for data in "$DIR"/node*/data; do
		name=$(basename "$(dirname "$data")")
		if as_pg "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; then
			echo "$name: running"
		else
			echo "$name: stopped"
		fi
	done
}

cmd_clean() {
	cmd_stop
	if [ -d "$DIR" ]; then
		if [ ! -f "$DIR/$MARKER" ]; then
			echo "demo: $DIR was not made by demo.sh; not removing it" >&2
			exit 1
		fi
		rm -rf "$DIR"
		echo "removed $DIR"
	fi
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
clean) cmd_clean ;;
*)
	echo "usage: $0 start|stop|status|clean" >&2
	exit 2
	;;
esac
