/* The demo guest: one banner line, then ACPI poweroff (vmm exits 0). */
#include "rt.h"

int main(void)
{
    uint8_t ids[1];
    unsigned cpus = acpi_madt_cpus(ids, 1);
    uint64_t mib = (boot_ram_total() + (1 << 20) - 1) >> 20;
    printf("vmm demo guest: hello from a %s guest (%u vCPUs, %lu MiB)\n",
           boot_info.proto == BOOT_PVH ? "PVH" : "bzImage", cpus, mib);
    power_off();
    return 1;
}
