/*
 * pg_paxos.h
 *    Declarations shared by the modules of the pg_paxos extension.
 *
 * Module map (one concern each):
 *    pg_paxos.c         module load, GUCs, argument checks
 *    round_store.c      durable acceptor state in pgp_metadata.round (SPI)
 *    acceptor_rpc.c     SQL-callable acceptor RPCs (phase 1b, 2b, learn)
 *    membership.c       groups and hosts; create, join, leave
 *    peer_connection.c  cached libpq connections to peers
 *    fanout.c           one request to many peers at once, one poll loop
 *    proposer.c         single-decree Paxos driven by the core (phase 1a/2a)
 *    multi_paxos.c      the log: append, apply, max round
 *    learner.c          learning rounds this node missed
 *    worker.c           background worker: learns and applies by itself
 *    replicate.c        which tables are replicated; paxos_replicate_table
 *    capture.c          row changes of a transaction -> one log entry
 *    conflict_keys.c    the conflict keys of captured changes
 *    certify.c          certification of transaction entries, in log order
 *    apply.c            applying the log in order, once per round
 *    apply_rows.c       applying one transaction's row changes
 *    strong_read.c      strong reads: catch up before a statement
 *    ddl.c              DDL on replicated tables
 */
#ifndef PG_PAXOS_H
#define PG_PAXOS_H

#include "postgres.h"

#include "fmgr.h"
#include "libpq-fe.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "access/htup.h"
#include "utils/relcache.h"

#include "paxos_core.h"

/* ---- pg_paxos.c: GUCs and argument helpers ---------------------------- */

extern char *PaxosNodeId;
extern int	PaxosRpcTimeoutMs;
extern int	PaxosTimeoutMs;
extern char *PaxosDatabase;
extern int	PaxosLearnIntervalMs;

extern char *PaxosTextArg(FunctionCallInfo fcinfo, int argno, const char *name);
extern char *PaxosTextArgOrNull(FunctionCallInfo fcinfo, int argno);
extern int64 PaxosInt64Arg(FunctionCallInfo fcinfo, int argno, const char *name);
extern void PaxosCheckRoundNumber(int64 round, const char *name);
extern void PaxosCheckProposerId(const char *proposer_id);
extern char *PaxosUniqueValueId(const char *proposer_id);
extern const char *PaxosExtensionSchema(void);
extern List *PaxosStringListCopy(List *strings, MemoryContext context);
extern char *PaxosTrimMessage(const char *message);

typedef struct PaxosSavedUser
{
	Oid			userid;
	int			sec_context;
} PaxosSavedUser;

/* Advisory lock classes of PaxosLockGroup, one per kind of work on a group. */
#define PAXOS_APPLY_LOCK 29030
#define PAXOS_CERTIFY_LOCK 29031
#define PAXOS_APPEND_LOCK 29032

extern bool PaxosLockGroup(int lock_class, const char *group_id, bool session,
						   bool wait);
extern void PaxosUnlockGroup(int lock_class, const char *group_id);
extern void PaxosBecomeSuperuser(PaxosSavedUser *saved);
extern void PaxosRestoreUser(const PaxosSavedUser *saved);

/* Prefix of value ids that pg_paxos itself puts in the log. */
#define PAXOS_INTERNAL_PREFIX "pg_paxos:"
#define PAXOS_ADD_HOST_PREFIX "pg_paxos:add_host:"
#define PAXOS_REMOVE_HOST_PREFIX "pg_paxos:remove_host:"
#define PAXOS_TXN_PREFIX "pg_paxos:txn:"
#define PAXOS_REPLICATE_PREFIX "pg_paxos:replicate:"

/* ---- round_store.c: durable acceptor state (caller is SPI-connected) --- */

typedef bool (*AcceptorStepFn) (px_acceptor_state *st, void *arg);

extern void RoundStoreStep(const char *group_id, int64 round,
						   AcceptorStepFn step, void *arg,
						   px_acceptor_state *result);
extern bool RoundStoreLoad(const char *group_id, int64 round, bool for_update,
						   px_acceptor_state *st);
extern int64 RoundStoreMaxRound(const char *group_id, bool accepted_only);
extern bool RoundStoreLearn(const char *group_id, int64 round,
							const px_ballot *ballot, px_value value);
extern uint64 RoundStoreDecidedIn(const char *group_id, int64 from_round,
								  int64 to_round, int64 limit);
extern int	RoundStoreUndecidedIn(const char *group_id, int64 from_round,
								  int64 to_round, int64 *rounds, int max);

/* ---- membership.c ----------------------------------------------------- */

typedef struct GroupInfo
{
	char	   *group_id;
	char	   *own_connection_string;
	int64		last_applied_round;
	int64		config_round;
} GroupInfo;

extern bool GroupLoad(const char *group_id, GroupInfo *group);
extern void GroupLoadOrError(const char *group_id, GroupInfo *group);
extern List *GroupHostsForRound(const char *group_id, int64 round);
extern bool MembershipIsChange(px_value value);
extern void MembershipApplyChosen(const char *group_id, int64 round,
								  px_value value);
extern PGresult *PaxosRemoteQuery(PGconn *conn, const char *sql, const char *param,
								  const char *display);

/* ---- peer_connection.c ------------------------------------------------ */

typedef enum RpcKind
{
	RPC_PREPARE = 0,
	RPC_ACCEPT,
	RPC_CONFIRM,
	RPC_MAX_ROUND,
	RPC_DECIDED_ROUNDS,
	RPC_IDENTITY,
	RPC_COPY_DECIDED,
	RPC_CERTIFY,
	RPC_APPLY,
	RPC_KIND_COUNT
} RpcKind;

