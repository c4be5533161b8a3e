/* vmmctl: the info, hotplug, memory and migrate commands (vmmctl.h). */
#include "vmmctl.h"

/* ---- info ---- */

/* Runs cmd; on error prints "  (desc)" style note under heading and returns
 * NULL. Records the return (or error) in all for --json. */
static JsonNode *info_query(struct conn *c, const char *cmd, JsonObject *all, const char *key)
{
    struct reply r;
    if (!conn_execute(c, cmd, NULL, &r)) {
        if (opt_json) {
            json_object_set_member(all, key, obj_new("error", obj_new("class", jstr(r.err_class),
                                                                      "desc", jstr(r.err_desc), NULL), NULL));
        } else if (is_command_not_found(&r)) {
            printf("%-9s (not supported by this VM: no %s)\n", key, cmd);
        } else {
            printf("%-9s (%s: %s)\n", key, cmd, r.err_desc);
        }
        reply_clear(&r);
        return NULL;
    }
    JsonNode *ret = r.ret ? r.ret : obj_new(NULL);
    if (opt_json)
        json_object_set_member(all, key, json_node_copy(ret));
    return ret;
}

static void info_pci_bus(JsonArray *devs, struct table *t)
{
    for (unsigned i = 0; devs && i < json_array_get_length(devs); i++) {
        JsonObject *d = obj_of(json_array_get_element(devs, i));
        int64_t bus = 0, slot = 0, fn = 0, ven = 0, dev = 0, cls = 0;
        int_member(d, "bus", &bus);
        int_member(d, "slot", &slot);
        int_member(d, "function", &fn);
        JsonObject *id = obj_of(member(d, "id"));
        int_member(id, "vendor", &ven);
        int_member(id, "device", &dev);
        JsonObject *ci = obj_of(member(d, "class_info"));
        int_member(ci, "class", &cls);
        const char *desc = str_member(ci, "desc");
        table_add(t, g_strdup_printf("%02" PRIx64 ":%02" PRIx64 ".%" PRIx64, bus, slot, fn),
                  g_strdup_printf("%04" PRIx64 ":%04" PRIx64, ven, dev),
                  g_strdup_printf("%04" PRIx64, cls), scalar_text(d, "qdev_id"),
                  g_strdup(desc ? desc : ""));
        JsonObject *br = obj_of(member(d, "pci_bridge"));
        if (br)
            info_pci_bus(arr_of(member(br, "devices")), t);
    }
}

