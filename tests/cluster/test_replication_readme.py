"""
The table replication example of the pg_paxos README, run verbatim on three
nodes: only the connection strings ('host=10.0.0.1', 'host=10.0.0.49') are
replaced by our nodes'.  The README calls paxos_replicate_table right after
paxos_create_group, before the other nodes join.
"""

import psycopg2
import pytest

import checks

README_CREATE_TABLE = """CREATE TABLE coordinates (
    x int,
    y int
);"""
README_CREATE_GROUP = "SELECT paxos_create_group('mokka', 'host=10.0.0.1');"
README_REPLICATE_TABLE = \
    "SELECT paxos_replicate_table('mokka', 'coordinates');"
README_JOIN_GROUP = \
    "SELECT paxos_join_group('mokka', 'host=10.0.0.1', 'host=10.0.0.49');"
README_INSERT_1 = "INSERT INTO coordinates VALUES (1,1);"
README_INSERT_2 = "INSERT INTO coordinates VALUES (2,2);"
README_SELECT = "SELECT * FROM coordinates ;"
README_UPDATE = "UPDATE coordinates SET x = x * 10;"
README_OPTIMISTIC = "SET pg_paxos.consistency_model TO 'optimistic';"
README_STRONG = "SET pg_paxos.consistency_model TO 'strong';"


def select(conn):
    """The README's SELECT; it has no ORDER BY, so compare sorted rows."""
    return sorted(conn.sql(README_SELECT))


def test_readme_table_replication(cluster):
    node_a, node_b, node_c = cluster.nodes

    # run via psql on each node
    for node in cluster:
        node.sql(README_CREATE_TABLE)

    # on one of the nodes
    node_a.sql(README_CREATE_GROUP.replace('host=10.0.0.1', node_a.connstr))
    node_a.sql(README_REPLICATE_TABLE)

    # on the others
    for node in (node_b, node_c):
        node.sql(README_JOIN_GROUP
                 .replace('host=10.0.0.1', node_a.connstr)
                 .replace('host=10.0.0.49', node.connstr))

    # Each step on a session of its own, as in the README's psql sessions.
    with node_a.connect() as conn:
        conn.sql(README_INSERT_1)
        conn.sql(README_INSERT_2)
        assert select(conn) == [(1, 1), (2, 2)]

    with node_b.connect() as conn:
        assert conn.scalar('SHOW pg_paxos.consistency_model') == 'strong'
        assert select(conn) == [(1, 1), (2, 2)], \
            'node 2 does not see the inserts acknowledged on node 1'
        conn.sql(README_UPDATE)

    with node_c.connect() as conn:
        assert select(conn) == [(10, 1), (20, 2)], \
            'node 3 does not see the update acknowledged on node 2'

    expected = [(10, 1), (20, 2)]
    for node in cluster:
        with node.connect() as conn:
            assert select(conn) == expected, node.name

    # The consistency model can be changed in the session, and back.
    # Every node has applied everything above, so optimistic reads (local
    # state) show it too.
    for node in cluster:
        with node.connect() as conn:
            conn.sql(README_OPTIMISTIC)
            assert conn.scalar('SHOW pg_paxos.consistency_model') == \
                'optimistic'
            assert select(conn) == expected, '%s, optimistic' % node.name
            conn.sql(README_STRONG)
            assert conn.scalar('SHOW pg_paxos.consistency_model') == 'strong'
            assert select(conn) == expected, '%s, strong' % node.name

    # A write made while a session reads optimistically: once it switches
    # back to strong, its next read sees the write.
    with node_c.connect() as conn:
        conn.sql(README_OPTIMISTIC)
        select(conn)
        node_a.sql('INSERT INTO coordinates VALUES (3,3);')
        conn.sql(README_STRONG)
        assert select(conn) == [(3, 3), (10, 1), (20, 2)]

    with node_a.connect() as conn:
        with pytest.raises(psycopg2.Error):
            conn.sql("SET pg_paxos.consistency_model TO 'sometimes';")

    checks.assert_tables_identical(cluster.nodes, ['coordinates'])
