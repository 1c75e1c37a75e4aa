/*
 * embedded.c - lookup in the tables that cmake/embed.cmake generates.
 */
#include "herald/embedded.h"

#include <string.h>

const struct embedded_file *
embedded_template(const char *name)
{
	const struct embedded_file *f;

	for (f = embedded_templates; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}
