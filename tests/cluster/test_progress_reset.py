"""
What a node keeps about a group in its processes and shared memory (how
far it accepted, certified and applied it, apply_progress.c; the
certification index cache, certify.c; statements prepared per table,
apply_rows.c) must not outlive the group.  The servers keep running while
the extension is dropped and created again and a group of the same name is
formed anew, on a new table of the same name: every write acknowledged on
one node must still be seen by the next strong read on the others, and the
nodes must end identical.
"""

import checks

GROUP = 'again'
DDL = "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL);"


def writes_seen_by_strong_reads(cluster, count):
    """Each write acknowledged on node1 is seen by the next strong read on
    node2 and node3."""
    writer = cluster[0].connect()
    readers = [cluster[1].connect(), cluster[2].connect()]
    try:
        writer.sql('INSERT INTO kv VALUES (1, 0) ON CONFLICT (k) DO NOTHING')
        for i in range(1, count + 1):
            writer.sql('UPDATE kv SET v = %s WHERE k = 1', (i,))
            for r in readers:
                got = r.scalar('SELECT v FROM kv WHERE k = 1')
                assert got == i, ('write %d acknowledged on node1, a strong '
                                  'read read %r' % (i, got))
    finally:
        writer.close()
        for r in readers:
            r.close()


def test_group_formed_again_under_the_same_name(cluster):
    checks.setup_replication(cluster, GROUP, DDL, ['kv'])
    writes_seen_by_strong_reads(cluster, 60)

    # (without the extension the table is an ordinary one: dropped here only)
    for node in cluster:
        node.sql('DROP EXTENSION pg_paxos CASCADE')
        node.sql('DROP TABLE kv')
        node.sql('CREATE EXTENSION pg_paxos')

    checks.setup_replication(cluster, GROUP, DDL, ['kv'])
    writes_seen_by_strong_reads(cluster, 30)
    checks.assert_tables_identical(cluster.nodes, ['kv'])
