/* rt_start: turns whichever boot protocol brought us here into boot_info,
 * then runs the test's main(). Loader-provided structures are read with
 * bounds: a broken loader makes the test fail, not the runtime crash. */
#include "rt.h"

struct boot_info boot_info;

#define HVM_START_MAGIC 0x336ec578u

struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;      /* version >= 1 */
    uint32_t memmap_entries;
    uint32_t reserved;
} __attribute__((packed));

struct hvm_memmap_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
} __attribute__((packed));

struct boot_e820 {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed));

#define BP_ACPI_RSDP    0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_CMD_LINE_PTR 0x228
#define BP_EXT_CMD_PTR  0x0c8
#define BP_E820_TABLE   0x2d0
#define BP_E820_MAX     128

static char empty_cmdline[] = "";

const char *boot_proto_name(enum boot_proto p)
{
    switch (p) {
    case BOOT_PVH: return "pvh";
    case BOOT_LINUX64: return "linux64";
    case BOOT_LINUX32: return "linux32";
    }
    return "unknown";
}

uint64_t boot_ram_total(void)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < boot_info.nr_mem; i++)
        if (boot_info.mem[i].type == MEM_RAM)
            t += boot_info.mem[i].size;
    return t;
}

static bool overlaps(uint64_t a, uint64_t len, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + len;
}

uint64_t boot_free_low_page(void)
{
    const uint64_t page = 0x1000;
    uint64_t cmd = (uintptr_t)boot_info.cmdline, cmdlen = strlen(boot_info.cmdline) + 1;
    for (uint64_t p = 0x9f000; p >= 0x10000; p -= page) {
        bool ram = false;
        for (unsigned i = 0; i < boot_info.nr_mem; i++) {
            const struct mem_region *m = &boot_info.mem[i];
            if (m->type == MEM_RAM && m->addr <= p && p + page <= m->addr + m->size)
                ram = true;
        }
        for (unsigned i = 0; i < boot_info.nr_mem; i++) {
            const struct mem_region *m = &boot_info.mem[i];
            if (m->type != MEM_RAM && overlaps(p, page, m->addr, m->size))
                ram = false;
        }
        if (ram && !overlaps(p, page, cmd, cmdlen))
            return p;
    }
    return 0;
}

static void add_region(uint64_t addr, uint64_t size, uint32_t type)
{
    if (boot_info.nr_mem == MEM_MAX) {
        boot_info.mem_truncated = true;
        return;
    }
    boot_info.mem[boot_info.nr_mem++] = (struct mem_region){ addr, size, type };
}

/* Only pointers into the identity-mapped 4 GiB are usable. */
static const char *cmdline_at(uint64_t pa)
{
    return pa && pa < (1ull << 32) ? (const char *)(uintptr_t)pa : empty_cmdline;
}

static void from_pvh(uint32_t info)
{
    const struct hvm_start_info *si = (const void *)(uintptr_t)info;
    if (!info || si->magic != HVM_START_MAGIC) {
        printf("# runtime: bad hvm_start_info at 0x%x\n", info);
        debug_exit(0x7f);
    }
    boot_info.cmdline = cmdline_at(si->cmdline_paddr);
    boot_info.rsdp = si->rsdp_paddr < (1ull << 32) ? si->rsdp_paddr : 0;
    if (si->version >= 1 && si->memmap_paddr && si->memmap_paddr < (1ull << 32)) {
        const struct hvm_memmap_entry *m = (const void *)(uintptr_t)si->memmap_paddr;
        for (uint32_t i = 0; i < si->memmap_entries && i < 1024; i++)
            add_region(m[i].addr, m[i].size, m[i].type);
    }
}

static void from_boot_params(uint32_t bp)
{
    const uint8_t *p = (const uint8_t *)(uintptr_t)bp;
    uint64_t cmd = *(const uint32_t *)(p + BP_CMD_LINE_PTR) |
                   ((uint64_t)*(const uint32_t *)(p + BP_EXT_CMD_PTR) << 32);
    boot_info.cmdline = cmdline_at(cmd);
    uint64_t rsdp = *(const uint64_t *)(p + BP_ACPI_RSDP);
    boot_info.rsdp = rsdp < (1ull << 32) ? rsdp : 0;
    unsigned n = p[BP_E820_ENTRIES];
    const struct boot_e820 *e = (const void *)(p + BP_E820_TABLE);
    for (unsigned i = 0; i < n && i < BP_E820_MAX; i++)
        add_region(e[i].addr, e[i].size, e[i].type);
}

static uint64_t scan_rsdp(void)
{
    for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
        if (memcmp((const void *)(uintptr_t)a, "RSD PTR ", 8) == 0 && acpi_checksum_ok((void *)(uintptr_t)a, 20))
            return a;
    return 0;
}

void rt_start(uint32_t proto, uint32_t info);

void rt_start(uint32_t proto, uint32_t info)
{
    boot_info.proto = (enum boot_proto)proto;
    boot_info.cmdline = empty_cmdline;
    if (proto == BOOT_PVH)
        from_pvh(info);
    else
        from_boot_params(info);
    boot_info.rsdp_from_loader = boot_info.rsdp != 0;
    if (!boot_info.rsdp)
        boot_info.rsdp = scan_rsdp();
    idt_init();
    int rc = main();
    debug_exit((uint8_t)rc);
}
