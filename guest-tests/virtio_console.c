/* virtio_console: a virtio-console PCI device (hvc0) through the runtime's
 * virtio-pci driver: VERSION_1 negotiated without
 * MULTIPORT (one port: receiveq 0, transmitq 1), receive buffers posted,
 * then a line written to the transmitq whose echo the runner's helper
 * (tests/guest/console-echo.c, a client of the console's unix socket) sends
 * back as "echo: <line>". The receiveq interrupts by MSI-X (counted; the
 * used ring is still what the test reads), the transmitq is polled. The helper may connect after the guest starts
 * and both vmm and QEMU drop console output while no client is connected,
 * so the guest repeats its ping until an echo arrives. Then a 300-byte line
 * comes back split over several 64-byte receive buffers, intact; a reset
 * clears the device.
 *
 * vmm: --console socket=PATH; QEMU: -device virtio-serial-pci-non-transitional
 * -device virtconsole on a socket chardev (server=on,wait=off), microvm,pcie=on. */
#include "virtio_pci.h"

#define CONSOLE_F_SIZE      0
#define CONSOLE_F_MULTIPORT 1
#define RXQ                 0
#define TXQ                 1
#define QSIZE               16
#define NRX                 4
#define RXLEN               64
#define ATTEMPTS            40
#define ECHO_WAIT           (1ull << 31)    /* per attempt: well under a second */
#define BIG                 300
#define VEC_CFG             0x61
#define VEC_RX              0x62

static uint8_t rxring[8192] __attribute__((aligned(4096)));
static uint8_t txring[8192] __attribute__((aligned(4096)));
static uint8_t rxbuf[QSIZE][RXLEN];
static int head_buf[QSIZE];
static char txbuf[512];
static char line[1024];
static unsigned line_len, rx_chains;
static struct virtq rxq, txq;
static volatile unsigned hits_cfg, hits_rx;

static void on_cfg(struct irq_frame *f)
{
    hits_cfg++;
    apic_eoi();
}

static void on_rx(struct irq_frame *f)
{
    hits_rx++;
    apic_eoi();
}

static bool post_rx(unsigned i)
{
    struct virtq_sg sg = { rxbuf[i], RXLEN };
    int head = virtq_add(&rxq, &sg, 0, 1);
    if (head < 0)
        return false;
    head_buf[head] = (int)i;
    return true;
}

/* Writes len bytes as one chain and waits until the device used it. */
static bool send(const char *s, unsigned len)
{
    memcpy(txbuf, s, len);
    struct virtq_sg sg = { txbuf, len };
    if (virtq_add(&txq, &sg, 1, 0) < 0)
        return false;
    virtq_kick(&txq);
    uint16_t head;
    uint32_t used;
    return virtq_wait_used(&txq, &head, &used);
}

/* Collects received bytes into line[] until a newline, reposting each
 * buffer; false when none came within `cycles`. */
static bool receive_line(uint64_t cycles)
{
    uint64_t t0 = rdtsc();
    bool got_line = false;
    irq_enable();       /* the receive interrupt is counted meanwhile */
    while (!got_line && rdtsc() - t0 < cycles) {
        uint16_t head;
        uint32_t len;
        if (!virtq_get_used(&rxq, &head, &len)) {
            cpu_relax();
            continue;
        }
        int b = head < QSIZE ? head_buf[head] : -1;
        if (b < 0 || len > RXLEN)
            break;
        rx_chains++;
        for (uint32_t i = 0; i < len && line_len < sizeof(line) - 1; i++)
            line[line_len++] = (char)rxbuf[b][i];
        line[line_len] = 0;
        post_rx((unsigned)b);
        virtq_kick(&rxq);
        for (unsigned i = 0; i < line_len; i++)
            got_line |= line[i] == '\n';
    }
    irq_disable();
    return got_line;
}

static unsigned fmt_ping(char *out, unsigned n)
{
    static const char pre[] = "ping ", post[] = " from hvc0\n";
    unsigned k = 0;
    memcpy(out, pre, sizeof(pre) - 1);
    k += sizeof(pre) - 1;
    if (n >= 10)
        out[k++] = (char)('0' + n / 10);
    out[k++] = (char)('0' + n % 10);
    memcpy(out + k, post, sizeof(post) - 1);
    return k + sizeof(post) - 1;
}

