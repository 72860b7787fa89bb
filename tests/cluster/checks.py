"""
Safety checks shared by the multi-node tests: on the Multi-Paxos log, and
on replicated tables (every node holds the same rows).
"""

import collections
import os
import re
import signal
import time
from contextlib import contextmanager

import pgcluster


def assert_logs_agree(nodes, group, appends):
    """Learn the whole log on every node, then check that

    - every node's decided log is identical and has no holes up to the top
      round;
    - every appended value was decided exactly once;
    - the round paxos_append returned for a value holds that value.

    appends: iterable of (value, round_num) that paxos_append returned.
    Returns the decided log.
    """
    top = pgcluster.learn_everywhere(nodes, group)
    logs = {node.name: pgcluster.decided_log(node, group) for node in nodes}
    first = nodes[0].name
    reference = logs[first]
    for name, log in logs.items():
        if log != reference:
            diff = sorted(set(log) ^ set(reference))[:10]
            raise AssertionError(
                'decided log of %s (%d rounds) differs from %s (%d rounds); '
                'first differing entries: %r'
                % (name, len(log), first, len(reference), diff))

    rounds = [r[0] for r in reference]
    assert rounds, 'no decided rounds at all'
    assert rounds[-1] == top, \
        'last decided round %d, but paxos_max_group_round said %d' \
        % (rounds[-1], top)
    assert rounds == list(range(rounds[0], top + 1)), \
        'holes in the decided log: %r' \
        % sorted(set(range(rounds[0], top + 1)) - set(rounds))[:10]

    by_round = {r[0]: r[2] for r in reference}
    counts = collections.Counter(r[2] for r in reference)
    appends = list(appends)
    for value, round_num in appends:
        assert counts[value] == 1, \
            'value %r decided %d times' % (value, counts[value])
        assert by_round.get(round_num) == value, \
            'paxos_append returned round %s for %r, but that round holds %r' \
            % (round_num, value, by_round.get(round_num))
    assert len({r for _, r in appends}) == len(appends), \
        'paxos_append returned the same round twice'
    return reference


# ---------------------------------------------------------------------------
# Replicated tables
# ---------------------------------------------------------------------------

_PK_COLUMNS = """
SELECT string_agg('t.' || quote_ident(a.attname), ', ' ORDER BY k.ord)
  FROM pg_index i
 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = %s::regclass AND i.indisprimary"""


def _check_name(table):
    assert re.fullmatch(r'[a-z_][a-z0-9_]*', table), \
        'table names here are plain identifiers: %r' % table


def session(node, consistency=None):
    """A new connection to node whose reads use pg_paxos.consistency_model
    = consistency ('strong' or 'optimistic'; None leaves the default)."""
    conn = node.connect()
    if consistency is not None:
        try:
            conn.sql('SET pg_paxos.consistency_model TO %s', (consistency,))
        except BaseException:
            conn.close()
            raise
    return conn


def table_digest(conn, table):
    """(row count, md5 of every row as text, in primary key order) of table
    over conn.  Rows of a table without a primary key, and ties, are ordered
    by their text, so that equal multisets of rows give equal digests."""
    _check_name(table)
    pk = conn.scalar(_PK_COLUMNS, (table,))
    order = (pk + ', ' if pk else '') + 't::text'
    count, digest = conn.sql(
        "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' "
        "ORDER BY %s), '')) FROM %s t" % (order, table))[0]
    return count, digest


def tables_state(nodes, tables, consistency='strong'):
    """{node name: {table: (count, md5)}}, read on every node over a new
    connection each (with the given consistency model)."""
    states = {}
    for node in nodes:
        with session(node, consistency) as conn:
            states[node.name] = {t: table_digest(conn, t) for t in tables}
    return states


def _rows(node, table, consistency, limit=200000):
    with session(node, consistency) as conn:
        return collections.Counter(
            r[0] for r in conn.sql('SELECT t::text FROM %s t LIMIT %d'
                                   % (table, limit)))


def _describe_difference(nodes, tables, states, consistency):
    """Human-readable account of how the nodes' tables differ: counts and
    digests, and a few rows one node has and the first node has not."""
    first = nodes[0]
    lines = []
    for table in tables:
        per_node = {n.name: states[n.name][table] for n in nodes}
        if len(set(per_node.values())) == 1:
            continue
        lines.append('table %s: %s' % (table, ', '.join(
            '%s has %d rows (md5 %s)' % (name, c, d[:8])
            for name, (c, d) in per_node.items())))
        try:
            ref = _rows(first, table, consistency)
            for node in nodes[1:]:
                rows = _rows(node, table, consistency)
                extra = list((rows - ref).elements())[:5]
                missing = list((ref - rows).elements())[:5]
                if extra or missing:
                    lines.append('  %s vs %s: extra %r, missing %r'
                                 % (node.name, first.name, extra, missing))
        except Exception as e:          # the summary above still helps
            lines.append('  (could not list rows: %s)' % e)
    return '\n'.join(lines)


def assert_tables_identical(nodes, tables, consistency='strong'):
    """Read every table on every node and fail unless all nodes hold
    exactly the same rows.  Returns {table: (count, md5)}."""
    states = tables_state(nodes, tables, consistency)
    reference = states[nodes[0].name]
    if any(states[n.name] != reference for n in nodes):
        raise AssertionError(
            'replicated tables differ between nodes (%s reads):\n%s'
            % (consistency, _describe_difference(nodes, tables, states,
                                                 consistency)))
    return reference


