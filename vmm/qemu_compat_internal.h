/* Inside the QEMU-style argv front end: what qemu_compat_backends.c (the
 * options that define things: -add-fd, -chardev, -blockdev, -netdev,
 * -object) shares with qemu_compat.c (the machine, its devices and the
 * option table, which use them). Not an interface for the rest of vmm. */
#ifndef VMM_QEMU_COMPAT_INTERNAL_H
#define VMM_QEMU_COMPAT_INTERNAL_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/config.h"

struct qc_chardev {
    char *id;
    char *backend;              /* socket, pty, file, null */
    char *path;
    int fd;
    bool server, wait;
    bool used;
};

struct qc_node {                /* a -blockdev node */
    char *name;
    char *driver;               /* file, host_device, raw */
    char *filename;             /* file/host_device */
    char *file;                 /* raw: the node below */
    char *aio;
    bool read_only;
    bool direct;
    bool used;
};

struct qc_netdev {
    char *id;
    int fd;
    struct net_user_opts *user;     /* -netdev user: its settings (the NIC takes them) */
    bool used;
    char *device;               /* the NIC over it */
};

struct qc_object {
    char *id;
    char *type;                 /* memory-backend-ram / -file / -memfd */
    uint64_t size;
    bool share, hugepages;
};

/* -add-fd set=N,fd=M: inherited fd M is in fd set N, which a path
 * /dev/fdset/N names (libvirt's way of handing over a file it opened). */
struct qc_fdset_fd {
    int set, fd;
};

struct qc_state {
    GPtrArray *chardevs, *nodes, *netdevs, *objects;
    GArray *fdsets;             /* struct qc_fdset_fd, in argv order */
    char *memory_backend;       /* -machine memory-backend= */
    bool have_mem;
};

/* Every key of pairs is in known (NULL-terminated) or in the ignored table
 * for opt; else one line naming opt, what (e.g. the driver) and the key. */
int qc_check_keys(const char *opt, const char *what, GPtrArray *pairs, const char *const *known, GError **err);
/* fd=V as a file descriptor number, or one line naming opt. */
int qc_parse_fd(const char *opt, const char *v, int *out, GError **err);

/* GPtrArray free functions for qc_state's arrays. */
void qc_chardev_free(gpointer p);
void qc_node_free(gpointer p);
void qc_netdev_free(gpointer p);
void qc_object_free(gpointer p);

/* By id/name, or NULL. */
struct qc_chardev *qc_find_chardev(struct qc_state *st, const char *id);
struct qc_node *qc_find_node(struct qc_state *st, const char *name);
struct qc_netdev *qc_find_netdev(struct qc_state *st, const char *id);
/* An id is required: one line naming opt and what when it is missing. */
int qc_need_id(const char *opt, const char *what, const char *id, GError **err);

/* The defining options, each recorded in st for the devices to use. */
int qc_opt_add_fd(struct qc_state *st, const char *arg, GError **err);
/* The fd of fd set `set` (the N of /dev/fdset/N) opened with access
 * (O_RDONLY/O_WRONLY/O_RDWR), or -1. */
int qc_fdset_fd(struct qc_state *st, const char *set, int access);
int qc_opt_chardev(struct qc_state *st, const char *arg, GError **err);
int qc_opt_blockdev(struct qc_state *st, const char *arg, GError **err);
int qc_opt_netdev(struct qc_state *st, const char *arg, GError **err);
int qc_opt_object(struct vm_config *c, struct qc_state *st, const char *arg, GError **err);

#endif
