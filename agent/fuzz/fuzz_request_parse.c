/*
 * fuzz_request_parse.c
 *    libFuzzer harness of every client-facing parser (request_parse.c).
 *
 * The first byte picks the parser, the rest is the request.  Besides not
 * crashing (ASan/UBSan watch), each parser must keep its contract: on
 * success the transaction is within its limits and a time_stamp is never
 * negative; on failure an error message was written.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request_parse.h"

static rq_txn txn;

static void
check(int rc, const char *err)
{
	if (rc == 0)
	{
		if (txn.nreads < 0 || txn.nreads > RQ_MAX_SET || txn.nwrites < 0 ||
			txn.nwrites > RQ_MAX_SET ||
			(txn.has_time_stamp && txn.time_stamp < 0))
			abort();
	}
	else if (rc != -1 || err[0] == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	const char *body;
	int target = 0, rc;

	if (size < 1)
		return 0;
	body = (const char *) data + 1;
	size--;
	err[0] = '\0';
	switch (data[0] % 5)
	{
		case 0:
			rc = rq_parse_read(body, size, &txn, err, sizeof(err));
			break;
		case 1:
			rc = rq_parse_commit(body, size, &txn, err, sizeof(err));
			break;
		case 2:
			rc = rq_parse_txn_text(body, size, &txn, err, sizeof(err));
			break;
		case 3:
			rc = rq_parse_txn_text_request(body, size, &txn, err, sizeof(err));
			break;
		default:
			rc = rq_parse_switchover(body, size, &target, 9, err, sizeof(err));
			if (rc == 0 && (target < 1 || target > 9))
				abort();
			return 0;
	}
	check(rc, err);
	return 0;
}
