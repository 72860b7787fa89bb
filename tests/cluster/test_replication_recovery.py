"""
A node stopped like a crash while the other two keep writing, then started
again: it catches up by itself (nobody reads on it until it has), ends with
exactly the others' rows, and takes writes again.
"""

import threading
import time

import psycopg2
import pytest

import checks
import pgcluster

GROUP = 'recovery'

DDL = """
CREATE TABLE events (id text PRIMARY KEY, origin text NOT NULL,
                     at timestamptz NOT NULL DEFAULT now(),
                     r double precision DEFAULT random());
CREATE TABLE counters (name text PRIMARY KEY, n int NOT NULL);
"""
TABLES = ['events', 'counters']
WRITERS_PER_NODE = 2
CATCH_UP_DEADLINE = 30.0


class Writer(threading.Thread):
    """One client: transactions that insert an event and bump its own
    counter (and, every fifth, a counter shared by all, for conflicts),
    retried on 40001 with a new event id, until stop is set."""

    def __init__(self, node, name, stop):
        super().__init__(name=name)
        self.node, self.stop = node, stop
        self.acked = []          # (event id, touched the shared counter)
        self.aborted = []        # event ids of failed attempts
        self.errors = []         # (event id, error): outcome unknown

    def run(self):
        conn = None
        seq = 0
        while not self.stop.is_set():
            seq += 1
            shared = seq % 5 == 0
            ids = []

            def body(c, attempt):
                ids.append('%s/%d/%d' % (self.name, seq, attempt))
                c.sql("INSERT INTO events (id, origin) VALUES (%s, %s)",
                      (ids[-1], self.node.name))
                c.sql('UPDATE counters SET n = n + 1 WHERE name = %s',
                      (self.name,))
                if shared:
                    c.sql("UPDATE counters SET n = n + 1 "
                          "WHERE name = 'shared'")
                return ids[-1]

            try:
                if conn is None or conn.closed:
                    conn = self.node.connect()
                res = pgcluster.run_transaction(conn, body, deadline=60,
                                                timeout=60)
                self.acked.append((res.value, shared))
                self.aborted += ids[:-1]
            except (psycopg2.Error, pgcluster.SqlTimeout,
                    pgcluster.RetriesExhausted, AssertionError) as e:
                self.aborted += ids[:-1]
                self.errors.append((ids[-1] if ids else None, repr(e)))
                if conn is not None:
                    conn.close()
                time.sleep(0.2)
        if conn is not None:
            conn.close()


def test_stopped_node_catches_up(cluster):
    checks.setup_replication(cluster, GROUP, DDL, TABLES)
    victim, survivors = cluster[0], cluster.nodes[1:]
    stop = threading.Event()
    writers = [Writer(node, '%s-w%d' % (node.name, i), stop)
               for node in survivors for i in range(WRITERS_PER_NODE)]
    victim.sql('INSERT INTO counters SELECT name, 0 FROM unnest(%s) name',
               ([w.name for w in writers] + ['shared'],))

    def acked():
        return sum(len(w.acked) for w in writers)

    for w in writers:
        w.start()
    try:
        checks.wait_for('20 writes before the stop', lambda: acked() >= 20, 30)
        victim.stop('immediate')
        at_stop = acked()
        checks.wait_for('100 writes while a node is down',
                 lambda: acked() >= at_stop + 100, 60)
        victim.start()
        at_start = acked()
        checks.wait_for('30 writes after the restart',
                 lambda: acked() >= at_start + 30, 60)
    finally:
        stop.set()
        for w in writers:
            w.join(120)
    assert not any(w.is_alive() for w in writers), 'a writer hung'

    # Converged with optimistic reads only: the victim catches up by itself.
    t0 = time.monotonic()
    checks.wait_tables_identical(cluster.nodes, TABLES, CATCH_UP_DEADLINE,
                                 consistency='optimistic')
    caught_up = time.monotonic() - t0
    checks.assert_tables_identical(cluster.nodes, TABLES)

    acked_ids = [i for w in writers for i, _ in w.acked]
    aborted_ids = [i for w in writers for i in w.aborted]
    unknown_ids = [i for w in writers for i, _ in w.errors if i]
    for node in cluster:
        with checks.session(node, 'optimistic') as conn:
            present = {r[0] for r in conn.sql('SELECT id FROM events')}
            counters = dict(conn.sql('SELECT name, n FROM counters'))
        missing = set(acked_ids) - present
        assert not missing, '%s lacks %d acknowledged events, e.g. %r' \
            % (node.name, len(missing), sorted(missing)[:5])
        resurrected = set(aborted_ids) & present
        assert not resurrected, '%s has events whose transaction failed: ' \
            '%r' % (node.name, sorted(resurrected)[:5])
        assert present <= set(acked_ids) | set(unknown_ids), \
            '%s has events nobody wrote: %r' \
            % (node.name, sorted(present - set(acked_ids))[:5])
        if not unknown_ids:
            for w in writers:
                assert counters[w.name] == len(w.acked), \
                    '%s: counter %s is %d, %d transactions acknowledged' \
                    % (node.name, w.name, counters[w.name], len(w.acked))
            assert counters['shared'] == sum(
                1 for w in writers for _, s in w.acked if s), node.name

    errors = [(w.name, e) for w in writers for e in w.errors]
    assert not errors, 'writes on the surviving majority failed: %r' \
        % errors[:5]
    print('recovery: %d transactions acknowledged (%d while %s was down), '
          '%d attempts aborted with 40001, caught up %.1f s after the '
          'writes stopped' % (len(acked_ids), at_start - at_stop, victim.name,
                              len(aborted_ids), caught_up))

    # The victim writes again, and the others see it.
    victim.sql("INSERT INTO events (id, origin) VALUES ('back', %s)",
               (victim.name,))
    assert cluster[1].scalar("SELECT origin FROM events WHERE id = 'back'") \
        == victim.name
    checks.assert_tables_identical(cluster.nodes, TABLES)


def test_join_refuses_a_table_with_other_columns(cluster_factory):
    """Rows are copied to a joining node by column name: if its table lacks
    a column of the group's, the join fails with a clear error (instead of
    dropping that column's values) and leaves nothing behind; once the
    table is fixed the same call works."""
    cluster = cluster_factory(3)
    joiner = cluster.nodes.pop()
    ddl = 'CREATE TABLE items (id int PRIMARY KEY, v int, note text)'
    checks.setup_replication(cluster, 'cols', ddl, ['items'])
    cluster[0].sql("INSERT INTO items SELECT g, g, 'n' || g "
                   "FROM generate_series(1, 20) g")
    joiner.sql('CREATE TABLE items (id int PRIMARY KEY, v int)')
    args = ('cols', cluster[0].connstr, joiner.connstr)
    with pytest.raises(psycopg2.Error) as err:
        joiner.sql('SELECT paxos_join_group(%s, %s, %s)', args)
    assert err.value.pgcode == '55000', err.value.pgcode
    assert 'table items has other columns here than on node' in str(err.value)
    assert 'Here: id integer, v integer. There: id integer, note text, ' \
        'v integer.' in str(err.value)
    assert joiner.scalar('SELECT count(*) FROM pgp_metadata."group"') == 0
    assert cluster[0].scalar(
        "SELECT count(*) FROM pgp_metadata.host WHERE group_id = 'cols' "
        'AND max_round_num IS NULL') == 2

    joiner.sql('ALTER TABLE items ADD COLUMN note text')
    joiner.sql('SELECT paxos_join_group(%s, %s, %s)', args)
    cluster.nodes.append(joiner)
    checks.assert_tables_identical(cluster.nodes, ['items'])
