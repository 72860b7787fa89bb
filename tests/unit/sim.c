/*
 * sim.c
 *    The event loop of the simulated cluster and its fault schedule.
 *
 * A step is one event: the delivery of the earliest message, a node's
 * timer (proposer timeout/backoff/idle work, catch-up), or a fault (crash,
 * restart, partition, a change of the network's loss rates).  Time jumps to
 * the event, so the run is as fast as the CPU allows and depends only on
 * the seed.  After each step the checker verifies safety.  Faults stop at
 * cfg.fault_end ("heal": partitions close, crashed nodes restart, nothing
 * is lost or duplicated any more); from then on the run must converge
 * within SIM_LIVENESS_STEPS steps.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

typedef enum sim_event
{
	EV_NONE,
	EV_MSG,
	EV_TIMER,
	EV_SYNC,
	EV_HEAL,
	EV_PARTITION_END,
	EV_RESTART,
	EV_FAULT
} sim_event;

static void fault(sim *s);
static sim_event next_event(sim *s, int64_t *when, int *who);

/*
 * sim_default_config: a calm network (no loss, no crash) that still
 * delays and reorders; tests turn faults on as they need.
 */
void
sim_default_config(sim_config *cfg, int n_nodes)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->n_nodes = n_nodes;
	cfg->min_values = 2;
	cfg->max_values = 4;
	cfg->fault_end = 50000;
	cfg->fault_gap_min = 5000;
	cfg->fault_gap_max = 50000;
}

/*
 * sim_random_config draws a run's fault profile from its seed, so that
 * seeds cover calm runs, lossy ones, partition- and crash-heavy ones.
 */
void
sim_random_config(sim_config *cfg, int n_nodes, uint64_t seed)
{
	sim_rng r;

	r.state = seed ^ UINT64_C(0x5DEECE66D);
	sim_default_config(cfg, n_nodes);
	cfg->min_values = 1;
	cfg->max_values = n_nodes <= 3 ? 8 : 6;
	cfg->fault_end = sim_rand_range(&r, 50000, 800000);
	cfg->burst_pm = (int) sim_rand_range(&r, 0, 1000);
	cfg->loss_pm = (int) sim_rand_range(&r, 0, 300);
	cfg->dup_pm = (int) sim_rand_range(&r, 0, 200);
	cfg->slow_pm = (int) sim_rand_range(&r, 0, 150);
	cfg->fault_gap_min = 2000;
	cfg->fault_gap_max = sim_rand_range(&r, 10000, 100000);
	cfg->crashes = sim_chance(&r, 800);
	cfg->partitions = sim_chance(&r, 800);
	cfg->standing = sim_chance(&r, 600);
}

/*
 * sim_init starts a run: empty network, fresh nodes, empty oracle.  Large
 * arrays (messages, durable states) are not cleared: slots and rounds are
 * marked free or unused instead, which keeps thousands of seeds fast.
 */
void
sim_init(sim *s, const sim_config *cfg, uint64_t seed)
{
	int i;
	int k;
	int64_t r;

	s->seed = seed;
	s->rng.state = seed;
	s->cfg = *cfg;
	s->n = cfg->n_nodes;
	s->quorum = s->n / 2 + 1;
	s->now = 0;
	s->steps = 0;
	s->heal_step = 0;
	s->healed = false;
	s->trace = false;
	s->arena_used = 0;
	s->n_strings = 0;
	s->failed = false;
	s->failure[0] = '\0';
	s->sent = s->dropped = s->crashes = s->partitions = 0;
	s->chosen_values = s->noops = 0;
	s->preemptions = s->timeouts = s->held_rounds = 0;

	sim_net_init(s);
	s->loss_pm = cfg->loss_pm;
	s->dup_pm = cfg->dup_pm;
	s->slow_pm = cfg->slow_pm;

	for (r = 0; r < SIM_MAX_ROUNDS; r++)
	{
		s->oracle[r].n = 0;
		s->oracle[r].chosen = false;
		s->oracle[r].learned = false;
	}
	s->max_round_used = -1;
	for (i = 0; i < SIM_MAX_NODES; i++)
	{
		for (k = 0; k < SIM_MAX_VALUES; k++)
			s->value_round[i][k] = -1;
		s->restart_at[i] = -1;
	}
	for (i = 0; i < 4; i++)
		s->bursts[i] = sim_rand_range(&s->rng, 0, cfg->fault_end);
	for (i = 0; i < s->n; i++)
		sim_node_init(s, i);
	s->next_fault_at =
		(cfg->crashes || cfg->partitions || cfg->loss_pm || cfg->dup_pm ||
		 cfg->slow_pm)
			? sim_rand_range(&s->rng, cfg->fault_gap_min, cfg->fault_gap_max)
			: -1;
}

/*
 * fault injects one fault: crash a node that is up (it restarts later),
 * partition the network, or redraw the network's loss rates (up to the
 * run's maxima, so the network alternates between calm and stormy).
 */
static void
fault(sim *s)
{
	int kind = (int) (sim_rand(&s->rng) % 3);

	if (kind == 0 && s->cfg.crashes)
	{
		int i = (int) (sim_rand(&s->rng) % (uint64_t) s->n);

		if (s->nodes[i].up)
		{
			sim_node_crash(s, i);
			s->restart_at[i] = s->now + sim_rand_range(&s->rng, 5000, 150000);
		}
	}
	else if (kind == 1 && s->cfg.partitions && !s->partitioned)
		sim_partition(s, s->now + sim_rand_range(&s->rng, 10000, 200000));
	else
	{
		s->loss_pm = (int) sim_rand_range(&s->rng, 0, s->cfg.loss_pm);
		s->dup_pm = (int) sim_rand_range(&s->rng, 0, s->cfg.dup_pm);
		s->slow_pm = (int) sim_rand_range(&s->rng, 0, s->cfg.slow_pm);
	}
	s->next_fault_at = s->now + sim_rand_range(&s->rng, s->cfg.fault_gap_min,
											   s->cfg.fault_gap_max);
}

