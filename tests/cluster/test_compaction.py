"""
Log compaction and snapshot copy, on real 3-node clusters under the bank
workload (tests/cluster/bank.py, which checks the total, identical tables
and that no acknowledged transfer is lost).

- Compaction: with a small pg_paxos.log_retention, every node deletes the
  rounds below what every member applied, and its acceptor refuses them
  from then on; paxos_decided_rounds says they are compacted.
- Policy: a member that is down holds compaction at its last applied round
  for pg_paxos.compaction_member_timeout: back within it, it learns what
  it missed from the log; after it, the others compact past it, and when
  it comes back it copies a snapshot from a peer by itself (its server log
  says so), keeping its acceptor state of later rounds, and ends
  identical.
"""

import time

import psycopg2
import pytest

import bank
import checks

GROUP = bank.GROUP
RETENTION = 5
MEMBER_TIMEOUT_MS = 3000
# Rounds of margin past a stopped node's last applied round: compaction
# that did not wait for a stopped member would pass it by hundreds of
# rounds within the member timeout, far more than this.
SLACK = 30
SETTINGS = {
    'pg_paxos.log_retention': RETENTION,
    'pg_paxos.compaction_interval': 200,
    'pg_paxos.compaction_member_timeout': MEMBER_TIMEOUT_MS,
}


def group_state(node):
    """(last_applied_round, compacted_below) of the bank group on node."""
    return tuple(node.sql('SELECT last_applied_round, compacted_below '
                          'FROM pgp_metadata."group" WHERE group_id = %s',
                          (GROUP,))[0])


def accepted_elsewhere(nodes):
    """The highest round in which any of nodes accepted a value.  Read
    after a node stopped, while the others are all up, it bounds what that
    node applied: a round it applied was accepted by a majority, so by one
    of them.  (Its applied round read before the stop does not: under load
    it applied 70 more rounds before the stop took effect.)"""
    return max(n.scalar('SELECT coalesce(max(round_num), -1) '
                        'FROM pgp_metadata.round WHERE group_id = %s '
                        'AND accepted_proposal_num IS NOT NULL', (GROUP,))
               for n in nodes)


def assert_compacted(node, below):
    """Nothing of the log below `below` is left on node."""
    rounds, outcomes = node.sql(
        'SELECT (SELECT count(*) FROM pgp_metadata.round'
        '        WHERE group_id = %s AND round_num < %s),'
        '       (SELECT count(*) FROM pgp_metadata.outcome'
        '        WHERE group_id = %s AND round_num < %s)',
        (GROUP, below, GROUP, below))[0]
    assert (rounds, outcomes) == (0, 0), \
        '%s still has %d round and %d outcome rows below round %d' \
        % (node.name, rounds, outcomes, below)


