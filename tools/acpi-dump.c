/* acpi-dump: writes the ACPI tables vmm would give a guest, one file per
 * table (rsdp.dat, xsdt.dat, facp.dat, apic.dat, dsdt.dat, mcfg.dat), for `iasl -d`.
 * The PCI host bridge gets the 64-bit window a guest with less than 3 GiB sees.
 *
 *   acpi-dump [--cpus N] [--max-cpus M] [--no-serial] [--no-pci] [--hotplug-slots MASK] OUTDIR
 *
 * MASK: the bus 0 slots described as hotpluggable (default 0xfffffffe, slots
 * 1..31, what a VM whose PCI devices are all removable gets).
 *
 * The tables are found the way a guest finds them: RSDP → XSDT → entries →
 * FADT.X_DSDT, with every pointer checked against the buffer. */
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"

#define FADT_X_DSDT 140

static const uint8_t *tables;
static gsize tables_len;

static uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The buffer offset of a table at gpa, or -1 if it does not fit. */
static gssize table_at(uint64_t gpa, uint32_t *len)
{
    if (gpa < LAYOUT_ACPI_START || gpa - LAYOUT_ACPI_START + 8 > tables_len)
        return -1;
    gsize off = gpa - LAYOUT_ACPI_START;
    *len = (uint32_t)get_le(tables + off + 4, 4);
    if (*len < 36 || *len > tables_len - off)
        return -1;
    return (gssize)off;
}

static int dump(const char *dir, const char *name, gsize off, gsize len)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autoptr(GError) err = NULL;
    if (!g_file_set_contents(path, (const char *)tables + off, (gssize)len, &err)) {
        fprintf(stderr, "acpi-dump: %s\n", err->message);
        return -1;
    }
    return 0;
}

static int dump_by_gpa(const char *dir, uint64_t gpa)
{
    uint32_t len;
    gssize off = table_at(gpa, &len);
    if (off < 0) {
        fprintf(stderr, "acpi-dump: table pointer 0x%llx is outside the tables\n", (unsigned long long)gpa);
        return -1;
    }
    char name[16];
    for (int i = 0; i < 4; i++)
        name[i] = g_ascii_tolower((char)tables[off + i]);
    strcpy(name + 4, ".dat");
    if (dump(dir, name, (gsize)off, len) < 0)
        return -1;
    if (memcmp(tables + off, "FACP", 4) == 0 && len >= FADT_X_DSDT + 8)
        return dump_by_gpa(dir, get_le(tables + off + FADT_X_DSDT, 8));
    return 0;
}

int main(int argc, char **argv)
{
    gint cpus = 1, max_cpus = 0;
    gboolean no_serial = FALSE, no_pci = FALSE;
    g_autofree char *hp_slots = NULL;
    GOptionEntry entries[] = {
        { "cpus", 0, 0, G_OPTION_ARG_INT, &cpus, "vCPUs at boot", "N" },
        { "max-cpus", 0, 0, G_OPTION_ARG_INT, &max_cpus, "vCPUs possible (default: --cpus)", "M" },
        { "no-serial", 0, 0, G_OPTION_ARG_NONE, &no_serial, "leave COM1 out of the DSDT", NULL },
        { "no-pci", 0, 0, G_OPTION_ARG_NONE, &no_pci, "no MCFG, no PCI0 in the DSDT", NULL },
        { "hotplug-slots", 0, 0, G_OPTION_ARG_STRING, &hp_slots, "bus 0 slots with an ACPI hotplug Device (mask)",
          "MASK" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("OUTDIR");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "acpi-dump: %s\n", err->message);
        return 2;
    }
    if (max_cpus == 0)
        max_cpus = cpus;
    guint64 slots = 0xfffffffeu;
    if (hp_slots) {
        char *end;
        errno = 0;
        slots = g_ascii_strtoull(hp_slots, &end, 0);
        if (errno || end == hp_slots || *end || slots > 0xffffffffu) {
            fprintf(stderr, "acpi-dump: --hotplug-slots %s: not a 32-bit mask\n", hp_slots);
            return 2;
        }
    }
    if (argc != 2 || cpus < 1 || max_cpus < cpus || max_cpus > 255) {
        fprintf(stderr, "usage: acpi-dump [--cpus N] [--max-cpus M] [--no-serial] [--no-pci] [--hotplug-slots MASK] OUTDIR (1 <= N <= M <= 255)\n");
        return 2;
    }
    if (g_mkdir_with_parents(argv[1], 0755) < 0) {
        fprintf(stderr, "acpi-dump: cannot create %s: %s\n", argv[1], g_strerror(errno));
        return 1;
    }

    struct acpi_config c = { .nr_cpus_boot = (unsigned)cpus, .nr_cpus_max = (unsigned)max_cpus,
                             .serial = !no_serial, .pci = !no_pci, .pci_mmio64_base = LAYOUT_4GIB,
                             .pci_mmio64_size = LAYOUT_PCI_MMIO64_SIZE, .pci_hotplug_slots = (uint32_t)slots };
    g_autoptr(GByteArray) t = acpi_build_tables(&c, LAYOUT_ACPI_START);
    tables = t->data;
    tables_len = t->len;
    if (tables_len < 36 || dump(argv[1], "rsdp.dat", 0, 36) < 0)
        return 1;

    uint32_t xlen;
    gssize xoff = table_at(get_le(tables + 24, 8), &xlen);
    if (xoff < 0) {
        fprintf(stderr, "acpi-dump: RSDP's XSDT pointer is outside the tables\n");
        return 1;
    }
    if (dump(argv[1], "xsdt.dat", (gsize)xoff, xlen) < 0)
        return 1;
    for (uint32_t e = 36; e + 8 <= xlen; e += 8)
        if (dump_by_gpa(argv[1], get_le(tables + xoff + e, 8)) < 0)
            return 1;
    return 0;
}
