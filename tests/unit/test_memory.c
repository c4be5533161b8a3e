/* struct guest_memory: layout around the 32-bit hole, bounds checks, copies,
 * and the VMM-write dirty bitmap. RAM is MAP_NORESERVE (anonymous for the
 * 256 MiB guest, a shared memfd for the 5 GiB one), so even the 5 GiB guest
 * costs only the pages a test touches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "vmm/memory.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)
#define PAGE GUEST_PAGE_SIZE

static int setup_256m(void **state)
{
    struct guest_memory *gm = g_new0(struct guest_memory, 1);
    g_autoptr(GError) err = NULL;
    if (guest_memory_create(gm, 256 * MIB, false, false, &err) < 0)
        fail_msg("%s", err->message);
    *state = gm;
    return 0;
}

static int setup_5g(void **state)
{
    struct guest_memory *gm = g_new0(struct guest_memory, 1);
    g_autoptr(GError) err = NULL;
    if (guest_memory_create(gm, 5 * GIB, false, true, &err) < 0)
        fail_msg("%s", err->message);
    *state = gm;
    return 0;
}

static int teardown(void **state)
{
    struct guest_memory *gm = *state;
    guest_memory_destroy(gm);
    assert_int_equal(gm->memfd, -1);
    assert_int_equal(gm->nr_regions, 0);
    g_free(gm);
    return 0;
}

static void test_layout_small(void **state)
{
    struct guest_memory *gm = *state;
    assert_int_equal(gm->nr_regions, 1);
    assert_int_equal(gm->ram_size, 256 * MIB);
    assert_int_equal(gm->regions[0].gpa, 0);
    assert_int_equal(gm->regions[0].size, 256 * MIB);
    assert_ptr_equal(gm->regions[0].hva, gm->base);
    assert_int_equal(guest_memory_low_end(gm), 256 * MIB);
    assert_int_equal(gm->memfd, -1);      /* private RAM is anonymous (THP), no memfd */
    assert_int_equal((uintptr_t)gm->base & ((2u << 20) - 1), 0);   /* huge-page aligned, for THP and KVM */
    assert_ptr_equal(guest_memory_ptr(gm, 0, 1), gm->base);
    assert_ptr_equal(guest_memory_ptr(gm, 256 * MIB - 1, 1), gm->base + 256 * MIB - 1);
    assert_null(guest_memory_ptr(gm, 256 * MIB, 1));
    assert_null(guest_memory_ptr(gm, 256 * MIB - 1, 2));
    assert_null(guest_memory_ptr(gm, LAYOUT_4GIB, 1));
    assert_non_null(guest_memory_ptr(gm, 0, 256 * MIB));
    assert_null(guest_memory_ptr(gm, 0, 256 * MIB + 1));
}

