#!/bin/bash
#
# demo.sh - a local 3-node pg_paxos cluster to play with
#
#   scripts/demo.sh start    build and install pg_paxos, start one paxosd
#                            agent per node; each initialises and starts its
#                            PostgreSQL and they form the group 'demo'
#                            (make demo).  On a terminal it then stays in
#                            the foreground until Ctrl-C; elsewhere, or with
#                            --detach, it returns.
#   scripts/demo.sh stop     stop the agents (and so the nodes), keep their
#                            data (make demo-stop)
#   scripts/demo.sh status   the table of nodes (paxosctl status)
#   scripts/demo.sh clean    stop everything and remove the data
#
# Environment:
#   PGP_DEMO_DIR          where the nodes live    (default /tmp/pg_paxos-demo)
#   PGP_DEMO_PORTS        PostgreSQL ports        (default "6001 6002 6003")
#   PGP_DEMO_AGENT_PORTS  agent HTTP ports        (default "8000 8001 8002")
#   PGP_DEMO_NO_BUILD=1   skip the build/install step
#
# Everything listens on 127.0.0.1 only and the servers trust every local
# connection: a demo, not a deployment (see docs/security.md).  Agents are
# stopped by the pids they were started with, servers by data directory,
# never by process name.
#
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${PGP_DEMO_DIR:-/tmp/pg_paxos-demo}
read -r -a PORTS <<<"${PGP_DEMO_PORTS:-6001 6002 6003}"
read -r -a AGENT_PORTS <<<"${PGP_DEMO_AGENT_PORTS:-8000 8001 8002}"
GROUP=demo
MARKER=.pg_paxos-demo
PAXOSD=$ROOT/agent/build/paxosd
PAXOSCTL=$ROOT/agent/build/paxosctl

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

# The installed extension's SQL script, fingerprinted: the nodes' pg_paxos
# objects are made from it when their database is created, and a later
# build's library expects its own (the script is still version 1.0, with
# no upgrade path between builds).
extension_stamp() {
	md5sum "$("$PG_CONFIG" --sharedir)/extension/pg_paxos--1.0.sql" | cut -d' ' -f1
}

# check_stamp refuses data made by another build of pg_paxos; new data
# gets this build's stamp.
check_stamp() {
	local stamp data
	stamp=$(extension_stamp)
	for data in "$DIR"/node*/data; do
		[ -d "$data" ] || continue
		if [ "$(cat "$DIR/extension.md5" 2>/dev/null)" != "$stamp" ]; then
			echo "demo: the data in $DIR was made by another build of pg_paxos" \
				"(its SQL objects differ from the installed ones)." >&2
			echo "hint: scripts/demo.sh clean removes it; make demo then" \
				"starts over." >&2
			exit 1
		fi
		return 0
	done
	echo "$stamp" >"$DIR/extension.md5"
}

port_of() { echo "${PORTS[$(($1 - 1))]}"; }
agent_port_of() { echo "${AGENT_PORTS[$(($1 - 1))]}"; }
agent_pid_file() { echo "$DIR/node$1/paxosd.pid"; }

