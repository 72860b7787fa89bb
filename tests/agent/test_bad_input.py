"""
Bad input to the agents: a 4xx with a JSON error for everything, and
nothing changes in bank_balance.
"""

import json
import socket

import pytest

import agentcluster

ACCOUNT = 700       # the one account these tests might damage


def snapshot(agents):
    return agents.post(0, '/read/', {'transaction': {
        'read_set': [ACCOUNT, 701], 'write_set': {}}}).json['data']


@pytest.fixture
def unchanged(agents):
    """Seed ACCOUNT, and check after the test that nothing changed."""
    agents.post(0, '/commit/', {'transaction': {
        'read_set': [], 'write_set': {str(ACCOUNT): 5}}})
    before = snapshot(agents)
    yield
    assert snapshot(agents) == before


BAD_COMMITS = [
    (b'', 'empty body'),
    (b'{', 'malformed JSON'),
    (b'[1, 2]', 'must be a JSON object'),
    (b'{"transaction": 5}', '"transaction" must be an object'),
    (b'{"transaction": {}, "x": 1}', 'unknown key "x"'),
    (b'{"transaction": {"read_set": "1"}}', '"read_set" must be an array'),
    (b'{"transaction": {"read_set": [1.5]}}', 'must be an integer'),
    (b'{"transaction": {"read_set": [true]}}', 'must be an integer'),
    (b'{"transaction": {"read_set": [2147483648]}}', 'between'),
    (b'{"transaction": {"write_set": [1]}}', '"write_set" must be an object'),
    (b'{"transaction": {"write_set": {"700": 2147483648}}}', 'between'),
    (b'{"transaction": {"write_set": {"700": -2147483649}}}', 'between'),
    (b'{"transaction": {"write_set": {"700": "1"}}}', 'must be an integer'),
    (b'{"transaction": {"write_set": {"700": null}}}', 'must be an integer'),
    (b'{"transaction": {"write_set": {"abc": 1}}}', 'not an account number'),
    (b'{"transaction": {"write_set": {" 700": 1}}}', 'not an account number'),
    (b'{"transaction": {"write_set": {"2147483648": 1}}}',
     'not an account number'),
    (b'{"transaction": {"write_set": {"700": 1, "700": 2}}}', 'duplicate'),
    (b'{"transaction": {"write_set": {"700": 1}, "time_stamp": -1}}',
     'time_stamp'),
    (b'{"transaction": {"write_set": {"700": 1}, "time_stamp": "now"}}',
     'time_stamp'),
    (b'{"transaction": {"write_set": {"700": 1}, "time_stamp": '
     b'99999999999999999999999}}', 'malformed JSON'),
    (b'{"transaction": {"write_set": {"700": 1}}}\x00', 'malformed JSON'),
    (b'\xff\xfe{"transaction": {}}', 'malformed JSON'),
    (b'[' * 5000, 'malformed JSON'),
]


@pytest.mark.parametrize('raw,message', BAD_COMMITS,
                         ids=[m for _, m in BAD_COMMITS])
def test_bad_commit_is_a_400_and_changes_nothing(agents, unchanged, raw,
                                                 message):
    r = agents.post(0, '/commit/', raw=raw)
    assert r.status == 400, r
    assert r.json['status'] == 400
    assert message in r.json['error']


def test_read_refuses_writes_and_bad_sets(agents, unchanged):
    r = agents.post(1, '/read/', {'transaction': {
        'read_set': [1], 'write_set': {str(ACCOUNT): 1}}})
    assert r.status == 400 and '/commit/' in r.json['error']
    r = agents.post(1, '/read/', {'transaction': {'write_set': {}}})
    assert r.status == 400 and 'read_set' in r.json['error']
    r = agents.post(1, '/read/', {'transaction': {
        'read_set': list(range(1001)), 'write_set': {}}})
    assert r.status == 400 and 'more than 1000' in r.json['error']


