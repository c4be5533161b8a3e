/* The QEMU-style argv's defining options: -add-fd, -chardev, -blockdev,
 * -netdev and -object record what they define in struct qc_state; the
 * devices (qemu_compat.c) use it, by id. */
#include "vmm/qemu_compat_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/net_user.h"
#include "vmm/options.h"
#include "vmm/qemu_compat.h"

int qc_check_keys(const char *opt, const char *what, GPtrArray *pairs, const char *const *known, GError **err)
{
    for (guint i = 0; i < pairs->len; i++) {
        struct opt_pair *o = pairs->pdata[i];
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(*k, o->key) == 0;
        if (ok || qemu_compat_ignored(opt, o->key, o->value))
            continue;
        const char *sep = *what ? " " : "";
        if (o->value)
            return config_fail(err, "%s%s%s: %s=%s is not supported by vmm", opt, sep, what, o->key, o->value);
        return config_fail(err, "%s%s%s: '%s' is not supported by vmm", opt, sep, what, o->key);
    }
    return 0;
}

int qc_parse_fd(const char *opt, const char *v, int *out, GError **err)
{
    char *end;
    errno = 0;
    long fd = strtol(v, &end, 10);
    if (!g_ascii_isdigit(v[0]) || *end || errno || fd > INT_MAX)
        return config_fail(err, "%s: fd=%s is not a file descriptor number", opt, v);
    *out = (int)fd;
    return 0;
}

void qc_chardev_free(gpointer p)
{
    struct qc_chardev *c = p;
    g_free(c->id);
    g_free(c->backend);
    g_free(c->path);
    g_free(c);
}

void qc_node_free(gpointer p)
{
    struct qc_node *n = p;
    g_free(n->name);
    g_free(n->driver);
    g_free(n->filename);
    g_free(n->file);
    g_free(n->aio);
    g_free(n);
}

void qc_netdev_free(gpointer p)
{
    struct qc_netdev *n = p;
    g_free(n->id);
    g_free(n->device);
    net_user_opts_clear(n->user);
    g_free(n->user);
    g_free(n);
}

void qc_object_free(gpointer p)
{
    struct qc_object *o = p;
    g_free(o->id);
    g_free(o->type);
    g_free(o);
}

struct qc_chardev *qc_find_chardev(struct qc_state *st, const char *id)
{
    for (guint i = 0; i < st->chardevs->len; i++) {
        struct qc_chardev *c = st->chardevs->pdata[i];
        if (strcmp(c->id, id) == 0)
            return c;
    }
    return NULL;
}

struct qc_node *qc_find_node(struct qc_state *st, const char *name)
{
    for (guint i = 0; i < st->nodes->len; i++) {
        struct qc_node *n = st->nodes->pdata[i];
        if (strcmp(n->name, name) == 0)
            return n;
    }
    return NULL;
}

struct qc_netdev *qc_find_netdev(struct qc_state *st, const char *id)
{
    for (guint i = 0; i < st->netdevs->len; i++) {
        struct qc_netdev *n = st->netdevs->pdata[i];
        if (strcmp(n->id, id) == 0)
            return n;
    }
    return NULL;
}

int qc_need_id(const char *opt, const char *what, const char *id, GError **err)
{
    if (!id || !*id)
        return config_fail(err, "%s %s: no id; give id=NAME", opt, what);
    return 0;
}

int qc_opt_add_fd(struct qc_state *st, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-add-fd", arg, NULL, err);
    if (!p)
        return -1;
    static const char *const k[] = { "fd", "set", "opaque", NULL };
    if (qc_check_keys("-add-fd", "", p, k, err) < 0)
        return -1;
    const char *fd = opts_get(p, "fd"), *set = opts_get(p, "set");
    struct qc_fdset_fd f;
    if (!fd || !set)
        return config_fail(err, "-add-fd: give fd=N and set=N");
    if (qc_parse_fd("-add-fd", fd, &f.fd, err) < 0)
        return -1;
    if (qc_parse_fd("-add-fd", set, &f.set, err) < 0) {
        g_clear_error(err);
        return config_fail(err, "-add-fd: set=%s is not a number", set);
    }
    if (f.fd <= STDERR_FILENO)
        return config_fail(err, "-add-fd: fd=%d is stdin, stdout or stderr", f.fd);
    if (fcntl(f.fd, F_GETFD) < 0)
        return config_fail(err, "-add-fd: fd=%d is not open", f.fd);
    g_array_append_val(st->fdsets, f);
    return 0;
}

