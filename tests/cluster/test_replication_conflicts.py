"""
Certification: of two concurrent transactions on different nodes that write
the same key (primary key, unique key, or a key a foreign key references),
exactly one commits and the other fails at COMMIT with SQLSTATE 40001,
leaving nothing anywhere.  Also: a write acknowledged on one node is seen by
a strong read started afterwards on another, and DDL on a replicated table
is replicated while another node writes it.
"""

import os
import re
import signal
import threading
import time

import psycopg2
import pytest

import checks
import pgcluster

GROUP = 'conflicts'

DDL = """
CREATE TABLE kv (k int PRIMARY KEY, v text NOT NULL);
CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE NOT NULL);
CREATE TABLE parents (id int PRIMARY KEY);
CREATE TABLE children (id int PRIMARY KEY,
                       parent int NOT NULL REFERENCES parents (id));
"""
TABLES = ['kv', 'users', 'parents', 'children']


@pytest.fixture
def repl(cluster):
    checks.setup_replication(cluster, GROUP, DDL, TABLES)
    return cluster


def values_everywhere(cluster, query, args=None):
    """query's rows on every node (a new strong session each)."""
    out = {}
    for node in cluster:
        with node.connect() as conn:
            out[node.name] = conn.sql(query, args)
    return out


def commit_all(conns, meanwhile=None):
    """COMMIT every connection at the same instant (one thread each), and
    call meanwhile(), if given, while they run.  Returns, per connection,
    'COMMIT' or the psycopg2 error it raised."""
    results = [None] * len(conns)
    barrier = threading.Barrier(len(conns))

    def commit(i):
        barrier.wait(timeout=30)
        try:
            results[i] = conns[i].command('COMMIT', timeout=60)
        except psycopg2.Error as e:
            results[i] = e

    threads = [threading.Thread(target=commit, args=(i,))
               for i in range(len(conns))]
    for t in threads:
        t.start()
    if meanwhile is not None:
        meanwhile()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), 'a COMMIT hung'
    return results


def conflicting_round(node, err, low, high):
    """The round err names as the one its transaction conflicts with ("...
    conflicts with round N", "conflicting round N", ...), in its message or
    detail.  It must lie in (low, high] and be decided on node: the round
    of the entry that won."""
    text = '%s %s' % (err, err.diag.message_detail or '')
    m = re.search(r'conflict\w*\D{0,30}?(\d+)', text, re.IGNORECASE)
    assert m, 'the 40001 message names no conflicting round: %r' % text
    round_num = int(m.group(1))
    assert low < round_num <= high, \
        'the 40001 message names round %d, not one in (%d, %d]: %r' \
        % (round_num, low, high, text)
    assert node.scalar('SELECT consensus FROM pgp_metadata.round '
                       'WHERE group_id = %s AND round_num = %s',
                       (GROUP, round_num)), \
        'round %d, named by the 40001 message, is not decided on %s' \
        % (round_num, node.name)
    return round_num


def one_winner(results, what):
    """Exactly one 'COMMIT', every other result a 40001; returns the index
    of the winner and the errors."""
    winners = [i for i, r in enumerate(results) if r == 'COMMIT']
    losers = [r for r in results if r != 'COMMIT']
    assert len(winners) == 1, '%s: %d commits succeeded: %r' \
        % (what, len(winners), results)
    for r in losers:
        assert isinstance(r, psycopg2.errors.SerializationFailure), \
            '%s: the other COMMIT gave %r, not SQLSTATE 40001' % (what, r)
    return winners[0], losers


def max_round(node):
    return node.scalar('SELECT paxos_max_group_round(%s)', (GROUP,))


def test_concurrent_updates_of_one_row(repl):
    repl[0].sql("INSERT INTO kv SELECT g, 'init' "
                "FROM generate_series(1, 10) g")
    pairs = [(0, 1), (1, 2), (2, 0), (0, 2), (1, 0)]
    for k, (i, j) in enumerate(pairs, start=1):
        before = max_round(repl[0])
        a, b = repl[i].connect(), repl[j].connect()
        try:
            for conn, name in ((a, repl[i].name), (b, repl[j].name)):
                conn.sql('BEGIN')
                conn.sql('UPDATE kv SET v = %s WHERE k = %s', (name, k))
            if k % 2:
                results = commit_all([a, b])     # at the same instant
            else:                                # one after the other
                results = []
                for conn in (a, b):
                    try:
                        results.append(conn.command('COMMIT', timeout=60))
                    except psycopg2.Error as e:
                        results.append(e)
            what = 'row %d, %s vs %s' % (k, repl[i].name, repl[j].name)
            w, losers = one_winner(results, what)
            if k % 2 == 0:
                assert w == 0, '%s: the first COMMIT lost' % what
            after = max_round(repl[0])
        finally:
            a.close()
            b.close()
        winner = (repl[i], repl[j])[w].name
        got = values_everywhere(repl, 'SELECT v FROM kv WHERE k = %s', (k,))
        assert all(rows == [(winner,)] for rows in got.values()), \
            '%s: the winner %s wrote %r, nodes hold %r' \
            % (what, winner, winner, got)
        # (after the strong reads above, node1 knows every round decided)
        conflicting_round(repl[0], losers[0], before, after)
    checks.assert_tables_identical(repl.nodes, TABLES)


