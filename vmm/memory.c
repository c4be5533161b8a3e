#include "vmm/memory.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/layout.h"

#define BITS_PER_LONG (8 * sizeof(unsigned long))

/* Maps `size` bytes at a 2 MiB-aligned address. Guest physical addresses
 * of RAM are 2 MiB-aligned, and KVM maps a guest page with a 2 MiB entry
 * only where the host address is aligned the same way and backed by a huge
 * page; mmap gives no such alignment (before Linux 6.7), and a misaligned
 * base left every guest page a 4 KiB stage-2 fault (measured in the lab:
 * 29k faults per Linux boot against QEMU's 430, about a second). So: reserve
 * size + 2 MiB of address space, map RAM over its aligned part, give back
 * the rest. Returns MAP_FAILED with errno set on failure. */
static void *map_aligned(uint64_t size, int mflags, int fd)
{
    const uintptr_t align = 2u << 20;
    uint8_t *resv = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (resv == MAP_FAILED)
        return MAP_FAILED;
    uint8_t *start = (uint8_t *)(((uintptr_t)resv + align - 1) & ~(align - 1));
    void *p = mmap(start, size, PROT_READ | PROT_WRITE, mflags | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        munmap(resv, size + align);
        errno = e;
        return MAP_FAILED;
    }
    if (start > resv)
        munmap(resv, (size_t)(start - resv));
    uint8_t *end = start + size, *resv_end = resv + size + align;
    if (resv_end > end)
        munmap(end, (size_t)(resv_end - end));
    return p;
}

int guest_memory_create(struct guest_memory *gm, uint64_t size, bool hugepages, bool shared,
                        GError **err)
{
    memset(gm, 0, sizeof(*gm));
    gm->memfd = -1;
    gm->hugepages = hugepages;

    /* Private RAM (the default) is anonymous memory with transparent huge
     * pages: the guest's first touch of each 2 MiB gets one huge page, with
     * no file behind it to copy from. A private mapping of a memfd would give
     * 4 KiB copy-on-write faults and no THP (measured: Linux L2 boot 1.5x
     * slower). A memfd is made where its fd is the point: shared=on (pages
     * another process can map: vhost-user, local migration) and hugepages=on
     * (hugetlbfs pages, reserved at mmap time without MAP_NORESERVE, so a
     * host without enough of them fails here instead of with SIGBUS when the
     * guest first touches a page). */
    int fd = -1;
    if (shared || hugepages) {
        unsigned flags = MFD_CLOEXEC | (hugepages ? MFD_HUGETLB : 0);
        fd = memfd_create("vmm-guest-ram", flags);
        if (fd < 0) {
            g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno),
                        "cannot create guest RAM (memfd_create%s): %s%s", hugepages ? " with MFD_HUGETLB" : "",
                        g_strerror(errno), hugepages ? "; is hugetlbfs available? try hugepages=off" : "");
            return -1;
        }
        if (ftruncate(fd, (off_t)size) < 0) {
            int e = errno;
            g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e),
                        "cannot size guest RAM to %" G_GUINT64_FORMAT " MiB: %s%s", size >> 20, g_strerror(e),
                        hugepages ? " (--memory size must be a multiple of the huge page size)" : "");
            close(fd);
            return -1;
        }
    }
    int mflags = (shared ? MAP_SHARED : MAP_PRIVATE) | (hugepages ? 0 : MAP_NORESERVE) |
                 (fd < 0 ? MAP_ANONYMOUS : 0);
    void *p = map_aligned(size, mflags, fd);
    if (p == MAP_FAILED) {
        int e = errno;
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e),
                    "cannot map %" G_GUINT64_FORMAT " MiB of guest RAM: %s%s", size >> 20, g_strerror(e),
                    hugepages ? " (not enough free huge pages? see /proc/sys/vm/nr_hugepages)" : "");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!hugepages)
        madvise(p, size, MADV_HUGEPAGE);   /* THP where the host allows it; advisory */

    gm->memfd = fd;
    gm->base = p;
    gm->ram_size = size;

    uint64_t low = size < LAYOUT_MEM_32BIT_GAP ? size : LAYOUT_MEM_32BIT_GAP;
    gm->regions[0] = (struct guest_region){ .gpa = 0, .size = low, .hva = p, .fd_offset = 0, .slot = 0 };
    gm->nr_regions = 1;
    if (size > low) {
        gm->regions[1] = (struct guest_region){ .gpa = LAYOUT_4GIB, .size = size - low,
                                                .hva = (uint8_t *)p + low, .fd_offset = low, .slot = 1 };
        gm->nr_regions = 2;
    }
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        uint64_t pages = gm->regions[i].size / GUEST_PAGE_SIZE;
        gm->regions[i].dirty = g_new0(unsigned long, (pages + BITS_PER_LONG - 1) / BITS_PER_LONG);
    }
    return 0;
}

