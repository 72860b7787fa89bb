"""
Strong reads through prepared statements: parse analysis runs once, when
the statement is prepared, so catching up must also happen when it is
executed again.  A write acknowledged on one node must be seen by the
next EXECUTE on another.
"""

import checks

GROUP = 'reads'
DDL = "CREATE TABLE kv (k int PRIMARY KEY, v text NOT NULL);"


def test_prepared_read_sees_acknowledged_write(cluster):
    checks.setup_replication(cluster, GROUP, DDL, ['kv'])
    cluster[0].sql("INSERT INTO kv VALUES (1, 'start')")
    writer, reader = cluster[0].connect(), cluster[1].connect()
    try:
        reader.sql('PREPARE get AS SELECT v FROM kv WHERE k = 1')
        assert reader.scalar('EXECUTE get') == 'start'
        for i in range(100):
            value = 'write-%d' % i
            writer.sql('UPDATE kv SET v = %s WHERE k = 1', (value,))
            got = reader.scalar('EXECUTE get')
            assert got == value, 'write %d acknowledged on node1, ' \
                'EXECUTE on node2 read %r' % (i, got)

        # optimistic reads are local: the same statement, no catching up
        reader.sql("SET pg_paxos.consistency_model TO 'optimistic'")
        assert reader.scalar('EXECUTE get').startswith('write-')
    finally:
        writer.close()
        reader.close()
