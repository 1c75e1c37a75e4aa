/*
 * db.c - `herald db`: the database file itself.  stats (how big each table
 * is and how old its oldest row, to see what [retention] keeps; dbstats.h
 * computes), backup, check, vacuum (dbmaint.h) and migrate (db.h), which
 * is the only way an existing database's schema changes.
 *
 * cli.c opens no database for this command: backup, check and migrate
 * open one of any schema version (DB_OPEN_MAINTAIN) - backing up before
 * an upgrade is their point - while stats and vacuum want the current one.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/dbmaint.h"
#include "herald/dbstats.h"

const char cmd_db_usage[] =
	"usage: herald db stats [--json]\n"
	"       herald db backup FILE\n"
	"       herald db check [--quick]\n"
	"       herald db vacuum\n"
	"       herald db migrate [--backup FILE | --no-backup]\n"
	"\n"
	"stats: each table of the database: its rows, its bytes on disk with its\n"
	"indexes (when SQLite has the dbstat table; else the file's pages are\n"
	"shown), for a time-stamped table the time of its oldest row; then the\n"
	"file, its WAL and the schema version.  [retention] in the config says how\n"
	"long events, deliveries and inbound mail are kept; `herald run` removes\n"
	"what is older.\n"
	"\n"
	"backup: an online copy to FILE (a new file, mode 0600), consistent while\n"
	"serve and run write, checked with PRAGMA integrity_check before it gets\n"
	"its name.  Restore by stopping herald and copying it over the database\n"
	"(and removing the old -wal and -shm files).\n"
	"\n"
	"check: PRAGMA integrity_check (--quick: quick_check) and\n"
	"foreign_key_check; exit 65 when they find anything, 78 when the schema\n"
	"is not this herald's.\n"
	"\n"
	"vacuum: rebuild the file without its free pages and empty the WAL; it\n"
	"waits for a running send's writes, and blocks writers while it runs.\n"
	"\n"
	"migrate: bring an older database to this herald's schema: a backup first\n"
	"(by default DBPATH.schemaN-YYYYMMDD-HHMMSS.bak), then every pending\n"
	"migration in one transaction.  Other commands refuse an older schema\n"
	"until this has run; stop `herald serve` and the cron job first.\n";

static int
stats_json(sqlite3 *db, const struct dbstats *s, long long wal_bytes)
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
	    json_object_set_new(j, "schema_version", json_integer(db_schema_version(db))) < 0 ||
	    json_object_set_new(j, "wal_bytes", json_integer((json_int_t)wal_bytes)) < 0 ||
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
	long long db_bytes, wal_bytes;
	int json = argc == 2 && !strcmp(argv[1], "--json");

	if (argc > 2 || (argc == 2 && !json))
		return cmd_usage_error(cmd_db_usage, "db stats takes only --json");
	if (cmd_open_db(env, DB_OPEN_EXISTING) < 0 ||
	    db_file_size(env->db, env->cfg.db_path, &db_bytes, &wal_bytes, &env->err) < 0)
		return -1;
	if (dbstats_compute(env->db, &s, &env->err) < 0) {
		dbstats_clear(&s);
		return -1;
	}
	if (json) {
		int rc = stats_json(env->db, &s, wal_bytes);

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
	printf("wal: %lld bytes\nschema: %d\n", wal_bytes, db_schema_version(env->db));
	dbstats_clear(&s);
	return 0;
}

static int
backup(int argc, char **argv, struct cmd_env *env)
{
	struct db_backup_info info;

	if (argc != 2 || argv[1][0] == '-')
		return cmd_usage_error(cmd_db_usage, "db backup takes one FILE");
	if (cmd_open_db(env, DB_OPEN_MAINTAIN) < 0 ||
	    db_backup(env->db, argv[1], &info, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("backup %s: %lld bytes, schema %d, integrity ok, %.1f s\n", argv[1],
		       info.bytes, info.schema, info.seconds);
	return 0;
}

static int
check(int argc, char **argv, struct cmd_env *env)
{
	struct db_check_result r;
	int quick = argc == 2 && !strcmp(argv[1], "--quick"), have, latest;
	size_t i;

	if (argc > 2 || (argc == 2 && !quick))
		return cmd_usage_error(cmd_db_usage, "db check takes only --quick");
	if (cmd_open_db(env, DB_OPEN_MAINTAIN) < 0 ||
	    db_check(env->db, quick, &r, &env->err) < 0)
		return -1;
	for (i = 0; i < r.n_problems; i++)
		printf("problem: %s\n", r.problems[i]);
	if (r.more)
		printf("problem: (more not shown)\n");
	have = db_schema_version(env->db);
	latest = db_schema_latest();
	if (!env->quiet || have != latest)
		printf("schema: %d%s\n", have, have == latest ? "" : have < latest ?
		       " (older than this herald: run `herald db migrate`)" :
		       " (newer than this herald: upgrade herald)");
	if (r.n_problems) {
		printf("%s: %zu problem%s%s\n", env->cfg.db_path, r.n_problems,
		       r.n_problems == 1 ? "" : "s", r.more ? " and more" : "");
		db_check_clear(&r);
		return EX_DATAERR;
	}
	if (!env->quiet)
		printf("%s: %s and foreign keys ok\n", env->cfg.db_path,
		       quick ? "quick_check" : "integrity_check");
	return have == latest ? 0 : EX_CONFIG;
}

static int
vacuum(int argc, char **argv, struct cmd_env *env)
{
	long long before, wal_before, after, wal_after;

	(void)argv;
	if (argc != 1)
		return cmd_usage_error(cmd_db_usage, "db vacuum takes no arguments");
	if (cmd_open_db(env, DB_OPEN_EXISTING) < 0 ||
	    db_file_size(env->db, env->cfg.db_path, &before, &wal_before, &env->err) < 0 ||
	    db_vacuum(env->db, &env->err) < 0 ||
	    db_file_size(env->db, env->cfg.db_path, &after, &wal_after, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("vacuum: %lld bytes (WAL %lld) -> %lld bytes (WAL %lld)\n", before,
		       wal_before, after, wal_after);
	return 0;
}

static int
migrate(int argc, char **argv, struct cmd_env *env)
{
	char name[4096];
	const char *dest = NULL;
	struct db_backup_info info;
	int no_backup = 0, have, from, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--no-backup") && !dest)
			no_backup = 1;
		else if (!strcmp(argv[i], "--backup") && i + 1 < argc && !no_backup && !dest)
			dest = argv[++i];
		else
			return cmd_usage_error(cmd_db_usage, "db migrate: unexpected '%s'", argv[i]);
	}
	if (cmd_open_db(env, DB_OPEN_MAINTAIN) < 0)
		return -1;
	have = db_schema_version(env->db);
	if (have == db_schema_latest()) {
		if (!env->quiet)
			printf("schema %d is current; nothing to do\n", have);
		return 0;
	}
	/* A newer schema is refused by db_migrate() before anything is copied. */
	if (!no_backup && have < db_schema_latest()) {
		if (!dest) {
			if (db_backup_default_name(env->cfg.db_path, have, name, sizeof name,
			                           &env->err) < 0)
				return -1;
			dest = name;
		}
		if (db_backup(env->db, dest, &info, &env->err) < 0)
			return herr_wrap(&env->err, "backup before migrating (nothing migrated)");
		if (!env->quiet)
			printf("backup %s: %lld bytes, schema %d, integrity ok\n", dest, info.bytes,
			       info.schema);
	}
	if (db_migrate(env->db, env->cfg.db_path, &from, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("migrated %s: schema %d -> %d\n", env->cfg.db_path, from,
		       db_schema_version(env->db));
	return 0;
}

int
cmd_db(int argc, char **argv, struct cmd_env *env)
{
	if (argc < 2)
		return cmd_usage(cmd_db_usage, 1);
	if (!strcmp(argv[1], "stats"))
		return stats(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "backup"))
		return backup(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "check"))
		return check(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "vacuum"))
		return vacuum(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "migrate"))
		return migrate(argc - 1, argv + 1, env);
	return cmd_usage_error(cmd_db_usage,
	                       "db: '%s' is not stats, backup, check, vacuum or migrate", argv[1]);
}
