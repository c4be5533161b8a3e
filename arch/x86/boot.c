#include "arch/x86/boot.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/bzimage.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "vmm/config.h"
#include "vmm/memory.h"

struct kernel_file {
    const uint8_t *data;
    size_t size;
};

enum kernel_format { KERNEL_BZIMAGE, KERNEL_PVH };

struct kernel_info {
    enum kernel_format format;
    struct bzimage_info bz;
    struct pvh_info pvh;
};

/* Opens a regular, non-empty file; *fd_out is the open descriptor. */
static int open_input(const char *what, const char *path, int *fd_out, uint64_t *size, GError **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        g_set_error(err, CONFIG_ERROR, 0, "cannot open %s %s: %s", what, path, g_strerror(e));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        g_set_error(err, CONFIG_ERROR, 0, "%s %s is not a regular file", what, path);
        close(fd);
        return -1;
    }
    if (st.st_size == 0) {
        g_set_error(err, CONFIG_ERROR, 0, "%s %s is empty", what, path);
        close(fd);
        return -1;
    }
    *fd_out = fd;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int kernel_map(const char *path, struct kernel_file *k, GError **err)
{
    int fd;
    uint64_t size;
    if (open_input("kernel", path, &fd, &size, err) < 0)
        return -1;
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        g_set_error(err, CONFIG_ERROR, 0, "cannot read kernel %s: %s", path, g_strerror(e));
        return -1;
    }
    k->data = p;
    k->size = size;
    return 0;
}

static void kernel_unmap(struct kernel_file *k)
{
    munmap((void *)k->data, k->size);
}

static int kernel_parse(const char *path, const struct kernel_file *k, struct kernel_info *ki, GError **err)
{
    if (bzimage_detect(k->data, k->size)) {
        ki->format = KERNEL_BZIMAGE;
        return bzimage_parse(path, k->data, k->size, &ki->bz, err);
    }
    if (pvh_detect_elf(k->data, k->size)) {
        ki->format = KERNEL_PVH;
        return pvh_parse(path, k->data, k->size, &ki->pvh, err);
    }
    g_set_error(err, CONFIG_ERROR, 0, "kernel %s is neither a bzImage (no \"HdrS\" header at 0x202) nor an ELF "
                "file; vmm boots a bzImage or a PVH ELF", path);
    return -1;
}

int boot_check_kernel(const char *path, GError **err)
{
    struct kernel_file k;
    if (kernel_map(path, &k, err) < 0)
        return -1;
    struct kernel_info ki;
    int r = kernel_parse(path, &k, &ki, err);
    kernel_unmap(&k);
    return r;
}

static int write_cmdline(struct guest_memory *gm, const char *path, const char *cmdline, uint64_t max_len,
                         GError **err)
{
    const char *s = cmdline ? cmdline : "";
    size_t len = strlen(s);
    max_len = MIN(max_len, LAYOUT_CMDLINE_MAX - 1);
    if (len > max_len) {
        g_set_error(err, CONFIG_ERROR, 0, "--cmdline is %zu bytes but kernel %s accepts at most %" G_GUINT64_FORMAT,
                    len, path, max_len);
        return -1;
    }
    return guest_memory_write(gm, LAYOUT_CMDLINE_ADDR, s, len + 1);
}

/* Places the initrd page-aligned as high as it can go below `limit`
 * (exclusive) and above `floor`, and reads it straight into guest RAM. */