def test_compaction_under_bank_workload(cluster_factory):
    cluster = cluster_factory(3, SETTINGS)
    bank.setup(cluster)
    bank.run(cluster, duration=10)

    # Quiet now: every node compacts up to RETENTION rounds below the
    # lowest applied round of all.
    def settled():
        states = [group_state(n) for n in cluster]
        low = min(applied for applied, _ in states)
        if all(below == low + 1 - RETENTION for _, below in states):
            return states
        return None
    states = checks.wait_for('every node compacted below the lowest applied round '
                      'minus the retention', settled)
    below = states[0][1]
    assert below > 50, 'the workload made only %d rounds' % below
    for node in cluster:
        assert_compacted(node, below)
        kept = node.scalar('SELECT min(round_num) FROM pgp_metadata.round '
                           'WHERE group_id = %s', (GROUP,))
        assert kept == below, '%s keeps the log from round %s, not %d' \
            % (node.name, kept, below)

    # The acceptor refuses a compacted round instead of taking part anew
    # (a fresh promise there could get a second value chosen), and says why.
    node = cluster[1]
    for sql, args in (
            ('SELECT * FROM paxos_request_prepare(%s, %s, %s, %s)',
             ('test/1', GROUP, below - 1, 10 ** 12)),
            ('SELECT * FROM paxos_request_accept(%s, %s, %s, %s, %s, %s)',
             ('test/1', GROUP, 1, 10 ** 12, 'test/v', 'x')),
            ('SELECT * FROM paxos(%s, %s, %s, %s)',
             ('test/1', GROUP, below - 2, 'x'))):
        with pytest.raises(psycopg2.Error) as err:
            node.sql(sql, args)
        assert err.value.pgcode == '55000'
        assert 'is compacted on this node' in str(err.value)
    assert_compacted(node, below)

    # A node asking for compacted rounds is told, not answered with nothing.
    with pytest.raises(psycopg2.Error) as err:
        node.sql('SELECT * FROM paxos_decided_rounds(%s, %s, %s)',
                 (GROUP, 0, below))
    assert 'round 0 of paxos group "bank" is compacted' in str(err.value)
    assert len(node.sql('SELECT * FROM paxos_decided_rounds(%s, %s, %s)',
                        (GROUP, below, below + 2))) == 3

    # Writes and strong reads go on; every node learns and applies them.
    node.sql('UPDATE bank_balance SET balance = balance - 7 '
             'WHERE account_number = 1')
    node.sql('UPDATE bank_balance SET balance = balance + 7 '
             'WHERE account_number = 2')
    final = checks.wait_tables_identical(cluster.nodes, bank.TABLES)
    assert final == checks.assert_tables_identical(cluster.nodes, bank.TABLES)
    for n in cluster:
        assert n.scalar('SELECT sum(balance) FROM bank_balance') == bank.TOTAL


def test_down_node_holds_compaction_then_copies_snapshot(cluster_factory):
    cluster = cluster_factory(3, SETTINGS)
    bank.setup(cluster)
    down = cluster[2]

    # Acceptor state of a round far above any snapshot: a promise the
    # snapshot copy must keep.
    far = down.scalar('SELECT paxos_max_group_round(%s)', (GROUP,)) + 10 ** 6
    promise = down.sql('SELECT * FROM paxos_request_prepare(%s, %s, %s, %s)',
                       ('test/far', GROUP, far, 4242))[0]
    assert promise[0] is True
    seen = {}

    def stop_wait_start():
        down.stop()
        stopped = time.monotonic()
        applied = accepted_elsewhere(cluster[:2])
        seen['applied'] = applied

        # Within the member timeout the others keep every round it needs.
        while time.monotonic() < stopped + MEMBER_TIMEOUT_MS / 1000.0 - 1:
            for n in cluster[:2]:
                _, below = group_state(n)
                assert below <= applied + 1 - RETENTION, \
                    '%s compacted below round %d, %.1f s after %s stopped ' \
                    'having applied round %d at most' \
                    % (n.name, below, time.monotonic() - stopped, down.name,
                       applied)
            time.sleep(0.2)

        # Later they compact past it.
        checks.wait_for('the others compacted past the stopped node',
                 lambda: all(group_state(n)[1] > applied + 1 + SLACK
                             for n in cluster[:2]))
        seen['compacted'] = min(group_state(n)[1] for n in cluster[:2])
        down.start()

    bank.run(cluster, duration=14, fault=stop_wait_start, fault_at=2,
             faulty=(down.index,))

    log = open(down.logfile).read()
    assert 'copied a snapshot of round' in log, \
        'no snapshot copy in the log of %s' % down.name
    assert 'log compaction no longer waits for member' in \
        open(cluster[0].logfile).read()
    applied, below = group_state(down)
    assert below >= seen['compacted'] > seen['applied'] + 1
    assert applied >= below - 1

    # Its acceptor state above the snapshot is untouched.
    row = down.sql('SELECT min_proposal_num, proposer_id, consensus '
                   'FROM pgp_metadata.round WHERE group_id = %s '
                   'AND round_num = %s', (GROUP, far))
    assert row == [(4242, 'test/far', False)], row

    # It takes part again: a write on it reaches everyone.
    down.sql('UPDATE bank_balance SET balance = balance - 3 '
             'WHERE account_number = 3')
    down.sql('UPDATE bank_balance SET balance = balance + 3 '
             'WHERE account_number = 4')
    checks.wait_tables_identical(cluster.nodes, bank.TABLES)
    checks.assert_tables_identical(cluster.nodes, bank.TABLES)