int cmd_info(struct conn *c, const char *name, int argc, char **argv)
{
    struct cargs a;
    parse_cmd_args(name, argc, argv, NULL, &a);
    want_pos(name, &a, 0, 0, "");
    JsonObject *all = json_object_new();
    JsonNode *n;

    if ((n = info_query(c, "query-version", all, "version"))) {
        JsonObject *v = obj_of(n);
        JsonObject *q = obj_of(member(v, "qemu"));
        int64_t ma = 0, mi = 0, mc = 0;
        int_member(q, "major", &ma);
        int_member(q, "minor", &mi);
        int_member(q, "micro", &mc);
        const char *pkg = str_member(v, "package");
        if (!opt_json)
            printf("%-9s %" PRId64 ".%" PRId64 ".%" PRId64 "%s%s\n", "version", ma, mi, mc,
                   pkg && *pkg ? " " : "", pkg ? pkg : "");
    }
    if ((n = info_query(c, "query-name", all, "name")) && !opt_json) {
        const char *nm = str_member(obj_of(n), "name");
        printf("%-9s %s\n", "name", nm ? nm : "(none)");
    }
    if ((n = info_query(c, "query-uuid", all, "uuid")) && !opt_json) {
        const char *u = str_member(obj_of(n), "UUID");
        printf("%-9s %s\n", "uuid", u ? u : "(none)");
    }
    if ((n = info_query(c, "query-status", all, "status")) && !opt_json) {
        const char *s = str_member(obj_of(n), "status");
        printf("%-9s %s\n", "status", s ? s : "?");
    }
    if ((n = info_query(c, "query-cpus-fast", all, "cpus")) && !opt_json) {
        JsonArray *cpus = arr_of(n);
        printf("cpus      %u\n", cpus ? json_array_get_length(cpus) : 0);
        struct table *t = table_new(4, "INDEX", "THREAD-ID", "PROPS", "QOM-PATH");
        for (unsigned i = 0; cpus && i < json_array_get_length(cpus); i++) {
            JsonObject *cpu = obj_of(json_array_get_element(cpus, i));
            JsonObject *props = obj_of(member(cpu, "props"));
            GString *p = g_string_new(NULL);
            GList *keys = props ? json_object_get_members(props) : NULL;
            for (GList *k = keys; k; k = k->next) {
                char *v = scalar_text(props, k->data);
                g_string_append_printf(p, "%s%s=%s", p->len ? " " : "", (char *)k->data, v);
                g_free(v);
            }
            g_list_free(keys);
            table_add(t, scalar_text(cpu, "cpu-index"), scalar_text(cpu, "thread-id"),
                      g_string_free(p, FALSE), scalar_text(cpu, "qom-path"));
        }
        table_print(t, "  ");
    }
    if ((n = info_query(c, "query-block", all, "block")) && !opt_json) {
        printf("block\n");
        JsonArray *blk = arr_of(n);
        struct table *t = table_new(5, "DEVICE", "NODE", "FORMAT", "RO", "FILE");
        for (unsigned i = 0; blk && i < json_array_get_length(blk); i++) {
            JsonObject *b = obj_of(json_array_get_element(blk, i));
            JsonObject *ins = obj_of(member(b, "inserted"));
            const char *dev = str_member(b, "device");
            const char *qdev = str_member(b, "qdev");
            char *shown = g_strdup(dev && *dev ? dev : qdev ? qdev : "");
            /* /machine/peripheral/ID/virtio-backend: the device's id */
            if (g_str_has_prefix(shown, "/machine/peripheral/")) {
                char *id = g_strdup(shown + strlen("/machine/peripheral/"));
                char *slash = strchr(id, '/');
                if (slash)
                    *slash = 0;
                g_free(shown);
                shown = id;
            }
            table_add(t, shown, scalar_text(ins, "node-name"),
                      scalar_text(ins, "drv"), scalar_text(ins, "ro"),
                      ins ? scalar_text(ins, "file") : g_strdup("(empty)"));
        }
        table_print(t, "  ");
    }
    if ((n = info_query(c, "query-pci", all, "pci")) && !opt_json) {
        printf("pci\n");
        JsonArray *buses = arr_of(n);
        struct table *t = table_new(5, "ADDRESS", "VENDOR:DEV", "CLASS", "ID", "DESCRIPTION");
        for (unsigned i = 0; buses && i < json_array_get_length(buses); i++)
            info_pci_bus(arr_of(member(obj_of(json_array_get_element(buses, i)), "devices")), t);
        table_print(t, "  ");
    }
    if (opt_json)
        print_json(json_node_init_object(json_node_alloc(), all));
    return EXIT_OK;
}

/* ---- hotplug ---- */

/* Adds every qdev_id under a query-pci device list to ids. */
static void collect_pci_ids(JsonArray *devs, GHashTable *ids)
{
    for (unsigned i = 0; devs && i < json_array_get_length(devs); i++) {
        JsonObject *d = obj_of(json_array_get_element(devs, i));
        const char *id = str_member(d, "qdev_id");
        if (id && *id)
            g_hash_table_add(ids, g_strdup(id));
        JsonObject *br = obj_of(member(d, "pci_bridge"));
        if (br)
            collect_pci_ids(arr_of(member(br, "devices")), ids);
    }
}

/* The first PREFIXn (n = 0, 1...) that no PCI device has as its id, nor a
 * block node as its name. */
