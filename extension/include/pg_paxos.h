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
 *    compaction.c       truncating the log below what every member applied
 *    snapshot.c         copying a peer's snapshot when the log is gone
 *    replicate.c        which tables are replicated; paxos_replicate_table
 *    capture.c          row changes of a transaction -> one log entry
 *    local_writes.c     whether a commit must flush, or the log holds it all
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
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "executor/spi.h"
#include "access/htup.h"
#include "utils/relcache.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"

#include "paxos_core.h"

/* ---- pg_paxos.c: GUCs and argument helpers ---------------------------- */

extern char *PaxosNodeId;
extern int	PaxosRpcTimeoutMs;
extern int	PaxosTimeoutMs;
extern char *PaxosDatabase;
extern int	PaxosLearnIntervalMs;
extern int	PaxosLogRetention;
extern int	PaxosCompactionIntervalMs;
extern int	PaxosCompactionMemberTimeoutMs;
extern int	PaxosEntryLifetimeRounds;

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
extern int64 RoundStoreMaxRoundLatest(const char *group_id);
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
	int64		compacted_below;	/* the log here starts at this round */
} GroupInfo;

extern bool GroupLoad(const char *group_id, GroupInfo *group);
extern void GroupLoadOrError(const char *group_id, GroupInfo *group);
extern List *GroupHostsForRound(const char *group_id, int64 round);
extern bool MembershipIsChange(px_value value);
extern void MembershipApplyChosen(const char *group_id, int64 round,
								  px_value value);
extern void PaxosInPeerSnapshot(PGconn *conn, const char *display,
								void (*work) (PGconn *conn, void *arg), void *arg);
extern PGresult *PaxosPeerGroupRow(PGconn *conn, const char *group_id,
								   const char *display, const char *hint);
extern PGresult *PaxosRemoteQuery(PGconn *conn, const char *sql, const char *param,
								  const char *display);
extern PGconn *PaxosConnectOrError(const char *connstr, const char *message,
								   const char *hint);
extern void PaxosCheckNotCompacted(const GroupInfo *group, int64 round);

/* ---- standing_promise.c ----------------------------------------------- */

extern void PaxosLockPromises(const char *group_id);
extern void PaxosLoadStanding(const char *group_id, px_standing *standing);
extern bool PaxosStandingPrepare(const char *group_id, int64 round,
								 const px_ballot *ballot, GroupInfo *group,
								 px_promise *reply, bool *busy);

/* ---- compaction.c, snapshot.c ----------------------------------------- */

extern void PaxosCompactGroup(const char *group_id);
extern int64 PaxosPeersCompactedBelow(const char *group_id);
extern bool PaxosSnapshotNeeded(const char *group_id, char **source,
								int64 *needed);
extern bool PaxosCopySnapshot(const char *group_id, const char *source,
							  int64 needed);
extern void PaxosAwaitSnapshot(const char *group_id);

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
	RPC_SUBMIT,
	RPC_HEARTBEAT,
	RPC_STANDING,
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
	TimestampTz answered_at;	/* last answer read, to any call, even a late one */
	TimestampTz retry_after;	/* no reconnect attempt before this */
	char	   *last_error;
	List	   *deferred;		/* learn requests (char *[6]) not sent yet */
} PeerConnection;

extern PeerConnection **PeerAll(int *n);
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

extern int	PaxosRpcTimeoutFor(const char *values);
extern void FanoutFlushDeferred(int timeout_ms);
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
extern bool PaxosLearnInProcess;
extern bool PaxosAskStanding;
extern void PaxosFlushCarriedLearn(void);
extern PeerConnection *PaxosSelfPeer(const char *group_id);
extern int64 PaxosPreparedRound(const char *group_id);

/* ---- worker.c ------------------------------------------------------------ */

extern void PaxosWorkerConnect(const char *name);

/* ---- multi_paxos.c, learner.c ----------------------------------------- */

extern int64 PaxosAppendValue(const char *group_id, const char *value_id,
							  const char *value);
extern int64 PaxosCopyChosen(const char *group_id, int64 from_round, int64 to_round);
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
extern int	PaxosPointWrites;		/* a PAXOS_CONSISTENCY_* too */
extern bool PaxosApplying;		/* this backend applies the log now */

extern const char *PaxosReplicatedGroup(Oid relid);
extern bool PaxosLocksGroupTables(const char *group_id);
extern const char *PaxosPointWriteGroup(struct PlannedStmt *stmt);
extern void PaxosStartReplicating(const char *group_id, const char *table);
extern void PaxosForgetDroppedTables(void);
extern void PaxosCopyReplicatedTables(PGconn *conn, const char *group_id,
									  const char *display, bool replace);
extern void PaxosCopyMetadataRows(PGconn *conn, const char *group_id,
								  const char *display, const char *table);
extern void PaxosInitCapture(void);
extern const char *PaxosOriginId(void);
extern Size PaxosIncarnationShmemSize(void);
extern void PaxosIncarnationShmemInit(void);
extern uint64 PaxosIncarnation(void);
extern void PaxosAddRowKeys(Relation rel, const char *relname, HeapTuple tuple,
							List **check, List **write);
