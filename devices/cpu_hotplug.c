#include "devices/cpu_hotplug.h"

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <string.h>

#include "vmm/bus.h"
#include "vmm/log.h"
#include "vmm/state.h"

#define CPUHP_LEN           0x20
#define STATE_SECTION       "cpu_hotplug"
#define STATE_VERSION       1

/* Per CPU: the status bits the guest reads, plus UNPLUG (the host asked for
 * the removal and an eject is allowed), which the guest does not see. */
#define ST_UNPLUG           (1u << 7)
#define ST_GUEST_MASK       (CPUHP_STS_ENABLED | CPUHP_STS_INSERT | CPUHP_STS_REMOVE)

struct cpu_hotplug {
    struct bus *pio;
    uint16_t port;
    unsigned nr_max;
    struct cpu_hotplug_ops ops;
    pthread_mutex_t lock;
    uint32_t selector;
    uint8_t *st;                /* nr_max entries */
    uint32_t ost_event;         /* staged OST registers */
    uint32_t ost_status;
    uint32_t *ost;              /* per CPU: recorded event, status (2 * nr_max) */
};

static void notify(struct cpu_hotplug *h)
{
    if (h->ops.notify)
        h->ops.notify(h->ops.opaque);
}

/* The value of the register dword at `base` (0, 4, 8...), under the lock. */
static uint32_t reg_dword(struct cpu_hotplug *h, uint64_t base)
{
    bool valid = h->selector < h->nr_max;
    switch (base) {
    case CPUHP_REG_SELECTOR:
        return h->selector;
    case CPUHP_REG_STATUS:
        return valid ? (h->st[h->selector] & ST_GUEST_MASK) : 0;
    case CPUHP_REG_COUNT:
        return h->nr_max;
    case CPUHP_REG_OST_EVENT:
        return h->ost_event;
    case CPUHP_REG_OST_STATUS:
        return h->ost_status;
    default:
        return 0;
    }
}

void cpu_hotplug_io_read(struct cpu_hotplug *h, uint64_t offset, void *data, unsigned size)
{
    uint8_t *out = data;
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < size; i++) {
        uint64_t o = offset + i;
        out[i] = o < CPUHP_LEN ? (uint8_t)(reg_dword(h, o & ~3ull) >> (8 * (o & 3))) : 0;
    }
    pthread_mutex_unlock(&h->lock);
}

/* A write of `v` to the status/command byte; returns the CPU to eject
 * (its ENABLED already cleared), or -1. Under the lock. */
static int status_write(struct cpu_hotplug *h, uint8_t v)
{
    if (h->selector >= h->nr_max)
        return -1;
    uint8_t *st = &h->st[h->selector];
    if (v & CPUHP_STS_INSERT)
        *st &= (uint8_t)~CPUHP_STS_INSERT;
    if (v & CPUHP_STS_REMOVE)
        *st &= (uint8_t)~CPUHP_STS_REMOVE;
    if (!(v & CPUHP_CMD_EJECT))
        return -1;
    if (!(*st & CPUHP_STS_ENABLED) || !(*st & ST_UNPLUG)) {
        /* The guest ejecting a CPU the host did not offer for removal
         * (Linux's /sys/bus/acpi/devices/ACPI0007:NN/eject): refused, the
         * CPU stays present and Linux reports the eject incomplete. */
        log_info("cpu-hotplug: guest ejected CPU %u, which was not asked to leave; ignored", h->selector);
        return -1;
    }
    *st = 0;
    return (int)h->selector;
}

