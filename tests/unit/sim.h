/*
 * sim.h
 *    A simulated cluster for the consensus core: N nodes in one process,
 *    each with a durable acceptor (round -> px_acceptor_state) and a
 *    proposer running a Multi-Paxos append loop, talking over a simulated
 *    network with deterministic time.
 *
 * Everything random (delays, loss, duplication, partitions, crashes,
 * backoff) is drawn from one PRNG seeded by the test, so a seed replays the
 * same run exactly.  After every step the checker (sim_check.c) verifies
 * safety against an oracle that records every acceptance; after the faults
 * stop, the run must reach a state where every pending value is chosen and
 * every node has learned and applied the same log.
 *
 * Files: sim_net.c (PRNG, messages, network faults), sim_node.c (what one
 * node does with messages and timers), sim_check.c (the oracle and the
 * safety and liveness checks), sim.c (the event loop and fault schedule).
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "paxos_core.h"
#include "paxos_log.h"

#define SIM_MAX_NODES   5
#define SIM_MAX_ROUNDS  128  /* log rounds a run may use */
#define SIM_MAX_VALUES  8    /* values one client appends */
#define SIM_MAX_MSGS    4096 /* messages in flight */
#define SIM_MAX_BALLOTS 48   /* distinct accepted ballots per round */
#define SIM_ARENA       8192 /* bytes of interned strings */
#define SIM_MAX_STRINGS 128

/* Timing, in simulated microseconds. */
#define SIM_DELAY_MIN    100
#define SIM_DELAY_MAX    1500
#define SIM_SLOW_MAX     20000 /* a slow message: reordered far */
#define SIM_TIMEOUT      8000  /* a phase without a quorum gives up */
#define SIM_BACKOFF_BASE 500
#define SIM_BACKOFF_MAX  32000
#define SIM_SYNC_PERIOD  15000 /* catch-up requests of an idle node */
#define SIM_GAP_DELAY    10000 /* a hole waits this long for a learn */

/* After the faults stop, the run must converge within this many steps. */
#define SIM_LIVENESS_STEPS 20000

typedef struct sim_rng
{
	uint64_t state;
} sim_rng;

typedef enum sim_msg_type
{
	SIM_PREPARE,   /* phase 1a */
	SIM_PROMISE,   /* phase 1b */
	SIM_ACCEPT,    /* phase 2a */
	SIM_ACCEPTED,  /* phase 2b */
	SIM_LEARN,     /* learn: (ballot, value) is chosen */
	SIM_SYNC,      /* catch-up request: "what do you know?" */
	SIM_SYNC_REPLY /* catch-up answer: the peer's max round */
} sim_msg_type;

typedef struct sim_msg
{
	sim_msg_type type;
	int from;
	int to;
	uint32_t from_inc; /* sender's incarnation */
	uint32_t to_inc;   /* replies: requester's incarnation */
	int64_t round;
	int64_t at;   /* delivery time */
	/* prepare: ask for a standing promise; promise: granted, nothing above */
	bool standing;
	uint64_t seq; /* ties in delivery time: send order */
	union
	{
		struct
		{
			px_ballot ballot;
			px_value value;
		} req; /* prepare, accept, learn */
		px_promise promise;
		px_accepted accepted;
		struct
		{
			int64_t from_round;
			int64_t max_round;
		} sync;
	} u;
} sim_msg;

typedef enum sim_prop_state
{
	SIM_IDLE,
	SIM_PHASE1,
	SIM_PHASE2,
	SIM_BACKOFF
} sim_prop_state;

typedef struct sim_node
{
	int idx;
	char name[8];
	bool up;
	uint32_t inc; /* incarnation: bumped by each crash */

	/* durable: survives crashes */
	px_acceptor_state acc[SIM_MAX_ROUNDS];
	bool acc_used[SIM_MAX_ROUNDS];
	bool verified[SIM_MAX_ROUNDS]; /* checker: decided state checked */
	int64_t acc_max_round;         /* highest round accepted or decided */
	int64_t applied_next;          /* apply cursor */
	px_standing standing;          /* the acceptor's standing promise */

	/* volatile: lost by a crash */
	px_log log;
	uint8_t log_bits[SIM_MAX_ROUNDS / 8];
	sim_prop_state pstate;
	px_proposer p;
	int64_t round;        /* round of the current attempt */
	bool noop;            /* attempt is a no-op to learn round */
	int conflicts;        /* consecutive preemptions/timeouts */
	int64_t reported_max; /* highest round peers reported */
	int64_t timer_at;     /* proposer timer, -1: none */
	int64_t sync_at;      /* next catch-up request */
	int64_t gap_round;    /* hole being waited on, -1: none */
	int64_t gap_since;
	/* a standing promise a majority granted this proposer (cfg.standing) */
	bool hold;
	px_ballot hold_ballot;
	int64_t hold_from;   /* rounds it covers with nothing accepted */
	int64_t hold_next;   /* where the next append goes: the round after */
	bool held;           /* the current attempt skipped phase 1 with it */
	uint64_t grants;     /* hosts that granted it in this attempt */

	/* the node's client: outside the node, survives its crashes */
	int n_values;
	int next_value;                   /* next value to append */
	int64_t avail_at[SIM_MAX_VALUES]; /* when the client submits it */
	px_value values[SIM_MAX_VALUES];
	bool abandoned[SIM_MAX_VALUES];      /* in flight at a crash */
	int64_t acked_round[SIM_MAX_VALUES]; /* -1: not acknowledged */
} sim_node;

