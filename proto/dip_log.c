/*
 * dip_log: formats one event per line on stderr for journald or a terminal.
 * A line is written with a single write(2) so lines from the supervisor and
 * its workers never interleave mid-line on a shared stderr.
 */
#include "dip_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

static struct {
    char program[64];
    int max_level;
    int json;
} log_setup = {"dealimport", DIP_LOG_INFO, 0};

void dip_log_setup(const char *program, int max_level, int json)
{
    snprintf(log_setup.program, sizeof(log_setup.program), "%s",
             program ? program : "dealimport");
    log_setup.max_level = max_level;
    log_setup.json = json;
}

int dip_log_level_parse(const char *s)
{
    static const char *const names[] = {"error", "warning", "notice", "info",
                                        "debug"};
    if (s == NULL)
        return -1;
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0)
            return DIP_LOG_ERR + i;
    if (s[0] >= '3' && s[0] <= '7' && s[1] == '\0')
        return s[0] - '0';
    return -1;
}

static const char *level_name(int level)
{
    switch (level) {
    case DIP_LOG_ERR:
        return "error";
    case DIP_LOG_WARNING:
        return "warning";
    case DIP_LOG_NOTICE:
        return "notice";
    case DIP_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

void dip_logv(int level, const char *import_id, const char *fmt, va_list ap)
{
    char msg[2048];
    char line[4096];
    int n;

    if (level > log_setup.max_level)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (log_setup.json) {
        json_t *o =
            json_pack("{s:s, s:s, s:i}", "level", level_name(level), "program",
                      log_setup.program, "pid", (int)getpid());
        char *s;
        if (o == NULL)
            return;
        if (import_id)
            json_object_set_new(o, "import", json_string(import_id));
        json_object_set_new(o, "msg", json_string(msg));
        s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        if (s == NULL)
            return;
        n = snprintf(line, sizeof(line), "<%d>%s\n", level, s);
        free(s);
    } else if (import_id) {
        n = snprintf(line, sizeof(line), "<%d>%s[%d] level=%s import=%s %s\n",
                     level, log_setup.program, (int)getpid(), level_name(level),
                     import_id, msg);
    } else {
        n = snprintf(line, sizeof(line), "<%d>%s[%d] level=%s %s\n", level,
                     log_setup.program, (int)getpid(), level_name(level), msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    /* A failed log write has nowhere to be reported. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}

void dip_log(int level, const char *import_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dip_logv(level, import_id, fmt, ap);
    va_end(ap);
}