/* An fd of set "set" (a decimal number) open for access (O_WRONLY: writable,
 * i.e. O_WRONLY or O_RDWR); -1 when there is none. */
int qc_fdset_fd(struct qc_state *st, const char *set, int access)
{
    int n;
    GError *e = NULL;
    if (qc_parse_fd("", set, &n, &e) < 0) {
        g_error_free(e);
        return -1;
    }
    for (guint i = 0; i < st->fdsets->len; i++) {
        struct qc_fdset_fd *f = &g_array_index(st->fdsets, struct qc_fdset_fd, i);
        int fl = fcntl(f->fd, F_GETFL);
        if (f->set != n || fl < 0)
            continue;
        int mode = fl & O_ACCMODE;
        if (mode == O_RDWR || mode == access)
            return f->fd;
    }
    return -1;
}

int qc_opt_chardev(struct qc_state *st, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-chardev", arg, "backend", err);
    if (!p)
        return -1;
    const char *backend = opts_get(p, "backend"), *id = opts_get(p, "id");
    if (!backend)
        return config_fail(err, "-chardev: no backend; give e.g. -chardev pty,id=charserial0");
    if (qc_need_id("-chardev", backend, id, err) < 0)
        return -1;
    if (qc_find_chardev(st, id))
        return config_fail(err, "-chardev %s: id '%s' is used twice", backend, id);
    struct qc_chardev c = { .fd = -1, .wait = true };
    if (strcmp(backend, "socket") == 0) {
        static const char *const k[] = { "backend", "id", "fd", "path", "server", "wait", "nowait", NULL };
        if (qc_check_keys("-chardev", backend, p, k, err) < 0)
            return -1;
        const char *fd = opts_get(p, "fd"), *path = opts_get(p, "path");
        if (fd && qc_parse_fd("-chardev socket", fd, &c.fd, err) < 0)
            return -1;
        if (!!fd == !!path)
            return config_fail(err, "-chardev socket,id=%s: give fd=N or path=PATH", id);
        if (opts_get_bool("-chardev socket", p, "server", &c.server, err) < 0 ||
            opts_get_bool("-chardev socket", p, "wait", &c.wait, err) < 0)
            return -1;
        if (opts_get(p, "nowait"))
            c.wait = false;
        if (!c.server)
            return config_fail(err, "-chardev socket,id=%s: vmm only listens; give server=on", id);
        c.path = g_strdup(path);
    } else if (strcmp(backend, "pty") == 0 || strcmp(backend, "null") == 0) {
        static const char *const k[] = { "backend", "id", NULL };
        if (qc_check_keys("-chardev", backend, p, k, err) < 0)
            return -1;
    } else if (strcmp(backend, "file") == 0) {
        static const char *const k[] = { "backend", "id", "path", "append", NULL };
        if (qc_check_keys("-chardev", backend, p, k, err) < 0)
            return -1;
        const char *path = opts_get(p, "path");
        bool append = false;
        if (!path || !*path)
            return config_fail(err, "-chardev file,id=%s: no path; give path=FILE", id);
        if (opts_get_bool("-chardev file", p, "append", &append, err) < 0)
            return -1;
        /* /dev/fdset/N (an -add-fd set) is resolved when a device takes
         * the chardev, after every -add-fd */
        if (append && !g_str_has_prefix(path, "/dev/fdset/"))
            return config_fail(err, "-chardev file,id=%s: append=on is supported only with path=/dev/fdset/N "
                        "(libvirt's -add-fd); vmm truncates a file it opens", id);
        c.path = g_strdup(path);
    } else {
        return config_fail(err, "-chardev %s: backend '%s' is not supported by vmm (pty, file, socket, null are)", id, backend);
    }
    struct qc_chardev *n = g_new(struct qc_chardev, 1);
    *n = c;
    n->id = g_strdup(id);
    n->backend = g_strdup(backend);
    g_ptr_array_add(st->chardevs, n);
    return 0;
}

