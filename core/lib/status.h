/* Names of statuses and evidence classes: one table each. */
#ifndef TROIKA_STATUS_H
#define TROIKA_STATUS_H

#include <troika/plugin.h>

/* "ok", "warning", "critical", "unknown"; "invalid" for anything else. */
const char *troika_status_str(int status);
/* Inverse of troika_status_str(); -1 if unknown. */
int troika_status_from_str(const char *s);
/* "none", "certain", "ambiguous"; "invalid" for anything else. */
const char *troika_evidence_str(int evidence);

#endif
