#!/usr/bin/python3
"""
pgbench_bank.py - a pgbench bank workload on plain PostgreSQL, PostgreSQL
streaming replication and pg_paxos table replication, in one run.

The workload (one pgbench script, -M prepared by default):

    \\set aid random(1, 1000)
    UPDATE bank_balance SET balance = balance + 1, updated_at = 12345
     WHERE account_number = :aid;

on bank_balance (account_number int primary key, balance int not null,
created_at bigint, updated_at bigint) with 1,000 rows, run for --duration
seconds with each client count of --clients (default 1 and 8) against:

  (a) one plain PostgreSQL 15 node;
  (b) streaming replication: a primary and two standbys made with
      pg_basebackup -R (application_name s1 and s2),
      synchronous_standby_names = 'ANY 1 (s1, s2)', synchronous_commit = on;
      both standbys must be streaming, and counted for the quorum, before
      anything is measured;
  (c) pg_paxos: 3 nodes in the group 'bank', the table created on every node
      and replicated with paxos_replicate_table('bank', 'bank_balance') on
      node 1, rows loaded through node 1 in one transaction; the clients are
      spread over the three nodes (8 -> 3/3/2, 1 -> node 1 only), one pgbench
      per node, all at once, their TPS summed;
  (l) the same pg_paxos group with every client on the leader's node, as
      (b)'s clients are on its primary: what replication itself costs, without
      followers forwarding their commits and asking the leader before their
      reads.

Every node is a real server started by tests/cluster/pgcluster.py (temporary
directory, free port on 127.0.0.1, fsync on, same settings for all three
systems; pg_paxos is only preloaded in (c)).  pgbench runs with
--max-tries (default 10), so serialization failures and deadlocks are
retried; the retries and the transactions that failed anyway are reported.
After every run the table is checked: the growth of sum(balance) must equal
the number of transactions pgbench counted as processed, on every node of
the system (standbys and Paxos nodes are given time to catch up).

It prints TPS and mean latency for each (system, clients), then the ratios
c/b, l/b and b/a for each client count.

    /usr/bin/python3 bench/pgbench_bank.py [--duration 20] [--clients 1,8]
                                           [--only a,b,c,l] [--max-tries 10]
                                           [--paxos-setting NAME=VALUE ...]
                                           [--cpu] [--rate TPS]

With --cpu it also prints, for every run, where the CPU time goes: CPU
microseconds per transaction by process role (client backends, pg_paxos's
RPC backends and background workers, walsenders, a standby's startup
process, pgbench ...), sampled from /proc over the middle of the run
(bench/cpu_roles.py).  With --rate TPS every run is held to that total
rate (pgbench -R, shared among the nodes as the clients are): CPU per
transaction at the same load is the steadier figure to compare two builds
by (saturated TPS moves by 20% and more between runs on a 2-core machine).

Exit status 0 if every selected system ran and passed its checks.  Every
server it starts is stopped (by data directory) and its files removed when
the script ends, however it ends (errors, ^C, SIGTERM).
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'tests', 'cluster'))

import pgcluster  # noqa: E402
import cpu_roles  # noqa: E402

ROWS = 1000
GROUP = 'bank'
TABLE = 'bank_balance'

PGBENCH_SCRIPT = """\
\\set aid random(1, %d)
UPDATE bank_balance SET balance = balance + 1, updated_at = 12345 \
WHERE account_number = :aid;
""" % ROWS

CREATE_TABLE = ('CREATE TABLE bank_balance ('
                'account_number int PRIMARY KEY, '
                'balance int NOT NULL, '
                'created_at bigint, '
                'updated_at bigint)')

# One statement with literal rows: deterministic whichever way a replicator
# chooses to ship it.
LOAD_ROWS = ('INSERT INTO bank_balance '
             '(account_number, balance, created_at, updated_at) VALUES '
             + ', '.join('(%d, 0, 12345, 12345)' % i
                         for i in range(1, ROWS + 1)))

SYSTEMS = {
    'a': '(a) plain PostgreSQL',
    'b': '(b) streaming repl. ANY 1 (s1, s2)',
    'c': '(c) pg_paxos, 3 nodes',
    'l': '(l) pg_paxos, clients on leader',
}

CATCH_UP_TIMEOUT = 60.0


class BenchError(Exception):
    """A system could not be set up or measured; the message says why."""


# ---------------------------------------------------------------------------
# pgbench
# ---------------------------------------------------------------------------

_running = []            # pgbench processes started and not yet reaped


def _kill_running():
    """Stop the pgbench processes this script started (by their pid)."""
    for proc in list(_running):
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _running.remove(proc)


PATTERNS = {
    'processed': r'number of transactions actually processed: (\d+)',
    'failed': r'number of failed transactions: (\d+)',
    'serialization': r'number of serialization failures: (\d+)',
    'deadlock': r'number of deadlock failures: (\d+)',
    'retried': r'number of transactions retried: (\d+)',
    'retries': r'total number of retries: (\d+)',
    'latency': r'latency average = ([\d.]+) ms',
    'tps': r'tps = ([\d.]+) \(without initial connection time\)',
}


def parse_pgbench(text):
    """The numbers of a pgbench report; a missing line gives 0 (the retry
    lines, for instance, are printed only when --max-tries is not 1)."""
    res = {}
    for key, pattern in PATTERNS.items():
        m = re.search(pattern, text)
        val = m.group(1) if m else '0'
        res[key] = float(val) if key in ('latency', 'tps') else int(val)
    res['has_report'] = bool(re.search(PATTERNS['tps'], text))
    return res


def error_summary(stderr, limit=8):
    """The distinct lines of pgbench's stderr in order of first appearance,
    each with how often it came (client and round numbers, ports and the
    like do not make lines distinct)."""
    first, counts = {}, {}
    for line in stderr.splitlines():
        line = line.strip()
        if not line:
            continue
        key = re.sub(r'\d+', 'N', line)
        if key not in first:
            first[key] = line
        counts[key] = counts.get(key, 0) + 1
    lines = ['%dx %s' % (counts[k], first[k][:300]) for k in first]
    if len(lines) > limit:
        lines = lines[:limit] + ['... %d more distinct lines'
                                 % (len(lines) - limit)]
    return lines


def run_pgbench(workdir, targets, duration, opts, sampler=None):
    """Run one pgbench per (node, clients) in targets, all at once; return
    the summed result.  Raises BenchError if pgbench could not run.  A
    sampler (cpu_roles.CpuSampler) samples the middle of the run: from a
    fifth of it, when the clients have connected, to four fifths, before
    they disconnect."""
    script = os.path.join(workdir, 'bank.sql')
    with open(script, 'w') as f:
        f.write(PGBENCH_SCRIPT)
    pgbench = os.path.join(pgcluster.pg_bindir(), 'pgbench')
    env = dict(os.environ, PGAPPNAME='pgbench_bank', PGCONNECT_TIMEOUT='30')
    for var in ('PGSERVICE', 'PGOPTIONS', 'PGPASSWORD', 'PGSSLMODE'):
        env.pop(var, None)
    cpus = os.cpu_count() or 1
    total_clients = sum(clients for _, clients in targets)
    procs = []
    try:
        for i, (node, clients) in enumerate(targets):
            out = open(os.path.join(workdir, 'pgbench%d.out' % i), 'w+')
            err = open(os.path.join(workdir, 'pgbench%d.err' % i), 'w+')
            cmd = [pgbench, '-n', '-h', '127.0.0.1', '-p', str(node.port),
                   '-U', 'postgres', '-M', opts.mode,
                   '-c', str(clients), '-j', str(min(clients, cpus)),
                   '-T', str(duration), '--max-tries', str(opts.max_tries),
                   '--failures-detailed', '-f', script, 'postgres']
            if opts.rate:
                # the total rate, shared as the clients are
                cmd[1:1] = ['-R', '%.1f' % (opts.rate * clients / total_clients)]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, env=env)
            _running.append(proc)
            procs.append((node, clients, proc, out, err))
        if sampler is not None:
            time.sleep(duration / 5.0)
            sampler.start([p.pid for _, _, p, _, _ in procs])
            time.sleep(duration * 3 / 5.0)
            sampler.stop()
        deadline = time.monotonic() + duration + 120
        for node, clients, proc, out, err in procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise BenchError('pgbench on %s did not finish within %d s '
                                 'of its %d s run (a transaction hangs?)'
                                 % (node.name, 120, duration))
        parts = []
        for node, clients, proc, out, err in procs:
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
            res = parse_pgbench(stdout)
            res.update(node=node.name, clients=clients, rc=proc.returncode,
                       errors=error_summary(stderr))
            if not res['has_report']:
                raise BenchError('pgbench on %s (port %d) failed (exit %d):\n'
                                 '%s%s' % (node.name, node.port,
                                           proc.returncode, stdout[-2000:],
                                           stderr[-2000:]))
            parts.append(res)
    finally:
        for node, clients, proc, out, err in procs:
            out.close()
            err.close()
        _kill_running()
    return combine(parts)


def combine(parts):
    """Sum concurrent pgbench runs: TPS and counts add up, the mean latency
    is weighted by transactions processed."""
    total = {'parts': parts, 'clients': sum(p['clients'] for p in parts)}
    for key in ('processed', 'failed', 'serialization', 'deadlock',
                'retried', 'retries'):
        total[key] = sum(p[key] for p in parts)
    total['tps'] = sum(p['tps'] for p in parts)
    if total['processed']:
        total['latency'] = (sum(p['latency'] * p['processed'] for p in parts)
                            / total['processed'])
    else:
        total['latency'] = float('nan')
    total['aborted'] = [p['node'] for p in parts if p['rc'] != 0]
    return total


def print_result(res):
    print('  TPS              %10.1f' % res['tps'])
    print('  mean latency     %10.3f ms' % res['latency'])
    print('  processed        %10d' % res['processed'])
    print('  failed           %10d  (serialization %d, deadlock %d)'
          % (res['failed'], res['serialization'], res['deadlock']))
    print('  retried          %10d  (%d retries)'
          % (res['retried'], res['retries']))
    if len(res['parts']) > 1:
        for p in res['parts']:
            print('    %-6s %2d clients %9.1f TPS %8.3f ms %8d processed '
                  '%6d failed %6d retried'
                  % (p['node'], p['clients'], p['tps'], p['latency'],
                     p['processed'], p['failed'], p['retried']))
    for p in res['parts']:
        if p['rc'] != 0:
            print('  pgbench on %s exited with %d (clients aborted)'
                  % (p['node'], p['rc']))
        for line in p['errors']:
            print('  %s stderr: %s' % (p['node'], line))


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def balance_sum(node):
    return node.scalar('SELECT coalesce(sum(balance), 0)::bigint '
                       'FROM bank_balance')


def wait_for(what, func, timeout=CATCH_UP_TIMEOUT, interval=0.2):
    """Call func until it returns a true value; return that value, or raise
    BenchError after timeout (the last exception, if any, is mentioned)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            val = func()
            if val:
                return val
        except Exception as e:          # reported if it never works
            last_exc = e
        if time.monotonic() >= deadline:
            raise BenchError('%s: not reached within %.0f s%s'
                             % (what, timeout,
                                ' (last error: %s)' % last_exc
                                if last_exc else ''))
        time.sleep(interval)