int qc_opt_blockdev(struct qc_state *st, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-blockdev", arg, NULL, err);
    if (!p)
        return -1;
    const char *driver = opts_get(p, "driver"), *name = opts_get(p, "node-name");
    if (!driver)
        return config_fail(err, "-blockdev: no driver; give driver=file or driver=raw");
    if (!name || !*name)
        return config_fail(err, "-blockdev %s: no node-name", driver);
    if (qc_find_node(st, name))
        return config_fail(err, "-blockdev %s: node-name '%s' is used twice", driver, name);
    struct qc_node n = { 0 };
    if (opts_get_bool("-blockdev", p, "read-only", &n.read_only, err) < 0 ||
        opts_get_bool("-blockdev", p, "cache.direct", &n.direct, err) < 0)
        return -1;
    if (strcmp(driver, "file") == 0 || strcmp(driver, "host_device") == 0) {
        static const char *const k[] = { "driver", "node-name", "filename", "aio", "cache.direct", "read-only", NULL };
        if (qc_check_keys("-blockdev", driver, p, k, err) < 0)
            return -1;
        const char *f = opts_get(p, "filename"), *aio = opts_get(p, "aio");
        if (!f || !*f)
            return config_fail(err, "-blockdev %s,node-name=%s: no filename", driver, name);
        if (aio && strcmp(aio, "native") != 0 && strcmp(aio, "threads") != 0 && strcmp(aio, "io_uring") != 0)
            return config_fail(err, "-blockdev %s: aio=%s is not one of native, threads, io_uring", name, aio);
        n.filename = g_strdup(f);
        n.aio = g_strdup(aio);
    } else if (strcmp(driver, "raw") == 0) {
        static const char *const k[] = { "driver", "node-name", "file", "cache.direct", "read-only", NULL };
        if (qc_check_keys("-blockdev", driver, p, k, err) < 0)
            return -1;
        const char *f = opts_get(p, "file");
        if (!f || !*f)
            return config_fail(err, "-blockdev raw,node-name=%s: no file (the protocol node's node-name)", name);
        if (!qc_find_node(st, f))
            return config_fail(err, "-blockdev raw,node-name=%s: file '%s' is not a -blockdev node given before it", name, f);
        n.file = g_strdup(f);
    } else {
        return config_fail(err, "-blockdev %s: driver '%s' is not supported by vmm (raw images only: file, host_device, raw)",
                    name, driver);
    }
    struct qc_node *np = g_new(struct qc_node, 1);
    *np = n;
    np->name = g_strdup(name);
    np->driver = g_strdup(driver);
    g_ptr_array_add(st->nodes, np);
    return 0;
}

int qc_opt_netdev(struct qc_state *st, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-netdev", arg, "type", err);
    if (!p)
        return -1;
    const char *type = opts_get(p, "type"), *id = opts_get(p, "id");
    if (!type)
        return config_fail(err, "-netdev: no type; give e.g. -netdev tap,fd=N,id=hostnet0");
    if (strcmp(type, "tap") != 0 && strcmp(type, "user") != 0)
        return config_fail(err, "-netdev %s: vmm supports only tap (with an inherited fd= or fds=) and user", type);
    if (qc_need_id("-netdev", type, id, err) < 0)
        return -1;
    if (qc_find_netdev(st, id))
        return config_fail(err, "-netdev %s: id '%s' is used twice", type, id);
    if (strcmp(type, "user") == 0) {
        /* user networking (libslirp): QEMU's option names and defaults */
        g_autofree char *what = g_strdup_printf("-netdev user,id=%s", id);
        struct net_user_opts *u = g_new(struct net_user_opts, 1);
        net_user_opts_init(u);
        for (guint i = 0; i < p->len; i++) {
            struct opt_pair *o = p->pdata[i];
            if (strcmp(o->key, "type") == 0 || strcmp(o->key, "id") == 0 ||
                qemu_compat_ignored("-netdev", o->key, o->value))
                continue;
            int r = o->value ? net_user_opt(u, what, o->key, o->value, err) : 0;
            if (r == 0)
                config_fail(err, "%s: '%s' is not supported by vmm (supported: " NET_USER_KEYS ")", what, o->key);
            if (r <= 0) {
                (*err)->domain = CONFIG_ERROR;
                net_user_opts_clear(u);
                g_free(u);
                return -1;
            }
        }
        if (net_user_opts_finish(u, what, err) < 0) {
            (*err)->domain = CONFIG_ERROR;
            net_user_opts_clear(u);
            g_free(u);
            return -1;
        }
        struct qc_netdev *nd = g_new0(struct qc_netdev, 1);
        nd->id = g_strdup(id);
        nd->fd = -1;
        nd->user = u;
        g_ptr_array_add(st->netdevs, nd);
        return 0;
    }
    static const char *const k[] = { "type", "id", "fd", "fds", NULL };
    if (qc_check_keys("-netdev", "tap", p, k, err) < 0)
        return -1;
    const char *fd = opts_get(p, "fd"), *fds = opts_get(p, "fds");
    int n = -1;
    if (fd && fds)
        return config_fail(err, "-netdev tap,id=%s: give fd= or fds=, not both", id);
    if (fds) {
        if (strchr(fds, ':'))
            return config_fail(err, "-netdev tap,id=%s: fds=%s: vmm takes one inherited tap fd per NIC (no multiqueue "
                        "<driver queues=...>)", id, fds);
        fd = fds;
    }
    if (!fd)
        return config_fail(err, "-netdev tap,id=%s: no fd=; vmm uses the tap fd libvirt opened (ifname=/script= are not "
                    "supported)", id);
    if (qc_parse_fd("-netdev tap", fd, &n, err) < 0)
        return -1;
    struct qc_netdev *nd = g_new0(struct qc_netdev, 1);
    nd->id = g_strdup(id);
    nd->fd = n;
    g_ptr_array_add(st->netdevs, nd);
    return 0;
}

