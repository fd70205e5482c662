/*  log.h: the broker's one log sink: one line per notable event on
    stderr, with a time, a level and who it is about. Never a body. */

#ifndef BRK_LOG_H
#define BRK_LOG_H

typedef enum {
    BRK_LOG_DEBUG,
    BRK_LOG_INFO,
    BRK_LOG_WARNING,
    BRK_LOG_ERROR,
} brk_log_level_t;

/* Lines below `level` are dropped (default INFO). */
void brk_log_set_level(brk_log_level_t level);

void brk_log(brk_log_level_t level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
