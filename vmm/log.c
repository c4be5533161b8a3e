#include "vmm/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum log_level log_threshold = LOG_WARN;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_level_from_name(const char *name)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

static void emit(const char *tag, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    /* One write() so that lines from vCPU threads never interleave. */
    char out[1100];
    int n = snprintf(out, sizeof(out), "vmm: %s: %s\n", tag, line);
    if (n > (int)sizeof(out))
        n = sizeof(out);
    fwrite(out, 1, (size_t)n, stderr);
}

void vmm_log(enum log_level level, const char *fmt, ...)
{
    if (level > log_threshold)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level_names[level], fmt, ap);
    va_end(ap);
}

void log_state(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit("state", fmt, ap);
    va_end(ap);
}
