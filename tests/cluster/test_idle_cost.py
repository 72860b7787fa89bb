"""
An idle group costs next to nothing: the background workers of its nodes
only send heartbeats and look at the group now and then.  Once, the leader
worker's look at the group, whose plan cost grew with the log, was
JIT-compiled every second on every node (about a quarter of a second of
CPU each time).  pg_paxos's processes run their short queries without JIT
whatever the server's settings: here jit_*_above_cost = 0 would JIT,
inline and optimize every query they run otherwise.
"""

import os
import time

import pytest

import checks

GROUP = 'idle'
DDL = 'CREATE TABLE idle_rows (k int PRIMARY KEY, v int NOT NULL)'
ROUNDS = 100             # one autocommit write each
IDLE_SECONDS = 5.0
MAX_CPU_SHARE = 0.05     # of one CPU, per background worker, while idle
CLK_TCK = os.sysconf('SC_CLK_TCK')


def cpu_ticks(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def background_workers(node):
    return node.sql("SELECT pid, backend_type FROM pg_stat_activity "
                    "WHERE backend_type LIKE 'pg_paxos %'")


JIT_EVERYTHING = ("ALTER SYSTEM SET jit = on",
                  "ALTER SYSTEM SET jit_above_cost = 0",
                  "ALTER SYSTEM SET jit_inline_above_cost = 0",
                  "ALTER SYSTEM SET jit_optimize_above_cost = 0",
                  "SELECT pg_reload_conf()")


def test_idle_workers_cost_little(cluster):
    if not cluster[0].scalar('SELECT pg_jit_available()'):
        pytest.skip('this PostgreSQL has no JIT (llvmjit) to avoid')
    checks.setup_replication(cluster, GROUP, DDL, ['idle_rows'])
    writer = cluster[0].connect()
    try:
        for k in range(ROUNDS):
            writer.sql('INSERT INTO idle_rows VALUES (%s, 0)', (k,))
    finally:
        writer.close()
    checks.wait_tables_identical(cluster.nodes, ['idle_rows'])

    # from now on the server would JIT every query it can
    for node in cluster:
        for statement in JIT_EVERYTHING:
            node.sql(statement)
    time.sleep(1.0)                    # the workers reload their settings

    workers = [(node.name, pid, kind) for node in cluster
               for pid, kind in background_workers(node)]
    kinds = {kind for _, _, kind in workers}
    assert {'pg_paxos leader', 'pg_paxos worker', 'pg_paxos batcher'} <= kinds, \
        'background workers not found: %r' % workers
    before = {pid: cpu_ticks(pid) for _, pid, _ in workers}
    time.sleep(IDLE_SECONDS)
    costly = []
    for name, pid, kind in workers:
        seconds = (cpu_ticks(pid) - before[pid]) / CLK_TCK
        if seconds > MAX_CPU_SHARE * IDLE_SECONDS:
            costly.append('%s %s: %.2f s of CPU in %.0f s idle'
                          % (name, kind, seconds, IDLE_SECONDS))
    assert not costly, 'idle background workers busy: %s' % '; '.join(costly)