static void test_layout_above_4g(void **state)
{
    struct guest_memory *gm = *state;
    const uint64_t low = LAYOUT_MEM_32BIT_GAP;
    assert_int_equal(gm->nr_regions, 2);
    assert_int_equal(gm->regions[0].gpa, 0);
    assert_int_equal(gm->regions[0].size, low);
    assert_int_equal(gm->regions[1].gpa, LAYOUT_4GIB);
    assert_int_equal(gm->regions[1].size, 5 * GIB - low);
    assert_int_equal(gm->regions[1].fd_offset, low);
    /* shared=on: the memfd and the mapping are the same pages, high region
     * at its fd_offset. */
    assert_true(gm->memfd >= 0);
    assert_int_equal((uintptr_t)gm->base & ((2u << 20) - 1), 0);
    const char msg[] = "through the memfd";
    assert_int_equal(pwrite(gm->memfd, msg, sizeof(msg), (off_t)(gm->regions[1].fd_offset + 3 * PAGE)), sizeof(msg));
    assert_memory_equal(guest_memory_ptr(gm, LAYOUT_4GIB + 3 * PAGE, sizeof(msg)), msg, sizeof(msg));
    assert_ptr_equal(gm->regions[1].hva, gm->base + low);
    assert_int_not_equal(gm->regions[0].slot, gm->regions[1].slot);
    assert_int_equal(guest_memory_low_end(gm), low);

    const uint64_t high_end = LAYOUT_4GIB + 5 * GIB - low;
    assert_ptr_equal(guest_memory_ptr(gm, low - 1, 1), gm->base + low - 1);
    assert_null(guest_memory_ptr(gm, low, 1));                 /* the hole */
    assert_null(guest_memory_ptr(gm, LAYOUT_4GIB - 1, 1));
    assert_null(guest_memory_ptr(gm, low - 1, 2));             /* into the hole */
    assert_null(guest_memory_ptr(gm, LAYOUT_4GIB - 1, 2));     /* out of the hole */
    assert_null(guest_memory_ptr(gm, low - 1, LAYOUT_4GIB - low + 2));   /* across it */
    assert_ptr_equal(guest_memory_ptr(gm, LAYOUT_4GIB, 1), gm->base + low);
    assert_ptr_equal(guest_memory_ptr(gm, high_end - 1, 1), gm->base + 5 * GIB - 1);
    assert_null(guest_memory_ptr(gm, high_end, 1));
    assert_null(guest_memory_ptr(gm, high_end - 4, 8));

    /* Host memory is contiguous across the two regions; guest memory is not. */
    uint8_t buf[16];
    assert_int_equal(guest_memory_read(gm, low - 8, buf, sizeof(buf)), -EFAULT);
    memset(buf, 0xab, sizeof(buf));
    assert_int_equal(guest_memory_write(gm, low - 8, buf, sizeof(buf)), -EFAULT);
    assert_int_equal(gm->base[low - 8], 0);
    assert_int_equal(gm->base[low], 0);
}

static void test_bounds_wrap_and_zero(void **state)
{
    struct guest_memory *gm = *state;
    uint8_t buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    assert_null(guest_memory_ptr(gm, UINT64_MAX, 1));
    assert_null(guest_memory_ptr(gm, UINT64_MAX, 2));              /* wraps to 0 */
    assert_null(guest_memory_ptr(gm, UINT64_MAX - 3, 8));
    assert_null(guest_memory_ptr(gm, 16, UINT64_MAX));             /* gpa + len wraps */
    assert_null(guest_memory_ptr(gm, 0, UINT64_MAX));
    assert_int_equal(guest_memory_read(gm, UINT64_MAX - 3, buf, 8), -EFAULT);
    assert_int_equal(guest_memory_write(gm, UINT64_MAX - 3, buf, 8), -EFAULT);
    assert_int_equal(guest_memory_fill(gm, UINT64_MAX - 3, 0xff, 8), -EFAULT);
    assert_int_equal(guest_memory_fill(gm, 4096, 0xff, UINT64_MAX - 4095), -EFAULT);
    assert_int_equal(gm->base[4096], 0);
    assert_int_equal(gm->base[0], 0);

    /* len 0: no pointer to hand out, and copies of nothing succeed. */
    assert_null(guest_memory_ptr(gm, 0, 0));
    assert_int_equal(guest_memory_read(gm, 0, buf, 0), 0);
    assert_int_equal(guest_memory_write(gm, 0, buf, 0), 0);
    assert_int_equal(guest_memory_fill(gm, 0, 0xff, 0), 0);
    assert_int_equal(buf[0], 1);
    assert_false(guest_memory_page_dirty(gm, 0));
    assert_false(guest_memory_page_dirty(gm, UINT64_MAX));
}

static void round_trip_at(struct guest_memory *gm, uint64_t gpa)
{
    uint8_t in[300], out[300];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(guest_memory_write(gm, gpa, in, sizeof(in)), 0);
    assert_int_equal(guest_memory_read(gm, gpa, out, sizeof(out)), 0);
    assert_memory_equal(in, out, sizeof(in));
    assert_memory_equal(guest_memory_ptr(gm, gpa, sizeof(in)), in, sizeof(in));

    assert_int_equal(guest_memory_fill(gm, gpa + 10, 0x5c, 20), 0);
    assert_int_equal(guest_memory_read(gm, gpa, out, sizeof(out)), 0);
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], i >= 10 && i < 30 ? 0x5c : in[i]);
}

