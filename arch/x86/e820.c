#include "arch/x86/e820.h"

#include "arch/x86/layout.h"
#include "vmm/memory.h"

static unsigned add(struct e820_range *out, unsigned n, uint64_t start, uint64_t end, uint32_t type)
{
    if (end <= start || n >= E820_MAX_ENTRIES)
        return n;
    out[n] = (struct e820_range){ .addr = start, .size = end - start, .type = type };
    return n + 1;
}

unsigned e820_build(const struct guest_memory *gm, struct e820_range *out)
{
    uint64_t low_end = guest_memory_low_end(gm);
    unsigned n = 0;

    n = add(out, n, 0, MIN(low_end, LAYOUT_EBDA_START), E820_TYPE_RAM);
    /* The legacy hole holds the ACPI tables; the guest must not reuse it. */
    n = add(out, n, LAYOUT_EBDA_START, MIN(low_end, LAYOUT_HIGH_RAM_START), E820_TYPE_RESERVED);
    n = add(out, n, LAYOUT_HIGH_RAM_START, low_end, E820_TYPE_RAM);
    /* Linux only trusts ECAM (MCFG) early when firmware reserved it in E820. */
    n = add(out, n, LAYOUT_PCIE_ECAM_START, LAYOUT_PCIE_ECAM_START + LAYOUT_PCIE_ECAM_SIZE,
            E820_TYPE_RESERVED);
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        const struct guest_region *r = &gm->regions[i];
        /* Not the virtio-mem region: the guest learns of it from the device (5.15). */
        if (r->gpa >= LAYOUT_4GIB && !r->plugged)
            n = add(out, n, r->gpa, r->gpa + r->size, E820_TYPE_RAM);
    }
    return n;
}
