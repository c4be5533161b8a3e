#include "vmm/hotplug_qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/net_user.h"
#include "devices/pci/pci_host.h"
#include "devices/tap.h"
#include "vmm/config.h"
#include "vmm/device_qmp.h"
#include "vmm/hotplug.h"
#include "vmm/iothread.h"
#include "vmm/machine.h"
#include "vmm/qmp.h"
#include "vmm/qom.h"

/* A block node: what blockdev-add opened (checked, then closed: the device
 * opens the file itself when it is plugged, and again after each reset), or
 * one a disk given at launch has: its -blockdev nodes (QEMU-style argv) or,
 * for a --disk, one node named by the disk's id. */
struct block_node {
    char *name;
    char *driver;           /* file, host_device, raw (query-named-block-nodes' drv) */
    char *filename;
    bool readonly;
    bool direct;            /* cache.direct */
    enum block_aio aio;
    char *below;            /* raw over a named file node: that node's name */
    char *device;           /* the disk using it, or NULL */
    unsigned parents;       /* nodes over it (raw over this file node) */
};

/* A network backend: its tap belongs here until a device takes it (then it
 * sits in the config's NIC, and comes back here when the device goes). A
 * NIC given at launch has one too: its -netdev's id (QEMU-style argv) or,
 * for a --net, its own id. */
struct netdev {
    char *id;
    struct tap *tap;        /* NULL while a boot-time NIC holds it */
    char *ifname;
    char *user;             /* the device using it, or NULL */
};

/* A disk or NIC as QOM shows it: /machine/peripheral/ID with "type" and
 * "drive" (the block node) or "netdev"; empty for --disk / --net devices,
 * which have none. */
struct qom_device {
    char *path;
    char *type;
    char *backend;
};

static struct {
    GPtrArray *nodes;       /* struct block_node * */
    GPtrArray *netdevs;     /* struct netdev * */
    GPtrArray *devices;     /* struct qom_device * */
} hp;

static void init(void)
{
    if (!hp.nodes) {
        hp.nodes = g_ptr_array_new();
        hp.netdevs = g_ptr_array_new();
        hp.devices = g_ptr_array_new();
    }
}

static JsonNode *qom_str(const char *s)
{
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(n, s);
    return n;
}

static JsonNode *get_type(void *opaque, GError **err)
{
    return qom_str(((struct qom_device *)opaque)->type);
}

static JsonNode *get_backend(void *opaque, GError **err)
{
    return qom_str(((struct qom_device *)opaque)->backend);
}

static void qom_device_add(const char *id, bool blk, const char *backend)
{
    struct qom_device *d = g_new0(struct qom_device, 1);
    d->path = g_strdup_printf("/machine/peripheral/%s", id);
    d->type = g_strdup(blk ? "virtio-blk-pci" : "virtio-net-pci");
    d->backend = g_strdup(backend ? backend : "");
    qom_add(d->path, d->type, "type", "string", get_type, NULL, d);
    qom_add(d->path, d->type, blk ? "drive" : "netdev", "str", get_backend, NULL, d);
    g_ptr_array_add(hp.devices, d);
}

static void qom_device_remove(const char *id)
{
    g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", id);
    qom_remove(path);
    for (guint i = 0; i < hp.devices->len; i++) {
        struct qom_device *d = g_ptr_array_index(hp.devices, i);
        if (strcmp(d->path, path) == 0) {
            g_ptr_array_remove_index(hp.devices, i);
            g_free(d->path);
            g_free(d->type);
            g_free(d->backend);
            g_free(d);
            break;
        }
    }
}

