/*
 * issue.c - `herald issue new|ls|show|rm|preview|test|schedule|cancel|
 * pause|resume|failures|retry|audience`: parses, calls issue.c, prints.
 */
#include <csv.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/ledger.h"
#include "herald/list.h"
#include "herald/mailsend.h"
#include "herald/message.h"
#include "herald/smtp.h"
#include "herald/subjecttest.h"
#include "herald/subscriber.h"
#include "herald/token.h"

const char cmd_issue_usage[] =
	"usage: herald issue new FILE.md [--list NAME]... [--subject TEXT]\n"
	"       herald issue ls [--json]\n"
	"       herald issue show ID [--json]\n"
	"       herald issue audience ID [--json|--csv]\n"
	"       herald issue rm ID [--force]\n"
	"       herald issue preview ID [--format html|text|eml] [--subscriber ADDR]\n"
	"       herald issue test ID --to ADDR\n"
	"       herald issue schedule ID --at TIME\n"
	"       herald issue pause ID\n"
	"       herald issue resume ID\n"
	"       herald issue cancel ID\n"
	"       herald issue failures ID [--json]\n"
	"       herald issue retry ID\n"
	"\n"
	"new renders FILE.md (Markdown with front matter: subject, preheader, from,\n"
	"reply_to, list or lists, segment or where, allow_html, tracking,\n"
	"line_breaks, allow_missing, and for a subject-line test subject_variants,\n"
	"test_share, test_wait) once and prints the new issue's id; unknown\n"
	"merge fields are errors here, not blanks in the mail, and fields the\n"
	"readers lack are counted (schedule and send refuse one that none of them\n"
	"has).  --list, repeated, replaces the front matter's lists.  The audience\n"
	"is everyone confirmed on any of the lists, once, narrowed by the segment\n"
	"or where, as it is when the send starts; show and schedule count it now,\n"
	"audience lists them with the lists each is reached through.  preview\n"
	"prints one subscriber's copy (default: a sample with no name) to stdout.\n"
	"test sends one real copy, marked [TEST], that is not recorded as a\n"
	"delivery.  TIME is ISO 8601, e.g. 2026-12-01T09:00 (local) or\n"
	"2026-12-01T08:00Z.  pause and cancel reach a running send within a\n"
	"second; resume lets the next run or send go on.  failures lists failed\n"
	"and bounced recipients with the relay's words; retry puts the failed\n"
	"ones back for the next run.\n";

static int
issue_new(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "list", required_argument, NULL, 'l' },
		{ "subject", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *lists[AUDIENCE_LISTS_MAX];
	struct issue_overrides ov = { lists, 0, NULL };
	struct issue_source src;
	long long id;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "l:s:", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (ov.n_lists == AUDIENCE_LISTS_MAX)
				return cmd_usage_error(cmd_issue_usage, "more than %d --list",
				                       AUDIENCE_LISTS_MAX);
			lists[ov.n_lists++] = optarg;
			break;
		case 's': ov.subject = optarg; break;
		default: return cmd_usage(cmd_issue_usage, 1);
		}
	}
	if (optind + 1 != argc)
		return cmd_usage_error(cmd_issue_usage, "issue new needs exactly one FILE.md");
	rc = issue_source_read(argv[optind], &src, &env->err);
	if (rc == 0)
		rc = issue_create(env->db, &env->cfg, &src, &ov, &id, cmd_warn, argv[optind],
		                  &env->err);
	issue_source_free(&src);
	if (rc < 0)
		return -1;
	printf("%lld\n", id);
	return 0;
}

/* 4812 -> "4,812" */
static const char *
thousands(long long n, char *out, size_t size)
{
	char digits[32];
	size_t len, i, k = 0;

	len = (size_t)snprintf(digits, sizeof digits, "%lld", n < 0 ? -n : n);
	if (n < 0 && k + 1 < size)
		out[k++] = '-';
	for (i = 0; i < len && k + 1 < size; i++) {
		if (i && (len - i) % 3 == 0 && k + 2 < size)
			out[k++] = ',';
		out[k++] = digits[i];
	}
	out[k] = '\0';
	return out;
}

