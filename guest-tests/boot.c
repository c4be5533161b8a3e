/* boot: what the loader handed over. The runner passes mem_mib= and cpus=,
 * and matches the "# cmdline:" line against what it passed. */
#include "rt.h"

#define MIB (1ull << 20)

int main(void)
{
    uint64_t mem_mib = cmdline_get_u64("mem_mib", 0);
    char want[16];
    bool have_proto = cmdline_get("proto", want, sizeof(want));

    plan(8);
    diag("protocol: %s", boot_proto_name(boot_info.proto));
    diag("cmdline: %s", boot_info.cmdline);
    ok(have_proto && strcmp(want, boot_proto_name(boot_info.proto)) == 0,
       "came in through the %s entry (cmdline says proto=%s)", boot_proto_name(boot_info.proto),
       have_proto ? want : "?");
    ok(mem_mib != 0, "cmdline carries mem_mib=%lu", mem_mib);

    for (unsigned i = 0; i < boot_info.nr_mem; i++)
        diag("mem %lx-%lx type %u", boot_info.mem[i].addr, boot_info.mem[i].addr + boot_info.mem[i].size - 1,
             boot_info.mem[i].type);
    ok(boot_info.nr_mem > 0 && !boot_info.mem_truncated, "memory map has %u entries", boot_info.nr_mem);

    bool zero = false, overlap = false, covers_1m = false;
    for (unsigned i = 0; i < boot_info.nr_mem; i++) {
        const struct mem_region *a = &boot_info.mem[i];
        if (a->addr == 0 && a->type == MEM_RAM)
            zero = true;
        if (a->type == MEM_RAM && a->addr <= 0x100000 && a->addr + a->size >= 0x200000)
            covers_1m = true;
        for (unsigned j = i + 1; j < boot_info.nr_mem; j++) {
            const struct mem_region *b = &boot_info.mem[j];
            if (a->size && b->size && a->addr < b->addr + b->size && b->addr < a->addr + a->size)
                overlap = true;
        }
    }
    ok(zero, "a RAM region starts at 0");
    ok(!overlap, "no two regions overlap");
    ok(covers_1m, "RAM covers where the image is loaded (1 MiB..2 MiB)");

    /* RAM below 1 MiB loses at most the EBDA/VGA/BIOS hole (0x9fc00..0x100000,
     * 385 KiB) and a loader may reserve a few pages: allow 1 MiB. */
    uint64_t total = boot_info.nr_mem ? boot_ram_total() : 0;
    ok(mem_mib && total <= mem_mib * MIB && total + MIB >= mem_mib * MIB,
       "RAM %lu KiB is mem_mib=%lu MiB less at most 1 MiB of holes", total >> 10, mem_mib);
    ok(acpi_rsdp() != NULL, "RSDP at 0x%lx (%s)", boot_info.rsdp,
       boot_info.rsdp_from_loader ? "from the loader" : "found by scanning");
    done();
}
