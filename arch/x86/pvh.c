#include "arch/x86/pvh.h"

#include <elf.h>
#include <string.h>

#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "vmm/config.h"
#include "vmm/memory.h"

struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
} __attribute__((packed));

struct hvm_modlist_entry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
} __attribute__((packed));

struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info v1 is 56 bytes");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "memmap_paddr");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry");

/* A program header of either class, widened. */
struct phdr {
    uint32_t type;
    uint64_t offset;
    uint64_t paddr;
    uint64_t filesz;
    uint64_t memsz;
};

struct elf {
    bool is64;
    uint64_t phoff;
    unsigned phnum;
};

bool pvh_detect_elf(const uint8_t *d, size_t n)
{
    return n >= SELFMAG && memcmp(d, ELFMAG, SELFMAG) == 0;
}

static int elf_open(const char *path, const uint8_t *d, size_t n, struct elf *e, GError **err)
{
    if (n < EI_NIDENT || (d[EI_CLASS] != ELFCLASS32 && d[EI_CLASS] != ELFCLASS64) || d[EI_DATA] != ELFDATA2LSB) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s is an ELF file but not a little-endian 32/64-bit one; "
                    "vmm boots an x86 PVH ELF", path);
        return -1;
    }
    e->is64 = d[EI_CLASS] == ELFCLASS64;
    uint16_t machine, phentsize;
    size_t ehsize = e->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    if (n < ehsize) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s is truncated: shorter than its ELF header", path);
        return -1;
    }
    if (e->is64) {
        Elf64_Ehdr h;
        memcpy(&h, d, sizeof(h));
        machine = h.e_machine;
        phentsize = h.e_phentsize;
        e->phoff = h.e_phoff;
        e->phnum = h.e_phnum;
    } else {
        Elf32_Ehdr h;
        memcpy(&h, d, sizeof(h));
        machine = h.e_machine;
        phentsize = h.e_phentsize;
        e->phoff = h.e_phoff;
        e->phnum = h.e_phnum;
    }
    if (machine != EM_386 && machine != EM_X86_64) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s is an ELF file for machine %u, not x86", path, machine);
        return -1;
    }
    size_t want = e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    if (e->phnum == 0 || phentsize != want) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s is an ELF file without usable program headers "
                    "(%u of %u bytes each); vmm boots a bzImage or a PVH ELF", path, e->phnum, phentsize);
        return -1;
    }
    if (e->phoff > n || (uint64_t)e->phnum * want > n - e->phoff) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s is truncated: its %u program headers at offset %" G_GUINT64_FORMAT
                    " run past the end of the file (%zu bytes)", path, e->phnum, e->phoff, n);
        return -1;
    }
    return 0;
}

static struct phdr elf_phdr(const struct elf *e, const uint8_t *d, unsigned i)
{
    if (e->is64) {
        Elf64_Phdr p;
        memcpy(&p, d + e->phoff + (uint64_t)i * sizeof(p), sizeof(p));
        return (struct phdr){ p.p_type, p.p_offset, p.p_paddr, p.p_filesz, p.p_memsz };
    }
    Elf32_Phdr p;
    memcpy(&p, d + e->phoff + (uint64_t)i * sizeof(p), sizeof(p));
    return (struct phdr){ p.p_type, p.p_offset, p.p_paddr, p.p_filesz, p.p_memsz };
}

static uint64_t align4(uint64_t v)
{
    return (v + 3) & ~3ULL;
}

/* Looks through one PT_NOTE segment for Xen's PHYS32_ENTRY; 1 when found. */
static int find_entry_note(const uint8_t *d, uint64_t off, uint64_t len, uint32_t *entry)
{
    uint64_t pos = 0;
    while (len - pos >= 12) {
        uint32_t hdr[3];
        memcpy(hdr, d + off + pos, sizeof(hdr));
        uint64_t name = pos + 12;
        uint64_t desc = name + align4(hdr[0]);
        uint64_t next = desc + align4(hdr[1]);
        if (desc > len || next > len)
            return 0;
        if (hdr[2] == XEN_ELFNOTE_PHYS32_ENTRY && hdr[0] == 4 && memcmp(d + off + name, "Xen", 4) == 0 &&
            (hdr[1] == 4 || hdr[1] == 8)) {
            uint64_t v = 0;
            memcpy(&v, d + off + desc, hdr[1]);
            if (v >> 32)
                return 0;
            *entry = (uint32_t)v;
            return 1;
        }
        pos = next;
    }
    return 0;
}

static int check_in_file(const char *path, const struct phdr *p, unsigned i, size_t n, GError **err)
{
    if (p->offset > n || p->filesz > n - p->offset) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s is truncated: program header %u refers to bytes "
                    "%" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT " but the file has %zu", path, i, p->offset,
                    p->offset + p->filesz, n);
        return -1;
    }
    return 0;
}

