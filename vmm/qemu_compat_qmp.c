/* The QMP commands libvirt's QEMU driver needs for its capability probe, the
 * launch and a reconnect, beyond the lifecycle set (machine_qmp.c). Replies
 * follow QEMU 7.2's shapes and say only what vmm does (libvirt-contract.md
 * §3.2-§3.4, §4.4, §5.3). Main loop thread. */
#include <stdio.h>
#include <string.h>

#include "devices/char_backend.h"
#include "vmm/hotplug_qmp.h"
#include "vmm/machine.h"
#include "vmm/qemu_compat.h"
#include "vmm/qmp.h"
#include "vmm/qom.h"

struct qc_ctx {
    struct machine *m;
    const struct qemu_compat *q;
};
static struct qc_ctx qc;

static JsonNode *obj_node(JsonObject *o)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

static JsonNode *arr_node(JsonArray *a)
{
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

static JsonNode *cmd_query_target(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "arch", "x86_64");
    return obj_node(o);
}

static JsonNode *cmd_query_kvm(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    /* vmm runs nothing but KVM: machine_open has /dev/kvm open. */
    bool on = qc.m->kvm_fd >= 0;
    JsonObject *o = json_object_new();
    json_object_set_boolean_member(o, "enabled", on);
    json_object_set_boolean_member(o, "present", on);
    return obj_node(o);
}

/* One machine: pc-i440fx-7.2 alias pc. No default-ram-id (libvirt would
 * then pass memory-backend objects). hotpluggable-cpus: vmm plugs CPUs
 * (cpu_qmp.c: query-hotpluggable-cpus, device_add/device_del of
 * host-x86_64-cpu), which libvirt 9.0 needs for setvcpus --live; the none
 * machine has no CPUs to plug, as in QEMU. */
static JsonNode *cmd_query_machines(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "compat-props", NULL };
    if (!qmp_args_check(args, known, err))
        return NULL;
    JsonArray *a = json_array_new();
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "name", "pc-i440fx-7.2");
    json_object_set_string_member(o, "alias", "pc");
    json_object_set_boolean_member(o, "is-default", TRUE);
    json_object_set_int_member(o, "cpu-max", VMM_MAX_CPUS);
    json_object_set_boolean_member(o, "hotpluggable-cpus", TRUE);
    json_object_set_boolean_member(o, "numa-mem-supported", FALSE);
    json_object_set_boolean_member(o, "deprecated", FALSE);
    json_object_set_string_member(o, "default-cpu-type", "host-x86_64-cpu");
    json_array_add_object_element(a, o);
    o = json_object_new();
    json_object_set_string_member(o, "name", "none");
    json_object_set_int_member(o, "cpu-max", 1);
    json_object_set_boolean_member(o, "hotpluggable-cpus", FALSE);
    json_object_set_boolean_member(o, "numa-mem-supported", FALSE);
    json_object_set_boolean_member(o, "deprecated", FALSE);
    json_array_add_object_element(a, o);
    return arr_node(a);
}

static JsonNode *cmd_query_cpu_definitions(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    JsonArray *a = json_array_new();
    static const char *const names[][2] = { { "host", "host-x86_64-cpu" }, { "max", "max-x86_64-cpu" } };
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", names[i][0]);
        json_object_set_string_member(o, "typename", names[i][1]);
        json_object_set_array_member(o, "unavailable-features", json_array_new());
        json_object_set_boolean_member(o, "static", FALSE);
        json_object_set_boolean_member(o, "migration-safe", FALSE);
        json_object_set_boolean_member(o, "deprecated", FALSE);
        json_array_add_object_element(a, o);
    }
    return arr_node(a);
}

/* The QOM types libvirt gates features on (contract §3.4): isa-serial for
 * <serial>, the CPU types for host-passthrough/maximum. tcg-accel is left
 * out on purpose (a second probe); virtio-blk/-net/-serial need no entry. */
static const char *const qom_types[][2] = {
    { "isa-serial", "isa-device" },
    { "host-x86_64-cpu", "max-x86_64-cpu" },
    { "max-x86_64-cpu", "x86_64-cpu" },
};

static JsonNode *cmd_qom_list_types(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "implements", "abstract", NULL };
    const char *impl = NULL;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "implements", false, &impl, err))
        return NULL;
    JsonArray *a = json_array_new();
    for (size_t i = 0; i < G_N_ELEMENTS(qom_types); i++) {
        if (impl && strcmp(impl, qom_types[i][0]) != 0 && strcmp(impl, qom_types[i][1]) != 0)
            continue;
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", qom_types[i][0]);
        json_object_set_string_member(o, "parent", qom_types[i][1]);
        json_array_add_object_element(a, o);
    }
    return arr_node(a);
}

