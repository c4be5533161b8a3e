#include "rt.h"

#define SLP_EN          (1u << 5)
#define SLP_TYP_SHIFT   2

void spin_cycles(unsigned shift)
{
    uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < (1ull << shift))
        cpu_relax();
}

static const struct acpi_gas *fadt_gas(unsigned off)
{
    const struct acpi_header *f = acpi_find("FACP", 0);
    if (!f || f->length < off + sizeof(struct acpi_gas))
        return NULL;
    const struct acpi_gas *g = (const void *)((const uint8_t *)f + off);
    return g->address ? g : NULL;
}

void power_off(void)
{
    const struct acpi_gas *g = fadt_gas(FADT_SLEEP_CTL);
    int typ = acpi_s5_slp_typ();
    if (!g || typ < 0) {
        diag("no ACPI S5 (sleep control register %s, \\_S5 %s)", g ? "ok" : "missing",
             typ < 0 ? "missing" : "ok");
        return;
    }
    acpi_gas_write(g, ((unsigned)(typ & 7) << SLP_TYP_SHIFT) | SLP_EN);
    spin_cycles(34);
    diag("ACPI S5 did not power off");
}

void reset_i8042(void)
{
    outb(0x64, 0xfe);
    spin_cycles(34);
    diag("i8042 reset did not reset");
}

void reset_acpi(void)
{
    const struct acpi_header *f = acpi_find("FACP", 0);
    const struct acpi_gas *g = fadt_gas(FADT_RESET_REG);
    if (!f || !g) {
        diag("no FADT reset register");
        return;
    }
    acpi_gas_write(g, ((const uint8_t *)f)[FADT_RESET_VALUE]);
    spin_cycles(34);
    diag("ACPI reset register did not reset");
}
