/* net_user: virtio-net on user-mode networking (vmm --net user, QEMU
 * -netdev user): the guest talks to slirp's virtual gateway with its own
 * frames, polled, through the runtime's virtio-pci driver. QEMU's defaults:
 * network 10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3, DHCP from 10.0.2.15.
 * The guest has MAC 52:54:00:12:34:56.
 *
 * Always: no CSUM/HOST_TSO offered (slirp takes complete frames only); an
 * ARP request for 10.0.2.2 is answered; a DHCP DISCOVER gets an OFFER of
 * 10.0.2.15 with router 10.0.2.2 and DNS server 10.0.2.3; an ICMP echo to
 * 10.0.2.2 comes back with its payload.
 * fwd=1 (the runner forwards a host port to the guest's TCP 7777 and
 * connects to it once the guest says it waits for it): the guest sees the SYN from the gateway, answers SYN-ACK,
 * receives the host's "hello from the host\n" and sends "hello from the
 * guest\n" with FIN, which the runner's client must print. The guest
 * answers ARP requests for 10.0.2.15 throughout. */
#include "netbytes.h"
#include "virtio_pci.h"

#define NET_F_CSUM      0
#define NET_F_MAC       5
#define NET_F_HOST_TSO4 11
#define NET_F_STATUS    16
#define HDR             12
#define RXQ             0
#define TXQ             1
#define QSIZE           32
#define SECOND          (1ull << 31)  /* rdtsc cycles: about a second here */
#define TRIES           10

static uint8_t rxring[16384] __attribute__((aligned(4096)));
static uint8_t txring[16384] __attribute__((aligned(4096)));
static uint8_t rxbuf[QSIZE][2048];
static int head_buf[QSIZE];
static uint8_t txbuf[2048];
static uint8_t frame[2048];
static unsigned frame_len;
static struct virtq rxq, txq;

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static uint8_t gw_mac[6];
static const uint8_t guest_ip[4] = { 10, 0, 2, 15 };
static const uint8_t gw_ip[4] = { 10, 0, 2, 2 };
static const uint8_t dns_ip[4] = { 10, 0, 2, 3 };
static const uint8_t zero_ip[4] = { 0, 0, 0, 0 };
static const uint8_t bcast_ip[4] = { 255, 255, 255, 255 };

static bool post_rx(unsigned i)
{
    struct virtq_sg sg = { rxbuf[i], sizeof(rxbuf[i]) };
    int head = virtq_add(&rxq, &sg, 0, 1);
    if (head < 0)
        return false;
    head_buf[head] = (int)i;
    return true;
}

/* Sends header + the frame at txbuf + HDR of len bytes (padded to 60). */
static bool send_frame(unsigned len)
{
    memset(txbuf, 0, HDR);
    if (len < 60) {
        memset(txbuf + HDR + len, 0, 60 - len);
        len = 60;
    }
    struct virtq_sg sg[2] = { { txbuf, HDR }, { txbuf + HDR, len } };
    if (virtq_add(&txq, sg, 2, 0) < 0)
        return false;
    virtq_kick(&txq);
    uint16_t head;
    uint32_t used;
    return virtq_wait_used(&txq, &head, &used);
}

static uint8_t *eth(const uint8_t *dst, uint16_t type)
{
    uint8_t *e = txbuf + HDR;
    memcpy(e, dst, 6);
    memcpy(e + 6, guest_mac, 6);
    put16be(e + 12, type);
    return e + 14;
}

/* IPv4 header at ip for a payload of len; returns the payload. */
static uint8_t *ipv4(uint8_t *ip, uint8_t proto, const uint8_t *src, const uint8_t *dst, unsigned len)
{
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16be(ip + 2, (uint16_t)(20 + len));
    ip[8] = 64;
    ip[9] = proto;
    memcpy(ip + 12, src, 4);
    memcpy(ip + 16, dst, 4);
    put16be(ip + 10, fold(sum16(ip, 20, 0)));
    return ip + 20;
}

