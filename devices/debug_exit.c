#include "devices/debug_exit.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "vmm/bus.h"
#include "vmm/state.h"

/* Stateless: there is nothing to reset, save or load beyond an empty section
 * that marks the device as present in a snapshot. */
#define DEBUG_EXIT_STATE_VERSION 1

struct debug_exit {
    struct bus *pio;
    uint16_t port;
    struct machine_ctl ctl;
};

static void debug_exit_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    memset(data, 0, size);
}

static void debug_exit_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    struct debug_exit *d = opaque;
    /* Only the low byte can reach the exit status ((v << 1) | 1 is truncated
     * to 8 bits by the OS), whatever the access width. */
    uint8_t v = *(const uint8_t *)data;
    machine_request(&d->ctl, MACHINE_DEBUG_EXIT, v);
}

static const struct bus_ops debug_exit_ops = { .read = debug_exit_read, .write = debug_exit_write };

static void debug_exit_reset(void *dev)
{
}

static int debug_exit_save(void *dev, struct state_writer *w)
{
    state_begin_section(w, "debug-exit", DEBUG_EXIT_STATE_VERSION);
    state_end_section(w);
    return 0;
}

static int debug_exit_load(void *dev, struct state_reader *r)
{
    uint32_t version;
    if (state_open_section(r, "debug-exit", DEBUG_EXIT_STATE_VERSION, &version, NULL) < 0 ||
        state_close_section(r, NULL) < 0)
        return -EINVAL;
    return 0;
}

static void debug_exit_destroy(void *dev)
{
    struct debug_exit *d = dev;
    bus_unregister(d->pio, d->port);
    g_free(d);
}

static const struct device_ops debug_exit_device_ops = {
    .type = "isa-debug-exit",
    .reset = debug_exit_reset,
    .save = debug_exit_save,
    .load = debug_exit_load,
    .destroy = debug_exit_destroy,
};

struct debug_exit *debug_exit_create(struct bus *pio, uint16_t port, struct machine_ctl ctl)
{
    struct debug_exit *d = g_new0(struct debug_exit, 1);
    d->pio = pio;
    d->port = port;
    d->ctl = ctl;
    if (bus_register(pio, port, 1, &debug_exit_ops, d, "debug-exit") < 0) {
        g_free(d);
        return NULL;
    }
    return d;
}

struct device debug_exit_device(struct debug_exit *d)
{
    if (!d)
        return (struct device){ 0 };
    return (struct device){ .id = "debug-exit", .ops = &debug_exit_device_ops, .dev = d };
}
