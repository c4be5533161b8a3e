#include "vmm/vmem.h"

#include "devices/virtio/mem.h"
#include "vmm/loop.h"
#include "vmm/machine.h"

/* MEMORY_DEVICE_SIZE_CHANGE is rate-limited as in QEMU: at most one per
 * second; a change within the second goes out when it ends, with the size
 * then (a guest plugging block by block makes one event, not hundreds). */
#define EVENT_INTERVAL_NS 1000000000ULL
static uint64_t reported_size;      /* the plugged size last told (or to be told) */
static int64_t last_event_ns;       /* when the last one went out; 0: never */
static struct loop_timer *event_timer;
static bool event_pending;

static void send_size(struct machine *m, uint64_t size)
{
    last_event_ns = g_get_monotonic_time() * 1000;
    if (!m->emit_event)
        return;
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "id", VMEM_DEVICE_ID);
    json_object_set_int_member(o, "size", (gint64)size);
    json_object_set_string_member(o, "qom-path", VMEM_QOM_PATH);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    m->emit_event(m, "MEMORY_DEVICE_SIZE_CHANGE", n);
}

static void on_event_timer(void *opaque)
{
    event_pending = false;
    send_size(opaque, reported_size);
}

static void emit_size(struct machine *m, uint64_t size)
{
    reported_size = size;
    if (event_pending)
        return;
    int64_t since = g_get_monotonic_time() * 1000 - last_event_ns;
    if (!last_event_ns || since >= (int64_t)EVENT_INTERVAL_NS) {
        send_size(m, size);
        return;
    }
    if (!event_timer)
        event_timer = loop_timer_new(m->loop, on_event_timer, m, NULL);
    if (event_timer && loop_timer_arm(event_timer, EVENT_INTERVAL_NS - (uint64_t)since, 0) == 0)
        event_pending = true;
    else
        send_size(m, size);
}

/* The device's loop is the main loop, where events go out. */
static void on_size_changed(void *opaque, struct virtio_mem *dev, uint64_t plugged)
{
    emit_size(opaque, plugged);
}

void vmem_machine_attach(struct machine *m)
{
    if (!m->vm.vmem)
        return;
    virtio_mem_set_size_cb(m->vm.vmem, on_size_changed, m);
    /* A new VM starts with nothing plugged. */
    if (reported_size)
        emit_size(m, 0);
}

