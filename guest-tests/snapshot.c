/* snapshot: the guest end of tests/guest/snapshot.sh (snapshot/restore).
 * Runs forever, in rounds r = 1, 2, 3...; each round:
 *   - every 4 KiB page of RAM from 16 MiB to the top of RAM (below 4 GiB)
 *     is checked to hold round r-1's stamp (a header at an offset that
 *     differs per page: magic, the page's address, the round), then
 *     stamped with round r. A page that does not verify prints "FAIL page"
 *     and the guest stops counting;
 *   - with a virtio-blk disk (polled queue): sector r % 64 is written with
 *     the round's stamp, read back and compared, and flushed;
 *   - it prints "count r ticks T blk B ext1d X" where T counts the interrupts
 *     of the LAPIC's periodic timer (vector 0x40), B the disk rounds done and
 *     X is CPUID 0x8000_0001 EDX as it reads now (a migrated guest must keep
 *     its source's CPUID, whatever the destination host could give).
 * A snapshot may land anywhere in a round (mid-page-walk, mid-request, with
 * a timer interrupt pending); after restore the walk goes on from where it
 * was, so every page still verifies, the count goes on from the saved one,
 * and the ticks go on rising. The test compares the serial output of the two
 * processes and the disk image. */
#include "virtio_pci.h"

#define TIMER_VEC   0x40
#define PAGE        4096ul
#define START       (16ul << 20)
#define MAGIC       0x534e4150534e4150ul      /* "PANSPANS" */
#define T_IN        0
#define T_OUT       1
#define T_FLUSH     4

struct stamp {
    uint64_t magic, addr, round, check;
};

struct req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static volatile uint64_t ticks;
static uint8_t ring[8192] __attribute__((aligned(4096)));
static struct req_hdr hdr __attribute__((aligned(16)));
static volatile uint8_t status;
static uint8_t wbuf[512] __attribute__((aligned(512)));
static uint8_t rbuf[512] __attribute__((aligned(512)));
static struct virtio_dev dev;
static struct virtq q;

static void on_timer(struct irq_frame *f)
{
    ticks++;
    apic_eoi();
}

static struct stamp *stamp_of(uint64_t addr)
{
    /* A different 32-byte slot of each page, so the whole page range is covered. */
    return (struct stamp *)(uintptr_t)(addr + ((addr / PAGE) * 32) % PAGE);
}

static uint8_t request(uint32_t type, uint64_t sector, void *data, uint32_t len, bool dev_writes)
{
    hdr = (struct req_hdr){ .type = type, .sector = sector };
    status = 0xee;
    struct virtq_sg sg[3];
    unsigned n = 0;
    sg[n++] = (struct virtq_sg){ &hdr, sizeof(hdr) };
    if (len)
        sg[n++] = (struct virtq_sg){ data, len };
    sg[n++] = (struct virtq_sg){ (void *)&status, 1 };
    unsigned n_out = len && !dev_writes ? 2 : 1;
    if (virtq_add(&q, sg, n_out, n - n_out) < 0)
        return 0xff;
    virtq_kick(&q);
    uint16_t head;
    uint32_t used;
    if (!virtq_wait_used(&q, &head, &used))
        return 0xfe;
    return status;
}

static bool disk_open(void)
{
    if (!pci_init() || !virtio_open(&dev, VIRTIO_TYPE_BLOCK))
        return false;
    virtio_reset(&dev);
    if (!virtio_negotiate(&dev, (1ull << VIRTIO_F_VERSION_1) | (1ull << 9) /* FLUSH */))
        return false;
    if (!virtq_setup(&q, &dev, 0, 16, ring, VIRTIO_NO_VECTOR, NULL))
        return false;
    virtio_driver_ok(&dev);
    return true;
}

static bool disk_round(uint64_t r)
{
    memset(wbuf, 0, sizeof(wbuf));
    struct stamp s = { MAGIC, r % 64, r, MAGIC ^ r };
    memcpy(wbuf, &s, sizeof(s));
    uint8_t st = request(T_OUT, r % 64, wbuf, sizeof(wbuf), false);
    memset(rbuf, 0xaa, sizeof(rbuf));
    uint8_t st2 = request(T_IN, r % 64, rbuf, sizeof(rbuf), true);
    uint8_t st3 = request(T_FLUSH, 0, NULL, 0, false);
    if (st || st2 || st3 || memcmp(rbuf, wbuf, sizeof(wbuf)) != 0) {
        printf("FAIL disk round %lu: write %u read %u flush %u, %s\n", r, st, st2, st3,
               memcmp(rbuf, wbuf, sizeof(wbuf)) ? "read back differs" : "same data");
        return false;
    }
    return true;
}

int main(void)
{
    uint64_t top = 0;
    for (unsigned i = 0; i < boot_info.nr_mem; i++) {
        const struct mem_region *m = &boot_info.mem[i];
        if (m->type == MEM_RAM && m->addr <= START && m->addr + m->size > START)
            top = m->addr + m->size;
    }
    if (top > (4ul << 30))
        top = 4ul << 30;
    top &= ~(PAGE - 1);
    bool disk = disk_open();
    printf("# snapshot guest up: pages 0x%lx-0x%lx (%lu), disk %s\n", START, top, (top - START) / PAGE,
           disk ? "yes" : "no");
    if (top <= START) {
        printf("FAIL no RAM above 16 MiB\n");
        halt_forever();
    }

    apic_enable();
    irq_set_handler(TIMER_VEC, on_timer);
    apic_write(APIC_TIMER_DIV, 0x3);                    /* divide by 16 */
    apic_write(APIC_LVT_TIMER, TIMER_VEC | APIC_TIMER_PERIODIC);
    apic_write(APIC_TIMER_INIT, 1000000u);
    irq_enable();

    uint64_t blk_rounds = 0;
    for (uint64_t r = 1;; r++) {
        for (uint64_t a = START; a < top; a += PAGE) {
            struct stamp *s = stamp_of(a);
            if (r > 1 && (s->magic != MAGIC || s->addr != a || s->round != r - 1 || s->check != (MAGIC ^ a ^ (r - 1)))) {
                printf("FAIL page 0x%lx in round %lu: magic 0x%lx addr 0x%lx round %lu\n", a, r, s->magic, s->addr,
                       s->round);
                irq_disable();
                halt_forever();
            }
            *s = (struct stamp){ MAGIC, a, r, MAGIC ^ a ^ r };
        }
        if (disk) {
            if (!disk_round(r)) {
                irq_disable();
                halt_forever();
            }
            blk_rounds++;
        }
        uint32_t a = 0x80000001, b, c = 0, d;
        __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
        printf("count %lu ticks %lu blk %lu ext1d %x\n", r, ticks, blk_rounds, d);
    }
}
