"""
pgcluster - throw-away PostgreSQL 15 nodes for pg_paxos tests and benchmarks.

A Cluster is N real PostgreSQL servers on this machine, each with its own
temporary data directory, its own free TCP port on 127.0.0.1 (and nothing
else), trust authentication for 127.0.0.1 and the local socket, fsync on,
and pg_paxos preloaded with pg_paxos.node_id = 'node<i>'.

PostgreSQL refuses to run as root, so when we are root every server program
runs as the `postgres` system user on directories it owns.  Servers are only
ever stopped by data directory (pg_ctl stop -D), never by process name, and
every node this process started is stopped again at exit even if the caller
forgot.

Every query goes through a psycopg2 connection in asynchronous mode and has
a hard client-side deadline: a server that hangs makes the query raise
SqlTimeout instead of blocking the test run.

Also: Cluster.replicate_tables, and run_transaction (BEGIN .. COMMIT,
retried on serialization failures) for table replication workloads.

Used by tests/cluster/conftest.py and bench/append_bench.py.
"""

import argparse
import atexit
import os
import pwd
import random
import re
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import psycopg2
import psycopg2.extensions

DEFAULT_QUERY_TIMEOUT = 120.0
START_TIMEOUT = 60

_lock = threading.Lock()
_live_nodes = set()          # nodes started and not yet stopped
_ports_in_use = set()        # ports handed out by this process
_template = {}               # cached initdb template, per process
_owner_pid = os.getpid()


class SqlTimeout(Exception):
    """A query did not finish before its client-side deadline."""


# ---------------------------------------------------------------------------
# Running PostgreSQL programs
# ---------------------------------------------------------------------------

def _pg_config():
    env = os.environ.get('PG_CONFIG')
    if env:
        return env
    pg15 = '/usr/lib/postgresql/15/bin/pg_config'
    return pg15 if os.path.exists(pg15) else 'pg_config'


_bindir = None


def pg_bindir():
    """The bin directory of the PostgreSQL that pg_config reports."""
    global _bindir
    if _bindir is None:
        _bindir = subprocess.check_output(
            [_pg_config(), '--bindir'], text=True).strip()
    return _bindir


def _as_postgres(cmd):
    """Prefix cmd so that it runs as the postgres user when we are root."""
    if os.geteuid() == 0:
        return ['runuser', '-u', 'postgres', '--'] + cmd
    return cmd


def _chown_postgres(path):
    if os.geteuid() == 0:
        pw = pwd.getpwnam('postgres')
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _run_pg(cmd, check=True, timeout=120, env=None):
    """Run a PostgreSQL program; return CompletedProcess, output captured.
    env: extra environment variables (a server started by pg_ctl inherits
    them)."""
    proc = subprocess.run(_as_postgres(cmd), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout,
                          env=dict(os.environ, **env) if env else None)
    if check and proc.returncode != 0:
        raise RuntimeError('%s failed (exit %d):\n%s'
                           % (' '.join(cmd), proc.returncode, proc.stdout))
    return proc


