/* pci: the PCI host bridge from a guest's side, with vmm's pci-testdev
 * (devices/pci/pci_testdev.h, present with --test-exit). ECAM found through
 * the MCFG; the same config space through CF8/CFC byte accesses; absent
 * functions read all ones; BARs sized (32-bit, I/O, 64-bit), decoded,
 * moved, with an ioeventfd that moves along; MSI-X delivered by msix_notify
 * and by irqfd, held in the PBA while masked and delivered on unmask. */
#include "rt.h"

#define VEC0            0x51
#define VEC1            0x52
#define TESTDEV_ID      0x7e571b36u     /* device << 16 | vendor */
#define HOST_ID         0x00081b36u
#define CMD_IO          0x1
#define CMD_MEM         0x2
#define CAP_MSIX        0x11
#define REG_SCRATCH     0x00
#define REG_NOTIFY      0x04
#define REG_IRQFD       0x08
#define REG_DOORBELL    0x0c
#define REG_FAST_KICKS  0x10
#define REG_SLOW_KICKS  0x14
#define BAR2_TARGET     0xd0000000u     /* inside the 32-bit window, below what the guest maps */

static uint64_t ecam;
static volatile unsigned hits0, hits1;

static uint64_t ecam_addr(unsigned devfn, unsigned off)
{
    return ecam + ((uint64_t)devfn << 12) + off;
}

static uint32_t ecam_rd(unsigned devfn, unsigned off)
{
    return mmio_read32(ecam_addr(devfn, off));
}

static void ecam_wr(unsigned devfn, unsigned off, uint32_t v)
{
    mmio_write32(ecam_addr(devfn, off), v);
}

static uint8_t cf8_rd8(unsigned devfn, unsigned off)
{
    outl(0xcf8, 0x80000000u | devfn << 8 | (off & 0xfc));
    return inb((uint16_t)(0xcfc + (off & 3)));
}

static uint32_t cf8_rd32(unsigned devfn, unsigned off)
{
    outl(0xcf8, 0x80000000u | devfn << 8 | (off & 0xfc));
    return inl(0xcfc);
}

static void on_vec0(struct irq_frame *f)
{
    hits0++;
    apic_eoi();
}

static void on_vec1(struct irq_frame *f)
{
    hits1++;
    apic_eoi();
}

/* Lets a pending interrupt in; bounded, so that a lost one fails instead of hanging. */
static void wait_for(volatile unsigned *counter, unsigned before)
{
    uint64_t t0 = rdtsc();
    irq_enable();
    while (*counter == before && rdtsc() - t0 < (1ull << 34))
        cpu_relax();
    irq_disable();
}

/* Size probe of section 6.2.5.1 with decode off: returns what reads back. */
static uint32_t probe(unsigned devfn, unsigned bar_off)
{
    uint32_t old = ecam_rd(devfn, bar_off);
    ecam_wr(devfn, bar_off, 0xffffffffu);
    uint32_t v = ecam_rd(devfn, bar_off);
    ecam_wr(devfn, bar_off, old);
    return v;
}

