"""
A network partition under the bank workload (bank.py: clients and checkers
on every node).  Node-to-node traffic crosses a fault-injecting TCP proxy
(netfault.py, a black hole per cut link: no refusals, only silence); the
leader is cut off from both peers while it believes it leads, then the
partition heals.

While the leader is cut off:
- the two others elect a new leader between themselves and keep
  committing;
- the old leader gets nothing chosen: no COMMIT sent to it is
  acknowledged, each fails with "could not reach a majority" (08006)
  within the Paxos timeouts, and its clients' transfers whose COMMIT
  failed that way count as unknown, not failed (bank.py);
- it still answers its own clients (it reaches itself).
After healing, the old leader follows the new one, catches up, and commits
again; the bank checks hold: total constant on every node at every read,
nodes identical, no acknowledged transfer lost, no failed one present.
"""

import os
import shutil
import time

import pytest

import bank
import netfault
import pgcluster

DURATION = float(os.environ.get('PGP_PARTITION_SECONDS', '30'))
CUT_SECONDS = 8.0
SETTINGS = {
    'deadlock_timeout': '100ms',
    'pg_paxos.leader_timeout': '500ms',
    'pg_paxos.rpc_timeout': '500ms',
    'pg_paxos.paxos_timeout': '10s',
}
# A failed COMMIT on the cut node may try the leader's batcher, then settle
# the entry with full Paxos: each step is bounded by the timeouts above.
FAIL_WITHIN = 20.0


def node_status(node, timeout=10):
    rows = node.records('SELECT * FROM paxos_node_status() '
                        'WHERE group_id = %s', (bank.GROUP,), timeout=timeout)
    return rows[0] if rows else None


def wait_status(nodes, want, deadline, what):
    """Poll paxos_node_status on nodes until want({node: status}) is true;
    return the statuses."""
    end = time.monotonic() + deadline
    seen = None
    while True:
        try:
            seen = {n: node_status(n) for n in nodes}
            if all(seen.values()) and want(seen):
                return seen
        except (pgcluster.SqlTimeout, Exception) as e:     # retried
            seen = repr(e)
        if time.monotonic() > end:
            raise AssertionError('%s: not within %.0f s; last status: %r'
                                 % (what, deadline, seen))
        time.sleep(0.1)


def agreed_leader(statuses):
    """The node name every status names as leader, if they agree and that
    node's own status says it leads; else None."""
    leaders = {s['leader_id'] for s in statuses.values()}
    if len(leaders) != 1:
        return None
    name = leaders.pop()
    for node, s in statuses.items():
        if node.name == name and s['role'] != 'leader':
            return None
    return name


def leader_and_others(cluster):
    """The leader every node agrees on, once they do, and the other nodes."""
    statuses = wait_status(cluster, agreed_leader, 20, 'a leader everybody '
                           'agrees on')
    leader = [n for n in cluster if n.name == agreed_leader(statuses)][0]
    return leader, [n for n in cluster if n is not leader]


def wait_converged(cluster):
    """Wait until every node decided and applied the same rounds (the
    workload stopped); return their statuses."""
    return wait_status(
        cluster, lambda s: len({x['decided_round'] for x in s.values()}) == 1
        and len({x['applied_round'] for x in s.values()}) == 1, 20,
        'every node applied the same rounds')


@pytest.fixture
def partitioned(request):
    """A 3-node cluster whose node-to-node traffic crosses netfault's
    proxy, with the bank tables set up."""
    cluster = pgcluster.Cluster(3, SETTINGS)
    request.node._pgp_clusters = [cluster]      # logs attached on failure
    net = netfault.Network(cluster)
    try:
        cluster.start()
        net.start()
        bank.setup(cluster)
        yield cluster, net
    finally:
        net.close()
        keep = os.environ.get('PGP_KEEP_LOGS')     # a directory, to debug
        if keep:
            os.makedirs(keep, exist_ok=True)
            for node in cluster:
                if os.path.exists(node.logfile):
                    shutil.copy(node.logfile, os.path.join(
                        keep, '%d-%s.log' % (os.getpid(), node.name)))
        cluster.destroy()


