/* The ACPI CPU hotplug controller at PORT_CPU_HOTPLUG: which of the possible
 * CPUs (--cpus max=M) are present, and the insert/remove events the DSDT's
 * scan method (\_SB.CSCN, run by the GED on GED_EVENT_CPU_HOTPLUG) turns
 * into Notify(CPU, 1) and Notify(CPU, 3). A CPU's _STA, _EJ0 and the scan
 * go through these registers (little-endian, any access width; bytes of
 * the window not listed read 0 and ignore writes):
 *
 *   0x00  dword  RW  selector: a CPU index (= its APIC ID and ACPI UID). The
 *                    status and command bytes act on the selected CPU; while
 *                    it is not a possible CPU they read 0 and ignore writes.
 *   0x04  byte   R   status: bit 0 ENABLED (present), bit 1 INSERT (an
 *                    insert event waits for the guest), bit 2 REMOVE (the
 *                    host asked for the CPU's removal and waits for the guest)
 *                W   bit 1: 1 acknowledges the insert event; bit 2: 1
 *                    acknowledges the remove event; bit 3: 1 ejects the
 *                    CPU (its _EJ0), honoured only after the host asked for
 *                    its removal; ENABLED is clear when the write returns.
 *   0x08  dword  R   the number of possible CPUs (max).
 *   0x0c  dword  RW  OST source event: the _OST Arg0 (0x01 device check,
 *                    0x03 eject request, 0x103 eject processing) staged
 *                    for the next status write.
 *   0x10  dword  RW  OST status code: the _OST Arg1. The write that sets the
 *                    dword's last byte (0x13; a dword write does) records
 *                    (event, status) as the selected CPU's OSPM status and
 *                    reports it to the host (ACPI_DEVICE_OST); ignored while
 *                    the selector is not a possible CPU.
 *
 * The host side (device_add/device_del, on the main loop) and the guest's
 * accesses (vCPU threads) meet under the controller's lock. */
#ifndef DEVICES_CPU_HOTPLUG_H
#define DEVICES_CPU_HOTPLUG_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"

struct bus;
struct cpu_hotplug;

#define CPUHP_REG_SELECTOR      0x00
#define CPUHP_REG_STATUS        0x04
#define CPUHP_REG_COUNT         0x08
#define CPUHP_REG_OST_EVENT     0x0c
#define CPUHP_REG_OST_STATUS    0x10
#define CPUHP_STS_ENABLED       (1u << 0)
#define CPUHP_STS_INSERT        (1u << 1)
#define CPUHP_STS_REMOVE        (1u << 2)
#define CPUHP_CMD_EJECT         (1u << 3)

struct cpu_hotplug_ops {
    /* The controller has a new event for the guest (raise the GED). */
    void (*notify)(void *opaque);
    /* The guest ejected CPU `index` (already not present in the registers).
     * Called on the vCPU thread that wrote the register, without the
     * controller's lock: hand the work to the main loop. */
    void (*ejected)(void *opaque, unsigned index);
    /* The guest's _OST for CPU `index` (source event, status code). Same
     * thread and lock rules as ejected. May be NULL. */
    void (*ost)(void *opaque, unsigned index, uint32_t event, uint32_t status);
    void *opaque;
};

/* nr_max possible CPUs, none present yet; registers at `port` when pio is
 * given (unit tests drive the registers through cpu_hotplug_io_*). */
struct cpu_hotplug *cpu_hotplug_create(struct bus *pio, uint16_t port, unsigned nr_max,
                                       const struct cpu_hotplug_ops *ops);
/* A CPU present from power-on: no event. */
void cpu_hotplug_set_present(struct cpu_hotplug *h, unsigned index);
/* device_add: the CPU is present, with an insert event for the guest.
 * 0, -EINVAL (not a possible CPU), -EEXIST (already present). */
int cpu_hotplug_insert(struct cpu_hotplug *h, unsigned index);
/* device_del: a remove event; the CPU stays until the guest ejects it.
 * 0, -EINVAL, -ENODEV (not present). Asking again re-raises the event. */
int cpu_hotplug_request_remove(struct cpu_hotplug *h, unsigned index);
bool cpu_hotplug_present(struct cpu_hotplug *h, unsigned index);
/* The last OSPM status the guest's _OST recorded for CPU `index` (0, 0
 * before any). false when index is not a possible CPU. */
bool cpu_hotplug_ost(struct cpu_hotplug *h, unsigned index, uint32_t *event, uint32_t *status);
/* The register window, as the bus calls it (offset from the base). */
void cpu_hotplug_io_read(struct cpu_hotplug *h, uint64_t offset, void *data, unsigned size);
void cpu_hotplug_io_write(struct cpu_hotplug *h, uint64_t offset, const void *data, unsigned size);
struct device cpu_hotplug_device(struct cpu_hotplug *h);

#endif
