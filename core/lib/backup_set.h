/*
 * Backup sets on local disk. A set is a directory DIR/NAME holding copies
 * of the files of one backup and MANIFEST, which lists each file with its
 * SHA-256 and size. NAME is the UTC time the set was made
 * (20261127T031500Z, with ".2", ".3" ... when that second is taken), so
 * sets sort by age by name.
 *
 * A set is written under DIR/.NAME.partial, verified (the copies read back
 * against the manifest, then an optional check program run on each file),
 * and only then renamed into place: a set that exists is whole and was
 * verified once. Retention runs after a verified set only and never removes
 * the newest `keep` sets. One store at a time per DIR (an flock on
 * DIR/.lock); a .partial left by a killed store is removed by the next.
 *
 * Blocking file I/O: for troika-backup and tests, not the event loop.
 */
#ifndef TROIKA_BACKUP_SET_H
#define TROIKA_BACKUP_SET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define BACKUP_MANIFEST "MANIFEST"
#define BACKUP_NAME_MAX 32
#define BACKUP_FILES_MAX 64
/* Retention keeps at least one set: the one just made. */
#define BACKUP_KEEP_MAX 10000

struct backup_summary {
	char name[BACKUP_NAME_MAX]; /* the set's directory name in DIR */
	size_t files;
	uint64_t bytes;
	char sha256[65]; /* of the first file, hex: enough to tell sets apart */
	size_t pruned;   /* older sets retention removed */
};

/*
 * Store copies of files (at most BACKUP_FILES_MAX, distinct base names)
 * as a new set in dir (made, mode 0700, if missing), named after now.
 * check_program, if not NULL, is run as `check_program FILE` on every copy
 * and must exit 0. Then keep only the newest `keep` sets (1..BACKUP_KEEP_MAX).
 * Returns 0 and fills *out, or -1 with err set. Until the new set is in
 * place a failure leaves nothing of it and removes no set; a failure of
 * retention after that leaves the new set (err says so).
 */
int backup_store(const char *dir, const char *const *files, size_t nfiles,
    const char *check_program, size_t keep, time_t now,
    struct backup_summary *out, char *err, size_t errlen);

/*
 * Read every file of the set at setdir back and compare with its
 * manifest; also refuses files the manifest does not list. Returns 0
 * (out->name is the set's base name, pruned 0) or -1 with err set.
 */
int backup_verify(const char *setdir, struct backup_summary *out, char *err,
    size_t errlen);

/*
 * The names of the sets in dir, oldest first (a NULL-terminated array the
 * caller frees with backup_names_free). Partial sets and other entries
 * are not listed. A missing dir is an empty list. Returns the count, or -1
 * with err set.
 */
ssize_t backup_list(const char *dir, char ***ret_names, char *err,
    size_t errlen);
void backup_names_free(char **names);

/* Parse one MANIFEST line "file <sha256 hex> <size> <name>"; for tests
 * and the fuzzer. Returns 0, or -1 for anything else. */
int backup_manifest_line(const char *line, char *sha256_hex, uint64_t *size,
    char *name, size_t namelen);

#endif