def make_tempdir(prefix):
    """A fresh directory under /tmp owned by the user servers run as."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    _chown_postgres(path)
    return path


def _initdb_template():
    """initdb once per process; nodes start from copies of this directory."""
    with _lock:
        if 'dir' in _template:
            return _template['dir']
        base = make_tempdir('pgp-template-')
        datadir = os.path.join(base, 'data')
        _run_pg([os.path.join(pg_bindir(), 'initdb'), '-D', datadir,
                 '-U', 'postgres', '-A', 'trust', '-E', 'UTF8',
                 '--locale=C', '--no-sync'])
        _template['dir'] = datadir
        _template['base'] = base
        return datadir


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

def _port_range():
    """Ports below the kernel's ephemeral range, so that outgoing
    connections never take a port a stopped node wants back."""
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    hi = low - 1
    lo = max(10000, hi - 12000)
    if hi <= lo:
        lo, hi = 20000, 30000
    return lo, hi


def port_is_free(port):
    """True if nothing listens on 127.0.0.1:port right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A port that is free now and not handed out before by this process."""
    lo, hi = _port_range()
    for _ in range(1000):
        port = random.randint(lo, hi)
        with _lock:
            if port in _ports_in_use:
                continue
            if port_is_free(port):
                _ports_in_use.add(port)
                return port
    raise RuntimeError('no free TCP port found in %d-%d' % (lo, hi))


# ---------------------------------------------------------------------------
# Connections with deadlines
# ---------------------------------------------------------------------------

class Conn:
    """A psycopg2 connection (autocommit) whose every call has a deadline."""

    def __init__(self, dsn, timeout=30.0):
        self.dsn = dsn
        self.conn = psycopg2.connect(dsn, async_=1)
        self._wait(time.monotonic() + timeout)

    def _wait(self, deadline):
        while True:
            state = self.conn.poll()
            if state == psycopg2.extensions.POLL_OK:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._abandon()
                raise SqlTimeout('no answer from %s within the deadline'
                                 % self.dsn)
            fd = self.conn.fileno()
            if state == psycopg2.extensions.POLL_READ:
                select.select([fd], [], [], remaining)
            elif state == psycopg2.extensions.POLL_WRITE:
                select.select([], [fd], [], remaining)
            else:
                raise psycopg2.OperationalError('bad poll state %r' % state)

    def _abandon(self):
        """Give up on a query: ask the server to cancel it, then hang up."""
        try:
            self.conn.cancel()
        except Exception:
            pass
        self.close()

    def sql(self, query, args=None, timeout=DEFAULT_QUERY_TIMEOUT):
        """Run one statement; return its rows (a list of tuples) or None."""
        cur = self.conn.cursor()
        try:
            cur.execute(query, args)
            self._wait(time.monotonic() + timeout)
            if cur.description is None:
                return None
            return cur.fetchall()
        finally:
            if not self.conn.closed:
                cur.close()

    def scalar(self, query, args=None, timeout=DEFAULT_QUERY_TIMEOUT):
        """The first column of the first row, or None if there is no row."""
        rows = self.sql(query, args, timeout)
        return rows[0][0] if rows else None

    def command(self, query, args=None, timeout=DEFAULT_QUERY_TIMEOUT):
        """Run one statement; return its command tag ('COMMIT', 'INSERT 0
        1', ...).  COMMIT of a transaction that already failed answers
        'ROLLBACK' without an error: only the tag tells."""
        cur = self.conn.cursor()
        try:
            cur.execute(query, args)
            self._wait(time.monotonic() + timeout)
            return cur.statusmessage
        finally:
            if not self.conn.closed:
                cur.close()

    def records(self, query, args=None, timeout=DEFAULT_QUERY_TIMEOUT):
        """The rows as dicts keyed by column name."""
        cur = self.conn.cursor()
        try:
            cur.execute(query, args)
            self._wait(time.monotonic() + timeout)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        finally:
            if not self.conn.closed:
                cur.close()

    @property
    def closed(self):
        return self.conn.closed != 0

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------

class Node:
    """One PostgreSQL server: data directory, port, log file, connections.

    env: extra environment variables of the server process (set before the
    first start).  peer_connstr: the connection string other nodes use to
    reach this one (what goes into the group's membership); by default the
    same as connstr, which tests and clients use.  netfault.py sets both to
    route node-to-node traffic through its proxies.
    """

    def __init__(self, basedir, index, settings):
        self.index = index
        self.name = 'node%d' % index
        self.dir = os.path.join(basedir, self.name)
        self.datadir = os.path.join(self.dir, 'data')
        self.logfile = os.path.join(self.dir, 'postgresql.log')
        self.port = None
        self.settings = settings
        self._conn = None
        self._started_once = False
        self.env = {}
        self._peer_connstr = None

    def __repr__(self):
        return '<Node %s port=%s>' % (self.name, self.port)

    @property
    def connstr(self):
        return ('host=127.0.0.1 port=%d dbname=postgres user=postgres'
                % self.port)

    @property
    def peer_connstr(self):
        return self._peer_connstr or self.connstr

    @peer_connstr.setter
    def peer_connstr(self, value):
        self._peer_connstr = value

    def init(self):
        """Create the data directory (a copy of the initdb template)."""
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o755)
        _chown_postgres(self.dir)
        _run_pg(['cp', '-a', _initdb_template(), self.datadir])
        with open(os.path.join(self.datadir, 'pg_hba.conf'), 'w') as f:
            f.write('local all all trust\n'
                    'host all all 127.0.0.1/32 trust\n'
                    'local replication all trust\n'
                    'host replication all 127.0.0.1/32 trust\n')
        with open(os.path.join(self.datadir, 'postgresql.conf'), 'a') as f:
            f.write("\ninclude_if_exists = 'pgcluster.conf'\n")
        self.port = free_port()
        self._write_conf()

    def _write_conf(self):
        settings = {
            'port': self.port,
            'listen_addresses': '127.0.0.1',
            'unix_socket_directories': self.dir,
            'fsync': 'on',
            'max_connections': 200,
            'shared_buffers': '32MB',
            'logging_collector': 'off',
            'log_line_prefix': '%m [%p] %q%a ',
            'pg_paxos.node_id': self.name,
        }
        settings.update(self.settings)
        path = os.path.join(self.datadir, 'pgcluster.conf')
        with open(path, 'w') as f:
            for key, val in settings.items():
                if isinstance(val, str):
                    val = "'%s'" % val.replace("'", "''")
                f.write('%s = %s\n' % (key, val))
        _chown_postgres(path)

    def start(self):
        """Start the server and wait until it accepts connections.

        On the very first start a port taken since we picked it is replaced
        by another one; later starts keep the port, since peers know it.
        """
        attempts = 1 if self._started_once else 5
        for attempt in range(attempts):
            proc = _run_pg([os.path.join(pg_bindir(), 'pg_ctl'),
                            '-D', self.datadir, '-l', self.logfile,
                            '-w', '-t', str(START_TIMEOUT), 'start'],
                           check=False, timeout=START_TIMEOUT + 30,
                           env=self.env)
            if proc.returncode == 0:
                break
            if (attempt + 1 < attempts
                    and 'already in use' in self.log_tail(20)):
                self.port = free_port()
                self._write_conf()
                continue
            raise RuntimeError('could not start %s (port %d):\n%s\n'
                               '--- log ---\n%s'
                               % (self.name, self.port, proc.stdout,
                                  self.log_tail(30)))
        self._started_once = True
        with _lock:
            _live_nodes.add(self)

    def stop(self, mode='immediate'):
        """Stop the server by data directory (immediate: like a crash)."""
        self.disconnect()
        if os.path.exists(os.path.join(self.datadir, 'postmaster.pid')):
            _run_pg([os.path.join(pg_bindir(), 'pg_ctl'), '-D', self.datadir,
                     '-m', mode, '-w', '-t', str(START_TIMEOUT), 'stop'],
                    check=False, timeout=START_TIMEOUT + 30)
        with _lock:
            _live_nodes.discard(self)

    def restart(self, mode='fast'):
        self.stop(mode)
        self.start()

    def postmaster_pid(self):
        """The pid in the data directory's postmaster.pid."""
        with open(os.path.join(self.datadir, 'postmaster.pid')) as f:
            return int(f.readline())

    def server_pids(self):
        """The postmaster and its children (backends, workers)."""
        pid = self.postmaster_pid()
        out = subprocess.run(['ps', '-o', 'pid=', '--ppid', str(pid)],
                             capture_output=True, text=True).stdout
        return [pid] + [int(p) for p in out.split()]

    def is_running(self):
        proc = _run_pg([os.path.join(pg_bindir(), 'pg_ctl'), '-D',
                        self.datadir, 'status'], check=False)
        return proc.returncode == 0

    def connect(self, timeout=30.0):
        """A new connection of the caller's own."""
        return Conn(self.connstr, timeout)

    def disconnect(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _shared(self, method, query, args, timeout):
        """Run a Conn method over this node's shared connection.

        A broken connection is dropped, so the next call reconnects (e.g.
        after the node was restarted).
        """
        if self._conn is None or self._conn.closed:
            self._conn = self.connect(min(timeout, 30.0))
        try:
            return getattr(self._conn, method)(query, args, timeout)
        except (psycopg2.OperationalError, psycopg2.InterfaceError,
                SqlTimeout):
            self.disconnect()
            raise

    def sql(self, query, args=None, timeout=DEFAULT_QUERY_TIMEOUT):
        """Run one statement; return its rows (a list of tuples) or None."""
        return self._shared('sql', query, args, timeout)

    def scalar(self, query, args=None, timeout=DEFAULT_QUERY_TIMEOUT):
        """The first column of the first row, or None if there is no row."""
        return self._shared('scalar', query, args, timeout)

    def records(self, query, args=None, timeout=DEFAULT_QUERY_TIMEOUT):
        """The rows as dicts keyed by column name."""
        return self._shared('records', query, args, timeout)

    def log_tail(self, lines=50):
        try:
            with open(self.logfile, errors='replace') as f:
                return ''.join(f.readlines()[-lines:])
        except OSError:
            return ''

    def leadership_log(self):
        """The log lines about who leads (with their DETAIL lines): under a
        workload they are buried far above the tail."""
        out, keep = [], False
        try:
            with open(self.logfile, errors='replace') as f:
                for line in f:
                    if LEADERSHIP_LINE.search(line):
                        out.append(line)
                        keep = True
                    elif keep and 'DETAIL:' in line:
                        out.append(line)
                    else:
                        keep = False
        except OSError:
            pass
        return ''.join(out)


LEADERSHIP_LINE = re.compile(r'leads now|election failed|is heard from again|'
                             r'no longer waits for member')


# ---------------------------------------------------------------------------
# Clusters
# ---------------------------------------------------------------------------

class StartedInWith:
    """`with X(...) as x:` starts x and destroys it on the way out (also
    when starting fails half-way); for classes with start() and destroy()."""

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.destroy()
            raise

    def __exit__(self, *exc):
        self.destroy()


def setting_arg(text):
    """argparse type of a NAME=VALUE server setting (the benchmarks'
    options): returns (name, value)."""
    name, eq, value = text.partition('=')
    if not eq or not name.strip():
        raise argparse.ArgumentTypeError('wants NAME=VALUE, not %r' % text)
    return name.strip(), value.strip()


class Cluster(StartedInWith):
    """N nodes started together; destroy() stops them and removes the files.

    settings: extra postgresql.conf settings for every node.
    preload: shared_preload_libraries ('' to run without pg_paxos).
    create_extension: run CREATE EXTENSION pg_paxos on every node.
    """

    def __init__(self, n=3, settings=None, preload='pg_paxos',
                 create_extension=True):
        self.basedir = make_tempdir('pgp-cluster-')
        conf = {'shared_preload_libraries': preload}
        conf.update(settings or {})
        self.nodes = [Node(self.basedir, i + 1, conf) for i in range(n)]
        self.create_extension = create_extension

    def __getitem__(self, i):
        return self.nodes[i]

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self):
        return len(self.nodes)

    def start(self):
        """Initialise and start every node (in parallel), create the
        extension on each."""
        for node in self.nodes:
            node.init()
        errors = []

        def start_one(node):
            try:
                node.start()
            except Exception as e:           # reported below
                errors.append(e)

        threads = [threading.Thread(target=start_one, args=(n,))
                   for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        if self.create_extension:
            for node in self.nodes:
                node.sql('CREATE EXTENSION pg_paxos')
        return self

    def form_group(self, group, founder=0):
        """paxos_create_group on the founder, paxos_join_group on the rest."""
        first = self.nodes[founder]
        first.sql('SELECT paxos_create_group(%s, %s)',
                  (group, first.peer_connstr))
        for node in self.nodes:
            if node is not first:
                node.sql('SELECT paxos_join_group(%s, %s, %s)',
                         (group, first.peer_connstr, node.peer_connstr))

    def replicate_tables(self, group, tables, node=0):
        """paxos_replicate_table for each table, on one node only: the call
        goes through the log, so every member starts replicating the table
        at the same round (see checks.wait_replicating)."""
        for table in tables:
            self.nodes[node].sql('SELECT paxos_replicate_table(%s, %s)',
                                 (group, table))

    def destroy(self):
        """Stop every node (immediately, by data directory), remove files."""
        for node in self.nodes:
            try:
                node.stop('immediate')
            except Exception:
                pass
        shutil.rmtree(self.basedir, ignore_errors=True)
        with _lock:
            for node in self.nodes:
                _ports_in_use.discard(node.port)



# ---------------------------------------------------------------------------
# Workload helpers
# ---------------------------------------------------------------------------

def append_loop(connstr, group, proposer_prefix, value_prefix,
                count=None, duration=None, timeout=DEFAULT_QUERY_TIMEOUT):
    """Call paxos_append over one connection of its own, either count times
    or until duration seconds have passed.

    Returns a list of (value, round_num, latency_seconds).  Every call uses a
    unique proposer id and a unique value.  Picklable, so it can run in a
    separate process.
    """
    results = []
    conn = Conn(connstr)
    try:
        end = time.monotonic() + duration if duration is not None else None
        seq = 0
        while True:
            if count is not None and seq >= count:
                break
            if end is not None and time.monotonic() >= end:
                break
            value = '%s/%d' % (value_prefix, seq)
            proposer = '%s/%d/%d' % (proposer_prefix, os.getpid(), seq)
            t0 = time.monotonic()
            round_num = conn.scalar(
                'SELECT paxos_append(%s, %s, %s)', (proposer, group, value),
                timeout=timeout)
            results.append((value, round_num, time.monotonic() - t0))
            seq += 1
    finally:
        conn.close()
    return results


# ---------------------------------------------------------------------------
# Transactions with retry
# ---------------------------------------------------------------------------

# serialization_failure (a COMMIT that loses certification) and
# deadlock_detected (two local transactions locking rows in opposite order)
RETRY_SQLSTATES = ('40001', '40P01')


class TxnResult:
    """What run_transaction did.

    value: what body returned on the attempt that committed.
    aborts: the attempts that failed before, as (attempt, stage, sqlstate,
    message); stage is 'body' (a statement failed) or 'commit'.
    """

    def __init__(self, value, aborts):
        self.value = value
        self.aborts = aborts

    @property
    def attempts(self):
        return len(self.aborts) + 1


class RetriesExhausted(Exception):
    """run_transaction gave up; .aborts lists every failed attempt."""

    def __init__(self, aborts):
        super().__init__('transaction still failing after %d attempts, last: '
                         '%r' % (len(aborts), aborts[-1] if aborts else None))
        self.aborts = aborts


def _rollback_quietly(conn):
    """End whatever transaction conn is in.  After a failed COMMIT there is
    none left and the server only warns."""
    if conn.closed:
        return
    try:
        conn.sql('ROLLBACK', timeout=30)
    except Exception:
        pass


def run_transaction(conn, body, max_attempts=100, deadline=60.0,
                    retry_sqlstates=RETRY_SQLSTATES,
                    timeout=DEFAULT_QUERY_TIMEOUT):
    """BEGIN; body(conn, attempt); COMMIT over conn (a Conn), retrying the
    whole transaction while it fails with a SQLSTATE in retry_sqlstates.

    body runs the transaction's statements with conn.sql() and returns a
    value; it is called again with attempt = 1, 2, ... after each failure,
    so that it may write something else (a new id) the next time.  Any other
    error, a lost connection, a client-side timeout, a COMMIT answered with
    ROLLBACK, more than max_attempts attempts or deadline seconds raise;
    a failed attempt is always rolled back first.  Returns a TxnResult.
    """
    aborts = []
    end = time.monotonic() + deadline
    for attempt in range(max_attempts):
        stage = 'body'
        try:
            conn.sql('BEGIN', timeout=timeout)
            value = body(conn, attempt)
            stage = 'commit'
            tag = conn.command('COMMIT', timeout=timeout)
        except psycopg2.Error as e:
            _rollback_quietly(conn)
            if e.pgcode not in retry_sqlstates:
                raise
            aborts.append((attempt, stage, e.pgcode, str(e).strip()))
            if time.monotonic() > end:
                break
            continue
        except BaseException:
            _rollback_quietly(conn)
            raise
        if tag != 'COMMIT':
            raise AssertionError('COMMIT answered %r: the transaction had '
                                 'failed without an error reaching the client'
                                 % tag)
        return TxnResult(value, aborts)
    raise RetriesExhausted(aborts)


@atexit.register
def _stop_leftovers():
    """Stop nodes a careless caller left running when this process ends."""
    if os.getpid() != _owner_pid:
        return
    for node in list(_live_nodes):
        try:
            node.stop('immediate')
        except Exception:
            pass
    if 'base' in _template:
        shutil.rmtree(_template['base'], ignore_errors=True)


def decided_log(node, group):
    """(round_num, value_id, value) of every round node knows is decided."""
    return node.sql(
        'SELECT round_num, value_id, value FROM pgp_metadata.round '
        'WHERE group_id = %s AND consensus ORDER BY round_num', (group,))


def learn_everywhere(nodes, group):
    """Make every node learn the whole log of group.

    Each node first runs paxos_learn_log up to its own
    paxos_max_group_round; since different majorities may report different
    maxima (a round accepted by a minority only), every node then learns up
    to the highest of them.  Returns that round number.
    """
    maxima = []
    for node in nodes:
        node.sql('SELECT paxos_learn_log(%s, paxos_max_group_round(%s))',
                 (group, group))
        maxima.append(node.scalar('SELECT paxos_max_group_round(%s)',
                                  (group,)))
    top = max(maxima)
    for node in nodes:
        node.sql('SELECT paxos_learn_log(%s, %s)', (group, top))
    return top
