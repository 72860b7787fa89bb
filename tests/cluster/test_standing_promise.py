"""
The leader's standing promise on 3 real nodes (docs/consensus.md#leader):
its batcher asks, in phase 1, for its ballot in every round from that one
on, and skips phase 1 in later rounds only where a majority granted it with
nothing accepted above.  A value a majority accepted further ahead, under a
lower ballot, is chosen: the leader must find it there, not overwrite it.
"""

import threading
from contextlib import ExitStack

import psycopg2
import pytest

import checks
import pgcluster

GROUP = 'standing'
TABLE = 'standing_t'


def standing(node):
    rows = node.records('SELECT from_round, proposal_num, proposer_id '
                        'FROM pgp_metadata.standing_promise '
                        'WHERE group_id = %s', (GROUP,))
    return rows[0] if rows else None


def max_round(node):
    return node.scalar('SELECT max(round_num) FROM pgp_metadata.round '
                       'WHERE group_id = %s', (GROUP,))


def decided_value(node, round_num):
    return node.scalar('SELECT value_id FROM pgp_metadata.round WHERE group_id '
                       '= %s AND round_num = %s AND consensus', (GROUP, round_num))


def write(node, sql, args):
    """An optimistic write (a strong one would learn the rounds ahead
    first), retried on 40001."""
    with checks.session(node, 'optimistic') as conn:
        pgcluster.run_transaction(conn, lambda c, attempt: c.sql(sql, args))


def test_leader_keeps_a_value_chosen_above_its_standing_promise(cluster):
    checks.setup_replication(cluster, GROUP,
                             'CREATE TABLE %s (k int PRIMARY KEY, v int)' % TABLE,
                             [TABLE])
    leader = checks.wait_agreed_leader(cluster.nodes, GROUP)
    others = [n for n in cluster if n is not leader]
    for k in range(5):
        leader.sql('INSERT INTO %s VALUES (%%s, 0)' % TABLE, (k,))

    # a majority holds the batcher's standing promise (the phase 1 that got
    # it stopped waiting at a majority); no round is promised ahead of the
    # log (the per-round way would leave one)
    promises = [standing(n) for n in cluster]
    held = max((p for p in promises if p), key=lambda p: p['proposal_num'])
    assert held['proposer_id'].startswith(leader.name + '/')
    assert promises.count(held) >= 2
    assert all(n.scalar('SELECT count(*) FROM pgp_metadata.round WHERE '
                        'group_id = %s AND value_id IS NULL', (GROUP,)) == 0
               for n in cluster)

    with ExitStack() as frozen:
        # the followers' workers would learn the rounds ahead (with a no-op
        # Paxos round, finding the value) before the leader got there
        for node in others:
            frozen.enter_context(checks.worker_frozen(node))

        # a proposer above the leader gets a value accepted by both
        # followers (chosen) two rounds ahead; another takes the next
        # round's promise from them, so that the leader's next accept is
        # refused and its new phase 1 asks for a standing promise above
        # both, from below the value
        top = max(max_round(n) for n in cluster)
        ahead, nxt = top + 3, top + 1
        ghost = held['proposal_num'] + 10
        for node in others:
            assert node.scalar('SELECT promised FROM paxos_request_prepare('
                               "'ghost', %s, %s, %s)", (GROUP, ahead, ghost))
            assert node.scalar('SELECT accepted FROM paxos_request_accept('
                               "'ghost', %s, %s, %s, 'ghost/value', 'SELECT 1')",
                               (GROUP, ahead, ghost))
            assert node.scalar('SELECT promised FROM paxos_request_prepare('
                               "'disrupt', %s, %s, %s)", (GROUP, nxt, ghost + 10))

        for k in range(5, 10):
            write(leader, 'UPDATE %s SET v = v + 1 WHERE k = %%s' % TABLE, (k % 5,))
            write(leader, 'INSERT INTO %s VALUES (%%s, 0)' % TABLE, (k,))

        # the leader took a new standing promise; the value stayed chosen
        assert standing(leader)['proposal_num'] > ghost + 10
        assert decided_value(leader, ahead) == 'ghost/value'

    for node in cluster:
        checks.wait_for('round %d learned on %s' % (ahead, node.name),
                        lambda: decided_value(node, ahead))
        assert decided_value(node, ahead) == 'ghost/value'
    checks.wait_tables_identical(cluster.nodes, [TABLE])
    assert leader.scalar('SELECT sum(v) FROM %s' % TABLE) == 5
    assert leader.scalar('SELECT count(*) FROM %s' % TABLE) == 10


