#include "vmm/vmem_qmp.h"
#include "vmm/vmem.h"

#include "devices/virtio/mem.h"
#include "vmm/machine.h"
#include "vmm/qmp.h"
#include "vmm/qom.h"


static JsonNode *uint_node(uint64_t v)
{
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    json_node_set_int(n, (gint64)v);
    return n;
}

static struct virtio_mem *live_device(struct machine *m)
{
    return m->vm_live ? m->vm.vmem : NULL;
}

static uint64_t plugged_size(struct machine *m)
{
    struct virtio_mem *d = live_device(m);
    return d ? virtio_mem_plugged(d) : 0;
}

static JsonNode *get_requested(void *opaque, GError **err)
{
    struct machine *m = opaque;
    return uint_node(m->cfg->mem_hotplug_requested);
}

static JsonNode *get_size(void *opaque, GError **err)
{
    return uint_node(plugged_size(opaque));
}

static JsonNode *get_max_size(void *opaque, GError **err)
{
    struct machine *m = opaque;
    return uint_node(m->cfg->mem_hotplug_size);
}

static JsonNode *get_block_size(void *opaque, GError **err)
{
    struct machine *m = opaque;
    return uint_node(m->cfg->mem_hotplug_block);
}

static JsonNode *get_memaddr(void *opaque, GError **err)
{
    struct machine *m = opaque;
    return uint_node(guest_memory_hotplug_base(m->cfg->mem_size));
}

/* QEMU's checks and words, in its order: a uint64, a block multiple, at
 * most the region. */
static bool set_requested(void *opaque, JsonNode *value, GError **err)
{
    struct machine *m = opaque;
    if (!JSON_NODE_HOLDS_VALUE(value) || json_node_get_value_type(value) != G_TYPE_INT64) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Parameter 'requested-size' expects uint64");
        return false;
    }
    uint64_t v = (uint64_t)json_node_get_int(value);
    if (v % m->cfg->mem_hotplug_block) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "'requested-size' has to be multiples of 'block-size' (0x%"
                    G_GINT64_MODIFIER "x)", m->cfg->mem_hotplug_block);
        return false;
    }
    if (v > m->cfg->mem_hotplug_size) {
        g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "'requested-size' cannot exceed the memory backend size(0x%"
                    G_GINT64_MODIFIER "x)", m->cfg->mem_hotplug_size);
        return false;
    }
    m->cfg->mem_hotplug_requested = v;
    struct virtio_mem *d = live_device(m);
    if (d)
        virtio_mem_set_requested(d, v);
    return true;
}

static JsonNode *cmd_query_memory_devices(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    if (!qmp_args_check(args, NULL, err))
        return NULL;
    JsonArray *a = json_array_new();
    if (m->cfg->mem_hotplug_size) {
        JsonObject *d = json_object_new();
        json_object_set_string_member(d, "memdev", "/objects/" VMEM_DEVICE_ID "-mem");
        json_object_set_int_member(d, "memaddr", (gint64)guest_memory_hotplug_base(m->cfg->mem_size));
        json_object_set_int_member(d, "block-size", (gint64)m->cfg->mem_hotplug_block);
        json_object_set_int_member(d, "size", (gint64)plugged_size(m));
        json_object_set_int_member(d, "node", 0);
        json_object_set_int_member(d, "max-size", (gint64)m->cfg->mem_hotplug_size);
        json_object_set_int_member(d, "requested-size", (gint64)m->cfg->mem_hotplug_requested);
        json_object_set_string_member(d, "id", VMEM_DEVICE_ID);
        JsonObject *e = json_object_new();
        json_object_set_string_member(e, "type", "virtio-mem");
        json_object_set_object_member(e, "data", d);
        json_array_add_object_element(a, e);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

void vmem_qmp_register(struct qmp_server *s, struct machine *m)
{
    qmp_register(s, "query-memory-devices", cmd_query_memory_devices, m, 0);
    qom_qmp_register(s);
}

void vmem_qmp_add_objects(struct machine *m)
{
    if (!m->cfg->mem_hotplug_size)
        return;
    const char *t = "virtio-mem-pci";
    qom_add(VMEM_QOM_PATH, t, "requested-size", "size", get_requested, set_requested, m);
    qom_add(VMEM_QOM_PATH, t, "size", "size", get_size, NULL, m);
    qom_add(VMEM_QOM_PATH, t, "max-size", "size", get_max_size, NULL, m);
    qom_add(VMEM_QOM_PATH, t, "block-size", "size", get_block_size, NULL, m);
    qom_add(VMEM_QOM_PATH, t, "memaddr", "uint64", get_memaddr, NULL, m);
}
