/*
 * embedded.h - files compiled into the binary by cmake/embed.cmake:
 * the sql/ migrations (applied by db.c) and the default templates/ (used by
 * render.c unless the config names replacements).
 */
#ifndef HERALD_EMBEDDED_H
#define HERALD_EMBEDDED_H

#include <stddef.h>

struct embedded_migration {
	int         version; /* the file's number: 1 for 001_init.sql */
	const char *name;    /* file name, for messages */
	const char *sql;     /* NUL-terminated script */
};

struct embedded_file {
	const char *name; /* file name under templates/ */
	const char *data; /* NUL-terminated contents */
	size_t      len;
};

/* Both tables end with a row whose name is NULL; migrations are sorted. */
extern const struct embedded_migration embedded_migrations[];
extern const struct embedded_file embedded_templates[];

/* The template called `name`, or NULL. */
const struct embedded_file *embedded_template(const char *name);

#endif
