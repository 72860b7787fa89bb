/*
 * pg_paxos--1.0.sql
 *    Schema, types and functions of the pg_paxos extension.
 *
 * Every function here either executes SQL taken from the log or talks to
 * other nodes with stored connection strings, so none of them is executable
 * by PUBLIC: the role that created the extension (a superuser) runs them, and
 * may GRANT EXECUTE to the role the nodes use to reach each other
 * (docs/security.md).
 */

\echo Use "CREATE EXTENSION pg_paxos" to load this file. \quit

CREATE SCHEMA pgp_metadata;
REVOKE ALL ON SCHEMA pgp_metadata FROM PUBLIC;

/*
 * A Paxos group this node belongs to.  last_applied_round is the last round
 * paxos_apply_log executed; config_round is the round of the newest
 * membership change this node has learned; the log here starts at
 * compacted_below (rounds below it were chosen, applied by every member
 * and deleted: see compaction.c).
 */
CREATE TABLE pgp_metadata."group" (
	group_id text NOT NULL,
	last_applied_round bigint NOT NULL DEFAULT -1,
	own_connection_string text NOT NULL,
	config_round bigint NOT NULL DEFAULT 0,
	compacted_below bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (group_id)
);

/*
 * This acceptor's standing promise in a group, if any: no ballot below
 * (proposal_num, proposer_id) is accepted in any round from from_round on
 * (see paxos_request_standing_prepare).
 */
CREATE TABLE pgp_metadata.standing_promise (
	group_id text NOT NULL,
	from_round bigint NOT NULL,
	proposal_num bigint NOT NULL,
	proposer_id text NOT NULL,
	PRIMARY KEY (group_id)
);

/*
 * Members of a group: a host takes part in rounds min_round_num up to
 * max_round_num (NULL: no end).  Membership changes are log entries, so every
 * node derives the same table from the log.
 */
CREATE TABLE pgp_metadata.host (
	group_id text NOT NULL,
	connection_string text NOT NULL,
	min_round_num bigint NOT NULL,
	max_round_num bigint,
	PRIMARY KEY (group_id, connection_string, min_round_num),
	FOREIGN KEY (group_id) REFERENCES pgp_metadata."group" (group_id)
);

/*
 * The Multi-Paxos log and the acceptor state of this node, one row per
 * (group, round): the highest promise (min_proposal_num, proposer_id), the
 * accepted ballot and value, and whether the value is known to be chosen.
 */
CREATE TABLE pgp_metadata.round (
	group_id text NOT NULL,
	round_num bigint NOT NULL,
	min_proposal_num bigint NOT NULL,
	proposer_id text NOT NULL,
	value_id text,
	value text,
	accepted_proposal_num bigint,
	accepted_proposer_id text,
	consensus boolean NOT NULL DEFAULT false,
	error text,
	PRIMARY KEY (group_id, round_num)
);
/* the leader worker looks up the newest leader entry without a scan */
CREATE INDEX round_leader_entries ON pgp_metadata.round (group_id, round_num)
	WHERE value_id LIKE 'pg_paxos:leader:%';

/* Tables replicated through a group's log (at most one group per table). */
CREATE TABLE pgp_metadata.replicated_tables (
	table_oid regclass NOT NULL,
	group_id text NOT NULL,
	PRIMARY KEY (table_oid),
	FOREIGN KEY (group_id) REFERENCES pgp_metadata."group" (group_id)
);

/*
 * Certification of each entry on this node: committed (false: the
 * transaction failed certification against conflict_round).  A round holds
 * one entry, or a batch of transactions (entry_index 0, 1, ...); txn_id
 * names a transaction.  One row per certified entry.
 */
CREATE TABLE pgp_metadata.outcome (
	group_id text NOT NULL,
	round_num bigint NOT NULL,
	entry_index int NOT NULL DEFAULT 0,
	txn_id text,
	committed boolean NOT NULL,
	conflict_round bigint,
	PRIMARY KEY (group_id, round_num, entry_index)
);
CREATE INDEX ON pgp_metadata.outcome (group_id, txn_id) WHERE txn_id IS NOT NULL;

/* Each certified entry, and whether it is applied here: the applier's cursor says. */
CREATE VIEW pgp_metadata.entry_status AS
	SELECT o.group_id, o.round_num, o.entry_index, o.txn_id, o.committed, o.conflict_round,
		   o.committed AND o.round_num <= g.last_applied_round AS applied
	FROM pgp_metadata.outcome o JOIN pgp_metadata."group" g USING (group_id);

/*
 * Transactions whose changes this node's tables hold already, though its
 * applier has not passed them yet: written in the origin's local commit
 * (and copied with the tables when a node joins); the applier skips them
 * and deletes the row.
 */