static void fail(GError **err, enum qmp_error_class cls, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void fail(GError **err, enum qmp_error_class cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(err, QMP_ERROR, cls, msg);
}

static struct block_node *find_node(const char *name)
{
    for (guint i = 0; hp.nodes && i < hp.nodes->len; i++) {
        struct block_node *n = g_ptr_array_index(hp.nodes, i);
        if (strcmp(n->name, name) == 0)
            return n;
    }
    return NULL;
}

static struct netdev *find_netdev(const char *id)
{
    for (guint i = 0; hp.netdevs && i < hp.netdevs->len; i++) {
        struct netdev *n = g_ptr_array_index(hp.netdevs, i);
        if (strcmp(n->id, id) == 0)
            return n;
    }
    return NULL;
}

/* The disk `id` is gone: its node is free. */
static void release_device(const char *id)
{
    for (guint i = 0; hp.nodes && i < hp.nodes->len; i++) {
        struct block_node *n = g_ptr_array_index(hp.nodes, i);
        if (g_strcmp0(n->device, id) == 0)
            g_clear_pointer(&n->device, g_free);
    }
}

/* ---- blockdev-add / blockdev-del ---- */

static bool parse_aio(const char *s, enum block_aio *aio, GError **err)
{
    if (strcmp(s, "threads") == 0)
        *aio = BLOCK_AIO_THREADS;
    else if (strcmp(s, "native") == 0)
        *aio = BLOCK_AIO_NATIVE;
    else if (strcmp(s, "io_uring") == 0)
        *aio = BLOCK_AIO_IO_URING;
    else {
        fail(err, QMP_ERR_GENERIC, "Parameter 'aio' does not accept value '%s'", s);
        return false;
    }
    return true;
}

/* cache: {"direct": bool, "no-flush": bool} */
static bool parse_cache(JsonObject *o, bool *direct, GError **err)
{
    if (!json_object_has_member(o, "cache"))
        return true;
    JsonNode *c = json_object_get_member(o, "cache");
    if (!JSON_NODE_HOLDS_OBJECT(c)) {
        fail(err, QMP_ERR_GENERIC, "Invalid parameter type for 'cache', expected: object");
        return false;
    }
    return qmp_arg_bool(json_node_get_object(c), "direct", false, direct, err);
}

/* The members of a "file" driver object (top level or under "file"). */
static bool parse_file(JsonObject *o, struct block_node *n, GError **err)
{
    const char *filename = NULL, *aio = NULL;
    if (!qmp_arg_str(o, "filename", true, &filename, err) || !qmp_arg_str(o, "aio", false, &aio, err) ||
        !parse_cache(o, &n->direct, err))
        return false;
    if (aio && !parse_aio(aio, &n->aio, err))
        return false;
    n->filename = g_strdup(filename);
    return true;
}

static void node_free(struct block_node *n)
{
    g_free(n->name);
    g_free(n->driver);
    g_free(n->filename);
    g_free(n->below);
    g_free(n->device);
    g_free(n);
}

static JsonNode *cmd_blockdev_add(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    init();
    const char *driver = NULL, *name = NULL;
    if (!qmp_arg_str(args, "driver", true, &driver, err) || !qmp_arg_str(args, "node-name", true, &name, err))
        return NULL;
    if (find_node(name)) {
        fail(err, QMP_ERR_GENERIC, "Duplicate nodes with node-name='%s'", name);
        return NULL;
    }
    struct block_node *n = g_new0(struct block_node, 1);
    n->aio = BLOCK_AIO_IO_URING;
    bool ro = false;
    struct block_node *below = NULL;
    bool ok = qmp_arg_bool(args, "read-only", false, &ro, err) && parse_cache(args, &n->direct, err);
    if (ok && strcmp(driver, "file") == 0) {
        ok = parse_file(args, n, err);
    } else if (ok && strcmp(driver, "raw") == 0) {
        JsonNode *f = json_object_has_member(args, "file") ? json_object_get_member(args, "file") : NULL;
        if (!f) {
            fail(err, QMP_ERR_GENERIC, "Parameter 'file' is missing");
            ok = false;
        } else if (JSON_NODE_HOLDS_VALUE(f) && json_node_get_value_type(f) == G_TYPE_STRING) {
            /* A reference to a "file" node added before (libvirt's way). */
            const char *ref = json_node_get_string(f);
            /* QEMU lets several nodes sit over one file node. */
            below = find_node(ref);
            if (!below) {
                fail(err, QMP_ERR_GENERIC, "Cannot find device='' nor node-name='%s'", ref);
                ok = false;
            } else {
                n->filename = g_strdup(below->filename);
                n->aio = below->aio;
                n->direct = n->direct || below->direct;
                ro = ro || below->readonly;
            }
        } else if (JSON_NODE_HOLDS_OBJECT(f)) {
            JsonObject *fo = json_node_get_object(f);
            const char *fdrv = NULL;
            ok = qmp_arg_str(fo, "driver", true, &fdrv, err);
            if (ok && strcmp(fdrv, "file") != 0) {
                fail(err, QMP_ERR_GENERIC, "Parameter 'driver' does not accept value '%s'", fdrv);
                ok = false;
            }
            ok = ok && parse_file(fo, n, err);
        } else {
            fail(err, QMP_ERR_GENERIC, "Invalid parameter type for 'file', expected: BlockdevRef");
            ok = false;
        }
    } else if (ok) {
        fail(err, QMP_ERR_GENERIC, "Parameter 'driver' does not accept value '%s'", driver);
        ok = false;
    }
    if (ok && !below) {
        /* As QEMU, the file must open now, in the mode the node asks for. */
        int fd = open(n->filename, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (fd < 0) {
            fail(err, QMP_ERR_GENERIC, "Could not open '%s': %s", n->filename, g_strerror(errno));
            ok = false;
        } else {
            close(fd);
        }
    }
    if (!ok) {
        node_free(n);
        return NULL;
    }
    n->name = g_strdup(name);
    n->driver = g_strdup(driver);
    n->readonly = ro;
    if (below) {
        n->below = g_strdup(below->name);
        below->parents++;
    }
    g_ptr_array_add(hp.nodes, n);
    return NULL;
}

static JsonNode *cmd_blockdev_del(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    init();
    static const char *const known[] = { "node-name", NULL };
    const char *name = NULL;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "node-name", true, &name, err))
        return NULL;
    struct block_node *n = find_node(name);
    if (!n) {
        fail(err, QMP_ERR_GENERIC, "Failed to find node with node-name='%s'", name);
        return NULL;
    }
    /* QEMU 7.2's words: a node under a device has a BlockBackend; one
     * under another node is referenced twice. */
    if (n->device) {
        fail(err, QMP_ERR_GENERIC, "Node %s is in use", name);
        return NULL;
    }
    if (n->parents) {
        fail(err, QMP_ERR_GENERIC, "Block device %s is in use", name);
        return NULL;
    }
    struct block_node *below = n->below ? find_node(n->below) : NULL;
    if (below && below->parents)
        below->parents--;
    g_ptr_array_remove(hp.nodes, n);
    node_free(n);
    return NULL;
}

