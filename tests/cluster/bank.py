"""
The bank workload, shared by the replication and failover tests: clients
on every node move money between accounts, one transfer per transaction,
retrying on 40001/40P01; checkers on every node read the total all along.
A fault (kill -9, SIGSTOP, switchover) may strike while it runs.  At the
end: the total never changed, every node holds the same rows, every
acknowledged transfer is there and no failed one, and each balance is its
initial one plus the transfers it took part in.

A client whose node goes away records the transfer in flight as unknown
(committed or not, nobody can tell: the connection was lost at COMMIT),
and reconnects until its node is back or the run ends.  Only a SQLSTATE
that says so (40001, 40P01) makes an attempt "failed": an error at COMMIT
that does not, such as 08006 from a node that cannot reach a majority,
leaves the transfer unknown, since its entry may still be chosen later.

Clients may also write under pg_paxos.consistency_model = 'optimistic'
(client_models): their statements then never wait for peers, so on a node
cut off from the others they get as far as COMMIT, which must fail.  As an
application would, such a client retries a transaction that failed with
strong reads: on a node whose applier lags, optimistic attempts based on
stale rows would otherwise fail certification again and again.
"""

import collections
import multiprocessing
import random
import time

import psycopg2

import checks
import pgcluster

GROUP = 'bank'
ACCOUNTS = 100
INITIAL = 1000
TOTAL = ACCOUNTS * INITIAL
HOT_ACCOUNTS = 5             # a share of transfers hits these: conflicts

DDL = """
CREATE TABLE bank_balance (
    account_number int PRIMARY KEY,
    balance int NOT NULL,
    created_at bigint,
    updated_at bigint
);
CREATE TABLE transfers (id text PRIMARY KEY, src int, dst int, amount int);
"""
TABLES = ['bank_balance', 'transfers']
NOW_NS = "(extract(epoch FROM clock_timestamp()) * 1e9)::bigint"


def setup(cluster):
    """Replicate the bank tables and load the accounts."""
    checks.setup_replication(cluster, GROUP, DDL, TABLES)
    cluster[0].sql('INSERT INTO bank_balance SELECT g, %s, ' + NOW_NS + ', '
                   + NOW_NS + ' FROM generate_series(1, %s) g',
                   (INITIAL, ACCOUNTS))
    initial = checks.assert_tables_identical(cluster.nodes, TABLES)
    assert initial['bank_balance'][0] == ACCOUNTS


def _lost_connection(e):
    return isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError,
                          pgcluster.SqlTimeout)) or \
        getattr(e, 'pgcode', None) in ('57P01', '57P02', '57P03', '08006')