CREATE TABLE pgp_metadata.local_commit (
	group_id text NOT NULL,
	txn_id text NOT NULL,
	copied boolean NOT NULL DEFAULT false,	-- came with a snapshot
	PRIMARY KEY (group_id, txn_id)
);
-- the applier asks "any copied rows?" every time: an index of just those
CREATE INDEX local_commit_copied ON pgp_metadata.local_commit (group_id) WHERE copied;

/*
 * Transactions whose origin lost its leader before it knew whether their
 * entry was chosen: the origin appended a cancellation, and an entry of
 * such a transaction that comes later in the log fails certification.
 * Certification forgets a row once past valid_until, the last round the
 * entry could commit in anyway (NULL: kept for good).
 */
CREATE TABLE pgp_metadata.cancelled_txn (
	group_id text NOT NULL,
	txn_id text NOT NULL,
	round_num bigint NOT NULL,
	valid_until bigint,
	PRIMARY KEY (group_id, txn_id)
);

/*
 * DDL of replicated tables applied here, in log order: written by the
 * applier with the cursor, never compacted (DDL is rare), so that a node
 * that copies a snapshot after the rounds holding DDL were compacted
 * replays it before it copies the rows (snapshot.c).
 */
CREATE TABLE pgp_metadata.ddl_history (
	group_id text NOT NULL,
	round_num bigint NOT NULL,
	entry_index int NOT NULL,
	change_index int NOT NULL,
	txn_id text,
	statement text NOT NULL,
	PRIMARY KEY (group_id, round_num, entry_index, change_index)
);

/* The certification index: the last committed round that wrote each key. */
CREATE TABLE pgp_metadata.cert_key (
	group_id text NOT NULL,
	key text NOT NULL,
	round_num bigint NOT NULL,
	PRIMARY KEY (group_id, key)
);

/* Result of paxos(): the chosen value, and whether it is not the proposed one. */
CREATE TYPE paxos_result AS (
	accepted_value text,
	value_changed boolean
);

/* Phase 1b: an acceptor's answer to paxos_request_prepare. */
CREATE TYPE prepare_response AS (
	promised boolean,
	proposer_id text,
	min_proposal_num bigint,
	value_id text,
	value text,
	accepted_proposal_num bigint,
	accepted_proposer_id text,
	consensus boolean,
	max_round_num bigint,
	config_round bigint,
	standing boolean		-- a standing promise was granted (only by
							-- paxos_request_standing_prepare)
);

/*
 * Phase 2b: an acceptor's answer to paxos_request_accept.  A decided round
 * answers with its chosen value and ballot (consensus = true).
 */
CREATE TYPE accept_response AS (
	accepted boolean,
	min_proposal_num bigint,
	proposer_id text,
	consensus boolean,
	value_id text,
	value text,
	accepted_proposal_num bigint,
	accepted_proposer_id text,
	-- phase 1b for the next round, when prepare_next_round was asked for
	next_promised boolean,
	next_proposer_id text,
	next_min_proposal_num bigint,
	next_value_id text,
	next_value text,
	next_accepted_proposal_num bigint,
	next_accepted_proposer_id text,
	next_consensus boolean,
	max_round_num bigint,
	config_round bigint
);

/* A chosen log entry, as copied between nodes during catch-up. */
CREATE TYPE decided_round AS (
	round_num bigint,
	accepted_proposal_num bigint,
	accepted_proposer_id text,
	value_id text,
	value text
);

/* ---- acceptor RPCs, called by proposers over libpq -------------------- */

/*
 * learned_round_num/learned_proposal_num piggyback a learn: that round was
 * chosen under ballot (learned_proposal_num, current_proposer_id).
 */
CREATE FUNCTION paxos_request_prepare(
	current_proposer_id text,
	current_group_id text,
	current_round_num bigint,
	current_proposal_num bigint,
	learned_round_num bigint DEFAULT NULL,
	learned_proposal_num bigint DEFAULT NULL)
RETURNS prepare_response
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_request_prepare';

/*
 * Phase 1b for this round and every round after it: a leader's standing
 * promise (standing = true in the answer).  The proposer may skip phase 1
 * above current_round_num only where a majority granted it and reported
 * nothing accepted above it (max_round_num).
 */
CREATE FUNCTION paxos_request_standing_prepare(
	current_proposer_id text,
	current_group_id text,
	current_round_num bigint,
	current_proposal_num bigint)
RETURNS prepare_response
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_request_standing_prepare';

/* prepare_next_round: also run phase 1b of the next round for this ballot. */
CREATE FUNCTION paxos_request_accept(
	current_proposer_id text,
	current_group_id text,
	current_round_num bigint,
	current_proposal_num bigint,
	proposed_value_id text,
	proposed_value text,
	learned_round_num bigint DEFAULT NULL,
	learned_proposal_num bigint DEFAULT NULL,
	prepare_next_round boolean DEFAULT false)
RETURNS accept_response
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_request_accept';

CREATE FUNCTION paxos_confirm_consensus(
	current_proposer_id text,
	current_group_id text,
	current_round_num bigint,
	current_proposal_num bigint,
	accepted_value_id text,
	accepted_value text)
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_confirm_consensus';