static bool send_arp(uint16_t op, const uint8_t *dst_mac, const uint8_t *tha, const uint8_t *tip)
{
    uint8_t *a = eth(dst_mac, 0x0806);
    put16be(a, 1);
    put16be(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16be(a + 6, op);
    memcpy(a + 8, guest_mac, 6);
    memcpy(a + 14, guest_ip, 4);
    memcpy(a + 18, tha, 6);
    memcpy(a + 24, tip, 4);
    return send_frame(14 + 28);
}

/* Receives one frame into frame[] (header stripped). An ARP request for our
 * address is answered and not returned. False on timeout. */
static bool receive_frame(uint64_t cycles)
{
    uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < cycles) {
        uint16_t head;
        uint32_t len;
        if (!virtq_get_used(&rxq, &head, &len)) {
            cpu_relax();
            continue;
        }
        int b = head < QSIZE ? head_buf[head] : -1;
        if (b < 0 || len < HDR || len > sizeof(rxbuf[0]))
            return false;
        frame_len = len - HDR;
        memcpy(frame, rxbuf[b] + HDR, frame_len);
        post_rx((unsigned)b);
        virtq_kick(&rxq);
        const uint8_t *a = frame + 14;
        if (frame_len >= 14 + 28 && get16be(frame + 12) == 0x0806 && get16be(a + 6) == 1 &&
            memcmp(a + 24, guest_ip, 4) == 0) {
            uint8_t sha[6], sip[4];
            memcpy(sha, a + 8, 6);
            memcpy(sip, a + 14, 4);
            send_arp(2, sha, sha, sip);
            continue;
        }
        return true;
    }
    return false;
}

/* The IPv4 payload of frame[] if it is protocol proto from src to us, else NULL. */
static const uint8_t *ip_from(uint8_t proto, const uint8_t *src, unsigned *plen)
{
    if (frame_len < 14 + 20 || get16be(frame + 12) != 0x0800)
        return NULL;
    const uint8_t *ip = frame + 14;
    unsigned ihl = (ip[0] & 15) * 4u, tot = get16be(ip + 2);
    if (ip[9] != proto || (src && memcmp(ip + 12, src, 4)) || tot < ihl || 14 + tot > frame_len)
        return NULL;
    *plen = tot - ihl;
    return ip + ihl;
}

/* ---- ARP, DHCP, ICMP ---- */

static bool arp_gateway(unsigned *tries)
{
    static const uint8_t none[6];
    for (*tries = 1; *tries <= TRIES; (*tries)++) {
        if (!send_arp(1, bcast, none, gw_ip))
            return false;
        while (receive_frame(SECOND)) {
            const uint8_t *a = frame + 14;
            if (frame_len >= 14 + 28 && get16be(frame + 12) == 0x0806 && get16be(a + 6) == 2 &&
                memcmp(a + 14, gw_ip, 4) == 0 && memcmp(a + 24, guest_ip, 4) == 0 &&
                memcmp(frame, guest_mac, 6) == 0) {
                memcpy(gw_mac, a + 8, 6);
                return true;
            }
        }
    }
    return false;
}

#define XID 0x766d6d21u
static uint8_t offer_ip[4], offer_router[4], offer_dns[4], offer_server[4];
static unsigned offer_type;

static bool send_discover(void)
{
    uint8_t *udp = ipv4(eth(bcast, 0x0800), 17, zero_ip, bcast_ip, 8 + 240 + 8);
    uint8_t *b = udp + 8;
    memset(b, 0, 240 + 8);
    b[0] = 1;               /* BOOTREQUEST */
    b[1] = 1;
    b[2] = 6;
    put32be(b + 4, XID);
    put16be(b + 10, 0x8000);    /* broadcast */
    memcpy(b + 28, guest_mac, 6);
    put32be(b + 236, 0x63825363);
    uint8_t *o = b + 240;
    o[0] = 53, o[1] = 1, o[2] = 1;  /* DHCPDISCOVER */
    o[3] = 55, o[4] = 2, o[5] = 3, o[6] = 6;
    o[7] = 255;
    put16be(udp, 68);
    put16be(udp + 2, 67);
    put16be(udp + 4, 8 + 240 + 8);
    put16be(udp + 6, 0);
    return send_frame(14 + 20 + 8 + 248);
}

static bool dhcp_offer(unsigned *tries)
{
    for (*tries = 1; *tries <= TRIES; (*tries)++) {
        if (!send_discover())
            return false;
        while (receive_frame(SECOND)) {
            unsigned len;
            const uint8_t *udp = ip_from(17, NULL, &len);
            if (!udp || len < 8 + 240 || get16be(udp) != 67 || get16be(udp + 2) != 68)
                continue;
            const uint8_t *b = udp + 8, *end = udp + len;
            if (b[0] != 2 || get32be(b + 4) != XID || memcmp(b + 28, guest_mac, 6) ||
                get32be(b + 236) != 0x63825363)
                continue;
            memcpy(offer_ip, b + 16, 4);
            for (const uint8_t *o = b + 240; o < end && *o != 255;) {
                if (*o == 0) {
                    o++;
                    continue;
                }
                if (o + 2 > end || o + 2 + o[1] > end)
                    break;
                if (o[0] == 53 && o[1] == 1)
                    offer_type = o[2];
                if (o[0] == 3 && o[1] >= 4)
                    memcpy(offer_router, o + 2, 4);
                if (o[0] == 6 && o[1] >= 4)
                    memcpy(offer_dns, o + 2, 4);
                if (o[0] == 54 && o[1] == 4)
                    memcpy(offer_server, o + 2, 4);
                o += 2 + o[1];
            }
            return true;
        }
    }
    return false;
}