agents_list() {
	local i out=""
	for i in $(seq 1 ${#PORTS[@]}); do
		out+="${out:+,}127.0.0.1:$(agent_port_of "$i")"
	done
	echo "$out"
}

# Whether something listens on 127.0.0.1:PORT.  SO_REUSEADDR, as
# PostgreSQL sets it, so that connections in TIME_WAIT do not count.
port_in_use() {
	/usr/bin/python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(('127.0.0.1', int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

agent_running() {
	local pidfile
	pidfile=$(agent_pid_file "$1")
	[ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# write_agent_conf NODE: the agent's configuration (every node listed).
write_agent_conf() {
	local i=$1 j
	{
		echo "# paxosd of demo node $i (written by scripts/demo.sh)"
		echo "node_id = $i"
		echo "data_dir = $DIR/node$i"
		echo "group = $GROUP"
		echo "admin_token_file = $DIR/admin_token"
		for j in $(seq 1 ${#PORTS[@]}); do
			echo "node = $j 127.0.0.1 $(port_of "$j") $(agent_port_of "$j")"
		done
	} >"$DIR/paxosd$i.conf"
}

start_agent() {
	local i=$1 port
	for port in "$(port_of "$i")" "$(agent_port_of "$i")"; do
		if port_in_use "$port"; then
			echo "demo: port $port is in use by another program; choose" \
				"others with PGP_DEMO_PORTS / PGP_DEMO_AGENT_PORTS" >&2
			exit 1
		fi
	done
	mkdir -p "$DIR/node$i"
	setsid "$PAXOSD" -c "$DIR/paxosd$i.conf" </dev/null \
		>>"$DIR/node$i/paxosd.log" 2>&1 &
	echo $! >"$(agent_pid_file "$i")"
}

# wait_ready NODE: until its agent says it is ready (bootstrapped).
wait_ready() {
	local i=$1 n=0
	until curl -fsS "http://127.0.0.1:$(agent_port_of "$i")/api/status" \
		2>/dev/null | grep -q '"ready":true'; do
		if ! agent_running "$i"; then
			echo "demo: the agent of node$i exited; its log:" >&2
			tail -n 20 "$DIR/node$i/paxosd.log" >&2
			exit 1
		fi
		n=$((n + 1))
		if [ $n -gt 900 ]; then
			echo "demo: node$i not ready after 180 s; see $DIR/node$i/" >&2
			exit 1
		fi
		sleep 0.2
	done
}

leader_line() {
	local leader="" n=0
	# the cluster view needs a moment to see every member
	while [ -z "$leader" ] && [ $n -lt 20 ]; do
		leader=$("$PAXOSCTL" --agents "$(agents_list)" leader 2>/dev/null ||
			true)
		[ -z "$leader" ] && sleep 0.5
		n=$((n + 1))
	done
	if [ -n "$leader" ]; then
		echo "node$leader (PostgreSQL port $(port_of "$leader"), agent" \
			"http://127.0.0.1:$(agent_port_of "$leader")/)"
	else
		echo "none yet (scripts/demo.sh status)"
	fi
}

cmd_start() {
	local n=${#PORTS[@]} i already=1 detach=0 token
	[ "${1:-}" = --detach ] && detach=1
	{ [ -t 0 ] && [ -t 1 ]; } || detach=1
	if [ "$n" -lt 1 ] || [ "$n" -ne ${#AGENT_PORTS[@]} ]; then
		echo "demo: PGP_DEMO_PORTS and PGP_DEMO_AGENT_PORTS must list" \
			"as many ports, at least one" >&2
		exit 1
	fi
	if [ "${PGP_DEMO_NO_BUILD:-0}" != 1 ]; then
		"$ROOT/scripts/install-deps.sh"
		"${MAKE:-make}" --no-print-directory -C "$ROOT" install >/dev/null
	fi

	mkdir -p "$DIR"
	chmod 755 "$DIR"
	touch "$DIR/$MARKER"
	check_stamp
	# one admin token for every agent of the demo, made once
	if [ ! -s "$DIR/admin_token" ]; then
		(umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' \
			>"$DIR/admin_token")
	fi
	token=$(cat "$DIR/admin_token")
	for i in $(seq 1 "$n"); do
		if agent_running "$i"; then
			echo "node$i: agent already running on port $(agent_port_of "$i")"
		else
			already=0
			write_agent_conf "$i"
			start_agent "$i"
			echo "node$i: agent started (HTTP $(agent_port_of "$i")," \
				"PostgreSQL $(port_of "$i"))"
		fi
	done
	for i in $(seq 1 "$n"); do
		wait_ready "$i"
	done
	[ $already = 1 ] && echo "The demo cluster was already running."

	cat <<EOF

pg_paxos demo: $n nodes in group '$GROUP', data in $DIR

Leader:       $(leader_line)
Web client:   http://127.0.0.1:$(agent_port_of 1)/create/#token=$token
Agents:       $(for i in $(seq 1 "$n"); do printf 'http://127.0.0.1:%s/  ' "$(agent_port_of "$i")"; done)
Admin token:  $token   (in $DIR/admin_token)

The middleware's API, on any agent:
    curl -X POST http://127.0.0.1:$(agent_port_of 1)/commit/ -H 'Content-Type: application/json' \\
      -d '{"transaction": {"read_set": [], "write_set": {"1": 100}}}'
    curl -X POST http://127.0.0.1:$(agent_port_of "$n")/read/ -H 'Content-Type: application/json' \\
      -d '{"transaction": {"read_set": [1, 2], "write_set": {}}}'
Cluster:      agent/build/paxosctl --agents $(agents_list) status
SQL:          psql -h 127.0.0.1 -p $(port_of 1) -U postgres
Logs:         $DIR/node*/paxosd.log, $DIR/node*/postgresql.log
Stop:         make demo-stop    (scripts/demo.sh stop; clean removes the data)
EOF
	if [ $detach = 0 ]; then
		echo
		echo "Running in the foreground: Ctrl-C stops the demo."
		trap 'echo; cmd_stop; exit 0' INT TERM
		while :; do
			sleep 1
		done
	fi
}

cmd_stop() {
	local data i pid stopped=0
	shopt -s nullglob
	for i in $(seq 1 ${#PORTS[@]}); do
		if agent_running "$i"; then
			pid=$(cat "$(agent_pid_file "$i")")
			kill -TERM "$pid"
			# the agent stops its PostgreSQL (fast) before it exits
			for _ in $(seq 1 600); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			echo "stopped node$i (agent and PostgreSQL)"
			stopped=1
		fi
		rm -f "$(agent_pid_file "$i")"
	done
	# servers left by an agent that died, or started before the agents
	for data in "$DIR"/node*/data; do
		if [ -f "$data/postmaster.pid" ] &&
			as_pg "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; then
			as_pg "$(bindir)/pg_ctl" -D "$data" -m fast -w -t 60 stop \
				>/dev/null
			echo "stopped PostgreSQL of $(basename "$(dirname "$data")")"
			stopped=1
		fi
	done
	[ $stopped = 1 ] || echo "demo: no demo node is running (in $DIR)"
}

cmd_status() {
	local data name
	shopt -s nullglob
	if "$PAXOSCTL" --agents "$(agents_list)" status 2>/dev/null; then
		return
	fi
	for data in "$DIR"/node*/data; do
		name=$(basename "$(dirname "$data")")
		if as_pg "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; then
			echo "$name: running (its agent does not answer)"
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
start) cmd_start "${2:-}" ;;
stop) cmd_stop ;;
status) cmd_status ;;
clean) cmd_clean ;;
*)
	echo "usage: $0 start [--detach]|stop|status|clean" >&2
	exit 2
	;;
esac
