"""
agentcluster - real paxosd agents, each with its own real PostgreSQL node,
for the agent tier (tests/agent) and for trying things by hand:

    with AgentCluster(3) as c:
        c.post(0, '/commit/', {'transaction': {'read_set': [],
                                               'write_set': {'1': 5}}})

Each agent is started as a process of ours (build/paxosd) with a config
file of its own, a temporary node directory and ports picked free by
binding: PostgreSQL ports in 21000-22999 and agent ports in 23000-23999,
away from what other test tiers use.  The agents initialise, start and
bootstrap their servers themselves.  destroy() stops each agent by its pid
(SIGTERM, it stops its PostgreSQL), then stops any server still running
by its data directory, and removes the files.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'cluster'))

import pgcluster  # noqa: E402

PAXOSD = os.path.join(ROOT, 'agent', 'build', 'paxosd')
PAXOSCTL = os.path.join(ROOT, 'agent', 'build', 'paxosctl')
# ports: pgcluster.free_port(), the one picker of the whole test suite


class HttpResult:
    """status, the body as text, and .json (None if it is not JSON)."""

    def __init__(self, status, text, headers):
        self.status = status
        self.text = text
        self.headers = headers
        try:
            self.json = json.loads(text)
        except ValueError:
            self.json = None

    def __repr__(self):
        return '<HTTP %d %s>' % (self.status, self.text[:200])


def http(method, url, body=None, token=None, raw=None, headers=None,
         timeout=90):
    """One HTTP request; body is sent as JSON, raw as given bytes."""
    data = raw if raw is not None else (
        json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header('Content-Type', 'application/json')
    if token is not None:
        req.add_header('Authorization', 'Bearer ' + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return HttpResult(r.status, r.read().decode(), dict(r.headers))
    except urllib.error.HTTPError as e:
        return HttpResult(e.code, e.read().decode(), dict(e.headers))


class Agent:
    def __init__(self, cluster, node_id):
        self.cluster = cluster
        self.id = node_id
        self.dir = os.path.join(cluster.basedir, 'node%d' % node_id)
        self.datadir = os.path.join(self.dir, 'data')
        self.pg_port = pgcluster.free_port()
        self.http_port = pgcluster.free_port()
        self.conf = os.path.join(cluster.basedir, 'paxosd%d.conf' % node_id)
        self.logfile = os.path.join(cluster.basedir, 'paxosd%d.log'
                                    % node_id)
        self.proc = None

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.http_port

    @property
    def connstr(self):
        return ('host=127.0.0.1 port=%d dbname=postgres user=postgres '
                'connect_timeout=5' % self.pg_port)

    def start(self):
        self.proc = subprocess.Popen(
            [PAXOSD, '-c', self.conf], stdin=subprocess.DEVNULL,
            stdout=open(self.logfile, 'a'), stderr=subprocess.STDOUT)

    def stop(self, timeout=60):
        """SIGTERM to our agent's pid; it stops its PostgreSQL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stop_postgres_by_datadir(self):
        if os.path.exists(os.path.join(self.datadir, 'postmaster.pid')):
            pgcluster._run_pg([os.path.join(pgcluster.pg_bindir(), 'pg_ctl'),
                               '-D', self.datadir, '-m', 'immediate', '-w',
                               'stop'], check=False)

    def postgres_running(self):
        proc = pgcluster._run_pg([os.path.join(pgcluster.pg_bindir(),
                                               'pg_ctl'), '-D', self.datadir,
                                  'status'], check=False)
        return proc.returncode == 0

    def sql(self, query, args=None):
        with pgcluster.Conn(self.connstr) as c:
            return c.sql(query, args)

    def log_tail(self, n=40):
        out = []
        for path in (self.logfile, os.path.join(self.dir, 'postgresql.log')):
            try:
                with open(path, errors='replace') as f:
                    out.append('--- %s\n' % path + ''.join(
                        f.readlines()[-n:]))
            except OSError:
                pass
        return '\n'.join(out)


class AgentCluster(pgcluster.StartedInWith):
    """n agents forming group `group`; start() waits until all are ready."""

    def __init__(self, n=3, group='bank', token='test-admin-token-0123',
                 extra=None):
        self.basedir = pgcluster.make_tempdir('pgp-agents-')
        self.group = group
        self.token = token
        self.agents = [Agent(self, i + 1) for i in range(n)]
        for a in self.agents:
            lines = ['node_id = %d' % a.id, 'data_dir = %s' % a.dir,
                     'group = %s' % group, 'admin_token = %s' % token,
                     'fast_initdb = yes']
            lines += ['node = %d 127.0.0.1 %d %d' % (b.id, b.pg_port,
                                                     b.http_port)
                      for b in self.agents]
            lines += extra or []
            with open(a.conf, 'w') as f:
                f.write('\n'.join(lines) + '\n')

    def __getitem__(self, i):
        return self.agents[i]

    def start(self, timeout=180):
        for a in self.agents:
            a.start()
        end = time.monotonic() + timeout
        for a in self.agents:
            self.wait_ready(a, end - time.monotonic())
        self.wait_members(end - time.monotonic())
        return self

    def wait_members(self, timeout=30):
        """Wait until the agents' view shows every node up in the group."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            nodes = self.status(0)['cluster']['nodes']
            if all(n['up'] and n['role'] in ('leader', 'follower')
                   for n in nodes):
                return
            time.sleep(0.3)
        raise RuntimeError('nodes not all members in time: %r' % nodes)

    def wait_ready(self, agent, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if agent.proc.poll() is not None:
                raise RuntimeError('paxosd %d exited with %s:\n%s'
                                   % (agent.id, agent.proc.returncode,
                                      agent.log_tail()))
            try:
                r = http('GET', agent.url + '/api/status', timeout=5)
                if r.status == 200 and r.json['node']['ready']:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError('paxosd %d not ready in time:\n%s'
                           % (agent.id, agent.log_tail()))

    def status(self, i=0):
        return http('GET', self.agents[i].url + '/api/status').json

    def leader(self, via=None, timeout=30):
        """The id of the leader the agents agree on, waiting for one."""
        end = time.monotonic() + timeout
        while True:
            for a in ([via] if via is not None else self.agents):
                try:
                    st = http('GET', a.url + '/api/status', timeout=5).json
                except OSError:
                    continue
                if st and st['cluster']['leader_id']:
                    return st['cluster']['leader_id']
            if time.monotonic() > end:
                raise AssertionError('no leader within %ds' % timeout)
            time.sleep(0.3)

    def post(self, i, path, body=None, **kw):
        return http('POST', self.agents[i].url + path, body, **kw)

    def get(self, i, path, **kw):
        return http('GET', self.agents[i].url + path, **kw)

    def destroy(self):
        for a in self.agents:
            try:
                a.stop()
            except Exception:
                pass
        for a in self.agents:
            try:
                a.stop_postgres_by_datadir()
            except Exception:
                pass
        shutil.rmtree(self.basedir, ignore_errors=True)

    def logs(self):
        return '\n'.join(a.log_tail() for a in self.agents)