static bool ping_gateway(unsigned *tries)
{
    static const char payload[] = "vmm user networking ping";
    unsigned plen = sizeof(payload) - 1;
    for (*tries = 1; *tries <= TRIES; (*tries)++) {
        uint8_t *icmp = ipv4(eth(gw_mac, 0x0800), 1, guest_ip, gw_ip, 8 + plen);
        icmp[0] = 8;
        icmp[1] = 0;
        put16be(icmp + 2, 0);
        put16be(icmp + 4, 0x4242);
        put16be(icmp + 6, (uint16_t)*tries);
        memcpy(icmp + 8, payload, plen);
        put16be(icmp + 2, fold(sum16(icmp, 8 + plen, 0)));
        if (!send_frame(14 + 20 + 8 + plen))
            return false;
        while (receive_frame(SECOND)) {
            unsigned len;
            const uint8_t *r = ip_from(1, gw_ip, &len);
            if (r && len == 8 + plen && r[0] == 0 && get16be(r + 4) == 0x4242 && get16be(r + 6) == *tries &&
                memcmp(r + 8, payload, plen) == 0 && fold(sum16(r, len, 0)) == 0)
                return true;
        }
    }
    return false;
}

/* ---- TCP, for the host forward ---- */

#define GPORT 7777
static uint16_t peer_port;
static uint32_t peer_seq, my_seq = 0x10000000u;

static bool send_tcp(uint8_t flags, const void *data, unsigned len)
{
    uint8_t *tcp = ipv4(eth(gw_mac, 0x0800), 6, guest_ip, gw_ip, 20 + len);
    memset(tcp, 0, 20);
    put16be(tcp, GPORT);
    put16be(tcp + 2, peer_port);
    put32be(tcp + 4, my_seq);
    put32be(tcp + 8, peer_seq);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    put16be(tcp + 14, 8192);
    memcpy(tcp + 20, data, len);
    uint8_t ph[12];
    memcpy(ph, guest_ip, 4);
    memcpy(ph + 4, gw_ip, 4);
    ph[8] = 0;
    ph[9] = 6;
    put16be(ph + 10, (uint16_t)(20 + len));
    put16be(tcp + 16, fold(sum16(tcp, 20 + len, sum16(ph, 12, 0))));
    return send_frame(14 + 20 + 20 + len);
}

/* The next TCP segment to our port from the gateway; its flags, payload. */
static const uint8_t *receive_tcp(uint64_t cycles, uint8_t *flags, unsigned *dlen)
{
    uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < cycles && receive_frame(cycles)) {
        unsigned len;
        const uint8_t *t = ip_from(6, gw_ip, &len);
        if (!t || len < 20 || get16be(t + 2) != GPORT || (t[12] >> 4) * 4u > len)
            continue;
        *flags = t[13];
        unsigned off = (t[12] >> 4) * 4u;
        *dlen = len - off;
        peer_port = get16be(t);
        if (*flags & 0x02)
            peer_seq = get32be(t + 4) + 1;
        return t;
    }
    return NULL;
}