static JsonObject *prop(const char *name, const char *type)
{
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "name", name);
    json_object_set_string_member(o, "type", type);
    return o;
}

/* PIIX4_PM's disable_s3/disable_s4 (virt-install always sets them; vmm has
 * neither state, so they hold); every other device: DeviceNotFound, the one
 * error class libvirt's probe tolerates here. */
static JsonNode *cmd_device_list_properties(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "typename", NULL };
    const char *t;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "typename", true, &t, err))
        return NULL;
    if (strcmp(t, "PIIX4_PM") == 0) {
        JsonArray *a = json_array_new();
        json_array_add_object_element(a, prop("disable_s3", "uint8"));
        json_array_add_object_element(a, prop("disable_s4", "uint8"));
        return arr_node(a);
    }
    g_set_error(err, QMP_ERROR, QMP_ERR_DEVICE_NOT_FOUND, "Device '%s' not found", t);
    return NULL;
}

/* The CPU types' migratable; [] for every other type, never DeviceNotFound
 * (libvirt 9.0 dereferences NULL on it for memory-backend-file and
 * none-machine). */
static JsonNode *cmd_qom_list_properties(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "typename", NULL };
    const char *t;
    if (!qmp_args_check(args, known, err) || !qmp_arg_str(args, "typename", true, &t, err))
        return NULL;
    JsonArray *a = json_array_new();
    if (strcmp(t, "max-x86_64-cpu") == 0 || strcmp(t, "host-x86_64-cpu") == 0)
        json_array_add_object_element(a, prop("migratable", "bool"));
    return arr_node(a);
}

/* [] : no option libvirt would turn on (sandbox...). */
static JsonNode *cmd_query_command_line_options(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "option", NULL };
    if (!qmp_args_check(args, known, err))
        return NULL;
    return arr_node(json_array_new());
}

/* vmm has no migration (yet): no capability to show. */
static JsonNode *cmd_query_migrate_capabilities(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    return arr_node(json_array_new());
}

/* libvirt always sets "events" (it then expects MIGRATION events, which a VMM
 * that never migrates never has to send); any other capability is refused. */
static JsonNode *cmd_migrate_set_capabilities(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    static const char *const known[] = { "capabilities", NULL };
    if (!qmp_args_check(args, known, err))
        return NULL;
    JsonNode *n = json_object_get_member(args, "capabilities");
    if (!n || !JSON_NODE_HOLDS_ARRAY(n)) {
        g_set_error_literal(err, QMP_ERROR, QMP_ERR_GENERIC,
                            n ? "Invalid parameter type for 'capabilities', expected: array"
                              : "Parameter 'capabilities' is missing");
        return NULL;
    }
    JsonArray *a = json_node_get_array(n);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonNode *e = json_array_get_element(a, i);
        if (!JSON_NODE_HOLDS_OBJECT(e)) {
            g_set_error_literal(err, QMP_ERROR, QMP_ERR_GENERIC,
                                "Invalid parameter type for 'capabilities[0]', expected: object");
            return NULL;
        }
        const char *cap = NULL;
        if (!qmp_arg_str(json_node_get_object(e), "capability", true, &cap, err))
            return NULL;
        if (strcmp(cap, "events") != 0) {
            g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Migration capability '%s' is not supported by vmm", cap);
            return NULL;
        }
    }
    return NULL;
}

/* [] is what libvirt accepts; it then uses no schema-gated syntax (JSON
 * -device, -object) and vmm parses both forms anyway. */
static JsonNode *cmd_query_qmp_schema(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    return arr_node(json_array_new());
}

static void add_chardev(JsonArray *a, const char *label, const char *filename, bool open)
{
    JsonObject *o = json_object_new();
    json_object_set_boolean_member(o, "frontend-open", open);
    json_object_set_string_member(o, "filename", filename);
    json_object_set_string_member(o, "label", label);
    json_array_add_object_element(a, o);
}

static char *backend_filename(enum serial_mode mode, const char *path, const struct char_backend *be)
{
    switch (mode) {
    case SERIAL_PTY:
        return g_strdup_printf("pty:%s", be && char_backend_pty_path(be) ? char_backend_pty_path(be) : "");
    case SERIAL_FILE:
        return g_strdup_printf("file:%s", path);   /* QEMU says "file"; the path helps */
    case SERIAL_SOCKET:
        return g_strdup_printf("unix:%s,server=on", path);
    case SERIAL_STDIO:
        return g_strdup("stdio");
    case SERIAL_OFF:
        break;
    }
    return g_strdup("null");
}

/* The chardevs with their real pty paths (libvirt reads the serial's pty from
 * here and opens it for virsh console). */
