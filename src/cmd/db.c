/*
 * db.c - `herald db stats`: how big each table is and how old its oldest
 * row, to see what [retention] keeps (dbstats.h computes, this prints).
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "herald/cmd.h"
#include "herald/dbstats.h"

const char cmd_db_usage[] =
	"usage: herald db stats [--json]\n"
	"\n"
	"Each table of the database: its rows, its bytes on disk with its indexes\n"
	"(when SQLite has the dbstat table; else the file's pages are shown), and\n"
	"for a time-stamped table the time of its oldest row.  [retention] in the\n"
	"config says how long events, deliveries and inbound mail are kept;\n"
	"`herald run` removes what is older.\n";

static int
stats_json(const struct dbstats *s)
{
	json_t *j = json_object(), *a = json_array();
	size_t i;

	if (!j || !a) {
		json_decref(j);
		json_decref(a);
		return cmd_print_json(NULL);
	}
	for (i = 0; i < s->n; i++) {
		const struct dbstats_table *t = &s->t[i];

		if (json_array_append_new(a, json_pack("{s:s, s:I, s:o, s:s?, s:o}", "name", t->name,
		                          "rows", (json_int_t)t->rows, "bytes", t->bytes >= 0 ?
		                          json_integer((json_int_t)t->bytes) : json_null(),
		                          "oldest_column", t->oldest_col[0] ? t->oldest_col : NULL,
		                          "oldest", t->oldest_col[0] && t->rows ?
		                          json_integer((json_int_t)t->oldest) : json_null())) < 0) {
			json_decref(j);
			json_decref(a);
			return cmd_print_json(NULL);
		}
	}
	if (json_object_set_new(j, "tables", a) < 0 ||
	    json_object_set_new(j, "page_size", json_integer((json_int_t)s->page_size)) < 0 ||
	    json_object_set_new(j, "page_count", json_integer((json_int_t)s->page_count)) < 0 ||
	    json_object_set_new(j, "freelist_pages", json_integer((json_int_t)s->freelist)) < 0) {
		json_decref(j);
		return cmd_print_json(NULL);
	}
	return cmd_print_json(j);
}

static int
stats(int argc, char **argv, struct cmd_env *env)
{
	struct dbstats s;
	char when[32];
	size_t i;
	int json = argc == 2 && !strcmp(argv[1], "--json");

	if (argc > 2 || (argc == 2 && !json))
		return cmd_usage_error(cmd_db_usage, "db stats takes only --json");
	if (dbstats_compute(env->db, &s, &env->err) < 0) {
		dbstats_clear(&s);
		return -1;
	}
	if (json) {
		int rc = stats_json(&s);

		dbstats_clear(&s);
		return rc;
	}
	printf("%-24s %12s %14s  %s\n", "TABLE", "ROWS", "BYTES", "OLDEST");
	for (i = 0; i < s.n; i++) {
		const struct dbstats_table *t = &s.t[i];
		char bytes[32];

		if (t->bytes >= 0)
			snprintf(bytes, sizeof bytes, "%lld", t->bytes);
		else
			snprintf(bytes, sizeof bytes, "-");
		printf("%-24s %12lld %14s  %s%s%s\n", t->name, t->rows, bytes,
		       !t->oldest_col[0] ? "" : t->rows ? cmd_time(t->oldest, when, sizeof when)
		                                         : "(empty)",
		       t->oldest_col[0] && t->rows ? " by " : "",
		       t->oldest_col[0] && t->rows ? t->oldest_col : "");
	}
	printf("\nfile: %lld pages of %lld bytes (%lld free)%s\n", s.page_count, s.page_size,
	       s.freelist, s.have_dbstat ? "" : "; SQLite has no dbstat table: no bytes per table");
	dbstats_clear(&s);
	return 0;
}

int
cmd_db(int argc, char **argv, struct cmd_env *env)
{
	if (argc < 2)
		return cmd_usage(cmd_db_usage, 1);
	if (!strcmp(argv[1], "stats"))
		return stats(argc - 1, argv + 1, env);
	return cmd_usage_error(cmd_db_usage, "db: '%s' is not stats", argv[1]);
}
