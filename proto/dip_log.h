/*
 * dip_log: one line per event on stderr, with a syslog priority prefix
 * ("<3>") that journald reads as the line's priority. Lines are key=value
 * (default) or JSON (DEALIMPORT_LOG_FORMAT=json) and carry the import id when
 * the event concerns an import. A kv line is
 *   <6>program[pid] level=info import=ID msg="the message"
 * where msg is always quoted and any value holding a space, '=', '"', '\\'
 * or a control byte is quoted; inside quotes '\\' and '"' are escaped with a
 * backslash, \n \r \t are written so, and other control bytes, DEL and
 * bytes that are not UTF-8 as \xHH. So one event is always exactly one
 * line, and a key=value inside a value stays inside it. The logger is the one
 * piece of process-wide state in the project: like openlog(3) it is set once in
 * main().
 */
#ifndef DIP_LOG_H
#define DIP_LOG_H

#include <stdarg.h>

enum {
    DIP_LOG_ERR = 3,
    DIP_LOG_WARNING = 4,
    DIP_LOG_NOTICE = 5,
    DIP_LOG_INFO = 6,
    DIP_LOG_DEBUG = 7,
};

/* Sets the program name shown on each line, the most verbose level written
 * and the format (json != 0 for JSON lines). */
void dip_log_setup(const char *program, int max_level, int json);

/* Parses "error", "warning", "notice", "info", "debug" (or 3-7); returns the
 * level or -1. */
int dip_log_level_parse(const char *s);

/* Writes one event. import_id may be NULL. The message is formatted like
 * printf; it should be lowercase and quote values ('%s'). */
void dip_log(int level, const char *import_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void dip_logv(int level, const char *import_id, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