static void forward_case(void)
{
    uint8_t fl = 0;
    unsigned dl = 0;
    const uint8_t *t = NULL;
    diag("net_user: waiting for the host's connect");
    uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < 25 * SECOND && (t = receive_tcp(SECOND, &fl, &dl)))
        if ((fl & 0x12) == 0x02)
            break;
    bool syn = t && (fl & 0x12) == 0x02;
    if (!ok(syn, "a SYN from the gateway (port %u) to TCP %u: the host's connect to the forwarded port", peer_port,
            GPORT))
        return;
    static const char hello[] = "hello from the host\n", reply[] = "hello from the guest\n";
    unsigned hl = sizeof(hello) - 1, rl = sizeof(reply) - 1;
    bool got = false;
    for (unsigned a = 0; a < TRIES && !got; a++) {
        send_tcp(0x12, NULL, 0);    /* SYN|ACK */
        my_seq++;
        t0 = rdtsc();
        while (rdtsc() - t0 < 3 * SECOND && (t = receive_tcp(SECOND, &fl, &dl))) {
            if ((fl & 0x12) == 0x02)
                break;              /* a retransmitted SYN: answer again */
            if (dl == hl && get32be(t + 4) == peer_seq && memcmp(t + (t[12] >> 4) * 4, hello, hl) == 0) {
                got = true;
                break;
            }
        }
        if (!got)
            my_seq--;
    }
    if (!ok(got, "after the SYN-ACK, the host's bytes came in: \"hello from the host\""))
        return;
    peer_seq += hl;
    send_tcp(0x19, reply, rl);      /* FIN|PSH|ACK with the reply */
    /* The gateway acknowledges our data and FIN (its ack: my_seq + rl + 1). */
    bool acked = false;
    t0 = rdtsc();
    while (!acked && rdtsc() - t0 < 10 * SECOND && (t = receive_tcp(SECOND, &fl, &dl)))
        acked = (fl & 0x10) && get32be(t + 8) == my_seq + rl + 1;
    ok(acked, "the reply and FIN were acknowledged by the gateway (the host client prints the reply)");
    my_seq += rl + 1;
    /* Its FIN in turn, acknowledged so slirp closes. */
    t0 = rdtsc();
    while (rdtsc() - t0 < 5 * SECOND && (t = receive_tcp(SECOND, &fl, &dl))) {
        if (fl & 0x01) {
            peer_seq = get32be(t + 4) + dl + 1;
            send_tcp(0x10, NULL, 0);
            break;
        }
    }
}

int main(void)
{
    bool fwd = cmdline_get_u64("fwd", 0) != 0;
    plan(fwd ? 7 : 8);
    pci_init();
    struct virtio_dev d;
    bool found = virtio_open(&d, VIRTIO_TYPE_NET);
    if (!ok(found, "virtio-net found at 00:%02x.%u", d.devfn >> 3, d.devfn & 7))
        done();
    uint64_t offer = virtio_device_features(&d);
    ok(!(offer & ((1ull << NET_F_CSUM) | (1ull << NET_F_HOST_TSO4))) && (offer & (1ull << NET_F_MAC)),
       "offered features 0x%lx: MAC, and no CSUM or HOST_TSO4 (slirp takes complete frames only)", offer);
    uint64_t want = (1ull << VIRTIO_F_VERSION_1) | (1ull << NET_F_MAC) | (1ull << NET_F_STATUS);
    bool up = virtio_reset(&d) && virtio_negotiate(&d, want) &&
              virtq_setup(&rxq, &d, RXQ, QSIZE, rxring, VIRTIO_NO_VECTOR, NULL) &&
              virtq_setup(&txq, &d, TXQ, QSIZE, txring, VIRTIO_NO_VECTOR, NULL);
    for (unsigned i = 0; up && i < QSIZE; i++)
        up = post_rx(i);
    if (up) {
        virtio_driver_ok(&d);
        virtq_kick(&rxq);
    }
    if (!ok(up && (virtio_status(&d) & VIRTIO_DRIVER_OK), "VERSION_1|MAC|STATUS accepted, queues live"))
        done();
    unsigned tries = 0;
    bool arp = arp_gateway(&tries);
    ok(arp, "ARP: 10.0.2.2 (the gateway) is at %02x:%02x:%02x:%02x:%02x:%02x (try %u)", gw_mac[0], gw_mac[1],
       gw_mac[2], gw_mac[3], gw_mac[4], gw_mac[5], tries);
    if (!arp)
        done();
    if (fwd) {
        forward_case();
        virtio_reset(&d);
        done();
    }
    bool offered = dhcp_offer(&tries);
    ok(offered && offer_type == 2 && memcmp(offer_ip, guest_ip, 4) == 0,
       "DHCP: DISCOVER answered by an OFFER (type %u) of %u.%u.%u.%u (try %u)", offer_type, offer_ip[0], offer_ip[1],
       offer_ip[2], offer_ip[3], tries);
    ok(offered && memcmp(offer_router, gw_ip, 4) == 0 && memcmp(offer_dns, dns_ip, 4) == 0,
       "the offer names router %u.%u.%u.%u and DNS %u.%u.%u.%u", offer_router[0], offer_router[1], offer_router[2],
       offer_router[3], offer_dns[0], offer_dns[1], offer_dns[2], offer_dns[3]);
    ok(offered && memcmp(offer_server, gw_ip, 4) == 0, "from server %u.%u.%u.%u", offer_server[0], offer_server[1],
       offer_server[2], offer_server[3]);
    ok(ping_gateway(&tries), "ICMP: an echo request to 10.0.2.2 came back with its payload (try %u)", tries);
    virtio_reset(&d);
    done();
}
