/* virtio_rng: a virtio-rng PCI device through the runtime's virtio-pci
 * modern driver (runtime/virtio_pci.c): found on bus 0 through ECAM, its
 * capabilities walked, VERSION_1 negotiated, one split queue with an MSI-X
 * vector filled with entropy (not all zero, not constant, different per
 * buffer); the PCI_CFG window agrees with the BAR; then a device reset,
 * which clears the queue and vectors, a second round without MSI-X that
 * polls the used ring and reads the ISR (set, then clear), and a RING_RESET
 * of the queue with the device up, re-enabled on new rings. vmm needs --rng;
 * QEMU -device virtio-rng-pci on microvm,pcie=on. */
#include "virtio_pci.h"

#define VEC_CFG     0x61
#define VEC_Q       0x62
#define NBUF        4
#define BUFLEN      64

static uint8_t ring[2][8192] __attribute__((aligned(4096)));
static uint8_t bufs[2][NBUF][BUFLEN] __attribute__((aligned(64)));
static volatile unsigned hits_cfg, hits_q;

static void on_cfg(struct irq_frame *f)
{
    hits_cfg++;
    apic_eoi();
}

static void on_q(struct irq_frame *f)
{
    hits_q++;
    apic_eoi();
}

/* Lets a pending interrupt in; bounded so that a lost one fails, not hangs. */
static void wait_irq(volatile unsigned *counter, unsigned before)
{
    uint64_t t0 = rdtsc();
    irq_enable();
    while (*counter == before && rdtsc() - t0 < (1ull << 34))
        cpu_relax();
    irq_disable();
}

/* Not all zero, not one repeated byte. */
static bool looks_random(const uint8_t *p, unsigned len)
{
    unsigned same = 0;
    for (unsigned i = 1; i < len; i++)
        same += p[i] == p[0];
    return same < len - 1;
}

/* Offers n buffers of round r, kicks, collects n used elements. Returns how
 * many came back with 0 < len <= BUFLEN. */
static unsigned fill(struct virtq *q, unsigned r, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        memset(bufs[r][i], 0, BUFLEN);
        struct virtq_sg sg = { bufs[r][i], BUFLEN };
        virtq_add(q, &sg, 0, 1);
    }
    virtq_kick(q);
    unsigned good = 0;
    for (unsigned i = 0; i < n; i++) {
        uint16_t head;
        uint32_t len;
        if (!virtq_wait_used(q, &head, &len))
            break;
        good += len > 0 && len <= BUFLEN;
    }
    return good;
}

/* Where the common structure is, as (bar, offset), for the PCI_CFG window. */
static bool common_location(struct virtio_dev *d, uint8_t *bar, uint32_t *off)
{
    for (unsigned cap = pci_find_cap(d->devfn, PCI_CAP_VENDOR, 0); cap;
         cap = pci_find_cap(d->devfn, PCI_CAP_VENDOR, cap))
        if (pci_read8(d->devfn, cap + 3) == VIRTIO_CAP_COMMON) {
            *bar = pci_read8(d->devfn, cap + 4);
            *off = pci_read32(d->devfn, cap + 8);
            return true;
        }
    return false;
}

