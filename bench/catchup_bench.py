#!/usr/bin/python3
"""
catchup_bench.py - how fast a node that was down applies what it missed.

Starts a 3-node pg_paxos group replicating an `items` table, stops one
node (fast shutdown), and writes through the two others: --rows rows
inserted in transactions of --txn-rows rows, plus, every --update-every
transactions, one transaction that updates --txn-rows rows already there
(a writer on each of the two nodes, so commits also share rounds).  Then
it starts the stopped node again and times until its
pgp_metadata."group".last_applied_round reaches the round the others
decided, and checks that its table equals theirs.  Prints the row changes
and rounds applied per second, and the time to catch up, measured both
from `pg_ctl start` and from the moment the server accepted connections,
and when the node knew every round as decided (learning vs applying).
It also prints the CPU time the node's pg_paxos worker (its applier) used
to catch up, and the row changes it applied per second of that CPU time:
steadier than the wall-clock rate on a shared machine.

    /usr/bin/python3 bench/catchup_bench.py [--rows 200000]
        [--txn-rows 500] [--update-every 4] [--repeat 1]

Runs as root (servers as the postgres user) with the PostgreSQL of
pg_config (PG_CONFIG).  fsync stays on.
"""

import argparse
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'cluster'))

import checks  # noqa: E402
import pgcluster  # noqa: E402

GROUP = 'catchup'
DDL = ('CREATE TABLE items (id bigint PRIMARY KEY, payload text NOT NULL, '
       'version int NOT NULL DEFAULT 0)')
PAYLOAD = "repeat(md5(g::text), 2)"      # 64 bytes a row


def applied_round(node):
    return node.scalar('SELECT last_applied_round FROM pgp_metadata."group" '
                       'WHERE group_id = %s', (GROUP,), timeout=30)


def decided_round(node):
    return node.scalar('SELECT decided_round FROM paxos_node_status() '
                       'WHERE group_id = %s', (GROUP,), timeout=30)


class Writer(threading.Thread):
    """Inserts its share of the rows on one node, txn_rows a transaction,
    and every update_every transactions updates txn_rows existing ones."""

    def __init__(self, node, first_id, count, opts):
        super().__init__(daemon=True)
        self.node, self.first_id, self.count, self.opts = \
            node, first_id, count, opts
        self.inserted = self.updated = self.txns = self.retries = 0
        self.error = None

    def run(self):
        try:
            self._run()
        except Exception as e:          # reported by main
            self.error = e

    def _run(self):
        o = self.opts
        with self.node.connect() as conn:
            next_id = self.first_id
            end = self.first_id + self.count
            while next_id < end:
                last = min(next_id + o.txn_rows, end) - 1

                def insert(c, attempt, lo=next_id, hi=last):
                    c.sql('INSERT INTO items (id, payload) SELECT g, '
                          + PAYLOAD + ' FROM generate_series(%s, %s) g',
                          (lo, hi), timeout=300)
                res = pgcluster.run_transaction(conn, insert, deadline=300,
                                                timeout=300)
                self.retries += res.attempts - 1
                self.inserted += last - next_id + 1
                self.txns += 1
                next_id = last + 1
                if o.update_every and self.txns % o.update_every == 0:
                    lo = max(self.first_id, next_id - 4 * o.txn_rows)
                    hi = min(lo + o.txn_rows, next_id) - 1

                    def update(c, attempt, lo=lo, hi=hi):
                        return c.scalar(
                            'WITH u AS (UPDATE items SET version = version '
                            "+ 1, payload = payload || '+' WHERE id BETWEEN "
                            '%s AND %s RETURNING 1) SELECT count(*) FROM u',
                            (lo, hi), timeout=300)
                    res = pgcluster.run_transaction(conn, update,
                                                    deadline=300, timeout=300)
                    self.retries += res.attempts - 1
                    self.updated += res.value
                    self.txns += 1


