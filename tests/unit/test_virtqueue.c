/* Split virtqueues over a fake guest memory (a memfd, no KVM): rings are
 * built by hand, as a driver would, through the host mapping so that the
 * dirty bitmap only shows what the device wrote. Every hostile ring must give
 * its error, leave the used ring untouched and touch nothing outside RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "devices/virtio/virtqueue.h"
#include "vmm/memory.h"

#define MIB (1ULL << 20)
#define RAM (16 * MIB)
#define QSZ 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define BUF 0x10000     /* buffers from here, one page apart */
#define TABLE 0x8000    /* indirect tables */

struct fx {
    struct guest_memory gm;
    struct virtqueue q;
    uint16_t avail_idx;
};

static int setup(void **state)
{
    struct fx *f = g_new0(struct fx, 1);
    g_autoptr(GError) err = NULL;
    if (guest_memory_create(&f->gm, RAM, false, false, &err) < 0)
        fail_msg("%s", err->message);
    virtq_init(&f->q, &f->gm);
    f->q.indirect = true;
    assert_int_equal(virtq_enable(&f->q, QSZ, DESC, AVAIL, USED, 0, 0), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    virtq_disable(&f->q);
    guest_memory_destroy(&f->gm);
    g_free(f);
    return 0;
}

/* Driver-side writes go straight to the mapping: not VMM writes, not dirty. */
static uint8_t *hva(struct fx *f, uint64_t gpa)
{
    return f->gm.base + gpa;
}

static void put_desc_at(struct fx *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
                        uint16_t flags, uint16_t next)
{
    uint8_t *d = hva(f, table + 16ULL * i);
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static void put_desc(struct fx *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    put_desc_at(f, DESC, i, addr, len, flags, next);
}

static void set_avail_idx(struct fx *f, uint16_t idx)
{
    f->avail_idx = idx;
    memcpy(hva(f, AVAIL + 2), &idx, 2);
}

static void make_avail(struct fx *f, uint16_t head)
{
    memcpy(hva(f, AVAIL + 4 + 2 * (f->avail_idx % QSZ)), &head, 2);
    set_avail_idx(f, f->avail_idx + 1);
}

static uint16_t used_idx(struct fx *f)
{
    uint16_t v;
    memcpy(&v, hva(f, USED + 2), 2);
    return v;
}

static void used_elem(struct fx *f, unsigned slot, uint32_t *id, uint32_t *len)
{
    memcpy(id, hva(f, USED + 4 + 8 * slot), 4);
    memcpy(len, hva(f, USED + 8 + 8 * slot), 4);
}

static void set_used_event(struct fx *f, uint16_t v)
{
    memcpy(hva(f, AVAIL + 4 + 2 * QSZ), &v, 2);
}

static uint16_t avail_event(struct fx *f)
{
    uint16_t v;
    memcpy(&v, hva(f, USED + 4 + 8 * QSZ), 2);
    return v;
}

static bool any_dirty(struct fx *f)
{
    for (uint64_t a = 0; a < RAM; a += GUEST_PAGE_SIZE)
        if (guest_memory_page_dirty(&f->gm, a))
            return true;
    return false;
}

/* ---- enable ---- */

static void test_enable_checks(void **state)
{
    struct fx *f = *state;
    struct virtqueue q;
    virtq_init(&q, &f->gm);
    assert_int_equal(virtq_enable(&q, 0, DESC, AVAIL, USED, 0, 0), -EINVAL);
    assert_int_equal(virtq_enable(&q, 3, DESC, AVAIL, USED, 0, 0), -EINVAL);
    assert_int_equal(virtq_enable(&q, 6, DESC, AVAIL, USED, 0, 0), -EINVAL);
    assert_false(q.ready);
    assert_int_equal(virtq_enable(&q, QSZ, DESC + 8, AVAIL, USED, 0, 0), -EINVAL);
    assert_int_equal(virtq_enable(&q, QSZ, DESC, AVAIL + 1, USED, 0, 0), -EINVAL);
    assert_int_equal(virtq_enable(&q, QSZ, DESC, AVAIL, USED + 2, 0, 0), -EINVAL);
    /* Each part must lie entirely inside RAM. */
    assert_int_equal(virtq_enable(&q, QSZ, RAM - 64, AVAIL, USED, 0, 0), -EFAULT);
    assert_int_equal(virtq_enable(&q, QSZ, DESC, RAM - 4, USED, 0, 0), -EFAULT);
    assert_int_equal(virtq_enable(&q, QSZ, DESC, AVAIL, RAM - 8, 0, 0), -EFAULT);
    assert_int_equal(virtq_enable(&q, QSZ, 0xfffffffffffffff0ULL, AVAIL, USED, 0, 0), -EFAULT);
    assert_false(q.ready);
    assert_int_equal(virtq_enable(&q, VIRTQ_MAX_SIZE, DESC, 0x100000, 0x200000, 0, 0), 0);
    assert_true(q.ready);
    assert_true(virtq_size_valid(32768));
    assert_false(virtq_size_valid(65536));
    assert_int_equal(virtq_pop(&q, &(struct virtq_chain){0}), 0);
    virtq_disable(&q);
    assert_false(q.ready);
    assert_int_equal(virtq_pop(&q, &(struct virtq_chain){0}), 0);
}

/* ---- normal operation ---- */

static void test_empty(void **state)
{
    struct fx *f = *state;
    struct virtq_chain c;
    assert_int_equal(virtq_pop(&f->q, &c), 0);
}

static void test_chain_and_push(void **state)
{
    struct fx *f = *state;
    put_desc(f, 2, BUF, 100, VIRTQ_DESC_F_NEXT, 5);
    put_desc(f, 5, BUF + 0x1000, 50, VIRTQ_DESC_F_NEXT, 1);
    put_desc(f, 1, BUF + 0x2000, 4096, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 7);
    put_desc(f, 7, BUF + 0x3000 + 96, 32, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 2);

    struct virtq_chain c;
    assert_int_equal(virtq_pop(&f->q, &c), 1);
    assert_int_equal(c.head, 2);
    assert_int_equal(c.n_out, 2);
    assert_int_equal(c.n_in, 2);
    assert_int_equal(c.out_len, 150);
    assert_int_equal(c.in_len, 4096 + 32);
    assert_ptr_equal(c.bufs[0].hva, hva(f, BUF));
    assert_int_equal(c.bufs[1].len, 50);
    assert_int_equal(c.bufs[2].gpa, BUF + 0x2000);
    assert_ptr_equal(c.bufs[3].hva, hva(f, BUF + 0x3000 + 96));
    assert_int_equal(virtq_pop(&f->q, &c), 0);
    assert_false(any_dirty(f));

    /* 4100 bytes written: all of the first writable buffer, 4 of the second. */
    virtq_push(&f->q, &c, 4100);
    assert_int_equal(used_idx(f), 1);
    uint32_t id, len;
    used_elem(f, 0, &id, &len);
    assert_int_equal(id, 2);
    assert_int_equal(len, 4100);
    assert_true(guest_memory_page_dirty(&f->gm, USED));
    assert_true(guest_memory_page_dirty(&f->gm, BUF + 0x2000));
    assert_true(guest_memory_page_dirty(&f->gm, BUF + 0x3000));
    assert_false(guest_memory_page_dirty(&f->gm, BUF));
    assert_false(guest_memory_page_dirty(&f->gm, BUF + 0x1000));
    assert_false(guest_memory_page_dirty(&f->gm, DESC));
    assert_false(guest_memory_page_dirty(&f->gm, AVAIL));
}

static void test_push_clamps_len(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    struct virtq_chain c;
    assert_int_equal(virtq_pop(&f->q, &c), 1);
    virtq_push(&f->q, &c, 1000);
    uint32_t id, len;
    used_elem(f, 0, &id, &len);
    assert_int_equal(len, 16);
    assert_false(guest_memory_page_dirty(&f->gm, BUF + 0x1000));
}

static void test_ring_wraps(void **state)
{
    struct fx *f = *state;
    /* Indexes near 2^16: the ring slots wrap with them. */
    assert_int_equal(virtq_enable(&f->q, QSZ, DESC, AVAIL, USED, 65533, 65533), 0);
    set_avail_idx(f, 65533);
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
    for (unsigned i = 0; i < 6; i++) {
        make_avail(f, 0);
        struct virtq_chain c;
        assert_int_equal(virtq_pop(&f->q, &c), 1);
        virtq_push(&f->q, &c, (uint32_t)i + 1);
    }
    assert_int_equal(used_idx(f), (uint16_t)(65533 + 6));
    uint32_t id, len;
    used_elem(f, (65533 + 5) % QSZ, &id, &len);
    assert_int_equal(len, 6);
}

static void test_unpop(void **state)
{
    struct fx *f = *state;
    put_desc(f, 3, BUF, 8, 0, 0);
    make_avail(f, 3);
    struct virtq_chain c;
    assert_int_equal(virtq_pop(&f->q, &c), 1);
    virtq_unpop(&f->q);
    assert_int_equal(virtq_pop(&f->q, &c), 1);
    assert_int_equal(c.head, 3);
    assert_int_equal(virtq_pop(&f->q, &c), 0);
}

static void test_indirect(void **state)
{
    struct fx *f = *state;
    put_desc_at(f, TABLE, 0, BUF, 10, VIRTQ_DESC_F_NEXT, 2);
    put_desc_at(f, TABLE, 2, BUF + 0x1000, 20, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    put_desc_at(f, TABLE, 1, BUF + 0x2000, 30, VIRTQ_DESC_F_WRITE, 0);
    /* A direct descriptor first, then the table; the WRITE flag on the
     * descriptor naming the table is ignored (2.7.5.3.2). */
    put_desc(f, 4, BUF + 0x4000, 5, VIRTQ_DESC_F_NEXT, 6);
    put_desc(f, 6, TABLE, 48, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 4);
    struct virtq_chain c;
    assert_int_equal(virtq_pop(&f->q, &c), 1);
    assert_int_equal(c.head, 4);
    assert_int_equal(c.n_out, 2);
    assert_int_equal(c.n_in, 2);
    assert_int_equal(c.bufs[0].gpa, BUF + 0x4000);
    assert_int_equal(c.bufs[1].gpa, BUF);
    assert_int_equal(c.bufs[2].len, 20);
    assert_int_equal(c.bufs[3].gpa, BUF + 0x2000);
    assert_int_equal(c.in_len, 50);
    virtq_push(&f->q, &c, 50);
    uint32_t id, len;
    used_elem(f, 0, &id, &len);
    assert_int_equal(id, 4);
    assert_int_equal(len, 50);
}

static void test_chain_copy_helpers(void **state)
{
    struct fx *f = *state;
    memcpy(hva(f, BUF), "hello ", 6);
    memcpy(hva(f, BUF + 0x1000), "world", 5);
    put_desc(f, 0, BUF, 6, VIRTQ_DESC_F_NEXT, 1);
    put_desc(f, 1, BUF + 0x1000, 5, VIRTQ_DESC_F_NEXT, 2);
    put_desc(f, 2, BUF + 0x2000, 3, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
    put_desc(f, 3, BUF + 0x3000, 100, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    struct virtq_chain c;
    assert_int_equal(virtq_pop(&f->q, &c), 1);
    char out[32] = { 0 };
    assert_int_equal(virtq_chain_read(&c, 3, out, sizeof(out)), 8);
    assert_string_equal(out, "lo world");
    assert_int_equal(virtq_chain_write(&f->q, &c, 1, "abcdef", 6), 6);
    assert_memory_equal(hva(f, BUF + 0x2001), "ab", 2);
    assert_memory_equal(hva(f, BUF + 0x3000), "cdef", 4);
    assert_true(guest_memory_page_dirty(&f->gm, BUF + 0x2000));
    assert_true(guest_memory_page_dirty(&f->gm, BUF + 0x3000));
    assert_false(guest_memory_page_dirty(&f->gm, BUF));
    assert_int_equal(virtq_chain_write(&f->q, &c, 100, "xyzxyz", 6), 3);

    struct virtq_chain *dup = virtq_chain_dup(&c);
    assert_ptr_not_equal(dup->bufs, c.bufs);
    assert_int_equal(dup->n_in, 2);
    assert_int_equal(dup->bufs[3].len, 100);
    g_free(dup);
}

/* ---- notification suppression ---- */

static void test_need_event(void **state)
{
    (void)state;
    /* Crossing event_idx between old and new notifies, also across 2^16. */
    assert_true(virtq_need_event(5, 6, 5));
    assert_false(virtq_need_event(6, 6, 5));
    assert_true(virtq_need_event(3, 10, 0));
    assert_false(virtq_need_event(10, 10, 0));
    assert_true(virtq_need_event(65535, 0, 65535));
    assert_true(virtq_need_event(65534, 2, 65530));
    assert_false(virtq_need_event(2, 2, 65530));
    assert_true(virtq_need_event(1, 2, 65530));
    assert_false(virtq_need_event(65529, 2, 65530));
}

static void push_one(struct fx *f)
{
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    struct virtq_chain c;
    assert_int_equal(virtq_pop(&f->q, &c), 1);
    virtq_push(&f->q, &c, 8);
}

static void test_event_idx_wrap(void **state)
{
    struct fx *f = *state;
    f->q.event_idx = true;
    assert_int_equal(virtq_enable(&f->q, QSZ, DESC, AVAIL, USED, 65534, 65534), 0);
    set_avail_idx(f, 65534);
    /* The first decision after enable cannot know what the driver saw. */
    push_one(f);                                 /* used 65535 */
    assert_true(virtq_should_notify(&f->q));
    assert_false(virtq_should_notify(&f->q));    /* nothing new */

    /* Driver wants an interrupt once entry 1 (idx 2) is used. */
    set_used_event(f, 1);
    push_one(f);                                 /* used 0 */
    assert_false(virtq_should_notify(&f->q));
    push_one(f);                                 /* used 1 */
    assert_false(virtq_should_notify(&f->q));
    push_one(f);                                 /* used 2: crossed 1 */
    assert_true(virtq_should_notify(&f->q));
    /* Two at once that jump over used_event still notify. */
    set_used_event(f, 3);
    push_one(f);
    push_one(f);                                 /* used 4 */
    assert_true(virtq_should_notify(&f->q));
    /* used_event behind: the driver is not waiting. */
    set_used_event(f, 0);
    push_one(f);
    assert_false(virtq_should_notify(&f->q));
}

static void test_no_interrupt_flag(void **state)
{
    struct fx *f = *state;
    push_one(f);
    assert_true(virtq_should_notify(&f->q));
    uint16_t flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    memcpy(hva(f, AVAIL), &flags, 2);
    push_one(f);
    assert_false(virtq_should_notify(&f->q));
    flags = 0;
    memcpy(hva(f, AVAIL), &flags, 2);
    push_one(f);
    assert_true(virtq_should_notify(&f->q));
    assert_false(virtq_should_notify(&f->q));
}

static void test_kick_suppression(void **state)
{
    struct fx *f = *state;
    uint16_t flags;
    virtq_disable_notify(&f->q);
    memcpy(&flags, hva(f, USED), 2);
    assert_int_equal(flags, VIRTQ_USED_F_NO_NOTIFY);
    assert_true(guest_memory_page_dirty(&f->gm, USED));
    assert_false(virtq_enable_notify(&f->q));
    memcpy(&flags, hva(f, USED), 2);
    assert_int_equal(flags, 0);
    make_avail(f, 0);
    assert_true(virtq_enable_notify(&f->q));   /* arrived meanwhile: pop again */

    f->q.event_idx = true;
    assert_int_equal(virtq_enable(&f->q, QSZ, DESC, AVAIL, USED, 40000, 0), 0);
    set_avail_idx(f, 40000);
    assert_false(virtq_enable_notify(&f->q));
    assert_int_equal(avail_event(f), 40000);
}

/* ---- hostile rings ---- */

static void expect_pop_error(struct fx *f, int err)
{
    struct virtq_chain c;
    assert_int_equal(virtq_pop(&f->q, &c), err);
    assert_int_equal(used_idx(f), 0);
    assert_false(any_dirty(f));
}

static void test_bad_loop(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_NEXT, 1);
    put_desc(f, 1, BUF, 8, VIRTQ_DESC_F_NEXT, 0);
    make_avail(f, 0);
    expect_pop_error(f, -ELOOP);
}

static void test_bad_self_loop(void **state)
{
    struct fx *f = *state;
    put_desc(f, 3, BUF, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
    make_avail(f, 3);
    expect_pop_error(f, -ELOOP);
}

static void test_bad_next(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_NEXT, QSZ);
    make_avail(f, 0);
    expect_pop_error(f, -EINVAL);
}

static void test_bad_head(void **state)
{
    struct fx *f = *state;
    make_avail(f, 0xffff);
    expect_pop_error(f, -EINVAL);
}

static void test_bad_addr(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, RAM - 4, 8, 0, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EFAULT);
}

static void test_bad_addr_wraps(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, 0xfffffffffffff000ULL, 0x2000, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EFAULT);
}

static void test_bad_zero_len(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, BUF, 0, VIRTQ_DESC_F_WRITE, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EINVAL);
}

static void test_bad_write_then_read(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, BUF, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    put_desc(f, 1, BUF + 0x1000, 8, 0, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EINVAL);
}

static void test_bad_indirect_in_indirect(void **state)
{
    struct fx *f = *state;
    put_desc_at(f, TABLE, 0, BUF, 8, VIRTQ_DESC_F_NEXT, 1);
    put_desc_at(f, TABLE, 1, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
    put_desc(f, 0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EINVAL);
}

static void test_bad_indirect_with_next(void **state)
{
    struct fx *f = *state;
    put_desc_at(f, TABLE, 0, BUF, 8, 0, 0);
    put_desc(f, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    put_desc(f, 1, BUF, 8, 0, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EINVAL);
}

static void test_bad_indirect_not_negotiated(void **state)
{
    struct fx *f = *state;
    f->q.indirect = false;
    put_desc_at(f, TABLE, 0, BUF, 8, 0, 0);
    put_desc(f, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EINVAL);
}

static void test_bad_indirect_len(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, TABLE, 0, VIRTQ_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EINVAL);
    virtq_enable(&f->q, QSZ, DESC, AVAIL, USED, 0, 0);
    set_avail_idx(f, 0);
    put_desc(f, 0, TABLE, 24, VIRTQ_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EINVAL);
}

static void test_bad_indirect_addr(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EFAULT);
}

static void test_bad_indirect_loop(void **state)
{
    struct fx *f = *state;
    put_desc_at(f, TABLE, 0, BUF, 8, VIRTQ_DESC_F_NEXT, 1);
    put_desc_at(f, TABLE, 1, BUF, 8, VIRTQ_DESC_F_NEXT, 0);
    put_desc(f, 0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_pop_error(f, -ELOOP);
}

static void test_bad_indirect_too_long(void **state)
{
    struct fx *f = *state;
    /* A well-formed table, but longer than the queue: 2.7.5.3.1 bounds a
     * chain, indirect entries included, by the queue size. */
    for (unsigned i = 0; i < QSZ + 1; i++)
        put_desc_at(f, TABLE, i, BUF, 8, i < QSZ ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    put_desc(f, 0, TABLE, 16 * (QSZ + 1), VIRTQ_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_pop_error(f, -ELOOP);
}

static void test_bad_indirect_next_out_of_table(void **state)
{
    struct fx *f = *state;
    put_desc_at(f, TABLE, 0, BUF, 8, VIRTQ_DESC_F_NEXT, 2);
    put_desc(f, 0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
    make_avail(f, 0);
    expect_pop_error(f, -EINVAL);
}

static void test_bad_avail_jump(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, BUF, 8, 0, 0);
    set_avail_idx(f, QSZ + 1);
    expect_pop_error(f, -EINVAL);
    set_avail_idx(f, 0x8000);
    expect_pop_error(f, -EINVAL);
    set_avail_idx(f, QSZ);      /* exactly a full ring is fine */
    struct virtq_chain c;
    assert_int_equal(virtq_pop(&f->q, &c), 1);
}

static void test_bad_total_len(void **state)
{
    /* Writable lengths must fit the used ring's 32-bit len: needs RAM with
     * buffers that big (MAP_NORESERVE: only touched pages cost). */
    (void)state;
    struct guest_memory big;
    g_autoptr(GError) err = NULL;
    if (guest_memory_create(&big, 3ULL << 30, false, false, &err) < 0)
        fail_msg("%s", err->message);
    struct virtqueue q;
    virtq_init(&q, &big);
    assert_int_equal(virtq_enable(&q, QSZ, DESC, AVAIL, USED, 0, 0), 0);
    struct fx b = { .gm = big };
    put_desc(&b, 0, 0, 0xc0000000u, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    put_desc(&b, 1, 0, 0x40000000u, VIRTQ_DESC_F_WRITE, 0);
    make_avail(&b, 0);
    struct virtq_chain c;
    assert_int_equal(virtq_pop(&q, &c), -EINVAL);
    virtq_disable(&q);
    guest_memory_destroy(&big);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_enable_checks),
        T(test_empty),
        T(test_chain_and_push),
        T(test_push_clamps_len),
        T(test_ring_wraps),
        T(test_unpop),
        T(test_indirect),
        T(test_chain_copy_helpers),
        cmocka_unit_test(test_need_event),
        T(test_event_idx_wrap),
        T(test_no_interrupt_flag),
        T(test_kick_suppression),
        T(test_bad_loop),
        T(test_bad_self_loop),
        T(test_bad_next),
        T(test_bad_head),
        T(test_bad_addr),
        T(test_bad_addr_wraps),
        T(test_bad_zero_len),
        T(test_bad_write_then_read),
        T(test_bad_indirect_in_indirect),
        T(test_bad_indirect_with_next),
        T(test_bad_indirect_not_negotiated),
        T(test_bad_indirect_len),
        T(test_bad_indirect_addr),
        T(test_bad_indirect_loop),
        T(test_bad_indirect_too_long),
        T(test_bad_indirect_next_out_of_table),
        T(test_bad_avail_jump),
        cmocka_unit_test(test_bad_total_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