static char *free_id(struct conn *c, const char *prefix)
{
    GHashTable *ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    struct reply r;
    if (conn_execute(c, "query-pci", NULL, &r)) {
        JsonArray *buses = arr_of(r.ret);
        for (unsigned i = 0; buses && i < json_array_get_length(buses); i++)
            collect_pci_ids(arr_of(member(obj_of(json_array_get_element(buses, i)), "devices")), ids);
    }
    reply_clear(&r);
    if (conn_execute(c, "query-block", NULL, &r)) {
        JsonArray *blk = arr_of(r.ret);
        for (unsigned i = 0; blk && i < json_array_get_length(blk); i++) {
            const char *nn = str_member(obj_of(member(obj_of(json_array_get_element(blk, i)), "inserted")),
                                        "node-name");
            if (nn)
                g_hash_table_add(ids, g_strdup(nn));
        }
    }
    reply_clear(&r);
    char *id = NULL;
    for (unsigned n = 0;; n++) {
        id = g_strdup_printf("%s%u", prefix, n);
        if (!g_hash_table_contains(ids, id))
            break;
        g_free(id);
    }
    g_hash_table_unref(ids);
    return id;
}

int cmd_add_disk(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = {
        { .name = "--id", .has_arg = true }, { .name = "--readonly" }, { .name = "--bus", .has_arg = true }, { 0 }
    };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 1, "PATH [--id ID] [--readonly] [--bus BUS]");
    if (opts[0].set)
        check_id(name, opts[0].val);
    /* the VM resolves a relative path against its own directory, not ours */
    char *path = g_canonicalize_filename(pos(&a, 0), NULL);
    bool ro = opts[1].set;
    char *id = opts[0].set ? g_strdup(opts[0].val) : free_id(c, "disk");

    JsonNode *bargs = obj_new("driver", jstr("raw"), "node-name", jstr(id),
                              "file", obj_new("driver", jstr("file"), "filename", jstr(path), NULL),
                              "read-only", jbool(ro), NULL);
    struct reply r;
    if (!conn_execute(c, "blockdev-add", bargs, &r))
        die_reply("blockdev-add", &r);
    reply_clear(&r);
    JsonNode *dargs = obj_new("driver", jstr("virtio-blk-pci"), "drive", jstr(id), "id", jstr(id),
                              "bus", jstr(opts[2].val), NULL);
    if (!conn_execute(c, "device_add", dargs, &r)) {
        struct reply r2;        /* take the block node back; its failure is secondary */
        if (!conn_execute(c, "blockdev-del", obj_new("node-name", jstr(id), NULL), &r2))
            fprintf(stderr, "vmmctl: (and removing block node %s again failed: %s)\n", id, r2.err_desc);
        die_reply("device_add", &r);
    }
    if (opt_json)
        print_json(obj_new("id", jstr(id), "node-name", jstr(id), "filename", jstr(path), "read-only",
                           jbool(ro), NULL));
    else
        printf("added disk %s: %s%s\n", id, path, ro ? " (read-only)" : "");
    return EXIT_OK;
}

static bool valid_mac(const char *m)
{
    if (strlen(m) != 17)
        return false;
    for (int i = 0; i < 17; i++)
        if (i % 3 == 2 ? m[i] != ':' : !g_ascii_isxdigit(m[i]))
            return false;
    return true;
}