def check_sums(nodes, expected):
    """Every node's sum(balance) reaches expected (replicas may lag)."""
    seen = {}

    def all_equal():
        for node in nodes:
            seen[node.name] = balance_sum(node)
        return all(v == expected for v in seen.values())

    try:
        wait_for('sum(balance) = %d on %s'
                 % (expected, ', '.join(n.name for n in nodes)), all_equal)
    except BenchError as e:
        raise BenchError('%s; seen: %s' % (e, ', '.join(
            '%s=%s' % kv for kv in sorted(seen.items()))))
    print('  check            sum(balance) = %d on %s (= processed)'
          % (expected, ', '.join(n.name for n in nodes)))


# ---------------------------------------------------------------------------
# The three systems
# ---------------------------------------------------------------------------

class System:
    """A started set of nodes, where pgbench connects (clients per node),
    and which nodes must agree on the table afterwards."""

    def __init__(self, key, cluster):
        self.key = key
        self.title = SYSTEMS[key]
        self.cluster = cluster
        self.check_nodes = list(cluster.nodes)

    def targets(self, clients):
        return [(self.cluster[0], clients)]

    def prepare(self):
        """Before each measurement: vacuum the table, checkpoint."""
        for node in self.cluster:
            try:
                if node is self.cluster[0] or self.key in ('c', 'l'):
                    node.sql('VACUUM bank_balance')
                node.sql('CHECKPOINT')
            except Exception as e:      # only makes runs comparable
                print('  warning: VACUUM/CHECKPOINT on %s: %s'
                      % (node.name, e))


