#include "vmm/memory.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
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
static void *map_aligned(uint64_t size, int mflags, int fd, uint64_t offset)
{
    const uintptr_t align = 2u << 20;
    uint8_t *resv = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (resv == MAP_FAILED)
        return MAP_FAILED;
    uint8_t *start = (uint8_t *)(((uintptr_t)resv + align - 1) & ~(align - 1));
    void *p = mmap(start, size, PROT_READ | PROT_WRITE, mflags | MAP_FIXED, fd, (off_t)offset);
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

static void layout(struct guest_memory *gm, uint8_t *p, uint64_t size);

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
    void *p = map_aligned(size, mflags, fd, 0);
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
    gm->anon = fd < 0;
    layout(gm, p, size);
    return 0;
}

int guest_memory_create_from_file(struct guest_memory *gm, uint64_t size, int fd, GError **err)
{
    memset(gm, 0, sizeof(*gm));
    gm->memfd = -1;
    void *p = map_aligned(size, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "cannot map %" G_GUINT64_FORMAT " MiB of guest RAM from the snapshot: %s", size >> 20,
                    g_strerror(errno));
        return -1;
    }
    layout(gm, p, size);
    return 0;
}

static void layout(struct guest_memory *gm, uint8_t *p, uint64_t size)
{
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
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        g_free(gm->regions[i].dirty);
        g_free(gm->regions[i].plugged);
    }
    const struct guest_region *hp = guest_memory_hotplug_region(gm);
    if (hp)
        munmap(hp->hva, hp->size);
    if (gm->base)
        munmap(gm->base, gm->ram_size);
    if (gm->memfd >= 0)
        close(gm->memfd);
    memset(gm, 0, sizeof(*gm));
    gm->memfd = -1;
}

uint64_t guest_memory_hotplug_base(uint64_t ram_size)
{
    uint64_t top = ram_size > LAYOUT_MEM_32BIT_GAP ? LAYOUT_4GIB + (ram_size - LAYOUT_MEM_32BIT_GAP) : LAYOUT_4GIB;
    return (top + LAYOUT_HOTPLUG_ALIGN - 1) & ~(LAYOUT_HOTPLUG_ALIGN - 1);
}

int guest_memory_add_hotplug(struct guest_memory *gm, uint64_t gpa, uint64_t size, uint64_t block, GError **err)
{
    if (guest_memory_hotplug_region(gm) || gm->hugepages || gm->nr_regions >= GUEST_MAX_REGIONS || !size || block < GUEST_PAGE_SIZE ||
        (block & (block - 1)) || size % block || gpa % block) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "bad hotplug region (%" G_GUINT64_FORMAT
                    " bytes at 0x%" G_GINT64_MODIFIER "x, blocks of %" G_GUINT64_FORMAT ")", size, gpa, block);
        return -1;
    }
    /* Address space only: MAP_NORESERVE, so an unplugged region costs no
     * commit charge and the host's RSS follows what the guest has plugged. */
    uint64_t fd_offset = 0;
    int mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, fd = -1;
    if (gm->memfd >= 0) {
        /* Shared RAM: the hotplug region is the memfd's tail, so whoever maps
         * the memfd sees hotplugged memory too. */
        fd = gm->memfd;
        fd_offset = gm->ram_size;
        mflags = MAP_SHARED | MAP_NORESERVE;
        if (ftruncate(fd, (off_t)(fd_offset + size)) < 0) {
            g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno),
                        "cannot grow guest RAM by the %" G_GUINT64_FORMAT " MiB hotplug region: %s", size >> 20,
                        g_strerror(errno));
            return -1;
        }
    }
    void *p = map_aligned(size, mflags, fd, fd_offset);
    if (p == MAP_FAILED) {
        g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "cannot map the %" G_GUINT64_FORMAT " MiB hotplug region: %s", size >> 20, g_strerror(errno));
        return -1;
    }
    madvise(p, size, MADV_HUGEPAGE);
    uint64_t pages = size / GUEST_PAGE_SIZE, blocks = size / block;
    unsigned i = gm->nr_regions++;
    gm->regions[i] = (struct guest_region){
        .gpa = gpa, .size = size, .hva = p, .fd_offset = fd_offset, .slot = i,
        .dirty = g_new0(unsigned long, (pages + BITS_PER_LONG - 1) / BITS_PER_LONG),
        .plugged = g_new0(unsigned long, (blocks + BITS_PER_LONG - 1) / BITS_PER_LONG),
        .block_size = block,
    };
    return 0;
}

const struct guest_region *guest_memory_hotplug_region(const struct guest_memory *gm)
{
    /* The region that has a plugged bitmap: a zeroed struct has none. */
    for (unsigned i = 0; i < gm->nr_regions; i++)
        if (gm->regions[i].plugged)
            return &gm->regions[i];
    return NULL;
}

static bool block_plugged(const struct guest_region *r, uint64_t blk)
{
    return (__atomic_load_n(&r->plugged[blk / BITS_PER_LONG], __ATOMIC_ACQUIRE) >> (blk % BITS_PER_LONG)) & 1;
}

/* The blocks [*first, *first + *n) of the hotplug region that [gpa, gpa+len)
 * covers exactly; false when it is not whole blocks of that region. */
