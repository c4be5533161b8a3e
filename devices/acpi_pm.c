#include "devices/acpi_pm.h"
#include <stddef.h>
struct acpi_pm *acpi_pm_create(struct bus *pio, struct irq_line ged_irq, struct machine_ctl ctl) { return NULL; }
void acpi_pm_ged_event(struct acpi_pm *pm, uint32_t events) {}
struct device acpi_pm_device(struct acpi_pm *pm) { return (struct device){ 0 }; }
