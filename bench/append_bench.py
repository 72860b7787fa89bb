#!/usr/bin/python3
"""
append_bench.py - throughput and latency of paxos_append on a local cluster.

Starts its own cluster of real PostgreSQL 15 nodes (tests/cluster/pgcluster.py:
temporary directories, free ports, fsync on), forms one group, then calls
paxos_append as fast as it can for a fixed time in two scenarios:

  1. one client on node 1;
  2. one client on every node, all at once.

Each client is a separate process with its own connection.  For each scenario
it prints appends per second, mean and p99 latency, and for the concurrent one
the number of appends each node's client completed and the max/min ratio of
those counts (1.0 = every node got an equal share of the log).

With --reference-sql, the same scenarios also run, in the same run, on a
second cluster running the original PL/pgSQL pg_paxos over dblink: give the
path of its sql/pg_paxos.sql (from citusdata/pg_paxos; it is not part of
this repository).  Its one C function (paxos_execute, for table
replication) is left out; paxos_append does not use it.  The script then
prints our/reference ratios.

    /usr/bin/python3 bench/append_bench.py [--duration 10] [--nodes 3]
                                           [--reference-sql PATH]
                                           [--setting NAME=VALUE ...]

--setting runs our cluster with other server settings (say fsync=off, to
see what the WAL flushes cost).

The cluster is stopped and removed when the script ends, however it ends.
"""

import argparse
import math
import multiprocessing
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'tests', 'cluster'))

import pgcluster  # noqa: E402

GROUP = 'bench'


def client_init():
    """Signals in a client process: ^C is for the parent, which cleans up;
    SIGTERM (from Pool.terminate) must simply end the process, not run the
    parent's handler inherited through fork()."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def client(args):
    """Body of one client process: wait for the common start time, then
    append until the duration is over.  Returns (latencies, error)."""
    connstr, name, start_at, duration = args
    conn = pgcluster.Conn(connstr)
    conn.close()                       # connect once early to fail fast
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    try:
        res = pgcluster.append_loop(connstr, GROUP, 'bench-' + name,
                                    'bench-%s-%d' % (name, os.getpid()),
                                    duration=duration, timeout=60)
        return [lat for _, _, lat in res], None
    except Exception as e:             # reported by the parent
        return [], '%s: %s' % (name, e)


def percentile(values, p):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    k = max(0, math.ceil(p / 100.0 * len(ordered)) - 1)
    return ordered[k]


def load_reference(cluster, path):
    """Install the original pg_paxos (PL/pgSQL over dblink) on every node,
    without its C function, and form the group with its own functions."""
    sql = open(path).read()
    start = sql.find('CREATE FUNCTION paxos_execute(')
    if start >= 0:
        end = sql.index('$$paxos_execute$$;', start) + len('$$paxos_execute$$;')
        sql = sql[:start] + sql[end:]
    for node in cluster:
        node.sql('CREATE EXTENSION dblink')
        node.sql(sql)
    cluster.form_group(GROUP)


def run_scenario(title, nodes, duration):
    """Run one client per node in nodes concurrently; print the results and
    return (appends per second, max/min share) or None if nothing worked."""
    for node in nodes:
        node.disconnect()              # no shared sockets across fork()
    start_at = time.time() + 1.0
    jobs = [(n.connstr, n.name, start_at, duration) for n in nodes]
    pool = multiprocessing.get_context('fork').Pool(len(jobs),
                                                    initializer=client_init)
    try:
        results = pool.map(client, jobs)
        pool.close()
    finally:
        pool.terminate()
        pool.join()

    print('\n%s (%d client%s, %.0f s)'
          % (title, len(jobs), '' if len(jobs) == 1 else 's', duration))
    errors = [err for _, err in results if err]
    for err in errors:
        print('  error: %s' % err)
    latencies = [lat for lats, _ in results for lat in lats]
    if not latencies:
        print('  no append succeeded')
        return None
    print('  appends/s      %10.1f' % (len(latencies) / duration))
    print('  mean latency   %10.2f ms' % (statistics.mean(latencies) * 1000))
    print('  p99 latency    %10.2f ms' % (percentile(latencies, 99) * 1000))
    if len(nodes) > 1:
        counts = [len(lats) for lats, _ in results]
        for node, count in zip(nodes, counts):
            print('  %-6s %6d appends  %5.1f%%'
                  % (node.name, count, 100.0 * count / len(latencies)))
        if min(counts) > 0:
            print('  share max/min  %10.2f' % (max(counts) / min(counts)))
        else:
            print('  share max/min        inf (a node completed nothing)')
    if errors:
        return None
    return len(latencies) / duration


def run_all(label, cluster, duration):
    """Both scenarios on one cluster; returns their appends per second."""
    print('\n== %s: %s' % (label, ', '.join('%s:%d' % (n.name, n.port)
                                             for n in cluster)))
    single = run_scenario('1. one client on node1', cluster.nodes[:1],
                          duration)
    concurrent = run_scenario('2. one client per node, concurrently',
                              cluster.nodes, duration)
    return single, concurrent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--duration', type=float, default=10.0,
                        help='seconds per scenario (default 10)')
    parser.add_argument('--nodes', type=int, default=3,
                        help='cluster size (default 3)')
    parser.add_argument('--setting', metavar='NAME=VALUE', action='append',
                        default=[], type=pgcluster.setting_arg,
                        help='a server setting of every node of our cluster '
                        '(repeatable)')
    parser.add_argument('--reference-sql', metavar='PATH',
                        help="the original pg_paxos's sql/pg_paxos.sql, to "
                             'run side by side')
    opts = parser.parse_args()

    # Turn SIGTERM into an exception so that the clusters are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    settings = dict(opts.setting)
    print('starting %d nodes ...%s' % (opts.nodes, ''.join(
        ' %s=%s' % kv for kv in settings.items())))
    cluster = pgcluster.Cluster(opts.nodes, settings=settings)
    try:
        cluster.start()
        cluster.form_group(GROUP)
        ours = run_all('pg_paxos (this repository)', cluster, opts.duration)
    finally:
        cluster.destroy()

    ref = None
    if opts.reference_sql:
        cluster = pgcluster.Cluster(opts.nodes, preload='',
                                    create_extension=False)
        try:
            cluster.start()
            load_reference(cluster, opts.reference_sql)
            ref = run_all('reference: original pg_paxos (PL/pgSQL, dblink)',
                          cluster, opts.duration)
        finally:
            cluster.destroy()
        print('\n== ours / reference')
        for name, a, b in zip(('1 client', 'client per node'), ours, ref):
            if a and b:
                print('  %-16s %8.1fx  (%.1f vs %.1f appends/s)'
                      % (name, a / b, a, b))
            else:
                print('  %-16s      n/a' % name)
    ok = all(ours) and (ref is None or all(ref))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