static JsonNode *cmd_query_chardev(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    const struct qemu_compat *q = qc.q;
    const struct vm_config *c = qc.m->cfg;
    JsonArray *a = json_array_new();
    if (q->serial_label) {
        g_autofree char *f = backend_filename(c->serial_mode, c->serial_path, qc.m->serial_be);
        add_chardev(a, q->serial_label, f, true);
    }
    if (q->console_label) {
        g_autofree char *f = backend_filename(c->console_mode, c->console_path, qc.m->console_be);
        add_chardev(a, q->console_label, f, true);
    }
    if (q->monitor_label) {
        const struct qmp_endpoint *ep = c->nr_qmp ? &c->qmp[0] : NULL;
        g_autofree char *f = ep && ep->path ? g_strdup_printf("unix:%s,server=on", ep->path) : g_strdup("unix:");
        add_chardev(a, q->monitor_label, f, true);
    }
    return arr_node(a);
}

/* QOM objects for qom-list and qom-get (vmm/qom.c's registry): the serial
 * and virtio-serial devices with ids under /machine/peripheral (a read-only
 * "type", which makes each a child<TYPE> there: libvirt takes an id missing
 * from qom-list /machine/peripheral on reconnect as unplugged; the disks and
 * NICs, boot-time and hot-plugged, are hotplug_qmp.c's), and the boot vCPUs'
 * "migratable" (libvirt asks on reconnect). */
static JsonNode *get_string(void *opaque, GError **err)
{
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(n, opaque);
    return n;
}

static JsonNode *get_migratable(void *opaque, GError **err)
{
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    json_node_set_boolean(n, qc.q->cpu_migratable);
    return n;
}

static void add_peripheral(const char *id, const char *type)
{
    g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", id);
    qom_add(path, type, "type", "string", get_string, NULL, (void *)type);
}

/* vmm has no block jobs. */
static JsonNode *cmd_query_jobs(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    return arr_node(json_array_new());
}

void qemu_compat_qmp_register(struct qmp_server *s, struct machine *m, const struct qemu_compat *q)
{
    qc.m = m;
    qc.q = q;
    qmp_register(s, "query-target", cmd_query_target, NULL, 0);
    qmp_register(s, "query-kvm", cmd_query_kvm, NULL, 0);
    qmp_register(s, "query-machines", cmd_query_machines, NULL, 0);
    qmp_register(s, "query-cpu-definitions", cmd_query_cpu_definitions, NULL, 0);
    qmp_register(s, "qom-list-types", cmd_qom_list_types, NULL, 0);
    qmp_register(s, "device-list-properties", cmd_device_list_properties, NULL, 0);
    qmp_register(s, "qom-list-properties", cmd_qom_list_properties, NULL, 0);
    qmp_register(s, "query-command-line-options", cmd_query_command_line_options, NULL, 0);
    qmp_register(s, "query-migrate-capabilities", cmd_query_migrate_capabilities, NULL, 0);
    qmp_register(s, "migrate-set-capabilities", cmd_migrate_set_capabilities, NULL, 0);
    qmp_register(s, "query-qmp-schema", cmd_query_qmp_schema, NULL, 0);
    qmp_register(s, "query-chardev", cmd_query_chardev, NULL, 0);
    qom_qmp_register(s);
    /* The -blockdev nodes and -netdev backends go into the hotplug registry
     * (hotplug_qmp_register, called after this, ties the devices to them). */
    for (guint i = 0; q->blockdevs && i < q->blockdevs->len; i++) {
        const struct qemu_compat_node *n = q->blockdevs->pdata[i];
        hotplug_qmp_boot_node(n->name, n->driver, n->filename, n->file, n->read_only, n->direct, n->aio);
    }
    for (guint i = 0; q->netdevs && i < q->netdevs->len; i++) {
        const struct qemu_compat_netdev *n = q->netdevs->pdata[i];
        hotplug_qmp_boot_netdev(n->id, n->device);
    }
    const struct vm_config *c = m->cfg;
    /* Disks and NICs: hotplug_qmp_register adds them (and keeps them current). */
    if (q->serial_dev_id)
        add_peripheral(q->serial_dev_id, "isa-serial");
    if (q->vserial_dev_id)
        add_peripheral(q->vserial_dev_id, "virtio-serial-pci");
    for (unsigned i = 0; i < c->cpus_boot; i++) {
        g_autofree char *path = g_strdup_printf("/machine/unattached/device[%u]", i);
        qom_add(path, config_cpu_qom_type(c), "migratable", "bool", get_migratable, NULL, NULL);
    }
    qmp_register(s, "query-jobs", cmd_query_jobs, NULL, 0);
}
