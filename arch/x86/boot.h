/* Loading a guest kernel: the Linux x86 boot protocol (bzImage, 64-bit entry)
 * or PVH (ELF with XEN_ELFNOTE_PHYS32_ENTRY), told apart by content. Writes
 * the kernel, initrd, command line and boot_params / hvm_start_info (with the
 * E820 map and the RSDP address) into guest memory and says where to enter. */
#ifndef ARCH_X86_BOOT_H
#define ARCH_X86_BOOT_H

#include <glib.h>
#include <stdint.h>

#include "arch/x86/regs.h"

struct guest_memory;

struct boot_params_in {
    const char *kernel;     /* path */
    const char *initrd;     /* path or NULL */
    const char *cmdline;    /* may be NULL */
    uint64_t rsdp_gpa;      /* 0 when there are no ACPI tables */
};

/* Checks that path is a kernel vmm can boot (format, truncation) without
 * loading it, so that a bad file is refused before any VM exists. Errors are
 * in CONFIG_ERROR. */
int boot_check_kernel(const char *path, GError **err);

/* Errors are one line naming the file and what was expected of it. */
int boot_load(struct guest_memory *gm, const struct boot_params_in *in, struct boot_entry *entry,
              GError **err);

#endif