def test_node_back_within_member_timeout_learns_from_the_log(cluster_factory):
    settings = dict(SETTINGS)
    settings['pg_paxos.compaction_member_timeout'] = 60000
    cluster = cluster_factory(3, settings)
    bank.setup(cluster)
    down = cluster[1]

    def stop_wait_start():
        down.stop()
        others = (cluster[0], cluster[2])
        applied = accepted_elsewhere(others)
        time.sleep(4)
        for n in others:
            _, below = group_state(n)
            assert below <= applied + 1 - RETENTION, \
                '%s compacted below round %d while %s, stopped having ' \
                'applied round %d at most, was away for less than the ' \
                'member timeout' % (n.name, below, down.name, applied)
        # not vacuous: without the hold they would have compacted past it
        assert accepted_elsewhere(others) > applied + RETENTION + SLACK, \
            'too few rounds while %s was away' % down.name
        down.start()

    bank.run(cluster, duration=10, fault=stop_wait_start, fault_at=2,
             faulty=(down.index,))
    assert 'copied a snapshot' not in open(down.logfile).read()


def columns(node, table):
    return node.sql("SELECT attname, format_type(atttypid, atttypmod) "
                    "FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    (table,))


def test_snapshot_copy_replays_ddl_of_compacted_rounds(cluster_factory):
    """DDL made while a node was down, in rounds compacted before it came
    back: the snapshot it copies brings the columns, the rename and the
    index along with the rows, and it goes on applying writes that use
    them."""
    cluster = cluster_factory(3, SETTINGS)
    checks.setup_replication(
        cluster, 'ddl', 'CREATE TABLE items (id int PRIMARY KEY, v int)',
        ['items'])
    first, down = cluster[0], cluster[2]
    first.sql('INSERT INTO items SELECT g, g FROM generate_series(1, 50) g')
    checks.wait_tables_identical(cluster.nodes, ['items'])

    def state(node):
        return tuple(node.sql('SELECT last_applied_round, compacted_below '
                              'FROM pgp_metadata."group" '
                              "WHERE group_id = 'ddl'")[0])

    applied, _ = state(down)
    down.stop()
    first.sql("ALTER TABLE items ADD COLUMN note text DEFAULT 'none'")
    first.sql('ALTER TABLE items RENAME COLUMN v TO w')
    first.sql('CREATE INDEX items_w ON items (w)')
    first.sql("UPDATE items SET note = 'n' || id WHERE id <= 10")
    # rounds enough, for long enough, to be compacted past the stopped node
    deadline = time.monotonic() + 30
    i = 100
    while not all(state(n)[1] > applied + 1 + SLACK for n in cluster[:2]):
        assert time.monotonic() < deadline, 'no compaction past %s' % down.name
        first.sql("INSERT INTO items VALUES (%s, %s, 'later')", (i, i))
        i += 1
        time.sleep(0.05)
    assert first.scalar("SELECT count(*) FROM pgp_metadata.ddl_history "
                        "WHERE group_id = 'ddl'") == 3
    down.start()

    checks.wait_for('a snapshot copy on %s' % down.name,
             lambda: 'copied a snapshot of round' in open(down.logfile).read())
    assert 'replayed 3 DDL statements' in open(down.logfile).read()
    checks.wait_tables_identical(cluster.nodes, ['items'])
    assert columns(down, 'items') == columns(first, 'items') == \
        [('id', 'integer'), ('w', 'integer'), ('note', 'text')]
    assert down.scalar("SELECT count(*) FROM pg_indexes "
                       "WHERE indexname = 'items_w'") == 1

    # it writes with the new columns, and everyone gets it
    down.sql("UPDATE items SET note = 'from ' || current_setting("
             "'pg_paxos.node_id'), w = w + 1 WHERE id = 1")
    checks.wait_tables_identical(cluster.nodes, ['items'])
    assert first.sql('SELECT w, note FROM items WHERE id = 1') == \
        [(2, 'from %s' % down.name)]
    checks.assert_tables_identical(cluster.nodes, ['items'])


def test_writes_during_a_snapshot_copy_see_it(cluster_factory):
    """Transfers on a node while it copies a snapshot (of a table large
    enough for the copy to take a while) either wait for the copy and then
    find their rows, or fail with 40001 and are retried: none finds its
    row gone and silently updates nothing, as one whose snapshot was taken
    before the copy emptied the tables could (seen once in a full run of
    test_down_node_holds_compaction_then_copies_snapshot; this test did
    not reproduce it in three runs of the build before, so it is a guard,
    not a proof).  A node not caught up yet may also say so (08006)."""
    cluster = cluster_factory(3, SETTINGS)
    bank.setup(cluster)
    for node in cluster:
        node.sql('CREATE TABLE filler (id int PRIMARY KEY, pad text)')
    cluster[0].sql("SELECT paxos_replicate_table(%s, 'filler')", (GROUP,))
    cluster[0].sql("INSERT INTO filler SELECT g, repeat('x', 100) "
                   "FROM generate_series(1, 100000) g")
    down = cluster[2]
    checks.wait_for('the filler rows on ' + down.name,
                    lambda: down.scalar('SELECT count(*) FROM filler') == 100000,
                    deadline=60)
    applied, _ = group_state(down)
    down.stop()
    # rounds it needs are compacted away meanwhile
    writer = cluster[0]
    end = time.monotonic() + 30
    while not all(group_state(n)[1] > applied + 1 + SLACK for n in cluster[:2]):
        assert time.monotonic() < end, 'the others did not compact past it'
        writer.sql('UPDATE filler SET pad = pad WHERE id = 1')
        time.sleep(0.02)
    down.start()

    outcome = {'moved': 0, 'retried': 0, 'unavailable': 0, 'empty': [],
               'other': []}
    stop = time.monotonic() + 20
    copied = lambda: 'copied a snapshot of round' in open(down.logfile).read()
    copied_at = None
    conn = None
    i = 0
    while time.monotonic() < stop and (copied_at is None or
                                       time.monotonic() < copied_at + 1.0):
        if copied_at is None and copied():
            copied_at = time.monotonic()
        try:
            if conn is None:
                conn = psycopg2.connect(down.connstr)
            i += 1
            src, dst = 1 + i % bank.ACCOUNTS, 1 + (i * 7 + 3) % bank.ACCOUNTS
            if src == dst:
                continue
            with conn.cursor() as cur:
                counts = []
                for account, delta in ((src, -1), (dst, 1)):
                    cur.execute('UPDATE bank_balance SET balance = balance + %s '
                                'WHERE account_number = %s', (delta, account))
                    counts.append(cur.rowcount)
                if counts != [1, 1]:
                    outcome['empty'].append((src, dst, counts))
                    conn.rollback()
                    continue
            conn.commit()
            outcome['moved'] += 1
        except psycopg2.Error as e:
            if conn is not None and not conn.closed:
                conn.rollback()
            if e.pgcode in ('40001', '40P01'):
                outcome['retried'] += 1
            elif e.pgcode == '08006':
                outcome['unavailable'] += 1     # not caught up yet: says so
            elif e.pgcode is None or conn is None or conn.closed:
                conn = None         # the node is still starting
                time.sleep(0.1)
            else:
                outcome['other'].append('%s %s' % (e.pgcode, e))
    if conn is not None:
        conn.close()

    assert copied_at is not None, 'no snapshot copy in the log of %s' % down.name
    assert outcome['empty'] == [], outcome
    assert outcome['other'] == [], outcome
    assert outcome['moved'] > 0, outcome
    final = checks.wait_tables_identical(cluster.nodes, bank.TABLES + ['filler'])
    assert final == checks.assert_tables_identical(cluster.nodes,
                                                   bank.TABLES + ['filler'])
    for n in cluster:
        assert n.scalar('SELECT sum(balance) FROM bank_balance') == bank.TOTAL