/* The issue's lists as written ("newsletter, research"). */
static const char *
lists_of(const struct issue *is)
{
	return is->list_names && is->list_names[0] ? is->list_names : is->list_name;
}

/* "newsletter, research; segment practice-leads" */
static void
print_audience_def(FILE *fp, const struct issue *is)
{
	fputs(lists_of(is), fp);
	if (is->segment)
		fprintf(fp, "; segment %s", is->segment);
	else if (is->where)
		fprintf(fp, "; where %s", is->where);
}

/* "would go to 4,812 subscribers of newsletter, research; segment x" */
static int
print_would_go(FILE *fp, struct cmd_env *env, const struct issue *is)
{
	char num[40];
	long long n;

	if (issue_audience_count(env->db, is, &n, &env->err) < 0)
		return -1;
	fprintf(fp, "would go to %s subscriber%s of ", thousands(n, num, sizeof num),
	        n == 1 ? "" : "s");
	print_audience_def(fp, is);
	fputc('\n', fp);
	return 0;
}

static json_t *
lists_json(const struct issue *is)
{
	const char *p = lists_of(is), *e;
	json_t *a = json_array();

	/* list names hold no ", " (list.h) */
	while (a && *p) {
		e = strstr(p, ", ");
		if (json_array_append_new(a, json_stringn(p, e ? (size_t)(e - p) : strlen(p))) < 0) {
			json_decref(a);
			return NULL;
		}
		p = e ? e + 2 : p + strlen(p);
	}
	return a;
}

static json_t *
issue_json(const struct issue *is, const struct ledger_counts *c)
{
	json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}",
	                      "id", (json_int_t)is->id, "subject", is->subject,
	                      "status", is->status, "list", is->list_name,
	                      "from", is->from_addr, "from_name", is->from_name,
	                      "preheader", is->preheader,
	                      "send_at", (json_int_t)is->send_at,
	                      "created_at", (json_int_t)is->created_at,
	                      "started_at", (json_int_t)is->started_at,
	                      "finished_at", (json_int_t)is->finished_at);

	if (j) {
		json_object_set_new(j, "lists", lists_json(is));
		json_object_set_new(j, "segment", is->segment ? json_string(is->segment) : json_null());
		json_object_set_new(j, "where", is->where ? json_string(is->where) : json_null());
	}
	if (j && c)
		json_object_set_new(j, "recipients", json_integer(c->total));
	if (j && is->links)
		json_object_set_new(j, "links", json_loads(is->links, 0, NULL));
	return j;
}

struct ls_ctx {
	struct cmd_json_rows json;  /* --json: rows as they come (cmd.h) */
	int n;
};

static int
print_issue(void *ctx, const struct issue *is)
{
	struct ls_ctx *c = ctx;
	char t[32];

	if (c->json.on)
		return cmd_json_rows_add(&c->json, issue_json(is, NULL));
	if (c->n++ == 0)
		printf("%-5s %-10s %-14s %-16s %s\n", "ID", "STATUS", "LIST", "WHEN", "SUBJECT");
	printf("%-5lld %-10s %-14s %-16s %s\n", is->id, is->status, lists_of(is),
	       cmd_time(is->finished_at ? is->finished_at : is->started_at ? is->started_at :
	                is->send_at ? is->send_at : is->created_at, t, sizeof t),
	       is->subject);
	return 0;
}

static int
issue_ls(int argc, char **argv, struct cmd_env *env)
{
	struct ls_ctx c = { { argc == 2, 0, &env->err }, 0 };

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return cmd_usage_error(cmd_issue_usage, "issue ls takes only --json");
	if (issue_each(env->db, print_issue, &c, &env->err) < 0)
		return -1;
	if (c.json.on)
		return cmd_json_rows_end(&c.json);
	if (!c.n && !env->quiet)
		printf("no issues yet; create one with 'herald issue new FILE.md'\n");
	return 0;
}

