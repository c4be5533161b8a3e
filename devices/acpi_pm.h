/* ACPI hardware-reduced power management, at the ports in layout.h:
 * sleep control/status (FADT SLEEP_CONTROL_REG / SLEEP_STATUS_REG: SLP_EN with
 * SLP_TYP=5 powers off), reset register (FADT RESET_REG), and the GED event
 * selector the DSDT's GED _EVT method reads to learn which event fired. */
#ifndef DEVICES_ACPI_PM_H
#define DEVICES_ACPI_PM_H

#include <stdint.h>

#include "devices/device.h"

struct bus;
struct acpi_pm;

struct acpi_pm *acpi_pm_create(struct bus *pio, struct irq_line ged_irq, struct machine_ctl ctl);
/* Latches GED event bits (GED_EVENT_*) and raises the GED interrupt. Any thread. */
void acpi_pm_ged_event(struct acpi_pm *pm, uint32_t events);
struct device acpi_pm_device(struct acpi_pm *pm);

#endif
