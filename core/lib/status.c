#include "status.h"

#include <string.h>

static const char *const status_names[] = {
	[TROIKA_STATUS_OK] = "ok",
	[TROIKA_STATUS_WARNING] = "warning",
	[TROIKA_STATUS_CRITICAL] = "critical",
	[TROIKA_STATUS_UNKNOWN] = "unknown",
};

static const char *const evidence_names[] = {
	[TROIKA_EVIDENCE_NONE] = "none",
	[TROIKA_EVIDENCE_CERTAIN] = "certain",
	[TROIKA_EVIDENCE_AMBIGUOUS] = "ambiguous",
};

const char *
troika_status_str(int status)
{
	if (status < 0 || status > TROIKA_STATUS_UNKNOWN)
		return "invalid";
	return status_names[status];
}

int
troika_status_from_str(const char *s)
{
	for (int i = 0; i <= TROIKA_STATUS_UNKNOWN; i++)
		if (strcmp(s, status_names[i]) == 0)
			return i;
	return -1;
}

const char *
troika_evidence_str(int evidence)
{
	if (evidence < 0 || evidence > TROIKA_EVIDENCE_AMBIGUOUS)
		return "invalid";
	return evidence_names[evidence];
}
