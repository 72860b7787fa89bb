/*
 * request_parse.c
 *    Turning client requests into rq_txn values, refusing anything that is
 *    not exactly what the API documents (docs/agent-api.md).
 *
 * Strictness is the point: a wrong type, a number outside int4 (balances
 * and account numbers are int columns), an unknown key or a duplicate key
 * is a 400 with a message, never a guess, so that nothing reaches the
 * database that the client did not mean.
 */
#include "request_parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static json_t *load_object(const char *body, size_t len, char *err,
						   size_t errlen);
static json_t *get_transaction(json_t *root, const char **allowed, char *err,
							   size_t errlen);
static int parse_read_set(json_t *set, rq_txn *txn, char *err, size_t errlen);
static int parse_write_set(json_t *set, rq_txn *txn, char *err, size_t errlen);
static int int4_from_json(json_t *v, int32_t *out);
static int int4_from_key(const char *key, int32_t *out);
static void add_read(rq_txn *txn, int32_t account);
static int add_write(rq_txn *txn, int32_t account, int32_t balance);

/* fail writes a message for the client and returns -1. */
static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0)
	{
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/*
 * load_object parses body as one JSON object.  Duplicate keys are refused:
 * with {"1": 5, "1": 7} a client could not know which write we performed.
 */
static json_t *
load_object(const char *body, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	if (body == NULL || len == 0)
	{
		fail(err, errlen, "empty body: a JSON object is expected");
		return NULL;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
	{
		fail(err, errlen, "malformed JSON at line %d, column %d: %s",
			 jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(root))
	{
		json_decref(root);
		fail(err, errlen, "the body must be a JSON object");
		return NULL;
	}
	return root;
}

/*
 * get_transaction returns the "transaction" object of root (borrowed), after
 * checking that root has no other key and the transaction only keys in
 * allowed (NULL-terminated).
 */
static json_t *
get_transaction(json_t *root, const char **allowed, char *err, size_t errlen)
{
	json_t *txn = json_object_get(root, "transaction");
	const char *key;
	json_t *val;

	if (txn == NULL || !json_is_object(txn))
	{
		fail(err, errlen, "\"transaction\" must be an object");
		return NULL;
	}
	json_object_foreach(root, key, val)
	{
		if (strcmp(key, "transaction") != 0)
		{
			fail(err, errlen, "unknown key \"%.40s\"", key);
			return NULL;
		}
	}
	json_object_foreach(txn, key, val)
	{
		int i, known = 0;

		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				known = 1;
		if (!known)
		{
			fail(err, errlen, "unknown key \"%.40s\" in \"transaction\"", key);
			return NULL;
		}
	}
	return txn;
}

/* int4_from_json accepts a JSON integer within int4. */
static int
int4_from_json(json_t *v, int32_t *out)
{
	json_int_t n;

	if (!json_is_integer(v))
		return -1;
	n = json_integer_value(v);
	if (n < INT32_MIN || n > INT32_MAX)
		return -1;
	*out = (int32_t) n;
	return 0;
}

/* int4_from_key accepts an object key written as a plain decimal int4
 * ("12", "-3"): no blanks, no sign '+', no leading zeros but "0". */
static int
int4_from_key(const char *key, int32_t *out)
{
	const char *digits = key[0] == '-' ? key + 1 : key;
	size_t i, n = strlen(digits);
	long long v;

	if (n == 0 || n > 10 || (digits[0] == '0' && n > 1))
		return -1;
	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char) digits[i]))
			return -1;
	v = strtoll(key, NULL, 10);
	if (v < INT32_MIN || v > INT32_MAX)
		return -1;
	*out = (int32_t) v;
	return 0;
}

/* add_read records a read once; the caller has checked the limit. */
static void
add_read(rq_txn *txn, int32_t account)
{
	int i;

	for (i = 0; i < txn->nreads; i++)
		if (txn->reads[i] == account)
			return;
	txn->reads[txn->nreads++] = account;
}

/* add_write records a write; a later write of an account replaces an
 * earlier one, as it would inside one SQL transaction. */
static int
add_write(rq_txn *txn, int32_t account, int32_t balance)
{
	int i;

	for (i = 0; i < txn->nwrites; i++)
		if (txn->writes[i].account == account)
		{
			txn->writes[i].balance = balance;
			return 0;
		}
	if (txn->nwrites >= RQ_MAX_SET)
		return -1;
	txn->writes[txn->nwrites].account = account;
	txn->writes[txn->nwrites].balance = balance;
	txn->nwrites++;
	return 0;
}

