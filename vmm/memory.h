/* struct guest_memory: guest RAM and the only way the VMM touches it.
 *
 * RAM is one mapping: anonymous private memory with THP by default, a memfd
 * with shared=on or hugepages=on (hugetlbfs), split into at most two
 * regions around the 32-bit PCI hole. Every access is bounds
 * checked against the regions; every VMM write marks the pages it touched in
 * a dirty bitmap, because KVM's dirty log only sees writes made by the guest. */
#ifndef VMM_MEMORY_H
#define VMM_MEMORY_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MAX_REGIONS 2
#define GUEST_PAGE_SIZE 4096ULL

struct guest_region {
    uint64_t gpa;
    uint64_t size;
    uint8_t *hva;
    uint64_t fd_offset;     /* offset of this region in the memfd (when there is one) */
    uint32_t slot;          /* KVM memory slot */
    unsigned long *dirty;   /* one bit per 4 KiB page, VMM writes only */
};

struct guest_memory {
    struct guest_region regions[GUEST_MAX_REGIONS];
    unsigned nr_regions;
    uint64_t ram_size;
    int memfd;              /* -1 for anonymous RAM */
    uint8_t *base;          /* the one mapping of all RAM */
    bool hugepages;
};

/* Creates RAM of `size` bytes laid out around the 32-bit hole. */
int guest_memory_create(struct guest_memory *gm, uint64_t size, bool hugepages, bool shared,
                        GError **err);
/* Registers every region as a KVM memory slot. Returns 0 or -errno. */
int guest_memory_register(struct guest_memory *gm, int vm_fd);
void guest_memory_destroy(struct guest_memory *gm);

/* Host pointer for [gpa, gpa+len) if it lies entirely inside one region,
 * else NULL. Use for reads; writes through it must call guest_memory_mark_dirty. */
void *guest_memory_ptr(const struct guest_memory *gm, uint64_t gpa, uint64_t len);
/* Copy in/out. Return 0, or -EFAULT when any byte is outside RAM (nothing copied). */
int guest_memory_read(const struct guest_memory *gm, uint64_t gpa, void *buf, uint64_t len);
int guest_memory_write(struct guest_memory *gm, uint64_t gpa, const void *buf, uint64_t len);
int guest_memory_fill(struct guest_memory *gm, uint64_t gpa, int byte, uint64_t len);
void guest_memory_mark_dirty(struct guest_memory *gm, uint64_t gpa, uint64_t len);
bool guest_memory_page_dirty(const struct guest_memory *gm, uint64_t gpa);

/* Highest guest-physical address of RAM below 4 GiB (exclusive). */
uint64_t guest_memory_low_end(const struct guest_memory *gm);

#endif