def bank_client(connstr, name, duration, seed, survive_faults,
                model='strong'):
    """Transfers for duration seconds, with reads of the given consistency
    model.  Returns a dict: acked (transfer ids whose COMMIT succeeded),
    acked_at ((time COMMIT was sent, time it answered) of each, on the
    monotonic clock), failed (ids of attempts that failed, at a statement
    or at COMMIT), aborts (Counter of (stage, sqlstate)), error (what
    stopped the client, or None), unknown (ids in flight when the
    connection was lost), lost (how many times it was), lost_at (up to 200
    (time, stage, sqlstate, first line of the message, seconds the failed
    statement took) of those).  With survive_faults, a lost connection is
    not an error: the client reconnects and goes on."""
    rng = random.Random(seed)
    out = {'acked': [], 'acked_at': [], 'failed': [],
           'aborts': collections.Counter(), 'error': None, 'unknown': [],
           'lost': 0, 'lost_at': [], 'model': model}
    conn = None
    end = time.monotonic() + duration
    seq = 0
    while time.monotonic() < end:
        try:
            if conn is None or conn.closed:
                conn = pgcluster.Conn(connstr, timeout=5)
                conn.sql('SET pg_paxos.consistency_model TO %s', (model,),
                         timeout=10)
        except Exception as e:
            if not survive_faults:
                out['error'] = '%s: %r' % (name, e)
                break
            time.sleep(0.2)
            continue
        seq += 1
        pool = (range(1, HOT_ACCOUNTS + 1) if rng.random() < 0.2
                else range(1, ACCOUNTS + 1))
        src, dst = rng.sample(pool, 2)
        amount = rng.randint(1, 100)
        ids = []
        clock = {}

        def body(c, attempt):
            clock['stage'] = 'body'
            clock['sent'] = time.monotonic()
            ids.append('%s/%d/%d' % (name, seq, attempt))
            if attempt > 0 and model != 'strong':
                c.sql("SET LOCAL pg_paxos.consistency_model TO 'strong'",
                      timeout=10)
            for account, delta in ((src, -amount), (dst, amount)):
                rows = c.sql('UPDATE bank_balance SET balance = balance '
                             '+ %s, updated_at = ' + NOW_NS + ' '
                             'WHERE account_number = %s RETURNING 1',
                             (delta, account), timeout=60)
                assert rows == [(1,)], 'account %d not updated' % account
            c.sql('INSERT INTO transfers VALUES (%s, %s, %s, %s)',
                  (ids[-1], src, dst, amount), timeout=60)
            clock['stage'] = 'commit'       # run_transaction commits next
            clock['sent'] = time.monotonic()
            return ids[-1]

        try:
            res = pgcluster.run_transaction(conn, body, max_attempts=500,
                                            deadline=90, timeout=60)
        except pgcluster.RetriesExhausted as e:
            out['failed'] += ids
            for _, stage, code, _ in e.aborts:
                out['aborts'][(stage, code)] += 1
            out['error'] = '%s: %r' % (name, e)
            break
        except Exception as e:
            out['failed'] += ids[:-1]
            out['unknown'] += ids[-1:]
            if survive_faults and _lost_connection(e):
                out['lost'] += 1
                if len(out['lost_at']) < 200:
                    now = time.monotonic()
                    out['lost_at'].append((
                        now, clock.get('stage'), getattr(e, 'pgcode', None),
                        str(e).strip().split('\n')[0],
                        now - clock.get('sent', now)))
                conn.close()
                conn = None
                continue
            out['error'] = '%s: %r' % (name, e)
            break
        out['acked'].append(res.value)
        out['acked_at'].append((clock['sent'], time.monotonic()))
        out['failed'] += ids[:-1]
        for _, stage, code, _ in res.aborts:
            out['aborts'][(stage, code)] += 1
    if conn is not None:
        conn.close()
    return out


def bank_checker(connstr, name, duration):
    """Read the total and the number of accounts until duration has passed;
    three strong reads out of four, one optimistic.  A read that fails is
    recorded and the checker goes on (over a new connection).  Returns
    (number of reads, up to 20 wrong results, up to 20 errors)."""
    reads, wrong, errors = 0, [], []
    conn = None
    end = time.monotonic() + duration
    while time.monotonic() < end:
        model = 'optimistic' if reads % 4 == 3 else 'strong'
        try:
            if conn is None or conn.closed:
                conn = pgcluster.Conn(connstr, timeout=5)
            conn.sql('SET pg_paxos.consistency_model TO %s', (model,))
            total, count = conn.sql('SELECT sum(balance), count(*) '
                                    'FROM bank_balance', timeout=60)[0]
        except Exception as e:
            if len(errors) < 20:
                errors.append('%s (%s read): %r' % (name, model, e))
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.2)
            continue
        reads += 1
        if (total, count) != (TOTAL, ACCOUNTS) and len(wrong) < 20:
            wrong.append((name, model, total, count))
        time.sleep(0.02)
    if conn is not None:
        conn.close()
    return reads, wrong, errors