void cpu_hotplug_io_write(struct cpu_hotplug *h, uint64_t offset, const void *data, unsigned size)
{
    const uint8_t *in = data;
    int eject = -1, ost = -1;
    uint32_t ost_event = 0, ost_status = 0;
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < size; i++) {
        uint64_t o = offset + i;
        unsigned shift = 8 * (unsigned)(o & 3);
        if (o < CPUHP_REG_SELECTOR + 4) {
            h->selector = (h->selector & ~(0xffu << shift)) | ((uint32_t)in[i] << shift);
        } else if (o == CPUHP_REG_STATUS) {
            int r = status_write(h, in[i]);
            if (r >= 0)
                eject = r;
        } else if (o >= CPUHP_REG_OST_EVENT && o < CPUHP_REG_OST_EVENT + 4) {
            h->ost_event = (h->ost_event & ~(0xffu << shift)) | ((uint32_t)in[i] << shift);
        } else if (o >= CPUHP_REG_OST_STATUS && o < CPUHP_REG_OST_STATUS + 4) {
            h->ost_status = (h->ost_status & ~(0xffu << shift)) | ((uint32_t)in[i] << shift);
            if (o == CPUHP_REG_OST_STATUS + 3 && h->selector < h->nr_max) {
                ost = (int)h->selector;
                ost_event = h->ost_event;
                ost_status = h->ost_status;
                h->ost[2 * h->selector] = ost_event;
                h->ost[2 * h->selector + 1] = ost_status;
            }
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (eject >= 0 && h->ops.ejected)
        h->ops.ejected(h->ops.opaque, (unsigned)eject);
    if (ost >= 0 && h->ops.ost)
        h->ops.ost(h->ops.opaque, (unsigned)ost, ost_event, ost_status);
}

static void bus_read_fn(void *opaque, uint64_t offset, void *data, unsigned size)
{
    cpu_hotplug_io_read(opaque, offset, data, size);
}

static void bus_write_fn(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    cpu_hotplug_io_write(opaque, offset, data, size);
}

static const struct bus_ops cpu_hotplug_bus_ops = { .read = bus_read_fn, .write = bus_write_fn };

struct cpu_hotplug *cpu_hotplug_create(struct bus *pio, uint16_t port, unsigned nr_max,
                                       const struct cpu_hotplug_ops *ops)
{
    struct cpu_hotplug *h = g_new0(struct cpu_hotplug, 1);
    h->pio = pio;
    h->port = port;
    h->nr_max = nr_max;
    if (ops)
        h->ops = *ops;
    h->st = g_new0(uint8_t, MAX(nr_max, 1));
    h->ost = g_new0(uint32_t, 2 * MAX(nr_max, 1));
    pthread_mutex_init(&h->lock, NULL);
    if (pio) {
        int r = bus_register(pio, port, CPUHP_LEN, &cpu_hotplug_bus_ops, h, "cpu-hotplug");
        if (r < 0) {
            log_error("cannot register cpu-hotplug at port 0x%x: %s", port, g_strerror(-r));
            pthread_mutex_destroy(&h->lock);
            g_free(h->st);
            g_free(h->ost);
            g_free(h);
            return NULL;
        }
    }
    return h;
}

void cpu_hotplug_set_present(struct cpu_hotplug *h, unsigned index)
{
    pthread_mutex_lock(&h->lock);
    if (index < h->nr_max)
        h->st[index] = CPUHP_STS_ENABLED;
    pthread_mutex_unlock(&h->lock);
}

int cpu_hotplug_insert(struct cpu_hotplug *h, unsigned index)
{
    if (index >= h->nr_max)
        return -EINVAL;
    pthread_mutex_lock(&h->lock);
    bool present = h->st[index] & CPUHP_STS_ENABLED;
    if (!present)
        h->st[index] = CPUHP_STS_ENABLED | CPUHP_STS_INSERT;
    pthread_mutex_unlock(&h->lock);
    if (present)
        return -EEXIST;
    notify(h);
    return 0;
}

int cpu_hotplug_request_remove(struct cpu_hotplug *h, unsigned index)
{
    if (index >= h->nr_max)
        return -EINVAL;
    pthread_mutex_lock(&h->lock);
    bool present = h->st[index] & CPUHP_STS_ENABLED;
    if (present)
        h->st[index] |= CPUHP_STS_REMOVE | ST_UNPLUG;
    pthread_mutex_unlock(&h->lock);
    if (!present)
        return -ENODEV;
    notify(h);
    return 0;
}

bool cpu_hotplug_present(struct cpu_hotplug *h, unsigned index)
{
    pthread_mutex_lock(&h->lock);
    bool present = index < h->nr_max && (h->st[index] & CPUHP_STS_ENABLED);
    pthread_mutex_unlock(&h->lock);
    return present;
}

bool cpu_hotplug_ost(struct cpu_hotplug *h, unsigned index, uint32_t *event, uint32_t *status)
{
    if (index >= h->nr_max)
        return false;
    pthread_mutex_lock(&h->lock);
    *event = h->ost[2 * index];
    *status = h->ost[2 * index + 1];
    pthread_mutex_unlock(&h->lock);
    return true;
}

/* Power-on state of the registers; which CPUs are present is the machine's
 * configuration, not register state, and stays. */
static void cpu_hotplug_reset(void *dev)
{
    struct cpu_hotplug *h = dev;
    pthread_mutex_lock(&h->lock);
    h->selector = 0;
    h->ost_event = h->ost_status = 0;
    for (unsigned i = 0; i < h->nr_max; i++)
        h->st[i] &= CPUHP_STS_ENABLED;
    pthread_mutex_unlock(&h->lock);
}

static int cpu_hotplug_save(void *dev, struct state_writer *w)
{
    struct cpu_hotplug *h = dev;
    pthread_mutex_lock(&h->lock);
    state_begin_section(w, STATE_SECTION, STATE_VERSION);
    state_put_u32(w, h->nr_max);
    state_put_u32(w, h->selector);
    state_put_bytes(w, h->st, h->nr_max);
    state_end_section(w);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static int cpu_hotplug_load(void *dev, struct state_reader *r)
{
    struct cpu_hotplug *h = dev;
    g_autoptr(GError) err = NULL;
    uint32_t version, nr = 0, sel = 0;
    g_autofree uint8_t *st = g_new0(uint8_t, MAX(h->nr_max, 1));
    if (state_open_section(r, STATE_SECTION, STATE_VERSION, &version, &err) < 0 || state_get_u32(r, &nr) < 0 ||
        state_get_u32(r, &sel) < 0 || nr != h->nr_max || state_get_bytes(r, st, nr) < 0 ||
        state_close_section(r, &err) < 0) {
        log_error("cpu-hotplug: %s", err ? err->message
                                         : "state section '" STATE_SECTION "' is short or for another CPU count");
        return -EINVAL;
    }
    pthread_mutex_lock(&h->lock);
    h->selector = sel;
    for (unsigned i = 0; i < nr; i++)
        h->st[i] = st[i] & (ST_GUEST_MASK | ST_UNPLUG);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static void cpu_hotplug_destroy(void *dev)
{
    struct cpu_hotplug *h = dev;
    if (h->pio)
        bus_unregister(h->pio, h->port);
    pthread_mutex_destroy(&h->lock);
    g_free(h->st);
    g_free(h->ost);
    g_free(h);
}

static const struct device_ops cpu_hotplug_ops_dev = {
    .type = "cpu-hotplug",
    .reset = cpu_hotplug_reset,
    .save = cpu_hotplug_save,
    .load = cpu_hotplug_load,
    .destroy = cpu_hotplug_destroy,
};

struct device cpu_hotplug_device(struct cpu_hotplug *h)
{
    if (!h)
        return (struct device){ 0 };
    return (struct device){ .id = "cpu-hotplug", .ops = &cpu_hotplug_ops_dev, .dev = h };
}
