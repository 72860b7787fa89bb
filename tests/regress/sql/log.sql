--
-- log: the pg_paxos README's log functions on a one-node group
-- (a majority of one is itself, reached over libpq like any peer).
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_paxos;
RESET client_min_messages;

SELECT format('host=127.0.0.1 port=%s dbname=%s user=postgres',
              current_setting('port'), current_database()) AS self \gset
SELECT paxos_create_group('ha_postgres', :'self');

-- round 0 is the founder's membership entry
SELECT round_num, value_id, consensus FROM pgp_metadata.round
WHERE group_id = 'ha_postgres';
SELECT group_id, last_applied_round, config_round FROM pgp_metadata."group";
SELECT group_id, min_round_num, max_round_num FROM pgp_metadata.host;

-- appends take consecutive rounds
SELECT * FROM paxos_append(
current_proposer_id := 'node-a/1253',
current_group_id := 'ha_postgres',
proposed_value := 'primary = node-a');
SELECT paxos_append('node-a/1', 'ha_postgres', 'second');
SELECT paxos_max_group_round('ha_postgres');
SELECT paxos_max_group_round(current_group_id := 'ha_postgres', accepted_only := false);

-- paxos() on a chosen round returns its value; value_changed says it is not ours
SELECT * FROM paxos(
current_proposer_id := 'node-a/1254',
current_group_id := 'ha_postgres',
current_round_num := paxos_max_group_round('ha_postgres'));
SELECT * FROM paxos('node-a/1255', 'ha_postgres', 1, 'something else');
-- on a new round the proposed value is chosen
SELECT * FROM paxos('node-a/1256', 'ha_postgres', 3, 'third');
-- a no-op (NULL) learns an empty round and fills it
SELECT * FROM paxos('node-a/1257', 'ha_postgres', 5);
SELECT paxos_append('node-a/2', 'ha_postgres', 'after the gap');

-- learning: every round up to 6 is known as chosen here
SELECT paxos_learn_log('ha_postgres', 6) >= 0 AS learned;
SELECT round_num, value, consensus FROM pgp_metadata.round
WHERE group_id = 'ha_postgres' AND round_num > 0 ORDER BY round_num;

-- paxos_apply_log executes values as SQL in log order; a failing value
-- records its error and does not stop the log
CREATE TABLE coordinates (x int, y int);
SELECT paxos_append('node-a/3', 'ha_postgres', 'INSERT INTO coordinates VALUES (1,1)');
SELECT paxos_append('node-a/4', 'ha_postgres', 'INSERT INTO no_such_table VALUES (1)');
SELECT paxos_append('node-a/5', 'ha_postgres', 'INSERT INTO coordinates VALUES (2,2)');
SELECT * FROM paxos_apply_log(
current_proposer_id := 'node-a/1252',
current_group_id := 'ha_postgres',
max_round_num := 9);
SELECT * FROM coordinates ORDER BY x;
SELECT round_num, error FROM pgp_metadata.round
WHERE group_id = 'ha_postgres' AND error IS NOT NULL ORDER BY round_num;
SELECT last_applied_round FROM pgp_metadata."group" WHERE group_id = 'ha_postgres';

-- applying again executes nothing twice
SELECT paxos_apply_log('node-a/6', 'ha_postgres', 9);
SELECT count(*) FROM coordinates;

-- paxos_apply_and_append applies what precedes, then appends
SELECT * FROM paxos_apply_and_append(
current_proposer_id := 'node-a/1251',
current_group_id := 'ha_postgres',
proposed_value := 'INSERT INTO coordinates VALUES (3,3)');
SELECT paxos_apply_log('node-a/7', 'ha_postgres', 10);
SELECT * FROM coordinates ORDER BY x;

-- round numbers are 64-bit
SELECT * FROM paxos('node-a/8', 'ha_postgres', 9223372036854775806, 'far away');
SELECT paxos_max_group_round('ha_postgres');

SELECT paxos_leave_group('ha_postgres');
SELECT count(*) FROM pgp_metadata."group";
DROP TABLE coordinates;
