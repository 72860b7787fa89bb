"""
Point writes under pg_paxos.consistency_model = strong (strong_read.c,
point_write.c): with pg_paxos.point_writes = optimistic, an autocommit
UPDATE or DELETE of one row by its primary key, reading nothing else, does
not catch up first; certification, and a check when it finds no row, keep
it linearizable.  Writes that read more still catch up first, and so does
every write by default, except on the group's leader: there it waits only
for the rounds the leader knows decided to be applied, without asking its
peers (every acknowledged commit went through its batcher).

The node under test is made stale on purpose: its applier (the pg_paxos
worker) is frozen with SIGSTOP, so only a statement that catches up itself
(through its own acceptor) sees what the other nodes committed.
"""

import psycopg2
import psycopg2.errors

import checks

GROUP = 'pw'
SETTINGS = {'pg_paxos.leader_timeout': '500ms',
            'pg_paxos.point_writes': 'optimistic'}
DDL = """
CREATE TABLE acct (id int PRIMARY KEY, v int NOT NULL);
CREATE TABLE src (id int PRIMARY KEY, x int NOT NULL);
CREATE TABLE withtrig (id int PRIMARY KEY, v int NOT NULL);
CREATE FUNCTION copy_src() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN NEW.v := (SELECT x FROM src WHERE id = 1); RETURN NEW; END$$;
CREATE TRIGGER copy_src BEFORE UPDATE ON withtrig
  FOR EACH ROW EXECUTE FUNCTION copy_src();
"""
TABLES = ['acct', 'src', 'withtrig']


def make_cluster(cluster_factory):
    cluster = cluster_factory(3, SETTINGS)
    checks.setup_replication(cluster, GROUP, DDL, TABLES)
    checks.wait_agreed_leader(cluster.nodes, GROUP)
    writer, stale = cluster[0], cluster[1]
    writer.sql('INSERT INTO acct VALUES (1, 0), (2, 0), (3, 0)')
    writer.sql('INSERT INTO src VALUES (1, 0)')
    writer.sql('INSERT INTO withtrig VALUES (1, 0)')
    checks.wait_tables_identical(cluster.nodes, TABLES)
    return cluster, writer, stale


def run_retrying(node, statements, attempts=4, point_writes='optimistic'):
    """Run statements in one transaction (autocommit if it is one
    statement), retrying on 40001; return (rowcounts, results of the last
    statement, attempts used)."""
    conn = psycopg2.connect(node.connstr,
                            options='-c pg_paxos.point_writes=%s' % point_writes)
    conn.autocommit = len(statements) == 1
    try:
        for attempt in range(1, attempts + 1):
            try:
                counts, rows = [], None
                with conn.cursor() as cur:
                    for sql in statements:
                        cur.execute(sql)
                        counts.append(cur.rowcount)
                        rows = cur.fetchall() if cur.description else None
                if not conn.autocommit:
                    conn.commit()
                return counts, rows, attempt
            except psycopg2.errors.SerializationFailure:
                if not conn.autocommit:
                    conn.rollback()
        raise AssertionError('still failing after %d attempts: %r'
                             % (attempts, statements))
    finally:
        conn.close()


def test_point_write_on_a_stale_node_is_certified(cluster_factory):
    cluster, writer, stale = make_cluster(cluster_factory)
    with checks.worker_frozen(stale):
        # a row changed elsewhere: the write of the old row fails its
        # certification, the retry catches up first and counts once
        writer.sql('UPDATE acct SET v = v + 1 WHERE id = 1')
        counts, _, attempts = run_retrying(
            stale, ['UPDATE acct SET v = v + 1 WHERE id = 1'])
        assert counts == [1]
        assert attempts == 2, 'the first attempt should have gone ahead stale'

        # a row inserted elsewhere: finding no row, the write catches up
        # after the fact and fails, the retry finds it
        writer.sql('INSERT INTO acct VALUES (10, 5)')
        counts, _, attempts = run_retrying(
            stale, ['UPDATE acct SET v = v + 1 WHERE id = 10'])
        assert (counts, attempts) == ([1], 2)

        # no such row anywhere: no row, at most one retry (if a round
        # was applied meanwhile, the row might have been in it)
        counts, _, attempts = run_retrying(
            stale, ['DELETE FROM acct WHERE id = 999'])
        assert counts == [0] and attempts <= 2

        # by default, the same stale write catches up first: no retry
        writer.sql('UPDATE acct SET v = v + 1 WHERE id = 1')
        counts, _, attempts = run_retrying(
            stale, ['UPDATE acct SET v = v + 1 WHERE id = 1'],
            point_writes='strong')
        assert (counts, attempts) == ([1], 1)

    checks.wait_tables_identical(cluster.nodes, TABLES)
    for node in cluster:
        assert node.sql('SELECT id, v FROM acct ORDER BY id') == \
            [(1, 4), (2, 0), (3, 0), (10, 6)], node.name