int cmd_add_net(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = {
        { .name = "--id", .has_arg = true }, { .name = "--mac", .has_arg = true },
        { .name = "--bus", .has_arg = true }, { 0 }
    };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 1, "TAP [--id ID] [--mac MAC] [--bus BUS]");
    if (opts[0].set)
        check_id(name, opts[0].val);
    if (opts[1].set && !valid_mac(opts[1].val))
        usage_error("%s: bad MAC '%s' (want xx:xx:xx:xx:xx:xx)", name, opts[1].val);
    const char *tap = pos(&a, 0);
    char *id = opts[0].set ? g_strdup(opts[0].val) : free_id(c, "net");

    JsonNode *nargs = obj_new("type", jstr("tap"), "id", jstr(id), "ifname", jstr(tap),
                              "script", jstr("no"), "downscript", jstr("no"), NULL);
    struct reply r;
    if (!conn_execute(c, "netdev_add", nargs, &r))
        die_reply("netdev_add", &r);
    reply_clear(&r);
    JsonNode *dargs = obj_new("driver", jstr("virtio-net-pci"), "netdev", jstr(id), "id", jstr(id),
                              "mac", jstr(opts[1].val), "bus", jstr(opts[2].val), NULL);
    if (!conn_execute(c, "device_add", dargs, &r)) {
        struct reply r2;
        if (!conn_execute(c, "netdev_del", obj_new("id", jstr(id), NULL), &r2))
            fprintf(stderr, "vmmctl: (and removing netdev %s again failed: %s)\n", id, r2.err_desc);
        die_reply("device_add", &r);
    }
    if (opt_json)
        print_json(obj_new("id", jstr(id), "netdev", jstr(id), "ifname", jstr(tap), "mac", jstr(opts[1].val),
                           NULL));
    else
        printf("added NIC %s on tap %s%s%s\n", id, tap, opts[1].set ? ", MAC " : "",
               opts[1].set ? opts[1].val : "");
    return EXIT_OK;
}

/* The block node a device reads from, from query-block, or NULL: the entry
 * whose qdev is ID, /machine/peripheral/ID or a child of it (virtio-blk's
 * /machine/peripheral/ID/virtio-backend, usb-storage's .../ID.0/legacy[0]). */
static char *device_block_node(struct conn *c, const char *id)
{
    struct reply r;
    char *node = NULL;
    if (!conn_execute(c, "query-block", NULL, &r)) {
        reply_clear(&r);
        return NULL;
    }
    char *path = g_strdup_printf("/machine/peripheral/%s", id);
    char *below = g_strdup_printf("/machine/peripheral/%s/", id);
    JsonArray *blk = arr_of(r.ret);
    for (unsigned i = 0; blk && i < json_array_get_length(blk) && !node; i++) {
        JsonObject *b = obj_of(json_array_get_element(blk, i));
        const char *q = str_member(b, "qdev");
        if (q && (!strcmp(q, id) || !strcmp(q, path) || g_str_has_prefix(q, below))) {
            const char *nn = str_member(obj_of(member(b, "inserted")), "node-name");
            node = nn ? g_strdup(nn) : NULL;
        }
    }
    g_free(path);
    g_free(below);
    reply_clear(&r);
    return node;
}

/* The netdev of a NIC, from qom-get, or NULL. */
static char *device_netdev(struct conn *c, const char *id)
{
    struct reply r;
    char *path = g_strdup_printf("/machine/peripheral/%s", id);
    char *nd = NULL;
    if (conn_execute(c, "qom-get", obj_new("path", jstr(path), "property", jstr("netdev"), NULL), &r) &&
        r.ret && JSON_NODE_HOLDS_VALUE(r.ret) && json_node_get_value_type(r.ret) == G_TYPE_STRING &&
        *json_node_get_string(r.ret))
        nd = g_strdup(json_node_get_string(r.ret));
    reply_clear(&r);
    g_free(path);
    return nd;
}