static void test_round_trip(void **state)
{
    struct guest_memory *gm = *state;
    round_trip_at(gm, 0);
    round_trip_at(gm, 3 * PAGE - 100);      /* across a page boundary */
    round_trip_at(gm, guest_memory_low_end(gm) - 300);
    if (gm->nr_regions == 2) {
        round_trip_at(gm, LAYOUT_4GIB);
        round_trip_at(gm, gm->regions[1].gpa + gm->regions[1].size - 300);
        /* The high region is the memfd past the low one. */
        assert_int_equal(gm->base[LAYOUT_MEM_32BIT_GAP], 1);
    }
}

/* Dirty pages in [from, to) of gpa space, as a count, checking each page. */
static unsigned dirty_count(const struct guest_memory *gm, uint64_t from, uint64_t to)
{
    unsigned n = 0;
    for (uint64_t g = from; g < to; g += PAGE)
        n += guest_memory_page_dirty(gm, g);
    return n;
}

static void test_dirty_tracking(void **state)
{
    struct guest_memory *gm = *state;
    const uint64_t low_end = guest_memory_low_end(gm);
    assert_int_equal(dirty_count(gm, 0, 256 * PAGE), 0);

    /* Reads and pointer look-ups do not dirty anything. */
    uint8_t buf[2 * PAGE] = { 0 };
    assert_int_equal(guest_memory_read(gm, 0, buf, sizeof(buf)), 0);
    assert_non_null(guest_memory_ptr(gm, 0, PAGE));
    assert_int_equal(dirty_count(gm, 0, 256 * PAGE), 0);

    /* Two bytes straddling pages 1 and 2. */
    assert_int_equal(guest_memory_write(gm, 2 * PAGE - 1, buf, 2), 0);
    assert_false(guest_memory_page_dirty(gm, 0));
    assert_true(guest_memory_page_dirty(gm, PAGE));
    assert_true(guest_memory_page_dirty(gm, 2 * PAGE + PAGE - 1));
    assert_false(guest_memory_page_dirty(gm, 3 * PAGE));
    assert_int_equal(dirty_count(gm, 0, 256 * PAGE), 2);

    /* A fill over pages 63..65: crosses a bitmap word. */
    assert_int_equal(guest_memory_fill(gm, 63 * PAGE + 5, 0, 2 * PAGE), 0);
    assert_int_equal(dirty_count(gm, 60 * PAGE, 70 * PAGE), 3);
    assert_false(guest_memory_page_dirty(gm, 62 * PAGE));
    assert_false(guest_memory_page_dirty(gm, 66 * PAGE));

    /* The last page below the hole, exactly. */
    assert_int_equal(guest_memory_write(gm, low_end - PAGE, buf, PAGE), 0);
    assert_true(guest_memory_page_dirty(gm, low_end - 1));
    assert_false(guest_memory_page_dirty(gm, low_end - PAGE - 1));

    /* A refused write dirties nothing. */
    assert_int_equal(guest_memory_write(gm, low_end - 2 * PAGE, buf, 3 * PAGE), -EFAULT);
    assert_false(guest_memory_page_dirty(gm, low_end - 2 * PAGE));

    /* Explicit marking, for writes made through guest_memory_ptr. */
    guest_memory_mark_dirty(gm, 100 * PAGE, 1);
    assert_true(guest_memory_page_dirty(gm, 100 * PAGE));
    guest_memory_mark_dirty(gm, low_end - 1, 2);   /* out of bounds: ignored */
    guest_memory_mark_dirty(gm, 200 * PAGE, 0);
    assert_false(guest_memory_page_dirty(gm, 200 * PAGE));

    if (gm->nr_regions == 2) {
        const uint64_t hi = LAYOUT_4GIB;
        assert_int_equal(dirty_count(gm, hi, hi + 128 * PAGE), 0);
        assert_int_equal(guest_memory_fill(gm, hi + 70 * PAGE, 0x11, 1), 0);
        assert_int_equal(dirty_count(gm, hi, hi + 128 * PAGE), 1);
        assert_true(guest_memory_page_dirty(gm, hi + 70 * PAGE));
        /* The high region has its own bitmap: its page 70 is not page 70 of RAM. */
        assert_false(guest_memory_page_dirty(gm, 70 * PAGE));
        const uint64_t last = gm->regions[1].gpa + gm->regions[1].size - PAGE;
        assert_int_equal(guest_memory_write(gm, last, buf, PAGE), 0);
        assert_true(guest_memory_page_dirty(gm, last));
    }
    assert_int_equal(dirty_count(gm, 0, 256 * PAGE), 6);
}