static int load_initrd(struct guest_memory *gm, const char *path, uint64_t floor, uint64_t limit,
                       uint64_t *gpa, uint64_t *size, GError **err)
{
    int fd;
    if (open_input("initrd", path, &fd, size, err) < 0)
        return -1;
    limit = MIN(limit, guest_memory_low_end(gm));
    uint64_t addr = 0;
    if (*size <= limit)
        addr = (limit - *size) & ~(GUEST_PAGE_SIZE - 1);
    if (*size > limit || addr < floor) {
        g_set_error(err, CONFIG_ERROR, 0, "initrd %s (%" G_GUINT64_FORMAT " MiB) does not fit in guest RAM between "
                    "the kernel (up to %" G_GUINT64_FORMAT " MiB) and %" G_GUINT64_FORMAT " MiB; raise --memory",
                    path, (*size + (1 << 20) - 1) >> 20, (floor + (1 << 20) - 1) >> 20, limit >> 20);
        close(fd);
        return -1;
    }
    uint8_t *dst = guest_memory_ptr(gm, addr, *size);
    uint64_t done = 0;
    while (dst && done < *size) {
        ssize_t r = pread(fd, dst + done, MIN(*size - done, (uint64_t)1 << 30), (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            g_set_error(err, CONFIG_ERROR, 0, "cannot read initrd %s: %s", path,
                        r < 0 ? g_strerror(e) : "file shrank while loading");
            close(fd);
            return -1;
        }
        done += (uint64_t)r;
    }
    close(fd);
    guest_memory_mark_dirty(gm, addr, *size);
    *gpa = addr;
    return 0;
}

static int load_parsed(struct guest_memory *gm, const struct boot_params_in *in, const struct kernel_file *k,
                       const struct kernel_info *ki, struct boot_entry *entry, GError **err)
{
    bool bz = ki->format == KERNEL_BZIMAGE;
    uint64_t kernel_end, initrd_limit, cmdline_max;
    if (bz) {
        if (bzimage_load_kernel(gm, in->kernel, k->data, &ki->bz, err) < 0)
            return -1;
        kernel_end = ki->bz.kernel_end;
        initrd_limit = ki->bz.initrd_addr_max + 1;
        cmdline_max = ki->bz.cmdline_size;
    } else {
        if (pvh_load_segments(gm, in->kernel, k->data, k->size, err) < 0)
            return -1;
        kernel_end = ki->pvh.kernel_end;
        initrd_limit = LAYOUT_4GIB;
        cmdline_max = LAYOUT_CMDLINE_MAX - 1;
    }
    if (write_cmdline(gm, in->kernel, in->cmdline, cmdline_max, err) < 0)
        return -1;
    uint64_t initrd_gpa = 0, initrd_size = 0;
    if (in->initrd &&
        load_initrd(gm, in->initrd, kernel_end, initrd_limit, &initrd_gpa, &initrd_size, err) < 0)
        return -1;

    int r;
    if (bz) {
        r = bzimage_write_params(gm, k->data, &ki->bz, LAYOUT_CMDLINE_ADDR, initrd_gpa, initrd_size, in->rsdp_gpa);
        *entry = (struct boot_entry){ .mode = BOOT_ENTRY_LINUX64, .rip = LAYOUT_KERNEL_ADDR + 0x200,
                                      .arg = LAYOUT_ZERO_PAGE_ADDR };
    } else {
        r = pvh_write_start_info(gm, LAYOUT_CMDLINE_ADDR, initrd_gpa, initrd_size, in->rsdp_gpa);
        *entry = (struct boot_entry){ .mode = BOOT_ENTRY_PVH32, .rip = ki->pvh.entry,
                                      .arg = LAYOUT_ZERO_PAGE_ADDR };
    }
    if (r < 0) {
        g_set_error(err, CONFIG_ERROR, 0, "guest RAM is too small for the boot structures; raise --memory");
        return -1;
    }
    return 0;
}

int boot_load(struct guest_memory *gm, const struct boot_params_in *in, struct boot_entry *entry, GError **err)
{
    struct kernel_file k;
    if (kernel_map(in->kernel, &k, err) < 0)
        return -1;
    struct kernel_info ki;
    int r = kernel_parse(in->kernel, &k, &ki, err);
    if (r == 0)
        r = load_parsed(gm, in, &k, &ki, entry, err);
    kernel_unmap(&k);
    return r;
}
