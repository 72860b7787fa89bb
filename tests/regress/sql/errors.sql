--
-- errors: bad input gets a clear error, and changes nothing.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_paxos;
RESET client_min_messages;
\set VERBOSITY default

SELECT format('host=127.0.0.1 port=%s dbname=%s user=postgres',
              current_setting('port'), current_database()) AS self \gset

-- unknown group, for every function that takes one
SELECT paxos_append('e/1', 'nope', 'x');
SELECT * FROM paxos('e/1', 'nope', 1, 'x');
SELECT paxos_max_group_round('nope');
SELECT paxos_apply_log('e/1', 'nope', 1);
SELECT paxos_apply_and_append('e/1', 'nope', 'x');
SELECT paxos_learn_log('nope', 1);
SELECT paxos_leave_group('nope');
SELECT * FROM paxos_request_prepare('e/1', 'nope', 1, 1);
SELECT * FROM paxos_request_accept('e/1', 'nope', 1, 1, 'v', 'x');
SELECT paxos_confirm_consensus('e/1', 'nope', 1, 1, 'v', 'x');
SELECT paxos_max_accepted_round('nope');
SELECT * FROM paxos_decided_rounds('nope', 0, 1);

-- NULL arguments
SELECT paxos_append(NULL, 'g', 'x');
SELECT paxos_append('e/1', NULL, 'x');
SELECT paxos_append('e/1', 'g', NULL);
SELECT * FROM paxos('e/1', 'g', NULL);
SELECT paxos_create_group(NULL, :'self');
SELECT paxos_create_group('g', NULL);
SELECT paxos_join_group('g', NULL, :'self');
SELECT * FROM paxos_request_prepare('e/1', 'g', 1, NULL);
SELECT * FROM paxos_request_accept('e/1', 'g', 1, 1, NULL, 'x');
SELECT paxos_learn_log('g', NULL);

-- bad values
SELECT * FROM paxos('e/1', 'g', -1, 'x');
SELECT * FROM paxos_request_prepare('e/1', 'g', 1, -5);
SELECT * FROM paxos_request_prepare('', 'g', 1, 1);
SELECT paxos_append('', 'g', 'x');
SELECT paxos_append(repeat('x', 300), 'g', 'x');
SELECT paxos_append('pg_paxos:add_host:x', 'g', 'x');
SELECT paxos_create_group('', :'self');
SELECT paxos_create_group('g', 'host=127.0.0.1 = =');
SELECT paxos_join_group('g', 'nonsense', :'self');

-- a connection string that does not lead back to this server
\set VERBOSITY terse
SELECT paxos_create_group('g', 'host=127.0.0.1 port=1 connect_timeout=2');
\set VERBOSITY default

-- a group exists once; joining a group one is in is refused
SELECT paxos_create_group('g', :'self');
SELECT paxos_create_group('g', :'self');
SELECT paxos_join_group('g', :'self', :'self');
-- joining through a node that is not in the group
\set VERBOSITY terse
SELECT paxos_join_group('other', :'self', :'self');
\set VERBOSITY default

-- nothing above left anything behind
SELECT group_id FROM pgp_metadata."group" ORDER BY 1;
SELECT paxos_leave_group('g');
SELECT count(*) FROM pgp_metadata.round;
