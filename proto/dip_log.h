/*
 * dip_log: one line per event on stderr. Lines are key=value (default) or
 * JSON (DEALIMPORT_LOG_FORMAT=json) and carry the import id when the event
 * concerns an import, and the event's fields (dip_log_fields). A kv line is
 *   <6>program[pid] level=info import=ID msg="the message" worker_pid=42
 * where msg is always quoted and any value holding a space, '=', '"', '\\'
 * or a control byte is quoted; inside quotes '\\' and '"' are escaped with a
 * backslash, \n \r \t are written so, and other control bytes, DEL and
 * bytes that are not UTF-8 as \xHH. So one event is always exactly one
 * line, and a key=value inside a value stays inside it.
 *
 * A JSON line is one object, whatever the message holds (JSON escapes line
 * breaks; bytes that are not UTF-8 are kept visible as \xHH):
 *   {"time":"2026-01-02T03:04:05.678Z","level":"info","program":"...",
 *    "pid":123,"import":"ID","worker_pid":42,"msg":"the message"}
 * time is UTC with milliseconds; pid is the writing process's; the event's
 * fields are members of their own, numbers as numbers.
 *
 * Under journald (what systemd says: $JOURNAL_STREAM names the device and
 * inode of stderr; dip_log_setup checks it once) an event is sent to the
 * journal's native socket instead, whatever the format: MESSAGE, PRIORITY,
 * SYSLOG_IDENTIFIER, IMPORT_ID, and each field under its key in capitals
 * (WORKER_PID, LINE, ADDED, ...), so `journalctl IMPORT_ID=...` finds an
 * import's events. When that send fails, the line goes to stderr as below.
 *
 * The syslog priority prefix ("<3>") is what journald reads as a stream
 * line's priority (and strips). kv lines always carry it; JSON lines carry
 * it only under journald, so that a collector reading a file or a pipe gets
 * pure JSON.
 *
 * The logger is the one piece of process-wide state in the project: like
 * openlog(3) it is set once in main().
 */
#ifndef DIP_LOG_H
#define DIP_LOG_H

#include <stdarg.h>
#include <stddef.h>

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

/* One field of an event: key is lowercase [a-z0-9_] (not "time", "level",
 * "program", "pid", "import" or "msg"), the value a number or a string
 * (escaped as message text is). One name means one thing everywhere, so a
 * collector can query it across programs:
 *   worker_pid  the worker process of the import (pid is the writer's own)
 *   line        the import's line (data rows from 1) the event is at
 *   added, errors, would_add, db_round_trips   an import's counts so far
 *   status      an import's status the event set
 *   cmd         a control request's command (pause, resume, cancel, revert)
 *   peer_uid    the uid a control request came from over ipc:// (SO_PEERCRED;
 *               a revert's: the uid of the dealimportctl that ran it)
 *   key         the CURVE key name it came with over TCP (its file in
 *               DEALIMPORT_CONTROL_CURVE_CLIENTS_DIR, less ".pub")
 *   result      what came of a control request: signalled, applied,
 *               recorded or refused
 *   deleted_deals, deleted_stages   what a revert deleted
 * A control request is then one line where it is carried out:
 *   dip_log_fields(DIP_LOG_NOTICE, id, DIP_LOG_FIELDS(DIP_LOG_STR("cmd",
 *                  "pause"), DIP_LOG_NUM("peer_uid", uid)),
 *                  "pause requested by uid %ld", (long)uid);
 */
typedef struct {
    const char *key;
    int is_str;
    const char *str;
    long long num;
} dip_log_field_t;
#define DIP_LOG_NUM(k, v) ((dip_log_field_t){(k), 0, NULL, (long long)(v)})
#define DIP_LOG_STR(k, v) ((dip_log_field_t){(k), 1, (v), 0})
/* The fields as the two arguments dip_log_fields takes:
 *   dip_log_fields(DIP_LOG_INFO, id, DIP_LOG_FIELDS(DIP_LOG_NUM("line", n),
 *                  DIP_LOG_STR("by", "uid 1000")), "import paused");
 */
#define DIP_LOG_FIELDS(...)                                                    \
    (const dip_log_field_t[]){__VA_ARGS__},                                    \
        sizeof((const dip_log_field_t[]){__VA_ARGS__}) /                       \
            sizeof(dip_log_field_t)

/* Writes one event with fields (nfields of them, may be 0). */
void dip_log_fields(int level, const char *import_id,
                    const dip_log_field_t *fields, size_t nfields,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* 1 when stderr is the journal's stream ($JOURNAL_STREAM matches it). */
int dip_log_under_journald(void);
/* The journal's native socket, /run/systemd/journal/socket unless set
 * (tests point it elsewhere); read by the next dip_log_setup's sends. */
void dip_log_journal_socket(const char *path);

#endif