/* ---- netdev_add / netdev_del ---- */

/* netdev_add type user: QEMU's NetdevUserOptions members vmm implements
 * (hostfwd a list of {"str": ...}); the others are refused by name. The
 * backend (a slirp instance, its host forwards listening) is opened now. */
static JsonNode *netdev_add_user(const char *id, JsonObject *args, GError **err)
{
    g_autofree char *what = g_strdup_printf("netdev '%s' (user)", id);
    struct net_user_opts o;
    net_user_opts_init(&o);
    g_autoptr(GList) members = json_object_get_members(args);
    GError *e = NULL;
    for (GList *l = members; l && !e; l = l->next) {
        const char *k = l->data;
        JsonNode *v = json_object_get_member(args, k);
        if (strcmp(k, "type") == 0 || strcmp(k, "id") == 0)
            continue;
        if (strcmp(k, "hostfwd") == 0 && JSON_NODE_HOLDS_ARRAY(v)) {
            JsonArray *a = json_node_get_array(v);
            for (guint i = 0; i < json_array_get_length(a) && !e; i++) {
                JsonNode *el = json_array_get_element(a, i);
                JsonObject *eo = JSON_NODE_HOLDS_OBJECT(el) ? json_node_get_object(el) : NULL;
                JsonNode *sn = eo ? json_object_get_member(eo, "str") : NULL;
                /* (json_object_get_string_member on a non-value member is a
                 * GLib critical on stderr: the type is checked first) */
                const char *str = sn && JSON_NODE_HOLDS_VALUE(sn) && json_node_get_value_type(sn) == G_TYPE_STRING
                                      ? json_node_get_string(sn)
                                      : NULL;
                if (!str)
                    g_set_error(&e, QMP_ERROR, 0, "Parameter 'hostfwd' expects a list of {\"str\": ...}");
                else
                    net_user_opt(&o, what, k, str, &e);
            }
            continue;
        }
        g_autofree char *sv = NULL;
        if (JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == G_TYPE_STRING)
            sv = g_strdup(json_node_get_string(v));
        else if (JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == G_TYPE_BOOLEAN)
            sv = g_strdup(json_node_get_boolean(v) ? "on" : "off");
        if (!sv) {
            g_set_error(&e, QMP_ERROR, 0, "Parameter '%s' is not supported by vmm's user networking here", k);
            break;
        }
        if (net_user_opt(&o, what, k, sv, &e) == 0)
            g_set_error(&e, QMP_ERROR, 0, "%s: '%s' is not supported by vmm (supported: " NET_USER_KEYS ")", what, k);
    }
    struct tap *tap = NULL;
    if (!e && net_user_opts_finish(&o, what, &e) == 0)
        tap = net_user_open(&o, id, &e);
    net_user_opts_clear(&o);
    if (!tap) {
        fail(err, QMP_ERR_GENERIC, "%s", e->message);
        g_error_free(e);
        return NULL;
    }
    struct netdev *n = g_new0(struct netdev, 1);
    n->id = g_strdup(id);
    n->tap = tap;
    g_ptr_array_add(hp.netdevs, n);
    return NULL;
}

