"""
paxosd's native API: status, text transactions, metrics, paxosctl.
"""

import re
import subprocess
import time

import agentcluster


def test_status_describes_node_and_cluster(agents):
    # a node restarted by an earlier test shows up again at the agent's
    # next look at it
    end = time.monotonic() + 15
    st = agents.status(1)
    while not all(n['up'] for n in st['cluster']['nodes']):
        assert time.monotonic() < end, 'nodes not up: %r' % st['cluster']
        time.sleep(0.2)
        st = agents.status(1)
    assert st['node']['node_id'] == 2
    assert st['node']['ready'] is True
    assert st['node']['postgres_up'] is True
    cl = st['cluster']
    assert cl['group'] == 'bank'
    assert cl['leader_id'] == agents.leader()
    assert [n['node_id'] for n in cl['nodes']] == [1, 2, 3]
    leaders = [n for n in cl['nodes'] if n['leader']]
    assert len(leaders) == 1 and leaders[0]['role'] == 'leader'
    for n in cl['nodes']:
        assert n['up'] is True
        assert n['role'] in ('leader', 'follower')
        assert n['applied_round'] >= 0 and n['decided_round'] >= 0
        assert n['lag'] >= 0
        assert n['agent_url'] == agents[n['node_id'] - 1].url + '/'


def test_text_transaction_reads_then_commits(agents):
    r = agents.post(0, '/api/transaction', {'text': 'w(900=10) w(901=20)'})
    assert r.status == 200 and r.json['commit'] == 'COMMIT'
    r = agents.post(2, '/api/transaction', {'text': 'r(900)r(901)w(900=5)'})
    assert r.status == 200
    assert r.json['commit'] == 'COMMIT'
    assert r.json['kind'] == 'read-write'
    assert [d[0] for d in r.json['data']] == [[900, 10], [901, 20]]
    r = agents.post(1, '/api/transaction', {'text': 'r(900)'})
    assert r.json['data'][0][0] == [900, 5]
    assert r.json['kind'] == 'read-only'


def test_metrics_count_commits_aborts_and_statuses(agents):
    def scrape():
        text = agents.get(0, '/metrics').text
        return {m.group(1): float(m.group(2)) for m in re.finditer(
            r'^(paxosd_[a-z_]+(?:\{[^}]*\})?) (-?[0-9.e+]+)$', text, re.M)}

    before = scrape()
    agents.post(0, '/commit/', {'transaction': {'read_set': [],
                                                'write_set': {'950': 1}}})
    ts = agents.post(0, '/read/', {'transaction': {
        'read_set': [950], 'write_set': {}}}).json['timestamp']
    agents.post(1, '/commit/', {'transaction': {'read_set': [],
                                                'write_set': {'950': 2}}})
    r = agents.post(0, '/commit/', {'transaction': {
        'read_set': [950], 'write_set': {'950': 3}, 'time_stamp': ts}})
    assert r.json == {'commit': 'ABORT'}
    agents.get(0, '/no/such/path')
    after = scrape()
    assert after['paxosd_commits_total'] == before['paxosd_commits_total'] + 1
    assert after['paxosd_aborts_total'] == before['paxosd_aborts_total'] + 1
    assert after['paxosd_reads_total'] == before['paxosd_reads_total'] + 1
    assert (after['paxosd_http_requests_total{code="404"}'] ==
            before['paxosd_http_requests_total{code="404"}'] + 1)
    assert after['paxosd_postgres_up'] == 1
    assert after['paxosd_leader_id'] == agents.leader()
    assert after['paxosd_applied_round'] > 0
    assert 'paxosd_leader_changes_total' in after
    assert 'paxosd_apply_lag_rounds' in after


def test_paxosctl_status_prints_the_table(agents):
    addrs = ','.join('127.0.0.1:%d' % a.http_port for a in agents.agents)
    out = subprocess.run([agentcluster.PAXOSCTL, '--agents', addrs,
                          'status'], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert 'Cluster: bank' in out.stdout
    rows = [l for l in out.stdout.splitlines() if re.match(r'\| \d', l)]
    assert len(rows) == 3
    leader = agents.leader()
    assert any(r.startswith('| %d *' % leader) and 'leader' in r
               for r in rows)
    assert all('running' in r for r in rows)
    out = subprocess.run([agentcluster.PAXOSCTL, '--agents', addrs,
                          'leader'], capture_output=True, text=True,
                         timeout=30)
    assert out.stdout.strip() == str(leader)


def test_paxosctl_admin_needs_the_token(agents):
    addrs = ','.join('127.0.0.1:%d' % a.http_port for a in agents.agents)
    out = subprocess.run([agentcluster.PAXOSCTL, '--agents', addrs, '--token',
                          'wrong-token-123', 'stop', '2'],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert '401' in out.stderr
    assert agents[1].postgres_running()


def test_switchover_moves_the_leader(agents):
    before = agents.leader()
    target = 2 if before != 2 else 3
    r = agents.post(0, '/api/admin/switchover', {'target_node_id': target},
                    token=agents.token)
    assert r.status == 200, r.json
    end = time.monotonic() + 15
    while agents.leader() != target:
        assert time.monotonic() < end, 'node %d did not become leader' % target
        time.sleep(0.2)