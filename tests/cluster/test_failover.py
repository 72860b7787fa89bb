"""
Leadership and failover under the bank workload (clients and checkers on
every node, see bank.py): the leader's postmaster killed with SIGKILL; a
follower killed; the leader frozen (SIGSTOP) for longer than the leader
timeout, then thawed; a switchover.  Each time the survivors keep
committing, a new leader takes over by itself where the old one is gone,
the node that was down catches up after its restart, and the usual bank
checks hold: total constant everywhere, nodes identical, no acknowledged
transfer lost, no failed one present.
"""

import os
import signal
import time

import bank
import checks

DURATION = float(os.environ.get('PGP_FAILOVER_SECONDS', '16'))
SETTINGS = {'deadlock_timeout': '100ms', 'pg_paxos.leader_timeout': '500ms'}


def node_status(node):
    rows = node.records("SELECT * FROM paxos_node_status() WHERE group_id = %s",
                        (bank.GROUP,))
    return rows[0] if rows else None


def wait_leader(cluster, among=None, deadline=20.0, not_node=None):
    """The node every node in `among` (default: all) agrees leads, once
    they do (and it is not not_node)."""
    among = among if among is not None else list(cluster)
    end = time.monotonic() + deadline
    seen = None
    while time.monotonic() < end:
        try:
            seen = [node_status(n) for n in among]
            ids = {s['leader_id'] for s in seen if s}
            if len(ids) == 1 and None not in ids and len(seen) == len(among) \
                    and all(seen):
                name = ids.pop()
                leader = [n for n in cluster if n.name == name][0]
                roles = {n.name: s['role'] for n, s in zip(among, seen)}
                if leader is not not_node and (leader not in among or
                                               roles[leader.name] == 'leader'):
                    return leader
        except Exception as e:      # a node restarting
            seen = repr(e)
        time.sleep(0.1)
    raise AssertionError('no agreed leader within %.0f s: %r' % (deadline, seen))


def bank_cluster(cluster_factory):
    cluster = cluster_factory(3, SETTINGS)
    bank.setup(cluster)
    return cluster, wait_leader(cluster)