class PaxosSystem(System):

    def targets(self, clients):
        nodes = self.cluster.nodes
        share = [clients // len(nodes) + (1 if i < clients % len(nodes)
                                          else 0)
                 for i in range(len(nodes))]
        return [(n, c) for n, c in zip(nodes, share) if c > 0]


class PaxosLeaderSystem(System):

    def targets(self, clients):
        return [(leader_node(self.cluster), clients)]


def leader_node(cluster):
    """The node every node names as the group's leader."""
    def agreed():
        names = {n.scalar('SELECT leader_id FROM paxos_node_status() '
                          'WHERE group_id = %s', (GROUP,)) for n in cluster}
        return len(names) == 1 and None not in names and names.pop()
    name = wait_for('an agreed leader', agreed)
    return [n for n in cluster if n.name == name][0]


def start_a(cluster_holder):
    cluster = pgcluster.Cluster(1, preload='', create_extension=False)
    cluster_holder.append(cluster)
    cluster.start()
    node = cluster[0]
    node.sql(CREATE_TABLE)
    node.sql(LOAD_ROWS)
    return System('a', cluster)


def start_b(cluster_holder):
    """A primary and two standbys cloned with pg_basebackup -R."""
    cluster = pgcluster.Cluster(3, preload='', create_extension=False)
    cluster_holder.append(cluster)
    primary, standbys = cluster[0], cluster.nodes[1:]
    primary.settings = dict(primary.settings,
                            synchronous_standby_names='ANY 1 (s1, s2)',
                            synchronous_commit='on',
                            wal_level='replica',
                            max_wal_senders=10)
    primary.init()
    primary.start()
    primary.name = 'primary'

    bindir = pgcluster.pg_bindir()
    for i, node in enumerate(standbys, 1):
        app = 's%d' % i
        node.name = app
        os.mkdir(node.dir)
        os.chmod(node.dir, 0o755)
        pgcluster._chown_postgres(node.dir)
        pgcluster._run_pg(
            [os.path.join(bindir, 'pg_basebackup'),
             '-D', node.datadir, '-R', '-X', 'stream', '-c', 'fast',
             '-d', 'host=127.0.0.1 port=%d user=postgres application_name=%s'
             % (primary.port, app)], timeout=300)
        auto = open(os.path.join(node.datadir, 'postgresql.auto.conf')).read()
        if 'application_name=%s' % app not in auto:
            raise BenchError('pg_basebackup -R wrote no application_name=%s '
                             'into primary_conninfo:\n%s' % (app, auto))
        if not os.path.exists(os.path.join(node.datadir, 'standby.signal')):
            raise BenchError('pg_basebackup -R made no standby.signal')
        # The copy has the primary's port and socket directory: our own.
        node.port = pgcluster.free_port()
        node._write_conf()
        node.start()

    def replication_ready():
        rows = primary.records(
            'SELECT application_name, state, sync_state '
            'FROM pg_stat_replication ORDER BY application_name')
        # With ANY n (...) every listed standby that streams is a
        # candidate, shown as sync_state 'quorum' (not 'sync'); a standby
        # that has just connected shows 'async' for a moment.
        voters = {r['application_name'] for r in rows
                  if r['state'] == 'streaming'
                  and r['sync_state'] in ('sync', 'quorum')}
        return rows if voters >= {'s1', 's2'} else None

    rows = wait_for('both standbys streaming and counted for the sync '
                    'quorum (pg_stat_replication)', replication_ready)
    for r in rows:
        print('  pg_stat_replication: %-3s state=%s sync_state=%s'
              % (r['application_name'], r['state'], r['sync_state']))
    settings = dict(primary.sql(
        "SELECT name, setting FROM pg_settings WHERE name IN "
        "('synchronous_standby_names', 'synchronous_commit', 'fsync')"))
    print('  primary: %s' % ', '.join('%s=%s' % kv
                                      for kv in sorted(settings.items())))
    if (settings.get('synchronous_commit') != 'on'
            or settings.get('synchronous_standby_names') != 'ANY 1 (s1, s2)'
            or settings.get('fsync') != 'on'):
        raise BenchError('primary settings are not as intended: %r'
                         % settings)

    primary.sql(CREATE_TABLE)
    primary.sql(LOAD_ROWS)             # waits for a standby: sync works
    return System('b', cluster)