def wait_tables_identical(nodes, tables, deadline=30.0,
                          consistency='optimistic'):
    """Poll until every node holds the same rows in every table; fail with
    the differences after deadline seconds.  With optimistic reads (the
    default) nothing is applied on a node because of the check itself: the
    nodes must converge by themselves.  Returns {table: (count, md5)}."""
    end = time.monotonic() + deadline
    while True:
        states = tables_state(nodes, tables, consistency)
        reference = states[nodes[0].name]
        if all(states[n.name] == reference for n in nodes):
            return reference
        if time.monotonic() > end:
            raise AssertionError(
                'replicated tables still differ after %.0f s (%s reads):\n%s'
                % (deadline, consistency, _describe_difference(
                    nodes, tables, states, consistency)))
        time.sleep(0.25)


def wait_replicating(nodes, group, tables, deadline=15.0):
    """Wait until every node lists every table as replicated through group
    in pgp_metadata.replicated_tables."""
    end = time.monotonic() + deadline
    want = set(tables)
    while True:
        have = {node.name: {r[0] for r in node.sql(
            'SELECT table_oid::regclass::text '
            'FROM pgp_metadata.replicated_tables WHERE group_id = %s',
            (group,))} for node in nodes}
        if all(want <= h for h in have.values()):
            return
        if time.monotonic() > end:
            raise AssertionError(
                'after %.0f s not every node replicates %s through %r: %r'
                % (deadline, sorted(want), group,
                   {n: sorted(want - h) for n, h in have.items()}))
        time.sleep(0.2)


def assert_outcomes_agree(nodes, group):
    """Every round certified on several nodes has the same outcome on
    each, entry by entry (pgp_metadata.outcome; compaction may have removed
    older rounds on some)."""
    outcomes = []
    for node in nodes:
        # a session of its own: a node killed by the test broke the shared one
        with node.connect() as conn:
            rows = conn.sql('SELECT round_num, entry_index, committed '
                            'FROM pgp_metadata.outcome WHERE group_id = %s',
                            (group,))
        outcomes.append({(r, i): c for r, i, c in rows})
    common = set.intersection(*(set(o) for o in outcomes))
    assert common, 'no round is certified on every node'
    differ = sorted(k for k in common
                    if len({o[k] for o in outcomes}) > 1)
    assert not differ, 'certified differently on %s: rounds/entries %r' \
        % ([n.name for n in nodes], differ[:10])
    return len(common)


def setup_replication(cluster, group, ddl, tables):
    """The README's setup: ddl (CREATE TABLE ...) on every node, the group
    formed, the tables replicated from one node; returns once every node
    knows they are replicated."""
    for node in cluster:
        node.sql(ddl)
    cluster.form_group(group)
    cluster.replicate_tables(group, tables)
    wait_replicating(cluster.nodes, group, tables)


def wait_for(what, predicate, deadline=30.0):
    """predicate()'s first true value, polled every 50 ms; fails after
    deadline seconds, saying what was awaited."""
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError('%s: not within %.0f s' % (what, deadline))
        time.sleep(0.05)


def kill_processes(node, pids):
    """SIGKILL pids, processes of node, and return once they are gone (the
    node's shared connection is dropped)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.disconnect()
    wait_for('the killed processes of %s gone' % node.name, lambda: not any(
        os.path.exists('/proc/%d' % p) for p in pids), deadline=30)


def leader_named_by(node, group):
    """The node id node names as the group's leader (paxos_node_status)."""
    return node.scalar('SELECT leader_id FROM paxos_node_status() '
                       'WHERE group_id = %s', (group,))


def wait_agreed_leader(nodes, group, deadline=20.0, stable=1.0,
                       other_than=None):
    """The node that every node names as the group's leader, once they
    have agreed on it for `stable` seconds (paxos_node_status): right after
    a group is formed, two nodes may stand at once, and the first leader
    they agree on may be replaced a moment later.  With other_than (a
    node), only a leader other than it counts."""
    end = time.monotonic() + deadline
    since, agreed = None, None
    while True:
        names = {leader_named_by(n, group) for n in nodes}
        name = names.pop() if len(names) == 1 else None
        if other_than is not None and name == other_than.name:
            name = None
        if name is None or name != agreed:
            since, agreed = time.monotonic(), name
        elif time.monotonic() - since >= stable:
            return [n for n in nodes if n.name == name][0]
        if time.monotonic() > end:
            raise AssertionError('no leader of %r agreed on for %.1f s within '
                                 '%.0f s: last seen %r'
                                 % (group, stable, deadline, names or name))
        time.sleep(0.1)


@contextmanager
def worker_frozen(node):
    """SIGSTOP node's pg_paxos worker while it holds no applier lock."""
    pid = node.scalar("SELECT pid FROM pg_stat_activity "
                      "WHERE backend_type = 'pg_paxos worker'")
    assert pid, 'no pg_paxos worker'
    for _ in range(100):
        os.kill(pid, signal.SIGSTOP)
        if not node.scalar("SELECT count(*) FROM pg_locks WHERE pid = %s "
                           "AND locktype = 'advisory'", (pid,)):
            break
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    else:
        raise AssertionError('the worker kept holding an advisory lock')
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
