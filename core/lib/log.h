/*
 * Logging: stderr (with a timestamp) in the foreground, syslog otherwise.
 * log_warn() appends strerror(errno); log_warnx() does not. fatal() and
 * fatalx() exit, and belong only in main(), start-up, or a broken internal
 * invariant: never in network input handling, plugins or core/lib logic.
 * All functions are thread-safe (one write per line).
 */
#ifndef TROIKA_LOG_H
#define TROIKA_LOG_H

#include <stdarg.h>

enum log_target {
	LOG_TARGET_STDERR = 0,
	LOG_TARGET_SYSLOG = 1,
};

/* Syslog levels: LOG_ERR 3, LOG_WARNING 4, LOG_INFO 6, LOG_DEBUG 7. */
void log_init(const char *progname, enum log_target target, int level);
void log_setlevel(int level);
int log_getlevel(void);
/* "err", "warning", "info", "debug" to a level; -1 if unknown. */
int log_level_from_str(const char *s);
const char *log_level_str(int level);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log at a given syslog level. */
void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Log at a given level; the building block of the others. */
void log_vlog(int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