# --paxos-setting NAME=VALUE: server settings of the pg_paxos nodes only
PAXOS_SETTINGS = {}


def start_c(cluster_holder):
    cluster = pgcluster.Cluster(3, dict(PAXOS_SETTINGS))
    cluster_holder.append(cluster)
    cluster.start()
    found = cluster[0].scalar("SELECT count(*) FROM pg_proc "
                              "WHERE proname = 'paxos_replicate_table'")
    if not found:
        version = cluster[0].scalar("SELECT extversion FROM pg_extension "
                                    "WHERE extname = 'pg_paxos'")
        raise BenchError(
            'the installed pg_paxos (version %s, in the PostgreSQL of %s) '
            'has no '
            'paxos_replicate_table(), which (c) needs.  Table replication '
            'is not in the extension yet; once it is, install it '
            '(make -C extension install, or make bench-bank, which '
            'installs first) and run again, e.g. with --only c.'
            % (version, pgcluster._pg_config()))
    cluster.form_group(GROUP)
    for node in cluster:
        node.sql(CREATE_TABLE)
    cluster[0].sql('SELECT paxos_replicate_table(%s, %s)', (GROUP, TABLE))
    cluster[0].sql(LOAD_ROWS)

    def loaded():
        return all(n.scalar('SELECT count(*) FROM bank_balance') == ROWS
                   for n in cluster)

    wait_for('%d rows on every node' % ROWS, loaded)
    return PaxosSystem('c', cluster)