def worker_cpu_seconds(node):
    """CPU time (user + system) the node's pg_paxos worker used so far."""
    pid = node.scalar("SELECT pid FROM pg_stat_activity "
                      "WHERE backend_type = 'pg_paxos worker'")
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def one_run(cluster, opts, base_id):
    """Stop the last node, write, start it, time its catch-up."""
    writers_nodes, late = cluster.nodes[:2], cluster.nodes[2]
    checks.wait_tables_identical(cluster.nodes, ['items'], deadline=60)
    applied_before = applied_round(late)
    late.stop('fast')

    t0 = time.monotonic()
    half = opts.rows // 2
    writers = [Writer(writers_nodes[0], base_id, half, opts),
               Writer(writers_nodes[1], base_id + half, opts.rows - half,
                      opts)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    for w in writers:
        if w.error is not None:
            raise RuntimeError('writer on %s failed: %r'
                               % (w.node.name, w.error))
    write_s = time.monotonic() - t0
    changes = sum(w.inserted + w.updated for w in writers)
    txns = sum(w.txns for w in writers)

    # every write is acknowledged: the round the majority decided is final
    target = max(decided_round(n) for n in writers_nodes)
    late_applied = None

    t_start = time.monotonic()
    late.start()
    t_up = time.monotonic()
    deadline = t_start + opts.timeout
    t_learned = None
    while True:
        late_applied = applied_round(late)
        if t_learned is None and decided_round(late) >= target:
            t_learned = time.monotonic()
        if late_applied >= target:
            break
        if time.monotonic() > deadline:
            raise RuntimeError('%s applied round %d of %d after %.0f s'
                               % (late.name, late_applied, target,
                                  opts.timeout))
        time.sleep(0.05)
    t_done = time.monotonic()
    applier_cpu = worker_cpu_seconds(late)     # the worker started with it
    if t_learned is None:
        t_learned = t_done
    # the same rows everywhere (optimistic reads: nothing applied for them)
    state = checks.wait_tables_identical(cluster.nodes, ['items'],
                                         deadline=60)
    return {
        'changes': changes, 'txns': txns, 'write_s': write_s,
        'rounds': target - applied_before, 'rows': state['items'][0],
        'missed_from': applied_before, 'target': target,
        'from_start': t_done - t_start, 'from_up': t_done - t_up,
        'learned': t_learned - t_up,
        'retries': sum(w.retries for w in writers),
        'applier_cpu': applier_cpu,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--rows', type=int, default=200000,
                    help='rows inserted while the node is down')
    ap.add_argument('--txn-rows', type=int, default=500,
                    help='rows per transaction')
    ap.add_argument('--update-every', type=int, default=4,
                    help='an UPDATE transaction of --txn-rows rows after '
                    'every N inserting ones (0: none)')
    ap.add_argument('--repeat', type=int, default=1)
    ap.add_argument('--timeout', type=float, default=900,
                    help='seconds the catch-up may take')
    opts = ap.parse_args()

    cluster = pgcluster.Cluster(3)
    try:
        cluster.start()
        checks.setup_replication(cluster, GROUP, DDL, ['items'])
        runs = []
        for i in range(opts.repeat):
            r = one_run(cluster, opts, 1 + i * opts.rows)
            runs.append(r)
            print('run %d: %d row changes in %d transactions written in '
                  '%.1f s (%d retried) while %s was down; it then applied '
                  '%d rounds (%d -> %d) in %.2f s from pg_ctl start, %.2f s '
                  'from accepting connections (it knew every round decided '
                  'after %.2f s): %.0f row changes/s, %.0f rounds/s; '
                  'its worker used %.2f s of CPU; tables identical (%d rows)'
                  % (i + 1, r['changes'], r['txns'], r['write_s'],
                     r['retries'], cluster[2].name, r['rounds'],
                     r['missed_from'], r['target'], r['from_start'],
                     r['from_up'], r['learned'], r['changes'] / r['from_up'],
                     r['rounds'] / r['from_up'], r['applier_cpu'],
                     r['rows']), flush=True)
        print()
        print('catch-up of a restarted node (3 local nodes, %d rows in '
              'transactions of %d rows, an UPDATE transaction every %d)'
              % (opts.rows, opts.txn_rows, opts.update_every))
        med = statistics.median
        print('  time to catch up:  median %.2f s from pg_ctl start, '
              '%.2f s from accepting connections'
              % (med(r['from_start'] for r in runs),
                 med(r['from_up'] for r in runs)))
        print('  all rounds known:  median %.2f s from accepting connections'
              % med(r['learned'] for r in runs))
        print('  row changes/s:     median %.0f (written at %.0f/s while '
              'the node was down)'
              % (med(r['changes'] / r['from_up'] for r in runs),
                 med(r['changes'] / r['write_s'] for r in runs)))
        print('  rounds/s:          median %.0f'
              % med(r['rounds'] / r['from_up'] for r in runs))
        print('  applier CPU:       median %.2f s, %.0f row changes per '
              'CPU second of the pg_paxos worker'
              % (med(r['applier_cpu'] for r in runs),
                 med(r['changes'] / r['applier_cpu'] for r in runs)))
    finally:
        cluster.destroy()


if __name__ == '__main__':
    main()
