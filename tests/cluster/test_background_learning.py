"""
The background worker: every node learns the chosen rounds by itself.
Nobody calls paxos_learn_log here; the tests only wait (with a deadline)
and compare what each node knows as decided.
"""

import time

import pgcluster

GROUP = 'learning'
DEADLINE = 20.0          # seconds for the worker to catch up


def append(node, proposer, value):
    return node.scalar('SELECT paxos_append(%s, %s, %s)',
                       (proposer, GROUP, value))


def wait_until_known(nodes, top, deadline=DEADLINE):
    """Wait until every node knows every round up to top as decided, with
    the same values; fail with what each node still misses."""
    end = time.monotonic() + deadline
    while True:
        logs = {n.name: [r for r in pgcluster.decided_log(n, GROUP)
                         if r[0] <= top] for n in nodes}
        complete = all([r[0] for r in log] == list(range(top + 1))
                       for log in logs.values())
        if complete:
            first = next(iter(logs.values()))
            for name, log in logs.items():
                assert log == first, '%s knows other values' % name
            return first
        if time.monotonic() > end:
            missing = {name: sorted(set(range(top + 1)) -
                                    {r[0] for r in log})[:10]
                       for name, log in logs.items()}
            raise AssertionError('rounds still unknown after %.0f s: %r'
                                 % (deadline, missing))
        time.sleep(0.2)


def test_last_round_of_a_burst_is_learned(cluster):
    """An append's own node and the other members learn its round at the
    next request; with no next request, the worker learns it."""
    cluster.form_group(GROUP)
    rounds = [append(cluster[0], 'burst/%d' % i, 'v%d' % i) for i in range(20)]
    log = wait_until_known(cluster.nodes, max(rounds))
    values = {r[0]: r[2] for r in log}
    for i, round_num in enumerate(rounds):
        assert values[round_num] == 'v%d' % i


def test_restarted_node_catches_up_by_itself(cluster):
    cluster.form_group(GROUP)
    victim, others = cluster[2], cluster.nodes[:2]
    append(victim, 'before', 'before')
    victim.stop('immediate')

    rounds = []
    for i in range(100):
        node = others[i % 2]
        rounds.append(append(node, 'during/%d' % i, 'during-%d' % i))

    victim.start()
    log = wait_until_known(cluster.nodes, max(rounds))
    assert sum(1 for r in log if r[2].startswith('during-')) == 100
