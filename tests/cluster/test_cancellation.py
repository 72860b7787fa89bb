"""
A transaction whose entry its origin had to cancel, and that entry
reaching the log later anyway.

The leader's batcher is frozen (SIGSTOP) while a follower commits an
UPDATE: the follower hands its entry to the leader, hears nothing, cancels
it with full Paxos and sends it again (submit.c); after its attempts with
the leader it appends the entry alone, and the UPDATE commits once.  When
the batcher thaws, it appends the entry it was holding.  That entry must
fail on every node:
- within its lifetime (pg_paxos.entry_lifetime rounds), against its
  cancellation's round;
- after it, against its own round, though its cancellation is forgotten by
  then.
Either way the counter is incremented once on every node, and once
certification has passed the lifetime, pgp_metadata.cancelled_txn is
empty on every node.
"""

import os
import signal
import threading

import psycopg2
import pytest

import checks

GROUP = 'cancel'
# The origin waits 2 s for the leader (rpc_timeout) before it cancels: the
# within-lifetime case thaws the batcher during the next attempt's wait.
SETTINGS = {'pg_paxos.leader_timeout': '500ms', 'pg_paxos.rpc_timeout': '2s'}
LIFETIME = 20
DEADLINE = 30.0


def batcher_pid(node):
    return node.scalar("SELECT pid FROM pg_stat_activity "
                       "WHERE backend_type = 'pg_paxos batcher'")


def cancelled(node):
    return dict(node.sql('SELECT txn_id, round_num FROM pgp_metadata.cancelled_txn '
                         'WHERE group_id = %s', (GROUP,)))


def outcomes_of(node, txn_ids):
    return node.sql('SELECT txn_id, round_num, committed, conflict_round '
                    'FROM pgp_metadata.outcome WHERE group_id = %s '
                    'AND txn_id = ANY(%s) ORDER BY round_num',
                    (GROUP, list(txn_ids)))


def advance_log(node, rounds):
    for i in range(rounds):
        node.sql("SELECT paxos_append(%s, %s, 'SELECT 1')",
                 ('advance/%d' % i, GROUP))


def update_in_background(node, result):
    """Run the UPDATE on node in a thread, with a short entry lifetime;
    result gets its error (None: committed)."""
    def run():
        try:
            conn = psycopg2.connect(node.connstr)
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    cur.execute('SET pg_paxos.entry_lifetime = %d' % LIFETIME)
                    cur.execute('UPDATE counter SET v = v + 1 WHERE k = 1')
                result['error'] = None
            finally:
                conn.close()
        except Exception as e:          # reported by the test
            result['error'] = e
    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.parametrize('late', [False, True],
                         ids=['within_lifetime', 'after_lifetime'])
def test_cancelled_entry_that_comes_back_fails_everywhere(cluster_factory, late):
    cluster = cluster_factory(3, SETTINGS)
    checks.setup_replication(
        cluster, GROUP, 'CREATE TABLE counter (k int PRIMARY KEY, v int NOT NULL)',
        ['counter'])
    leader = checks.wait_agreed_leader(cluster.nodes, GROUP)
    origin = [n for n in cluster if n is not leader][0]
    origin.sql('INSERT INTO counter VALUES (1, 0)')

    pid = batcher_pid(leader)
    assert pid, 'no batcher on the leader'
    result = {}
    os.kill(pid, signal.SIGSTOP)
    try:
        update = update_in_background(origin, result)
        # the origin cancels what it handed to the frozen batcher
        checks.wait_for('a cancellation', lambda: cancelled(origin) or result)
        assert cancelled(origin), 'the UPDATE ended before any cancellation: %r' % result
        if late:
            update.join(DEADLINE)
            cancels = cancelled(origin)
            advance_log(origin, LIFETIME + 5)
            for node in cluster:
                checks.wait_for('%s forgets the expired cancellations' % node.name,
                         lambda: not cancelled(node))
    finally:
        # within the lifetime: thawed while the origin sends its entry again
        os.kill(pid, signal.SIGCONT)
    update.join(DEADLINE)
    assert not update.is_alive() and result['error'] is None, result
    if not late:
        cancels = cancelled(origin)

    # the thawed batcher appends the entry it held: it fails everywhere,
    # against its cancellation or, after its lifetime, its own round
    for node in cluster:
        rows = checks.wait_for('%s certifies the entry the batcher held' % node.name,
                        lambda: outcomes_of(node, cancels))
        for txn_id, round_num, committed, conflict in rows:
            assert not committed, (node.name, rows)
            if late:
                assert conflict == round_num, (node.name, rows)
            else:
                assert conflict == cancels[txn_id] < round_num, (node.name, rows, cancels)

    if not late:
        advance_log(origin, LIFETIME + 5)
        for node in cluster:
            checks.wait_for('%s forgets the expired cancellations' % node.name,
                     lambda: not cancelled(node))

    # the UPDATE counted once, everywhere
    for node in cluster:
        assert node.scalar('SELECT v FROM counter WHERE k = 1') == 1, node.name
    checks.assert_tables_identical(cluster.nodes, ['counter'])
