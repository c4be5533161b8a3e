#include "arch/x86/bzimage.h"

#include <string.h>

#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "vmm/config.h"
#include "vmm/memory.h"

#define BOOT_FLAG           0xaa55
#define HDR_MAGIC           0x53726448u     /* "HdrS" */
#define LOADED_HIGH         0x01
#define XLF_KERNEL_64       0x0001
#define TYPE_OF_LOADER_NONE 0xff
#define SECTOR              512u

struct setup_header {
    uint8_t setup_sects;
    uint16_t root_flags;
    uint32_t syssize;
    uint16_t ram_size;
    uint16_t vid_mode;
    uint16_t root_dev;
    uint16_t boot_flag;
    uint16_t jump;
    uint32_t header;
    uint16_t version;
    uint32_t realmode_swtch;
    uint16_t start_sys_seg;
    uint16_t kernel_version;
    uint8_t type_of_loader;
    uint8_t loadflags;
    uint16_t setup_move_size;
    uint32_t code32_start;
    uint32_t ramdisk_image;
    uint32_t ramdisk_size;
    uint32_t bootsect_kludge;
    uint16_t heap_end_ptr;
    uint8_t ext_loader_ver;
    uint8_t ext_loader_type;
    uint32_t cmd_line_ptr;
    uint32_t initrd_addr_max;
    uint32_t kernel_alignment;
    uint8_t relocatable_kernel;
    uint8_t min_alignment;
    uint16_t xloadflags;
    uint32_t cmdline_size;
    uint32_t hardware_subarch;
    uint64_t hardware_subarch_data;
    uint32_t payload_offset;
    uint32_t payload_length;
    uint64_t setup_data;
    uint64_t pref_address;
    uint32_t init_size;
    uint32_t handover_offset;
    uint32_t kernel_info_offset;
} __attribute__((packed));

struct boot_e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed));

#define BP_HDR_OFFSET   0x1f1
#define BP_HDR_LIMIT    0x290   /* edd_mbr_sig_buffer follows the header */
#define BP_E820_MAX     128

struct boot_params {
    uint8_t screen_info[0x40];
    uint8_t apm_bios_info[0x14];
    uint8_t pad1[4];
    uint64_t tboot_addr;
    uint8_t ist_info[0x10];
    uint64_t acpi_rsdp_addr;
    uint8_t pad2[0x1e8 - 0x78];
    uint8_t e820_entries;
    uint8_t pad3[BP_HDR_OFFSET - 0x1e9];
    struct setup_header hdr;
    uint8_t pad4[0x2d0 - 0x26c];
    struct boot_e820_entry e820_table[BP_E820_MAX];
    uint8_t pad5[0x1000 - 0xcd0];
} __attribute__((packed));

_Static_assert(sizeof(struct setup_header) == 0x26c - BP_HDR_OFFSET, "setup_header size");
_Static_assert(offsetof(struct setup_header, boot_flag) == 0x1fe - BP_HDR_OFFSET, "boot_flag");
_Static_assert(offsetof(struct setup_header, header) == 0x202 - BP_HDR_OFFSET, "header");
_Static_assert(offsetof(struct setup_header, type_of_loader) == 0x210 - BP_HDR_OFFSET, "type_of_loader");
_Static_assert(offsetof(struct setup_header, cmd_line_ptr) == 0x228 - BP_HDR_OFFSET, "cmd_line_ptr");
_Static_assert(offsetof(struct setup_header, xloadflags) == 0x236 - BP_HDR_OFFSET, "xloadflags");
_Static_assert(offsetof(struct setup_header, pref_address) == 0x258 - BP_HDR_OFFSET, "pref_address");
_Static_assert(offsetof(struct boot_params, acpi_rsdp_addr) == 0x070, "acpi_rsdp_addr");
_Static_assert(offsetof(struct boot_params, e820_entries) == 0x1e8, "e820_entries");
_Static_assert(offsetof(struct boot_params, hdr) == BP_HDR_OFFSET, "hdr");
_Static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "e820_table");
_Static_assert(sizeof(struct boot_params) == 0x1000, "boot_params is one page");

