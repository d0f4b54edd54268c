/*
 * libFuzzer target: backup_manifest_line() on any line of a MANIFEST (a
 * file on disk anyone with access to the backup directory may have
 * changed). A line it accepts must be in the one form troika-backup
 * writes: printed back from what was parsed (the digest in lower case),
 * it is the input, byte for byte (no upper-case hex, no leading zero, one
 * space each), and the name is one a set may hold (printable, no space,
 * no '/', not hidden, not MANIFEST).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_set.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line, *again;
	char hex[65], name[256];
	uint64_t n;

	if (size > 1024 || memchr(data, '\0', size) != NULL)
		return 0; /* a line has no NUL; the reader refuses those */
	if ((line = malloc(size + 1)) == NULL ||
	    (again = malloc(size + 64)) == NULL) {
		free(line);
		return 0;
	}
	memcpy(line, data, size);
	line[size] = '\0';
	if (backup_manifest_line(line, hex, &n, name, sizeof(name)) == 0) {
		for (char *p = hex; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		if (name[0] == '.' || strcmp(name, BACKUP_MANIFEST) == 0 ||
		    strchr(name, '/') != NULL)
			abort();
		for (const char *p = name; *p != '\0'; p++)
			if ((unsigned char)*p <= 0x20 ||
			    (unsigned char)*p >= 0x7f)
				abort();
		snprintf(again, size + 64, "file %s %" PRIu64 " %s", hex, n,
		    name);
		if (strcmp(again, line) != 0)
			abort();
	}
	free(again);
	free(line);
	return 0;
}
