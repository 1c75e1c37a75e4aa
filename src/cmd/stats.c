/*
 * stats.c - `herald stats ID`: what happened to an issue.
 *
 * The JSON object is a contract for scripts: `issue` {id, subject, status}
 * and `deliveries` with every status always present.  Later features add
 * keys beside these and never rename them.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "herald/cmd.h"
#include "herald/issue.h"
#include "herald/ledger.h"

const char cmd_stats_usage[] =
	"usage: herald stats ID [--json]\n"
	"\n"
	"Count the issue's deliveries by status: pending, sending, sent, deferred,\n"
	"bounced, failed (and skipped: people who left after the send started).\n";

int
cmd_stats(int argc, char **argv, struct cmd_env *env)
{
	struct issue is;
	struct ledger_counts c;
	const char *ids = NULL;
	long long id;
	int i, json = 0, rc;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!ids)
			ids = argv[i];
		else
			return cmd_usage_error(cmd_stats_usage, "unexpected '%s'", argv[i]);
	}
	if (!ids)
		return cmd_usage_error(cmd_stats_usage, "stats needs an issue ID");
	if (cmd_parse_id(ids, &id, &env->err) < 0 || issue_get(env->db, id, &is, &env->err) < 0)
		return -1;
	if (ledger_counts(env->db, id, &c, &env->err) < 0) {
		issue_clear(&is);
		return -1;
	}
	if (json) {
		rc = cmd_print_json(json_pack(
		        "{s:{s:I, s:s, s:s}, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
		        "issue", "id", (json_int_t)is.id, "subject", is.subject, "status", is.status,
		        "recipients", (json_int_t)c.total,
		        "deliveries", "pending", (json_int_t)c.pending, "sending", (json_int_t)c.sending,
		        "sent", (json_int_t)c.sent, "deferred", (json_int_t)c.deferred,
		        "bounced", (json_int_t)c.bounced, "failed", (json_int_t)c.failed,
		        "skipped", (json_int_t)c.skipped));
		issue_clear(&is);
		return rc;
	}
	printf("issue %lld: %s [%s]\n", is.id, is.subject, is.status);
	printf("  recipients %8lld\n", c.total);
	printf("  sent       %8lld\n", c.sent);
	printf("  deferred   %8lld\n", c.deferred);
	printf("  bounced    %8lld\n", c.bounced);
	printf("  failed     %8lld\n", c.failed);
	printf("  skipped    %8lld\n", c.skipped);
	printf("  pending    %8lld\n", c.pending);
	printf("  sending    %8lld\n", c.sending);
	issue_clear(&is);
	return 0;
}
