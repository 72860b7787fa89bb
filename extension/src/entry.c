/*
 * entry.c
 *    The fields of a transaction entry (capture.c writes them), read once:
 *    certification and the applier need its id, snapshot round, origin,
 *    keys and row changes for every entry of every round, on every node,
 *    and parsing the JSON once in C costs far less than asking SQL for
 *    each field.
 */
#include "pg_paxos.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

static JsonbValue *FindField(JsonbContainer *object, const char *name);
static char *StringField(JsonbContainer *object, const char *name);
static Datum KeyArray(JsonbContainer *object, const char *name);
static Jsonb *ChangeImage(JsonbContainer *change, const char *name);

/* FindField looks up a field of an entry or of one of its changes; NULL if absent. */
static JsonbValue *
FindField(JsonbContainer *object, const char *name)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) name;
	k.val.string.len = strlen(name);
	return findJsonbValueFromContainer(object, JB_FOBJECT, &k);
}

/* StringField is a field's text (strings and numbers), or NULL. */
static char *
StringField(JsonbContainer *object, const char *name)
{
	JsonbValue *v = FindField(object, name);

	if (v == NULL)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	return NULL;
}

/* KeyArray is an array field of strings as a text[] datum. */
static Datum
KeyArray(JsonbContainer *object, const char *name)
{
	JsonbValue *v = FindField(object, name);
	Datum	   *elems;
	int			n = 0;
	int			cap = 8;

	elems = palloc(sizeof(Datum) * cap);
	if (v != NULL && v->type == jbvBinary)
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	e;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM || e.type != jbvString)
				continue;
			if (n == cap)
			{
				cap *= 2;
				elems = repalloc(elems, sizeof(Datum) * cap);
			}
			elems[n++] = PointerGetDatum(cstring_to_text_with_len(e.val.string.val,
																  e.val.string.len));
		}
	}
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * PaxosParseEntry reads the fields of one transaction entry (an element of
 * a transaction round's batch).  Errors on malformed JSON.
 */
void
PaxosParseEntry(const char *text, PaxosEntry *entry)
{
	const char *changes = strstr(text, ",\"changes\":");
	Jsonb	   *jb;
	char	   *x;
	char	   *xid;
	char	   *incarnation;
	char	   *until;

	/*
	 * Only the fields before the row images are read: capture.c writes
	 * "changes" last, and ,"changes": cannot occur inside a JSON string
	 * (its quotes would be escaped), so the header alone is parsed.
	 */
	if (changes != NULL)
	{
		char	   *header = palloc(changes - text + 2);

		memcpy(header, text, changes - text);
		header[changes - text] = '}';
		header[changes - text + 1] = '\0';
		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(header)));
	}
	else
		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));

	if (!JB_ROOT_IS_OBJECT(jb))
		elog(ERROR, "pg_paxos: a transaction entry is not a JSON object");
	memset(entry, 0, sizeof(*entry));
	entry->text = text;
	entry->id = StringField(&jb->root, "id");
	entry->origin = StringField(&jb->root, "origin");
	x = StringField(&jb->root, "x");
	xid = StringField(&jb->root, "xid");
	incarnation = StringField(&jb->root, "incarnation");
	until = StringField(&jb->root, "until");
	entry->x = x ? strtoi64(x, NULL, 10) : -1;
	entry->until = until ? strtoi64(until, NULL, 10) : -1;
	entry->xid = xid ? (TransactionId) strtoul(xid, NULL, 10) : InvalidTransactionId;
	entry->incarnation = incarnation ? strtou64(incarnation, NULL, 10) : 0;
	entry->check = KeyArray(&jb->root, "check");
	entry->write = KeyArray(&jb->root, "write");
}

/*
 * ChangeImage is a row image of one change as jsonb, a copy of its part of
 * the entry (no parsing again); NULL if absent or JSON null.
 */
static Jsonb *
ChangeImage(JsonbContainer *change, const char *name)
{
	JsonbValue *v = FindField(change, name);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	return JsonbValueToJsonb(v);
}

/* PaxosImageText is a row image as JSON text (as jsonb prints it). */
char *
PaxosImageText(Jsonb *image)
{
	return JsonbToCString(NULL, &image->root, VARSIZE(image));
}

/*
 * PaxosEntryChanges lists the row changes of a transaction entry
 * (PaxosChange), in order.  Errors on malformed JSON or a change without
 * its kind or table.
 */
List *
PaxosEntryChanges(const char *text)
{
	Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	JsonbValue *changes;
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	List	   *result = NIL;

	if (!JB_ROOT_IS_OBJECT(jb))
		elog(ERROR, "pg_paxos: a transaction entry is not a JSON object");
	changes = FindField(&jb->root, "changes");
	if (changes == NULL || changes->type != jbvBinary ||
		!JsonContainerIsArray(changes->val.binary.data))
		elog(ERROR, "pg_paxos: a transaction entry has no list of changes");
	it = JsonbIteratorInit(changes->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		PaxosChange *c;
		char	   *op;

		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvBinary || !JsonContainerIsObject(e.val.binary.data))
			elog(ERROR, "pg_paxos: a change of a transaction entry is not a JSON object");
		c = palloc(sizeof(PaxosChange));
		op = StringField(e.val.binary.data, "op");
		c->rel = StringField(e.val.binary.data, "rel");
		if (op == NULL || op[0] == '\0' || c->rel == NULL)
			elog(ERROR, "pg_paxos: a change of a transaction entry has no kind or table");
		c->op = op[0];
		c->old_row = ChangeImage(e.val.binary.data, "old");
		c->new_row = ChangeImage(e.val.binary.data, "new");
		c->sql = StringField(e.val.binary.data, "sql");
		result = lappend(result, c);
	}
	return result;
}

/*
 * PaxosCancelValue is the log value that cancels a transaction (submit.c):
 * its id, and the last round its entry could commit in, after which the
 * cancellation need not be kept.
 */
char *
PaxosCancelValue(const char *txn_id, int64 until)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"txn\":");
	escape_json(&buf, txn_id);
	appendStringInfo(&buf, ",\"until\":" INT64_FORMAT "}", until);
	return buf.data;
}

/*
 * PaxosParseCancel reads a cancellation's value; one that is a bare
 * transaction id (no lifetime) cancels it for good (until = -1).
 */
void
PaxosParseCancel(const char *value, char **txn_id, int64 *until)
{
	Jsonb	   *jb;
	char	   *text;

	*until = -1;
	if (value[0] != '{')
	{
		*txn_id = pstrdup(value);
		return;
	}
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(value)));
	if (!JB_ROOT_IS_OBJECT(jb) || (text = StringField(&jb->root, "txn")) == NULL)
		elog(ERROR, "pg_paxos: a cancellation names no transaction: %s", value);
	*txn_id = text;
	text = StringField(&jb->root, "until");
	if (text != NULL)
		*until = strtoi64(text, NULL, 10);
}
