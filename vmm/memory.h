/* struct guest_memory: guest RAM and the only way the VMM touches it.
 *
 * RAM is one mapping: anonymous private memory with THP by default, a memfd
 * with shared=on or hugepages=on (hugetlbfs), split into at most two
 * regions around the 32-bit PCI hole, plus optionally the virtio-mem
 * hotplug region above it all (a mapping of its own, one more KVM slot,
 * never in e820), whose blocks are plugged and unplugged at run time. Every access is bounds
 * checked against the regions; every VMM write marks the pages it touched in
 * a dirty bitmap, because KVM's dirty log only sees writes made by the guest. */
#ifndef VMM_MEMORY_H
#define VMM_MEMORY_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MAX_REGIONS 3
#define GUEST_PAGE_SIZE 4096ULL

struct guest_region {
    uint64_t gpa;
    uint64_t size;
    uint8_t *hva;
    uint64_t fd_offset;     /* offset of this region in the memfd (when there is one) */
    uint32_t slot;          /* KVM memory slot */
    unsigned long *dirty;   /* one bit per 4 KiB page, VMM writes only */
    /* The hotplug region only (else NULL): one bit per block of block_size
     * bytes, set while the block is plugged. Device accesses (every
     * guest_memory_* call) touching an unplugged block are refused. */
    unsigned long *plugged;
    uint64_t block_size;
};

struct guest_memory {
    struct guest_region regions[GUEST_MAX_REGIONS];
    unsigned nr_regions;
    uint64_t ram_size;
    int memfd;              /* -1 for anonymous RAM */
    uint8_t *base;          /* the one mapping of all RAM */
    bool hugepages;
    bool anon;              /* private anonymous RAM: a page never touched is zero */
};

/* Creates RAM of `size` bytes laid out around the 32-bit hole. */
int guest_memory_create(struct guest_memory *gm, uint64_t size, bool hugepages, bool shared,
                        GError **err);
/* RAM of `size` bytes laid out as guest_memory_create does, mapped private
 * (copy on write) from fd, a file of at least `size` bytes holding RAM in
 * that layout (a snapshot's memory): pages are read from the file when the
 * guest or vmm first touches them, never copied up front. fd is not kept. */
int guest_memory_create_from_file(struct guest_memory *gm, uint64_t size, int fd, GError **err);
/* Registers every region as a KVM memory slot. Returns 0 or -errno. */
int guest_memory_register(struct guest_memory *gm, int vm_fd);
void guest_memory_destroy(struct guest_memory *gm);

/* Where the hotplug region of a VM with `ram_size` bytes of RAM starts: the
 * first LAYOUT_HOTPLUG_ALIGN boundary at or above 4 GiB and the end of RAM
 * (arch/x86/layout.h). */
uint64_t guest_memory_hotplug_base(uint64_t ram_size);
/* Adds the hotplug region: `size` bytes (a multiple of `block`, a power of
 * two >= 4 KiB) at `gpa` (block-aligned, above all RAM), all unplugged. Backed
 * by an anonymous MAP_NORESERVE mapping, or by the RAM memfd (grown) when RAM
 * is shared; call before guest_memory_register. 0, or -1 with *err. */
int guest_memory_add_hotplug(struct guest_memory *gm, uint64_t gpa, uint64_t size, uint64_t block, GError **err);
/* The hotplug region, or NULL. */
const struct guest_region *guest_memory_hotplug_region(const struct guest_memory *gm);
/* Marks the blocks of [gpa, gpa+len) plugged or unplugged (whole blocks of
 * the hotplug region only: -EINVAL otherwise). Unplugging gives the host
 * pages back (MADV_DONTNEED, or a punched hole in the memfd), so the blocks
 * read as zero when plugged again. 0 or -errno. */
int guest_memory_set_plugged(struct guest_memory *gm, uint64_t gpa, uint64_t len, bool plugged);
/* How many blocks of [gpa, gpa+len) (whole blocks of the hotplug region)
 * are plugged. */
uint64_t guest_memory_count_plugged(const struct guest_memory *gm, uint64_t gpa, uint64_t len);

/* Host pointer for [gpa, gpa+len) if it lies entirely inside one region
 * (and, in the hotplug region, in plugged blocks), else NULL. Use for reads; writes through it must call guest_memory_mark_dirty. */
void *guest_memory_ptr(const struct guest_memory *gm, uint64_t gpa, uint64_t len);
/* Copy in/out. Return 0, or -EFAULT when any byte is outside RAM (nothing copied). */
int guest_memory_read(const struct guest_memory *gm, uint64_t gpa, void *buf, uint64_t len);
int guest_memory_write(struct guest_memory *gm, uint64_t gpa, const void *buf, uint64_t len);
int guest_memory_fill(struct guest_memory *gm, uint64_t gpa, int byte, uint64_t len);
void guest_memory_mark_dirty(struct guest_memory *gm, uint64_t gpa, uint64_t len);
bool guest_memory_page_dirty(const struct guest_memory *gm, uint64_t gpa);

/* ---- dirty tracking for migration ---- */

/* Turns KVM's dirty log (KVM_MEM_LOG_DIRTY_PAGES) on or off for every
 * region, the hotplug region too (whose unplugged blocks count as written
 * when they are unplugged: guest_memory_set_plugged). Turning it on clears the VMM's own
 * bitmap: from then on a page counts as dirty when the guest (KVM's log) or
 * vmm (guest_memory_mark_dirty) wrote it. 0 or -errno. */
int guest_memory_log_dirty(struct guest_memory *gm, int vm_fd, bool on);
/* Pages of region i (region i's size / 4 KiB bits; unsigned longs of
 * (pages + 63) / 64). */
uint64_t guest_memory_region_pages(const struct guest_memory *gm, unsigned i);
/* Fills out[i] (a bitmap per region, see above) with the pages written
 * since the last call (or since the log went on): KVM_GET_DIRTY_LOG, which
 * also re-arms KVM's log, OR'd with the VMM's bitmap, which is cleared.
 * Returns the number of dirty pages, or -errno. */
int64_t guest_memory_sync_dirty(struct guest_memory *gm, int vm_fd, unsigned long *const *out);
/* dst[k] = kvm[k] | exchange(vmm[k], 0) for k < nlongs; returns the bits set
 * in dst. (The merge guest_memory_sync_dirty does; vmm words are taken
 * atomically, so a mark made meanwhile lands in this round or the next.) */
uint64_t guest_memory_dirty_merge(unsigned long *dst, const unsigned long *kvm, unsigned long *vmm, size_t nlongs);

/* Highest guest-physical address of RAM below 4 GiB (exclusive). */
uint64_t guest_memory_low_end(const struct guest_memory *gm);

#endif