bool bzimage_detect(const uint8_t *d, size_t n)
{
    if (n < 0x206)
        return false;
    uint16_t flag;
    uint32_t magic;
    memcpy(&flag, d + 0x1fe, sizeof(flag));
    memcpy(&magic, d + 0x202, sizeof(magic));
    return flag == BOOT_FLAG && magic == HDR_MAGIC;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

int bzimage_parse(const char *path, const uint8_t *d, size_t n, struct bzimage_info *bi, GError **err)
{
    struct setup_header h;
    if (n < BP_HDR_OFFSET + sizeof(h)) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s is truncated: %zu bytes, shorter than a bzImage setup header",
                    path, n);
        return -1;
    }
    memcpy(&h, d + BP_HDR_OFFSET, sizeof(h));
    if (h.version < BZIMAGE_MIN_VERSION || !(h.xloadflags & XLF_KERNEL_64)) {
        g_set_error(err, CONFIG_ERROR, 0,
                    "kernel %s uses boot protocol %u.%02u%s; vmm needs 2.12+ with a 64-bit entry", path,
                    h.version >> 8, h.version & 0xff,
                    h.version >= BZIMAGE_MIN_VERSION ? " without a 64-bit entry" : "");
        return -1;
    }
    if (!(h.loadflags & LOADED_HIGH)) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s is a zImage (loaded below 1 MiB); vmm boots bzImages", path);
        return -1;
    }
    bi->version = h.version;
    bi->setup_sects = h.setup_sects ? h.setup_sects : 4;
    bi->pm_offset = (uint64_t)(bi->setup_sects + 1) * SECTOR;
    uint64_t want = bi->pm_offset + (uint64_t)h.syssize * 16;
    if (n <= bi->pm_offset || n < want) {
        g_set_error(err, CONFIG_ERROR, 0,
                    "kernel %s is truncated: its header says %u setup sectors and %" G_GUINT64_FORMAT
                    " bytes of code (%" G_GUINT64_FORMAT " bytes in all) but the file has %zu bytes",
                    path, bi->setup_sects, (uint64_t)h.syssize * 16, want, n);
        return -1;
    }
    bi->pm_size = n - bi->pm_offset;
    bi->cmdline_size = h.cmdline_size;
    bi->initrd_addr_max = h.initrd_addr_max;
    size_t end = 0x202 + (size_t)d[0x201];
    bi->hdr_end = MIN(end, (size_t)BP_HDR_LIMIT);

    /* The decompressor runs at pref_address (or the load address rounded up to
     * kernel_alignment, if higher) and needs init_size bytes from there. */
    uint64_t align = h.kernel_alignment;
    if (align == 0 || (align & (align - 1)) || align > (1u << 30))
        align = 1;
    uint64_t run = align_up(LAYOUT_KERNEL_ADDR, align);
    if (h.pref_address > run && h.pref_address < LAYOUT_4GIB)
        run = h.pref_address;
    bi->kernel_end = MAX(LAYOUT_KERNEL_ADDR + bi->pm_size, run + h.init_size);
    return 0;
}

int bzimage_load_kernel(struct guest_memory *gm, const char *path, const uint8_t *d,
                        const struct bzimage_info *bi, GError **err)
{
    uint64_t low_end = guest_memory_low_end(gm);
    if (bi->kernel_end > low_end) {
        g_set_error(err, CONFIG_ERROR, 0,
                    "kernel %s needs %" G_GUINT64_FORMAT " MiB of RAM to boot but the guest has %" G_GUINT64_FORMAT
                    " MiB below 4 GiB; raise --memory", path, (bi->kernel_end + (1 << 20) - 1) >> 20, low_end >> 20);
        return -1;
    }
    if (guest_memory_write(gm, LAYOUT_KERNEL_ADDR, d + bi->pm_offset, bi->pm_size) < 0) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s does not fit in guest RAM at 0x%llx; raise --memory", path,
                    LAYOUT_KERNEL_ADDR);
        return -1;
    }
    return 0;
}

int bzimage_write_params(struct guest_memory *gm, const uint8_t *d, const struct bzimage_info *bi,
                         uint64_t cmdline_gpa, uint64_t initrd_gpa, uint64_t initrd_size, uint64_t rsdp_gpa)
{
    g_autofree struct boot_params *bp = g_new0(struct boot_params, 1);
    memcpy((uint8_t *)bp + BP_HDR_OFFSET, d + BP_HDR_OFFSET, bi->hdr_end - BP_HDR_OFFSET);
    bp->hdr.type_of_loader = TYPE_OF_LOADER_NONE;
    bp->hdr.cmd_line_ptr = (uint32_t)cmdline_gpa;
    bp->hdr.ramdisk_image = (uint32_t)initrd_gpa;
    bp->hdr.ramdisk_size = (uint32_t)initrd_size;
    bp->acpi_rsdp_addr = rsdp_gpa;

    struct e820_range map[E820_MAX_ENTRIES];
    unsigned nr = e820_build(gm, map);
    for (unsigned i = 0; i < nr; i++)
        bp->e820_table[i] = (struct boot_e820_entry){ .addr = map[i].addr, .size = map[i].size,
                                                      .type = map[i].type };
    bp->e820_entries = (uint8_t)nr;
    return guest_memory_write(gm, LAYOUT_ZERO_PAGE_ADDR, bp, sizeof(*bp));
}
