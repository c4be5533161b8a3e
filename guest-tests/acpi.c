/* acpi: the tables a hardware-reduced platform must give an OS. The runner
 * passes cpus= (the number of vCPUs it started). */
#include "rt.h"

int main(void)
{
    unsigned want_cpus = (unsigned)cmdline_get_u64("cpus", 0);
    bool xsdt = false;

    plan(14);
    const uint8_t *rsdp = acpi_rsdp();
    ok(rsdp != NULL, "RSDP at 0x%lx with a valid checksum", boot_info.rsdp);
    ok(rsdp && rsdp[15] >= 2, "RSDP revision %u (2+: has an XSDT)", rsdp ? rsdp[15] : 0);
    unsigned n = acpi_root_entries(&xsdt);
    ok(xsdt && n > 0, "XSDT with %u entries", n);
    const struct acpi_header *x = NULL;
    if (rsdp && rsdp[15] >= 2) {
        uint64_t pa;
        memcpy(&pa, rsdp + 24, 8);
        x = pa && pa < (1ull << 32) ? (const void *)(uintptr_t)pa : NULL;
    }
    ok(x && x->length < (1u << 20) && acpi_checksum_ok(x, x->length), "XSDT checksum");

    bool all = true;
    for (unsigned i = 0; i < n; i++) {
        const struct acpi_header *t = acpi_root_entry(i);
        bool good = t && acpi_checksum_ok(t, t->length);
        if (t)
            diag("%.4s rev %u len %u %s", t->signature, t->revision, t->length, good ? "ok" : "BAD CHECKSUM");
        all = all && good;
    }
    ok(all, "every table the XSDT lists has a valid checksum");

    const struct acpi_header *f = acpi_find("FACP", 0);
    ok(f && f->length >= FADT_SLEEP_STS + sizeof(struct acpi_gas), "FADT of %u bytes (reaches SLEEP_STATUS_REG)",
       f ? f->length : 0);
    uint32_t flags = 0;
    if (f && f->length >= FADT_FLAGS + 4)
        memcpy(&flags, (const uint8_t *)f + FADT_FLAGS, 4);
    ok(flags & FADT_FLAG_HW_REDUCED, "FADT flags 0x%x have HW_REDUCED_ACPI", flags);
    const struct acpi_gas *slp = f && f->length >= FADT_SLEEP_CTL + 12
                                     ? (const void *)((const uint8_t *)f + FADT_SLEEP_CTL) : NULL;
    ok(slp && slp->address, "sleep control register: space %u at 0x%lx", slp ? slp->space_id : 0,
       slp ? slp->address : 0);

    const struct acpi_gas *rst = f && f->length >= FADT_RESET_VALUE + 1
                                     ? (const void *)((const uint8_t *)f + FADT_RESET_REG) : NULL;
    ok(rst && rst->address && (flags & FADT_FLAG_RESET_REG), "reset register: space %u at 0x%lx, value 0x%x",
       rst ? rst->space_id : 0, rst ? rst->address : 0, rst ? ((const uint8_t *)f)[FADT_RESET_VALUE] : 0);

    const struct acpi_header *d = acpi_find("DSDT", 0);
    ok(d && memcmp(d->signature, "DSDT", 4) == 0 && acpi_checksum_ok(d, d->length),
       "DSDT (through the FADT) of %u bytes with a valid checksum", d ? d->length : 0);
    int s5 = acpi_s5_slp_typ();
    ok(s5 >= 0, "DSDT has \\_S5 with SLP_TYP %d", s5);

    const struct acpi_header *m = acpi_find("APIC", 0);
    ok(m && acpi_checksum_ok(m, m->length), "MADT present with a valid checksum");
    uint8_t ids[AP_MAX];
    unsigned cpus = acpi_madt_cpus(ids, AP_MAX);
    ok(want_cpus && cpus == want_cpus, "MADT has %u enabled local APICs, cpus=%u", cpus, want_cpus);

    unsigned ioapics = 0;
    if (m) {
        const uint8_t *p = (const uint8_t *)m + sizeof(*m) + 8, *end = (const uint8_t *)m + m->length;
        while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
            if (p[0] == 1 && p[1] >= 12) {
                uint32_t addr;
                memcpy(&addr, p + 4, 4);
                diag("IOAPIC id %u at 0x%x GSI base %u", p[2], addr, p[8] | p[9] << 8);
                ioapics++;
            }
            p += p[1];
        }
    }
    ok(ioapics >= 1, "MADT lists %u IOAPIC(s)", ioapics);
    done();
}