def probe_commit(node):
    """One transfer-like write on node (optimistic, so that it reaches
    COMMIT without asking peers); returns (outcome, seconds), outcome the
    command tag or the error."""
    t0 = time.monotonic()
    with node.connect() as conn:
        conn.sql("SET pg_paxos.consistency_model TO 'optimistic'")
        conn.sql('BEGIN')
        conn.sql('UPDATE bank_balance SET balance = balance WHERE '
                 'account_number = 1')
        try:
            outcome = conn.command('COMMIT', timeout=60)
        except Exception as e:
            outcome = e
    return outcome, time.monotonic() - t0


def test_leader_cut_off_and_healed(partitioned):
    cluster, net = partitioned
    old, others = leader_and_others(cluster)
    # every node reaches the others through the proxy, not around it
    links = net.stats()
    assert all(accepted > 0 for _, accepted, _ in links.values()), links
    t = {}

    def partition():
        before = node_status(old)
        net.isolate(old)
        t['cut'] = time.monotonic()
        new = wait_status(
            others, lambda s: agreed_leader(s) not in (None, old.name), 15,
            'a new leader among %s' % [n.name for n in others])
        t['elected'] = time.monotonic()
        t['new'] = [n for n in others if n.name == agreed_leader(new)][0]
        t['decided_before'] = new[t['new']]['decided_round']
        # the old leader still answers its own clients, and fails to commit
        t['probe'] = probe_commit(old)
        t['old_status'] = node_status(old)
        t['old_before'] = before
        time.sleep(max(0.0, t['cut'] + CUT_SECONDS - time.monotonic()))
        t['decided_cut'] = node_status(t['new'])['decided_round']
        t['heal'] = time.monotonic()
        net.heal_all()
        # the old leader learns the new one (or a later one) and follows
        healed = wait_status(
            cluster, lambda s: agreed_leader(s) not in (None, old.name)
            and s[old]['role'] == 'follower', 20,
            'the old leader following again')
        t['following'] = time.monotonic()
        t['final'] = healed

    details = {}
    bank.run(cluster, DURATION, fault=partition, fault_at=DURATION / 5,
             faulty=(old.index,), client_models=('strong', 'optimistic'),
             details=details)
    print('partition: cut %s at %.1f s; %s elected after %.2f s; healed '
          'after %.1f s; %s followed again %.2f s after healing; probe '
          'commit on the cut node: %r after %.1f s'
          % (old.name, 0, t['new'].name, t['elected'] - t['cut'],
             t['heal'] - t['cut'], old.name, t['following'] - t['heal'],
             t['probe'][0], t['probe'][1]))

    # the old leader believed it led until the partition, then could not
    # get its probe chosen: a clear error, in time
    assert t['old_before']['role'] == 'leader'
    outcome, took = t['probe']
    assert isinstance(outcome, Exception), \
        'COMMIT on the cut-off leader answered %r' % outcome
    assert getattr(outcome, 'pgcode', None) == '08006' and \
        'could not reach a majority' in str(outcome), repr(outcome)
    assert took < FAIL_WITHIN, 'the failed COMMIT took %.1f s' % took
    assert t['new'] in others

    clients = details['clients']
    cut_clients = [r for n, r in clients if n is old]
    ok_clients = [r for n, r in clients if n is not old]
    # nothing the cut node committed was acknowledged during the cut ...
    during = [(s, a) for r in cut_clients for s, a in r['acked_at']
              if s > t['cut'] and a < t['heal']]
    assert not during, '%d COMMITs sent to the cut-off node were ' \
        'acknowledged during the partition: %r' % (len(during), during[:5])
    # ... though its clients tried: COMMITs (optimistic clients) and
    # statements failed with 08006 in time, counted unknown, not failed
    fails = [f for r in cut_clients for f in r['lost_at']
             if t['cut'] < f[0] < t['heal'] + 1]
    at_commit = [f for f in fails if f[1] == 'commit']
    assert at_commit, 'no COMMIT failed on the cut node: %r' % fails[:5]
    assert all(f[2] == '08006' for f in at_commit), at_commit[:5]
    assert all('majority' in f[3] for f in at_commit), at_commit[:5]
    print('cut node: %d statements failed during the partition (%d at '
          'COMMIT), slowest after %.1f s'
          % (len(fails), len(at_commit), max(f[4] for f in fails)))
    slow = [f for f in fails if f[4] > FAIL_WITHIN]
    assert not slow, 'statements on the cut node took too long to fail: ' \
        '%r' % slow[:5]
    # the majority side kept committing while the old leader was cut off
    majority = [(s, a) for r in ok_clients for s, a in r['acked_at']
                if s > t['elected'] and a < t['heal']]
    assert len(majority) >= 10, 'only %d transfers committed on the ' \
        'majority side during the partition' % len(majority)
    assert t['decided_cut'] > t['decided_before']
    # and none of its clients lost a connection or met an error
    assert not any(r['lost'] for r in ok_clients), \
        'clients of the majority side failed (cut at %.2f, healed at %.2f, ' \
        'followed at %.2f): %r' % (t['cut'], t['heal'], t['following'],
                                   [r['lost_at'][:3] for r in ok_clients
                                    if r['lost']])
    # the old leader serves its clients again once healed
    after = [a for r in cut_clients for _, a in r['acked_at']
             if a > t['following']]
    assert after, 'the old leader committed nothing after the partition'

    # after healing it has caught up: same decided round as the others
    # once the workload stopped
    final = wait_converged(cluster)
    assert final[old]['role'] == 'follower'


