"""
The SQL examples of the pg_paxos README, run verbatim: only the connection
strings ('host=10.0.0.1', 'host=10.0.0.49') are replaced by our nodes'.
"""

README_CREATE_GROUP = "SELECT paxos_create_group('mokka', 'host=10.0.0.1');"
README_JOIN_GROUP = \
    "SELECT paxos_join_group('mokka', 'host=10.0.0.1', 'host=10.0.0.49');"

README_CREATE_TABLE = """CREATE TABLE coordinates (
x int,
y int
);"""

README_APPLY_AND_APPEND = """SELECT * FROM paxos_apply_and_append(
current_proposer_id := 'node-a/1251',
current_group_id := 'ha_postgres',
proposed_value := 'INSERT INTO coordinates VALUES (3,3)');"""

README_APPLY_LOG = """SELECT * FROM paxos_apply_log(
current_proposer_id := 'node-a/1252',
current_group_id := 'ha_postgres',
max_round_num := 3);"""

README_MAX_GROUP_ROUND = """SELECT * FROM paxos_max_group_round(
current_group_id := 'ha_postgres');"""

README_APPEND = """SELECT * FROM paxos_append(
current_proposer_id := 'node-a/1253',
current_group_id := 'ha_postgres',
proposed_value := 'primary = node-a');"""

README_PAXOS = """SELECT * FROM paxos(
current_proposer_id := 'node-a/1254',
current_group_id := 'ha_postgres',
current_round_num := paxos_max_group_round('ha_postgres'));"""



def form_group_as_readme(cluster, group):
    """The README's create/join statements, for group instead of 'mokka'."""
    founder = cluster[0]
    founder.sql(README_CREATE_GROUP
                .replace("'mokka'", "'%s'" % group)
                .replace('host=10.0.0.1', founder.connstr))
    for node in cluster.nodes[1:]:
        node.sql(README_JOIN_GROUP
                 .replace("'mokka'", "'%s'" % group)
                 .replace('host=10.0.0.1', founder.connstr)
                 .replace('host=10.0.0.49', node.connstr))


def test_readme_group_append_and_paxos(cluster):
    form_group_as_readme(cluster, 'mokka')
    form_group_as_readme(cluster, 'ha_postgres')

    round_num = cluster[0].scalar(README_APPEND)
    assert round_num is not None

    for node in cluster:
        rows = node.records(README_PAXOS)
        assert len(rows) == 1, node.name
        assert rows[0]['accepted_value'] == 'primary = node-a', \
            '%s: paxos() returned %r' % (node.name, rows[0])


def test_readme_log_functions(cluster):
    for node in cluster:
        node.sql(README_CREATE_TABLE)
    form_group_as_readme(cluster, 'ha_postgres')

    node_a = cluster[0]
    round_num = node_a.scalar(README_APPLY_AND_APPEND)
    assert round_num is not None
    node_a.sql(README_APPLY_LOG)
    assert node_a.scalar(README_MAX_GROUP_ROUND) >= round_num

    # Every other node executes the logged INSERT exactly once when it
    # applies the log up to that round, however often it is asked to.
    for node in cluster.nodes[1:]:
        for attempt in range(2):
            node.sql('SELECT paxos_apply_log(%s, %s, %s)',
                     ('check/%s/%d' % (node.name, attempt), 'ha_postgres',
                      round_num))
            assert node.sql('SELECT x, y FROM coordinates') == [(3, 3)], \
                node.name

    # The README's SET pg_paxos.consistency_model examples belong to table
    # replication (strong and optimistic reads), tested with it.