/* Parse "ID [--json|--force]" forms. */
static int
id_and_flag(int argc, char **argv, const char *flag, long long *id, int *has_flag,
            struct cmd_env *env)
{
	const char *ids = NULL;
	int i;

	*has_flag = 0;
	for (i = 1; i < argc; i++) {
		if (flag && !strcmp(argv[i], flag))
			*has_flag = 1;
		else if (!ids)
			ids = argv[i];
		else
			return cmd_usage_error(cmd_issue_usage, "unexpected '%s'", argv[i]);
	}
	if (!ids)
		return cmd_usage_error(cmd_issue_usage, "missing issue ID");
	if (cmd_parse_id(ids, id, &env->err) < 0)
		return -1;
	return 0;
}

/* The subject test's lines of `issue show`: the variants, then where the
 * test stands. */
static void
print_subject_test(const struct subjecttest *t)
{
	char when[32];
	size_t i;

	for (i = 0; i < t->n; i++)
		printf("%-10s %zu: %s%s\n", i ? "" : "variants", i + 1, t->v[i].subject,
		       t->winner == (int)i + 1 ? "  (won)" : "");
	printf("test       %d%% of the audience, the winner %ld min after they were sent: ",
	       t->share, t->wait / 60);
	if (t->winner)
		printf("decided %s: %s\n", cmd_time(t->decided_at, when, sizeof when), t->why);
	else if (t->done_at)
		printf("the winner is picked at %s\n", cmd_time(t->done_at + t->wait, when,
		                                                  sizeof when));
	else if (t->holdout || t->v[0].recipients)
		printf("the test groups are being sent\n");
	else
		printf("not started\n");
}

static int
issue_show(int argc, char **argv, struct cmd_env *env)
{
	struct issue is;
	struct ledger_counts c;
	struct subjecttest test;
	long long id;
	char t[32];
	int json, rc;

	memset(&test, 0, sizeof test);
	if ((rc = id_and_flag(argc, argv, "--json", &id, &json, env)) != 0)
		return rc;
	if (issue_get(env->db, id, &is, &env->err) < 0)
		return -1;
	if (ledger_counts(env->db, id, &c, &env->err) < 0 ||
	    subjecttest_load(env->db, id, &test, &env->err) < 0 ||
	    (test.n && subjecttest_figures(env->db, &test, &env->err) < 0)) {
		subjecttest_clear(&test);
		issue_clear(&is);
		return -1;
	}
	if (json) {
		json_t *j = issue_json(&is, &c);
		long long n;

		if (j && test.n)
			json_object_set_new(j, "subject_test", subjecttest_json(&test));
		subjecttest_clear(&test);

		/* the audience now, while it is still to be taken */
		if (j && !is.started_at) {
			if (issue_audience_count(env->db, &is, &n, &env->err) < 0) {
				json_decref(j);
				issue_clear(&is);
				return -1;
			}
			json_object_set_new(j, "audience", json_integer(n));
		}
		rc = cmd_print_json(j);
		issue_clear(&is);
		return rc;
	}
	printf("issue      %lld (%s)\n", is.id, is.status);
	printf("subject    %s\n", is.subject);
	if (test.n)
		print_subject_test(&test);
	subjecttest_clear(&test);
	printf("preheader  %s\n", is.preheader[0] ? is.preheader : "-");
	printf("%-10s %s\n", is.n_lists > 1 ? "lists" : "list", lists_of(&is));
	printf("audience   ");
	if (is.started_at) {
		/* the snapshot is what it goes to: "recipients" below */
		print_audience_def(stdout, &is);
		printf(" (as it was when the send started)\n");
	} else if (print_would_go(stdout, env, &is) < 0) {
		fputc('\n', stdout);
		issue_clear(&is);
		return -1;
	}
	printf("from       %s <%s>\n", is.from_name, is.from_addr);
	printf("reply-to   %s\n", is.reply_to[0] ? is.reply_to : "-");
	printf("source     %s\n", is.source_path);
	printf("created    %s\n", cmd_time(is.created_at, t, sizeof t));
	printf("scheduled  %s\n", cmd_time(is.send_at, t, sizeof t));
	printf("started    %s\n", cmd_time(is.started_at, t, sizeof t));
	printf("finished   %s\n", cmd_time(is.finished_at, t, sizeof t));
	printf("recipients %lld\n", c.total);
	printf("links      %s\n", is.links);
	issue_clear(&is);
	return 0;
}

