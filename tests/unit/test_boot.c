/* Boot loaders against synthetic bzImage and PVH ELF files in a temp dir,
 * loaded into real (memfd) guest memory; no KVM needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <elf.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "vmm/config.h"
#include "vmm/memory.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define RSDP_GPA 0xe0000ULL

static char *tmpdir;

static int setup_dir(void **state)
{
    tmpdir = g_dir_make_tmp("vmm-test-boot-XXXXXX", NULL);
    return tmpdir ? 0 : -1;
}

static int teardown_dir(void **state)
{
    g_autoptr(GDir) d = g_dir_open(tmpdir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(tmpdir, name, NULL);
        unlink(p);
    }
    rmdir(tmpdir);
    g_free(tmpdir);
    return 0;
}

static char *write_file(const char *name, const void *data, size_t len)
{
    char *p = g_build_filename(tmpdir, name, NULL);
    assert_true(g_file_set_contents(p, data, (gssize)len, NULL));
    return p;
}

static void put16(uint8_t *d, size_t off, uint16_t v) { memcpy(d + off, &v, 2); }
static void put32(uint8_t *d, size_t off, uint32_t v) { memcpy(d + off, &v, 4); }
static void put64(uint8_t *d, size_t off, uint64_t v) { memcpy(d + off, &v, 8); }

static uint8_t rd8(struct guest_memory *gm, uint64_t gpa)
{
    uint8_t v;
    assert_int_equal(guest_memory_read(gm, gpa, &v, 1), 0);
    return v;
}
static uint32_t rd32(struct guest_memory *gm, uint64_t gpa)
{
    uint32_t v;
    assert_int_equal(guest_memory_read(gm, gpa, &v, 4), 0);
    return v;
}
static uint64_t rd64(struct guest_memory *gm, uint64_t gpa)
{
    uint64_t v;
    assert_int_equal(guest_memory_read(gm, gpa, &v, 8), 0);
    return v;
}

/* ---- bzImage ---- */

struct bz_opts {
    uint8_t setup_sects;        /* as stored; 0 means 4 */
    uint16_t version;
    uint16_t xloadflags;
    uint32_t cmdline_size;
    uint32_t initrd_addr_max;
    uint32_t init_size;
    size_t pm_size;
};

static struct bz_opts bz_default(void)
{
    return (struct bz_opts){ .setup_sects = 4, .version = 0x020f, .xloadflags = 0x1, .cmdline_size = 2047,
                             .initrd_addr_max = 0x7fffffff, .init_size = 0x800000, .pm_size = 0x10000 };
}

static uint8_t pm_byte(size_t i)
{
    return (uint8_t)(i * 7 + 3);
}

static GByteArray *bz_build(const struct bz_opts *o)
{
    unsigned sects = o->setup_sects ? o->setup_sects : 4;
    size_t pm_off = (sects + 1) * 512;
    GByteArray *b = g_byte_array_new();
    g_byte_array_set_size(b, pm_off + o->pm_size);
    uint8_t *d = b->data;
    memset(d, 0, b->len);
    d[0x1f1] = o->setup_sects;
    put32(d, 0x1f4, (uint32_t)(o->pm_size / 16));
    put16(d, 0x1fe, 0xaa55);
    d[0x200] = 0xeb;
    d[0x201] = 0x6a;                        /* header ends at 0x26c */
    memcpy(d + 0x202, "HdrS", 4);
    put16(d, 0x206, o->version);
    d[0x210] = 0;
    d[0x211] = 0x01;                        /* LOADED_HIGH */
    put32(d, 0x214, 0x100000);
    put32(d, 0x22c, o->initrd_addr_max);
    put32(d, 0x230, 0x200000);
    d[0x234] = 1;
    put16(d, 0x236, o->xloadflags);
    put32(d, 0x238, o->cmdline_size);
    put64(d, 0x258, 0x1000000);
    put32(d, 0x260, o->init_size);
    d[0x26c] = 0x5a;                        /* beyond the header: must not be copied */
    for (size_t i = 0; i < o->pm_size; i++)
        d[pm_off + i] = pm_byte(i);
    return b;
}

static char *bz_file(const char *name, const struct bz_opts *o)
{
    g_autoptr(GByteArray) b = bz_build(o);
    return write_file(name, b->data, b->len);
}

