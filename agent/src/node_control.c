/*
 * node_control.c
 *    Down, up and switchover of the agent's node.
 *
 * One admin action at a time (admin_lock): a "down" racing an "up" would
 * leave nobody knowing what state the server should be in.  The ready flag
 * makes the transaction endpoints answer 503 while the node is down, as
 * the middleware's agents did, instead of trying a server that is gone.
 */
#include "node_control.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cluster_view.h"
#include "db.h"
#include "pg_node.h"

#define FAILOVER_WAIT_MS   10000
#define CATCH_UP_TIMEOUT_S 60

static pthread_mutex_t admin_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int ready;

void
nc_set_ready(int r)
{
	atomic_store(&ready, r);
}

int
nc_ready(void)
{
	return atomic_load(&ready);
}

/* live_majority: whether more than half the nodes answer in the view. */
static int
live_majority(const cv_view *v)
{
	int i, up = 0;

	for (i = 0; i < v->nnodes; i++)
		up += v->nodes[i].up;
	return 2 * up > v->nnodes;
}

int
nc_down(const cfg_config *cfg, char *err, size_t errlen)
{
	cv_view v;
	int rc;

	pthread_mutex_lock(&admin_lock);
	nc_set_ready(0);
	rc = pgn_stop(cfg, "immediate", err, errlen);
	db_close_all();
	pthread_mutex_unlock(&admin_lock);
	if (rc != 0)
		return -1;

	/* wait until the view no longer counts this node, and another leader
	 * shows if one can */
	cv_get(&v);
	for (int waited = 0; waited < FAILOVER_WAIT_MS; waited += 500)
	{
		const cv_node *self;

		cv_wait_next(v.generation, 1000, &v);
		self = cv_self(&v, cfg->node_id);
		if (self != NULL && !self->up &&
			((v.leader_id != 0 && v.leader_id != cfg->node_id) ||
			 !live_majority(&v)))
			break;
	}
	return 0;
}

int
nc_up(const cfg_config *cfg, char *err, size_t errlen)
{
	PGconn *conn;
	PGresult *res;
	cv_view v;
	int rc = -1;

	pthread_mutex_lock(&admin_lock);
	if (pgn_start(cfg, err, errlen) != 0)
		goto done;
	db_close_all();
	if ((conn = db_get(err, errlen)) == NULL)
		goto done;
	/* a strong read of the replicated table waits until this node has
	 * applied every round decided when it began: that is catching up */
	res = db_exec(conn, "SET statement_timeout = '60s'", 0, NULL, err, errlen,
				  NULL);
	if (res != NULL)
	{
		PQclear(res);
		res = db_exec(conn, "SELECT count(*) FROM public.bank_balance", 0,
					  NULL, err, errlen, NULL);
	}
	if (res != NULL)
		PQclear(res);
	db_put(conn, 1);
	if (res == NULL)
		goto done;
	nc_set_ready(1);
	rc = 0;
done:
	pthread_mutex_unlock(&admin_lock);
	if (rc == 0)
	{
		/* let the view see the node again before answering */
		cv_get(&v);
		cv_wait_next(v.generation, 2000, &v);
	}
	return rc;
}

int
nc_switchover(const cfg_config *cfg, int target, char *err, size_t errlen)
{
	char target_s[16];
	const char *p[2] = {cfg->group, target_s};
	PGconn *conn;
	PGresult *res;

	if ((conn = db_get(err, errlen)) == NULL)
		return -1;
	if (!db_function_exists(conn, "paxos_switchover(text,text)"))
	{
		db_put(conn, 0);
		snprintf(err, errlen,
				 "this pg_paxos has no paxos_switchover(): leader election "
				 "is not in this build of the extension");
		return -2;
	}
	snprintf(target_s, sizeof(target_s), "%d", target);
	res = db_exec(conn, "SELECT paxos_switchover($1, $2)", 2, p, err,
				  errlen, NULL);
	db_put(conn, res == NULL);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}