static JsonNode *cmd_netdev_add(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    init();
    const char *type = NULL, *id = NULL, *ifname = NULL, *fdstr = NULL;
    if (!qmp_arg_str(args, "type", true, &type, err) || !qmp_arg_str(args, "id", true, &id, err) ||
        !qmp_arg_str(args, "ifname", false, &ifname, err) || !qmp_arg_str(args, "fd", false, &fdstr, err))
        return NULL;
    if (strcmp(type, "tap") != 0 && strcmp(type, "user") != 0) {
        fail(err, QMP_ERR_GENERIC, "Parameter 'type' does not accept value '%s'", type);
        return NULL;
    }
    if (find_netdev(id)) {
        fail(err, QMP_ERR_GENERIC, "Duplicate ID '%s'", id);
        return NULL;
    }
    if (strcmp(type, "user") == 0)
        return netdev_add_user(id, args, err);
    if (!ifname == !fdstr) {
        fail(err, QMP_ERR_GENERIC, ifname ? "ifname= and fd= are mutually exclusive"
                                          : "netdev '%s': give ifname (a tap) or fd (an inherited tap fd)", id);
        return NULL;
    }
    GError *e = NULL;
    struct tap *tap;
    if (fdstr) {
        /* A name getfd stored on this connection (libvirt: "tapfd-net10",
         * the fd sent with SCM_RIGHTS), else, as QEMU's monitor, a decimal
         * fd number as the fd itself. */
        int named = g_ascii_isdigit(fdstr[0]) ? -1 : qmp_client_take_named_fd(ctx->client, fdstr);
        char *end;
        errno = 0;
        long fd = named >= 0 ? named : strtol(fdstr, &end, 10);
        if (named < 0 && (errno || end == fdstr || *end || fd < 0 || fd > INT32_MAX)) {
            fail(err, QMP_ERR_GENERIC, "File descriptor named '%s' has not been found", fdstr);
            return NULL;
        }
        tap = tap_from_fd((int)fd, &e);
        if (!tap && named >= 0)
            close(named);   /* taken from the connection: nobody else will */
    } else {
        tap = tap_open(ifname, 1, &e);
    }
    if (!tap) {
        fail(err, QMP_ERR_GENERIC, "%s", e->message);
        g_error_free(e);
        return NULL;
    }
    struct netdev *n = g_new0(struct netdev, 1);
    n->id = g_strdup(id);
    n->tap = tap;
    n->ifname = g_strdup(ifname);
    g_ptr_array_add(hp.netdevs, n);
    return NULL;
}