static int load(struct guest_memory *gm, uint64_t ram, const char *kernel, const char *initrd, const char *cmdline,
                struct boot_entry *e, GError **err)
{
    assert_int_equal(guest_memory_create(gm, ram, false, false, NULL), 0);
    struct boot_params_in in = { .kernel = kernel, .initrd = initrd, .cmdline = cmdline, .rsdp_gpa = RSDP_GPA };
    return boot_load(gm, &in, e, err);
}

struct e820 {
    uint64_t addr, size;
    uint32_t type;
};

static void assert_e820(const struct e820 *got, unsigned n, const struct e820 *want, unsigned nwant)
{
    assert_int_equal(n, nwant);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(got[i].addr, want[i].addr);
        assert_int_equal(got[i].size, want[i].size);
        assert_int_equal(got[i].type, want[i].type);
    }
}

static unsigned bz_e820(struct guest_memory *gm, struct e820 *out)
{
    unsigned n = rd8(gm, LAYOUT_ZERO_PAGE_ADDR + 0x1e8);
    for (unsigned i = 0; i < n; i++) {
        uint64_t a = LAYOUT_ZERO_PAGE_ADDR + 0x2d0 + i * 20;
        out[i] = (struct e820){ rd64(gm, a), rd64(gm, a + 8), rd32(gm, a + 16) };
    }
    return n;
}

static const struct e820 map_256m[] = {
    { 0, 0x9fc00, 1 },
    { 0x9fc00, 0x100000 - 0x9fc00, 2 },
    { 0x100000, 256 * MiB - 0x100000, 1 },
    { 0xe0000000, 0x100000, 2 },         /* ECAM, bus 0 */
};

static void test_bz_valid(void **state)
{
    struct bz_opts o = bz_default();
    g_autofree char *k = bz_file("bz", &o);
    assert_int_equal(boot_check_kernel(k, NULL), 0);

    struct guest_memory gm;
    struct boot_entry e;
    assert_int_equal(load(&gm, 256 * MiB, k, NULL, "console=ttyS0", &e, NULL), 0);
    assert_int_equal(e.mode, BOOT_ENTRY_LINUX64);
    assert_int_equal(e.rip, LAYOUT_KERNEL_ADDR + 0x200);
    assert_int_equal(e.arg, LAYOUT_ZERO_PAGE_ADDR);

    const uint8_t *kern = guest_memory_ptr(&gm, LAYOUT_KERNEL_ADDR, o.pm_size);
    for (size_t i = 0; i < o.pm_size; i++)
        assert_int_equal(kern[i], pm_byte(i));

    uint64_t zp = LAYOUT_ZERO_PAGE_ADDR;
    assert_int_equal(rd32(&gm, zp + 0x202), 0x53726448);       /* header copied */
    assert_int_equal(rd32(&gm, zp + 0x1f4), o.pm_size / 16);
    assert_int_equal(rd8(&gm, zp + 0x206), 0x0f);
    assert_int_equal(rd8(&gm, zp + 0x26c), 0);                  /* but nothing past it */
    assert_int_equal(rd8(&gm, zp + 0x210), 0xff);               /* type_of_loader */
    assert_int_equal(rd32(&gm, zp + 0x228), LAYOUT_CMDLINE_ADDR);
    assert_string_equal((const char *)guest_memory_ptr(&gm, LAYOUT_CMDLINE_ADDR, 14), "console=ttyS0");
    assert_int_equal(rd32(&gm, zp + 0x218), 0);                 /* no initrd */
    assert_int_equal(rd32(&gm, zp + 0x21c), 0);
    assert_int_equal(rd64(&gm, zp + 0x070), RSDP_GPA);

    struct e820 m[128];
    assert_e820(m, bz_e820(&gm, m), map_256m, G_N_ELEMENTS(map_256m));
    guest_memory_destroy(&gm);
}

