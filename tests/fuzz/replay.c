/*
 * replay.c - runs a fuzz target's LLVMFuzzerTestOneInput() on saved inputs,
 * without libFuzzer (the idea of SQLite's fuzzcheck).
 *
 *   replay_TARGET [-v] PATH...
 *
 * Linked with one tests/fuzz/fuzz_TARGET.c and herald_core by the normal
 * compiler (tests/CMakeLists.txt), so the committed seed corpus
 * tests/fuzz/corpus/TARGET/ is replayed by ctest (fuzz.replay.TARGET) in
 * every build, including the ASan+UBSan one, where a crash, a leak or
 * undefined behaviour fails the test just as it would fail a fuzzing run.
 *
 * Each PATH is a file or a directory; a directory's regular files (not
 * those whose name starts with '.') are replayed in byte order of their
 * names, so every run does the same calls in the same order.  Each input
 * is read into a buffer of exactly its size, so a read past the end is an
 * ASan report, as under libFuzzer.  A target reports a broken promise by
 * abort(), which ends the replay with SIGABRT; -v names each file before
 * it runs (the last name printed is the culprit).
 *
 * Exits 0 after replaying at least one input; 1 when a PATH is missing or
 * unreadable, a directory holds no input, or no input was given at all:
 * an empty corpus must not pass as a test.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int verbose;

/* Read all of `path` into a malloc'd buffer of exactly its size (an empty
 * file gets a 1-byte buffer and size 0). */
static int
slurp(const char *path, uint8_t **out, size_t *len)
{
	FILE *fp;
	struct stat st;
	uint8_t *p;
	size_t n;

	if (!(fp = fopen(path, "rb"))) {
		fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) < 0) {
		fprintf(stderr, "replay: cannot stat %s: %s\n", path, strerror(errno));
		fclose(fp);
		return -1;
	}
	if (!(p = malloc(st.st_size > 0 ? (size_t)st.st_size : 1))) {
		fprintf(stderr, "replay: out of memory for %s\n", path);
		fclose(fp);
		return -1;
	}
	n = fread(p, 1, (size_t)st.st_size, fp);
	if (ferror(fp) || n != (size_t)st.st_size) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		fclose(fp);
		free(p);
		return -1;
	}
	fclose(fp);
	*out = p;
	*len = n;
	return 0;
}

static int
run_file(const char *path)
{
	uint8_t *data;
	size_t len;

	if (slurp(path, &data, &len) < 0)
		return -1;
	if (verbose)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	return 0;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay the regular files of `dir`, sorted; returns how many, or -1. */
static long
run_dir(const char *dir)
{
	DIR *d;
	struct dirent *e;
	struct stat st;
	char **names = NULL, **grown, *path;
	size_t n = 0, cap = 0, i;
	long done = 0;

	if (!(d = opendir(dir))) {
		fprintf(stderr, "replay: cannot open directory %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			if (!(grown = realloc(names, cap * sizeof *names)))
				goto oom;
			names = grown;
		}
		if (!(names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2)))
			goto oom;
		sprintf(names[n], "%s/%s", dir, e->d_name);
		n++;
	}
	closedir(d);
	d = NULL;
	qsort(names, n, sizeof *names, by_name);
	for (i = 0; i < n; i++) {
		path = names[i];
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (run_file(path) < 0) {
			done = -1;
			break;
		}
		done++;
	}
	if (done == 0)
		fprintf(stderr, "replay: no input in %s\n", dir);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return done > 0 ? done : -1;
oom:
	fprintf(stderr, "replay: out of memory listing %s\n", dir);
	if (d)
		closedir(d);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return -1;
}

int
main(int argc, char **argv)
{
	struct stat st;
	long total = 0, k;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v")) {
			verbose = 1;
			continue;
		}
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			if ((k = run_dir(argv[i])) < 0)
				return 1;
			total += k;
		} else {
			if (run_file(argv[i]) < 0)
				return 1;
			total++;
		}
	}
	if (total == 0) {
		fprintf(stderr, "usage: %s [-v] FILE|DIR... (no input was given)\n", argv[0]);
		return 1;
	}
	printf("replay: %ld inputs, no failure\n", total);
	return 0;
}
