"""
Fixtures for the multi-node tier: every test gets clusters of its own.

    def test_something(cluster):            # 3 nodes, extension created
        cluster.form_group('g')
        cluster[0].sql('SELECT paxos_append(%s, %s, %s)', ('p/1', 'g', 'v'))

    @pytest.mark.parametrize('cluster', [5], indirect=True)
    def test_five(cluster): ...             # N nodes

    def test_two_clusters(cluster_factory):
        a = cluster_factory(3); b = cluster_factory(1)

Nodes are real PostgreSQL 15 servers (see pgcluster.py).  Whatever happens
in the test, its nodes are stopped by data directory and their files
removed afterwards; when a test fails, the tail of each node's server log
is attached to the report, with its lines about who leads.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import netfault  # noqa: E402
import pgcluster  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the server logs of a failed test's nodes to its report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ('setup', 'call'):
        for c in getattr(item, '_pgp_clusters', []):
            for node in c.nodes:
                rep.sections.append(
                    ('%s log (port %s, last 40 lines)' % (node.name,
                                                          node.port),
                     node.log_tail(40)))
                rep.sections.append(
                    ('%s leadership log (port %s)' % (node.name, node.port),
                     node.leadership_log()))


@pytest.fixture
def cluster_factory(request):
    """Return make(n=3, settings=None): start a cluster of n nodes with
    pg_paxos created on each; all of them are destroyed after the test."""
    clusters = []
    request.node._pgp_clusters = clusters

    def make(n=3, settings=None):
        c = pgcluster.Cluster(n, settings)
        clusters.append(c)
        c.start()
        return c

    yield make
    for c in clusters:
        c.destroy()


@pytest.fixture
def cluster(request, cluster_factory):
    """A started cluster of 3 nodes (or request.param nodes)."""
    return cluster_factory(getattr(request, 'param', 3))


@pytest.fixture
def linked_cluster_factory(request):
    """Return make(n=3, settings=None): a started cluster of n nodes whose
    node-to-node traffic crosses netfault's proxy, and its Network; both
    are closed and destroyed after the test."""
    made = []
    request.node._pgp_clusters = clusters = []

    def make(n=3, settings=None):
        c = pgcluster.Cluster(n, settings)
        clusters.append(c)
        net = netfault.Network(c)
        made.append((c, net))
        c.start()
        net.start()
        return c, net

    yield make
    for c, net in made:
        net.close()
        c.destroy()
