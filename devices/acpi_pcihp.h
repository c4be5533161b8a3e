/* ACPI PCI hotplug controller of bus 0, at PORT_PCI_HOTPLUG (0x20 bytes).
 *
 * The shape is the well-known one of QEMU's acpi-pci-hotplug (PCIU, PCID,
 * B0EJ): the DSDT (acpi_pcihp_build_aml) declares one Device per
 * hotpluggable slot under \_SB.PCI0 with _ADR, _SUN and an _EJ0 that writes
 * the slot's bit to the eject register, and a method PCNT that the GED's
 * _EVT runs on GED_EVENT_PCI_HOTPLUG: it notifies every slot in the "up"
 * register with Device Check (1) and every slot in the "down" register with
 * Eject Request (3).
 *
 * Registers (32 bits, little-endian; narrower accesses see the bytes they
 * cover):
 *   0x00 PCIU  slots that got a device since the last read; reading clears
 *              exactly the bits returned
 *   0x04 PCID  slots whose removal was requested and not ejected yet
 *              (sticky: a lost notification is sent again with the next one)
 *   0x08 B0EJ  write: eject the slots whose bits are set (the guest's _EJ0);
 *              only slots marked removable are acted on
 *   0x0c PCIR  read: the slots marked removable (diagnostics, guest tests)
 * Other offsets read 0 and ignore writes.
 *
 * Threading: register accesses come from vCPU threads; the other calls from
 * the main loop. The eject callback runs on the vCPU thread that wrote B0EJ
 * and must defer the removal itself (the device may be inside a callback). */
#ifndef DEVICES_ACPI_PCIHP_H
#define DEVICES_ACPI_PCIHP_H

#include <stdint.h>

#include "devices/device.h"

struct bus;
struct acpi_pm;
struct aml;

#define ACPI_PCIHP_UP       0x00
#define ACPI_PCIHP_DOWN     0x04
#define ACPI_PCIHP_EJECT    0x08
#define ACPI_PCIHP_REMOVABLE 0x0c

/* Bus 0 slots the DSDT may describe: 1..31 (slot 0 is the host bridge). */
#define ACPI_PCIHP_ALL_SLOTS 0xfffffffeu

struct acpi_pcihp_ops {
    /* The guest ejected `slot` (its removable bit is already clear). */
    void (*eject)(void *opaque, unsigned slot);
    void *opaque;
};

/* pm: where GED_EVENT_PCI_HOTPLUG is raised (NULL: nowhere, tests). */
struct acpi_pcihp *acpi_pcihp_create(struct bus *pio, uint16_t port, struct acpi_pm *pm,
                                     const struct acpi_pcihp_ops *ops);
/* A device was plugged into slot and may be removed later: up bit set,
 * removable, GED event (notify: false for devices present at boot, which
 * the guest finds by enumeration). */
void acpi_pcihp_plugged(struct acpi_pcihp *hp, unsigned slot, bool notify);
/* Asks the guest to release slot: down bit set, GED event. -ENODEV when the
 * slot holds no removable device. Repeating it repeats the notification. */
int acpi_pcihp_request_unplug(struct acpi_pcihp *hp, unsigned slot);
/* The register values, for tests and query-pci style reports. */
uint32_t acpi_pcihp_pending_down(struct acpi_pcihp *hp);
struct device acpi_pcihp_device(struct acpi_pcihp *hp);

/* Appends to the PCI0 device: the register region and fields, PCNT, and
 * a Device Sxx with _ADR, _SUN and _EJ0 for each slot in `slots`. */
void acpi_pcihp_build_aml(struct aml *pci0, uint32_t slots);

#endif
