/*  log.c: writes log lines to stderr, whole lines at once so that the
    loop's and the store's lines never interleave. */

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

/* Set once at start, read by both threads: a plain int is enough. */
static volatile int s_level = BRK_LOG_INFO;

void
brk_log_set_level(brk_log_level_t level)
{
    s_level = (int)level;
}

void
brk_log(brk_log_level_t level, const char *who, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    if ((int)level < s_level)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char line[1200];
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), names[level], who);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