static void test_bz_5g_two_regions(void **state)
{
    struct bz_opts o = bz_default();
    g_autofree char *k = bz_file("bz5", &o);
    struct guest_memory gm;
    struct boot_entry e;
    assert_int_equal(load(&gm, 5 * GiB, k, NULL, NULL, &e, NULL), 0);
    struct e820 m[128];
    const struct e820 want[] = {
        { 0, 0x9fc00, 1 },
        { 0x9fc00, 0x100000 - 0x9fc00, 2 },
        { 0x100000, 3 * GiB - 0x100000, 1 },
        { 0xe0000000, 0x100000, 2 },     /* ECAM, bus 0 */
        { 4 * GiB, 2 * GiB, 1 },
    };
    assert_e820(m, bz_e820(&gm, m), want, G_N_ELEMENTS(want));
    assert_int_equal(rd8(&gm, LAYOUT_CMDLINE_ADDR), 0);         /* no --cmdline: empty string */
    guest_memory_destroy(&gm);
}

static void assert_check_fails(const char *path, const char *needle1, const char *needle2)
{
    g_autoptr(GError) err = NULL;
    assert_int_equal(boot_check_kernel(path, &err), -1);
    assert_non_null(err);
    assert_true(g_error_matches(err, CONFIG_ERROR, 0));
    assert_non_null(strstr(err->message, path));
    assert_non_null(strstr(err->message, needle1));
    if (needle2)
        assert_non_null(strstr(err->message, needle2));
    assert_null(strchr(err->message, '\n'));
}

static void test_bz_old_protocol(void **state)
{
    struct bz_opts o = bz_default();
    o.version = 0x020a;
    g_autofree char *k = bz_file("old", &o);
    assert_check_fails(k, "boot protocol 2.10", "needs 2.12+ with a 64-bit entry");

    o = bz_default();
    o.xloadflags = 0;
    g_autofree char *k32 = bz_file("no64", &o);
    assert_check_fails(k32, "boot protocol 2.15", "64-bit entry");

    /* boot_load re-validates rather than trusting an earlier check. */
    struct guest_memory gm;
    struct boot_entry e;
    g_autoptr(GError) err = NULL;
    assert_int_equal(load(&gm, 64 * MiB, k, NULL, NULL, &e, &err), -1);
    assert_non_null(strstr(err->message, "2.12+"));
    guest_memory_destroy(&gm);
}

static void test_bz_truncated(void **state)
{
    struct bz_opts o = bz_default();
    g_autoptr(GByteArray) b = bz_build(&o);
    /* The header says 4 setup sectors, the file ends inside them. */
    g_autofree char *k = write_file("trunc-setup", b->data, 3 * 512);
    assert_check_fails(k, "truncated", "4 setup sectors");
    /* Setup complete, code cut short of syssize. */
    g_autofree char *k2 = write_file("trunc-code", b->data, b->len - 100);
    assert_check_fails(k2, "truncated", NULL);
    /* Cut inside the setup header itself. */
    g_autofree char *k3 = write_file("trunc-hdr", b->data, 0x220);
    assert_check_fails(k3, "truncated", NULL);
}

static void test_bz_setup_sects_zero(void **state)
{
    struct bz_opts o = bz_default();
    o.setup_sects = 0;
    g_autofree char *k = bz_file("sects0", &o);
    assert_int_equal(boot_check_kernel(k, NULL), 0);
    struct guest_memory gm;
    struct boot_entry e;
    assert_int_equal(load(&gm, 64 * MiB, k, NULL, NULL, &e, NULL), 0);
    /* Code taken from 5 * 512, as if setup_sects were 4. */
    const uint8_t *kern = guest_memory_ptr(&gm, LAYOUT_KERNEL_ADDR, o.pm_size);
    for (size_t i = 0; i < o.pm_size; i++)
        assert_int_equal(kern[i], pm_byte(i));
    guest_memory_destroy(&gm);
}

static void test_bz_cmdline_too_long(void **state)
{
    struct bz_opts o = bz_default();
    o.cmdline_size = 16;
    g_autofree char *k = bz_file("cmd16", &o);
    struct guest_memory gm;
    struct boot_entry e;
    g_autoptr(GError) err = NULL;
    assert_int_equal(load(&gm, 64 * MiB, k, NULL, "0123456789abcdefX", &e, &err), -1);
    assert_true(g_error_matches(err, CONFIG_ERROR, 0));
    assert_non_null(strstr(err->message, "--cmdline is 17 bytes"));
    assert_non_null(strstr(err->message, "at most 16"));
    guest_memory_destroy(&gm);

    assert_int_equal(load(&gm, 64 * MiB, k, NULL, "0123456789abcdef", &e, NULL), 0);
    assert_string_equal((const char *)guest_memory_ptr(&gm, LAYOUT_CMDLINE_ADDR, 17), "0123456789abcdef");
    guest_memory_destroy(&gm);
}