CREATE FUNCTION paxos_max_accepted_round(
	current_group_id text,
	accepted_only boolean DEFAULT true)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_max_accepted_round';

CREATE FUNCTION paxos_decided_rounds(
	current_group_id text,
	from_round_num bigint,
	to_round_num bigint)
RETURNS SETOF decided_round
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_decided_rounds';

/* A node asks its own acceptor to copy chosen entries from the others. */
CREATE FUNCTION paxos_copy_decided(
	current_group_id text,
	from_round_num bigint,
	to_round_num bigint)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_copy_decided';

/* A node asks its own acceptor to certify the log up to a round. */
CREATE FUNCTION paxos_certify(
	current_group_id text,
	max_round_num bigint)
RETURNS bigint[]
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_certify';

/* A node asks itself to apply the log up to a round, in a transaction of its own. */
CREATE FUNCTION paxos_apply_upto(
	current_group_id text,
	max_round_num bigint,
	stop_before_exclusive boolean DEFAULT false)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_apply_upto';

/* ---- table replication ------------------------------------------------ */

/* Captures the row changes of replicated tables (installed by pg_paxos). */
CREATE FUNCTION paxos_capture_trigger()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'paxos_capture_trigger';

CREATE FUNCTION paxos_replicate_table(
	current_group_id text,
	new_table_oid regclass)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_replicate_table';

/* ---- leadership (leader.c, submit.c) ------------------------------------ */

/* The origin of a transaction hands its entry to the leader's batcher. */
CREATE FUNCTION paxos_submit(
	current_group_id text,
	entry text,
	OUT round_num bigint,
	OUT entry_index int,
	OUT conflict_round bigint,
	OUT in_doubt boolean,
	OUT error text)
RETURNS record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_submit';

/* Leader workers tell each other who they are and whom they follow. */
CREATE FUNCTION paxos_heartbeat(
	current_group_id text,
	sender_node_id text,
	sender_connection_string text,
	leader_round bigint,
	leader_node text,
	leader_connection text,
	decided_round bigint,
	applied_round bigint,
	compacted_below bigint,
	OUT node_id text,
	OUT leader_round bigint,
	OUT leader_node text,
	OUT leader_connection text,
	OUT decided_round bigint,
	OUT applied_round bigint,
	OUT compacted_below bigint)
RETURNS record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_heartbeat';

/* This node: per group, its role, its leader and how far it is. */
CREATE FUNCTION paxos_node_status(
	OUT node_id text,
	OUT group_id text,
	OUT role text,
	OUT leader_id text,
	OUT ballot bigint,
	OUT decided_round bigint,
	OUT applied_round bigint)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_node_status';

/* This node's peers, as its heartbeats found them. */
CREATE FUNCTION paxos_peer_status(
	OUT group_id text,
	OUT peer_node_id text,
	OUT connection_string text,
	OUT reachable boolean,
	OUT last_contact timestamptz,
	OUT lag_rounds bigint,
	OUT is_leader boolean)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_peer_status';

/* Move the leadership of a group to a node, by its pg_paxos.node_id. */
CREATE FUNCTION paxos_switchover(
	current_group_id text,
	target_node_id text)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_switchover';

CREATE FUNCTION paxos_become_leader(
	current_group_id text)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_become_leader';

/* ---- the pg_paxos README's interface ---------------------------------- */

CREATE FUNCTION paxos(
	current_proposer_id text,
	current_group_id text,
	current_round_num bigint,
	proposed_value text DEFAULT NULL)
RETURNS paxos_result
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos';

CREATE FUNCTION paxos_append(
	current_proposer_id text,
	current_group_id text,
	proposed_value text)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_append';

CREATE FUNCTION paxos_max_group_round(
	current_group_id text,
	accepted_only boolean DEFAULT true)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_max_group_round';

CREATE FUNCTION paxos_apply_log(
	current_proposer_id text,
	current_group_id text,
	max_round_num bigint)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_apply_log';

CREATE FUNCTION paxos_apply_and_append(
	current_proposer_id text,
	current_group_id text,
	proposed_value text)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_apply_and_append';

CREATE FUNCTION paxos_learn_log(
	current_group_id text,
	max_round_num bigint)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_learn_log';

CREATE FUNCTION paxos_create_group(
	current_group_id text,
	founder_connection_string text)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_create_group';

CREATE FUNCTION paxos_join_group(
	current_group_id text,
	existing_connection_string text,
	own_connection_string text)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_join_group';

CREATE FUNCTION paxos_leave_group(
	current_group_id text)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'paxos_leave_group';

/* Nothing above is for PUBLIC: see the header of this file. */
DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure
		FROM pg_proc p
		JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
		WHERE d.refclassid = 'pg_extension'::regclass
		  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_paxos')
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END;
$$;
