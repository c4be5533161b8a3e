/* Linux x86 boot protocol (Documentation/arch/x86/boot.rst, zero-page.rst):
 * a bzImage entered at its 64-bit entry point with boot_params in RSI. */
#ifndef ARCH_X86_BZIMAGE_H
#define ARCH_X86_BZIMAGE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_memory;

#define BZIMAGE_MIN_VERSION 0x020c     /* 2.12: xloadflags, XLF_KERNEL_64 */

/* What the loader needs from the file's setup header, already bounded. */
struct bzimage_info {
    uint16_t version;
    unsigned setup_sects;
    uint64_t pm_offset;         /* protected-mode code in the file */
    uint64_t pm_size;
    uint32_t cmdline_size;      /* longest command line, without the NUL */
    uint64_t initrd_addr_max;   /* highest byte the initrd may occupy */
    uint64_t kernel_end;        /* end of what the kernel uses while it boots */
    size_t hdr_end;             /* file[0x1f1, hdr_end) is the setup header */
};

bool bzimage_detect(const uint8_t *d, size_t n);
/* Validates the header and the file's length against it. Errors name path. */
int bzimage_parse(const char *path, const uint8_t *d, size_t n, struct bzimage_info *bi, GError **err);
/* Copies the protected-mode code to LAYOUT_KERNEL_ADDR. */
int bzimage_load_kernel(struct guest_memory *gm, const char *path, const uint8_t *d,
                        const struct bzimage_info *bi, GError **err);
/* Writes boot_params (setup header, loader fields, E820 map) at LAYOUT_ZERO_PAGE_ADDR. */
int bzimage_write_params(struct guest_memory *gm, const uint8_t *d, const struct bzimage_info *bi,
                         uint64_t cmdline_gpa, uint64_t initrd_gpa, uint64_t initrd_size, uint64_t rsdp_gpa);

#endif