static char *initrd_file(const char *name, size_t size)
{
    g_autofree uint8_t *d = g_malloc(size);
    for (size_t i = 0; i < size; i++)
        d[i] = (uint8_t)(i ^ (i >> 8));
    return write_file(name, d, size);
}

static void assert_initrd_at(struct guest_memory *gm, uint64_t gpa, size_t size)
{
    const uint8_t *p = guest_memory_ptr(gm, gpa, size);
    assert_non_null(p);
    for (size_t i = 0; i < size; i++)
        assert_int_equal(p[i], (uint8_t)(i ^ (i >> 8)));
}

static void test_bz_initrd_placement(void **state)
{
    const size_t size = MiB + 123;
    g_autofree char *rd = initrd_file("initrd", size);
    struct bz_opts o = bz_default();
    g_autofree char *k = bz_file("bz-rd", &o);
    struct guest_memory gm;
    struct boot_entry e;

    /* Limited by RAM: as high as it goes, page aligned. */
    assert_int_equal(load(&gm, 256 * MiB, k, rd, NULL, &e, NULL), 0);
    uint64_t gpa = rd32(&gm, LAYOUT_ZERO_PAGE_ADDR + 0x218);
    assert_int_equal(rd32(&gm, LAYOUT_ZERO_PAGE_ADDR + 0x21c), size);
    assert_int_equal(gpa % 4096, 0);
    assert_true(gpa + size <= 256 * MiB);
    assert_true(gpa + size > 256 * MiB - 4096);
    assert_true(gpa >= 0x1000000 + o.init_size);               /* clear of the decompressing kernel */
    assert_initrd_at(&gm, gpa, size);
    assert_true(guest_memory_page_dirty(&gm, gpa));
    guest_memory_destroy(&gm);

    /* Limited by initrd_addr_max (the highest byte it may occupy). */
    o.initrd_addr_max = 128 * MiB - 1;
    g_autofree char *k2 = bz_file("bz-rd128", &o);
    assert_int_equal(load(&gm, 256 * MiB, k2, rd, NULL, &e, NULL), 0);
    gpa = rd32(&gm, LAYOUT_ZERO_PAGE_ADDR + 0x218);
    assert_int_equal(gpa % 4096, 0);
    assert_true(gpa + size <= 128 * MiB);
    assert_true(gpa + size > 128 * MiB - 4096);
    assert_initrd_at(&gm, gpa, size);
    guest_memory_destroy(&gm);
}

static void test_bz_initrd_too_big(void **state)
{
    struct bz_opts o = bz_default();
    g_autofree char *k = bz_file("bz-big", &o);
    g_autofree char *rd = g_build_filename(tmpdir, "big-initrd", NULL);
    FILE *f = fopen(rd, "w");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 60 * MiB), 0);      /* sparse */
    fclose(f);

    struct guest_memory gm;
    struct boot_entry e;
    g_autoptr(GError) err = NULL;
    /* 64 MiB of RAM, the kernel needs up to 24 MiB: 60 MiB cannot fit. */
    assert_int_equal(load(&gm, 64 * MiB, k, rd, NULL, &e, &err), -1);
    assert_true(g_error_matches(err, CONFIG_ERROR, 0));
    assert_non_null(strstr(err->message, rd));
    assert_non_null(strstr(err->message, "does not fit"));
    guest_memory_destroy(&gm);
}

static void test_bz_ram_too_small(void **state)
{
    struct bz_opts o = bz_default();
    o.init_size = 64 * MiB;
    g_autofree char *k = bz_file("bz-huge", &o);
    struct guest_memory gm;
    struct boot_entry e;
    g_autoptr(GError) err = NULL;
    assert_int_equal(load(&gm, 32 * MiB, k, NULL, NULL, &e, &err), -1);
    assert_non_null(strstr(err->message, "needs 80 MiB of RAM"));
    guest_memory_destroy(&gm);
}

/* ---- non-kernels ---- */