static int
parse_read_set(json_t *set, rq_txn *txn, char *err, size_t errlen)
{
	size_t i;
	json_t *v;

	if (set == NULL)
		return 0;
	if (!json_is_array(set))
		return fail(err, errlen, "\"read_set\" must be an array of integers");
	if (json_array_size(set) > RQ_MAX_SET)
		return fail(err, errlen, "\"read_set\" has more than %d accounts",
					RQ_MAX_SET);
	json_array_foreach(set, i, v)
	{
		int32_t account;

		if (int4_from_json(v, &account) != 0)
			return fail(err, errlen,
						"\"read_set\"[%zu] must be an integer between %d "
						"and %d",
						i, INT32_MIN, INT32_MAX);
		add_read(txn, account);
	}
	return 0;
}

static int
parse_write_set(json_t *set, rq_txn *txn, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	if (set == NULL)
		return 0;
	if (!json_is_object(set))
		return fail(err, errlen,
					"\"write_set\" must be an object {\"account\": balance}");
	if (json_object_size(set) > RQ_MAX_SET)
		return fail(err, errlen, "\"write_set\" has more than %d accounts",
					RQ_MAX_SET);
	json_object_foreach(set, key, v)
	{
		int32_t account, balance;

		if (int4_from_key(key, &account) != 0)
			return fail(err, errlen,
						"\"write_set\" key \"%.40s\" is not an account number "
						"(a decimal integer between %d and %d)",
						key, INT32_MIN, INT32_MAX);
		if (int4_from_json(v, &balance) != 0)
			return fail(err, errlen,
						"\"write_set\"[\"%s\"] must be an integer between %d "
						"and %d",
						key, INT32_MIN, INT32_MAX);
		if (add_write(txn, account, balance) != 0)
			return fail(err, errlen, "too many writes");
	}
	return 0;
}

/*
 * open_transaction starts parsing a middleware request (/read/, /commit/):
 * empties txn, parses body into *root (NULL if it is not a JSON object;
 * the caller json_decref()s it) and returns its "transaction" object, or
 * NULL with err set.
 */
static json_t *
open_transaction(const char *body, size_t len, rq_txn *txn, json_t **root,
				 char *err, size_t errlen)
{
	static const char *allowed[] = {"read_set", "write_set", "time_stamp",
									NULL};

	memset(txn, 0, sizeof(*txn));
	if ((*root = load_object(body, len, err, errlen)) == NULL)
		return NULL;
	return get_transaction(*root, allowed, err, errlen);
}

int
rq_parse_read(const char *body, size_t len, rq_txn *txn, char *err,
			  size_t errlen)
{
	json_t *root, *t, *ws;
	int rc = -1;

	if ((t = open_transaction(body, len, txn, &root, err, errlen)) == NULL)
		goto done;
	if (json_object_get(t, "read_set") == NULL)
	{
		fail(err, errlen, "\"read_set\" is missing");
		goto done;
	}
	if (parse_read_set(json_object_get(t, "read_set"), txn, err, errlen) != 0)
		goto done;
	/* a read is a read: writes go through /commit/ */
	ws = json_object_get(t, "write_set");
	if (ws != NULL && !(json_is_object(ws) && json_object_size(ws) == 0))
	{
		fail(err, errlen,
			 "\"write_set\" must be empty in /read/; send writes to /commit/");
		goto done;
	}
	rc = 0;
done:
	json_decref(root);
	return rc;
}

int
rq_parse_commit(const char *body, size_t len, rq_txn *txn, char *err,
				size_t errlen)
{
	json_t *root, *t, *ts;
	int rc = -1;

	if ((t = open_transaction(body, len, txn, &root, err, errlen)) == NULL)
		goto done;
	if (parse_read_set(json_object_get(t, "read_set"), txn, err, errlen) !=
			0 ||
		parse_write_set(json_object_get(t, "write_set"), txn, err, errlen) !=
			0)
		goto done;
	ts = json_object_get(t, "time_stamp");
	if (ts != NULL && !json_is_null(ts))
	{
		if (!json_is_integer(ts) || json_integer_value(ts) < 0)
		{
			fail(err, errlen,
				 "\"time_stamp\" must be a non-negative integer "
				 "(nanoseconds since the epoch)");
			goto done;
		}
		txn->has_time_stamp = 1;
		txn->time_stamp = json_integer_value(ts);
	}
	rc = 0;
done:
	json_decref(root);
	return rc;
}

/*
 * parse_number reads an optionally signed decimal int4 at text[*pos],
 * skipping blanks before it, and advances *pos.
 */