def test_conflict_within_one_batch(repl):
    """Two followers update one row while the leader's batcher is frozen:
    both entries land in one round, and the second fails against the
    first, in its own round.  Its 40001 names that round as a conflict
    (not as a commit past the entry's lifetime, which also fails against
    its own round)."""
    repl[0].sql("INSERT INTO kv VALUES (100, 'init')")
    leader = checks.wait_agreed_leader(repl.nodes, GROUP)
    followers = [n for n in repl if n is not leader]
    batcher = leader.scalar("SELECT pid FROM pg_stat_activity "
                            "WHERE backend_type = 'pg_paxos batcher'")
    assert batcher, 'no batcher on the leader'
    conns = [n.connect() for n in followers]

    def thaw_later():
        time.sleep(1.0)              # both entries queue at the leader
        os.kill(batcher, signal.SIGCONT)

    try:
        for conn, node in zip(conns, followers):
            conn.sql('BEGIN')
            conn.sql('UPDATE kv SET v = %s WHERE k = 100', (node.name,))
        os.kill(batcher, signal.SIGSTOP)
        try:
            results = commit_all(conns, meanwhile=thaw_later)
        finally:
            os.kill(batcher, signal.SIGCONT)
    finally:
        for conn in conns:
            conn.close()
    w, losers = one_winner(results, 'one batch, %s vs %s'
                           % (followers[0].name, followers[1].name))
    text = '%s %s' % (losers[0], losers[0].diag.message_detail or '')
    assert 'late commit' not in text, \
        'a conflict within the batch reported as a late commit: %r' % text
    m = re.search(r'entry in round (\d+) conflicts with round (\d+)', text)
    assert m and m.group(1) == m.group(2), \
        'the entries did not share a round, or the message names no ' \
        'conflict: %r' % text
    got = values_everywhere(repl, 'SELECT v FROM kv WHERE k = 100')
    assert all(rows == [(followers[w].name,)] for rows in got.values()), got


def test_concurrent_inserts_of_one_key(repl):
    """Same primary key; then same unique email with different keys."""
    conns = [node.connect() for node in repl]
    try:
        for n, conn in enumerate(conns):
            conn.sql('BEGIN')
            conn.sql("INSERT INTO kv VALUES (100, %s)", (repl[n].name,))
        w, _ = one_winner(commit_all(conns), 'insert of key 100')
        got = values_everywhere(repl, 'SELECT v FROM kv WHERE k = 100')
        assert all(r == [(repl[w].name,)] for r in got.values()), got

        for n, conn in enumerate(conns):
            conn.sql('BEGIN')
            conn.sql('INSERT INTO users VALUES (%s, %s)',
                     (n + 1, 'same@example.org'))
        w, _ = one_winner(commit_all(conns), 'unique email')
        got = values_everywhere(repl, 'SELECT id, email FROM users')
        assert all(r == [(w + 1, 'same@example.org')]
                   for r in got.values()), got
    finally:
        for conn in conns:
            conn.close()
    checks.assert_tables_identical(repl.nodes, TABLES)


def test_child_insert_against_parent_delete(repl):
    """A child inserted on one node while its parent is deleted on another:
    one of them fails; no node ends with an orphan."""
    repl[0].sql('INSERT INTO parents VALUES (1), (2)')
    a, b = repl[1].connect(), repl[2].connect()
    try:
        a.sql('BEGIN')
        a.sql('INSERT INTO children VALUES (10, 1)')
        b.sql('BEGIN')
        b.sql('DELETE FROM parents WHERE id = 1')
        w, _ = one_winner(commit_all([a, b]), 'child vs parent delete')
    finally:
        a.close()
        b.close()
    got = values_everywhere(
        repl, 'SELECT (SELECT array_agg(id ORDER BY id) FROM parents), '
              '(SELECT array_agg(id) FROM children)')
    expected = [([1, 2], [10])] if w == 0 else [([2], None)]
    assert all(r == expected for r in got.values()), \
        'winner %s; nodes hold %r' % (('child insert', 'parent delete')[w],
                                      got)
    checks.assert_tables_identical(repl.nodes, TABLES)


