"""
Three nodes, three concurrent clients appending to one Multi-Paxos log:
every node must end up with the same decided log, holding every appended
value exactly once, at the round paxos_append reported.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import checks
import pgcluster

GROUP = 'appends'
APPENDS_PER_CLIENT = int(os.environ.get('PGP_APPENDS_PER_CLIENT', '300'))


def test_concurrent_appends_agree(cluster):
    cluster.form_group(GROUP)

    # One client per node, each with its own connection, all at once.
    with ThreadPoolExecutor(max_workers=len(cluster)) as pool:
        futures = [pool.submit(pgcluster.append_loop, node.connstr, GROUP,
                               node.name, 'client-%s' % node.name,
                               count=APPENDS_PER_CLIENT)
                   for node in cluster]
        results = [f.result() for f in futures]

    for node, res in zip(cluster, results):
        assert len(res) == APPENDS_PER_CLIENT, \
            '%s: %d appends' % (node.name, len(res))

    appends = [(value, round_num)
               for res in results for value, round_num, _ in res]
    log = checks.assert_logs_agree(cluster.nodes, GROUP, appends)
    assert len(log) >= len(cluster) * APPENDS_PER_CLIENT