static JsonNode *cmd_netdev_del(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    init();
    static const char *const known[] = { "id", NULL };
    const char *id = NULL;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "id", true, &id, err))
        return NULL;
    struct netdev *n = find_netdev(id);
    if (!n) {
        fail(err, QMP_ERR_DEVICE_NOT_FOUND, "Device '%s' not found", id);
        return NULL;
    }
    /* As QEMU, also while a NIC uses it: the netdev is gone at once. QEMU
     * closes the tap then and the NIC's link goes down; vmm's NIC keeps
     * the tap (it is not the netdev's any more) until the NIC is removed,
     * which closes it. */
    if (!n->user && n->tap)
        tap_close(n->tap);
    g_free(n->id);
    g_free(n->user);
    g_free(n->ifname);
    g_ptr_array_remove(hp.netdevs, n);
    g_free(n);
    return NULL;
}

/* ---- device_add / device_del ---- */

/* addr: "slot[.fn]" in hex, as QEMU's PCI devfn property ("5", "0x5", "05.0"). */
static int parse_addr(const char *s, const char *driver, GError **err)
{
    char *end;
    errno = 0;
    unsigned long slot = strtoul(s, &end, 16), fn = 0;
    if (!errno && end != s && *end == '.') {
        const char *f = end + 1;
        fn = strtoul(f, &end, 16);
        if (end == f)
            errno = EINVAL;
    }
    if (errno || end == s || *end || slot >= PCI_MAX_SLOTS || fn > 7) {
        fail(err, QMP_ERR_GENERIC, "Property '%s.addr' doesn't take value '%s'", driver, s);
        return -1;
    }
    if (fn) {
        fail(err, QMP_ERR_GENERIC, "PCI: function %lu of slot %lu: vmm plugs single-function devices only", fn,
             slot);
        return -1;
    }
    return (int)slot;
}

/* The slot checks QEMU makes, with its messages; -1 (first free) or the slot. */
static int check_slot(struct machine *m, int slot, const char *driver, GError **err)
{
    if (!m->vm_live)
        return slot;
    struct vm *vm = &m->vm;
    uint32_t used = pci_host_slots_used(vm->pci);
    if (slot < 0) {
        if (!(vm->pci_hotplug_slots & ~used)) {
            fail(err, QMP_ERR_GENERIC, "PCI: no slot/function available for %s, all in use or reserved", driver);
            return -2;
        }
        return -1;
    }
    if (used & (1u << slot)) {
        fail(err, QMP_ERR_GENERIC, "PCI: slot %d function 0 not available for %s, in use by another device", slot,
             driver);
        return -2;
    }
    if (!(vm->pci_hotplug_slots & (1u << slot))) {
        fail(err, QMP_ERR_GENERIC, "PCI: slot %d of bus 'pcie.0' does not support hotplugging", slot);
        return -2;
    }
    return slot;
}

