"""
The web client in a real headless Chromium: load /create/ from an agent,
submit r(1)w(1=50), see the result and the cluster view, take a node down
and up with the buttons; screenshots kept in tests/agent/artifacts/.
"""

import os

import pytest

import cdp

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         'artifacts')


@pytest.fixture
def browser():
    if not os.path.exists(cdp.CHROMIUM):
        pytest.fail('chromium is not installed (scripts/install-deps.sh)')
    os.makedirs(ARTIFACTS, exist_ok=True)
    with cdp.Browser() as b:
        yield b


def rows_text(b):
    return b.eval('Array.from(document.querySelectorAll("#nodes tr"))'
                  '.map(r => r.innerText).join("\\n")')


def test_transaction_and_cluster_view(agents, browser):
    b = browser
    agents.post(0, '/commit/', {'transaction': {'read_set': [],
                                                'write_set': {'1': 10}}})
    # served by node 2's agent, with the token in the fragment
    b.open(agents[1].url + '/create/#token=' + agents.token)
    b.wait_for('document.querySelectorAll("#nodes tr").length === 3')
    leader = agents.leader()
    assert b.eval('document.getElementById("self").textContent') == '2'
    text = rows_text(b)
    assert '\u2605 node %d' % leader in text
    assert text.count('follower') == 2 and text.count('leader') >= 1

    b.eval('document.getElementById("tx").value = "r(1)w(1=50)"')
    b.eval('document.getElementById("submit").click()')
    b.wait_for('document.querySelectorAll("#results li").length === 1')
    result = b.eval('document.querySelector("#results li").innerText')
    assert 'r(1)w(1=50)' in result and 'COMMIT' in result
    assert 'account 1 = 10' in result
    assert 'on node %d' % leader in result       # it went to the leader
    r = agents.post(2, '/read/', {'transaction': {'read_set': [1],
                                                  'write_set': {}}})
    assert r.json['data'][0][0] == [1, 50]
    b.wait_for('document.getElementById("nodes").innerText'
               '.split("\\n").length >= 3')
    b.screenshot(os.path.join(ARTIFACTS, 'webclient.png'))

    # bad syntax: a clear message, nothing added to the results
    b.eval('document.getElementById("tx").value = "r(1)w(2=)"')
    b.eval('document.getElementById("submit").click()')
    b.wait_for('document.getElementById("txmsg").innerText'
               '.includes("bad syntax")')
    assert 'number is expected' in b.eval(
        'document.getElementById("txmsg").innerText')
    assert b.eval('document.querySelectorAll("#results li").length') == 1
    b.screenshot(os.path.join(ARTIFACTS, 'webclient-bad-syntax.png'))


def test_down_and_up_buttons(agents, browser):
    b = browser
    agents.wait_members(30)           # no node shown offline from before
    leader = agents.leader()
    victim = agents[leader % 3]           # a follower
    b.open(agents[0].url + '/#token=' + agents.token)
    b.wait_for('document.querySelectorAll("#nodes tr").length === 3')
    try:
        b.eval('document.querySelector("#node-%d button").click()'
               % victim.id)
        b.wait_for('document.getElementById("adminmsg").innerText'
                   '.includes("is down")', timeout=60)
        b.wait_for('document.querySelector("#node-%d").innerText'
                   '.includes("offline")' % victim.id, timeout=60)
        assert not victim.postgres_running()
        b.screenshot(os.path.join(ARTIFACTS, 'webclient-node-down.png'))
        b.wait_for('document.querySelector("#node-%d button").textContent'
                   ' === "bring up"' % victim.id)
        b.eval('document.querySelector("#node-%d button").click()'
               % victim.id)
        b.wait_for('document.querySelector("#node-%d").innerText'
                   '.includes("follower")' % victim.id, timeout=90)
        assert victim.postgres_running()
    finally:
        if not victim.postgres_running():
            agents.post(victim.id - 1, '/api/admin/up', token=agents.token)