/*
 * sim_heal stops all faults: the partition closes, crashed nodes restart,
 * messages are no longer lost or duplicated (they are still delayed and
 * reordered).
 */
void
sim_heal(sim *s)
{
	int i;

	s->healed = true;
	s->heal_step = s->steps;
	if (s->partitioned)
		sim_partition_heal(s);
	s->loss_pm = 0;
	s->dup_pm = 0;
	s->slow_pm = s->cfg.slow_pm / 2;
	s->next_fault_at = -1;
	for (i = 0; i < s->n; i++)
	{
		s->restart_at[i] = -1;
		if (!s->nodes[i].up)
			sim_node_restart(s, i);
	}
	sim_trace(s, "faults stop");
}

/*
 * next_event finds the earliest event (ties: messages, then nodes in
 * order, then faults) and its time; EV_NONE if nothing is pending.
 */
static sim_event
next_event(sim *s, int64_t *when, int *who)
{
	sim_event ev = EV_NONE;
	int64_t t = INT64_MAX;
	sim_msg *m = sim_net_peek(s);
	int i;

	*who = -1;
	if (m != NULL)
	{
		ev = EV_MSG;
		t = m->at;
	}
	for (i = 0; i < s->n; i++)
	{
		const sim_node *nd = &s->nodes[i];

		if (!nd->up)
			continue;
		if (nd->timer_at >= 0 && nd->timer_at < t)
		{
			ev = EV_TIMER;
			t = nd->timer_at;
			*who = i;
		}
		if (nd->sync_at < t)
		{
			ev = EV_SYNC;
			t = nd->sync_at;
			*who = i;
		}
	}
	if (!s->healed)
	{
		if (s->cfg.fault_end < t)
		{
			ev = EV_HEAL;
			t = s->cfg.fault_end;
		}
		if (s->partitioned && s->partition_end < t)
		{
			ev = EV_PARTITION_END;
			t = s->partition_end;
		}
		for (i = 0; i < s->n; i++)
		{
			if (!s->nodes[i].up && s->restart_at[i] >= 0 &&
				s->restart_at[i] < t)
			{
				ev = EV_RESTART;
				t = s->restart_at[i];
				*who = i;
			}
		}
		if (s->next_fault_at >= 0 && s->next_fault_at < t)
		{
			ev = EV_FAULT;
			t = s->next_fault_at;
		}
	}
	*when = t;
	return ev;
}

/* sim_next_time is when the next event happens, INT64_MAX if never. */
int64_t
sim_next_time(sim *s)
{
	int64_t t;
	int who;

	(void) next_event(s, &t, &who);
	return t;
}

/*
 * sim_step runs the earliest event and checks safety.  Returns false when
 * the run failed or nothing is left to happen.
 */
bool
sim_step(sim *s)
{
	int64_t t;
	int who;
	sim_event ev;

	if (s->failed)
		return false;
	ev = next_event(s, &t, &who);
	if (ev == EV_NONE)
		return false;
	if (t > s->now)
		s->now = t;

	switch (ev)
	{
		case EV_MSG:
		{
			sim_msg copy = *sim_net_peek(s); /* slot is reused */

			sim_net_pop(s);
			sim_node_deliver(s, &copy);
		}
		break;
		case EV_TIMER:
			sim_node_timer(s, who);
			break;
		case EV_SYNC:
			sim_node_sync(s, who);
			break;
		case EV_HEAL:
			sim_heal(s);
			break;
		case EV_PARTITION_END:
			sim_partition_heal(s);
			break;
		case EV_RESTART:
			s->restart_at[who] = -1;
			sim_node_restart(s, who);
			break;
		case EV_FAULT:
			fault(s);
			break;
		case EV_NONE:
			break;
	}
	s->steps++;
	sim_check_safety(s);
	return !s->failed;
}

/*
 * sim_run runs to convergence after the faults stop, or to the first
 * failure.  Returns 0 when the run converged and passed the final checks.
 */
int
sim_run(sim *s)
{
	while (sim_step(s))
	{
		if (!s->healed)
			continue;
		if (sim_converged(s))
			break;
		if (s->steps - s->heal_step > SIM_LIVENESS_STEPS)
		{
			sim_fail(s, "no convergence %d steps after the faults stopped",
					 SIM_LIVENESS_STEPS);
			break;
		}
	}
	if (!s->failed && !sim_converged(s))
		sim_fail(s, "the run stopped before converging");
	if (!s->failed)
		sim_check_final(s);
	return s->failed ? -1 : 0;
}

/* sim_fail records the first failure, with the time and step it happened. */
void
sim_fail(sim *s, const char *fmt, ...)
{
	va_list ap;
	int len;

	if (s->failed)
		return;
	s->failed = true;
	len = snprintf(s->failure, sizeof(s->failure),
				   "t=%lldus step %llu: ", (long long) s->now,
				   (unsigned long long) s->steps);
	if (len < 0 || (size_t) len >= sizeof(s->failure))
		return;
	va_start(ap, fmt);
	vsnprintf(s->failure + len, sizeof(s->failure) - (size_t) len, fmt, ap);
	va_end(ap);
	sim_trace(s, "FAILED: %s", s->failure);
}

/* sim_trace prints an event when tracing (PX_TRACE) is on. */
void
sim_trace(sim *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->trace)
		return;
	printf("[%9lld] ", (long long) s->now);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}