static void test_garbage_and_empty(void **state)
{
    const char text[] = "#!/bin/sh\necho this is not a kernel\n";
    g_autofree char *t = write_file("text", text, sizeof(text) - 1);
    assert_check_fails(t, "neither a bzImage", "PVH ELF");
    g_autofree char *z = write_file("empty", "", 0);
    assert_check_fails(z, "is empty", NULL);
    g_autofree char *missing = g_build_filename(tmpdir, "missing", NULL);
    assert_check_fails(missing, "cannot open", NULL);
    assert_check_fails(tmpdir, "not a regular file", NULL);
}

/* ---- PVH ---- */

#define PVH_ENTRY   0x1000040u
#define SEG_PADDR   0x1000000ULL
#define SEG_FILESZ  0x1000ULL
#define SEG_MEMSZ   0x3000ULL

struct elf_opts {
    bool is64;
    bool note;
    uint64_t paddr;
    bool cut_phdrs;
};

static uint8_t seg_byte(size_t i)
{
    return (uint8_t)(0x80 | (i * 13));
}

/* Header, two phdrs (PT_NOTE, PT_LOAD), a non-Xen note then the Xen one, segment data. */
static GByteArray *elf_build(const struct elf_opts *o)
{
    size_t eh = o->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    size_t ph = o->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    size_t notes_off = eh + 2 * ph, notes_len = 0;
    uint8_t notes[64] = { 0 };
    /* A GNU note first: the loader must walk past it. */
    put32(notes, 0, 4); put32(notes, 4, 4); put32(notes, 8, 3);
    memcpy(notes + 12, "GNU", 4);
    notes_len = 20;
    if (o->note) {
        put32(notes, notes_len, 4); put32(notes, notes_len + 4, 4); put32(notes, notes_len + 8, 18);
        memcpy(notes + notes_len + 12, "Xen", 4);
        put32(notes, notes_len + 16, PVH_ENTRY);
        notes_len += 20;
    }
    size_t seg_off = 0x1000;
    GByteArray *b = g_byte_array_new();
    g_byte_array_set_size(b, seg_off + SEG_FILESZ);
    uint8_t *d = b->data;
    memset(d, 0, b->len);
    memcpy(d, ELFMAG, SELFMAG);
    d[EI_CLASS] = o->is64 ? ELFCLASS64 : ELFCLASS32;
    d[EI_DATA] = ELFDATA2LSB;
    d[EI_VERSION] = EV_CURRENT;
    if (o->is64) {
        Elf64_Ehdr h = { .e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT, .e_phoff = eh,
                         .e_ehsize = eh, .e_phentsize = ph, .e_phnum = 2 };
        memcpy(h.e_ident, d, EI_NIDENT);
        memcpy(d, &h, sizeof(h));
        Elf64_Phdr p[2] = {
            { .p_type = PT_NOTE, .p_offset = notes_off, .p_filesz = notes_len, .p_memsz = notes_len },
            { .p_type = PT_LOAD, .p_offset = seg_off, .p_vaddr = 0xffffffff81000000ULL, .p_paddr = o->paddr,
              .p_filesz = SEG_FILESZ, .p_memsz = SEG_MEMSZ },
        };
        memcpy(d + eh, p, sizeof(p));
    } else {
        Elf32_Ehdr h = { .e_type = ET_EXEC, .e_machine = EM_386, .e_version = EV_CURRENT, .e_phoff = eh,
                         .e_ehsize = eh, .e_phentsize = ph, .e_phnum = 2 };
        memcpy(h.e_ident, d, EI_NIDENT);
        memcpy(d, &h, sizeof(h));
        Elf32_Phdr p[2] = {
            { .p_type = PT_NOTE, .p_offset = notes_off, .p_filesz = notes_len, .p_memsz = notes_len },
            { .p_type = PT_LOAD, .p_offset = seg_off, .p_paddr = (uint32_t)o->paddr, .p_filesz = SEG_FILESZ,
              .p_memsz = SEG_MEMSZ },
        };
        memcpy(d + eh, p, sizeof(p));
    }
    memcpy(d + notes_off, notes, notes_len);
    for (size_t i = 0; i < SEG_FILESZ; i++)
        d[seg_off + i] = seg_byte(i);
    if (o->cut_phdrs)
        g_byte_array_set_size(b, eh + ph + 4);
    return b;
}

