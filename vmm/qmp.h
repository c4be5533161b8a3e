/* The QMP control socket (QEMU's docs/interop/qmp-spec): greeting,
 * capabilities negotiation, `execute`/`return`/`error`/`event`, `id` echoed.
 *
 * The server lives on the main loop for the whole process (across guest
 * resets); commands are registered by the modules that carry them out
 * (lifecycle, hotplug, migration...) and run on the main loop thread. */
#ifndef VMM_QMP_H
#define VMM_QMP_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

struct loop;
struct qmp_server;
struct qmp_client;

/* QMP error classes (the "class" member of an error reply). A command sets
 * *err in QMP_ERROR with one of these codes and a one-line "desc". */
enum qmp_error_class {
    QMP_ERR_GENERIC,            /* "GenericError" */
    QMP_ERR_COMMAND_NOT_FOUND,  /* "CommandNotFound" */
    QMP_ERR_DEVICE_NOT_FOUND,   /* "DeviceNotFound" */
    QMP_ERR_DEVICE_NOT_ACTIVE,  /* "DeviceNotActive" */
    QMP_ERR_KVM_MISSING_CAP,    /* "KVMMissingCap" */
};
#define QMP_ERROR qmp_error_quark()
GQuark qmp_error_quark(void);

/* What a command handler gets besides its arguments. */
struct qmp_cmd_ctx {
    struct qmp_server *server;
    struct qmp_client *client;  /* the connection that sent it */
    void *opaque;               /* given at registration */
};

/* Runs one command. args is the "arguments" object (an empty object when the
 * client sent none; never NULL). Returns the "return" value (a new node the
 * server takes; NULL means {}), or NULL with *err set. Main loop thread. */
typedef JsonNode *(*qmp_cmd_fn)(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err);

enum qmp_cmd_flags {
    QMP_CMD_PRE_CAPS = 1u << 0,     /* allowed before qmp_capabilities */
};

/* One endpoint from --qmp: unix:PATH[,server=on,wait=off] or fd=N (an
 * inherited listening or connected socket). Parsed by config. */
struct qmp_endpoint {
    char *path;                 /* unix socket path, or NULL with fd >= 0 */
    int fd;                     /* -1 with path */
    bool wait;                  /* wait=on: do not start the guest before a client connects */
};

/* The QEMU version vmm's QMP speaks for (greeting, query-version). */
#define QMP_QEMU_MAJOR 7
#define QMP_QEMU_MINOR 2
#define QMP_QEMU_MICRO 0

/* Creates the server with no endpoints yet, with the built-in commands
 * qmp_capabilities, query-version, query-commands, getfd and closefd
 * registered. */
struct qmp_server *qmp_server_new(struct loop *loop);
/* Listens on (or adopts) one endpoint. 0, or -1 with *err naming it. */
int qmp_server_add_endpoint(struct qmp_server *s, const struct qmp_endpoint *ep, GError **err);
/* Closes every client and listener and unlinks the socket paths it made
 * (when the path still names that socket). Replies already queued get one
 * last non-blocking write. NULL is fine. */
void qmp_server_free(struct qmp_server *s);
/* True while an endpoint with wait=on has not had its first connection yet:
 * the guest is not started before (QEMU's server=on,wait=on). */
bool qmp_server_waiting(const struct qmp_server *s);
/* Adopts a connected socket as a client (greeted at once). NULL when it
 * failed at once (fd closed). Used for fd=N connected sockets and tests. */
struct qmp_client *qmp_server_add_client(struct qmp_server *s, int fd);
/* Bounds: the bytes of one incomplete JSON value a client may send, and the
 * bytes of output that may wait for a client to read; past either the client
 * is dropped. Defaults 1 MiB and 4 MiB. */
void qmp_server_set_limits(struct qmp_server *s, size_t in_limit, size_t out_limit);
/* Feeds bytes as if client c had sent them (the fuzz target). -1 when c was
 * dropped by them (c is freed then). */
int qmp_server_feed(struct qmp_client *c, const void *data, size_t len);
unsigned qmp_server_nr_clients(const struct qmp_server *s);
bool qmp_client_negotiated(const struct qmp_client *c);
/* File descriptors a client passed (SCM_RIGHTS on the sendmsg of its
 * command; those of a read replace any earlier ones nobody took). _take_fd:
 * the oldest not yet taken, or -1. _take_named_fd: the one getfd stored
 * under name on this connection (QEMU's monitor_get_fd), or -1. The caller
 * owns the fd it gets; the rest are closed with the connection. */
int qmp_client_take_fd(struct qmp_client *c);
int qmp_client_take_named_fd(struct qmp_client *c, const char *name);
/* Calls fn for every registered command name, in registration order. */
void qmp_foreach_command(struct qmp_server *s, void (*fn)(const char *name, void *opaque), void *opaque);
/* node as QEMU writes it ({"a": 1, "b": [2, 3]}, non-ASCII as \uXXXX). */
char *qmp_to_json(JsonNode *node);

/* Adds a command (replaces one of the same name). */
void qmp_register(struct qmp_server *s, const char *name, qmp_cmd_fn fn, void *opaque, unsigned flags);

/* Sends {"timestamp": {...}, "event": name, "data": data} to every client that
 * has finished negotiation. data: an object node the server takes, or NULL
 * (no "data" member). Main loop thread. */
void qmp_emit_event(struct qmp_server *s, const char *name, JsonNode *data);

/* Argument helpers for handlers: each returns true and stores the member,
 * or (when it is missing and required, or has the wrong type) false with
 * *err = GenericError "Parameter 'key' is missing" / "Invalid parameter
 * type for 'key', expected: string". A missing optional member leaves *out
 * untouched and returns true. */
bool qmp_arg_str(JsonObject *args, const char *key, bool required, const char **out, GError **err);
bool qmp_arg_int(JsonObject *args, const char *key, bool required, int64_t *out, GError **err);
bool qmp_arg_bool(JsonObject *args, const char *key, bool required, bool *out, GError **err);
/* Refuses members of args not in known (NULL-terminated; NULL: none):
 * GenericError "Parameter 'x' is unexpected", as QEMU's strict visitor. */
bool qmp_args_check(JsonObject *args, const char *const *known, GError **err);
/* Builds the QEMU-style {"seconds": s, "microseconds": us} now. */
JsonNode *qmp_timestamp_now(void);

#endif