static JsonNode *add_blk(struct machine *m, JsonObject *args, const char *id, int slot, GError **err)
{
    const char *drive = NULL, *serial = NULL, *iothread = NULL;
    int64_t nq = 1;
    if (!qmp_arg_str(args, "drive", false, &drive, err) || !qmp_arg_str(args, "serial", false, &serial, err) ||
        !qmp_arg_int(args, "num-queues", false, &nq, err) || !qmp_arg_str(args, "iothread", false, &iothread, err))
        return NULL;
    if (iothread && !iothread_find(iothread)) {
        fail(err, QMP_ERR_GENERIC, "Property 'virtio-blk-pci.iothread' can't find value '%s'", iothread);
        return NULL;
    }
    if (!drive) {
        fail(err, QMP_ERR_GENERIC, "drive property not set");
        return NULL;
    }
    struct block_node *n = find_node(drive);
    if (!n) {
        fail(err, QMP_ERR_GENERIC, "Property 'virtio-blk-device.drive' can't find value '%s'", drive);
        return NULL;
    }
    if (n->device) {
        fail(err, QMP_ERR_GENERIC, "Drive '%s' is already in use by '%s'", drive, n->device);
        return NULL;
    }
    if (serial && strlen(serial) > VMM_DISK_SERIAL_MAX) {
        fail(err, QMP_ERR_GENERIC, "serial '%s' is longer than %d bytes", serial, VMM_DISK_SERIAL_MAX);
        return NULL;
    }
    if (nq < 1 || nq > VMM_DISK_MAX_QUEUES) {
        fail(err, QMP_ERR_GENERIC, "Property 'virtio-blk-pci.num-queues' doesn't take value %lld (1 to %u)",
             (long long)nq, VMM_DISK_MAX_QUEUES);
        return NULL;
    }
    if (m->cfg->nr_disks >= VMM_MAX_DISKS) {
        fail(err, QMP_ERR_GENERIC, "vmm takes at most %u disks", VMM_MAX_DISKS);
        return NULL;
    }
    struct disk_config d = {
        .id = (char *)id,
        .path = n->filename,
        .readonly = n->readonly,
        .aio = n->aio,
        .cache = n->direct ? BLOCK_CACHE_NONE : BLOCK_CACHE_WRITEBACK,
        .num_queues = (unsigned)nq,
        .serial = (char *)serial,
        .iothread = (char *)iothread,
        .node_name = n->name,
    };
    d.pci_slot = slot > 0 ? slot : 0;
    if (m->vm_live) {
        GError *e = NULL;
        int r = vm_hotplug_disk(&m->vm, &d, slot, &e);
        if (r < 0) {
            fail(err, QMP_ERR_GENERIC, "%s", e->message);
            g_error_free(e);
            return NULL;
        }
        d.pci_slot = r;     /* kept across resets */
    }
    config_add_disk(m->cfg, &d);
    n->device = g_strdup(id);
    qom_device_add(id, true, drive);
    return NULL;
}

static JsonNode *add_net(struct machine *m, JsonObject *args, const char *id, int slot, GError **err)
{
    const char *netdev = NULL, *mac = NULL;
    if (!qmp_arg_str(args, "netdev", false, &netdev, err) || !qmp_arg_str(args, "mac", false, &mac, err))
        return NULL;
    if (!netdev) {
        fail(err, QMP_ERR_GENERIC, "netdev property not set");
        return NULL;
    }
    struct netdev *nd = find_netdev(netdev);
    if (!nd) {
        fail(err, QMP_ERR_GENERIC, "Property 'virtio-net-device.netdev' can't find value '%s'", netdev);
        return NULL;
    }
    if (nd->user) {
        fail(err, QMP_ERR_GENERIC, "Property 'virtio-net-device.netdev' can't take value '%s', it's in use",
             netdev);
        return NULL;
    }
    struct net_config n = { .id = (char *)id, .tap = nd->ifname, .fd = -1, .num_queues = 1, .backend = nd->tap };
    if (mac) {
        if (parse_mac(mac, n.mac) < 0 || (n.mac[0] & 1)) {
            fail(err, QMP_ERR_GENERIC, "Property 'virtio-net-pci.mac' doesn't take value '%s'", mac);
            return NULL;
        }
        n.mac_set = true;
    }
    if (m->cfg->nr_nets >= VMM_MAX_NICS) {
        fail(err, QMP_ERR_GENERIC, "vmm takes at most %u NICs", VMM_MAX_NICS);
        return NULL;
    }
    n.pci_slot = slot > 0 ? slot : 0;
    if (m->vm_live) {
        GError *e = NULL;
        int r = vm_hotplug_net(&m->vm, &n, slot, &e);
        if (r < 0) {
            fail(err, QMP_ERR_GENERIC, "%s", e->message);
            g_error_free(e);
            return NULL;
        }
        n.pci_slot = r;     /* kept across resets */
    }
    config_add_net(m->cfg, &n);
    nd->user = g_strdup(id);
    qom_device_add(id, false, netdev);
    return NULL;
}

