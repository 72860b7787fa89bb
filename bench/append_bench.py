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

    /usr/bin/python3 bench/append_bench.py [--duration 10] [--nodes 3]

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


def run_scenario(title, nodes, duration):
    """Run one client per node in nodes concurrently; print the results."""
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
        return False
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
    return not errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--duration', type=float, default=10.0,
                        help='seconds per scenario (default 10)')
    parser.add_argument('--nodes', type=int, default=3,
                        help='cluster size (default 3)')
    opts = parser.parse_args()

    # Turn SIGTERM into an exception so that the cluster is cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    cluster = pgcluster.Cluster(opts.nodes)
    try:
        print('starting %d nodes ...' % opts.nodes)
        cluster.start()
        cluster.form_group(GROUP)
        print('group %r formed: %s'
              % (GROUP, ', '.join('%s:%d' % (n.name, n.port)
                                  for n in cluster)))
        ok = run_scenario('1. one client on node1', cluster.nodes[:1],
                          opts.duration)
        ok = run_scenario('2. one client per node, concurrently',
                          cluster.nodes, opts.duration) and ok
    finally:
        cluster.destroy()
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
