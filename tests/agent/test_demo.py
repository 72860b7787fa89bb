"""
scripts/demo.sh (make demo) through the agents, on ports and in a directory
of its own: start (detached), what it prints, a transaction, status, stop.
"""

import os
import re
import subprocess
import tempfile

import agentcluster
from agentcluster import pgcluster

ROOT = agentcluster.ROOT


def run_demo(env, *args, timeout=240):
    return subprocess.run([os.path.join(ROOT, 'scripts', 'demo.sh')] +
                          list(args), env=env, capture_output=True,
                          text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_demo_start_status_stop():
    base = tempfile.mkdtemp(prefix='pgp-demo-test-')
    os.rmdir(base)      # demo.sh makes it
    pg = [pgcluster.free_port() for _ in range(3)]
    http = [pgcluster.free_port() for _ in range(3)]
    env = dict(os.environ, PGP_DEMO_DIR=base, PGP_DEMO_NO_BUILD='1',
               PGP_DEMO_PORTS=' '.join(map(str, pg)),
               PGP_DEMO_AGENT_PORTS=' '.join(map(str, http)))
    try:
        out = run_demo(env, 'start', '--detach')
        assert out.returncode == 0, out.stdout + out.stderr
        token = open(os.path.join(base, 'admin_token')).read().strip()
        assert re.search(r'Leader: +node[123] \(PostgreSQL port', out.stdout)
        assert ('Web client:   http://127.0.0.1:%d/create/#token=%s'
                % (http[0], token)) in out.stdout
        assert 'Admin token:  %s' % token in out.stdout

        r = agentcluster.http('POST', 'http://127.0.0.1:%d/commit/' % http[0],
                              {'transaction': {'read_set': [],
                                               'write_set': {'1': 100}}})
        assert r.json == {'commit': 'COMMIT'}
        r = agentcluster.http('POST', 'http://127.0.0.1:%d/read/' % http[2],
                              {'transaction': {'read_set': [1],
                                               'write_set': {}}})
        assert r.json['data'][0][0] == [1, 100]

        st = run_demo(env, 'status')
        assert st.returncode == 0
        assert 'Cluster: demo' in st.stdout and st.stdout.count('running') == 3

        # started again: says so, changes nothing
        again = run_demo(env, 'start', '--detach')
        assert 'already running' in again.stdout

        stop = run_demo(env, 'stop')
        assert stop.returncode == 0
        assert stop.stdout.count('stopped node') == 3
        for i in range(1, 4):
            data = os.path.join(base, 'node%d' % i, 'data')
            assert not os.path.exists(os.path.join(data, 'postmaster.pid'))
    finally:
        out = run_demo(env, 'clean')
        assert not os.path.exists(base), out.stdout + out.stderr
