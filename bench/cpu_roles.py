"""
cpu_roles.py - where the CPU time of a benchmark run goes, by the role of
each process: the servers' processes (client backends, pg_paxos's RPC
backends, its background workers, WAL writer, walsenders, a standby's
startup process ...) and pgbench itself.

The machine's CPUs are the limit of the bank benchmark's 8-client runs, so
CPU time per transaction, by role, says where the time goes.  It is read
from /proc (Linux): utime + stime of every process between two samples,
while the workload runs.  A process is attributed to a server by its
parent (the postmaster of a node's data directory) and to a role by its
title, or, for a backend, by its application_name (pg_stat_activity):
'pgbench_bank' for the clients, 'pg_paxos' for the connections pg_paxos's
nodes keep to each other.

    sampler = CpuSampler(nodes, 'pgbench_bank', count_transactions)
    sampler.start(pgbench_pids)   # after the clients connected
    ...                           # the workload runs
    sampler.stop()                # before the clients disconnect
    print('\n'.join(sampler.report()))

count_transactions() says how many transactions have committed so far (the
bank workload: the sum of the balances), so that CPU time between the two
samples is divided by the transactions between them; so is the WAL the
nodes wrote meanwhile (pg_current_wal_insert_lsn(), standbys left out:
they replay their primary's).
"""

import os
import re

CLK_TCK = os.sysconf('SC_CLK_TCK')


def _read_stat(pid):
    """(ppid, utime + stime in ticks) of a process, or None if gone."""
    try:
        with open('/proc/%s/stat' % pid) as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(')') + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _switches(pid):
    """Voluntary context switches of a process (its sleeps: each wait for a
    message, a latch, a lock, an fsync), 0 if gone."""
    try:
        with open('/proc/%s/status' % pid) as f:
            for line in f:
                if line.startswith('voluntary_ctxt_switches:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _title(pid):
    try:
        with open('/proc/%s/cmdline' % pid, 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace').strip()
    except OSError:
        return ''


def _busy_ticks():
    """(busy, total) ticks of all CPUs since boot."""
    with open('/proc/stat') as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]          # idle + iowait
    return sum(values) - idle, sum(values)


def _postmaster_pid(node):
    try:
        with open(os.path.join(node.datadir, 'postmaster.pid')) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


# Process titles of the server's own processes ("postgres: <role> ..."):
# backends ("postgres: user db host ...") are told apart by application name.
_AUX = re.compile(r'^postgres: (walwriter|checkpointer|background writer|'
                  r'autovacuum launcher|autovacuum worker|logical replication '
                  r'launcher|walsender|walreceiver|startup|archiver|'
                  r'stats collector|pg_paxos \w+)')


class CpuSampler:
    """CPU time by role of the processes of some nodes, and of pgbench."""

    def __init__(self, nodes, client_app, count_transactions):
        self.nodes = list(nodes)
        self.client_app = client_app
        self.count = count_transactions
        self.first = None
        self.last = None
        self.roles = {}

    def _app_names(self):
        names = {}
        for node in self.nodes:
            try:
                for pid, app in node.sql('SELECT pid, application_name '
                                         'FROM pg_stat_activity'):
                    names[pid] = app
            except Exception:               # a node that went away: no names
                pass
        return names

    def _sample(self, pgbench_pids):
        postmasters = set(filter(None, map(_postmaster_pid, self.nodes)))
        ticks = {}
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            pid = int(entry)
            stat = _read_stat(pid)
            if stat is None:
                continue
            ppid, used = stat
            if pid in pgbench_pids:
                ticks[pid] = (used, _switches(pid))
                self.roles.setdefault(pid, 'pgbench')
            elif ppid in postmasters or pid in postmasters:
                ticks[pid] = (used, _switches(pid))
                if pid not in self.roles:
                    self.roles[pid] = self._role(pid, pid in postmasters)
        return ticks, _busy_ticks()

    def _role(self, pid, is_postmaster):
        if is_postmaster:
            return 'postmaster'
        title = _title(pid)
        m = _AUX.match(title)
        if m:
            return m.group(1)
        app = self.app_names.get(pid)
        if app == self.client_app:
            return 'client backends'
        if app == 'pg_paxos':
            return 'pg_paxos RPC backends'
        return 'other backends'

    def _wal_bytes(self):
        """WAL written so far by the nodes that write WAL (standbys replay
        their primary's): exact, unlike pg_stat_wal, which backends report
        about once a second."""
        total = 0
        for node in self.nodes:
            try:
                total += int(node.scalar(
                    "SELECT CASE WHEN pg_is_in_recovery() THEN 0 ELSE "
                    "pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0') END"))
            except Exception:               # a node that went away
                pass
        return total

    def start(self, pgbench_pids):
        self.app_names = self._app_names()
        self.pgbench_pids = set(pgbench_pids)
        self.first = self._sample(self.pgbench_pids)
        self.count0 = self.count()
        self.wal0 = self._wal_bytes()

    def stop(self):
        self.last = self._sample(self.pgbench_pids)
        self.count1 = self.count()
        self.wal1 = self._wal_bytes()

    def report(self):
        """Lines: CPU busy, and CPU microseconds per transaction by role."""
        (t0, (busy0, all0)), (t1, (busy1, all1)) = self.first, self.last
        transactions = self.count1 - self.count0
        by_role = {}
        sleeps = {}
        for pid, (used, switches) in t1.items():
            if pid in t0:
                role = self.roles.get(pid, 'other backends')
                by_role[role] = by_role.get(role, 0) + used - t0[pid][0]
                sleeps[role] = sleeps.get(role, 0) + switches - t0[pid][1]
        ncpu = os.cpu_count() or 1
        seconds = (all1 - all0) / CLK_TCK / ncpu
        lines = ['  CPU              %.2f of %d cores busy over %.1f s'
                 % ((busy1 - busy0) / CLK_TCK / max(seconds, 1e-9), ncpu,
                    seconds)]
        if transactions <= 0 or seconds <= 0:
            return lines
        per = 1e6 / CLK_TCK / transactions
        total = sum(by_role.values())
        lines.append('  CPU per txn      %.0f us in these processes, %.0f us '
                     'machine-wide (%d transactions sampled); sleeps '
                     '(voluntary context switches) per txn: %.1f'
                     % (total * per, (busy1 - busy0) * per, transactions,
                        sum(sleeps.values()) / transactions))
        lines.append('  WAL per txn      %.0f bytes, all nodes'
                     % ((self.wal1 - self.wal0) / transactions))
        for role, used in sorted(by_role.items(), key=lambda kv: -kv[1]):
            if used > 0:
                lines.append('    %-28s %7.0f us  %5.1f sleeps'
                             % (role, used * per, sleeps[role] / transactions))
        return lines