/* The migration's dirty set: KVM's bitmap OR the VMM's, which is taken and
 * cleared; the count is of the merged bits. A VMM write (guest_memory_write)
 * shows in the next merge and not in the one after. */
static void test_dirty_merge(void **state)
{
    unsigned long kvm[3] = { 0x5UL, 0, 1UL << 63 };
    unsigned long vmm[3] = { 0x6UL, 0xf0UL, 0 };
    unsigned long dst[3] = { ~0UL, ~0UL, ~0UL };
    assert_int_equal(guest_memory_dirty_merge(dst, kvm, vmm, 3), 3 + 4 + 1);
    assert_true(dst[0] == 0x7UL && dst[1] == 0xf0UL && dst[2] == 1UL << 63);
    assert_true(vmm[0] == 0 && vmm[1] == 0 && vmm[2] == 0);
    unsigned long none[3] = { 0 };
    assert_int_equal(guest_memory_dirty_merge(dst, none, vmm, 3), 0);
    assert_true(dst[0] == 0 && dst[1] == 0 && dst[2] == 0);

    struct guest_memory *gm = *state;
    uint8_t b = 1;
    assert_int_equal(guest_memory_write(gm, 5 * GUEST_PAGE_SIZE + 100, &b, 1), 0);
    uint64_t nl = (guest_memory_region_pages(gm, 0) + 63) / 64;
    g_autofree unsigned long *zero = g_new0(unsigned long, nl);
    g_autofree unsigned long *out = g_new0(unsigned long, nl);
    assert_int_equal(guest_memory_dirty_merge(out, zero, gm->regions[0].dirty, nl), 1);
    assert_true(out[0] == 1UL << 5);
    assert_int_equal(guest_memory_dirty_merge(out, zero, gm->regions[0].dirty, nl), 0);
}

/* A virtio-mem block the guest unplugs reads as zero from then on, which
 * no dirty log sees: its pages count as written (a migration sends them
 * again should the block be plugged before it ends); other blocks' do not. */
static void test_unplug_dirties(void **state)
{
    struct guest_memory *gm = *state;
    g_autoptr(GError) err = NULL;
    const uint64_t base = guest_memory_hotplug_base(gm->ram_size), block = 2 * MIB;
    assert_int_equal(guest_memory_add_hotplug(gm, base, 4 * block, block, &err), 0);
    const struct guest_region *hp = guest_memory_hotplug_region(gm);
    assert_non_null(hp);
    assert_int_equal(guest_memory_set_plugged(gm, base, 2 * block, true), 0);
    uint8_t b = 0x5a;
    assert_int_equal(guest_memory_write(gm, base + 3 * PAGE, &b, 1), 0);
    assert_int_equal(dirty_count(gm, base, base + 2 * block), 1);
    memset(hp->dirty, 0, 4 * block / PAGE / 8);
    assert_int_equal(guest_memory_set_plugged(gm, base + block, block, false), 0);
    unsigned n0 = 0, n1 = 0;
    for (uint64_t pg = 0; pg < 2 * block / PAGE; pg++) {
        bool d = (hp->dirty[pg / (8 * sizeof(long))] >> (pg % (8 * sizeof(long)))) & 1;
        if (pg < block / PAGE)
            n0 += d;
        else
            n1 += d;
    }
    assert_int_equal(n0, 0);
    assert_int_equal(n1, block / PAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_layout_small, setup_256m, teardown),
        cmocka_unit_test_setup_teardown(test_layout_above_4g, setup_5g, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_wrap_and_zero, setup_256m, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_wrap_and_zero, setup_5g, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup_256m, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup_5g, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_tracking, setup_256m, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_tracking, setup_5g, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_merge, setup_256m, teardown),
        cmocka_unit_test_setup_teardown(test_unplug_dirties, setup_256m, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