static int
issue_rm(int argc, char **argv, struct cmd_env *env)
{
	long long id;
	int force, rc;

	if ((rc = id_and_flag(argc, argv, "--force", &id, &force, env)) != 0)
		return rc;
	if (issue_remove(env->db, id, force, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("removed issue %lld\n", id);
	return 0;
}

static int
issue_cancel_cmd(int argc, char **argv, struct cmd_env *env)
{
	long long id;
	int unused, rc;

	if ((rc = id_and_flag(argc, argv, NULL, &id, &unused, env)) != 0)
		return rc;
	if (issue_cancel(env->db, id, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("cancelled issue %lld\n", id);
	return 0;
}

static int
issue_schedule_cmd(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "at", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char *at = NULL;
	struct issue is;
	long long id, t;
	char buf[32], what[32];
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "a:", opts, NULL)) != -1) {
		if (ch != 'a')
			return cmd_usage(cmd_issue_usage, 1);
		at = optarg;
	}
	if (optind + 1 != argc || !at)
		return cmd_usage_error(cmd_issue_usage, "issue schedule needs ID and --at TIME");
	if (cmd_parse_id(argv[optind], &id, &env->err) < 0 ||
	    issue_parse_time(at, &t, &env->err) < 0)
		return -1;
	snprintf(what, sizeof what, "issue %lld", id);
	if (issue_schedule(env->db, id, t, env->quiet ? NULL : cmd_warn, what, &env->err) < 0)
		return -1;
	if (env->quiet)
		return 0;
	printf("issue %lld scheduled for %s%s\n", id, cmd_time(t, buf, sizeof buf),
	       t <= db_now() ? " (due now: the next 'herald run' sends it)" : "");
	if (issue_get(env->db, id, &is, &env->err) < 0)
		return -1;
	/* counted now; the send takes the audience again when it starts */
	rc = is.started_at ? 0 : print_would_go(stdout, env, &is);
	issue_clear(&is);
	return rc;
}

static int
issue_pause_cmd(int argc, char **argv, struct cmd_env *env)
{
	long long id;
	int unused, rc;

	if ((rc = id_and_flag(argc, argv, NULL, &id, &unused, env)) != 0)
		return rc;
	if (issue_pause(env->db, id, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("paused issue %lld\n", id);
	return 0;
}

static int
issue_resume_cmd(int argc, char **argv, struct cmd_env *env)
{
	char status[16];
	long long id;
	int unused, rc;

	if ((rc = id_and_flag(argc, argv, NULL, &id, &unused, env)) != 0)
		return rc;
	if (issue_resume(env->db, id, status, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("resumed issue %lld: %s; the next 'herald run' goes on with it\n", id,
		       status);
	return 0;
}

static int
print_failure(void *ctx, const struct ledger_delivery *f)
{
	struct cmd_json_rows *json = ctx;
	char t[32];

	if (json->on)
		return cmd_json_rows_add(json, json_pack("{s:s, s:s, s:i, s:i, s:s, s:I}",
		        "email", f->email, "status", f->status, "attempts", f->attempts,
		        "smtp_code", f->smtp_code, "smtp_reply", f->smtp_reply,
		        "updated_at", (json_int_t)f->updated_at));
	cmd_print_cell(f->email, 40);
	printf("%-8s %2d  %s  %s\n", f->status, f->attempts, cmd_time(f->updated_at, t, sizeof t),
	       f->smtp_reply);
	return 0;
}

static int
issue_failures_cmd(int argc, char **argv, struct cmd_env *env)
{
	struct cmd_json_rows json = { 0, 0, &env->err };
	struct issue is;
	long long id;
	int rc;

	if ((rc = id_and_flag(argc, argv, "--json", &id, &json.on, env)) != 0)
		return rc;
	if (issue_get(env->db, id, &is, &env->err) < 0)
		return -1;
	issue_clear(&is);
	if (ledger_each_failure(env->db, id, print_failure, &json, &env->err) < 0)
		return -1;
	return cmd_json_rows_end(&json);
}

static int
issue_retry_cmd(int argc, char **argv, struct cmd_env *env)
{
	long long id, n;
	int unused, rc;

	if ((rc = id_and_flag(argc, argv, NULL, &id, &unused, env)) != 0)
		return rc;
	if (issue_retry_failed(env->db, id, &n, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("issue %lld: %lld failed deliver%s back to pending; the next 'herald run' "
		       "sends them\n", id, n, n == 1 ? "y" : "ies");
	return 0;
}

struct audience_out {
	enum { OUT_TEXT, OUT_JSON, OUT_CSV } format;
	struct cmd_json_rows json;  /* OUT_JSON: rows as they come (cmd.h) */
	long long    n;
	struct herr *err;
};

static void
csv_cell(const char *s, int last)
{
	csv_fwrite(stdout, s, strlen(s));
	fputs(last ? "\r\n" : ",", stdout);
}

static int
print_member(void *ctx, const struct audience_row *r)
{
	struct audience_out *o = ctx;
	json_t *lists, *row;
	const char *p, *e;

	o->n++;
	switch (o->format) {
	case OUT_JSON:
		if (!(lists = json_array()))
			return herr_set(o->err, EX_OSERR, NULL, "out of memory");
		for (p = r->lists; *p; p = *e ? e + 1 : e) {
			e = p + strcspn(p, ",");
			if (json_array_append_new(lists, json_stringn(p, (size_t)(e - p))) < 0) {
				json_decref(lists);
				return herr_set(o->err, EX_OSERR, NULL, "out of memory");
			}
		}
		/* "o" takes lists, also when json_pack fails */
		row = json_pack("{s:I, s:s, s:s, s:o}", "id", (json_int_t)r->id, "email", r->email,
		                "name", r->name, "lists", lists);
		return cmd_json_rows_add(&o->json, row);
	case OUT_CSV:
		csv_cell(r->email, 0);
		csv_cell(r->name, 0);
		csv_cell(r->lists, 1);
		break;
	default:
		if (o->n == 1) {
			cmd_print_cell("EMAIL", 40);
			cmd_print_cell("NAME", 24);
			printf("LISTS\n");
		}
		cmd_print_cell(r->email, 40);
		cmd_print_cell(r->name[0] ? r->name : "-", 24);
		printf("%s\n", r->lists);
	}
	return ferror(stdout) ? -1 : 0;
}

static int
issue_audience_cmd(int argc, char **argv, struct cmd_env *env)
{
	struct audience_out o = { OUT_TEXT, { 0, 0, &env->err }, 0, &env->err };
	const char *ids = NULL;
	struct issue is;
	long long id;
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") && o.format == OUT_TEXT)
			o.format = OUT_JSON;
		else if (!strcmp(argv[i], "--csv") && o.format == OUT_TEXT)
			o.format = OUT_CSV;
		else if (argv[i][0] == '-' || ids)
			return cmd_usage_error(cmd_issue_usage, "unexpected '%s'", argv[i]);
		else
			ids = argv[i];
	}
	if (!ids)
		return cmd_usage_error(cmd_issue_usage, "missing issue ID");
	if (cmd_parse_id(ids, &id, &env->err) < 0 || issue_get(env->db, id, &is, &env->err) < 0)
		return -1;
	o.json.on = o.format == OUT_JSON;
	if (o.format == OUT_CSV)
		printf("email,name,lists\r\n");
	rc = issue_audience_each(env->db, &is, print_member, &o, &env->err);
	issue_clear(&is);
	if (rc < 0) {
		if (!env->err.code)
			herr_set(&env->err, EX_IOERR, NULL, "write error: %s", strerror(errno));
		return -1;
	}
	if (o.json.on)
		return cmd_json_rows_end(&o.json);
	if (fflush(stdout) != 0)
		return herr_set(&env->err, EX_IOERR, NULL, "write error: %s", strerror(errno));
	if (!o.n && o.format == OUT_TEXT && !env->quiet)
		fprintf(stderr, "nobody: the audience of issue %lld is empty now\n", id);
	return 0;
}

/* Shared by preview and test: the issue, its list, the key, a context and
 * the recipient (a subscriber, or a stand-in). */
struct prepared {
	struct issue is;
	struct list l;
	struct token_key key;
	struct message_ctx m;
	struct subscriber sub;
	struct message_recipient r;
	struct dkim_signer *dkim;
	int have_ctx;
};

static int
prepare(struct cmd_env *env, long long id, const char *addr, int must_exist,
        struct prepared *p)
{
	memset(p, 0, sizeof *p);
	if (issue_get(env->db, id, &p->is, &env->err) < 0 ||
	    list_get_by_id(env->db, p->is.list_id, &p->l, &env->err) < 0 ||
	    token_key_load(env->cfg.secret_file, &p->key, &env->err) < 0)
		return -1;
	if (message_ctx_init(&p->m, &env->cfg, &p->key, &p->is, &p->l, &env->err) < 0)
		return -1;
	p->have_ctx = 1;
	p->r.untracked = 1; /* previews and tests are not deliveries */
	if (addr) {
		if (subscriber_get(env->db, addr, &p->sub, &env->err) == 0) {
			p->r.subscriber_id = p->sub.id;
			p->r.email = p->sub.email;
			p->r.name = p->sub.name;
			p->r.attributes = p->sub.attributes;
			return 0;
		}
		if (must_exist || env->err.code != EX_NOINPUT)
			return -1;
		herr_clear(&env->err);
		p->r.email = addr; /* a test recipient who is not a subscriber */
	} else
		p->r.email = "subscriber@example.org";
	p->r.name = "";
	p->r.attributes = "{}";
	return 0;
}

static void
prepared_free(struct prepared *p)
{
	if (p->have_ctx)
		message_ctx_free(&p->m);
	dkim_signer_free(p->dkim);
	subscriber_clear(&p->sub);
	issue_clear(&p->is);
	explicit_bzero(&p->key, sizeof p->key);
}

static int
issue_preview(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "subscriber", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *format = "html", *addr = NULL;
	struct buf subject = BUF_INIT(MESSAGE_MAX), html = BUF_INIT(MESSAGE_MAX),
	           text = BUF_INIT(MESSAGE_MAX), eml = BUF_INIT(MESSAGE_MAX);
	struct message_out mo;
	struct prepared p;
	long long id;
	int ch, ret = -1;

	while ((ch = getopt_long(argc, argv, "f:s:", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': format = optarg; break;
		case 's': addr = optarg; break;
		default: return cmd_usage(cmd_issue_usage, 1);
		}
	}
	if (optind + 1 != argc)
		return cmd_usage_error(cmd_issue_usage, "issue preview needs exactly one ID");
	if (strcmp(format, "html") && strcmp(format, "text") && strcmp(format, "eml"))
		return cmd_usage_error(cmd_issue_usage, "--format is html, text or eml, not '%s'",
		                       format);
	if (cmd_parse_id(argv[optind], &id, &env->err) < 0)
		return -1;
	if (prepare(env, id, addr, 1, &p) < 0)
		goto out;
	if (!strcmp(format, "eml")) {
		/* signed as it would be sent */
		if (message_dkim_open(&env->cfg, &p.dkim, &env->err) < 0)
			goto out;
		p.m.dkim = p.dkim;
		if (message_build(&p.m, &p.r, MESSAGE_ISSUE, db_now(), &eml, &mo, &env->err) < 0)
			goto out;
		fwrite(eml.data, 1, eml.len, stdout);
	} else {
		if (message_merge(&p.m, &p.r, &subject, &html, &text, &env->err) < 0)
			goto out;
		if (!strcmp(format, "html"))
			fwrite(html.data, 1, html.len, stdout);
		else
			fwrite(text.data, 1, text.len, stdout);
	}
	ret = fflush(stdout) == 0 ? 0 : herr_set(&env->err, EX_IOERR, NULL, "write error");
out:
	prepared_free(&p);
	buf_free(&subject);
	buf_free(&html);
	buf_free(&text);
	buf_free(&eml);
	return ret;
}

static int
issue_test(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *to = NULL;
	struct buf msg = BUF_INIT(MESSAGE_MAX);
	struct mailsend *ms = NULL;
	struct mailsend_result res;
	struct message_out mo;
	struct address a;
	struct prepared p;
	long long id;
	int ch, ret = -1;

	while ((ch = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
		if (ch != 't')
			return cmd_usage(cmd_issue_usage, 1);
		to = optarg;
	}
	if (optind + 1 != argc || !to)
		return cmd_usage_error(cmd_issue_usage, "issue test needs ID and --to ADDR");
	if (cmd_parse_id(argv[optind], &id, &env->err) < 0 ||
	    address_parse(to, &a, &env->err) < 0)
		return -1;
	memset(&p, 0, sizeof p);
	if (prepare(env, id, a.addr, 0, &p) < 0 ||
	    mailsend_open(&env->cfg, env->db, &ms, &env->err) < 0)
		goto out;
	p.m.dkim = mailsend_dkim(ms);
	if (message_build(&p.m, &p.r, MESSAGE_TEST, db_now(), &msg, &mo, &env->err) < 0)
		goto out;
	if (mailsend_one(ms, mo.mail_from, mo.rcpt.ascii, msg.data, msg.len, &res,
	                 &env->err) < 0) {
		herr_wrap(&env->err, "test mail");
		goto out;
	}
	if (!env->quiet)
		printf("test of issue %lld sent to %s through %s: %s\n", id, mo.rcpt.ascii,
		       res.relay, res.smtp.reply);
	ret = 0;
out:
	mailsend_close(ms);
	prepared_free(&p);
	buf_free(&msg);
	return ret;
}

int
cmd_issue(int argc, char **argv, struct cmd_env *env)
{
	static const struct {
		const char *verb;
		int (*fn)(int, char **, struct cmd_env *);
	} verbs[] = {
		{ "new", issue_new }, { "ls", issue_ls }, { "show", issue_show },
		{ "rm", issue_rm }, { "preview", issue_preview }, { "test", issue_test },
		{ "schedule", issue_schedule_cmd }, { "cancel", issue_cancel_cmd },
		{ "pause", issue_pause_cmd }, { "resume", issue_resume_cmd },
		{ "failures", issue_failures_cmd }, { "retry", issue_retry_cmd },
		{ "audience", issue_audience_cmd },
	};
	size_t i;

	if (argc < 2)
		return cmd_usage_error(cmd_issue_usage, "issue needs a verb");
	for (i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (!strcmp(argv[1], verbs[i].verb))
			return verbs[i].fn(argc - 1, argv + 1, env);
	return cmd_usage_error(cmd_issue_usage, "unknown verb 'issue %s'", argv[1]);
}
