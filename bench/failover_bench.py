#!/usr/bin/python3
"""
failover_bench.py - how long writes stop when the leader dies.

Starts a 3-node pg_paxos group replicating a bank_balance table, then, N
times (default 20): finds the leader, starts a writer on each surviving
node (autocommit UPDATEs of a replicated row, as fast as they go), kills
the leader's postmaster with SIGKILL, and measures the time from the kill
to the first write that commits on a surviving node, and to the moment
both survivors agree on a new leader.  The killed node is started again
and catches up before the next round.  Prints every round, then median
and max.

    /usr/bin/python3 bench/failover_bench.py [--rounds 20]
        [--leader-timeout 500ms]

Runs as root (servers as the postgres user) with the PostgreSQL of
pg_config (PG_CONFIG).  fsync stays on.
"""

import argparse
import os
import signal
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'cluster'))

import pgcluster  # noqa: E402

GROUP = 'bank'


def status(node):
    rows = node.records('SELECT role, leader_id FROM paxos_node_status() '
                        'WHERE group_id = %s', (GROUP,), timeout=5)
    return rows[0] if rows else None


def agreed_leader(nodes, deadline, not_name=None):
    """The name of the leader all nodes agree on (and which says so)."""
    while time.monotonic() < deadline:
        try:
            st = [status(n) for n in nodes]
            names = {s['leader_id'] for s in st if s}
            if len(names) == 1 and all(st):
                name = names.pop()
                if name is not None and name != not_name:
                    return name
        except Exception:
            pass
        time.sleep(0.02)
    raise RuntimeError('no agreed leader')


class Writer(threading.Thread):
    """Autocommit UPDATEs on one node; records when each one committed."""

    def __init__(self, node, account):
        super().__init__(daemon=True)
        self.node, self.account = node, account
        self.commits = []
        self.stop = False

    def run(self):
        conn = None
        while not self.stop:
            try:
                if conn is None or conn.closed:
                    conn = pgcluster.Conn(self.node.connstr, timeout=5)
                conn.sql('UPDATE bank_balance SET balance = balance + 1 '
                         'WHERE account_number = %s', (self.account,),
                         timeout=30)
                self.commits.append(time.monotonic())
            except Exception:
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.005)
        if conn is not None:
            conn.close()


def one_round(cluster):
    leader_name = agreed_leader(list(cluster), time.monotonic() + 30)
    leader = [n for n in cluster if n.name == leader_name][0]
    survivors = [n for n in cluster if n is not leader]
    writers = [Writer(n, 1 + i) for i, n in enumerate(survivors)]
    for w in writers:
        w.start()
    time.sleep(0.5)
    kill_at = time.monotonic()
    os.kill(leader.postmaster_pid(), signal.SIGKILL)
    new_leader = agreed_leader(survivors, kill_at + 30, not_name=leader_name)
    elected = time.monotonic() - kill_at
    deadline = kill_at + 30
    first = None
    while time.monotonic() < deadline and first is None:
        after = [t for w in writers for t in w.commits if t > kill_at]
        first = min(after) - kill_at if after else None
        time.sleep(0.01)
    for w in writers:
        w.stop = True
    for w in writers:
        w.join(timeout=35)

    # the killed node comes back and catches up before the next round
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            os.kill(leader.postmaster_pid(), 0)
        except (OSError, ValueError):
            break
        time.sleep(0.05)
    leader.start()
    agreed_leader(list(cluster), time.monotonic() + 30)
    return first, elected, leader_name, new_leader


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--rounds', type=int, default=20)
    ap.add_argument('--leader-timeout', default='500ms')
    opts = ap.parse_args()

    cluster = pgcluster.Cluster(3, {'pg_paxos.leader_timeout': opts.leader_timeout})
    try:
        cluster.start()
        cluster.form_group(GROUP)
        for n in cluster:
            n.sql('CREATE TABLE bank_balance (account_number int PRIMARY KEY, '
                  'balance int NOT NULL, created_at bigint, updated_at bigint)')
        cluster[0].sql('SELECT paxos_replicate_table(%s, %s)',
                       (GROUP, 'bank_balance'))
        cluster[0].sql('INSERT INTO bank_balance SELECT g, 0, 0, 0 '
                       'FROM generate_series(1, 100) g')
        writes, elections = [], []
        for i in range(opts.rounds):
            first, elected, old, new = one_round(cluster)
            print('round %2d: killed %s; first write after %s; '
                  'new leader %s agreed after %.3f s'
                  % (i + 1, old, '%.3f s' % first if first is not None
                     else 'NONE within 30 s', new, elected), flush=True)
            if first is not None:
                writes.append(first)
            elections.append(elected)
        print()
        print('failover (kill -9 of the leader, %d rounds, leader_timeout %s)'
              % (opts.rounds, opts.leader_timeout))
        if writes:
            print('  first write on a survivor: median %.3f s, max %.3f s '
                  '(%d of %d rounds wrote)'
                  % (statistics.median(writes), max(writes), len(writes),
                     opts.rounds))
        print('  new leader agreed:         median %.3f s, max %.3f s'
              % (statistics.median(elections), max(elections)))
    finally:
        cluster.destroy()


if __name__ == '__main__':
    main()