int qc_opt_object(struct vm_config *c, struct qc_state *st, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-object", arg, "qom-type", err);
    if (!p)
        return -1;
    const char *type = opts_get(p, "qom-type"), *id = opts_get(p, "id");
    if (!type)
        return config_fail(err, "-object: no type; give e.g. -object iothread,id=iothread1");
    if (qemu_compat_ignored("-object", "qom-type", type))
        return 0;
    if (qc_need_id("-object", type, id, err) < 0)
        return -1;
    if (strcmp(type, "iothread") == 0) {
        static const char *const k[] = { "qom-type", "id", NULL };
        if (qc_check_keys("-object", type, p, k, err) < 0)
            return -1;
        if (c->nr_iothreads >= VMM_MAX_IOTHREADS)
            return config_fail(err, "-object iothread: at most %u I/O threads", VMM_MAX_IOTHREADS);
        for (unsigned i = 0; i < c->nr_iothreads; i++)
            if (strcmp(c->iothreads[i], id) == 0)
                return config_fail(err, "-object iothread: id '%s' is used twice", id);
        c->iothreads = g_renew(char *, c->iothreads, c->nr_iothreads + 1);
        c->iothreads[c->nr_iothreads++] = g_strdup(id);
        return 0;
    }
    if (strcmp(type, "memory-backend-ram") == 0 || strcmp(type, "memory-backend-memfd") == 0 ||
        strcmp(type, "memory-backend-file") == 0) {
        static const char *const k[] = { "qom-type", "id", "size", "share", "hugetlb", "mem-path", "x-use-canonical-path-for-ramblock-id", NULL };
        if (qc_check_keys("-object", type, p, k, err) < 0)
            return -1;
        struct qc_object o = { 0 };
        const char *size = opts_get(p, "size");
        if (!size || parse_size(size, 1, &o.size) < 0)
            return config_fail(err, "-object %s,id=%s: size=%s is not a size", type, id, size ? size : "");
        if (opts_get_bool("-object", p, "share", &o.share, err) < 0 ||
            opts_get_bool("-object", p, "hugetlb", &o.hugepages, err) < 0)
            return -1;
        if (strcmp(type, "memory-backend-file") == 0) {
            /* Only hugetlbfs is a file vmm can honour: it maps huge pages. */
            const char *path = opts_get(p, "mem-path");
            if (!path || (strcmp(path, "/dev/hugepages") != 0 && !g_str_has_prefix(path, "/dev/hugepages/") &&
                          !g_str_has_prefix(path, "/dev/hugepages2M")))
                return config_fail(err, "-object memory-backend-file,id=%s: mem-path=%s: vmm backs RAM with anonymous memory, "
                            "its memfd or 2M huge pages (/dev/hugepages), not a file", id, path ? path : "");
            o.hugepages = true;
        } else if (opts_get(p, "mem-path")) {
            return config_fail(err, "-object %s,id=%s: mem-path is for memory-backend-file", type, id);
        }
        struct qc_object *np = g_new(struct qc_object, 1);
        *np = o;
        np->id = g_strdup(id);
        np->type = g_strdup(type);
        g_ptr_array_add(st->objects, np);
        return 0;
    }
    return config_fail(err, "-object %s,id=%s: object type '%s' is not supported by vmm", type, id, type);
}

