"""
The replication tests' own helpers must be able to fail: tables that differ
on one node are reported, and run_transaction retries only what it should.
Runs on plain (not replicated) tables, so it needs no table replication.
"""

import psycopg2
import pytest

import checks
import pgcluster

DDL = ('CREATE TABLE keyed (k int PRIMARY KEY, v text);'
       'CREATE TABLE loose (a int, b text);')


@pytest.mark.parametrize('cluster', [2], indirect=True)
def test_identical_tables_helper_reads_every_node(cluster):
    one, two = cluster.nodes
    for node in cluster:
        node.sql(DDL)
    # Same rows, inserted in a different order: identical.
    one.sql("INSERT INTO keyed SELECT g, 'v' || g "
            "FROM generate_series(1, 50) g")
    two.sql("INSERT INTO keyed SELECT g, 'v' || g "
            "FROM generate_series(50, 1, -1) g")
    for node in cluster:
        node.sql("INSERT INTO loose VALUES (1, 'x'), (1, 'x'), (2, 'y')")
    state = checks.assert_tables_identical(cluster.nodes, ['keyed', 'loose'],
                                           consistency=None)
    assert state['keyed'][0] == 50 and state['loose'][0] == 3

    # One value differs on the second node only.
    two.sql("UPDATE keyed SET v = 'changed' WHERE k = 17")
    with pytest.raises(AssertionError) as info:
        checks.assert_tables_identical(cluster.nodes, ['keyed'],
                                       consistency=None)
    assert 'node2' in str(info.value) and 'changed' in str(info.value)
    two.sql("UPDATE keyed SET v = 'v17' WHERE k = 17")
    checks.assert_tables_identical(cluster.nodes, ['keyed'], consistency=None)

    # A table without a primary key: one duplicate more is a difference.
    two.sql("INSERT INTO loose VALUES (1, 'x')")
    with pytest.raises(AssertionError) as info:
        checks.wait_tables_identical(cluster.nodes, ['loose'], deadline=1,
                                     consistency=None)
    assert '(1,x)' in str(info.value)


@pytest.mark.parametrize('cluster', [1], indirect=True)
def test_run_transaction_retries_serialization_failures(cluster):
    node = cluster[0]
    node.sql(DDL + "INSERT INTO keyed VALUES (1, 'start')")
    a, b = node.connect(), node.connect()
    try:
        def body(conn, attempt):
            conn.sql('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ')
            conn.sql('SELECT v FROM keyed WHERE k = 1')
            if attempt == 0:        # a concurrent update: 40001 below
                b.sql("UPDATE keyed SET v = 'other' WHERE k = 1")
            conn.sql("UPDATE keyed SET v = %s WHERE k = 1",
                     ('attempt %d' % attempt,))
            return attempt

        res = pgcluster.run_transaction(a, body)
        assert res.value == 1 and res.attempts == 2
        assert [x[1:3] for x in res.aborts] == [('body', '40001')]
        assert node.scalar('SELECT v FROM keyed WHERE k = 1') == 'attempt 1'

        # Other errors are not retried.
        with pytest.raises(psycopg2.errors.DivisionByZero):
            pgcluster.run_transaction(
                a, lambda conn, attempt: conn.sql('SELECT 1 / 0'))

        # A COMMIT that only rolls back is no success.
        def swallows_error(conn, attempt):
            try:
                conn.sql('SELECT 1 / 0')
            except psycopg2.Error:
                pass

        with pytest.raises(AssertionError, match='ROLLBACK'):
            pgcluster.run_transaction(a, swallows_error)

        # Giving up.
        with pytest.raises(pgcluster.RetriesExhausted):
            pgcluster.run_transaction(
                a, lambda conn, attempt: conn.sql(
                    "DO $$ BEGIN RAISE EXCEPTION 'x' USING "
                    "ERRCODE = 'serialization_failure'; END $$"),
                max_attempts=3)
        assert a.scalar('SELECT 1') == 1    # the connection is still usable
    finally:
        a.close()
        b.close()
