#!/usr/bin/python3
"""
acceptor_bench.py - what the acceptor's SQL functions cost inside the server.

Starts a one-node cluster (tests/cluster/pgcluster.py: temporary directory,
free port), creates a group, and times, in PL/pgSQL loops that run inside
the server (no client round trips, one transaction per loop):

  - accept:        paxos_request_accept of a fresh round with a value of
                   --value-bytes (1,500: a batch of a few bank transfers;
                   random text, so that compression does not make it
                   small), learning the previous round and promising the
                   next, as a proposer that appends round by round sends
                   it;
  - accept, standing: the same under a standing promise (taken once,
                   paxos_request_standing_prepare), promising nothing
                   ahead, as a leader's batcher sends it every round;
  - decided:       paxos_decided_rounds of one round, as a catching-up
                   node asks;
  - max accepted:  paxos_max_accepted_round, a strong read's question.

It prints microseconds per call, the best of --reps repetitions (the
others run on a machine that is doing other things too), and the WAL bytes
each accept wrote.  With --against PG_CONFIG, the same loops run
alternately on a cluster of the PostgreSQL that pg_config names (another
build of pg_paxos installed there), each repetition on a fresh cluster in
a process of its own, and the script prints this build's numbers over
that one's.

    /usr/bin/python3 bench/acceptor_bench.py [--calls 5000] [--reps 3]
                                             [--value-bytes 1500]
                                             [--against PG_CONFIG]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'tests', 'cluster'))
import pgcluster  # noqa: E402

LOOPS = {
    'accept': "DO $$ DECLARE v text := {value}; BEGIN FOR i IN {first}..{last} LOOP "
              "PERFORM paxos_request_accept('bench/p', 'bench', i, 1, "
              "'v' || i, v, i - 1, 1, true); END LOOP; END $$",
    'decided': "DO $$ BEGIN FOR i IN {first}..{last} LOOP "
               "PERFORM * FROM paxos_decided_rounds('bench', i, i); "
               "END LOOP; END $$",
    'max accepted': "DO $$ BEGIN FOR i IN {first}..{last} LOOP "
                    "PERFORM paxos_max_accepted_round('bench'); "
                    "END LOOP; END $$",
    'accept, standing': "DO $$ DECLARE v text := {value}; BEGIN "
                        "PERFORM paxos_request_standing_prepare('bench/s', 'bench', {first}, 1); "
                        "FOR i IN {first}..{last} LOOP "
                        "PERFORM paxos_request_accept('bench/s', 'bench', i, 1, "
                        "'v' || i, v, i - 1, 1, false); END LOOP; END $$",
}


def start(holder):
    """A one-node cluster of the PostgreSQL that PG_CONFIG names (pgcluster
    reads it once per process: each build runs in a process of its own)."""
    cluster = pgcluster.Cluster(1)
    holder.append(cluster)
    cluster.start()
    node = cluster[0]
    node.sql("SELECT paxos_create_group('bench', %s)", (node.connstr,))
    return node


def measure(node, rep, calls, value_bytes):
    """Microseconds per call of each loop; rounds are fresh every rep."""
    value = ("(SELECT string_agg(md5(g::text), '') FROM generate_series(1, %d) g)"
             % (value_bytes // 32 + 1))
    result = {}
    for n, (name, loop) in enumerate(LOOPS.items()):
        # each accept loop on rounds of its own; the others read the first's
        first = 10000000 * (rep + 1) + (2 * calls * n if name.startswith('accept') else 0)
        sql = loop.replace('{value}', value).format(first=first,
                                                    last=first + calls - 1)
        lsn = node.scalar('SELECT pg_current_wal_lsn()::text')
        started = time.perf_counter()
        try:
            node.sql(sql, timeout=600)
        except Exception:              # a build without the function
            result[name] = None
            continue
        result[name] = (time.perf_counter() - started) / calls * 1e6
        if name.startswith('accept'):
            result[name + ' WAL'] = float(node.scalar(
                'SELECT (pg_current_wal_lsn() - %s::pg_lsn) / %s', (lsn, calls)))
    return result


def run_child(opts):
    """--child: one cluster, one repetition, the results as JSON."""
    holder = []
    try:
        node = start(holder)
        print(json.dumps(measure(node, opts.child_rep, opts.calls,
                                 opts.value_bytes)))
    finally:
        for cluster in holder:
            cluster.destroy()


def run_build(opts, rep, pg_config):
    """One repetition on a fresh cluster of a build, in a process of its own."""
    env = dict(os.environ)
    if pg_config:
        env['PG_CONFIG'] = pg_config
    out = subprocess.run([sys.executable, os.path.abspath(__file__), '--child',
                          '--child-rep', str(rep), '--calls', str(opts.calls),
                          '--value-bytes', str(opts.value_bytes)],
                         env=env, check=True, capture_output=True, text=True,
                         timeout=1200).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--calls', type=int, default=5000)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--value-bytes', type=int, default=1500)
    parser.add_argument('--against', metavar='PG_CONFIG',
                        help='pg_config of a PostgreSQL with another pg_paxos build')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--child-rep', type=int, default=0, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if opts.child:
        run_child(opts)
        return

    builds = {'this build': None}
    if opts.against:
        builds['against'] = opts.against
    best = {b: {} for b in builds}
    for rep in range(opts.reps):
        # the build that runs first in a repetition is a little slower: take turns
        order = list(builds.items())
        for build, pg_config in (order if rep % 2 == 0 else order[::-1]):
            for name, us in run_build(opts, rep, pg_config).items():
                if us is not None:
                    best[build][name] = min(us, best[build].get(name, us))
    print('acceptor functions, %d calls per loop, best of %d, us per call'
          ' (values of %d bytes); accept WAL: bytes per call'
          % (opts.calls, opts.reps, opts.value_bytes))
    names = list(LOOPS) + [n + ' WAL' for n in LOOPS if n.startswith('accept')]
    for name in names:
        line = '  %-20s' % name + ''.join(
            '  %s %9s' % (b, '%.1f' % best[b][name] if name in best[b] else 'n/a')
            for b in builds)
        if opts.against and name in best['this build'] and name in best['against']:
            line += '  ratio %.2f' % (best['this build'][name]
                                      / best['against'][name])
        print(line)


if __name__ == '__main__':
    main()