int main(void)
{
    plan(9);
    bool have_ecam = pci_init();
    if (!ok(have_ecam, "MCFG (or _CBA) gives the ECAM window (0x%lx)", pci_ecam()))
        done();
    struct virtio_dev d;
    bool found = virtio_open(&d, VIRTIO_TYPE_CONSOLE);
    if (!ok(found, "virtio-console found at 00:%02x.%u", d.devfn >> 3, d.devfn & 7))
        done();
    ok(virtio_reset(&d), "reset: the status reads 0");
    uint64_t offer = virtio_device_features(&d);
    diag("offered features 0x%lx (SIZE %lu, MULTIPORT %lu)", offer, (offer >> CONSOLE_F_SIZE) & 1,
         (offer >> CONSOLE_F_MULTIPORT) & 1);
    ok(virtio_negotiate(&d, 1ull << VIRTIO_F_VERSION_1), "VERSION_1 alone accepted: one port, no control queues");

    apic_enable();
    irq_set_handler(VEC_CFG, on_cfg);
    irq_set_handler(VEC_RX, on_rx);
    virtio_msix_route(&d, 0, VEC_CFG);
    virtio_msix_route(&d, 1, VEC_RX);
    virtio_msix_enable(&d, true);
    uint16_t cvec = virtio_set_config_vector(&d, 0), rvec = VIRTIO_NO_VECTOR;
    bool qok = virtq_setup(&rxq, &d, RXQ, QSIZE, rxring, 1, &rvec) &&
               virtq_setup(&txq, &d, TXQ, QSIZE, txring, VIRTIO_NO_VECTOR, NULL);
    qok = qok && cvec == 0 && rvec == 1;
    for (unsigned i = 0; qok && i < NRX; i++)
        qok = post_rx(i);
    virtio_driver_ok(&d);
    virtq_kick(&rxq);
    ok(qok && (virtio_status(&d) & VIRTIO_DRIVER_OK), "receiveq (MSI-X vector %u) and transmitq (polled) live "
       "(%u entries), %u receive buffers of %u bytes posted, DRIVER_OK", rvec, rxq.size, NRX, RXLEN);

    /* Ping until the helper is there and echoes. */
    char ping[32];
    unsigned attempt = 0;
    bool echoed = false, sent = true;
    while (!echoed && attempt < ATTEMPTS) {
        unsigned n = fmt_ping(ping, ++attempt);
        sent = sent && send(ping, n);
        echoed = receive_line(ECHO_WAIT);
    }
    bool good = echoed && strncmp(line, "echo: ping ", 11) == 0;
    if (line_len && line[line_len - 1] == '\n')
        line[line_len - 1] = 0;
    if (!ok(sent && good, "a line written to hvc0 came back from the host: \"%s\" (after %u of %u pings, %u "
            "receive buffers)", line, attempt, ATTEMPTS, rx_chains))
        done();

    /* A long line: split over several receive buffers on the way back. */
    static char big[BIG + 1];
    for (unsigned i = 0; i < BIG - 1; i++)
        big[i] = (char)('a' + i % 26);
    big[BIG - 1] = '\n';
    line_len = 0;
    unsigned chains_before = rx_chains;
    bool big_sent = send(big, BIG);
    bool back = big_sent && receive_line(1ull << 34);
    bool intact = back && line_len == BIG + 6 && strncmp(line, "echo: ", 6) == 0 &&
                  memcmp(line + 6, big, BIG) == 0;
    ok(intact, "a %u-byte line came back intact over %u receive buffers (%u bytes)", BIG, rx_chains - chains_before,
       line_len);
    ok(hits_rx >= 1 && hits_cfg == 0, "received buffers were signalled by MSI-X vector 1 (%u interrupts), none on "
       "the config vector (%u)", hits_rx, hits_cfg);

    bool reset = virtio_reset(&d);
    *(volatile uint16_t *)(uintptr_t)(d.common + VC_Q_SELECT) = TXQ;
    uint16_t en = *(volatile uint16_t *)(uintptr_t)(d.common + VC_Q_ENABLE);
    ok(reset && en == 0, "reset again: the transmitq is disabled (%u)", en);
    done();
}