static char *elf_file(const char *name, const struct elf_opts *o)
{
    g_autoptr(GByteArray) b = elf_build(o);
    return write_file(name, b->data, b->len);
}

static void pvh_valid(bool is64)
{
    struct elf_opts o = { .is64 = is64, .note = true, .paddr = SEG_PADDR };
    g_autofree char *k = elf_file(is64 ? "pvh64" : "pvh32", &o);
    g_autofree char *rd = initrd_file("pvh-initrd", 5000);
    assert_int_equal(boot_check_kernel(k, NULL), 0);

    struct guest_memory gm;
    assert_int_equal(guest_memory_create(&gm, 256 * MiB, false, false, NULL), 0);
    /* Stale bytes where the segment's bss goes: the loader must zero them. */
    assert_int_equal(guest_memory_fill(&gm, SEG_PADDR, 0xaa, SEG_MEMSZ), 0);
    struct boot_params_in in = { .kernel = k, .initrd = rd, .cmdline = "console=hvc0", .rsdp_gpa = RSDP_GPA };
    struct boot_entry e;
    assert_int_equal(boot_load(&gm, &in, &e, NULL), 0);
    assert_int_equal(e.mode, BOOT_ENTRY_PVH32);
    assert_int_equal(e.rip, PVH_ENTRY);
    assert_int_equal(e.arg, LAYOUT_ZERO_PAGE_ADDR);

    const uint8_t *seg = guest_memory_ptr(&gm, SEG_PADDR, SEG_MEMSZ);
    for (size_t i = 0; i < SEG_FILESZ; i++)
        assert_int_equal(seg[i], seg_byte(i));
    for (size_t i = SEG_FILESZ; i < SEG_MEMSZ; i++)
        assert_int_equal(seg[i], 0);

    uint64_t si = LAYOUT_ZERO_PAGE_ADDR;
    assert_int_equal(rd32(&gm, si + 0), 0x336ec578);
    assert_int_equal(rd32(&gm, si + 4), 1);
    assert_int_equal(rd32(&gm, si + 12), 1);                    /* nr_modules */
    assert_int_equal(rd64(&gm, si + 16), LAYOUT_PVH_MODLIST_ADDR);
    assert_int_equal(rd64(&gm, si + 24), LAYOUT_CMDLINE_ADDR);
    assert_int_equal(rd64(&gm, si + 32), RSDP_GPA);
    assert_int_equal(rd64(&gm, si + 40), LAYOUT_PVH_MEMMAP_ADDR);
    unsigned n = rd32(&gm, si + 48);
    assert_string_equal((const char *)guest_memory_ptr(&gm, LAYOUT_CMDLINE_ADDR, 13), "console=hvc0");

    struct e820 m[8];
    assert_true(n <= 8);
    for (unsigned i = 0; i < n; i++) {
        uint64_t a = LAYOUT_PVH_MEMMAP_ADDR + i * 24;
        m[i] = (struct e820){ rd64(&gm, a), rd64(&gm, a + 8), rd32(&gm, a + 16) };
    }
    assert_e820(m, n, map_256m, G_N_ELEMENTS(map_256m));

    uint64_t mod = LAYOUT_PVH_MODLIST_ADDR;
    uint64_t gpa = rd64(&gm, mod);
    assert_int_equal(rd64(&gm, mod + 8), 5000);
    assert_int_equal(gpa % 4096, 0);
    assert_true(gpa >= SEG_PADDR + SEG_MEMSZ && gpa + 5000 <= 256 * MiB);
    assert_initrd_at(&gm, gpa, 5000);
    guest_memory_destroy(&gm);
}

static void test_pvh_elf32(void **state) { pvh_valid(false); }
static void test_pvh_elf64(void **state) { pvh_valid(true); }

static void test_pvh_without_note(void **state)
{
    struct elf_opts o = { .is64 = true, .note = false, .paddr = SEG_PADDR };
    g_autofree char *k = elf_file("nonote", &o);
    assert_check_fails(k, "ELF file without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)",
                       "vmm boots a bzImage or a PVH ELF");
}

