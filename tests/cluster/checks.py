"""
Safety checks on the Multi-Paxos log, shared by the multi-node tests.
"""

import collections

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
