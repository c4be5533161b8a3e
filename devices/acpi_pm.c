#include "devices/acpi_pm.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "vmm/bus.h"
#include "vmm/log.h"
#include "vmm/state.h"

#define SLP_EN              (1u << 5)
#define SLP_TYP(v)          (((v) >> 2) & 7)
#define GED_LEN             4
#define STATE_SECTION       "acpi_pm"
#define STATE_VERSION       1

struct acpi_pm {
    struct bus *pio;
    struct irq_line ged_irq;
    struct machine_ctl ctl;
    uint32_t ged_events;        /* latched GED_EVENT_* bits; atomic */
    bool sleep_warned;          /* atomic */
};

static void read_zero(void *opaque, uint64_t offset, void *data, unsigned size)
{
    memset(data, 0, size);
}

static void write_ignore(void *opaque, uint64_t offset, const void *data, unsigned size)
{
}

static void sleep_ctl_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    struct acpi_pm *pm = opaque;
    uint8_t v = *(const uint8_t *)data;
    if (offset != 0 || !(v & SLP_EN))
        return;
    unsigned typ = SLP_TYP(v);
    if (typ == ACPI_S5_SLP_TYP) {
        machine_request(&pm->ctl, MACHINE_POWEROFF, 0);
        return;
    }
    /* Only \_S5 is advertised, so only a confused guest gets here. */
    if (!__atomic_exchange_n(&pm->sleep_warned, true, __ATOMIC_RELAXED))
        log_warn("guest asked for ACPI sleep type %u; only S5 (power off) is supported, ignoring", typ);
}

static void reset_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    struct acpi_pm *pm = opaque;
    if (offset == 0 && *(const uint8_t *)data == ACPI_RESET_VALUE)
        machine_request(&pm->ctl, MACHINE_RESET, 0);
}

/* Reading returns the latched events and clears exactly the bits returned,
 * so an event latched between the read and the clear is never lost. */
static void ged_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    struct acpi_pm *pm = opaque;
    uint8_t *out = data;
    uint32_t mask = 0;
    memset(out, 0, size);
    for (unsigned i = 0; i < size; i++)
        if (offset + i < GED_LEN)
            mask |= 0xffu << (8 * (offset + i));
    uint32_t v = __atomic_fetch_and(&pm->ged_events, ~mask, __ATOMIC_ACQ_REL) & mask;
    for (unsigned i = 0; i < size; i++)
        if (offset + i < GED_LEN)
            out[i] = (uint8_t)(v >> (8 * (offset + i)));
}

static const struct bus_ops sleep_ctl_ops = { .read = read_zero, .write = sleep_ctl_write };
static const struct bus_ops sleep_sts_ops = { .read = read_zero, .write = write_ignore };
static const struct bus_ops reset_ops = { .read = read_zero, .write = reset_write };
static const struct bus_ops ged_ops = { .read = ged_read, .write = write_ignore };

static const struct {
    uint16_t port;
    uint16_t len;
    const struct bus_ops *ops;
    const char *name;
} ranges[] = {
    { PORT_ACPI_SLEEP_CTL, 1, &sleep_ctl_ops, "acpi-sleep-ctl" },
    { PORT_ACPI_SLEEP_STS, 1, &sleep_sts_ops, "acpi-sleep-sts" },
    { PORT_ACPI_RESET, 1, &reset_ops, "acpi-reset" },
    { PORT_ACPI_GED, GED_LEN, &ged_ops, "acpi-ged" },
};

struct acpi_pm *acpi_pm_create(struct bus *pio, struct irq_line ged_irq, struct machine_ctl ctl)
{
    struct acpi_pm *pm = g_new0(struct acpi_pm, 1);
    pm->pio = pio;
    pm->ged_irq = ged_irq;
    pm->ctl = ctl;
    for (size_t i = 0; i < G_N_ELEMENTS(ranges); i++) {
        int r = bus_register(pio, ranges[i].port, ranges[i].len, ranges[i].ops, pm, ranges[i].name);
        if (r < 0) {
            log_error("cannot register %s at port 0x%x: %s", ranges[i].name, ranges[i].port, g_strerror(-r));
            while (i--)
                bus_unregister(pio, ranges[i].port);
            g_free(pm);
            return NULL;
        }
    }
    return pm;
}

void acpi_pm_ged_event(struct acpi_pm *pm, uint32_t events)
{
    if (!events)
        return;
    __atomic_fetch_or(&pm->ged_events, events, __ATOMIC_ACQ_REL);
    irq_line_pulse(&pm->ged_irq);
}

static void acpi_pm_reset(void *dev)
{
    struct acpi_pm *pm = dev;
    __atomic_store_n(&pm->ged_events, 0, __ATOMIC_RELEASE);
}

static int acpi_pm_save(void *dev, struct state_writer *w)
{
    struct acpi_pm *pm = dev;
    state_begin_section(w, STATE_SECTION, STATE_VERSION);
    state_put_u32(w, __atomic_load_n(&pm->ged_events, __ATOMIC_ACQUIRE));
    state_end_section(w);
    return 0;
}

static int acpi_pm_load(void *dev, struct state_reader *r)
{
    struct acpi_pm *pm = dev;
    g_autoptr(GError) err = NULL;
    uint32_t version, events = 0;
    if (state_open_section(r, STATE_SECTION, STATE_VERSION, &version, &err) < 0 ||
        state_get_u32(r, &events) < 0 || state_close_section(r, &err) < 0) {
        log_error("acpi-pm: %s", err ? err->message : "state section '" STATE_SECTION "' is too short");
        return -EINVAL;
    }
    __atomic_store_n(&pm->ged_events, events, __ATOMIC_RELEASE);
    return 0;
}

static void acpi_pm_destroy(void *dev)
{
    struct acpi_pm *pm = dev;
    for (size_t i = 0; i < G_N_ELEMENTS(ranges); i++)
        bus_unregister(pm->pio, ranges[i].port);
    g_free(pm);
}

static const struct device_ops acpi_pm_ops = {
    .type = "acpi-pm",
    .reset = acpi_pm_reset,
    .save = acpi_pm_save,
    .load = acpi_pm_load,
    .destroy = acpi_pm_destroy,
};

struct device acpi_pm_device(struct acpi_pm *pm)
{
    if (!pm)
        return (struct device){ 0 };
    return (struct device){ .id = "acpi-pm", .ops = &acpi_pm_ops, .dev = pm };
}
