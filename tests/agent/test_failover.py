"""
The middleware's failover and recovery, through the agents: /down_leader/
under a stream of /commit/ calls (commits go on through the surviving
agents, nothing acknowledged is lost), then /up_node/ (the node catches up
and its bank_balance equals the others').
"""

import sys
import threading
import time

import agentcluster

FIRST_ACCOUNT = 10000


class Committer(threading.Thread):
    """A client of the middleware API: each commit writes a new account
    (account = value), through the agents in turn, skipping an agent that
    answers anything but COMMIT/ABORT for a moment."""

    def __init__(self, agents, offset, stop):
        super().__init__()
        self.agents, self.offset, self.stop = agents, offset, stop
        self.acked = []         # (account, time acknowledged)
        self.unavailable = 0

    def run(self):
        seq = 0
        while not self.stop.is_set():
            account = FIRST_ACCOUNT + self.offset * 100000 + seq
            seq += 1
            agent = self.agents[seq % 3]
            try:
                r = agentcluster.http('POST', agent.url + '/commit/', {
                    'transaction': {'read_set': [],
                                    'write_set': {str(account): account}}},
                    timeout=30)
            except OSError:
                self.unavailable += 1
                continue
            if r.status == 200 and r.json == {'commit': 'COMMIT'}:
                self.acked.append((account, time.monotonic()))
            else:
                self.unavailable += 1
                time.sleep(0.05)


def rows(agent):
    return agent.sql('SELECT account_number, balance, created_at, updated_at'
                     ' FROM bank_balance ORDER BY 1')


def test_down_leader_under_commits_then_up_node(agents):
    leader = agents.leader()
    down = agents[leader - 1]
    stop = threading.Event()
    clients = [Committer(agents.agents, i, stop) for i in range(3)]
    for c in clients:
        c.start()
    try:
        time.sleep(2)
        # leadership may still move while a fresh cluster settles: the
        # agent that is not the leader says who is (409), go there
        for _ in range(3):
            r = agentcluster.http('GET', down.url + '/down_leader/')
            if r.status != 409:
                break
            leader = r.json['leader_id']
            down = agents[leader - 1]
        downed_at = time.monotonic()
        assert r.status == 200 and r.json == {'status': 200}
        assert not down.postgres_running()

        # the downed node's agent answers 503, the others a new leader
        r = agents.post(leader - 1, '/read/', {'transaction': {
            'read_set': [1], 'write_set': {}}})
        assert r.status == 503 and r.json['status'] == 503
        # a surviving agent shows another leader (its view polls on its own)
        end = time.monotonic() + 30
        while agents.leader(via=agents[leader % 3]) == leader:
            assert time.monotonic() < end, 'no new leader within 30 s'
            time.sleep(0.2)
        time.sleep(4)
    finally:
        stop.set()
        for c in clients:
            c.join(60)
        if not down.postgres_running() and sys.exc_info()[0] is not None:
            agentcluster.http('GET', down.url + '/up_node/', timeout=120)

    acked = sorted(a for c in clients for a, _ in c.acked)
    after = [a for c in clients for a, t in c.acked if t > downed_at + 1]
    assert len(after) >= 10, 'commits did not resume after the failover'

    try:
        # nothing acknowledged is lost, on either surviving node
        survivors = [a for a in agents.agents if a is not down]
        # (in reads of at most 1000 accounts, the API's limit)
        for i in range(0, len(acked), 1000):
            part = acked[i:i + 1000]
            r = agentcluster.http('POST', survivors[0].url + '/read/', {
                'transaction': {'read_set': part, 'write_set': {}}})
            assert r.status == 200
            assert [d[0] for d in r.json['data']] == [[a, a] for a in part]

        # up_node: it comes back, caught up, with the others' rows
        t0 = time.monotonic()
        r = agentcluster.http('GET', down.url + '/up_node/', timeout=120)
        assert r.status == 200 and r.json == {'status': 200}
        assert down.postgres_running()
        assert time.monotonic() - t0 < 60
        expected = rows(survivors[0])
        assert rows(survivors[1]) == expected
        # optimistic (local) read of the recovered node: already caught up
        got = down.sql("SET pg_paxos.consistency_model = 'optimistic'; "
                       "SELECT account_number, balance, created_at, "
                       "updated_at FROM bank_balance ORDER BY 1")
        assert got == expected
        assert {a for a, *_ in expected} >= set(acked)
        # and it serves transactions again
        r = agents.post(leader - 1, '/commit/', {'transaction': {
            'read_set': [], 'write_set': {'5': 5}}})
        assert r.json == {'commit': 'COMMIT'}
        agents.wait_members(30)
    finally:
        if not down.postgres_running():
            agentcluster.http('GET', down.url + '/up_node/', timeout=120)


def test_admin_down_and_up_of_a_follower(agents):
    leader = agents.leader()
    follower = agents[leader % 3]
    try:
        r = agents.post(follower.id - 1, '/api/admin/down', token=agents.token)
        assert r.status == 200 and r.json['state'] == 'down'
        assert not follower.postgres_running()
        # every agent polls on its own: the leader's sees it within a second
        end = time.monotonic() + 10
        while True:
            st = agents.status(leader - 1)['cluster']
            node = [n for n in st['nodes'] if n['node_id'] == follower.id][0]
            if node['role'] == 'offline' or time.monotonic() > end:
                break
            time.sleep(0.2)
        assert node['role'] == 'offline' and node['up'] is False
        assert node['lag'] is None
        assert st['leader_id'] == leader
        # the cluster still commits with two of three
        r = agents.post(leader - 1, '/commit/', {'transaction': {
            'read_set': [], 'write_set': {'6': 6}}})
        assert r.json == {'commit': 'COMMIT'}
        r = agents.post(follower.id - 1, '/api/admin/up', token=agents.token)
        assert r.status == 200 and r.json['state'] == 'up'
        r = agents.post(follower.id - 1, '/read/', {'transaction': {
            'read_set': [6], 'write_set': {}}})
        assert r.json['data'][0][0] == [6, 6]
        agents.wait_members(30)
    finally:
        if not follower.postgres_running():
            agents.post(follower.id - 1, '/api/admin/up', token=agents.token)