static bool pci_takes(struct machine *m, const char *driver)
{
    return strcmp(driver, "virtio-blk-pci") == 0 || strcmp(driver, "virtio-net-pci") == 0;
}

/* An id or a QOM path ("/machine/peripheral/ID"). */
static const char *id_of(const char *id)
{
    return g_str_has_prefix(id, "/machine/peripheral/") ? id + strlen("/machine/peripheral/") : id;
}

static bool pci_owns(struct machine *m, const char *id)
{
    id = id_of(id);
    return config_has_device(m->cfg, id) || (m->vm_live && vm_hotplug_slot_of(&m->vm, id) >= 0);
}

/* device_add of a disk or NIC; the dispatcher (vmm/device_qmp.c) checked
 * the driver and that the id is new. */
static bool pci_add(struct machine *m, const char *driver, JsonObject *args, GError **err)
{
    init();
    const char *id = NULL, *addr = NULL, *bus = NULL;
    if (!qmp_arg_str(args, "id", false, &id, err) || !qmp_arg_str(args, "addr", false, &addr, err) ||
        !qmp_arg_str(args, "bus", false, &bus, err))
        return false;
    if (!id) {
        /* QEMU would name it /machine/peripheral-anon/device[N]; without an
         * id it could never be removed, so vmm wants one. */
        fail(err, QMP_ERR_GENERIC, "Parameter 'id' is missing");
        return false;
    }
    if (bus && strcmp(bus, "pcie.0") != 0 && strcmp(bus, "pci.0") != 0) {
        fail(err, QMP_ERR_GENERIC, "Bus '%s' not found", bus);
        return false;
    }
    int slot = -1;
    if (addr && (slot = parse_addr(addr, driver, err)) < 0)
        return false;
    if ((slot = check_slot(m, slot, driver, err)) < -1)
        return false;
    bool blk = strcmp(driver, "virtio-blk-pci") == 0;
    GError *e = NULL;
    (blk ? add_blk : add_net)(m, args, id, slot, &e);
    if (e) {
        g_propagate_error(err, e);
        return false;
    }
    return true;
}

static bool pci_del(struct machine *m, const char *id, GError **err)
{
    init();
    id = id_of(id);
    if (m->vm_live && vm_hotplug_request_unplug(&m->vm, id) == 0)
        return true;
    if (!m->vm_live)
        hotplug_forget_device(m, id);
    /* Else in the config but no longer in the VM: the guest ejected it and
     * its removal is on its way. */
    return true;
}

static const struct device_qmp_kind pci_kind = {
    .name = "pci",
    .takes = pci_takes,
    .owns = pci_owns,
    .add = pci_add,
    .del = pci_del,
};

/* The machine side took the device out of the config: its block node or
 * netdev is free again, its QOM object gone. Returns whether the tap is a
 * netdev's (kept) rather than a --net NIC's own. */
static bool device_removed(struct machine *m, const char *id, struct tap *tap)
{
    init();
    release_device(id);
    bool kept = false;
    for (guint i = 0; i < hp.netdevs->len; i++) {
        struct netdev *n = g_ptr_array_index(hp.netdevs, i);
        if (g_strcmp0(n->user, id) == 0) {
            /* The netdev has its tap again (a boot-time NIC's too). */
            g_clear_pointer(&n->user, g_free);
            if (tap)
                n->tap = tap;
            kept = tap != NULL;
        }
    }
    qom_device_remove(id);
    return kept;
}

