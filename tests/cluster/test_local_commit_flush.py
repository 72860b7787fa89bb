"""
A commit whose writes are all in the log skips its own WAL flush
(local_writes.c): a majority accepted the entry durably, and if a crash
loses the local commit, the applier applies the entry from the log.  A
transaction that wrote anything the log does not hold flushes as before.

The test makes a crash lose the commits that did not flush: it freezes the
WAL writer of a follower (SIGSTOP), commits transactions of each kind
there, and kills all of the node's processes with SIGKILL.  pg_waldump
then shows which commit records reached the disk.  Only the last commit can
be lost: the next transaction's entry, accepted here, flushes the WAL
before it.  Another process may still flush it now and then (under the
full suite's load it happened once): a crash that kept it proves nothing
either way, so the crash is tried again, up to ATTEMPTS times, and every
attempt must lose nothing.  After a restart, every
replicated row is back and the nodes are identical, and what only the
local commits held (a local table's row, a large object, a new table)
survived.
"""

import os
import re
import signal
import subprocess

import psycopg2
import pytest

import checks
import pgcluster

GROUP = 'flush'
DDL = """
CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
CREATE TABLE loc (id int PRIMARY KEY);
"""
TABLES = ['t']


def commit(conn, statements):
    """Run statements in one transaction; return its xid."""
    cur = conn.cursor()
    for s in statements:
        cur.execute(s)
    cur.execute('SELECT pg_current_xact_id()::text')
    xid = int(cur.fetchone()[0])
    conn.commit()
    return xid


def flushed_commits(node, start_lsn):
    """xids of the commit records in the node's WAL files from start_lsn."""
    out = subprocess.run([os.path.join(pgcluster.pg_bindir(), 'pg_waldump'),
                          '-p', os.path.join(node.datadir, 'pg_wal'),
                          '-s', start_lsn, '-r', 'Transaction'],
                         capture_output=True, text=True).stdout
    return {int(m.group(1)) for m in
            re.finditer(r'tx:\s+(\d+), lsn: \S+, prev \S+, desc: COMMIT', out)}


ATTEMPTS = 3
LAST = {
    'replicated only': ["INSERT INTO t VALUES ({b} + 5, 'x')",
                        "UPDATE t SET v = 'y{b}' WHERE id = 0"],
    'temporary table': ["INSERT INTO t VALUES ({b} + 5, 'x')",
                        "UPDATE t SET v = 'y{b}' WHERE id = 0",
                        'INSERT INTO scratch VALUES (5)'],
}


def crash_after_commits(cluster, last, b):
    """On a follower whose WAL writer is frozen: commit transactions of
    each kind (ids b + 1 to b + 5), the one of kind `last` at the end,
    kill the node, check what reached its WAL and that nothing was lost
    after a restart; return whether the last commit had reached the WAL."""
    leader = checks.wait_agreed_leader(cluster.nodes, GROUP)
    node = [n for n in cluster if n is not leader][0]
    walwriter = node.scalar("SELECT pid FROM pg_stat_activity "
                            "WHERE backend_type = 'walwriter'")
    start_lsn = node.scalar('SELECT pg_current_wal_insert_lsn()::text')
    conn = psycopg2.connect(node.connstr)
    commit(conn, ['CREATE TEMP TABLE scratch (i int)'])
    pids = node.server_pids()
    os.kill(walwriter, signal.SIGSTOP)
    try:
        # flushed ones first: a flush writes every commit before it too
        flushed = {
            'local table': commit(conn, ["INSERT INTO t VALUES (%d, 'x')" % (b + 1),
                                         'INSERT INTO loc VALUES (%d)' % (b + 1)]),
            'large object': commit(conn, ["INSERT INTO t VALUES (%d, 'x')" % (b + 2),
                                          "SELECT lo_from_bytea(%d, 'lo')" % (4242 + b)]),
            'utility': commit(conn, ["INSERT INTO t VALUES (%d, 'x')" % (b + 3),
                                     'CREATE TABLE made_here_%d (i int)' % b]),
            'flush_local_commits': commit(conn, [
                'SET LOCAL pg_paxos.flush_local_commits = on',
                "INSERT INTO t VALUES (%d, 'x')" % (b + 4)]),
        }
        skipped = commit(conn, [q.format(b=b) for q in LAST[last]])
    finally:
        checks.kill_processes(node, pids)
    conn.close()

    on_disk = flushed_commits(node, start_lsn)
    for what, xid in flushed.items():
        assert xid in on_disk, '%s: commit %d was not flushed' % (what, xid)

    node.start()
    checks.wait_tables_identical(cluster.nodes, TABLES)
    rows = dict(node.sql('SELECT id, v FROM t WHERE id = 0 OR id > %s', (b,)))
    assert rows == {0: 'y%d' % b, b + 1: 'x', b + 2: 'x', b + 3: 'x',
                    b + 4: 'x', b + 5: 'x'}
    assert node.scalar('SELECT count(*) FROM loc WHERE id = %s', (b + 1,)) == 1
    assert node.scalar('SELECT count(*) FROM pg_largeobject_metadata '
                       'WHERE oid = %s', (4242 + b,)) == 1
    assert node.scalar("SELECT to_regclass('made_here_%d') IS NOT NULL" % b)
    return skipped in on_disk


@pytest.mark.parametrize('last', sorted(LAST))
def test_commit_held_by_the_log_skips_its_flush(cluster_factory, last):
    cluster = cluster_factory(3, {'pg_paxos.leader_timeout': '500ms'})
    checks.setup_replication(cluster, GROUP, DDL, TABLES)
    cluster[0].sql("INSERT INTO t VALUES (0, 'before')")
    checks.wait_tables_identical(cluster.nodes, TABLES)

    kept = []
    for attempt in range(1, ATTEMPTS + 1):
        kept.append(crash_after_commits(cluster, last, 10 * attempt))
        if not kept[-1]:
            break
    assert not all(kept), ('%s: the last commit reached the WAL in each of '
                           '%d crashes' % (last, len(kept)))