def test_leader_cut_off_one_way(partitioned):
    """One way only: nothing the leader's node sends to its peers arrives
    (it cannot get anything accepted, nor heartbeat), while the peers still
    reach it and hear it answer.  Hearing it must not keep them following
    a leader that cannot lead: a new leader is elected among them, they
    keep committing, and after healing everything converges and the bank
    checks hold."""
    cluster, net = partitioned
    old, others = leader_and_others(cluster)
    t = {}

    def cut_one_way():
        net.cut([(old, o) for o in others])
        t['cut'] = time.monotonic()
        new = wait_status(
            others, lambda s: agreed_leader(s) not in (None, old.name), 15,
            'a new leader among %s with %s cut off one way'
            % ([n.name for n in others], old.name))
        t['elected'] = time.monotonic()
        t['new'] = [n for n in others if n.name == agreed_leader(new)][0]
        t['decided_before'] = new[t['new']]['decided_round']
        time.sleep(max(0.0, t['cut'] + CUT_SECONDS - time.monotonic()))
        t['decided_cut'] = node_status(t['new'])['decided_round']
        t['heal'] = time.monotonic()
        net.heal_all()

    details = {}
    bank.run(cluster, DURATION, fault=cut_one_way, fault_at=DURATION / 5,
             faulty=(old.index,), details=details)
    print('one-way cut of %s: %s elected after %.2f s'
          % (old.name, t['new'].name, t['elected'] - t['cut']))
    assert t['new'] in others
    assert t['decided_cut'] > t['decided_before']
    ok_clients = [r for n, r in details['clients'] if n is not old]
    majority = [(s, a) for r in ok_clients for s, a in r['acked_at']
                if s > t['elected'] and a < t['heal']]
    assert len(majority) >= 10, 'only %d transfers committed on the ' \
        'majority side during the one-way cut' % len(majority)
    final = wait_converged(cluster)
    assert agreed_leader(final) is not None


def test_followers_cut_off_from_the_leader_one_way(partitioned):
    """The other way: nothing the followers send to the leader arrives,
    while the leader still reaches them.  The leader keeps getting its
    rounds chosen (its requests and their answers travel on connections
    it opened) and keeps leading; the followers cannot hand their commits
    to it.  Whatever happens to those, nothing acknowledged is lost, and
    after healing everything converges and the bank checks hold."""
    cluster, net = partitioned
    leader, others = leader_and_others(cluster)
    t = {}

    def cut_one_way():
        net.cut([(o, leader) for o in others])
        t['cut'] = time.monotonic()
        t['decided_before'] = node_status(leader)['decided_round']
        time.sleep(CUT_SECONDS)
        t['status_cut'] = {n.name: node_status(n) for n in cluster}
        t['heal'] = time.monotonic()
        net.heal_all()

    details = {}
    bank.run(cluster, DURATION, fault=cut_one_way, fault_at=DURATION / 5,
             faulty=tuple(o.index for o in others), details=details)
    during = {n.name: len([a for s, a in r['acked_at']
                           if s > t['cut'] and a < t['heal']])
              for n, r in details['clients']}
    print('followers cut one way from %s: acknowledged during the cut %r; '
          'status then %r' % (leader.name, during, t['status_cut']))
    # the leader kept leading and committing
    assert t['status_cut'][leader.name]['role'] == 'leader'
    assert during[leader.name] >= 10, during
    final = wait_converged(cluster)
    assert agreed_leader(final) is not None