def start_l(cluster_holder):
    system = start_c(cluster_holder)
    return PaxosLeaderSystem('l', system.cluster)


STARTERS = {'a': start_a, 'b': start_b, 'c': start_c, 'l': start_l}


def bench_system(key, opts, workdir):
    """Start system key, measure every client count, stop it.  Returns
    {clients: result}; raises BenchError if the system could not run."""
    print('\n== %s' % SYSTEMS[key])
    holder = []
    results = {}
    try:
        system = STARTERS[key](holder)
        print('  nodes: %s' % ', '.join('%s:%d' % (n.name, n.port)
                                        for n in system.cluster))
        for clients in opts.clients:
            system.prepare()
            before = balance_sum(system.cluster[0])
            targets = system.targets(clients)
            print('\n%s, %d client%s (%s), %d s'
                  % (SYSTEMS[key], clients, '' if clients == 1 else 's',
                     ', '.join('%d on %s' % (c, n.name) for n, c in targets),
                     opts.duration))
            sampler = None
            if opts.cpu:
                sampler = cpu_roles.CpuSampler(
                    system.cluster.nodes, 'pgbench_bank',
                    lambda: balance_sum(system.cluster[0]))
            res = run_pgbench(workdir, targets, opts.duration, opts, sampler)
            print_result(res)
            if sampler is not None:
                print('\n'.join(sampler.report()))
            res['check_error'] = None
            if res['aborted']:
                # a transaction in flight may have committed uncounted
                print('  check            skipped: pgbench clients aborted')
            else:
                try:
                    check_sums(system.check_nodes,
                               before + res['processed'])
                except BenchError as e:
                    res['check_error'] = str(e)
                    print('  CHECK FAILED     %s' % e)
            results[clients] = res
    except BenchError as e:
        print('  ERROR: %s' % e)
        results['error'] = str(e)
    except Exception as e:
        print('  ERROR: %s: %s' % (type(e).__name__, e))
        for cluster in holder:
            for node in cluster:
                tail = node.log_tail(15)
                if tail:
                    print('  --- %s log (last lines) ---\n%s'
                          % (node.name, tail))
        results['error'] = '%s: %s' % (type(e).__name__, e)
    finally:
        _kill_running()
        for cluster in holder:
            cluster.destroy()
    return results


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_list(text, allowed=None, conv=str):
    items = [conv(x.strip()) for x in text.split(',') if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError('empty list')
    if allowed is not None:
        bad = [x for x in items if x not in allowed]
        if bad:
            raise argparse.ArgumentTypeError('unknown: %s' % ', '.join(bad))
    return items


def client_list(text):
    try:
        items = parse_list(text, conv=int)
    except ValueError:
        raise argparse.ArgumentTypeError('not a list of integers: %r' % text)
    if any(c < 1 for c in items):
        raise argparse.ArgumentTypeError('client counts must be >= 1')
    return items


def ok(res):
    return (res and 'error' not in res and
            all(not r['check_error'] and not r['aborted']
                for r in res.values()))


def main():
    parser = argparse.ArgumentParser(
        description='pgbench bank workload on plain PostgreSQL (a), '
                    'streaming replication (b) and pg_paxos (c).')
    parser.add_argument('--duration', type=int, default=20,
                        help='seconds per run (default 20)')
    parser.add_argument('--clients', type=client_list, default=[1, 8],
                        help='client counts, comma-separated (default 1,8)')
    parser.add_argument('--only', type=lambda s: parse_list(s, SYSTEMS),
                        default=['a', 'b', 'c', 'l'],
                        help='systems to run, of a,b,c,l (default all)')
    parser.add_argument('--max-tries', type=int, default=10,
                        help="pgbench --max-tries (default 10)")
    parser.add_argument('--mode', default='prepared',
                        choices=('simple', 'extended', 'prepared'),
                        help='pgbench -M (default prepared)')
    parser.add_argument('--cpu', action='store_true',
                        help='also print CPU time per transaction by '
                             'process role (bench/cpu_roles.py)')
    parser.add_argument('--rate', type=float, default=None, metavar='TPS',
                        help='run every system at this total rate (pgbench -R) '
                             'instead of as fast as it goes: with --cpu, CPU '
                             'per transaction at the same load, which varies '
                             'much less from run to run than TPS')
    parser.add_argument('--paxos-setting', action='append', default=[],
                        metavar='NAME=VALUE', type=pgcluster.setting_arg,
                        help='a server setting of the pg_paxos nodes (c), '
                             'e.g. pg_paxos.point_writes=optimistic; repeatable')
    opts = parser.parse_args()
    if opts.duration < 1:
        parser.error('--duration must be at least 1')
    if opts.rate is not None and opts.rate <= 0:
        parser.error('--rate must be a positive number of transactions per second')
    PAXOS_SETTINGS.update(opts.paxos_setting)

    # SIGTERM becomes SystemExit, so that every finally clause runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = tempfile.mkdtemp(prefix='pgp-bank-')
    results = {}
    try:
        print('pgbench bank workload: %d rows, %d s per run, clients %s, '
              '-M %s, --max-tries %d, fsync on%s'
              % (ROWS, opts.duration, ','.join(map(str, opts.clients)),
                 opts.mode, opts.max_tries,
                 ', held to %g TPS' % opts.rate if opts.rate else ''))
        if PAXOS_SETTINGS:
            print('pg_paxos nodes also set: %s' % ', '.join(
                '%s=%s' % kv for kv in sorted(PAXOS_SETTINGS.items())))
        for key in 'abcl':
            if key in opts.only:
                results[key] = bench_system(key, opts, workdir)
    except KeyboardInterrupt:
        print('\ninterrupted; servers stopped')
        return 130
    finally:
        _kill_running()
        shutil.rmtree(workdir, ignore_errors=True)

    print('\n== summary (%d s per run)' % opts.duration)
    print('  %-36s %7s %10s %10s %9s %8s %8s'
          % ('system', 'clients', 'TPS', 'latency ms', 'processed', 'failed',
             'retried'))
    for key, res in results.items():
        for clients in opts.clients:
            r = res.get(clients)
            if r is None:
                continue
            flag = ''
            if r['check_error']:
                flag += '  CHECK FAILED'
            if r['aborted']:
                flag += '  ABORTED CLIENTS'
            print('  %-36s %7d %10.1f %10.3f %9d %8d %8d%s'
                  % (SYSTEMS[key], clients, r['tps'], r['latency'],
                     r['processed'], r['failed'], r['retried'], flag))
        if 'error' in res:
            print('  %-36s   ERROR: %s'
                  % (SYSTEMS[key], res['error'].splitlines()[0][:200]))

    def tps(key, clients):
        r = results.get(key, {}).get(clients)
        return r['tps'] if r and r['tps'] > 0 else None

    print('\n== ratios (TPS)')
    for num, den in (('c', 'b'), ('l', 'b'), ('b', 'a')):
        if num not in opts.only or den not in opts.only:
            continue
        for clients in opts.clients:
            x, y = tps(num, clients), tps(den, clients)
            label = '%s/%s, %d client%s' % (num, den, clients,
                                            '' if clients == 1 else 's')
            if x and y:
                print('  %-20s %8.3f  (%.1f / %.1f)' % (label, x / y, x, y))
            else:
                print('  %-20s      n/a' % label)
    return 0 if all(ok(res) for res in results.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
