"""
Transactions on replicated tables, written on any node with ordinary SQL:
what commits reaches every node as a whole, what rolls back reaches none,
however the writes were made (COPY, PL/pgSQL, prepared statements, writable
CTEs, TRUNCATE), and tables without a primary key keep duplicate rows right.
Every check reads every node with strong reads (the default).
"""

import io

import psycopg2
import pytest

import checks
import pgcluster

GROUP = 'txns'

DDL = """
CREATE TABLE items (k int PRIMARY KEY, v text NOT NULL);
CREATE TABLE notes (id int PRIMARY KEY, item int, body text);
CREATE TABLE loose (a int, b text);
"""
TABLES = ['items', 'notes', 'loose']


@pytest.fixture
def repl(cluster):
    checks.setup_replication(cluster, GROUP, DDL, TABLES)
    return cluster


def everywhere(cluster, query, args=None):
    """The rows of query on every node (a new strong session each); fail
    unless all nodes agree.  Returns them."""
    results = {}
    for node in cluster:
        with node.connect() as conn:
            results[node.name] = conn.sql(query, args)
    first = results[cluster[0].name]
    for name, rows in results.items():
        assert rows == first, \
            '%r differs between nodes:\n%s' % (query, '\n'.join(
                '  %s: %r' % (n, r[:20]) for n, r in results.items()))
    return first


def items(cluster):
    return everywhere(cluster, 'SELECT k, v FROM items ORDER BY k')


def max_round(node):
    """The last round holding transactions (leader elections, which go on
    in the background, append rounds of their own)."""
    top = node.scalar('SELECT paxos_max_group_round(%s)', (GROUP,))
    node.sql('SELECT paxos_learn_log(%s, %s)', (GROUP, top))
    return node.scalar("SELECT max(round_num) FROM pgp_metadata.round "
                       "WHERE group_id = %s AND value_id LIKE 'pg_paxos:txn:%%'",
                       (GROUP,))