int main(void)
{
    plan(18);
    const struct acpi_header *mcfg = acpi_find("MCFG", 0);
    if (mcfg && mcfg->length >= 60) {
        const uint8_t *e = (const uint8_t *)mcfg + 44;
        memcpy(&ecam, e, 8);
        ok(ecam && (e[8] | e[9]) == 0 && e[10] == 0, "MCFG: ECAM at 0x%lx, segment %u, buses %u-%u", ecam,
           e[8] | e[9] << 8, e[10], e[11]);
    } else {
        ok(false, "MCFG with one allocation");
        done();
    }

    ok(ecam_rd(0, 0) == HOST_ID && (ecam_rd(0, 8) >> 8) == 0x060000 && cf8_rd32(0, 0) == HOST_ID,
       "00.0 is the host bridge through ECAM and CF8: id 0x%08x class 0x%06x", ecam_rd(0, 0), ecam_rd(0, 8) >> 8);

    unsigned dev = 0;
    for (unsigned slot = 1; slot < 32 && !dev; slot++)
        if (ecam_rd(slot << 3, 0) == TESTDEV_ID)
            dev = slot << 3;
    ok(dev, "pci-testdev found at 00:%02x.0", dev >> 3);
    if (!dev)
        done();

    unsigned diff = 0;
    for (unsigned f = 0; f < 2; f++) {
        unsigned devfn = f ? dev : 0;
        for (unsigned off = 0; off < 256; off++)
            if (cf8_rd8(devfn, off) != (uint8_t)(ecam_rd(devfn, off & ~3u) >> (8 * (off & 3))))
                diff++;
    }
    ok(diff == 0, "CF8/CFC byte reads at 0xCFC-0xCFF match ECAM for all 256 bytes of both functions (%u differ)",
       diff);

    unsigned absent = 31 << 3;
    if (absent == dev)
        absent = 30 << 3;
    ok(ecam_rd(absent, 0) == 0xffffffffu && cf8_rd32(absent, 0) == 0xffffffffu && ecam_rd(1, 0) == 0xffffffffu &&
       cf8_rd32(dev | 1, 0) == 0xffffffffu, "absent functions read all ones through ECAM and CF8");

    ecam_wr(dev, 4, 0);     /* decode off while sizing, as an OS does */
    uint32_t s0 = probe(dev, 0x10), s1 = probe(dev, 0x14), s2 = probe(dev, 0x18), s3 = probe(dev, 0x1c);
    ok(s0 == 0xfffff000u, "BAR0 sizes to 4 KiB, 32-bit memory (0x%08x)", s0);
    ok(s1 == 0xfffffff1u, "BAR1 sizes to 16 bytes of I/O (0x%08x)", s1);
    ok(s2 == 0xffffc00cu && s3 == 0xffffffffu, "BAR2 sizes to 16 KiB, 64-bit prefetchable (0x%08x%08x)", s3, s2);

    uint32_t bar0 = ecam_rd(dev, 0x10), io = ecam_rd(dev, 0x14) & ~3u;
    ecam_wr(dev, 4, CMD_MEM | CMD_IO);
    mmio_write32(bar0 + REG_SCRATCH, 0x5ca1ab1e);
    outl((uint16_t)(io + REG_SCRATCH), 0xfeedf00d);
    ok(mmio_read32(bar0 + REG_SCRATCH) == 0x5ca1ab1e && inl((uint16_t)(io + REG_SCRATCH)) == 0xfeedf00d,
       "BAR0 at 0x%x and BAR1 at 0x%x decode once enabled", bar0, io);

    uint32_t moved = bar0 + 0x100000;
    ecam_wr(dev, 0x10, moved);
    ok(mmio_read32(moved + REG_SCRATCH) == 0x5ca1ab1e && mmio_read32(bar0 + REG_SCRATCH) == 0xffffffffu,
       "BAR0 moved to 0x%x: the device answers there and no longer at 0x%x", moved, bar0);

    for (unsigned i = 0; i < 3; i++)
        mmio_write32(moved + REG_DOORBELL, i);
    uint32_t fast = mmio_read32(moved + REG_FAST_KICKS), slow = mmio_read32(moved + REG_SLOW_KICKS);
    ok(fast == 3 && slow == 0, "doorbell at the moved BAR0: %u writes by the ioeventfd, %u through vmm", fast, slow);

    /* The MSI-X BAR starts above 4 GiB, which this guest does not map: move it down. */
    ecam_wr(dev, 4, CMD_IO);
    ecam_wr(dev, 0x18, BAR2_TARGET | 0xc);
    ecam_wr(dev, 0x1c, 0);
    ecam_wr(dev, 4, CMD_MEM | CMD_IO);
    unsigned cap = ecam_rd(dev, 0x34) & 0xfc, n = 0;
    while (cap && (ecam_rd(dev, cap) & 0xff) != CAP_MSIX && n++ < 48)
        cap = (ecam_rd(dev, cap) >> 8) & 0xfc;
    uint32_t ctl = cap ? ecam_rd(dev, cap) >> 16 : 0, tbl = cap ? ecam_rd(dev, cap + 4) : 0,
             pba = cap ? ecam_rd(dev, cap + 8) : 0;
    ok(cap && (ctl & 0x7ff) == 3 && (tbl & 7) == 2 && (pba & 7) == 2,
       "MSI-X capability at 0x%x: %u vectors, table BIR %u offset 0x%x, PBA BIR %u offset 0x%x", cap,
       (ctl & 0x7ff) + 1, tbl & 7, tbl & ~7u, pba & 7, pba & ~7u);
    if (!cap)
        done();
    uint64_t table = BAR2_TARGET + (tbl & ~7u), pbaa = BAR2_TARGET + (pba & ~7u);

    apic_enable();
    irq_set_handler(VEC0, on_vec0);
    irq_set_handler(VEC1, on_vec1);
    uint32_t dest = (uint32_t)apic_id() << 12;
    mmio_write32(table + 0, 0xfee00000u | dest);
    mmio_write32(table + 4, 0);
    mmio_write32(table + 8, VEC0);
    mmio_write32(table + 16, 0xfee00000u | dest);
    mmio_write32(table + 20, 0);
    mmio_write32(table + 24, VEC1);
    ecam_wr(dev, cap, 0x8000u << 16);       /* MSI-X enable */
    mmio_write32(table + 12, 0);            /* unmask vector 0 */
    mmio_write32(table + 28, 0);            /* and vector 1 */

    mmio_write32(moved + REG_NOTIFY, 0);
    wait_for(&hits0, 0);
    ok(hits0 == 1, "vector 0 raised by the device arrives as vector 0x%x (%u)", VEC0, hits0);

    mmio_write32(table + 12, 1);
    mmio_write32(moved + REG_NOTIFY, 0);
    uint32_t pending = mmio_read32(pbaa);
    mmio_write32(table + 12, 0);
    wait_for(&hits0, 1);
    ok(pending == 1 && hits0 == 2 && mmio_read32(pbaa) == 0,
       "masked vector 0: held in the PBA (0x%x), delivered on unmask (%u), PBA clear after", pending, hits0);

    mmio_write32(moved + REG_IRQFD, 1);
    wait_for(&hits1, 0);
    ok(hits1 == 1, "vector 1 raised through its irqfd arrives as vector 0x%x (%u)", VEC1, hits1);

    mmio_write32(table + 28, 1);
    mmio_write32(moved + REG_IRQFD, 1);
    pending = mmio_read32(pbaa);
    mmio_write32(table + 28, 0);
    wait_for(&hits1, 1);
    ok(pending == 2 && hits1 == 2, "masked vector 1: the irqfd write is pending (PBA 0x%x), delivered on unmask (%u)",
       pending, hits1);

    /* The function mask holds every vector. */
    ecam_wr(dev, cap, 0xc000u << 16);
    mmio_write32(moved + REG_NOTIFY, 0);
    mmio_write32(moved + REG_IRQFD, 1);
    pending = mmio_read32(pbaa);
    ecam_wr(dev, cap, 0x8000u << 16);
    wait_for(&hits1, 2);
    wait_for(&hits0, 2);
    ok(pending == 3 && hits0 == 3 && hits1 == 3,
       "function mask: both pending (PBA 0x%x), both delivered after (%u, %u)", pending, hits0, hits1);

    /* MSI-X disabled: the function sends nothing; the vector waits. */
    ecam_wr(dev, cap, 0);
    mmio_write32(moved + REG_NOTIFY, 0);
    pending = mmio_read32(pbaa);
    bool in_irr = apic_read(0x200 + (VEC0 / 32) * 0x10) & (1u << (VEC0 % 32));
    ok(pending == 1 && !in_irr && hits0 == 3, "MSI-X disabled: vector 0 pending (PBA 0x%x), not in the LAPIC's IRR",
       pending);
    done();
}