def test_acknowledged_write_seen_by_strong_read_elsewhere(repl):
    repl[0].sql("INSERT INTO kv VALUES (1, 'start')")
    writer, reader = repl[0].connect(), repl[1].connect()
    try:
        for i in range(200):
            value = 'write-%d' % i
            writer.sql('UPDATE kv SET v = %s WHERE k = 1', (value,))
            got = reader.scalar('SELECT v FROM kv WHERE k = 1')
            assert got == value, \
                'iteration %d: node2 read %r after node1 acknowledged %r' \
                % (i, got, value)
    finally:
        writer.close()
        reader.close()
    # Every pair of nodes, in both directions.
    conns = [node.connect() for node in repl]
    try:
        for i in range(60):
            w, r = i % 3, (i + 1 + (i // 3) % 2) % 3
            value = 'pair-%d' % i
            conns[w].sql('UPDATE kv SET v = %s WHERE k = 1', (value,))
            got = conns[r].scalar('SELECT v FROM kv WHERE k = 1')
            assert got == value, '%s read %r after %s acknowledged %r' \
                % (repl[r].name, got, repl[w].name, value)
    finally:
        for conn in conns:
            conn.close()


def writer_loop(node, stop, out):
    """Insert rows into kv on node (one transaction each, retried on 40001)
    until stop is set; out gets ('ok', k) or ('error', repr)."""
    try:
        with node.connect() as conn:
            k = 1000
            while not stop.is_set():
                k += 1

                def body(c, attempt, k=k):
                    c.sql("INSERT INTO kv (k, v) VALUES (%s, 'w')", (k,))
                    c.sql("UPDATE kv SET v = v || '+' WHERE k = %s", (k,))

                # a DDL on the table makes writes fail (40001) until this
                # node applied it: what is bounded is time, not attempts
                pgcluster.run_transaction(conn, body, max_attempts=100000,
                                          deadline=60, timeout=60)
                out.append(('ok', k))
    except Exception as e:                   # reported by the test
        out.append(('error', repr(e)))


def test_alter_table_while_another_node_writes(repl):
    repl[0].sql("INSERT INTO kv VALUES (1, 'before')")
    stop, out = threading.Event(), []
    writer = threading.Thread(target=writer_loop, args=(repl[1], stop, out))
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while (len(out) < 20 and writer.is_alive()
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert len(out) >= 20, 'the writer did not get going: %r' % out[-3:]
        # DDL conflicts with every concurrent write to its table, like any
        # other serialization failure it may need a retry.
        with repl[0].connect() as conn:
            pgcluster.run_transaction(
                conn, lambda c, attempt: c.sql(
                    'ALTER TABLE kv ADD COLUMN extra int NOT NULL DEFAULT 7'))
            pgcluster.run_transaction(
                conn, lambda c, attempt: c.sql('CREATE INDEX kv_v ON kv (v)'))
        n = len(out)
        while (len(out) < n + 20 and writer.is_alive()
               and time.monotonic() < deadline + 30):
            time.sleep(0.05)
    finally:
        stop.set()
        writer.join(90)
    assert not writer.is_alive(), 'the writer hung'
    errors = [e for tag, e in out if tag == 'error']
    assert not errors, 'the writer failed: %s' % errors
    acked = [k for tag, k in out if tag == 'ok']
    assert len(acked) >= 40, 'the writer stalled around the ALTER TABLE'

    # After the DDL, a row written with the new column, from another node.
    # (Its first strong read applies the DDL there: an INSERT naming the
    # column would fail parse analysis before any hook could catch up.)
    repl[2].sql('SELECT count(*) FROM kv')
    repl[2].sql("INSERT INTO kv (k, v, extra) VALUES (2, 'after', 42)")

    state = checks.assert_tables_identical(repl.nodes, ['kv'])
    assert state['kv'][0] == 2 + len(acked)
    for node in repl:
        assert node.sql("SELECT attname FROM pg_attribute WHERE attrelid = "
                        "'kv'::regclass AND attnum > 0 AND NOT attisdropped "
                        "ORDER BY attnum") == [('k',), ('v',), ('extra',)], \
            node.name
        assert node.scalar("SELECT count(*) FROM pg_indexes "
                           "WHERE indexname = 'kv_v'") == 1, node.name
        assert node.sql('SELECT k, extra FROM kv WHERE k <= 2 ORDER BY k') \
            == [(1, 7), (2, 42)], node.name
        missing = node.scalar('SELECT count(*) FROM unnest(%s::int[]) a(k) '
                              'WHERE NOT EXISTS (SELECT FROM kv '
                              "WHERE kv.k = a.k AND v = 'w+')", (acked,))
        assert missing == 0, '%s lacks %d acknowledged rows' \
            % (node.name, missing)
