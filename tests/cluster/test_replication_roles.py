"""
Applications do not run as superusers: a role with ordinary table
privileges writes and reads replicated tables on any node (pg_paxos does
its own bookkeeping with its own rights), but cannot call pg_paxos's
functions or read its metadata.
"""

import psycopg2
import pytest

import checks
import pgcluster

GROUP = 'roles'
DDL = "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);"


def app_conn(node):
    conn = psycopg2.connect(node.connstr.replace('user=postgres', 'user=app'))
    conn.autocommit = True
    return conn


def test_ordinary_role_writes_and_reads_everywhere(cluster):
    checks.setup_replication(cluster, GROUP, DDL, ['notes'])
    for node in cluster:
        node.sql('CREATE ROLE app LOGIN')
        node.sql('GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO app')

    writer, reader = app_conn(cluster[0]), app_conn(cluster[1])
    try:
        with writer.cursor() as cur:
            cur.execute("INSERT INTO notes VALUES (1, 'from app')")
            cur.execute("UPDATE notes SET body = body || '!' WHERE id = 1")
        with reader.cursor() as cur:
            cur.execute('SELECT id, body FROM notes')       # strong read
            assert cur.fetchall() == [(1, 'from app!')]
            cur.execute("INSERT INTO notes VALUES (2, 'second')")
        with writer.cursor() as cur:
            cur.execute('SELECT count(*) FROM notes')
            assert cur.fetchone() == (2,)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("SELECT paxos_append('app/1', %s, 'x')", (GROUP,))
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute('SELECT count(*) FROM pgp_metadata.round')
    finally:
        writer.close()
        reader.close()
    checks.assert_tables_identical(cluster.nodes, ['notes'])
