"""
A transaction id names one transaction only within one life of a server.
The applier waits for the transaction that originated an entry on this
node (apply.c, WaitForLocalOrigin) until it ends, by its xid.  A crash
loses every xid that never reached the WAL, and the restarted server hands
those ids out again: an entry whose origin transaction died in the crash
then names someone else's transaction, or the applier's own, which it
would wait for forever (the CI run that found this: a node stuck for 30 s
after a restart in test_local_commit_flush).

The test makes a follower lose a committed transaction's xid: its WAL
writer frozen, the leader's links to it cut so that no accept reaches it,
a commit whose writes are all in the log skips its flush
(local_writes.c), then a crash: SIGKILL of every process, or of the WAL
writer alone, after which the postmaster restarts the others itself
(restart_after_crash) with shared memory made afresh.  Back while cut off
from its peers (so nothing is applied yet), the node gives that xid again
to a session of the test, which keeps it open; once the links heal, the
node must apply the entry from the log and converge while that session is
still open.
"""

import os
import re
import signal
import subprocess

import psycopg2
import pytest

import checks
import pgcluster

GROUP = 'lives'
DDL = 'CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);'
TABLES = ['t']
ATTEMPTS = 5


def records_of(node, xid, start_lsn):
    """How many WAL records of transaction xid reached the node's disk."""
    out = subprocess.run([os.path.join(pgcluster.pg_bindir(), 'pg_waldump'),
                          '-p', os.path.join(node.datadir, 'pg_wal'),
                          '-s', start_lsn],
                         capture_output=True, text=True).stdout
    return len(re.findall(r'tx:\s+%d,' % xid, out))


def crash_losing_a_commit(cluster, net, node, b, crash):
    """Commit a transaction on node (a follower) that skips its flush, with
    the leader's links to node cut and its WAL writer frozen, cut node off
    from its peers and crash it: 'server' kills every process of the node
    (restarted here, cut off), 'children' only its WAL writer, and the
    postmaster restarts the others itself (restart_after_crash), with
    shared memory made afresh.  Returns the transaction's xid and, for a
    server crash, how many of its WAL records reached the disk."""
    walwriter = node.scalar("SELECT pid FROM pg_stat_activity "
                            "WHERE backend_type = 'walwriter'")
    start_lsn = node.scalar('SELECT pg_current_wal_insert_lsn()::text')
    conn = psycopg2.connect(node.connstr)
    pids = node.server_pids() if crash == 'server' else [walwriter]
    others = [n for n in cluster if n is not node]
    os.kill(walwriter, signal.SIGSTOP)
    try:
        net.cut([(o, node) for o in others])
        cur = conn.cursor()
        cur.execute("INSERT INTO t VALUES (%s, 'x')", (b,))
        cur.execute("UPDATE t SET v = %s WHERE id = 0", ('y%d' % b,))
        cur.execute('SELECT pg_current_xact_id()::text')
        xid = int(cur.fetchone()[0])
        conn.commit()
        net.isolate(node)
    finally:
        checks.kill_processes(node, pids)
    conn.close()
    if crash == 'children':
        checks.wait_for('the node back after its crash', lambda: accepts(node),
                        deadline=60)
        return xid, None
    on_disk = records_of(node, xid, start_lsn)
    node.start()
    return xid, on_disk


def accepts(node):
    """Whether the node takes connections (its crash recovery is over)."""
    try:
        psycopg2.connect(node.connstr, connect_timeout=2).close()
        return True
    except psycopg2.OperationalError:
        return False


def take_xid(node, xid):
    """A connection whose open transaction holds xid, drawn anew from the
    restarted node; None if another process drew it first."""
    conn = psycopg2.connect(node.connstr)
    cur = conn.cursor()
    while True:
        cur.execute('SELECT pg_current_xact_id()::text')
        got = int(cur.fetchone()[0])
        if got == xid:
            return conn
        conn.rollback()
        if got > xid:
            conn.close()
            return None


@pytest.mark.parametrize('crash', ['server', 'children'])
def test_applier_never_waits_for_an_xid_of_an_earlier_life(linked_cluster_factory, crash):
    cluster, net = linked_cluster_factory(3, {'pg_paxos.leader_timeout': '2s'})
    checks.setup_replication(cluster, GROUP, DDL, TABLES)
    cluster[0].sql("INSERT INTO t VALUES (0, 'before')")
    checks.wait_tables_identical(cluster.nodes, TABLES)

    tried = []
    for attempt in range(1, ATTEMPTS + 1):
        leader = checks.wait_agreed_leader(cluster.nodes, GROUP)
        node = [n for n in cluster if n is not leader][0]
        xid, on_disk = crash_losing_a_commit(cluster, net, node, attempt, crash)
        holder = take_xid(node, xid) if not on_disk else None
        tried.append((xid, on_disk, holder is not None))
        print('attempt %d: xid %d, records on disk %s, drawn again: %s'
              % ((attempt,) + tried[-1]))
        net.heal_all()
        try:
            checks.wait_tables_identical(cluster.nodes, TABLES)
            assert dict(node.sql('SELECT id, v FROM t WHERE id IN (0, %s)',
                                 (attempt,))) == {0: 'y%d' % attempt,
                                                  attempt: 'x'}
        finally:
            if holder is not None:
                holder.close()
        if holder is not None:
            return
    pytest.fail('no crash left a lost xid for the test to draw again in %d '
                'attempts (xid, its records on disk, drawn): %r'
                % (ATTEMPTS, tried))