int pvh_parse(const char *path, const uint8_t *d, size_t n, struct pvh_info *pi, GError **err)
{
    struct elf e;
    if (elf_open(path, d, n, &e, err) < 0)
        return -1;
    /* The note first: an ELF without it is simply not a PVH kernel, whatever its segments. */
    bool found = false;
    for (unsigned i = 0; i < e.phnum && !found; i++) {
        struct phdr p = elf_phdr(&e, d, i);
        if (p.type != PT_NOTE)
            continue;
        if (check_in_file(path, &p, i, n, err) < 0)
            return -1;
        found = find_entry_note(d, p.offset, p.filesz, &pi->entry);
    }
    if (!found) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s is an ELF file without a PVH entry note "
                    "(XEN_ELFNOTE_PHYS32_ENTRY); vmm boots a bzImage or a PVH ELF", path);
        return -1;
    }
    pi->kernel_end = 0;
    for (unsigned i = 0; i < e.phnum; i++) {
        struct phdr p = elf_phdr(&e, d, i);
        if (p.type != PT_LOAD)
            continue;
        if (check_in_file(path, &p, i, n, err) < 0)
            return -1;
        if (p.memsz == 0)
            continue;
        if (p.filesz > p.memsz) {
            g_set_error(err, CONFIG_ERROR, 0, "kernel %s is a malformed ELF file: program header %u has more "
                        "bytes in the file than in memory", path, i);
            return -1;
        }
        if (p.paddr < LAYOUT_HIGH_RAM_START || p.paddr + p.memsz < p.paddr) {
            g_set_error(err, CONFIG_ERROR, 0, "kernel %s has a segment at 0x%" G_GINT64_MODIFIER "x (%" G_GUINT64_FORMAT
                        " bytes) vmm cannot load: segments must lie at or above 1 MiB", path, p.paddr, p.memsz);
            return -1;
        }
        pi->kernel_end = MAX(pi->kernel_end, p.paddr + p.memsz);
    }
    if (pi->kernel_end == 0) {
        g_set_error(err, CONFIG_ERROR, 0, "kernel %s is an ELF file with nothing to load (no PT_LOAD segment)", path);
        return -1;
    }
    return 0;
}

int pvh_load_segments(struct guest_memory *gm, const char *path, const uint8_t *d, size_t n, GError **err)
{
    struct elf e;
    if (elf_open(path, d, n, &e, err) < 0)
        return -1;
    for (unsigned i = 0; i < e.phnum; i++) {
        struct phdr p = elf_phdr(&e, d, i);
        if (p.type != PT_LOAD || p.memsz == 0)
            continue;
        if (!guest_memory_ptr(gm, p.paddr, p.memsz)) {
            g_set_error(err, CONFIG_ERROR, 0, "kernel %s has a segment at 0x%" G_GINT64_MODIFIER "x (%" G_GUINT64_FORMAT
                        " bytes) outside guest RAM; raise --memory or fix the link address", path, p.paddr, p.memsz);
            return -1;
        }
        if (guest_memory_write(gm, p.paddr, d + p.offset, p.filesz) < 0 ||
            guest_memory_fill(gm, p.paddr + p.filesz, 0, p.memsz - p.filesz) < 0)
            return -1;
    }
    return 0;
}

int pvh_write_start_info(struct guest_memory *gm, uint64_t cmdline_gpa, uint64_t initrd_gpa,
                         uint64_t initrd_size, uint64_t rsdp_gpa)
{
    struct e820_range map[E820_MAX_ENTRIES];
    unsigned nr = e820_build(gm, map);
    struct hvm_memmap_table_entry mm[E820_MAX_ENTRIES] = { 0 };
    for (unsigned i = 0; i < nr; i++)
        mm[i] = (struct hvm_memmap_table_entry){ .addr = map[i].addr, .size = map[i].size, .type = map[i].type };

    struct hvm_start_info si = {
        .magic = HVM_START_MAGIC,
        .version = 1,
        .cmdline_paddr = cmdline_gpa,
        .rsdp_paddr = rsdp_gpa,
        .memmap_paddr = LAYOUT_PVH_MEMMAP_ADDR,
        .memmap_entries = nr,
    };
    if (initrd_size) {
        struct hvm_modlist_entry mod = { .paddr = initrd_gpa, .size = initrd_size };
        if (guest_memory_write(gm, LAYOUT_PVH_MODLIST_ADDR, &mod, sizeof(mod)) < 0)
            return -1;
        si.nr_modules = 1;
        si.modlist_paddr = LAYOUT_PVH_MODLIST_ADDR;
    }
    if (guest_memory_write(gm, LAYOUT_PVH_MEMMAP_ADDR, mm, nr * sizeof(mm[0])) < 0)
        return -1;
    return guest_memory_write(gm, LAYOUT_ZERO_PAGE_ADDR, &si, sizeof(si));
}
