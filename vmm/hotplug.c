/* The machine side of PCI hotplug (no QMP server code: machine.c links it
 * without one). */
#include "vmm/hotplug.h"

#include <json-glib/json-glib.h>

#include "devices/tap.h"
#include "vmm/config.h"
#include "vmm/machine.h"

static void emit_deleted(struct machine *m, const char *id)
{
    if (!m->emit_event)
        return;
    /* QEMU first reports the virtio backend child, then the device. */
    JsonObject *o = json_object_new();
    g_autofree char *backend = g_strdup_printf("/machine/peripheral/%s/virtio-backend", id);
    json_object_set_string_member(o, "path", backend);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    m->emit_event(m, "DEVICE_DELETED", n);

    o = json_object_new();
    g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", id);
    json_object_set_string_member(o, "device", id);
    json_object_set_string_member(o, "path", path);
    n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    m->emit_event(m, "DEVICE_DELETED", n);
}

static hotplug_removed_fn removed_hook;

void hotplug_set_removed_hook(hotplug_removed_fn fn)
{
    removed_hook = fn;
}

void hotplug_forget_device(struct machine *m, const char *id)
{
    struct tap *tap = NULL;
    if (!config_remove_device(m->cfg, id, &tap))
        return;
    bool kept = removed_hook && removed_hook(m, id, tap);
    if (!kept)
        tap_close(tap);     /* a --net NIC's own tap */
    emit_deleted(m, id);
}

static void on_unplugged(void *opaque, const char *id)
{
    hotplug_forget_device(opaque, id);
}

void hotplug_vm_created(struct machine *m)
{
    vm_set_unplugged_handler(&m->vm, on_unplugged, m);
}

