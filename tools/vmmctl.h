/* vmmctl's parts (see vmmctl.c): vmmctl_conn.c is the QMP connection, the
 * JSON helpers, per-command argument parsing, tables and events;
 * vmmctl_vm.c the info, hotplug, memory and migrate commands; vmmctl.c the
 * usage text, the basic commands and main. */
#ifndef VMMCTL_H
#define VMMCTL_H

#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
    EXIT_OK = 0,
    EXIT_QMP_ERROR = 1,
    EXIT_USAGE = 2,
    EXIT_CONNECTION = 3,
    EXIT_TIMEOUT = 4,
    EXIT_NOT_RELEASED = 5,
};

#define DEFAULT_TIMEOUT 10.0
#define DEFAULT_WAIT_TIMEOUT 30.0
#define MAX_MESSAGE (64u << 20)

__attribute__((noreturn, format(printf, 2, 3))) void die(int code, const char *fmt, ...);
#define usage_error(...) die(EXIT_USAGE, __VA_ARGS__)

/* The global options. */
extern const char *opt_socket;
extern bool opt_json;
extern double opt_timeout;
extern bool opt_timeout_set;

struct conn {
    int fd;
    GString *buf;
    GQueue events;          /* JsonNode * of events not consumed yet */
    int64_t next_id;
};

enum read_status { READ_OK, READ_TIMEOUT, READ_EOF };

/* The result of one command: either ret (the "return" value) or the error. */
struct reply {
    JsonNode *ret;
    char *err_class;        /* NULL on success */
    char *err_desc;
};

struct copt {
    const char *name;       /* "--id" */
    bool has_arg;
    bool repeat;            /* values collect in vals */
    const char *val;
    bool set;
    GPtrArray *vals;
};

struct cargs {
    GPtrArray *pos;         /* positional arguments */
};

struct table {
    unsigned ncols;
    GPtrArray *rows;        /* of char ** (ncols strings) */
};

/* migrate: the source exits once done; EOF is an answer. */
extern bool conn_eof_ok;
extern bool conn_eof_seen;

int64_t deadline_after(double secs);
char *fmt_secs(double s);
char *node_to_string(JsonNode *n);
JsonObject *obj_of(JsonNode *n);
JsonArray *arr_of(JsonNode *n);
JsonNode *member(JsonObject *o, const char *key);
const char *str_member(JsonObject *o, const char *key);
char *scalar_text(JsonObject *o, const char *key);
bool int_member(JsonObject *o, const char *key, int64_t *out);
JsonNode *obj_new(const char *key, ...);
JsonNode *jstr(const char *s);
JsonNode *jint(int64_t v);
JsonNode *jbool(bool v);
void print_json(JsonNode *n);
void reply_clear(struct reply *r);
bool is_command_not_found(const struct reply *r);
bool conn_execute(struct conn *c, const char *cmd, JsonNode *args, struct reply *r);
__attribute__((noreturn)) void die_reply(const char *what, const struct reply *r);
JsonNode *execute_or_die(struct conn *c, const char *cmd, JsonNode *args);
void conn_ensure(struct conn *c);
void parse_cmd_args(const char *cmd, int argc, char **argv, struct copt *opts, struct cargs *out);
void want_pos(const char *cmd, struct cargs *a, unsigned min, unsigned max, const char *what);
const char *pos(struct cargs *a, unsigned i);
void check_id(const char *cmd, const char *id);
JsonNode *parse_json_args(const char *cmd, const char *text);
struct table *table_new(unsigned ncols, ...);
void table_add(struct table *t, ...);
void table_print(struct table *t, const char *indent);
enum read_status next_event(struct conn *c, int64_t deadline, JsonNode **out);
void print_event(JsonNode *ev);
JsonNode *wait_for_event(struct conn *c, const char *name, GPtrArray *matches, int64_t deadline);

typedef int (*cmd_fn)(struct conn *c, const char *name, int argc, char **argv);
int cmd_info(struct conn *c, const char *name, int argc, char **argv);
int cmd_add_disk(struct conn *c, const char *name, int argc, char **argv);
int cmd_add_net(struct conn *c, const char *name, int argc, char **argv);
int cmd_remove_device(struct conn *c, const char *name, int argc, char **argv);
int cmd_remove_cpu(struct conn *c, const char *name, int argc, char **argv);
int cmd_add_cpu(struct conn *c, const char *name, int argc, char **argv);
int cmd_resize_memory(struct conn *c, const char *name, int argc, char **argv);
int cmd_migrate(struct conn *c, const char *name, int argc, char **argv);

#endif