def run(cluster, duration, clients_per_node=2, fault=None, fault_at=None,
        faulty=(), client_models=('strong',), details=None):
    """Run the workload for duration seconds on every node of cluster; call
    fault() (in this process) fault_at seconds in, and check everything at
    the end.  faulty: indexes of nodes the fault takes down, whose clients
    and checkers may lose their connections.  client_models: the
    consistency models of each node's clients, in turn.  details: a dict
    to fill with what every client and checker returned ('clients': [(node,
    result)], 'checkers': likewise).  Returns the number of acknowledged
    transfers."""
    ctx = multiprocessing.get_context('fork')
    n_clients = clients_per_node * len(cluster)
    with ctx.Pool(n_clients + len(cluster)) as pool:
        clients = [pool.apply_async(bank_client, (
            node.connstr, '%s-c%d' % (node.name, i), duration,
            node.index * 100 + i, fault is not None,
            client_models[i % len(client_models)]))
            for node in cluster for i in range(clients_per_node)]
        checkers = [pool.apply_async(bank_checker, (
            node.connstr, '%s-check' % node.name, duration + 2))
            for node in cluster]
        if fault is not None:
            time.sleep(fault_at)
            fault()
        client_results = [c.get(timeout=duration + 200) for c in clients]
        checker_results = [c.get(timeout=duration + 200) for c in checkers]
    if details is not None:
        details['clients'] = list(zip(
            [n for n in cluster for _ in range(clients_per_node)],
            client_results))
        details['checkers'] = list(zip(cluster, checker_results))
    return check(cluster, client_results, checker_results, duration, faulty)


def check(cluster, client_results, checker_results, duration, faulty):
    acked = [i for r in client_results for i in r['acked']]
    failed = [i for r in client_results for i in r['failed']]
    unknown = [i for r in client_results for i in r['unknown']]
    aborts = collections.Counter()
    for r in client_results:
        aborts.update(r['aborts'])
    reads = sum(r[0] for r in checker_results)
    print('bank: %d transfers committed, %d attempts aborted (%s), '
          '%d unknown, %d total checks' % (len(acked), len(failed), ', '.join(
              '%s at %s: %d' % (code, stage, n)
              for (stage, code), n in sorted(aborts.items())),
              len(unknown), reads))

    # The total never changed, on any node, at any read.
    wrong = [w for r in checker_results for w in r[1]]
    assert not wrong, 'the total was not %d: %r' % (TOTAL, wrong[:10])
    for (reads_here, _, _), node in zip(checker_results, cluster):
        assert reads_here >= 10, 'the checker on %s read only %d times' \
            % (node.name, reads_here)
    assert len(acked) >= 50, 'only %d transfers committed in %.0f s' \
        % (len(acked), duration)
    assert len(set(acked)) == len(acked)

    # Every node holds the same rows, and certified every round it kept
    # the same way (a node restarted by the fault certified from scratch).
    final = checks.assert_tables_identical(cluster.nodes, TABLES)
    assert final['bank_balance'][0] == ACCOUNTS
    checks.assert_outcomes_agree(cluster.nodes, GROUP)

    with cluster[0].connect() as conn:
        transfers = conn.sql('SELECT id, src, dst, amount FROM transfers')
        balances = dict(conn.sql('SELECT account_number, balance '
                                 'FROM bank_balance'))
    ids = {t[0] for t in transfers}
    missing = set(acked) - ids
    assert not missing, '%d acknowledged transfers are missing, e.g. %r' \
        % (len(missing), sorted(missing)[:5])
    present_failed = set(failed) & ids
    assert not present_failed, 'transfers whose transaction failed are ' \
        'present: %r' % sorted(present_failed)[:5]
    assert ids <= set(acked) | set(unknown), \
        'transfers nobody wrote: %r' % sorted(ids - set(acked))[:5]

    # Balances: initial ones plus the transfers, recomputed.
    expected = {a: INITIAL for a in range(1, ACCOUNTS + 1)}
    for _, src, dst, amount in transfers:
        expected[src] -= amount
        expected[dst] += amount
    wrong_balances = {a: (balances.get(a), b) for a, b in expected.items()
                      if balances.get(a) != b}
    assert not wrong_balances, \
        'balances (found, expected from transfers): %r' \
        % dict(list(wrong_balances.items())[:10])
    assert sum(balances.values()) == TOTAL

    # Last, as the data checks above still tell something when these fail:
    # no client met an error other than 40001/40P01 (or, on a node the
    # fault took down, a lost connection), and checkers of healthy nodes
    # never failed to read.
    errors = [r['error'] for r in client_results if r['error']]
    errors += [e for r, node in zip(checker_results, cluster)
               if node.index not in faulty for e in r[2]]
    assert not errors, 'clients or checkers failed (%d): %s' \
        % (len(errors), errors[:5])
    return len(acked)