def test_an_accept_that_waited_for_a_grant_is_bound_by_it(cluster_factory):
    """An acceptor step reads the standing promise once it holds the group's
    share lock, and must see a grant that committed while it waited for it:
    its statement's own snapshot, taken before, does not.  Read with that
    snapshot, a lower ballot got a value accepted in a round the grant
    covered (and reported free), and test_partition.py saw two values
    chosen in one round."""
    node = cluster_factory(1)[0]
    group, base = 'standing_lock', 1000
    node.sql('SELECT paxos_create_group(%s, %s)', (group, node.peer_connstr))
    # a lower ballot holds the promise of a round ahead, nothing accepted
    assert node.scalar("SELECT promised FROM paxos_request_prepare("
                       "'low', %s, %s, 5)", (group, base + 5))

    granter = node.connect()
    try:
        granter.sql('BEGIN')
        assert granter.sql("SELECT promised, standing FROM "
                           "paxos_request_standing_prepare('high', %s, %s, 50)",
                           (group, base)) == [(True, True)]
        answer = {}

        def accept():
            conn = node.connect()
            try:
                answer['accepted'] = conn.sql(
                    "SELECT accepted FROM paxos_request_accept('low', %s, %s, "
                    "5, 'low/value', 'SELECT 1')", (group, base + 5))[0][0]
            finally:
                conn.close()

        waiter = threading.Thread(target=accept)
        waiter.start()
        checks.wait_for('the accept waiting for the grant to commit',
                        lambda: node.scalar("SELECT count(*) FROM pg_locks WHERE "
                                            "locktype = 'advisory' AND NOT granted"))
        granter.sql('COMMIT')
    finally:
        granter.close()
    waiter.join(30)
    assert answer == {'accepted': False}
    assert node.scalar('SELECT value_id FROM pgp_metadata.round WHERE '
                       'group_id = %s AND round_num = %s',
                       (group, base + 5)) is None


def test_acceptor_steps_run_read_committed_only(cluster_factory):
    """A prepare or accept reads what committed while it waited for its
    locks: it refuses a transaction that keeps an older snapshot, and
    pg_paxos's own connections ask for READ COMMITTED, so a server whose
    default isolation is REPEATABLE READ still appends."""
    node = cluster_factory(1, {'default_transaction_isolation':
                               'repeatable read'})[0]
    group = 'standing_iso'
    node.sql('SELECT paxos_create_group(%s, %s)', (group, node.peer_connstr))
    assert node.scalar("SHOW default_transaction_isolation") == 'repeatable read'
    assert node.scalar("SELECT paxos_append('me', %s, 'SELECT 1')", (group,)) >= 1

    conn = node.connect()
    try:
        for call in ("paxos_request_prepare('rr', %s, 500, 7)",
                     "paxos_request_standing_prepare('rr', %s, 500, 7)",
                     "paxos_request_accept('rr', %s, 500, 7, 'rr/v', 'SELECT 1')"):
            with pytest.raises(psycopg2.Error) as err:
                conn.sql('SELECT * FROM ' + call, (group,))
            assert err.value.pgcode == '25000', call
            assert 'READ COMMITTED' in err.value.pgerror
        conn.sql("SET default_transaction_isolation TO 'read committed'")
        assert conn.sql("SELECT promised FROM paxos_request_prepare("
                        "'rr', %s, 500, 7)", (group,)) == [(True,)]
    finally:
        conn.close()
