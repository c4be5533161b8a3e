/* Logging: one line per message on stderr, prefixed "vmm: <level>: ". */
#ifndef VMM_LOG_H
#define VMM_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

/* Returns -1 for an unknown name. */
int log_level_from_name(const char *name);
void vmm_log(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line the user asked for (the SIGUSR1 state report), printed whatever
 * the level, prefixed "vmm: state: ". */
void log_state(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_error(...) vmm_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  vmm_log(LOG_WARN, __VA_ARGS__)
#define log_info(...)  vmm_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_threshold >= LOG_DEBUG) vmm_log(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