def test_writes_that_read_more_catch_up_first(cluster_factory):
    cluster, writer, stale = make_cluster(cluster_factory)
    with checks.worker_frozen(stale):
        # a trigger reads another table
        writer.sql('UPDATE src SET x = 7 WHERE id = 1')
        counts, _, attempts = run_retrying(
            stale, ['UPDATE withtrig SET v = 0 WHERE id = 1 RETURNING v'])
        assert attempts == 1
        assert stale.scalar('SELECT v FROM withtrig WHERE id = 1') == 7

        # a subquery
        writer.sql('UPDATE src SET x = 9 WHERE id = 1')
        _, rows, attempts = run_retrying(
            stale, ['UPDATE acct SET v = (SELECT x FROM src WHERE id = 1) '
                    'WHERE id = 2 RETURNING v'])
        assert (rows, attempts) == ([(9,)], 1)

        # a transaction block: its later reads see what its first statement
        # caught up to
        writer.sql('UPDATE src SET x = 11 WHERE id = 1')
        _, rows, attempts = run_retrying(
            stale, ['UPDATE acct SET v = v + 1 WHERE id = 3',
                    'SELECT x FROM src WHERE id = 1'])
        assert (rows, attempts) == ([(11,)], 1)

    checks.wait_tables_identical(cluster.nodes, TABLES)
    for node in cluster:
        assert node.sql('SELECT id, v FROM acct ORDER BY id') == \
            [(1, 0), (2, 9), (3, 1)], node.name
        assert node.scalar('SELECT v FROM withtrig WHERE id = 1') == 7


def leader_and_follower(cluster):
    leader = checks.wait_agreed_leader(cluster.nodes, GROUP)
    return leader, [n for n in cluster if n is not leader][0]


def test_point_write_on_the_leader_follows_acknowledged_writes(cluster_factory):
    """By default a point write on the leader asks no peer: it waits for
    the rounds its node knows decided.  A client that alternates between a
    follower and the leader, one write of the same row after the other,
    never gets a serialization failure and never loses an increment (were
    the leader not to wait, it would compute from the row as it was before
    the follower's acknowledged write, and fail certification)."""
    cluster, _, _ = make_cluster(cluster_factory)
    leader, follower = leader_and_follower(cluster)
    conns = {}
    for node in (leader, follower):
        conns[node.name] = psycopg2.connect(
            node.connstr, options='-c pg_paxos.point_writes=strong')
        conns[node.name].autocommit = True
    try:
        for i in range(1, 41):
            for node in (follower, leader):
                with conns[node.name].cursor() as cur:
                    cur.execute('UPDATE acct SET v = v + 1 WHERE id = 2 '
                                'RETURNING v')
                    assert cur.fetchall() == [(2 * i - (node is follower),)]
    finally:
        for conn in conns.values():
            conn.close()
    checks.wait_tables_identical(cluster.nodes, TABLES)
    for node in cluster:
        assert node.scalar('SELECT v FROM acct WHERE id = 2') == 80


def test_point_write_on_the_leader_with_its_applier_frozen(cluster_factory):
    """A leader whose applier does not reach what its node knows decided in
    time catches up as any statement does: the write sees the row a
    follower's acknowledged write made, at the first attempt."""
    cluster, _, _ = make_cluster(cluster_factory)
    leader, follower = leader_and_follower(cluster)
    with checks.worker_frozen(leader):
        follower.sql('UPDATE acct SET v = v + 5 WHERE id = 3')
        _, rows, attempts = run_retrying(
            leader, ['UPDATE acct SET v = v + 1 WHERE id = 3 RETURNING v'],
            point_writes='strong')
        assert (rows, attempts) == ([(6,)], 1)
    checks.wait_tables_identical(cluster.nodes, TABLES)
    for node in cluster:
        assert node.scalar('SELECT v FROM acct WHERE id = 3') == 6


def test_point_write_on_a_deposed_leader_is_certified(linked_cluster_factory):
    """A leader deposed without knowing it (cut off from the node that took
    over, still reaching the third) may go ahead with a point write from
    its old row; it never commits what it computed from it: certification
    fails it once its ballot is refused and it learns the new leader's
    rounds, or its commit fails.  Whatever it reports holds once healed."""
    cluster, net = linked_cluster_factory(3, SETTINGS)
    checks.setup_replication(cluster, GROUP, DDL, TABLES)
    old = checks.wait_agreed_leader(cluster.nodes, GROUP)
    old.sql('INSERT INTO acct VALUES (1, 0)')
    checks.wait_tables_identical(cluster.nodes, TABLES)
    others = [n for n in cluster if n is not old]
    net.isolate(old)
    new = checks.wait_agreed_leader(others, GROUP, other_than=old)
    third = [n for n in others if n is not new][0]
    new.sql('UPDATE acct SET v = v + 1 WHERE id = 1')
    # what it sends to the third node, and the answers, get through;
    # what the third sends it (its heartbeats) does not
    net.heal([(old, third)])
    believed = checks.leader_named_by(old, GROUP)

    conn = psycopg2.connect(old.connstr,
                            options='-c pg_paxos.point_writes=strong')
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute('UPDATE acct SET v = v + 10 WHERE id = 1 RETURNING v')
            outcome = cur.fetchall()
    except psycopg2.Error as e:
        outcome = e
    finally:
        conn.close()
    net.heal_all()
    checks.wait_tables_identical(cluster.nodes, TABLES, deadline=60)
    final = old.scalar('SELECT v FROM acct WHERE id = 1')
    if isinstance(outcome, Exception):
        assert final == 1, 'reported %r, yet v = %d' % (outcome, final)
    else:
        assert outcome == [(11,)] and final == 11, (outcome, final)
    print('point write on the deposed leader %s (which named %s): %r'
          % (old.name, believed, outcome))
