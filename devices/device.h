/* What every device shares: identity, reset, save/load, and the two ways a
 * device reaches the rest of the machine (interrupt lines, machine requests). */
#ifndef DEVICES_DEVICE_H
#define DEVICES_DEVICE_H

#include <stdbool.h>

struct state_writer;
struct state_reader;

/* An interrupt line into the interrupt controller (a GSI). Edge-triggered
 * sources pulse it (set true then false); level sources hold it. */
struct irq_line {
    void (*set)(void *opaque, unsigned gsi, bool level);
    void *opaque;
    unsigned gsi;
};

static inline void irq_line_set(const struct irq_line *l, bool level)
{
    if (l->set)
        l->set(l->opaque, l->gsi, level);
}

static inline void irq_line_pulse(const struct irq_line *l)
{
    irq_line_set(l, true);
    irq_line_set(l, false);
}

/* Requests a device makes of the machine; they are carried out by the main
 * loop after the current exit, never inside the device callback. */
enum machine_request {
    MACHINE_POWEROFF,       /* ACPI S5 */
    MACHINE_RESET,          /* i8042 pulse, ACPI reset register */
    MACHINE_DEBUG_EXIT,     /* arg: value written to the debug-exit port */
};

struct machine_ctl {
    void (*request)(void *opaque, enum machine_request req, int arg);
    void *opaque;
};

static inline void machine_request(const struct machine_ctl *m, enum machine_request req, int arg)
{
    if (m->request)
        m->request(m->opaque, req, arg);
}

struct device_ops {
    const char *type;                                   /* "serial", "rtc", ... */
    void (*reset)(void *dev);                           /* to power-on state */
    int (*save)(void *dev, struct state_writer *w);     /* one section of its own */
    int (*load)(void *dev, struct state_reader *r);     /* 0 or -errno; never half-applies */
    void (*destroy)(void *dev);                         /* unregisters its ranges, frees */
};

struct device {
    char *id;
    const struct device_ops *ops;
    void *dev;
};

#endif