extern void PaxosAddTableKeys(const char *relname, bool table_level,
							  List **check, List **write);
extern void PaxosAppendKeysJson(StringInfo buf, const char *name, List *keys);
extern void PaxosCaptureStatement(const char *group_id, const char *relname,
								  const char *sql);
extern bool PaxosIsTransactionEntry(px_value value);
extern int64 PaxosCertifyThroughSelf(const char *group_id, int64 round);

/* local_writes.c: whether a commit must flush, or the log holds it all */
extern bool PaxosFlushLocalCommits;
extern void PaxosInitLocalWrites(void);
extern void PaxosSkipLocalFlush(void);
extern void PaxosNoteUtilityStatement(Node *parsetree);

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


/* ---- leadership and batching (leader.c, batch.c, batcher.c, submit.c) -- */

#define PAXOS_GROUP_ID_MAX 128
#define PAXOS_CONNSTR_MAX 512
#define PAXOS_NODE_ID_MAX 64
#define PAXOS_LEADER_PREFIX "pg_paxos:leader:"
#define PAXOS_CANCEL_PREFIX "pg_paxos:cancel:"

extern int	PaxosLeaderTimeoutMs;
extern int	PaxosHeartbeatIntervalMs;

/* Where a committed transaction entry went, as the batcher reports it. */
typedef struct PaxosBatchResult
{
	bool		ok;				/* round, index and conflict are valid */
	bool		in_doubt;		/* failed, but the entry may still be chosen */
	int64		round;
	int			index;			/* position in the round's batch */
	int64		conflict;		/* -1: committed */
	char		error[256];
	char		txn_id[160];	/* the id it went under (submit.c) */
	int64		until;			/* the last round it could commit in (submit.c) */
} PaxosBatchResult;

typedef struct PaxosBatchTicket
{
	int			slot;
	uint64		ticket;
} PaxosBatchTicket;

extern Size PaxosBatchShmemSize(void);
extern void PaxosBatchShmemInit(void);

/* apply progress in shared memory (apply_progress.c) */
extern Size PaxosProgressShmemSize(void);
extern void PaxosProgressShmemInit(void);
extern void PaxosProgressInit(void);
extern void PaxosSetApplier(Latch *latch);
extern void PaxosWakeApplier(void);
extern void PaxosWakeApplierAtCommit(void);
extern void PaxosNoteAppliedAtCommit(const char *group_id, int64 round);
extern int64 PaxosAppliedHere(const char *group_id);
extern void PaxosNoteAcceptedAtCommit(const char *group_id, int64 round);
extern void PaxosNoteDecidedAtCommit(const char *group_id, int64 from, int64 to);
extern int64 PaxosDecidedThrough(const char *group_id);
extern void PaxosNoteCertifiedAtCommit(const char *group_id, int64 round);
extern void PaxosNoteCopying(const char *group_id, bool copying);
extern bool PaxosCopying(const char *group_id);
extern bool PaxosCertifiedPublished(const char *group_id, int64 round);
extern bool PaxosCertifiedAtLeast(const char *group_id, int64 round);
extern int64 PaxosLocalMaxAccepted(const char *group_id);
extern int64 PaxosSharedGroupRound(const char *group_id);
extern void PaxosForgetProgress(const char *group_id);
extern bool PaxosWaitApplied(const char *group_id, int64 round, int timeout_ms);
extern bool PaxosBatchFits(Size len);
extern void PaxosBatchSubmit(const char *group_id, const char *entry,
							 PaxosBatchResult *result);
extern void PaxosBatchWithdraw(int slotno, uint64 ticket);
extern void PaxosBatchSetBatcher(Latch *latch);
extern char *PaxosBatchTake(Size max_bytes, List **entries, List **tickets);
extern void PaxosBatchFinish(const PaxosBatchTicket *t, int64 round, int index,
							 int64 conflict, const char *error);
extern bool PaxosBatchPending(void);

/* What a node knows of a group's leader (shared memory, leader.c). */
typedef struct PaxosLeaderInfo
{
	int64		round;			/* round of the leader entry; -1: none known */
	char		node_id[PAXOS_NODE_ID_MAX];
	char		connstr[PAXOS_CONNSTR_MAX];
	bool		is_self;
} PaxosLeaderInfo;

/* A peer as this node's leader worker last heard from it. */
typedef struct PeerView
{
	char		connstr[PAXOS_CONNSTR_MAX];
	char		node_id[PAXOS_NODE_ID_MAX];
	bool		reachable;
	TimestampTz last_contact;
	TimestampTz since;			/* when this node started heartbeating it */
	TimestampTz answered_at;	/* last answer to this node's own heartbeat */
	int64		decided;
	int64		applied;
	int64		compacted_below;	/* its log starts there */
} PeerView;