static bool hotplug_blocks(const struct guest_memory *gm, uint64_t gpa, uint64_t len, uint64_t *first, uint64_t *n)
{
    const struct guest_region *r = guest_memory_hotplug_region(gm);
    if (!r || !len || gpa < r->gpa || gpa - r->gpa >= r->size || len > r->size - (gpa - r->gpa) ||
        (gpa - r->gpa) % r->block_size || len % r->block_size)
        return false;
    *first = (gpa - r->gpa) / r->block_size;
    *n = len / r->block_size;
    return true;
}

int guest_memory_set_plugged(struct guest_memory *gm, uint64_t gpa, uint64_t len, bool plugged)
{
    uint64_t first, n;
    if (!hotplug_blocks(gm, gpa, len, &first, &n))
        return -EINVAL;
    struct guest_region *r = (struct guest_region *)guest_memory_hotplug_region(gm);
    for (uint64_t b = first; b < first + n; b++) {
        unsigned long bit = 1UL << (b % BITS_PER_LONG);
        if (plugged)
            __atomic_fetch_or(&r->plugged[b / BITS_PER_LONG], bit, __ATOMIC_RELEASE);
        else
            __atomic_fetch_and(&r->plugged[b / BITS_PER_LONG], ~bit, __ATOMIC_RELEASE);
    }
    if (plugged)
        return 0;
    /* Refused to devices first (above), then given back to the host. The
     * pages now read as zero, which no dirty log sees: they count as
     * written, so that a migration sends them again should the block be
     * plugged before it ends. */
    uint64_t off = gpa - r->gpa;
    for (uint64_t pg = off / GUEST_PAGE_SIZE; pg < (off + len) / GUEST_PAGE_SIZE; pg++)
        __atomic_fetch_or(&r->dirty[pg / BITS_PER_LONG], 1UL << (pg % BITS_PER_LONG), __ATOMIC_RELAXED);
    if (gm->memfd >= 0 && fallocate(gm->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                    (off_t)(r->fd_offset + off), (off_t)len) < 0)
        return -errno;
    if (madvise(r->hva + off, len, MADV_DONTNEED) < 0)
        return -errno;
    return 0;
}

uint64_t guest_memory_count_plugged(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    uint64_t first, n, count = 0;
    if (!hotplug_blocks(gm, gpa, len, &first, &n))
        return 0;
    const struct guest_region *r = guest_memory_hotplug_region(gm);
    for (uint64_t b = first; b < first + n; b++)
        count += block_plugged(r, b);
    return count;
}

static const struct guest_region *find_region(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    if (len == 0 || gpa + len < gpa)
        return NULL;
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        const struct guest_region *r = &gm->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa)) {
            if (r->plugged) {
                /* A device may only reach hotplugged memory the guest plugged. */
                uint64_t last = (gpa - r->gpa + len - 1) / r->block_size;
                for (uint64_t b = (gpa - r->gpa) / r->block_size; b <= last; b++)
                    if (!block_plugged(r, b))
                        return NULL;
            }
            return r;
        }
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

/* ---- dirty tracking ---- */

uint64_t guest_memory_region_pages(const struct guest_memory *gm, unsigned i)
{
    return gm->regions[i].size / GUEST_PAGE_SIZE;
}

int guest_memory_log_dirty(struct guest_memory *gm, int vm_fd, bool on)
{
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        struct guest_region *r = &gm->regions[i];
        if (on) {
            uint64_t nl = (guest_memory_region_pages(gm, i) + BITS_PER_LONG - 1) / BITS_PER_LONG;
            for (uint64_t k = 0; k < nl; k++)
                __atomic_store_n(&r->dirty[k], 0UL, __ATOMIC_RELAXED);
        }
        struct kvm_userspace_memory_region kr = {
            .slot = r->slot,
            .flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
            .guest_phys_addr = r->gpa,
            .memory_size = r->size,
            .userspace_addr = (uint64_t)(uintptr_t)r->hva,
        };
        if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0)
            return -errno;
    }
    return 0;
}

uint64_t guest_memory_dirty_merge(unsigned long *dst, const unsigned long *kvm, unsigned long *vmm, size_t nlongs)
{
    uint64_t n = 0;
    for (size_t k = 0; k < nlongs; k++) {
        dst[k] = kvm[k] | __atomic_exchange_n(&vmm[k], 0UL, __ATOMIC_RELAXED);
        n += (uint64_t)__builtin_popcountl(dst[k]);
    }
    return n;
}

int64_t guest_memory_sync_dirty(struct guest_memory *gm, int vm_fd, unsigned long *const *out)
{
    int64_t total = 0;
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        struct guest_region *r = &gm->regions[i];
        uint64_t nl = (guest_memory_region_pages(gm, i) + BITS_PER_LONG - 1) / BITS_PER_LONG;
        /* KVM writes its bitmap in 64-bit words. */
        g_autofree unsigned long *kvm = g_new0(unsigned long, nl + 1);
        struct kvm_dirty_log log = { .slot = r->slot, .dirty_bitmap = kvm };
        if (ioctl(vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
            return -errno;
        total += (int64_t)guest_memory_dirty_merge(out[i], kvm, r->dirty, nl);
    }
    return total;
}