def test_rollback_leaves_nothing(repl):
    repl[0].sql("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    assert items(repl) == [(1, 'a'), (2, 'b')]
    before = max_round(repl[0])

    with repl[1].connect() as conn:
        conn.sql('BEGIN')
        conn.sql("INSERT INTO items VALUES (3, 'c')")
        conn.sql("UPDATE items SET v = 'changed' WHERE k = 1")
        conn.sql('DELETE FROM items WHERE k = 2')
        conn.sql("INSERT INTO notes VALUES (1, 3, 'rolled back')")
        conn.sql("INSERT INTO loose VALUES (1, 'rolled back')")
        assert conn.command('ROLLBACK') == 'ROLLBACK'

        # A transaction that failed half-way, then ROLLBACK.
        conn.sql('BEGIN')
        conn.sql("INSERT INTO items VALUES (4, 'd')")
        with pytest.raises(psycopg2.errors.UniqueViolation):
            conn.sql("INSERT INTO items VALUES (1, 'duplicate')")
        conn.sql('ROLLBACK')

        # The same with COMMIT: PostgreSQL answers ROLLBACK.
        conn.sql('BEGIN')
        conn.sql("INSERT INTO items VALUES (5, 'e')")
        with pytest.raises(psycopg2.errors.DivisionByZero):
            conn.sql('SELECT 1 / 0')
        assert conn.command('COMMIT') == 'ROLLBACK'

    assert max_round(repl[0]) == before, 'a rolled back transaction ' \
        'was appended to the log'
    assert items(repl) == [(1, 'a'), (2, 'b')]
    assert everywhere(repl, 'SELECT count(*) FROM notes') == [(0,)]
    assert everywhere(repl, 'SELECT count(*) FROM loose') == [(0,)]

    # Writes go on as usual afterwards.
    repl[2].sql("INSERT INTO items VALUES (3, 'c')")
    assert items(repl) == [(1, 'a'), (2, 'b'), (3, 'c')]


def test_rollback_to_savepoint(repl):
    with repl[2].connect() as conn:
        conn.sql('BEGIN')
        conn.sql("INSERT INTO items VALUES (1, 'keep')")
        conn.sql('SAVEPOINT s1')
        conn.sql("INSERT INTO items VALUES (2, 'drop')")
        conn.sql("UPDATE items SET v = 'dropped' WHERE k = 1")
        conn.sql("INSERT INTO notes VALUES (1, 2, 'drop')")
        conn.sql('ROLLBACK TO SAVEPOINT s1')
        conn.sql("INSERT INTO items VALUES (3, 'keep')")
        conn.sql('SAVEPOINT s2')
        conn.sql("INSERT INTO items VALUES (4, 'keep')")
        conn.sql('SAVEPOINT s2b')                  # nested, released
        conn.sql("INSERT INTO notes VALUES (4, 4, 'keep')")
        conn.sql('RELEASE SAVEPOINT s2')
        conn.sql('SAVEPOINT s3')
        conn.sql('DELETE FROM items WHERE k = 3')
        conn.sql('ROLLBACK TO SAVEPOINT s3')
        conn.sql('SAVEPOINT s4')                   # an error inside
        with pytest.raises(psycopg2.errors.UniqueViolation):
            conn.sql("INSERT INTO items VALUES (1, 'duplicate')")
        conn.sql('ROLLBACK TO SAVEPOINT s4')
        conn.sql("UPDATE items SET v = 'kept' WHERE k = 1")
        assert conn.command('COMMIT') == 'COMMIT'

    assert items(repl) == [(1, 'kept'), (3, 'keep'), (4, 'keep')]
    assert everywhere(repl, 'SELECT * FROM notes') == [(4, 4, 'keep')]


def test_multi_table_all_or_nothing(repl):
    repl[0].sql("INSERT INTO items SELECT g, 'v' FROM generate_series(1, 5) g")
    with repl[0].connect() as conn:
        conn.sql('BEGIN')
        conn.sql("INSERT INTO items VALUES (10, 'ten')")
        conn.sql("INSERT INTO notes VALUES (1, 10, 'note')")
        conn.sql("INSERT INTO loose VALUES (10, 'ten')")
        conn.sql("UPDATE items SET v = 'x' WHERE k = 1")
        assert conn.command('COMMIT') == 'COMMIT'
    assert items(repl) == [(1, 'x'), (2, 'v'), (3, 'v'), (4, 'v'), (5, 'v'),
                           (10, 'ten')]
    assert everywhere(repl, 'SELECT * FROM notes') == [(1, 10, 'note')]
    assert everywhere(repl, 'SELECT * FROM loose') == [(10, 'ten')]

    # A transaction over three tables that loses certification on one row:
    # none of it persists, on any node.
    with repl[1].connect() as conn:
        conn.sql('BEGIN')
        conn.sql("INSERT INTO items VALUES (20, 'lost')")
        conn.sql("INSERT INTO notes VALUES (2, 20, 'lost')")
        conn.sql("INSERT INTO loose VALUES (20, 'lost')")
        conn.sql("UPDATE items SET v = 'loser' WHERE k = 5")
        repl[2].sql("UPDATE items SET v = 'winner' WHERE k = 5", timeout=30)
        with pytest.raises(psycopg2.errors.SerializationFailure):
            conn.sql('COMMIT')
        conn.sql('ROLLBACK')          # no transaction left: only a warning
    assert items(repl)[-2:] == [(5, 'winner'), (10, 'ten')]
    assert everywhere(repl, 'SELECT id FROM notes') == [(1,)]
    assert everywhere(repl, 'SELECT * FROM loose') == [(10, 'ten')]


def test_copy_100k_rows(repl):
    rows = 100000
    data = io.StringIO(''.join('%d\tcopied %d\n' % (i, i)
                               for i in range(1, rows + 1)))
    conn = psycopg2.connect(repl[0].connstr, connect_timeout=30,
                            options='-c statement_timeout=120000')
    try:
        with conn.cursor() as cur:
            cur.copy_expert('COPY items (k, v) FROM STDIN', data)
            assert cur.rowcount == rows
        conn.commit()
        # copy_from, into a table without a primary key, duplicates included
        with conn.cursor() as cur:
            cur.copy_from(io.StringIO('1\tdup\n' * 3 + '2\t\\N\n'), 'loose',
                          columns=('a', 'b'))
        conn.commit()
    finally:
        conn.close()

    assert everywhere(repl, 'SELECT count(*), sum(k), min(k), max(k) '
                            'FROM items') == [(rows, rows * (rows + 1) // 2,
                                               1, rows)]
    assert everywhere(repl, 'SELECT a, b, count(*) FROM loose GROUP BY a, b '
                            'ORDER BY a') == [(1, 'dup', 3), (2, None, 1)]
    checks.assert_tables_identical(repl.nodes, TABLES)


PLPGSQL_FUNCTION = """
CREATE FUNCTION fill_items(n int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. n LOOP
        INSERT INTO items VALUES (i, 'f' || i);
    END LOOP;
    UPDATE items SET v = v || '+' WHERE k % 10 = 0;
    DELETE FROM items WHERE k % 7 = 0;
    BEGIN                       -- a subtransaction that rolls back
        INSERT INTO items VALUES (-1, 'lost');
        INSERT INTO notes VALUES (-1, -1, 'lost');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        INSERT INTO notes VALUES (0, 0, 'handled');
    END;
    INSERT INTO notes SELECT k, k, 'from plpgsql' FROM items WHERE k <= 3;
    RETURN (SELECT count(*) FROM items);
END $$;
"""


def test_large_entry_outlasts_the_rpc_timeout(cluster_factory):
    """A transaction of 100,000 rows is one entry of about 6 MB, which
    acceptors take longer to store and flush than the usual request: with
    pg_paxos.rpc_timeout at 200 ms the proposer waits for it in proportion
    to its size (fanout.c, PaxosRpcTimeoutFor) instead of giving up on
    every acceptor and failing the commit ("could not reach a majority").
    Requests whose answers carry values of a size not known beforehand (a
    learner's prepare or copy of chosen rounds) keep the plain timeout, so
    the nodes are read back by waiting for them to converge by themselves,
    with the default one."""
    cluster = cluster_factory(3)
    checks.setup_replication(cluster, GROUP, DDL, TABLES)
    for node in cluster:
        node.sql("ALTER SYSTEM SET pg_paxos.rpc_timeout = '200ms'")
        node.sql('SELECT pg_reload_conf()')
    leader = checks.wait_agreed_leader(cluster.nodes, GROUP)
    follower = [n for n in cluster if n is not leader][0]
    for node, first in ((follower, 1), (leader, 100001)):
        with node.connect() as conn:
            # the leader may not have applied the first one yet: 40001, retried
            pgcluster.run_transaction(conn, lambda c, attempt: c.sql(
                "INSERT INTO items SELECT g, 'large entry ' || g "
                "FROM generate_series(%s, %s) g", (first, first + 99999),
                timeout=120), timeout=120, deadline=120)
    # learning a round this large asks for its value with the plain timeout;
    # the nodes' workers retry it by themselves (no strong read waits on it)
    for node in cluster:
        node.sql('ALTER SYSTEM RESET pg_paxos.rpc_timeout')
        node.sql('SELECT pg_reload_conf()')
    counts = checks.wait_tables_identical(cluster.nodes, TABLES, deadline=120)
    assert counts['items'][0] == 200000


def test_plpgsql_function(repl):
    # The function exists on its origin only: the values travel, not calls.
    origin = repl[1]
    origin.sql(PLPGSQL_FUNCTION)
    assert origin.scalar('SELECT fill_items(100)') == 100 - 14
    with repl[2].connect() as conn:
        conn.sql("DO $$ BEGIN UPDATE items SET v = 'do' WHERE k = 1; END $$")

    expected = [(k, 'do' if k == 1 else 'f%d%s' % (k, '+' if k % 10 == 0
                                                   else ''))
                for k in range(1, 101) if k % 7 != 0]
    assert items(repl) == expected
    assert everywhere(repl, 'SELECT id, body FROM notes ORDER BY id') == \
        [(0, 'handled'), (1, 'from plpgsql'), (2, 'from plpgsql'),
         (3, 'from plpgsql')]


def test_prepared_statements(repl):
    with repl[2].connect() as conn:
        conn.sql('PREPARE ins(int, text) AS INSERT INTO items VALUES ($1, $2)')
        conn.sql('PREPARE upd(int) AS '
                 "UPDATE items SET v = v || '!' WHERE k <= $1")
        conn.sql('PREPARE del(int) AS DELETE FROM items WHERE k = $1')
        # More than five executions: PostgreSQL switches to a generic plan.
        for k in range(1, 11):
            conn.sql('EXECUTE ins(%s, %s)', (k, 'p%d' % k))
        conn.sql('BEGIN')
        conn.sql('EXECUTE upd(3)')
        conn.sql('EXECUTE del(10)')
        assert conn.command('COMMIT') == 'COMMIT'
        conn.sql("SET plan_cache_mode TO 'force_generic_plan'")
        conn.sql('PREPARE ins2(int, text) AS '
                 'INSERT INTO items VALUES ($1, $2)')
        for k in range(11, 14):
            conn.sql('EXECUTE ins2(%s, %s)', (k, 'g%d' % k))
        conn.sql('EXECUTE del(11)')

    expected = [(k, 'p%d!' % k) for k in range(1, 4)] + \
        [(k, 'p%d' % k) for k in range(4, 10)] + [(12, 'g12'), (13, 'g13')]
    assert items(repl) == expected


def test_writable_ctes(repl):
    repl[0].sql("INSERT INTO items SELECT g, 'v' || g "
                "FROM generate_series(1, 10) g")
    with repl[1].connect() as conn:
        assert conn.scalar("WITH ins AS (INSERT INTO items "
                           "VALUES (11, 'cte'), (12, 'cte') RETURNING *) "
                           "SELECT count(*) FROM ins") == 2
    with repl[2].connect() as conn:
        conn.sql('WITH moved AS (DELETE FROM items WHERE k <= 3 '
                 'RETURNING k, v) '
                 'INSERT INTO notes SELECT k, k, v FROM moved')
    with repl[0].connect() as conn:
        assert conn.scalar("WITH up AS (UPDATE items SET v = 'up' "
                           "WHERE k > 10 RETURNING k) "
                           "SELECT array_agg(k ORDER BY k) FROM up") == \
            [11, 12]

    expected = [(k, 'v%d' % k) for k in range(4, 11)] + [(11, 'up'),
                                                         (12, 'up')]
    assert items(repl) == expected
    assert everywhere(repl, 'SELECT * FROM notes ORDER BY id') == \
        [(1, 1, 'v1'), (2, 2, 'v2'), (3, 3, 'v3')]


def test_truncate(repl):
    repl[0].sql("INSERT INTO items SELECT g, 'v' "
                "FROM generate_series(1, 100) g")
    repl[0].sql("INSERT INTO loose SELECT g, 'v' "
                "FROM generate_series(1, 10) g")
    assert everywhere(repl, 'SELECT count(*) FROM items') == [(100,)]

    repl[1].sql('TRUNCATE items')
    assert items(repl) == []
    assert everywhere(repl, 'SELECT count(*) FROM loose') == [(10,)]

    with repl[2].connect() as conn:
        conn.sql('BEGIN')
        conn.sql("INSERT INTO items SELECT g, 'gone' "
                 "FROM generate_series(1, 5) g")
        conn.sql('TRUNCATE items, loose')
        conn.sql("INSERT INTO items VALUES (7, 'after')")
        assert conn.command('COMMIT') == 'COMMIT'
    assert items(repl) == [(7, 'after')]
    assert everywhere(repl, 'SELECT count(*) FROM loose') == [(0,)]

    with repl[0].connect() as conn:
        conn.sql('BEGIN')
        conn.sql('TRUNCATE items')
        conn.sql('ROLLBACK')
    assert items(repl) == [(7, 'after')]


def test_transaction_without_replicated_writes(repl):
    for node in repl:
        node.sql('CREATE TABLE local_only (k int PRIMARY KEY, v text)')
    repl[0].sql("INSERT INTO items VALUES (1, 'replicated')")
    assert items(repl) == [(1, 'replicated')]
    before = max_round(repl[0])

    with repl[0].connect() as conn:
        conn.sql('BEGIN')
        conn.sql("INSERT INTO local_only VALUES (1, 'node1')")
        conn.sql("UPDATE local_only SET v = v || '!'")
        assert conn.sql('SELECT k, v FROM items') == [(1, 'replicated')]
        assert conn.command('COMMIT') == 'COMMIT'
        conn.sql('CREATE TEMP TABLE scratch AS SELECT * FROM items')
        conn.sql("INSERT INTO scratch VALUES (2, 'temp')")
    repl[1].sql("INSERT INTO local_only VALUES (2, 'node2')")
    with repl[2].connect() as conn:        # read-only on a replicated table
        conn.sql('BEGIN')
        assert conn.sql('SELECT k, v FROM items') == [(1, 'replicated')]
        assert conn.command('COMMIT') == 'COMMIT'

    assert max_round(repl[0]) == before, \
        'transactions without replicated writes were appended to the log'
    assert [n.sql('SELECT * FROM local_only') for n in repl] == \
        [[(1, 'node1!')], [(2, 'node2')], []]
    assert items(repl) == [(1, 'replicated')]


def loose_rows(cluster):
    return everywhere(cluster, 'SELECT a, b, count(*) FROM loose '
                               'GROUP BY a, b ORDER BY a, b')


def test_table_without_primary_key(repl):
    repl[0].sql("INSERT INTO loose VALUES (1, 'x'), (1, 'x'), (1, 'x'), "
                "(2, 'y'), (2, 'y'), (3, NULL)")
    assert loose_rows(repl) == [(1, 'x', 3), (2, 'y', 2), (3, None, 1)]

    repl[1].sql("UPDATE loose SET b = 'z' WHERE a = 1")
    assert loose_rows(repl) == [(1, 'z', 3), (2, 'y', 2), (3, None, 1)]

    # One of two identical rows.
    repl[2].sql('DELETE FROM loose WHERE ctid = '
                '(SELECT ctid FROM loose WHERE a = 2 LIMIT 1)')
    assert loose_rows(repl) == [(1, 'z', 3), (2, 'y', 1), (3, None, 1)]

    repl[0].sql("UPDATE loose SET b = 'w' WHERE ctid = "
                "(SELECT ctid FROM loose WHERE a = 1 LIMIT 1)")
    assert loose_rows(repl) == [(1, 'w', 1), (1, 'z', 2), (2, 'y', 1),
                                (3, None, 1)]

    # A row with a NULL is found by its whole value too.
    repl[1].sql('UPDATE loose SET a = 4 WHERE b IS NULL')
    assert loose_rows(repl) == [(1, 'w', 1), (1, 'z', 2), (2, 'y', 1),
                                (4, None, 1)]

    repl[2].sql("DELETE FROM loose WHERE a = 1 AND b = 'z'")
    repl[0].sql("INSERT INTO loose VALUES (2, 'y')")
    assert loose_rows(repl) == [(1, 'w', 1), (2, 'y', 2), (4, None, 1)]
    checks.assert_tables_identical(repl.nodes, TABLES)


def test_replicate_table_then_write_elsewhere_at_once(cluster):
    """paxos_replicate_table on a formed group: a write committed on
    another node right after the call returned is replicated (every node
    starts replicating at the round of that call)."""
    for node in cluster:
        node.sql('CREATE TABLE late (k int PRIMARY KEY, v text)')
    cluster.form_group(GROUP)
    cluster[0].sql('SELECT paxos_replicate_table(%s, %s)', (GROUP, 'late'))
    cluster[1].sql("INSERT INTO late VALUES (1, 'right after')")
    cluster[2].sql("INSERT INTO late VALUES (2, 'right after')")
    assert everywhere(cluster, 'SELECT * FROM late ORDER BY k') == \
        [(1, 'right after'), (2, 'right after')]