int main(void)
{
    plan(17);
    bool have_ecam = pci_init();
    if (!ok(have_ecam, "MCFG (or _CBA) gives the ECAM window (0x%lx)", pci_ecam()))
        done();
    struct virtio_dev d;
    bool found = virtio_open(&d, VIRTIO_TYPE_RNG);
    if (!ok(found, "virtio-rng found at 00:%02x.%u: common/notify/ISR capabilities, "
            "notify multiplier %u", d.devfn >> 3, d.devfn & 7, d.notify_mult))
        done();
    ok(pci_read8(d.devfn, 8) >= 1 && d.pcicfg_cap && d.msix_cap && d.msix_size >= 2,
       "modern (revision %u), a PCI_CFG window at 0x%x, MSI-X with %u vectors", pci_read8(d.devfn, 8),
       d.pcicfg_cap, d.msix_size);

    ok(virtio_reset(&d), "reset: the status reads 0");
    uint64_t offer = virtio_device_features(&d);
    ok((offer >> VIRTIO_F_VERSION_1) & 1 && virtio_negotiate(&d, 1ull << VIRTIO_F_VERSION_1),
       "VERSION_1 offered (features 0x%lx) and accepted: FEATURES_OK reads back", offer);

    apic_enable();
    irq_set_handler(VEC_CFG, on_cfg);
    irq_set_handler(VEC_Q, on_q);
    virtio_msix_route(&d, 0, VEC_CFG);
    virtio_msix_route(&d, 1, VEC_Q);
    virtio_msix_enable(&d, true);
    uint16_t cvec = virtio_set_config_vector(&d, 0), qvec = 0;
    struct virtq q;
    bool qok = virtq_setup(&q, &d, 0, 16, ring[0], 1, &qvec);
    ok(qok && cvec == 0 && qvec == 1, "%u queue(s); queue 0 live with %u entries, config vector %u, queue vector %u",
       virtio_num_queues(&d), q.size, cvec, qvec);
    if (!qok)
        done();

    /* Register corners both engines must agree on (4.1.4.3): a queue that
     * does not exist has size 0, a vector past the MSI-X table reads back
     * as NO_VECTOR, a feature window past bit 63 reads 0. */
    volatile uint16_t *qsel = (volatile uint16_t *)(uintptr_t)(d.common + VC_Q_SELECT);
    volatile uint16_t *qsize = (volatile uint16_t *)(uintptr_t)(d.common + VC_Q_SIZE);
    volatile uint16_t *qmsix = (volatile uint16_t *)(uintptr_t)(d.common + VC_Q_MSIX);
    *qsel = virtio_num_queues(&d);
    uint16_t absent_size = *qsize;
    *qsel = 0;
    *qmsix = (uint16_t)d.msix_size;
    uint16_t bad_vec = *qmsix;
    *qmsix = 1;
    uint16_t good_vec = *qmsix;
    *(volatile uint32_t *)(uintptr_t)(d.common + VC_DFSELECT) = 2;
    uint32_t df2 = *(volatile uint32_t *)(uintptr_t)(d.common + VC_DF);
    ok(absent_size == 0 && bad_vec == VIRTIO_NO_VECTOR && good_vec == 1 && df2 == 0,
       "queue %u (absent) has size %u; vector %u reads back 0x%x, vector 1 reads 1 (%u); feature window 2 reads 0x%x",
       virtio_num_queues(&d), absent_size, d.msix_size, bad_vec, good_vec, df2);

    virtio_driver_ok(&d);
    uint8_t st = virtio_status(&d);
    ok(st == (VIRTIO_ACKNOWLEDGE | VIRTIO_DRIVER | VIRTIO_FEATURES_OK | VIRTIO_DRIVER_OK), "DRIVER_OK (status 0x%x)",
       st);

    unsigned got = fill(&q, 0, NBUF);
    wait_irq(&hits_q, 0);
    ok(got == NBUF && hits_q >= 1 && hits_cfg == 0,
       "%u of %u buffers filled; queue interrupts by MSI-X vector 1: %u, config: %u", got, NBUF, hits_q, hits_cfg);
    unsigned random = 0, differ = 0;
    for (unsigned i = 0; i < NBUF; i++) {
        random += looks_random(bufs[0][i], BUFLEN);
        differ += i && memcmp(bufs[0][i], bufs[0][i - 1], BUFLEN) != 0;
    }
    ok(random == NBUF && differ == NBUF - 1, "entropy: %u of %u buffers neither zero nor constant, %u of %u differ "
       "from the one before (first bytes %02x %02x %02x %02x)", random, NBUF, differ, NBUF - 1, bufs[0][0][0],
       bufs[0][0][1], bufs[0][0][2], bufs[0][0][3]);

    uint8_t bar = 0;
    uint32_t coff = 0;
    uint16_t via = 0xffff;
    if (common_location(&d, &bar, &coff)) {
        pci_write8(d.devfn, d.pcicfg_cap + 4, bar);
        pci_write32(d.devfn, d.pcicfg_cap + 8, coff + VC_NUMQ);
        pci_write32(d.devfn, d.pcicfg_cap + 12, 2);
        via = pci_read16(d.devfn, d.pcicfg_cap + 16);
    }
    ok(via == virtio_num_queues(&d), "the PCI_CFG window reads num_queues %u from BAR%u+0x%x (the BAR says %u)", via,
       bar, coff + VC_NUMQ, virtio_num_queues(&d));

    /* Reset and start again, this time polling: no MSI-X, no vectors. */
    bool reset = virtio_reset(&d);
    *(volatile uint16_t *)(uintptr_t)(d.common + VC_Q_SELECT) = 0;
    uint16_t en = *(volatile uint16_t *)(uintptr_t)(d.common + VC_Q_ENABLE);
    uint16_t cv = *(volatile uint16_t *)(uintptr_t)(d.common + VC_MSIX);
    uint16_t qv = *(volatile uint16_t *)(uintptr_t)(d.common + VC_Q_MSIX);
    ok(reset && en == 0 && cv == VIRTIO_NO_VECTOR && qv == VIRTIO_NO_VECTOR,
       "reset again: queue 0 disabled (%u), config and queue vectors back to NO_VECTOR (0x%x 0x%x)", en, cv, qv);

    virtio_msix_enable(&d, false);
    (void)virtio_isr(&d);
    qok = virtio_negotiate(&d, 1ull << VIRTIO_F_VERSION_1) &&
          virtq_setup(&q, &d, 0, 8, ring[1], VIRTIO_NO_VECTOR, &qvec);
    virtio_driver_ok(&d);
    got = qok ? fill(&q, 1, NBUF - 1) : 0;
    random = differ = 0;
    for (unsigned i = 0; i < NBUF - 1; i++) {
        random += looks_random(bufs[1][i], BUFLEN);
        differ += memcmp(bufs[1][i], bufs[0][i], BUFLEN) != 0;
    }
    ok(qok && qvec == VIRTIO_NO_VECTOR && got == NBUF - 1 && random == NBUF - 1 && differ == NBUF - 1,
       "re-initialised and polled: %u of %u buffers filled, %u random, %u differ from the first round", got,
       NBUF - 1, random, differ);

    /* One more buffer, one notification: the ISR shows it once. */
    unsigned q_before = hits_q;
    (void)virtio_isr(&d);
    got = fill(&q, 1, 1);
    uint8_t isr = 0;
    uint64_t t0 = rdtsc();
    while (!(isr = virtio_isr(&d)) && rdtsc() - t0 < (1ull << 34))
        cpu_relax();
    uint8_t again = virtio_isr(&d);
    ok(got == 1 && (isr & 1) && again == 0, "without MSI-X the ISR shows the queue bit (0x%x), and reading cleared it "
       "(0x%x)", isr, again);
    ok(hits_q == q_before && hits_cfg == 0, "no MSI-X message while it is disabled (%u, %u)", hits_q - q_before,
       hits_cfg);

    /* RING_RESET (2.6.1): one queue reset and re-enabled after DRIVER_OK,
     * on new ring memory, while the device stays up. */
    bool rr = (offer >> VIRTIO_F_RING_RESET) & 1;
    rr = rr && virtio_reset(&d) &&
         virtio_negotiate(&d, 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_RING_RESET) &&
         virtq_setup(&q, &d, 0, 8, ring[0], VIRTIO_NO_VECTOR, NULL);
    virtio_driver_ok(&d);
    got = rr ? fill(&q, 0, 2) : 0;
    volatile uint16_t *qreset = (volatile uint16_t *)(uintptr_t)(d.common + VC_Q_RESET);
    volatile uint16_t *qenable = (volatile uint16_t *)(uintptr_t)(d.common + VC_Q_ENABLE);
    *(volatile uint16_t *)(uintptr_t)(d.common + VC_Q_SELECT) = 0;
    /* 4.1.4.3.2: queue_reset reads 1 while the reset is under way, then 0,
     * and queue_enable 0 (what Linux's vp_modern_set_queue_reset waits for). */
    *qreset = 1;
    t0 = rdtsc();
    while ((*qreset || *qenable) && rdtsc() - t0 < (1ull << 34))
        cpu_relax();
    uint16_t reset_reads = *qreset, enable_reads = *qenable;
    ok(rr && got == 2 && reset_reads == 0 && enable_reads == 0,
       "RING_RESET offered and accepted; queue 0 served %u buffers, then reset: queue_reset reads %u and "
       "queue_enable %u", got, reset_reads, enable_reads);
    bool again_ok = virtq_setup(&q, &d, 0, 8, ring[1], VIRTIO_NO_VECTOR, NULL);
    reset_reads = *qreset;
    got = again_ok ? fill(&q, 1, 2) : 0;
    st = virtio_status(&d);
    ok(again_ok && reset_reads == 0 && got == 2 && looks_random(bufs[1][0], BUFLEN) &&
       st == (VIRTIO_ACKNOWLEDGE | VIRTIO_DRIVER | VIRTIO_FEATURES_OK | VIRTIO_DRIVER_OK),
       "queue 0 re-enabled on new rings after DRIVER_OK (queue_reset back to %u): %u buffers filled, status 0x%x",
       reset_reads, got, st);
    virtio_reset(&d);
    done();
}