/* What the oracle knows of one round: every ballot accepted, by whom. */
typedef struct sim_round_oracle
{
	int n;
	struct
	{
		px_ballot ballot;
		px_value value;
		uint32_t mask; /* acceptors that accepted it */
	} e[SIM_MAX_BALLOTS];
	bool chosen; /* some ballot reached a majority */
	px_value chosen_value;
	bool learned; /* some node learned the round */
	px_value learned_value;
} sim_round_oracle;

typedef struct sim_config
{
	int n_nodes;
	int min_values; /* per client */
	int max_values;
	int64_t fault_end;     /* faults stop at this time */
	int loss_pm;           /* per mille of messages lost */
	int dup_pm;            /* duplicated */
	int slow_pm;           /* delayed up to SIM_SLOW_MAX */
	int64_t fault_gap_min; /* time between fault events */
	int64_t fault_gap_max;
	int burst_pm; /* values submitted at a common burst time */
	bool crashes;
	bool partitions;
	bool standing; /* proposers ask standing promises and skip phase 1 */
} sim_config;

typedef struct sim
{
	uint64_t seed;
	sim_rng rng;
	sim_config cfg;
	int n;
	int quorum;
	int64_t now;
	uint64_t steps;
	uint64_t heal_step; /* step at which faults stopped */
	bool healed;
	bool trace;

	sim_node nodes[SIM_MAX_NODES];

	/* network */
	sim_msg msgs[SIM_MAX_MSGS];
	int free_slots[SIM_MAX_MSGS];
	int n_free;
	int heap[SIM_MAX_MSGS]; /* min-heap of slots by (at, seq) */
	int heap_len;
	uint64_t seq;
	int loss_pm;
	int dup_pm;
	int slow_pm;
	bool partitioned;
	int side[SIM_MAX_NODES];
	int64_t partition_end;
	int64_t restart_at[SIM_MAX_NODES];
	int64_t next_fault_at;
	int64_t bursts[4]; /* instants when many clients submit */

	/* oracle */
	sim_round_oracle oracle[SIM_MAX_ROUNDS];
	int64_t max_round_used;
	int64_t value_round[SIM_MAX_NODES][SIM_MAX_VALUES];

	/* fixture-owned copies of value strings */
	char arena[SIM_ARENA];
	size_t arena_used;
	const char *strings[SIM_MAX_STRINGS];
	int n_strings;

	/* first failure, if any */
	bool failed;
	char failure[512];

	/* statistics */
	uint64_t sent;
	uint64_t dropped;
	uint64_t crashes;
	uint64_t partitions;
	uint64_t chosen_values;
	uint64_t noops;
	uint64_t preemptions; /* PX_PREEMPTED answers */
	uint64_t timeouts;    /* phases that got no quorum in time */
	uint64_t held_rounds; /* attempts that skipped phase 1 (standing) */
} sim;

/* sim.c */
void sim_default_config(sim_config *cfg, int n_nodes);
void sim_random_config(sim_config *cfg, int n_nodes, uint64_t seed);
void sim_init(sim *s, const sim_config *cfg, uint64_t seed);
bool sim_step(sim *s);
int64_t sim_next_time(sim *s);
int sim_run(sim *s);
void sim_heal(sim *s);
void sim_fail(sim *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void sim_trace(sim *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* sim_net.c */
uint64_t sim_rand(sim_rng *r);
int64_t sim_rand_range(sim_rng *r, int64_t lo, int64_t hi);
bool sim_chance(sim_rng *r, int per_mille);
void sim_net_init(sim *s);
sim_msg *sim_msg_new(sim *s, sim_msg_type type, int from, int to);
void sim_send(sim *s, sim_msg *m);
sim_msg *sim_net_peek(sim *s);
void sim_net_pop(sim *s);
void sim_partition(sim *s, int64_t until);
void sim_partition_heal(sim *s);
bool sim_link_cut(const sim *s, int from, int to);
const char *sim_intern(sim *s, const char *str);

/* sim_node.c */
void sim_node_init(sim *s, int idx);
void sim_node_crash(sim *s, int idx);
void sim_node_restart(sim *s, int idx);
void sim_node_deliver(sim *s, const sim_msg *m);
void sim_node_timer(sim *s, int idx);
void sim_node_sync(sim *s, int idx);
void sim_node_kick(sim *s, int idx);
bool sim_client_done(const sim_node *nd);

/* sim_check.c */
void sim_oracle_accepted(sim *s, int node, int64_t round, const px_ballot *b,
						 px_value v);
void sim_check_safety(sim *s);
bool sim_converged(sim *s);
void sim_check_final(sim *s);

#endif /* SIM_H */
