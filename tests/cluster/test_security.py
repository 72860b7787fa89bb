"""
Security of the SQL interface (docs/security.md): the RPC and log functions
are not executable by PUBLIC, and passwords in the connection strings nodes
use to reach each other never reach the server logs or error messages.
"""

import psycopg2
import pytest

import pgcluster

GROUP = 'secure'
PASSWORD = 'pgp-secret-4d1c9e'

# Called by a role without rights, each must fail with permission denied.
CALLS = [
    ("SELECT paxos_append('m/1', %s, 'DROP TABLE x')", (GROUP,)),
    ("SELECT paxos('m/2', %s, 0, 'x')", (GROUP,)),
    ("SELECT paxos_apply_log('m/3', %s, 0)", (GROUP,)),
    ("SELECT paxos_learn_log(%s, 0)", (GROUP,)),
    ("SELECT paxos_max_group_round(%s)", (GROUP,)),
    ("SELECT paxos_create_group('evil', 'host=127.0.0.1')", None),
]


def test_functions_not_executable_by_public(cluster):
    node = cluster[0]
    cluster.form_group(GROUP)
    node.sql('CREATE ROLE mallory LOGIN')

    funcs = node.sql(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "JOIN pg_depend d ON d.classid = 'pg_proc'::regclass "
        "AND d.objid = p.oid AND d.deptype = 'e' "
        "JOIN pg_extension e ON e.oid = d.refobjid "
        "WHERE e.extname = 'pg_paxos'")
    assert len(funcs) >= 10, 'pg_paxos functions not found: %r' % funcs
    callable_by_mallory = [
        f for (f,) in funcs
        if node.scalar("SELECT has_function_privilege('mallory', %s, "
                       "'EXECUTE')", (f,))]
    assert callable_by_mallory == [], \
        'executable by a role without grants: %r' % callable_by_mallory

    with pgcluster.Conn(node.connstr.replace('user=postgres',
                                             'user=mallory')) as conn:
        for query, args in CALLS:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                conn.sql(query, args)
    assert node.scalar('SELECT count(*) FROM pgp_metadata.round '
                       "WHERE value LIKE 'DROP%'") == 0


def test_passwords_never_logged(cluster):
    def with_password(node):
        return node.connstr + ' password=' + PASSWORD

    founder = cluster[0]
    founder.sql('SELECT paxos_create_group(%s, %s)',
                (GROUP, with_password(founder)))
    for node in cluster.nodes[1:]:
        node.sql('SELECT paxos_join_group(%s, %s, %s)',
                 (GROUP, with_password(founder), with_password(node)))
    for i, node in enumerate(cluster):
        node.sql('SELECT paxos_append(%s, %s, %s)',
                 ('pw/%d' % i, GROUP, 'value %d' % i))

    # Provoke errors that name peers: no majority.
    for node in cluster.nodes[1:]:
        node.stop('immediate')
    with pytest.raises(psycopg2.Error) as err:
        founder.sql('SELECT paxos_append(%s, %s, %s)',
                    ('pw/x', GROUP, 'no majority'), timeout=60)
    assert PASSWORD not in str(err.value), str(err.value)
    assert PASSWORD not in (err.value.pgerror or '')

    for node in cluster:
        leaked = [line for line in open(node.logfile, errors='replace')
                  if PASSWORD in line]
        assert leaked == [], '%s server log shows the password:\n%s' \
            % (node.name, ''.join(leaked[:5]))
