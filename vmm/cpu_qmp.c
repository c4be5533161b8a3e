#include "vmm/cpu_qmp.h"

#include <string.h>

#include "devices/cpu_hotplug.h"
#include "vmm/device_qmp.h"
#include "vmm/log.h"
#include "vmm/machine.h"
#include "vmm/qmp.h"

static bool fail(GError **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static bool fail(GError **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(err, QMP_ERROR, QMP_ERR_GENERIC, msg);
    return false;
}

static JsonNode *cmd_query_hotpluggable_cpus(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    const struct vm_config *cfg = m->cfg;
    JsonArray *a = json_array_new();
    /* QEMU lists the slots from the last one down. */
    for (unsigned i = MAX(cfg->cpus_max, cfg->cpus_boot); i-- > 0;) {
        JsonObject *props = json_object_new();
        json_object_set_int_member(props, "core-id", i);
        json_object_set_int_member(props, "thread-id", 0);
        json_object_set_int_member(props, "socket-id", 0);
        JsonObject *o = json_object_new();
        json_object_set_object_member(o, "props", props);
        json_object_set_int_member(o, "vcpus-count", 1);
        g_autofree char *path = config_cpu_qom_path(cfg, i);
        if (path)
            json_object_set_string_member(o, "qom-path", path);
        json_object_set_string_member(o, "type", config_cpu_qom_type(cfg));
        json_array_add_object_element(a, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

/* Any x86 CPU type is a CPU (a wrong one gets QEMU's "Invalid CPU type"). */
static bool cpu_takes(struct machine *m, const char *driver)
{
    return g_str_has_suffix(driver, "-x86_64-cpu");
}

/* The CPU that `id` names (its device id or QOM path), or -1. */
static int cpu_find(struct machine *m, const char *id)
{
    const struct vm_config *cfg = m->cfg;
    for (unsigned i = 0; i < MAX(cfg->cpus_max, cfg->cpus_boot) && i < VMM_MAX_CPUS; i++) {
        if (!config_cpu_present(cfg, i))
            continue;
        if (i >= cfg->cpus_boot && cfg->cpu_ids[i][0] && strcmp(cfg->cpu_ids[i], id) == 0)
            return (int)i;
        g_autofree char *path = config_cpu_qom_path(cfg, i);
        if (strcmp(path, id) == 0)
            return (int)i;
    }
    return -1;
}

static bool cpu_owns(struct machine *m, const char *id)
{
    return cpu_find(m, id) >= 0;
}

/* One of socket-id, core-id, thread-id: must be set (a negative value is
 * QEMU's "unset") and within 0..max. */
static bool topo_prop(JsonObject *args, const char *key, int64_t max, int64_t *out, GError **err)
{
    JsonNode *n = json_object_get_member(args, key);
    *out = -1;
    if (n) {
        if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
            return fail(err, "Parameter '%s' expects integer", key);
        *out = json_node_get_int(n);
    }
    if (*out < 0)
        return fail(err, "CPU %s is not set", key);
    if (*out > max)
        return fail(err, "Invalid CPU %s: %" G_GINT64_FORMAT " must be in range 0:%" G_GINT64_FORMAT, key, *out, max);
    return true;
}

static bool cpu_add(struct machine *m, const char *driver, JsonObject *args, GError **err)
{
    struct vm_config *cfg = m->cfg;
    const char *type = config_cpu_qom_type(cfg);
    g_autoptr(GList) keys = json_object_get_members(args);
    for (GList *k = keys; k; k = k->next) {
        static const char *const known[] = { "driver", "id", "socket-id", "core-id", "thread-id" };
        bool ok = false;
        for (size_t i = 0; i < G_N_ELEMENTS(known); i++)
            ok |= strcmp(k->data, known[i]) == 0;
        if (!ok)
            return fail(err, "Property '%s.%s' not found", driver, (const char *)k->data);
    }
    if (strcmp(driver, type) != 0)
        return fail(err, "Invalid CPU type, expected cpu type: '%s'", type);
    const char *id = NULL;
    if (!qmp_arg_str(args, "id", false, &id, err))
        return false;
    int64_t socket, core, thread;
    const unsigned max = MAX(cfg->cpus_max, cfg->cpus_boot);
    if (!topo_prop(args, "socket-id", 0, &socket, err) || !topo_prop(args, "core-id", max - 1, &core, err) ||
        !topo_prop(args, "thread-id", 0, &thread, err))
        return false;
    unsigned index = (unsigned)core;
    if (config_cpu_present(cfg, index) || (m->vm_live && m->vm.vcpus[index]))
        return fail(err, "CPU[%u] with APIC ID %u exists", index, index);
    if (!m->vm_live)
        return fail(err, "no VM is running to plug CPU %u into", index);
    GError *e = NULL;
    if (vm_cpu_add(&m->vm, index, &e) < 0) {
        fail(err, "%s", e->message);
        g_error_free(e);
        return false;
    }
    cfg->cpu_ids[index] = g_strdup(id ? id : "");
    log_info("CPU %u (%s) hot-added", index, id ? id : "no id");
    return true;
}

/* Main loop, from the VM: the guest ejected CPU `index`, whose removal
 * device_del asked for. */
static void cpu_removed(void *opaque, unsigned index)
{
    struct machine *m = opaque;
    struct vm_config *cfg = m->cfg;
    if (index >= VMM_MAX_CPUS || !cfg->cpu_ids[index])
        return;
    g_autofree char *path = config_cpu_qom_path(cfg, index);
    g_autofree char *id = cfg->cpu_ids[index];
    cfg->cpu_ids[index] = NULL;
    log_info("CPU %u (%s) removed: the guest ejected it", index, id[0] ? id : "no id");
    if (!m->emit_event)
        return;
    JsonObject *o = json_object_new();
    if (id[0])
        json_object_set_string_member(o, "device", id);
    json_object_set_string_member(o, "path", path);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    m->emit_event(m, "DEVICE_DELETED", n);
}

static bool cpu_del(struct machine *m, const char *id, GError **err)
{
    int index = cpu_find(m, id);
    if (index < 0) {
        g_set_error(err, QMP_ERROR, QMP_ERR_DEVICE_NOT_FOUND, "Device '%s' not found", id);
        return false;
    }
    if (index == 0)
        return fail(err, "Boot CPU is unpluggable");
    if ((unsigned)index < m->cfg->cpus_boot)
        return fail(err, "CPU %d was there at boot (--cpus boot=%u): only hot-added CPUs can be unplugged", index,
                    m->cfg->cpus_boot);
    if (!m->vm_live)
        return fail(err, "no VM is running to unplug CPU %d from", index);
    GError *e = NULL;
    if (vm_cpu_request_remove(&m->vm, (unsigned)index, cpu_removed, m, &e) < 0) {
        fail(err, "%s", e->message);
        g_error_free(e);
        return false;
    }
    return true;
}

/* QEMU's ACPIOSTInfo for CPU `index`. */
static JsonObject *ost_info(struct machine *m, unsigned index, uint32_t event, uint32_t status)
{
    const struct vm_config *cfg = m->cfg;
    JsonObject *o = json_object_new();
    if (index < VMM_MAX_CPUS && cfg->cpu_ids[index] && cfg->cpu_ids[index][0])
        json_object_set_string_member(o, "device", cfg->cpu_ids[index]);
    g_autofree char *slot = g_strdup_printf("%u", index);
    json_object_set_string_member(o, "slot", slot);
    json_object_set_string_member(o, "slot-type", "CPU");
    json_object_set_int_member(o, "source", event);
    json_object_set_int_member(o, "status", status);
    return o;
}

/* Main loop, from the VM: the guest's _OST on CPU `index`. */
static void cpu_ost(void *opaque, unsigned index, uint32_t event, uint32_t status)
{
    struct machine *m = opaque;
    log_info("CPU %u: the guest's _OST reports event 0x%x, status 0x%x", index, event, status);
    if (!m->emit_event)
        return;
    JsonObject *o = json_object_new();
    json_object_set_object_member(o, "info", ost_info(m, index, event, status));
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    m->emit_event(m, "ACPI_DEVICE_OST", n);
}

void cpu_qmp_vm_created(struct machine *m)
{
    vm_set_cpu_ost_handler(&m->vm, cpu_ost, m);
}

/* Every possible CPU's last _OST (0, 0 before any), as QEMU lists them. */
static JsonNode *cmd_query_acpi_ospm_status(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    JsonArray *a = json_array_new();
    if (m->vm_live && m->vm.cpu_hotplug) {
        for (unsigned i = 0; i < m->vm.max_vcpus; i++) {
            uint32_t event, status;
            if (cpu_hotplug_ost(m->vm.cpu_hotplug, i, &event, &status))
                json_array_add_object_element(a, ost_info(m, i, event, status));
        }
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

static const struct device_qmp_kind cpu_kind = {
    .name = "cpu",
    .takes = cpu_takes,
    .owns = cpu_owns,
    .add = cpu_add,
    .del = cpu_del,
};

void cpu_qmp_register(struct qmp_server *s, struct machine *m)
{
    qmp_register(s, "query-hotpluggable-cpus", cmd_query_hotpluggable_cpus, m, 0);
    qmp_register(s, "query-acpi-ospm-status", cmd_query_acpi_ospm_status, m, 0);
    device_qmp_register_kind(s, m, &cpu_kind);
}
