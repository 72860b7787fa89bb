/*
 * conflict_keys.c
 *    The conflict keys of captured changes, which certification compares:
 *    what a transaction's entry says it checks and writes.
 *
 * Every unique key of a written row (primary key included) is written
 * exclusively ("k:"); the key a foreign key references is written shared
 * ("s:"); every write marks its table written ("w:"); TRUNCATE, DDL and
 * writes to tables without a primary key are table-level ("t:").  Values
 * are in their binary send form, the same on every node.
 */
#include "pg_paxos.h"

#include "access/htup_details.h"
#include "catalog/pg_index.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

static char *ValueHex(Datum value, Oid type);
static int	CompareStrings(const void *a, const void *b);

/*
 * ValueHex is a value's binary send form in hex: the same bytes on every
 * node whatever the session's settings (DateStyle, TimeZone), which text
 * output would not guarantee for keys.
 */
static char *
ValueHex(Datum value, Oid type)
{
	Oid			sendfn;
	bool		isvarlena;
	bytea	   *bytes;
	StringInfoData buf;
	int			i;

	getTypeBinaryOutputInfo(type, &sendfn, &isvarlena);
	bytes = OidSendFunctionCall(sendfn, value);
	initStringInfo(&buf);
	for (i = 0; i < VARSIZE(bytes) - VARHDRSZ; i++)
		appendStringInfo(&buf, "%02x", (unsigned char) VARDATA(bytes)[i]);
	return buf.data;
}

/*
 * PaxosAddRowKeys adds the row keys of one row image: one per unique index (primary
 * key included), written exclusively ("k:"), and the referenced key of each
 * foreign key, written shared ("s:"), so that a child insert and a
 * concurrent change of its parent conflict, but two children do not.  Columns are
 * named and ordered by attribute number on both sides, so a foreign key and
 * the key it references give the same string.  Keys with a NULL are no
 * keys (NULLs never collide).
 */
void
PaxosAddRowKeys(Relation rel, const char *relname, HeapTuple tuple,
				List **check, List **write)
{
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *indexes = RelationGetIndexList(rel);
	List	   *fkeys = RelationGetFKeyList(rel);
	ListCell   *lc;

	foreach(lc, indexes)
	{
		HeapTuple	itup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;
		StringInfoData key;
		int			cols[INDEX_MAX_KEYS];
		int			n;
		int			i;
		int			j;
		bool		usable = true;

		if (!HeapTupleIsValid(itup))
			continue;
		index = (Form_pg_index) GETSTRUCT(itup);
		n = index->indnkeyatts;
		for (i = 0; i < n; i++)
		{
			cols[i] = index->indkey.values[i];
			if (cols[i] == 0)
				usable = false;	/* expression index: no plain key */
		}
		usable = usable && index->indisunique;
		ReleaseSysCache(itup);
		if (!usable)
			continue;
		/* order columns by attribute number */
		for (i = 1; i < n; i++)
			for (j = i; j > 0 && cols[j - 1] > cols[j]; j--)
			{
				int			t = cols[j];

				cols[j] = cols[j - 1];
				cols[j - 1] = t;
			}
		initStringInfo(&key);
		appendStringInfo(&key, "k:%s(", relname);
		for (i = 0; i < n; i++)
			appendStringInfo(&key, "%s%s", i ? "," : "",
							 NameStr(TupleDescAttr(desc, cols[i] - 1)->attname));
		appendStringInfoString(&key, ")=");
		for (i = 0; i < n && usable; i++)
		{
			bool		isnull;
			Datum		v = heap_getattr(tuple, cols[i], desc, &isnull);

			if (isnull)
				usable = false;
			else
				appendStringInfo(&key, "%s%s", i ? "," : "",
								 ValueHex(v, TupleDescAttr(desc, cols[i] - 1)->atttypid));
		}
		if (usable)
		{
			/* exclusive: conflicts with writes of and references to the row */
			*check = lappend(*check, key.data);
			*check = lappend(*check, psprintf("s%s", key.data + 1));
			*write = lappend(*write, key.data);
		}
	}

	foreach(lc, fkeys)
	{
		ForeignKeyCacheInfo *fk = (ForeignKeyCacheInfo *) lfirst(lc);
		char	   *refname;
		StringInfoData key;
		int			order[INDEX_MAX_KEYS];
		int			i;
		int			j;
		bool		usable = true;

		if (fk->conrelid != RelationGetRelid(rel))
			continue;
		refname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(fk->confrelid)),
											 get_rel_name(fk->confrelid));
		for (i = 0; i < fk->nkeys; i++)
			order[i] = i;
		for (i = 1; i < fk->nkeys; i++)
			for (j = i; j > 0 && fk->confkey[order[j - 1]] > fk->confkey[order[j]]; j--)
			{
				int			t = order[j];

				order[j] = order[j - 1];
				order[j - 1] = t;
			}
		initStringInfo(&key);
		appendStringInfo(&key, "k:%s(", refname);
		for (i = 0; i < fk->nkeys; i++)
			appendStringInfo(&key, "%s%s", i ? "," : "",
							 get_attname(fk->confrelid, fk->confkey[order[i]], false));
		appendStringInfoString(&key, ")=");
		for (i = 0; i < fk->nkeys && usable; i++)
		{
			bool		isnull;
			AttrNumber	att = fk->conkey[order[i]];
			Datum		v = heap_getattr(tuple, att, desc, &isnull);

			if (isnull)
				usable = false;
			else
				appendStringInfo(&key, "%s%s", i ? "," : "",
								 ValueHex(v, TupleDescAttr(desc, att - 1)->atttypid));
		}
		/*
		 * shared: conflicts with a concurrent change of the parent row, not
		 * with other children referencing it
		 */
		if (usable)
		{
			*check = lappend(*check, key.data);
			*write = lappend(*write, psprintf("s%s", key.data + 1));
		}
	}
}

/*
 * PaxosAddTableKeys adds the table-level keys: every write marks the table
 * written ("w:"), and conflicts with a concurrent table-level operation
 * ("t:": TRUNCATE, DDL, any write to a table without a primary key), which
 * in turn conflicts with any concurrent write to the table.
 */
void
PaxosAddTableKeys(const char *relname, bool table_level, List **check, List **write)
{
	char	   *w = psprintf("w:%s", relname);
	char	   *t = psprintf("t:%s", relname);

	*check = lappend(*check, t);
	*write = lappend(*write, w);
	if (table_level)
	{
		*check = lappend(*check, w);
		*write = lappend(*write, t);
	}
}

/* CompareStrings orders char pointers for qsort. */
static int
CompareStrings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * PaxosAppendKeysJson writes "name": a JSON array of the distinct keys
 * (sorted, so that a large transaction costs n log n, not n squared).
 */
void
PaxosAppendKeysJson(StringInfo buf, const char *name, List *list)
{
	ListCell   *kc;
	char	  **keys;
	int			nkeys = 0;
	int			i;
	bool		first = true;

	keys = palloc(sizeof(char *) * Max(1, list_length(list)));
	foreach(kc, list)
		keys[nkeys++] = (char *) lfirst(kc);
	qsort(keys, nkeys, sizeof(char *), CompareStrings);

	appendStringInfo(buf, ",\"%s\":[", name);
	for (i = 0; i < nkeys; i++)
	{
		if (i > 0 && strcmp(keys[i], keys[i - 1]) == 0)
			continue;
		if (!first)
			appendStringInfoChar(buf, ',');
		escape_json(buf, keys[i]);
		first = false;
	}
	appendStringInfoChar(buf, ']');
	pfree(keys);
}
