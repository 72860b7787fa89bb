--
-- security: only superusers (or roles granted EXECUTE) may run pg_paxos
-- functions, since they execute SQL from the log and connect to peers.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_paxos;
RESET client_min_messages;

-- no function of the extension is executable by PUBLIC
SELECT count(*) AS functions,
       count(*) FILTER (WHERE has_function_privilege('public', p.oid, 'EXECUTE'))
         AS executable_by_public
FROM pg_proc p
JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_paxos');

-- neither is the metadata
SELECT has_schema_privilege('public', 'pgp_metadata', 'USAGE') AS schema_usage;

CREATE ROLE pgp_regress_user LOGIN;
SET ROLE pgp_regress_user;
SELECT paxos_create_group('sec', 'host=127.0.0.1');
SELECT paxos_append('u/1', 'sec', 'x');
SELECT * FROM paxos(current_proposer_id := 'u/2', current_group_id := 'sec', current_round_num := 0);
SELECT * FROM paxos_request_prepare('u/3', 'sec', 1, 1);
SELECT * FROM paxos_request_accept('u/3', 'sec', 1, 1, 'v', 'x');
SELECT paxos_confirm_consensus('u/3', 'sec', 1, 1, 'v', 'x');
SELECT paxos_apply_log('u/4', 'sec', 1);
SELECT paxos_max_group_round('sec');
SELECT count(*) FROM pgp_metadata.round;
RESET ROLE;

-- a role granted EXECUTE (and the schema) gets past the privilege check
GRANT USAGE ON SCHEMA pgp_metadata TO pgp_regress_user;
GRANT SELECT ON pgp_metadata."group" TO pgp_regress_user;
GRANT EXECUTE ON FUNCTION paxos_max_accepted_round(text, boolean) TO pgp_regress_user;
SET ROLE pgp_regress_user;
SELECT paxos_max_accepted_round('no_such_group');
RESET ROLE;

REVOKE ALL ON FUNCTION paxos_max_accepted_round(text, boolean) FROM pgp_regress_user;
REVOKE ALL ON pgp_metadata."group" FROM pgp_regress_user;
REVOKE ALL ON SCHEMA pgp_metadata FROM pgp_regress_user;
DROP ROLE pgp_regress_user;
