"""
Fixtures of the agent tier: one cluster of 3 real paxosd agents (each with
its real PostgreSQL) for the whole session, since starting one takes
seconds and every test here leaves it as it found it (a test that takes a
node down brings it back up, in a finally).  When a test fails, the tail of
every agent's and server's log is attached to its report.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import agentcluster  # noqa: E402

_clusters = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ('setup', 'call'):
        for c in _clusters:
            rep.sections.append(('agent and server logs', c.logs()))


@pytest.fixture(scope='session')
def agents():
    """A started 3-agent cluster, group 'bank'."""
    if not os.access(agentcluster.PAXOSD, os.X_OK):
        pytest.fail('%s is missing: run make first' % agentcluster.PAXOSD)
    c = agentcluster.AgentCluster(3)
    _clusters.append(c)
    try:
        c.start()
        yield c
    finally:
        c.destroy()
        _clusters.remove(c)
