"""
The replication middleware's HTTP API, served by paxosd: same paths, same
JSON shapes, its optimistic concurrency control, and replication between
agents.
"""

import itertools

_accounts = itertools.count(100)


def new_account():
    """An account number no other test of the session uses."""
    return next(_accounts)


def commit(agents, i, writes, reads=(), ts=None):
    txn = {'read_set': list(reads),
           'write_set': {str(k): v for k, v in writes.items()}}
    if ts is not None:
        txn['time_stamp'] = ts
    return agents.post(i, '/commit/', {'transaction': txn})


def read(agents, i, accounts):
    return agents.post(i, '/read/', {'transaction': {
        'read_set': list(accounts), 'write_set': {}}})


def test_commit_answers_the_middleware_shape_and_inserts(agents):
    a = new_account()
    r = commit(agents, 0, {a: 100})
    assert r.status == 200
    assert r.json == {'commit': 'COMMIT'}
    assert r.headers['Content-Type'] == 'application/json'
    # w(x=y) on an existing account updates it
    assert commit(agents, 0, {a: 130}).json == {'commit': 'COMMIT'}
    assert read(agents, 0, [a]).json['data'][0][0] == [a, 130]


def test_read_answers_the_middleware_shape(agents):
    a, b, missing = new_account(), new_account(), new_account()
    assert commit(agents, 0, {a: 10, b: 20}).json == {'commit': 'COMMIT'}
    r = read(agents, 0, [b, a, missing])
    assert r.status == 200
    assert set(r.json) == {'read_status', 'data', 'timestamp'}
    assert r.json['read_status'] == 'SUCCESS'
    # [[[account, balance], ts], ...] in account order, missing ones left out
    assert [row[0] for row in r.json['data']] == [[a, 10], [b, 20]]
    for (_, ts) in r.json['data']:
        assert isinstance(ts, int) and ts > 10 ** 18      # nanoseconds
    assert isinstance(r.json['timestamp'], int)
    assert r.json['timestamp'] >= r.json['data'][0][1]


def test_write_through_node1_read_through_node3(agents):
    a = new_account()
    assert commit(agents, 0, {a: 4242}).json == {'commit': 'COMMIT'}
    # strong read on another node: sees the write at once
    assert read(agents, 2, [a]).json['data'][0][0] == [a, 4242]
    assert read(agents, 1, [a]).json['data'][0][0] == [a, 4242]


def test_occ_aborts_when_a_read_account_changed_after_time_stamp(agents):
    a = new_account()
    assert commit(agents, 0, {a: 1}).json == {'commit': 'COMMIT'}
    ts = read(agents, 1, [a]).json['timestamp']
    # someone else writes the account after our read, through another node
    assert commit(agents, 2, {a: 2}).json == {'commit': 'COMMIT'}
    r = commit(agents, 1, {a: 99}, reads=[a], ts=ts)
    assert r.json == {'commit': 'ABORT'}
    assert read(agents, 0, [a]).json['data'][0][0] == [a, 2]
    # read again, commit with the new time stamp: goes through
    ts = read(agents, 1, [a]).json['timestamp']
    assert commit(agents, 1, {a: 99}, reads=[a], ts=ts).json == \
        {'commit': 'COMMIT'}
    assert read(agents, 2, [a]).json['data'][0][0] == [a, 99]


def test_occ_validates_only_the_read_set(agents):
    a, b = new_account(), new_account()
    assert commit(agents, 0, {a: 1, b: 1}).json == {'commit': 'COMMIT'}
    ts = read(agents, 0, [a]).json['timestamp']
    assert commit(agents, 1, {b: 5}).json == {'commit': 'COMMIT'}
    # b changed, but we only read a
    assert commit(agents, 0, {a: 7}, reads=[a], ts=ts).json == \
        {'commit': 'COMMIT'}


def test_transfer_keeps_the_total(agents):
    """The middleware's bank transaction: read two accounts, move money."""
    a, b = new_account(), new_account()
    assert commit(agents, 0, {a: 100, b: 0}).json == {'commit': 'COMMIT'}
    for i in range(5):
        r = read(agents, i % 3, [a, b]).json
        bal = {row[0][0]: row[0][1] for row in r['data']}
        res = commit(agents, (i + 1) % 3, {a: bal[a] - 10, b: bal[b] + 10},
                     reads=[a, b], ts=r['timestamp'])
        assert res.json == {'commit': 'COMMIT'}
    rows = read(agents, 2, [a, b]).json['data']
    assert [row[0] for row in rows] == [[a, 50], [b, 50]]


def test_paths_work_without_trailing_slash(agents):
    a = new_account()
    r = agents.post(0, '/commit', {'transaction': {'read_set': [],
                                                   'write_set': {str(a): 3}}})
    assert r.json == {'commit': 'COMMIT'}
    assert agents.post(1, '/read', {'transaction': {'read_set': [a],
                                                    'write_set': {}}}
                       ).json['data'][0][0] == [a, 3]


def test_down_leader_on_a_follower_is_refused(agents):
    leader = agents.leader()
    follower = 1 if leader != 2 else 2
    r = agents.get(follower, '/down_leader/')
    assert r.status == 409
    assert r.json['leader_id'] == leader
    assert r.json['leader_url'].endswith(':%d/down_leader/'
                                         % agents[leader - 1].http_port)
    # nothing was stopped
    assert all(a.postgres_running() for a in agents.agents)
