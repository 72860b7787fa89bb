/*
 * host_cache.c
 *    The members of a group's rounds (pgp_metadata.host), kept in each
 *    backend: every proposal, strong read's question and learning pass
 *    needs them, and they change only with the membership.
 *
 * A backend reads a group's host rows once and answers for any round from
 * them.  Every statement that writes pgp_metadata.host fires a trigger
 * (enabled ALWAYS: the worker runs as a replica) that invalidates the
 * table's relcache entry; the invalidation reaches this backend when the
 * writer commits, at the next start of a transaction or lock, or at once
 * in the writing transaction, and empties the cache.  Within a
 * transaction, the group row's config_round (bumped by every membership
 * change, in the transaction that writes the hosts) is read again each
 * time, and a different one reloads the rows: the members a caller gets
 * are never older than the config_round it read before (a proposer
 * compares that with the acceptors', proposer.c).
 */
#include "pg_paxos.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(paxos_hosts_changed);

/* One host row: a member from min_round to max_round (-1: on). */
typedef struct HostRow
{
	char	   *connstr;
	int64		min_round;
	int64		max_round;
} HostRow;

/* The host rows of one group, in connection string order. */
typedef struct GroupHosts
{
	char		group_id[PAXOS_GROUP_ID_MAX];
	int64		config_round;	/* of the group row the rows go with */
	int			nrows;
	HostRow    *rows;
} GroupHosts;

static MemoryContext host_context = NULL;
static List *cached = NIL;		/* GroupHosts *, in host_context */
static Oid	host_relid = InvalidOid;	/* whose invalidation empties it */

static void ForgetHosts(Datum arg, Oid relid);
static GroupHosts *LoadHosts(const char *group_id, int64 config_round);

/* ForgetHosts empties the cache when pgp_metadata.host may have changed. */
static void
ForgetHosts(Datum arg, Oid relid)
{
	if (relid != InvalidOid && relid != host_relid)
		return;
	cached = NIL;
	if (host_context != NULL)
		MemoryContextReset(host_context);
}

/* PaxosInitHostCache hooks the invalidation (from _PG_init). */
void
PaxosInitHostCache(void)
{
	CacheRegisterRelcacheCallback(ForgetHosts, (Datum) 0);
}

/*
 * LoadHosts reads a group's host rows into the cache, read after the group
 * row that said config_round (the rows are as new as that, or newer).
 */
static GroupHosts *
LoadHosts(const char *group_id, int64 config_round)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	GroupHosts *gh;
	MemoryContext old;
	uint64		i;
	int			rc;

	if (strlen(group_id) >= PAXOS_GROUP_ID_MAX)
		elog(ERROR, "pg_paxos: group id too long");
	values[0] = CStringGetTextDatum(group_id);
	rc = SPI_execute_plan(PaxosKeptPlan(&plan,
										"SELECT connection_string, min_round_num, max_round_num"
										" FROM pgp_metadata.host WHERE group_id = $1"
										" ORDER BY connection_string",
										1, types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: host lookup failed: %s", SPI_result_code_string(rc));

	if (host_context == NULL)
		host_context = AllocSetContextCreate(CacheMemoryContext, "pg_paxos hosts",
											 ALLOCSET_SMALL_SIZES);
	host_relid = get_relname_relid("host", get_namespace_oid("pgp_metadata", false));
	old = MemoryContextSwitchTo(host_context);
	gh = palloc0(sizeof(GroupHosts));
	strlcpy(gh->group_id, group_id, sizeof(gh->group_id));
	gh->config_round = config_round;
	gh->nrows = (int) SPI_processed;
	gh->rows = palloc0(sizeof(HostRow) * Max(1, gh->nrows));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		gh->rows[i].connstr = SPI_getvalue(tuple, desc, 1);
		gh->rows[i].min_round = DatumGetInt64(SPI_getbinval(tuple, desc, 2, &isnull));
		d = SPI_getbinval(tuple, desc, 3, &isnull);
		gh->rows[i].max_round = isnull ? -1 : DatumGetInt64(d);
	}
	cached = lappend(cached, gh);
	MemoryContextSwitchTo(old);
	return gh;
}

/*
 * GroupHostsForRound lists the connection strings of the members of a
 * round, each once, in order.  Caller is connected to SPI.
 */
List *
GroupHostsForRound(const char *group_id, int64 round)
{
	GroupHosts *gh = NULL;
	GroupInfo	group;
	List	   *hosts = NIL;
	ListCell   *lc;
	const char *last = NULL;
	int			i;

	if (!GroupLoad(group_id, &group))
		return NIL;
	foreach(lc, cached)
	{
		GroupHosts *entry = (GroupHosts *) lfirst(lc);

		if (strcmp(entry->group_id, group_id) == 0)
		{
			if (entry->config_round == group.config_round)
				gh = entry;
			else
				cached = foreach_delete_current(cached, lc);
			break;
		}
	}
	if (gh == NULL)
		gh = LoadHosts(group_id, group.config_round);

	for (i = 0; i < gh->nrows; i++)
	{
		HostRow    *row = &gh->rows[i];

		if (row->min_round > round || (row->max_round >= 0 && round > row->max_round))
			continue;
		if (last != NULL && strcmp(last, row->connstr) == 0)
			continue;			/* a member added again: once */
		hosts = lappend(hosts, pstrdup(row->connstr));
		last = row->connstr;
	}
	return hosts;
}

/*
 * paxos_hosts_changed is the statement trigger on pgp_metadata.host: every
 * backend's cache of the table is dropped once the change commits.
 */
Datum
paxos_hosts_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("paxos_hosts_changed() must be called as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
