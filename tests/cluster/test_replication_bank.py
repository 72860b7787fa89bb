"""
The bank workload (bank.py) on 3 nodes for 30 s, without faults: clients
on all three nodes move money between 100 accounts, retrying on 40001 and
40P01; the total never changes on any node at any time, all nodes end
identical, every acknowledged transfer is present and no failed one.
"""

import os

import bank

DURATION = float(os.environ.get('PGP_BANK_SECONDS', '30'))


def test_bank_transfers(cluster_factory):
    # Two clients of one node may lock two accounts in opposite order:
    # let PostgreSQL notice the deadlock quickly.
    cluster = cluster_factory(3, {'deadlock_timeout': '100ms'})
    bank.setup(cluster)
    acked = bank.run(cluster, DURATION)
    assert acked >= 100, 'only %d transfers committed in %.0f s' \
        % (acked, DURATION)