/* What this node knows of one group, shared by its processes. */
typedef struct GroupView
{
	bool		in_use;
	char		group_id[PAXOS_GROUP_ID_MAX];
	char		own_connstr[PAXOS_CONNSTR_MAX];	/* set by the leader worker */
	int64		leader_round;	/* round of the newest leader entry known */
	char		leader_node[PAXOS_NODE_ID_MAX];
	char		leader_conn[PAXOS_CONNSTR_MAX];
	TimestampTz leader_contact; /* last heard from the leader */
	TimestampTz quorum_at;		/* leading here: last time a majority answered */
	bool		quorum_lost;	/* leading here, and quorum_at is stale (logged) */
	bool		candidate;		/* standing for election soon */
	TimestampTz stand_at;
	uint64		leader_changes;
	int64		decided;		/* highest round decided here */
	int64		applied;		/* applied cursor here */
	int64		compacted_below;	/* the log here starts there */
	int			npeers;
	PeerView	peers[PX_MAX_HOSTS];
} GroupView;

typedef struct LeaderShared
{
	LWLock	   *lock;
	GroupView	groups[32];
} LeaderShared;

extern GroupView *PaxosGroupView(const char *group_id, bool create);
extern bool PaxosViewLeadsHere(const GroupView *v);
extern PeerView *PaxosFindPeer(GroupView *v, const char *connstr);
extern void PaxosKeepPeers(const char *group_id, List *connstrs);
extern void PaxosLeaderLock(bool exclusive);
extern void PaxosLeaderUnlock(void);
extern void PaxosNotePeer(const char *group_id, const char *connstr,
						  const char *node_id, int64 decided, int64 applied,
						  int64 compacted_below, bool vouches_leader);
extern int64 PaxosStandForLeader(const char *group_id, const char *why);
extern Size PaxosLeaderShmemSize(void);
extern void PaxosLeaderShmemInit(void);
extern bool PaxosKnownLeader(const char *group_id, PaxosLeaderInfo *info);
extern void PaxosAdoptLeader(const char *group_id, int64 round, const char *node_id,
							 const char *connstr, const char *why);
extern void PaxosLeaderFromLog(const char *group_id, int64 round, const char *value);
extern char *PaxosLeaderValue(const char *connstr);
extern const char *PaxosOwnNodeId(void);

extern void PaxosSubmitTransaction(const char *group_id, const char *txn_id,
								   int64 base_round, const char *entry,
								   PaxosBatchResult *result);
extern int64 PaxosAppendAlone(const char *group_id, const char *value_id,
							  const char *value);
extern int64 *PaxosCertifyHere(const char *group_id, int64 max_round, int *nentries);
extern int64 *PaxosCertifyRound(const char *group_id, int64 round, int *nentries);
extern int64 PaxosCertifiedUpTo(const char *group_id);
extern List *PaxosSplitBatch(const char *value);

/* One transaction of a transaction round, as entry.c reads it. */
typedef struct PaxosEntry
{
	const char *text;			/* the entry's JSON */
	char	   *id;				/* transaction id (submit.c) */
	char	   *origin;			/* PaxosOriginId of the origin */
	int64		x;				/* round its snapshot had seen */
	int64		until;			/* last round it may commit in (-1: any) */
	TransactionId xid;			/* its transaction id at the origin */
	uint64		incarnation;	/* the origin's life that xid belongs to */
	Datum		check;			/* text[]: keys that must be unchanged since x */
	Datum		write;			/* text[]: keys it writes */
} PaxosEntry;

extern void PaxosParseEntry(const char *text, PaxosEntry *entry);

/* One row change of an entry (capture.c): its kind, table and images. */
typedef struct PaxosChange
{
	char		op;				/* I, U, D, T (truncate) or S (DDL) */
	char	   *rel;			/* qualified table name */
	Jsonb	   *old_row;		/* row image, or NULL */
	Jsonb	   *new_row;
	char	   *sql;			/* DDL statement, or NULL */
} PaxosChange;

extern List *PaxosEntryChanges(const char *text);
extern char *PaxosImageText(Jsonb *image);

extern char *PaxosCancelValue(const char *txn_id, int64 until);
extern void PaxosParseCancel(const char *value, char **txn_id, int64 *until);

/* apply_direct.c: UPDATE and DELETE applied without SQL */
typedef struct PaxosDirectTable PaxosDirectTable;
extern PaxosDirectTable *PaxosDirectStart(Oid relid);
extern bool PaxosDirectApply(PaxosDirectTable *t, char op, Jsonb *old_row,
							 Jsonb *new_row);
extern void PaxosDirectEnd(PaxosDirectTable *t);

/* cancellation.c: pgp_metadata.cancelled_txn, as certification uses it */
extern void PaxosCancellationsStart(const char *group_id);
extern int64 PaxosCancelledRound(const char *group_id, const char *txn_id);
extern void PaxosRecordCancellation(const char *group_id, int64 round, const char *value);
extern void PaxosForgetExpiredCancellations(const char *group_id, int64 round);
extern HTAB *PaxosBackendHash(const char *name, Size keysize, Size entrysize,
							  bool string_keys);
extern bool PaxosGroupTest(SPIPlanPtr *cache, const char *sql, const char *group_id);
extern SPIPlanPtr PaxosKeptPlan(SPIPlanPtr *cache, const char *sql, int nargs,
								Oid *types);

#endif							/* PG_PAXOS_H */