def restart_after_kill(node):
    """Start a node whose postmaster was killed, once its children left."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            os.kill(node.postmaster_pid(), 0)
        except (OSError, ValueError):
            break
        time.sleep(0.1)
    node.start()


def test_status_and_switchover(cluster_factory):
    cluster, leader = bank_cluster(cluster_factory)
    status = node_status(leader)
    assert status['role'] == 'leader' and status['leader_id'] == leader.name
    assert status['ballot'] is not None and status['decided_round'] >= 0
    others = [n for n in cluster if n is not leader]
    for n in others:
        s = node_status(n)
        assert s['role'] == 'follower' and s['leader_id'] == leader.name
    peers = leader.records('SELECT * FROM paxos_peer_status()')
    assert sorted(p['peer_node_id'] for p in peers) == \
        sorted(n.name for n in others)
    assert all(p['reachable'] for p in peers)
    assert 'password' not in repr(peers)

    target = others[0]

    def switchover():
        others[1].sql('SELECT paxos_switchover(%s, %s)',
                      (bank.GROUP, target.name))

    bank.run(cluster, DURATION, fault=switchover, fault_at=DURATION / 3)
    assert wait_leader(cluster) is target
    with open(target.logfile, errors='replace') as f:
        assert 'switchover requested' in f.read()

    # an unknown node is refused clearly
    try:
        leader.sql("SELECT paxos_switchover(%s, 'nobody')", (bank.GROUP,))
    except Exception as e:
        assert 'no node "nobody"' in str(e)
    else:
        raise AssertionError('switchover to an unknown node succeeded')


def test_kill_leader(cluster_factory):
    cluster, leader = bank_cluster(cluster_factory)
    survivors = [n for n in cluster if n is not leader]
    timing = {}

    def kill_leader():
        os.kill(leader.postmaster_pid(), signal.SIGKILL)
        t0 = time.monotonic()
        new = wait_leader(cluster, among=survivors, not_node=leader)
        timing['failover'] = time.monotonic() - t0
        timing['new'] = new
        time.sleep(2)
        restart_after_kill(leader)

    bank.run(cluster, DURATION, fault=kill_leader, fault_at=DURATION / 3,
             faulty=(leader.index,))
    print('failover: new leader %s after %.2f s'
          % (timing['new'].name, timing['failover']))
    assert timing['new'] in survivors
    assert timing['failover'] < 5, timing
    # the restarted node follows a survivor (two survivors may both have
    # stood: the later leader entry wins, so it may not be the first seen)
    assert wait_leader(cluster) in survivors


def test_kill_follower(cluster_factory):
    cluster, leader = bank_cluster(cluster_factory)
    follower = [n for n in cluster if n is not leader][0]

    def kill_follower():
        os.kill(follower.postmaster_pid(), signal.SIGKILL)
        time.sleep(3)
        restart_after_kill(follower)

    bank.run(cluster, DURATION, fault=kill_follower, fault_at=DURATION / 3,
             faulty=(follower.index,))
    # a follower's death moves nothing
    assert wait_leader(cluster) is leader


def test_frozen_leader(cluster_factory):
    cluster, leader = bank_cluster(cluster_factory)
    survivors = [n for n in cluster if n is not leader]
    seen = {}

    def freeze_leader():
        pids = leader.server_pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            seen['new'] = wait_leader(cluster, among=survivors, not_node=leader)
            time.sleep(1)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)

    bank.run(cluster, DURATION, fault=freeze_leader, fault_at=DURATION / 3,
             faulty=(leader.index,))
    assert seen['new'] in survivors
    # the thawed node learned that it no longer leads
    assert wait_leader(cluster) in survivors
    assert node_status(leader)['role'] == 'follower'


def peer_counts(cluster):
    """How many peers each node's leader worker heartbeats in the group: a
    long-lived process, which must see every membership change."""
    return [n.scalar('SELECT count(*) FROM paxos_peer_status() '
                     'WHERE group_id = %s', (bank.GROUP,)) for n in cluster]


def wait_peer_counts(cluster, expected, deadline=10.0):
    end = time.monotonic() + deadline
    while True:
        counts = peer_counts(cluster)
        if counts == [expected] * len(cluster) or time.monotonic() > end:
            return counts
        time.sleep(0.2)


def test_add_and_remove_node(cluster_factory):
    """A 4th node joins while the workload runs (copying the tables and the
    certification state from a snapshot), reads the same total, then
    leaves again; the workload never stops.  Every node's long-lived
    processes take the new membership in, both times."""
    cluster = cluster_factory(4, SETTINGS)
    extra = cluster.nodes.pop()             # not in the group yet
    try:
        bank.setup(cluster)
        wait_leader(cluster)
        seen = {}

        def join_and_leave():
            extra.sql(bank.DDL)
            extra.sql('SELECT paxos_join_group(%s, %s, %s)',
                      (bank.GROUP, cluster[1].connstr, extra.connstr))
            members = cluster[0].scalar(
                'SELECT count(*) FROM pgp_metadata.host WHERE group_id = %s '
                'AND max_round_num IS NULL', (bank.GROUP,))
            seen['members'] = members
            seen['peers_joined'] = wait_peer_counts(cluster, 3)
            time.sleep(2)
            seen['total'] = extra.scalar('SELECT sum(balance) FROM bank_balance')
            seen['status'] = node_status(extra)
            extra.sql('SELECT paxos_leave_group(%s)', (bank.GROUP,))

        bank.run(cluster, DURATION, fault=join_and_leave, fault_at=DURATION / 4)
        assert seen['members'] == 4
        assert seen['peers_joined'] == [3, 3, 3], seen['peers_joined']
        assert seen['total'] == bank.TOTAL
        assert seen['status']['role'] == 'follower', seen['status']
        left = cluster[0].scalar(
            'SELECT count(*) FROM pgp_metadata.host WHERE group_id = %s '
            'AND max_round_num IS NULL', (bank.GROUP,))
        assert left == 3
        assert wait_peer_counts(cluster, 2) == [2, 2, 2]
    finally:
        cluster.nodes.append(extra)


def transfer(node, amount):
    """Move amount from account 1 to account 2, in one transaction on node."""
    node.sql('BEGIN; UPDATE bank_balance SET balance = balance - %s '
             'WHERE account_number = 1; UPDATE bank_balance SET balance = '
             'balance + %s WHERE account_number = 2; COMMIT', (amount, amount))


def test_quorum_follows_membership(cluster_factory):
    """After a member leaves a group of 4, the 3 left tolerate the loss of
    one more: every process that proposes (the leader's batcher, which has
    committed with 4 members before) must count a majority of 3, not of 4.
    A process still using the member list it read before the change
    (host_cache.c) would wait for a third answer that never comes."""
    cluster = cluster_factory(4, SETTINGS)
    bank.setup(cluster)
    leader = wait_leader(cluster)
    others = [n for n in cluster if n is not leader]
    leaving, stopped = others[0], others[1]

    for node in cluster:                # every node's processes read 4 members
        transfer(node, 1)
    leaving.sql('SELECT paxos_leave_group(%s)', (bank.GROUP,))
    stopped.stop()
    for amount in (2, 3):               # 2 of 3 answer: enough
        transfer(leader, amount)
        transfer(others[2], amount)
    survivors = [leader, others[2]]
    for node in survivors:
        assert node.scalar('SELECT count(*) FROM pgp_metadata.host '
                           'WHERE group_id = %s AND max_round_num IS NULL',
                           (bank.GROUP,)) == 3
    deadline = time.monotonic() + 20
    while True:
        sums = [n.scalar('SELECT sum(balance) FROM bank_balance') for n in survivors]
        firsts = [n.scalar('SELECT balance FROM bank_balance WHERE account_number = 1')
                  for n in survivors]
        if firsts == [bank.INITIAL - 4 - 10] * 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sums == [bank.TOTAL] * 2
    assert firsts == [bank.INITIAL - 4 - 10] * 2


def test_strong_read_learns_a_membership_change_it_missed(linked_cluster_factory):
    """A node that has not learned that a member left, while another member
    is down, finds only 2 of the 4 members it knows: its strong read copies
    what the members that answered know as chosen, learns the change there,
    and asks the 3 members left (multi_paxos.c).  The node is kept from
    learning the change any other way: the leaving node's links to it are
    cut (no confirmation reaches it) and its worker is frozen (no
    background learning)."""
    cluster, net = linked_cluster_factory(4, SETTINGS)
    bank.setup(cluster)
    leader = wait_leader(cluster)
    leaving, stopped, behind = [n for n in cluster if n is not leader]
    for node in cluster:            # every node's processes read 4 members
        transfer(node, 1)
    members = ("SELECT count(*) FROM pgp_metadata.host WHERE group_id = %s "
               "AND max_round_num IS NULL")
    net.cut([(leaving, behind)])
    with checks.worker_frozen(behind):
        leaving.sql('SELECT paxos_leave_group(%s)', (bank.GROUP,))
        stopped.stop()
        transfer(leader, 2)
        assert behind.scalar(members, (bank.GROUP,)) == 4
        transfer(behind, 3)
        assert behind.scalar(members, (bank.GROUP,)) == 3
    survivors = [leader, behind]
    checks.wait_for('the transfers everywhere', lambda: [
        n.scalar('SELECT balance FROM bank_balance WHERE account_number = 1')
        for n in survivors] == [bank.INITIAL - 4 - 5] * 2)
    assert [n.scalar('SELECT sum(balance) FROM bank_balance')
            for n in survivors] == [bank.TOTAL] * 2