static void test_pvh_bad_segments(void **state)
{
    /* Beyond the end of 256 MiB of RAM: found at load time. */
    struct elf_opts o = { .is64 = true, .note = true, .paddr = 512 * MiB };
    g_autofree char *k = elf_file("far", &o);
    assert_int_equal(boot_check_kernel(k, NULL), 0);
    struct guest_memory gm;
    struct boot_entry e;
    g_autoptr(GError) err = NULL;
    assert_int_equal(load(&gm, 256 * MiB, k, NULL, NULL, &e, &err), -1);
    assert_true(g_error_matches(err, CONFIG_ERROR, 0));
    assert_non_null(strstr(err->message, "outside guest RAM"));
    guest_memory_destroy(&gm);

    /* Straddling the end of RAM. */
    o.paddr = 256 * MiB - 0x1000;
    g_autofree char *k2 = elf_file("straddle", &o);
    g_autoptr(GError) err2 = NULL;
    assert_int_equal(load(&gm, 256 * MiB, k2, NULL, NULL, &e, &err2), -1);
    assert_non_null(strstr(err2->message, "outside guest RAM"));
    guest_memory_destroy(&gm);

    /* Over the first MiB (boot structures, ACPI tables). */
    o.paddr = 0x80000;
    g_autofree char *k3 = elf_file("low", &o);
    assert_check_fails(k3, "at or above 1 MiB", NULL);

    /* Program headers cut off by the end of the file. */
    o = (struct elf_opts){ .is64 = false, .note = true, .paddr = SEG_PADDR, .cut_phdrs = true };
    g_autofree char *k4 = elf_file("cutph", &o);
    assert_check_fails(k4, "truncated", "program headers");
}

/* ---- the real thing, when the lab has fetched it ---- */

static char *find_debian_kernel(void)
{
    const char *cache = g_getenv("VMM_LAB_CACHE");
    g_autofree char *dir = cache ? g_strdup(cache) : NULL;
    const char *guesses[] = { "build/lab-cache", "../build/lab-cache", "../../build/lab-cache",
                              "../../../build/lab-cache" };
    for (unsigned i = 0; !dir && i < G_N_ELEMENTS(guesses); i++)
        if (g_file_test(guesses[i], G_FILE_TEST_IS_DIR))
            dir = g_strdup(guesses[i]);
    if (!dir)
        return NULL;
    g_autofree char *pattern = g_build_filename(dir, "kernel", "boot", "vmlinuz-*", NULL);
    glob_t g;
    char *found = NULL;
    if (glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0)
        found = g_strdup(g.gl_pathv[0]);
    globfree(&g);
    return found;
}

static void test_debian_bzimage(void **state)
{
    g_autofree char *k = find_debian_kernel();
    if (!k) {
        printf("# skip: no Debian kernel in build/lab-cache (run tools/lab/fetch-kernel or set VMM_LAB_CACHE)\n");
        skip();
    }
    g_autoptr(GError) err = NULL;
    assert_int_equal(boot_check_kernel(k, &err), 0);
    struct guest_memory gm;
    struct boot_entry e;
    assert_int_equal(load(&gm, 256 * MiB, k, NULL, "console=ttyS0", &e, NULL), 0);
    assert_int_equal(e.mode, BOOT_ENTRY_LINUX64);
    assert_int_equal(rd32(&gm, LAYOUT_ZERO_PAGE_ADDR + 0x202), 0x53726448);
    assert_true(rd8(&gm, LAYOUT_ZERO_PAGE_ADDR + 0x236) & 1);  /* XLF_KERNEL_64 */
    guest_memory_destroy(&gm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bz_valid),
        cmocka_unit_test(test_bz_5g_two_regions),
        cmocka_unit_test(test_bz_old_protocol),
        cmocka_unit_test(test_bz_truncated),
        cmocka_unit_test(test_bz_setup_sects_zero),
        cmocka_unit_test(test_bz_cmdline_too_long),
        cmocka_unit_test(test_bz_initrd_placement),
        cmocka_unit_test(test_bz_initrd_too_big),
        cmocka_unit_test(test_bz_ram_too_small),
        cmocka_unit_test(test_garbage_and_empty),
        cmocka_unit_test(test_pvh_elf32),
        cmocka_unit_test(test_pvh_elf64),
        cmocka_unit_test(test_pvh_without_note),
        cmocka_unit_test(test_pvh_bad_segments),
        cmocka_unit_test(test_debian_bzimage),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