static int
parse_number(const char *text, size_t len, size_t *pos, int32_t *out,
			 char *err, size_t errlen)
{
	size_t p = *pos, start;
	long long v = 0;
	int neg = 0;

	while (p < len && (text[p] == ' ' || text[p] == '\t'))
		p++;
	start = p;
	if (p < len && (text[p] == '-' || text[p] == '+'))
		neg = text[p++] == '-';
	if (p >= len || !isdigit((unsigned char) text[p]))
		return fail(err, errlen, "position %zu: a number is expected",
					start + 1);
	while (p < len && isdigit((unsigned char) text[p]))
	{
		v = v * 10 + (text[p++] - '0');
		if (v > (long long) INT32_MAX + 1)
			return fail(err, errlen,
						"position %zu: number out of range (%d to %d)",
						start + 1, INT32_MIN, INT32_MAX);
	}
	if (neg)
		v = -v;
	if (v < INT32_MIN || v > INT32_MAX)
		return fail(err, errlen,
					"position %zu: number out of range (%d to %d)", start + 1,
					INT32_MIN, INT32_MAX);
	while (p < len && (text[p] == ' ' || text[p] == '\t'))
		p++;
	*out = (int32_t) v;
	*pos = p;
	return 0;
}

/* expect consumes character c at text[*pos] or says what is missing. */
static int
expect(const char *text, size_t len, size_t *pos, char c, const char *what,
	   char *err, size_t errlen)
{
	if (*pos >= len || text[*pos] != c)
		return fail(err, errlen, "position %zu: '%c' expected %s", *pos + 1, c,
					what);
	(*pos)++;
	return 0;
}

int
rq_parse_txn_text(const char *text, size_t len, rq_txn *txn, char *err,
				  size_t errlen)
{
	size_t pos = 0;
	int ops = 0;

	memset(txn, 0, sizeof(*txn));
	for (;;)
	{
		int32_t account, balance;
		char op;

		while (pos < len && (isspace((unsigned char) text[pos]) ||
							 text[pos] == ',' || text[pos] == ';'))
			pos++;
		if (pos >= len)
			break;
		op = text[pos];
		if (op != 'r' && op != 'R' && op != 'w' && op != 'W')
			return fail(err, errlen,
						"position %zu: unexpected '%c'; write operations "
						"like r(1) to read account 1 and w(2=30) to set "
						"account 2 to 30",
						pos + 1, isprint((unsigned char) op) ? op : '?');
		pos++;
		if (expect(text, len, &pos, '(', "after r or w", err, errlen) != 0 ||
			parse_number(text, len, &pos, &account, err, errlen) != 0)
			return -1;
		if (op == 'r' || op == 'R')
		{
			if (expect(text, len, &pos, ')', "to close r(account)", err,
					   errlen) != 0)
				return -1;
			if (txn->nreads >= RQ_MAX_SET)
				return fail(err, errlen, "more than %d reads", RQ_MAX_SET);
			add_read(txn, account);
		}
		else
		{
			if (expect(text, len, &pos, '=', "in w(account=balance)", err,
					   errlen) != 0 ||
				parse_number(text, len, &pos, &balance, err, errlen) != 0 ||
				expect(text, len, &pos, ')', "to close w(account=balance)",
					   err, errlen) != 0)
				return -1;
			if (add_write(txn, account, balance) != 0)
				return fail(err, errlen, "more than %d writes", RQ_MAX_SET);
		}
		ops++;
	}
	if (ops == 0)
		return fail(err, errlen,
					"empty transaction: write operations like r(1)w(2=30)");
	return 0;
}

int
rq_parse_txn_text_request(const char *body, size_t len, rq_txn *txn, char *err,
						  size_t errlen)
{
	json_t *root, *text;
	const char *key;
	json_t *v;
	int rc = -1;

	memset(txn, 0, sizeof(*txn));
	if ((root = load_object(body, len, err, errlen)) == NULL)
		return -1;
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "text") != 0)
		{
			fail(err, errlen, "unknown key \"%.40s\"", key);
			goto done;
		}
	}
	text = json_object_get(root, "text");
	if (!json_is_string(text))
	{
		fail(err, errlen, "\"text\" must be a string like \"r(1)w(2=30)\"");
		goto done;
	}
	rc = rq_parse_txn_text(json_string_value(text), json_string_length(text),
						   txn, err, errlen);
done:
	json_decref(root);
	return rc;
}

int
rq_parse_switchover(const char *body, size_t len, int *target, int max_node,
					char *err, size_t errlen)
{
	json_t *root, *t;
	const char *key;
	json_t *v;
	int rc = -1;

	if ((root = load_object(body, len, err, errlen)) == NULL)
		return -1;
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "target_node_id") != 0)
		{
			fail(err, errlen, "unknown key \"%.40s\"", key);
			goto done;
		}
	}
	t = json_object_get(root, "target_node_id");
	if (!json_is_integer(t) || json_integer_value(t) < 1 ||
		json_integer_value(t) > max_node)
	{
		fail(err, errlen, "\"target_node_id\" must be a node id (1 to %d)",
			 max_node);
		goto done;
	}
	*target = (int) json_integer_value(t);
	rc = 0;
done:
	json_decref(root);
	return rc;
}
