/* PVH boot (Xen's arch-x86/hvm/start_info.h): an ELF kernel whose
 * XEN_ELFNOTE_PHYS32_ENTRY note names a 32-bit protected-mode entry point,
 * entered with EBX = hvm_start_info. */
#ifndef ARCH_X86_PVH_H
#define ARCH_X86_PVH_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_memory;

#define XEN_ELFNOTE_PHYS32_ENTRY    18
#define HVM_START_MAGIC             0x336ec578u

struct pvh_info {
    uint32_t entry;
    uint64_t kernel_end;    /* end of the highest PT_LOAD segment */
};

bool pvh_detect_elf(const uint8_t *d, size_t n);
/* Validates the ELF header, program headers (inside the file) and finds the note. */
int pvh_parse(const char *path, const uint8_t *d, size_t n, struct pvh_info *pi, GError **err);
/* Copies PT_LOAD segments to p_paddr, zeroing p_memsz beyond p_filesz. */
int pvh_load_segments(struct guest_memory *gm, const char *path, const uint8_t *d, size_t n, GError **err);
/* Writes hvm_start_info at LAYOUT_ZERO_PAGE_ADDR, the memmap and (initrd_size
 * != 0) a one-entry module list. */
int pvh_write_start_info(struct guest_memory *gm, uint64_t cmdline_gpa, uint64_t initrd_gpa,
                         uint64_t initrd_size, uint64_t rsdp_gpa);

#endif