typedef enum PeerState
{
	PEER_DISCONNECTED = 0,
	PEER_CONNECTING,
	PEER_IDLE,
	PEER_PREPARING,				/* a statement is being prepared */
	PEER_BUSY					/* a query is in flight */
} PeerState;

typedef struct PeerConnection
{
	char	   *connstr;		/* as stored in pgp_metadata.host */
	char	   *display;		/* connstr without secrets, for messages */
	PGconn	   *conn;
	PeerState	state;
	PostgresPollingStatusType poll;	/* while connecting */
	uint32		prepared;		/* bitmask of RpcKind prepared on conn */
	uint64		owner;			/* fanout call that sent the query in flight */
	RpcKind		inflight_kind;
	PGresult   *result;			/* first result of the query in flight */
	TimestampTz busy_since;
	TimestampTz retry_after;	/* no reconnect attempt before this */
	char	   *last_error;
	List	   *deferred;		/* learn requests (char *[6]) not sent yet */
} PeerConnection;

extern PeerConnection *PeerGet(const char *connstr);
extern bool PeerStartConnect(PeerConnection *peer);
extern void PeerDisconnect(PeerConnection *peer, const char *why);
extern const char *PeerStatementSql(RpcKind kind);
extern void PeerDeferLearn(PeerConnection *peer, const char *const *params);
extern bool PeerSendDeferred(PeerConnection *peer);
extern const char *PeerStatementName(RpcKind kind);
extern char *PaxosConnstrForDisplay(const char *connstr);

/* ---- fanout.c ---------------------------------------------------------- */

/*
 * Called once per host as its answer arrives: res is a PGresult owned by the
 * fanout (cleared after the call), or NULL with error set.  Returns true when
 * the caller has heard enough and the fanout should stop waiting.
 */
typedef bool (*FanoutResultFn) (void *arg, int host, PGresult *res,
								const char *error);

typedef struct FanoutStats
{
	int			answered;		/* hosts whose answer was delivered */
	int			failed;			/* hosts that failed or timed out */
	char	   *first_error;	/* first failure, for messages */
} FanoutStats;

extern void FanoutCall(PeerConnection **peers, int npeers, RpcKind kind,
					   const char *const *params, int nparams, int timeout_ms,
					   FanoutResultFn fn, void *arg, FanoutStats *stats);

/* ---- proposer.c --------------------------------------------------------- */

typedef struct PaxosOutcome
{
	char	   *value_id;
	char	   *value;			/* NULL for a no-op */
	px_ballot	ballot;			/* ballot under which it was chosen */
	bool		value_changed;	/* chosen value is not the one proposed */
	int64		max_round;		/* highest round any acceptor reported */
} PaxosOutcome;

extern void PaxosRunRound(const char *group_id, int64 round,
						  const char *value_id, const char *value,
						  int priority, PaxosOutcome *outcome);
extern PeerConnection **PaxosPeersFor(List *connstrs, int *npeers);
extern PeerConnection *PaxosSelfPeer(const char *group_id);
extern int64 PaxosPreparedRound(const char *group_id);

/* ---- worker.c ------------------------------------------------------------ */

extern void PaxosRegisterWorker(void);

/* ---- multi_paxos.c, learner.c ----------------------------------------- */

extern int64 PaxosAppendValue(const char *group_id, const char *value_id,
							  const char *value);
extern int64 PaxosLearnLog(const char *group_id, int64 from_round,
						   int64 max_round);
extern int64 PaxosMaxGroupRound(const char *group_id, bool accepted_only);

/* ---- replication -------------------------------------------------------- */

typedef enum PaxosConsistency
{
	PAXOS_CONSISTENCY_STRONG,
	PAXOS_CONSISTENCY_OPTIMISTIC
} PaxosConsistency;

extern int	PaxosConsistencyModel;
extern bool PaxosApplying;		/* this backend applies the log now */

extern const char *PaxosReplicatedGroup(Oid relid);
extern void PaxosStartReplicating(const char *group_id, const char *table);
extern void PaxosForgetDroppedTables(void);
extern void PaxosCopyReplicatedTables(PGconn *conn, const char *group_id,
									  const char *display);
extern void PaxosInitCapture(void);
extern const char *PaxosOriginId(void);
extern void PaxosAddRowKeys(Relation rel, const char *relname, HeapTuple tuple,
							List **check, List **write);
extern void PaxosAddTableKeys(const char *relname, bool table_level,
							  List **check, List **write);
extern void PaxosAppendKeysJson(StringInfo buf, const char *name, List *keys);
extern void PaxosCaptureStatement(const char *group_id, const char *relname,
								  const char *sql);
extern bool PaxosIsTransactionEntry(px_value value);
extern int64 PaxosCertifyThroughSelf(const char *group_id, int64 round);
typedef enum PaxosApplyMode
{
	APPLY_ALL,
	APPLY_STOP_BEFORE_EXCLUSIVE,
	APPLY_YIELD_ON_LOCK
} PaxosApplyMode;

extern int64 PaxosApplyUpTo(const char *group_id, int64 max_round,
							PaxosApplyMode mode);
extern int64 PaxosApplyThroughSelf(const char *group_id, int64 max_round,
								   bool stop_before_exclusive);
extern void PaxosExecuteLogValue(const char *group_id, int64 round, const char *sql);
extern void PaxosInsertRows(const char *rel, const char *json_rows);
extern void PaxosSyncGroup(const char *group_id, bool may_apply_here);
extern bool PaxosLockExclusiveTables(void);
extern bool PaxosExclusiveTablesPending(void);
extern void PaxosInitStrongReads(void);
extern void PaxosApplyChanges(const char *group_id, int64 round, const char *entry);
extern void PaxosInitDdl(void);

#endif							/* PG_PAXOS_H */
