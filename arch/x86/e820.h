/* The guest's physical memory map as firmware would report it (E820), built
 * from the guest_memory regions. Both boot protocols hand it to the guest:
 * Linux in boot_params, PVH in hvm_start_info's memmap (same type values). */
#ifndef ARCH_X86_E820_H
#define ARCH_X86_E820_H

#include <stdint.h>

struct guest_memory;

#define E820_TYPE_RAM       1
#define E820_TYPE_RESERVED  2

#define E820_MAX_ENTRIES    8

struct e820_range {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

/* Fills out[] (E820_MAX_ENTRIES long) in ascending address order; returns the count. */
unsigned e820_build(const struct guest_memory *gm, struct e820_range *out);

#endif
