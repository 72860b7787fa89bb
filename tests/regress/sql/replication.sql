--
-- replication: table replication on a one-node group: what the log
-- carries, the certification outcome of each round, and the errors.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_paxos;
RESET client_min_messages;

SELECT format('host=127.0.0.1 port=%s dbname=%s user=postgres',
              current_setting('port'), current_database()) AS self \gset
SELECT paxos_create_group('rep', :'self');

CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL,
                       stamped timestamptz DEFAULT now());
CREATE TABLE loose (x int, y int);
SELECT paxos_replicate_table('rep', 'accounts');
SELECT paxos_replicate_table('rep', 'loose');
SELECT table_oid, group_id FROM pgp_metadata.replicated_tables ORDER BY 1;
SELECT tgname, tgenabled FROM pg_trigger
WHERE tgrelid = 'accounts'::regclass ORDER BY 1;

-- one transaction, one entry: its keys and its row images
BEGIN;
INSERT INTO accounts (id, balance) VALUES (1, 100), (2, 200);
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
COMMIT;
SELECT v->'check' AS check_keys, v->'write' AS write_keys,
       jsonb_path_query_array(v->'changes', '$[*].op') AS ops
FROM (SELECT value::jsonb->0 v FROM pgp_metadata.round
      WHERE group_id = 'rep' AND value_id LIKE 'pg_paxos:txn:%'
      ORDER BY round_num DESC LIMIT 1) e;
-- applied here: by the local commit, which the applier (here a strong
-- read's catch-up) finds in pgp_metadata.local_commit
SELECT count(*) > 0 AS caught_up FROM accounts;
SELECT o.committed, o.conflict_round, o.applied
FROM pgp_metadata.entry_status o
WHERE o.group_id = 'rep' ORDER BY round_num DESC LIMIT 1;

-- the values, not the statement: now() is the origin's
SELECT (SELECT (value::jsonb->0->'changes'->0->'new'->>'stamped')::timestamptz
        FROM pgp_metadata.round WHERE group_id = 'rep'
        AND value_id LIKE 'pg_paxos:txn:%' ORDER BY round_num DESC LIMIT 1)
       = (SELECT stamped FROM accounts WHERE id = 1) AS same_timestamp;

-- ROLLBACK appends nothing; ROLLBACK TO SAVEPOINT drops what it undid
SELECT paxos_max_group_round('rep') AS before \gset
BEGIN;
DELETE FROM accounts;
ROLLBACK;
SELECT paxos_max_group_round('rep') = :before AS nothing_appended;
BEGIN;
UPDATE accounts SET balance = 0 WHERE id = 2;
SAVEPOINT s;
DELETE FROM accounts WHERE id = 1;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT jsonb_path_query_array(value::jsonb->0->'changes', '$[*].op') AS ops
FROM pgp_metadata.round WHERE group_id = 'rep'
AND value_id LIKE 'pg_paxos:txn:%' ORDER BY round_num DESC LIMIT 1;
SELECT id, balance FROM accounts ORDER BY id;

-- a table without a primary key: table-level keys; TRUNCATE and DDL too
INSERT INTO loose VALUES (1, 1);
TRUNCATE loose;
ALTER TABLE accounts ADD COLUMN note text;
SELECT jsonb_path_query_array(value::jsonb->0->'changes', '$[*].op') AS ops,
       value::jsonb->0->'write' AS write_keys
FROM pgp_metadata.round WHERE group_id = 'rep'
AND value_id LIKE 'pg_paxos:txn:%' ORDER BY round_num DESC LIMIT 3;

-- a transaction that writes no replicated table appends nothing
SELECT paxos_max_group_round('rep') AS before \gset
CREATE TEMP TABLE scratch (x int);
INSERT INTO scratch VALUES (1);
SELECT paxos_max_group_round('rep') = :before AS nothing_appended;

-- errors
SELECT paxos_replicate_table('rep', 'accounts');
CREATE TABLE other (id int PRIMARY KEY);
SELECT paxos_replicate_table('nope', 'other');
SELECT paxos_replicate_table('rep', 'scratch');
SELECT paxos_replicate_table('rep', NULL);
CREATE INDEX CONCURRENTLY accounts_balance ON accounts (balance);
SELECT paxos_capture_trigger();
SET pg_paxos.consistency_model TO 'eventual';
SET pg_paxos.consistency_model TO 'optimistic';
SHOW pg_paxos.consistency_model;
RESET pg_paxos.consistency_model;

DROP TABLE accounts;
SELECT count(*) FROM pgp_metadata.replicated_tables WHERE group_id = 'rep';
DROP TABLE loose, other;
SELECT paxos_leave_group('rep');
