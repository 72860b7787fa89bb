"""
Node failures: a minority down must not stop appends and the node catches
up when it returns; with a majority down, appends fail with a clear error
within the RPC timeout instead of hanging.
"""

import socket
import threading
import time

import psycopg2
import pytest

import checks
import pgcluster

GROUP = 'failures'
SLACK = 3.0              # seconds allowed beyond 2 x pg_paxos.rpc_timeout


def append(node, proposer, value, timeout=60):
    return node.scalar('SELECT paxos_append(%s, %s, %s)',
                       (proposer, GROUP, value), timeout=timeout)


def rpc_timeout_seconds(node):
    ms = node.scalar("SELECT setting::int FROM pg_settings "
                     "WHERE name = 'pg_paxos.rpc_timeout'")
    assert ms is not None, 'pg_paxos.rpc_timeout is not defined'
    return ms / 1000.0


def test_minority_down_then_catch_up(cluster):
    cluster.form_group(GROUP)
    appends = []
    for node in cluster:
        for i in range(5):
            value = 'before/%s/%d' % (node.name, i)
            appends.append((value, append(node, 'b/%s/%d' % (node.name, i),
                                          value)))

    victim, others = cluster[0], cluster.nodes[1:]
    victim.stop('immediate')

    for i in range(20):
        for node in others:
            value = 'during/%s/%d' % (node.name, i)
            appends.append((value, append(node, 'd/%s/%d' % (node.name, i),
                                          value)))

    victim.start()
    victim.sql('SELECT paxos_learn_log(%s, paxos_max_group_round(%s))',
               (GROUP, GROUP))
    checks.assert_logs_agree(cluster.nodes, GROUP, appends)

    # Back in the group, the victim can append again, after everything.
    last = max(r for _, r in appends)
    r = append(victim, 'after/%s' % victim.name, 'after')
    assert r > last


def assert_fails_fast(node, limit, what):
    """paxos_append on node must raise a psycopg2 error mentioning a
    majority within limit seconds; a hang is cut off and fails the test."""
    t0 = time.monotonic()
    try:
        r = append(node, 'nomaj/%s' % what, 'no majority ' + what,
                   timeout=max(4 * limit, 30))
    except pgcluster.SqlTimeout:
        pytest.fail('%s: paxos_append hung for %.1f s without a majority'
                    % (what, time.monotonic() - t0))
    except psycopg2.Error as e:
        elapsed = time.monotonic() - t0
        assert 'majority' in str(e).lower(), \
            '%s: error does not mention a majority: %s' % (what, e)
        assert elapsed <= limit, \
            '%s: took %.1f s to fail, limit %.1f s' % (what, elapsed, limit)
        return
    pytest.fail('%s: paxos_append succeeded (round %s) without a majority'
                % (what, r))


def test_majority_down_fails_fast(cluster):
    cluster.form_group(GROUP)
    for node in cluster:
        append(node, 'warm/%s' % node.name, 'warm ' + node.name)
    limit = 2 * rpc_timeout_seconds(cluster[0]) + SLACK

    survivor = cluster[0]
    for node in cluster.nodes[1:]:
        node.stop('immediate')

    assert_fails_fast(survivor, limit, 'first try')
    assert_fails_fast(survivor, limit, 'second try')


class BlackHole:
    """Listens on a port, accepts connections and never answers: a peer
    that is up at the TCP level but hung."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', port))
        self.sock.listen(64)
        self.accepted = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        for conn in self.accepted:
            conn.close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def test_majority_hung_fails_within_timeout(cluster):
    cluster.form_group(GROUP)
    for node in cluster:
        append(node, 'warm/%s' % node.name, 'warm ' + node.name)
    limit = 2 * rpc_timeout_seconds(cluster[0]) + SLACK

    survivor = cluster[0]
    holes = []
    try:
        for node in cluster.nodes[1:]:
            node.stop('immediate')
            holes.append(BlackHole(node.port))
        assert_fails_fast(survivor, limit, 'peers hung')
    finally:
        for hole in holes:
            hole.close()