BAD_TEXT = [
    ('', 'empty transaction'),
    ('x(1)', "unexpected 'x'"),
    ('r1', "'(' expected"),
    ('r()', 'a number is expected'),
    ('r(1', "')' expected"),
    ('w(700)', "'=' expected"),
    ('w(700=)', 'a number is expected'),
    ('w(700=2147483648)', 'out of range'),
    ('w(99999999999999999999=1)', 'out of range'),
    ('r(1)w(700=5)junk', "unexpected 'j'"),
]


@pytest.mark.parametrize('text,message', BAD_TEXT,
                         ids=[m for _, m in BAD_TEXT])
def test_bad_text_transaction_says_what_is_wrong(agents, unchanged, text,
                                                 message):
    r = agents.post(2, '/api/transaction', {'text': text})
    assert r.status == 400
    assert message in r.json['error']


def test_oversize_body_is_refused(agents, unchanged):
    big = b'{"transaction": {"read_set": [' + b'1,' * 40000 + b'1]}}'
    r = agents.post(0, '/commit/', raw=big)
    assert r.status == 413
    assert 'larger than' in r.json['error']


def test_unknown_path_and_wrong_method(agents, unchanged):
    r = agents.get(0, '/nope')
    assert r.status == 404 and r.json['status'] == 404
    r = agents.get(0, '/commit/')
    assert r.status == 405 and 'GET' in r.json['error']
    r = agents.post(0, '/down_leader/', {})
    assert r.status == 405


def test_admin_endpoints_need_the_token(agents, unchanged):
    for path in ('/api/admin/down', '/api/admin/up',
                 '/api/admin/switchover'):
        for token in (None, 'wrong', agents.token + 'x', ''):
            r = agents.post(1, path, {}, token=token)
            assert r.status == 401, (path, token, r)
    r = agents.post(1, '/api/admin/switchover', {'target_node_id': 7},
                    token=agents.token)
    assert r.status == 400
    r = agents.post(1, '/api/admin/switchover', {'target_node_id': 'x'},
                    token=agents.token)
    assert r.status == 400
    assert all(a.postgres_running() for a in agents.agents)


def test_cors_only_for_the_agents_own_web_clients(agents):
    peer = 'http://127.0.0.1:%d' % agents[1].http_port
    r = agents.get(0, '/api/status', headers={'Origin': peer})
    assert r.headers.get('Access-Control-Allow-Origin') == peer
    r = agents.get(0, '/api/status',
                   headers={'Origin': 'http://evil.example'})
    assert 'Access-Control-Allow-Origin' not in r.headers


def test_garbage_on_the_socket_does_not_hurt_the_agent(agents):
    for junk in (b'\x00\x01\x02 garbage\r\n\r\n',
                 b'GET /' + b'a' * 20000 + b' HTTP/1.1\r\n\r\n',
                 b'POST /commit/ HTTP/1.1\r\nContent-Length: 99999999\r\n'
                 b'\r\n{'):
        s = socket.create_connection(('127.0.0.1', agents[0].http_port), 5)
        s.sendall(junk)
        s.settimeout(5)
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
    r = agents.get(0, '/api/status')
    assert r.status == 200 and r.json['node']['ready']


def test_agent_listens_on_loopback_only(agents):
    with open('/proc/net/tcp') as f:
        rows = [l.split() for l in f.readlines()[1:]]
    port_hex = '%04X' % agents[0].http_port
    listening = [r[1] for r in rows if r[1].endswith(':' + port_hex)
                 and r[3] == '0A']
    assert listening == ['0100007F:' + port_hex]


def test_bad_config_is_refused_with_a_clear_error(tmp_path):
    conf = tmp_path / 'bad.conf'
    conf.write_text('node_id = 1\nnode = 1 127.0.0.1 70000 8000\n')
    import subprocess
    out = subprocess.run([agentcluster.PAXOSD, '-c', str(conf)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert 'bad id' in out.stderr and 'port' in out.stderr
    out = subprocess.run([agentcluster.PAXOSD, '--node_id', '1',
                          '--data_dir', str(tmp_path)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert 'no "node = 1' in out.stderr
    json.dumps(out.stderr)