int guest_memory_register(struct guest_memory *gm, int vm_fd)
{
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        struct guest_region *r = &gm->regions[i];
        struct kvm_userspace_memory_region kr = {
            .slot = r->slot,
            .guest_phys_addr = r->gpa,
            .memory_size = r->size,
            .userspace_addr = (uint64_t)(uintptr_t)r->hva,
        };
        if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0)
            return -errno;
    }
    return 0;
}

void guest_memory_destroy(struct guest_memory *gm)
{
    for (unsigned i = 0; i < gm->nr_regions; i++)
        g_free(gm->regions[i].dirty);
    if (gm->base)
        munmap(gm->base, gm->ram_size);
    if (gm->memfd >= 0)
        close(gm->memfd);
    memset(gm, 0, sizeof(*gm));
    gm->memfd = -1;
}

static const struct guest_region *find_region(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    if (len == 0 || gpa + len < gpa)
        return NULL;
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        const struct guest_region *r = &gm->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
            return r;
    }
    return NULL;
}

void *guest_memory_ptr(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    const struct guest_region *r = find_region(gm, gpa, len);
    return r ? r->hva + (gpa - r->gpa) : NULL;
}

int guest_memory_read(const struct guest_memory *gm, uint64_t gpa, void *buf, uint64_t len)
{
    if (len == 0)
        return 0;
    void *p = guest_memory_ptr(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(buf, p, len);
    return 0;
}

void guest_memory_mark_dirty(struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    const struct guest_region *r = find_region(gm, gpa, len);
    if (!r)
        return;
    uint64_t first = (gpa - r->gpa) / GUEST_PAGE_SIZE;
    uint64_t last = (gpa - r->gpa + len - 1) / GUEST_PAGE_SIZE;
    for (uint64_t pg = first; pg <= last; pg++)
        __atomic_fetch_or(&r->dirty[pg / BITS_PER_LONG], 1UL << (pg % BITS_PER_LONG), __ATOMIC_RELAXED);
}

bool guest_memory_page_dirty(const struct guest_memory *gm, uint64_t gpa)
{
    const struct guest_region *r = find_region(gm, gpa, 1);
    if (!r)
        return false;
    uint64_t pg = (gpa - r->gpa) / GUEST_PAGE_SIZE;
    return (__atomic_load_n(&r->dirty[pg / BITS_PER_LONG], __ATOMIC_RELAXED) >> (pg % BITS_PER_LONG)) & 1;
}

int guest_memory_write(struct guest_memory *gm, uint64_t gpa, const void *buf, uint64_t len)
{
    if (len == 0)
        return 0;
    void *p = guest_memory_ptr(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(p, buf, len);
    guest_memory_mark_dirty(gm, gpa, len);
    return 0;
}

int guest_memory_fill(struct guest_memory *gm, uint64_t gpa, int byte, uint64_t len)
{
    if (len == 0)
        return 0;
    void *p = guest_memory_ptr(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memset(p, byte, len);
    guest_memory_mark_dirty(gm, gpa, len);
    return 0;
}

uint64_t guest_memory_low_end(const struct guest_memory *gm)
{
    return gm->regions[0].size;
}
