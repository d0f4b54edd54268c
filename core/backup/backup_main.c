/*
 * troika-backup: stores files as a verified backup set, verifies sets and
 * lists them (core/lib/backup_set.h has the layout). The plugins' backup
 * actions run it once the service wrote its dump (Redis: the RDB after a
 * BGSAVE), so the copying and hashing of a large file happen in a process
 * of its own, never on the agent's loop; operators run it by hand to
 * verify or list what is there.
 *
 * Exit status: 0 done, 1 failed (one line on stderr says why), 2 usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup_set.h"
#include "parse.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: troika-backup store [--keep N] [--check PROGRAM] DIR FILE...\n"
	    "       troika-backup verify SETDIR...\n"
	    "       troika-backup list DIR\n"
	    "\n"
	    "store   copy FILEs into a new set DIR/<UTC time>, with a MANIFEST\n"
	    "        of SHA-256 and sizes; read them back, run PROGRAM FILE on\n"
	    "        each copy (e.g. /usr/bin/redis-check-rdb), and only then put\n"
	    "        the set in place; then keep the newest N sets (default 4)\n"
	    "verify  read every file of each set back against its MANIFEST\n"
	    "list    the sets in DIR, oldest first\n");
}

static int
parse_keep(const char *s, size_t *keep)
{
	int64_t v;

	if (parse_int64(s, &v) < 0 || v < 1 || v > BACKUP_KEEP_MAX)
		return -1;
	*keep = (size_t)v;
	return 0;
}

static int
cmd_store(int argc, char **argv)
{
	struct backup_summary sum;
	const char *check = NULL;
	char err[1024];
	size_t keep = 4;
	int i = 0;

	while (i < argc && strncmp(argv[i], "--", 2) == 0) {
		if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc) {
			if (parse_keep(argv[i + 1], &keep) < 0) {
				fprintf(stderr, "troika-backup: --keep is "
				    "1..%d, not %s\n", BACKUP_KEEP_MAX,
				    argv[i + 1]);
				return 2;
			}
		} else if (strcmp(argv[i], "--check") == 0 && i + 1 < argc) {
			if (argv[i + 1][0] != '/') {
				fprintf(stderr, "troika-backup: --check needs "
				    "an absolute path, not %s\n", argv[i + 1]);
				return 2;
			}
			check = argv[i + 1];
		} else {
			usage();
			return 2;
		}
		i += 2;
	}
	if (argc - i < 2) {
		usage();
		return 2;
	}
	if (backup_store(argv[i], (const char *const *)argv + i + 1,
	    (size_t)(argc - i - 1), check, keep, time(NULL), &sum, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "troika-backup: %s\n", err);
		return 1;
	}
	printf("stored %s/%s: %zu file%s, %" PRIu64 " bytes, sha256 %s, "
	    "%zu older removed\n", argv[i], sum.name, sum.files,
	    sum.files == 1 ? "" : "s", sum.bytes, sum.sha256, sum.pruned);
	return 0;
}

static int
cmd_verify(int argc, char **argv)
{
	int failed = 0;

	if (argc < 1) {
		usage();
		return 2;
	}
	for (int i = 0; i < argc; i++) {
		struct backup_summary sum;
		char err[1024];

		if (backup_verify(argv[i], &sum, err, sizeof(err)) < 0) {
			printf("FAILED %s\n", err);
			failed = 1;
		} else
			printf("ok %s: %zu file%s, %" PRIu64 " bytes\n",
			    argv[i], sum.files, sum.files == 1 ? "" : "s",
			    sum.bytes);
	}
	return failed;
}

static int
cmd_list(int argc, char **argv)
{
	char err[1024];
	char **names;

	if (argc != 1) {
		usage();
		return 2;
	}
	if (backup_list(argv[0], &names, err, sizeof(err)) < 0) {
		fprintf(stderr, "troika-backup: %s\n", err);
		return 1;
	}
	for (char **p = names; *p != NULL; p++)
		printf("%s\n", *p);
	backup_names_free(names);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage();
		return 2;
	}
	if (strcmp(argv[1], "store") == 0)
		return cmd_store(argc - 2, argv + 2);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 2, argv + 2);
	if (strcmp(argv[1], "list") == 0)
		return cmd_list(argc - 2, argv + 2);
	usage();
	return 2;
}