static int remove_common(struct conn *c, const char *name, int argc, char **argv, bool cpu)
{
    struct copt opts[] = { { .name = "--wait" }, { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 1, "ID [--wait]");
    const char *id = pos(&a, 0);
    bool wait = opts[0].set;
    char *node = NULL, *netdev = NULL;
    if (wait && !cpu) {
        node = device_block_node(c, id);
        if (!node)
            netdev = device_netdev(c, id);
    }
    struct reply r;
    if (!conn_execute(c, "device_del", obj_new("id", jstr(id), NULL), &r))
        die_reply("device_del", &r);
    reply_clear(&r);
    if (!wait) {
        if (opt_json)
            print_json(obj_new("id", jstr(id), "removed", jbool(false), NULL));
        else
            printf("asked the guest to release %s\n", id);
        return EXIT_OK;
    }
    double secs = opt_timeout_set ? opt_timeout : DEFAULT_WAIT_TIMEOUT;
    GPtrArray *m = g_ptr_array_new();
    char *match = g_strdup_printf("device=%s", id);
    g_ptr_array_add(m, match);
    JsonNode *ev = wait_for_event(c, "DEVICE_DELETED", m, deadline_after(secs));
    if (!ev) {
        char *s = fmt_secs(secs);
        die(EXIT_NOT_RELEASED, "guest did not release %s within %s s; the device stays", id, s);
    }
    /* the backend goes with it */
    if (node) {
        if (!conn_execute(c, "blockdev-del", obj_new("node-name", jstr(node), NULL), &r))
            die_reply("blockdev-del", &r);
        reply_clear(&r);
    }
    if (netdev) {
        if (!conn_execute(c, "netdev_del", obj_new("id", jstr(netdev), NULL), &r))
            die_reply("netdev_del", &r);
        reply_clear(&r);
    }
    if (opt_json)
        print_json(obj_new("id", jstr(id), "removed", jbool(true), "node-name", jstr(node), "netdev",
                           jstr(netdev), NULL));
    else
        printf("removed %s%s%s%s%s\n", id, node ? " and block node " : "", node ? node : "",
               netdev ? " and netdev " : "", netdev ? netdev : "");
    return EXIT_OK;
}

int cmd_remove_device(struct conn *c, const char *name, int argc, char **argv)
{
    return remove_common(c, name, argc, argv, false);
}

int cmd_remove_cpu(struct conn *c, const char *name, int argc, char **argv)
{
    return remove_common(c, name, argc, argv, true);
}

int cmd_add_cpu(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = { { .name = "--id", .has_arg = true }, { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 0, 0, "[--id ID]");
    if (opts[0].set)
        check_id(name, opts[0].val);
    JsonNode *r = execute_or_die(c, "query-hotpluggable-cpus", NULL);
    JsonArray *slots = arr_of(r);
    unsigned n = slots ? json_array_get_length(slots) : 0;
    JsonObject *slot = NULL;
    /* QEMU lists the slots from the highest index down: take the lowest free */
    for (unsigned i = n; i-- > 0;) {
        JsonObject *s = obj_of(json_array_get_element(slots, i));
        if (s && !member(s, "qom-path")) {
            slot = s;
            break;
        }
    }
    if (!slot)
        die(EXIT_QMP_ERROR, "add-cpu: no free CPU slot (all %u hotpluggable CPUs are present)", n);
    const char *type = str_member(slot, "type");
    JsonObject *props = obj_of(member(slot, "props"));
    if (!type || !props)
        die(EXIT_CONNECTION, "add-cpu: query-hotpluggable-cpus gave a slot without type or props");

    GString *pdesc = g_string_new(NULL);
    char *id;
    if (opts[0].set) {
        id = g_strdup(opts[0].val);
    } else {
        GString *g = g_string_new("cpu");
        static const char *const order[] = { "socket-id", "die-id", "cluster-id", "core-id", "thread-id" };
        for (unsigned i = 0; i < G_N_ELEMENTS(order); i++) {
            int64_t v;
            if (int_member(props, order[i], &v))
                g_string_append_printf(g, "-%" PRId64, v);
        }
        id = g_string_free(g, FALSE);
    }
    JsonObject *dargs = json_object_new();
    json_object_set_string_member(dargs, "driver", type);
    json_object_set_string_member(dargs, "id", id);
    GList *keys = json_object_get_members(props);
    for (GList *k = keys; k; k = k->next) {
        json_object_set_member(dargs, k->data, json_node_copy(json_object_get_member(props, k->data)));
        char *v = scalar_text(props, k->data);
        g_string_append_printf(pdesc, "%s%s=%s", pdesc->len ? " " : "", (char *)k->data, v);
        g_free(v);
    }
    g_list_free(keys);
    JsonNode *dn = json_node_init_object(json_node_alloc(), dargs);
    struct reply dr;
    if (!conn_execute(c, "device_add", dn, &dr))
        die_reply("device_add", &dr);
    if (opt_json)
        print_json(obj_new("id", jstr(id), "driver", jstr(type), "props", json_node_copy(member(slot, "props")),
                           NULL));
    else
        printf("added CPU %s (%s)\n", id, pdesc->str);
    return EXIT_OK;
}

/* SIZE: bytes, or a number with K/M/G/T (binary, optional "iB"/"B"). */
static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!g_ascii_isdigit(s[0]))
        return false;
    uint64_t v = g_ascii_strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    switch (g_ascii_toupper(*end)) {
    case 0: break;
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    case 'B': break;
    default: return false;
    }
    if (shift && (!g_ascii_strcasecmp(end, "iB") || !g_ascii_strcasecmp(end, "B")))
        end += strlen(end);
    else if (!shift && !g_ascii_strcasecmp(end, "B"))
        end++;
    if (*end)
        return false;
    if (shift && v > (UINT64_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}

static char *human_size(uint64_t v)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    unsigned u = 0;
    while (u + 1 < G_N_ELEMENTS(units) && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    return g_strdup_printf("%" PRIu64 " %s", v, units[u]);
}

/* The "size" (plugged now) of a virtio-mem device, or -1 when qom-get has
 * no answer. */
static int64_t vmem_size(struct conn *c, const char *path)
{
    struct reply r;
    int64_t v = -1;
    if (conn_execute(c, "qom-get", obj_new("path", jstr(path), "property", jstr("size"), NULL), &r) &&
        r.ret && JSON_NODE_HOLDS_VALUE(r.ret) && json_node_get_value_type(r.ret) == G_TYPE_INT64)
        v = json_node_get_int(r.ret);
    reply_clear(&r);
    return v;
}

int cmd_resize_memory(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = { { .name = "--device", .has_arg = true }, { .name = "--wait" }, { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 1, "SIZE [--device ID] [--wait]");
    uint64_t size;
    if (!parse_size(pos(&a, 0), &size) || size > INT64_MAX)
        usage_error("%s: bad SIZE '%s' (bytes, or a number with K, M, G or T)", name, pos(&a, 0));
    if (opts[0].set)
        check_id(name, opts[0].val);
    char *dev = NULL;
    if (opts[0].set) {
        dev = g_strdup(opts[0].val);
    } else {
        JsonNode *l = execute_or_die(c, "qom-list", obj_new("path", jstr("/machine/peripheral"), NULL));
        JsonArray *props = arr_of(l);
        for (unsigned i = 0; props && i < json_array_get_length(props) && !dev; i++) {
            JsonObject *p = obj_of(json_array_get_element(props, i));
            const char *t = str_member(p, "type");
            const char *n = str_member(p, "name");
            if (t && n && g_str_has_prefix(t, "child<virtio-mem"))
                dev = g_strdup(n);
        }
        if (!dev)
            die(EXIT_QMP_ERROR, "%s: the VM has no virtio-mem device (none in qom-list /machine/peripheral)", name);
    }
    char *path = g_strdup_printf("/machine/peripheral/%s", dev);
    JsonNode *args = obj_new("path", jstr(path), "property", jstr("requested-size"), "value", jint((int64_t)size),
                             NULL);
    struct reply r;
    if (!conn_execute(c, "qom-set", args, &r))
        die_reply("qom-set", &r);
    int64_t plugged = -1;
    if (opts[1].set) {
        /* until the guest has plugged/unplugged to the size: the size now,
         * then MEMORY_DEVICE_SIZE_CHANGE events (queued ones count) */
        double secs = opt_timeout_set ? opt_timeout : DEFAULT_WAIT_TIMEOUT;
        int64_t deadline = deadline_after(secs);
        plugged = vmem_size(c, path);
        while (plugged != (int64_t)size) {
            JsonNode *ev = NULL;
            enum read_status st = next_event(c, deadline, &ev);
            if (st == READ_TIMEOUT) {
                char *s = fmt_secs(secs), *want = human_size(size);
                char *have = plugged >= 0 ? human_size((uint64_t)plugged) : g_strdup("?");
                die(EXIT_TIMEOUT, "%s: the guest has %s plugged, not %s, after %s s (requested-size stays %s)",
                    dev, have, want, s, want);
            }
            if (st == READ_EOF)
                die(EXIT_CONNECTION, "connection closed by the VM while waiting for %s to reach its size", dev);
            JsonObject *o = json_node_get_object(ev);
            JsonObject *d = obj_of(member(o, "data"));
            const char *en = str_member(o, "event"), *id = str_member(d, "id"), *qp = str_member(d, "qom-path");
            int64_t sz;
            if (en && !strcmp(en, "MEMORY_DEVICE_SIZE_CHANGE") &&
                ((id && !strcmp(id, dev)) || (qp && !strcmp(qp, path))) && int_member(d, "size", &sz))
                plugged = sz;
            json_node_unref(ev);
        }
    }
    if (opt_json)
        print_json(obj_new("device", jstr(dev), "requested-size", jint((int64_t)size),
                           "size", plugged >= 0 ? jint(plugged) : NULL, NULL));
    else if (opts[1].set)
        printf("%s: %s plugged\n", dev, human_size(size));
    else
        printf("%s: requested-size %s (the guest plugs/unplugs memory to follow)\n", dev, human_size(size));
    return EXIT_OK;
}

/* ---- migrate ---- */

static double mib(int64_t v)
{
    return (double)v / (1024.0 * 1024.0);
}

/* One line of progress from a query-migrate return. */
static char *migrate_line(JsonObject *q)
{
    JsonObject *ram = obj_of(member(q, "ram"));
    int64_t sent = 0, rem = 0, pass = 0;
    double mbps = 0;
    int_member(ram, "transferred", &sent);
    int_member(ram, "remaining", &rem);
    int_member(ram, "dirty-sync-count", &pass);
    JsonNode *mn = member(ram, "mbps");
    if (mn && JSON_NODE_HOLDS_VALUE(mn))
        mbps = json_node_get_double(mn);
    const char *st = str_member(q, "status");
    return g_strdup_printf("migrate: %s, pass %" G_GINT64_FORMAT ", sent %.1f MiB, remaining %.1f MiB, %.1f MiB/s",
                           st ? st : "?", pass, mib(sent), mib(rem), mbps * 1e6 / 8 / (1024.0 * 1024.0));
}

static bool final_status(const char *st)
{
    return st && (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled"));
}

/* migrate --timeout ran out: migrate_cancel, then query-migrate until the
 * migration has ended (cancelled; failed or completed when it ended first),
 * each wait bounded by --timeout as every reply is. Returns that status. */
static char *migrate_cancel_wait(struct conn *c, char **reason)
{
    struct reply r;
    if (!conn_execute(c, "migrate_cancel", NULL, &r))
        die_reply("migrate_cancel", &r);
    reply_clear(&r);
    int64_t deadline = deadline_after(opt_timeout);
    for (;;) {
        if (!conn_execute(c, "query-migrate", NULL, &r))
            die_reply("query-migrate", &r);
        const char *st = r.ret && obj_of(r.ret) ? str_member(obj_of(r.ret), "status") : NULL;
        char *status = final_status(st) ? g_strdup(st) : NULL;
        if (status && str_member(obj_of(r.ret), "error-desc")) {
            g_free(*reason);
            *reason = g_strdup(str_member(obj_of(r.ret), "error-desc"));
        }
        reply_clear(&r);
        if (status)
            return status;
        if (g_get_monotonic_time() >= deadline) {
            char *secs = fmt_secs(opt_timeout);
            die(EXIT_TIMEOUT, "migration not over after --timeout, and still not cancelled %s s after migrate_cancel",
                secs);
        }
        g_usleep(100 * 1000);
    }
}

int cmd_migrate(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = { { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 1, "URI");
    const char *uri = pos(&a, 0);
    if (!g_str_has_prefix(uri, "tcp:") && !g_str_has_prefix(uri, "unix:"))
        usage_error("%s: URI '%s': give tcp:HOST:PORT or unix:PATH", name, uri);
    json_node_unref(execute_or_die(c, "migrate", obj_new("uri", jstr(uri), NULL)));
    bool tty = !opt_json && isatty(STDOUT_FILENO);
    int64_t deadline = opt_timeout_set ? deadline_after(opt_timeout) : -1;
    char *shown = NULL;
    char *status = NULL, *reason = NULL;
    JsonNode *last = NULL;
    conn_eof_ok = true;
    while (!status) {
        /* MIGRATION events say it first (the source exits once completed) */
        JsonNode *ev = NULL;
        while (!status && next_event(c, g_get_monotonic_time(), &ev) == READ_OK) {
            JsonObject *o = json_node_get_object(ev);
            const char *en = str_member(o, "event");
            const char *st = str_member(obj_of(member(o, "data")), "status");
            if (en && !strcmp(en, "MIGRATION") && final_status(st))
                status = g_strdup(st);
            json_node_unref(ev);
        }
        struct reply r;
        if (!conn_eof_seen) {
            if (!conn_execute(c, "query-migrate", NULL, &r))
                die_reply("query-migrate", &r);
            if (r.ret && obj_of(r.ret)) {
                JsonObject *q = obj_of(r.ret);
                const char *st = str_member(q, "status");
                if (!status && final_status(st))
                    status = g_strdup(st);
                if (final_status(st) && str_member(q, "error-desc"))
                    reason = g_strdup(str_member(q, "error-desc"));
                char *line = opt_json ? node_to_string(r.ret) : migrate_line(q);
                if (!shown || strcmp(line, shown) != 0) {
                    if (tty)
                        printf("\r%s\033[K", line);
                    else
                        printf("%s\n", line);
                    fflush(stdout);
                    g_free(shown);
                    shown = line;
                } else {
                    g_free(line);
                }
                if (last)
                    json_node_unref(last);
                last = json_node_copy(r.ret);
            }
            reply_clear(&r);
        }
        if (status)
            break;
        if (conn_eof_seen) {
            /* gone: completed if its MIGRATION event said so (read above) */
            JsonNode *e2 = NULL;
            while (!status && next_event(c, g_get_monotonic_time(), &e2) == READ_OK) {
                JsonObject *o = json_node_get_object(e2);
                const char *st = str_member(obj_of(member(o, "data")), "status");
                if (!g_strcmp0(str_member(o, "event"), "MIGRATION") && final_status(st))
                    status = g_strdup(st);
                json_node_unref(e2);
            }
            if (status)
                break;
            if (tty)
                putchar('\n');
            die(EXIT_CONNECTION, "the VM closed the connection before the migration ended");
        }
        if (deadline >= 0 && g_get_monotonic_time() >= deadline) {
            if (tty)
                putchar('\n');
            status = migrate_cancel_wait(c, &reason);
            if (strcmp(status, "cancelled") != 0)
                break;      /* it ended (completed, failed) before the cancel reached it */
            char *secs = fmt_secs(opt_timeout);
            die(EXIT_TIMEOUT, "migration to %s not over after %s s: cancelled, the source runs on", uri, secs);
        }
        g_usleep(200 * 1000);
    }
    if (tty)
        putchar('\n');
    if (opt_json)
        print_json(obj_new("status", jstr(status), "error-desc", reason ? jstr(reason) : NULL, NULL));
    if (!strcmp(status, "completed")) {
        if (!opt_json)
            printf("migrate: completed to %s\n", uri);
        return EXIT_OK;
    }
    die(EXIT_QMP_ERROR, "migration %s: %s", status, reason ? reason : status);
}

