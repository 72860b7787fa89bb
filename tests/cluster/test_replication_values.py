"""
Values are replicated, not statements: whatever the origin computed (now(),
random(), serial and identity columns, column defaults, generated columns,
what its triggers set or wrote) is what every node stores.  The rows the
origin's INSERT ... RETURNING reported are compared with every node's.
"""

import checks

GROUP = 'values'

DDL = """
CREATE TABLE vals (
    id serial PRIMARY KEY,
    ident bigint GENERATED ALWAYS AS IDENTITY,
    note text NOT NULL,
    at timestamptz DEFAULT now(),
    clock timestamptz DEFAULT clock_timestamp(),
    r double precision DEFAULT random(),
    token text DEFAULT md5(random()::text),
    uid uuid DEFAULT gen_random_uuid(),
    doubled double precision GENERATED ALWAYS AS (r * 2) STORED,
    stamped text,
    stamped_at timestamptz
);
CREATE TABLE vals_audit (
    id serial PRIMARY KEY,
    vals_id int NOT NULL,
    what text NOT NULL,
    r double precision NOT NULL
);
-- What the origin's triggers compute is part of the row; on the other
-- nodes these triggers must not run again (they would compute other
-- values, and write the audit row twice).
CREATE FUNCTION vals_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.stamped := NEW.note || '/' || random()::text;
    NEW.stamped_at := clock_timestamp();
    RETURN NEW;
END $$;
CREATE TRIGGER vals_stamp BEFORE INSERT OR UPDATE ON vals
    FOR EACH ROW EXECUTE FUNCTION vals_stamp();
CREATE FUNCTION vals_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO vals_audit (vals_id, what, r)
    VALUES (NEW.id, TG_OP, random());
    RETURN NULL;
END $$;
CREATE TRIGGER vals_audit AFTER INSERT OR UPDATE ON vals
    FOR EACH ROW EXECUTE FUNCTION vals_audit();

CREATE TABLE stamps (
    k text PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    r double precision NOT NULL DEFAULT random(),
    n int NOT NULL DEFAULT 0
);
"""
TABLES = ['vals', 'vals_audit', 'stamps']


def rows_as_text(conn, query):
    """The rows of query (a SELECT, or a write with RETURNING) as text."""
    return [r[0] for r in conn.sql('WITH t AS (%s) SELECT t::text FROM t'
                                   % query)]


def updated_count(tag):
    verb, count = tag.split()
    assert verb == 'UPDATE', tag
    return int(count)


def test_origin_values_everywhere(cluster):
    checks.setup_replication(cluster, GROUP, DDL, TABLES)
    origin = cluster[0]

    # serial, identity, defaults, generated column and triggers: all the
    # inserts into the tables with sequences come from one origin (the
    # sequences themselves are not replicated).  'one-' and 'txn-' rows are
    # never updated afterwards: every node must hold exactly what the
    # origin's INSERT ... RETURNING reported.
    kept = []
    with origin.connect() as conn:
        for i in range(5):
            kept += rows_as_text(
                conn, "INSERT INTO vals (note) VALUES ('one-%d') "
                      "RETURNING *" % i)
        bulk = rows_as_text(
            conn, "INSERT INTO vals (note) SELECT 'bulk-' || g "
                  "FROM generate_series(1, 50) g RETURNING *")
        conn.sql('BEGIN')
        kept += rows_as_text(
            conn, "INSERT INTO vals (note) VALUES ('txn-1'), ('txn-2') "
                  "RETURNING *")
        conn.sql('SELECT pg_sleep(0.05)')    # now() stays, the clock moves
        kept += rows_as_text(
            conn, "INSERT INTO vals (note) VALUES ('txn-3') RETURNING *")
        assert conn.command('COMMIT') == 'COMMIT'
    assert len(kept) == 8 and len(bulk) == 50

    # now() and random() in UPDATEs from the other nodes (the triggers fire
    # on their origin and write audit rows there).
    with cluster[1].connect() as conn:
        updates = updated_count(conn.command(
            "UPDATE vals SET at = now(), r = random() "
            "WHERE note LIKE 'bulk-%' AND id % 2 = 0"))
    with cluster[2].connect() as conn:
        updates += updated_count(conn.command(
            "UPDATE vals SET note = note || '!', clock = "
            "clock_timestamp() + random() * interval '1 day' "
            "WHERE note LIKE 'bulk-%' AND id % 3 = 0"))
    assert updates > 30

    # Every node is the origin of some rows with now()/random() defaults.
    stamps = {}
    for node in cluster:
        with node.connect() as conn:
            for i in range(5):
                k = '%s-%d' % (node.name, i)
                stamps[k] = rows_as_text(
                    conn, "INSERT INTO stamps (k, n) VALUES ('%s', "
                          "(random() * 1000000)::int) RETURNING *" % k)[0]

    state = checks.assert_tables_identical(cluster.nodes, TABLES)
    assert state['vals'][0] == 58
    assert state['stamps'][0] == 15
    # One audit row per INSERT and UPDATE on the origin, none from applying.
    assert state['vals_audit'][0] == 58 + updates, \
        'vals_audit has %d rows, expected %d: triggers ran when applying ' \
        'on other nodes, or not on the origin' \
        % (state['vals_audit'][0], 58 + updates)

    for node in cluster:
        with node.connect() as conn:
            got = rows_as_text(conn, "SELECT * FROM vals WHERE note LIKE "
                                     "'one-%' OR note LIKE 'txn-%'")
            assert sorted(got) == sorted(kept), \
                '%s: rows differ from what the origin returned' % node.name
            got = rows_as_text(conn, 'SELECT * FROM stamps')
            assert sorted(got) == sorted(stamps.values()), \
                '%s: stamps differ from what their origins returned' \
                % node.name

            # The values really were computed (not all equal, not NULL).
            assert conn.scalar('SELECT count(DISTINCT r) FROM vals') > 50
            assert conn.scalar('SELECT count(DISTINCT stamped) FROM vals') \
                == 58
            assert conn.scalar('SELECT count(DISTINCT ident) FROM vals') == 58
            assert conn.scalar(
                'SELECT count(*) FROM vals WHERE doubled = r * 2 '
                'AND uid IS NOT NULL AND stamped_at IS NOT NULL') == 58
            # One transaction, one now(); its clock_timestamp() moved.
            assert conn.scalar(
                "SELECT count(DISTINCT at) FROM vals WHERE note LIKE 'txn-%'"
            ) == 1
            assert conn.scalar(
                "SELECT count(DISTINCT clock) FROM vals "
                "WHERE note LIKE 'txn-%'") == 3