/* query-named-block-nodes: every named node, newest first as QEMU 7.2 lists
 * them (-blockdev's and blockdev-add's alike; a --disk's node is named by
 * the disk's id). */
static JsonNode *cmd_query_named_block_nodes(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    init();
    static const char *const known[] = { "flat", NULL };
    bool flat;
    if (!qmp_args_check(args, known, err) || !qmp_arg_bool(args, "flat", false, &flat, err))
        return NULL;
    JsonArray *a = json_array_new();
    for (guint i = hp.nodes->len; i-- > 0;) {
        const struct block_node *n = g_ptr_array_index(hp.nodes, i);
        json_array_add_object_element(a, machine_qmp_block_info(n->driver, n->name, n->filename, n->readonly,
                                                                n->direct));
    }
    JsonNode *r = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(r, a);
    return r;
}

void hotplug_qmp_boot_node(const char *name, const char *driver, const char *filename, const char *below,
                           bool readonly, bool direct, enum block_aio aio)
{
    init();
    struct block_node *n = g_new0(struct block_node, 1);
    n->name = g_strdup(name);
    n->driver = g_strdup(driver);
    n->filename = g_strdup(filename);
    n->readonly = readonly;
    n->direct = direct;
    n->aio = aio;
    struct block_node *b = below ? find_node(below) : NULL;
    if (b) {
        n->below = g_strdup(below);
        b->parents++;
    }
    g_ptr_array_add(hp.nodes, n);
}

void hotplug_qmp_boot_netdev(const char *id, const char *device)
{
    init();
    struct netdev *n = g_new0(struct netdev, 1);
    n->id = g_strdup(id);
    n->user = g_strdup(device);
    g_ptr_array_add(hp.netdevs, n);
}

void hotplug_qmp_register(struct qmp_server *s, struct machine *m)
{
    init();
    hotplug_set_removed_hook(device_removed);
    qom_qmp_register(s);
    qmp_register(s, "blockdev-add", cmd_blockdev_add, m, 0);
    qmp_register(s, "blockdev-del", cmd_blockdev_del, m, 0);
    qmp_register(s, "netdev_add", cmd_netdev_add, m, 0);
    qmp_register(s, "netdev_del", cmd_netdev_del, m, 0);
    qmp_register(s, "query-named-block-nodes", cmd_query_named_block_nodes, m, 0);
    device_qmp_register_kind(s, m, &pci_kind);
}

void hotplug_qmp_add_boot_devices(struct machine *m)
{
    /* The disks and NICs given at launch are in the registry as hot-added
     * ones are: a -blockdev node (hotplug_qmp_boot_node) or else a node
     * named by the disk's id; a -netdev (hotplug_qmp_boot_netdev) or else a
     * netdev named by the NIC's id. */
    for (unsigned i = 0; i < m->cfg->nr_disks; i++) {
        const struct disk_config *d = &m->cfg->disks[i];
        const char *name = d->node_name ? d->node_name : d->id;
        struct block_node *n = find_node(name);
        if (!n) {
            hotplug_qmp_boot_node(name, "raw", d->path, NULL, d->readonly, d->cache == BLOCK_CACHE_NONE, d->aio);
            n = find_node(name);
        }
        if (!n->device)
            n->device = g_strdup(d->id);
        qom_device_add(d->id, true, name);
    }
    for (unsigned i = 0; i < m->cfg->nr_nets; i++) {
        const struct net_config *c = &m->cfg->nets[i];
        const char *name = c->id;
        for (guint k = 0; k < hp.netdevs->len; k++) {
            struct netdev *n = g_ptr_array_index(hp.netdevs, k);
            if (g_strcmp0(n->user, c->id) == 0)
                name = n->id;
        }
        if (!find_netdev(name))
            hotplug_qmp_boot_netdev(name, c->id);
        qom_device_add(c->id, false, name);
    }
}
