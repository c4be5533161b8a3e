/* virtio-net (VIRTIO 1.2, 5.1) over a struct tap (a Linux tap, or user
 * networking's socketpair: devices/net_user.h; then tap->complete_frames
 * withholds CSUM and HOST_TSO4/6/ECN).
 *
 * Queues: receiveq/transmitq pairs (rx = 2p, tx = 2p + 1), then the
 * control queue (2 * max_pairs). Every frame carries the 12-byte v1 header
 * (struct virtio_net_hdr with num_buffers), which the tap reads and writes
 * as it is (IFF_VNET_HDR with TUNSETVNETHDRSZ 12).
 *
 * Features: MAC, STATUS (link up), MTU (the tap's), CSUM, GUEST_CSUM,
 * HOST_TSO4/6, HOST_ECN, GUEST_TSO4/6, GUEST_ECN, MRG_RXBUF, CTRL_VQ,
 * CTRL_RX, CTRL_GUEST_OFFLOADS, GUEST_ANNOUNCE, and MQ with more than one pair. No UFO:
 * Linux's tap lost UFO in 4.14. The GUEST_* offloads the driver accepts (or
 * later sets with CTRL_GUEST_OFFLOADS) are what the tap may hand over
 * (TUNSETOFFLOAD); without them it segments and checksums itself.
 *
 * Transmit runs on a kick: each chain (header + frame, readable only) is
 * written to the pair's tap fd with one writev straight from guest memory.
 * Receive is driven by the tap fd's readiness on the loop: a frame is read
 * into the pair's host buffer and copied into the guest's buffers (one
 * chain, or with MRG_RXBUF as many as it takes, published together). When
 * the guest has no buffers the frame waits in the host buffer and the tap
 * is no longer polled (the kernel queues or drops further frames) until the
 * driver kicks the receive queue. Each run does a bounded amount of work
 * and defers the rest behind the loop's other work.
 *
 * The control queue takes RX (PROMISC, ALLMULTI: recorded, no filtering is
 * done: the guest gets every frame the tap delivers), MAC TABLE_SET
 * (checked, accepted, not filtered), MQ VQ_PAIRS_SET (multiqueue taps
 * attach exactly the active pairs' queues, TUNSETQUEUE), GUEST_OFFLOADS
 * SET and ANNOUNCE ACK.
 *
 * Announce (5.1.6.5.4): after the device state was loaded (a migration's
 * destination, --restore) the guest sits behind another switch port, and a
 * switch or bridge sends its frames to the old port until it learns the new
 * one. virtio_net_announce, run on the loop once the load is complete, does
 * what QEMU does after a load: it writes one RARP frame (ethertype 0x8035,
 * "reverse request", the guest's MAC as sender and target) on the tap, so
 * a bridge learns the MAC on this port at once, and, when the driver
 * negotiated GUEST_ANNOUNCE, sets VIRTIO_NET_S_ANNOUNCE in the config status
 * with a config interrupt: the driver sends its own gratuitous packets
 * (Linux: gratuitous ARP and IPv6 neighbour advertisements for every
 * address) and acknowledges with VIRTIO_NET_CTRL_ANNOUNCE_ACK, which clears
 * the bit. A reset clears it too.
 *
 * Hostile chains (a transmit chain shorter than the header or with
 * writable buffers, a receive chain with readable buffers or, with
 * MRG_RXBUF, a first buffer shorter than the header, a control chain
 * without class/command or ack) break the device (NEEDS_RESET). A frame
 * that does not fit a receive chain without MRG_RXBUF is dropped and the
 * chain reused; a transmitted frame with an offload the driver did not
 * negotiate is dropped. */
#ifndef DEVICES_VIRTIO_NET_H
#define DEVICES_VIRTIO_NET_H

#include "devices/tap.h"
#include "devices/virtio/virtio.h"

/* Device feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM                0
#define VIRTIO_NET_F_GUEST_CSUM          1
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU                 3
#define VIRTIO_NET_F_MAC                 5
#define VIRTIO_NET_F_GUEST_TSO4          7
#define VIRTIO_NET_F_GUEST_TSO6          8
#define VIRTIO_NET_F_GUEST_ECN           9
#define VIRTIO_NET_F_GUEST_UFO           10
#define VIRTIO_NET_F_HOST_TSO4           11
#define VIRTIO_NET_F_HOST_TSO6           12
#define VIRTIO_NET_F_HOST_ECN            13
#define VIRTIO_NET_F_HOST_UFO            14
#define VIRTIO_NET_F_MRG_RXBUF           15
#define VIRTIO_NET_F_STATUS              16
#define VIRTIO_NET_F_CTRL_VQ             17
#define VIRTIO_NET_F_CTRL_RX             18
#define VIRTIO_NET_F_CTRL_VLAN           19
#define VIRTIO_NET_F_CTRL_RX_EXTRA       20
#define VIRTIO_NET_F_GUEST_ANNOUNCE      21
#define VIRTIO_NET_F_MQ                  22
#define VIRTIO_NET_F_CTRL_MAC_ADDR       23

/* Config space (5.1.4). */
#define VIRTIO_NET_CFG_MAC          0
#define VIRTIO_NET_CFG_STATUS       6
#define VIRTIO_NET_CFG_MAX_PAIRS    8
#define VIRTIO_NET_CFG_MTU          10
#define VIRTIO_NET_CONFIG_SIZE      12
#define VIRTIO_NET_S_LINK_UP        1
#define VIRTIO_NET_S_ANNOUNCE       2

/* struct virtio_net_hdr (5.1.6). */
#define VIRTIO_NET_HDR_LEN              12
#define VIRTIO_NET_HDR_F_NEEDS_CSUM     1
#define VIRTIO_NET_HDR_F_DATA_VALID     2
#define VIRTIO_NET_HDR_GSO_NONE         0
#define VIRTIO_NET_HDR_GSO_TCPV4        1
#define VIRTIO_NET_HDR_GSO_UDP          3
#define VIRTIO_NET_HDR_GSO_TCPV6        4
#define VIRTIO_NET_HDR_GSO_ECN          0x80

/* Control queue (5.1.6.5). */
#define VIRTIO_NET_OK                   0
#define VIRTIO_NET_ERR                  1
#define VIRTIO_NET_CTRL_RX              0
#define VIRTIO_NET_CTRL_RX_PROMISC      0
#define VIRTIO_NET_CTRL_RX_ALLMULTI     1
#define VIRTIO_NET_CTRL_MAC             1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET   0
#define VIRTIO_NET_CTRL_ANNOUNCE        3
#define VIRTIO_NET_CTRL_ANNOUNCE_ACK    0
#define VIRTIO_NET_CTRL_MQ              4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS  5
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET 0

#define VIRTIO_NET_QUEUE_SIZE   256
#define VIRTIO_NET_CTRL_QUEUE_SIZE 64
#define VIRTIO_NET_MAX_PAIRS    TAP_MAX_QUEUES
/* Host receive buffer: the largest frame a tap hands over with GSO. */
#define VIRTIO_NET_RX_BUF       (VIRTIO_NET_HDR_LEN + 65536 + 4096)
/* Frames per receive run before the rest is deferred. */
#define VIRTIO_NET_RX_BUDGET    64

struct virtio_net_params {
    struct tap *tap;            /* borrowed; one fd per queue pair */
    uint8_t mac[6];
};

struct virtio_net_pair {
    struct virtio_net *net;
    unsigned index;
    int fd;
    bool polling;               /* the tap fd is watched on the loop */
    bool read_error_logged;
    size_t pending;             /* bytes of a received frame waiting in buf (0: none) */
    uint8_t *buf;
    struct virtq_buf *first;    /* the first chain of a merged frame, kept across pops */
    struct virtq_chain first_chain;
};

struct virtio_net_stats {
    uint64_t rx_frames, tx_frames;
    uint64_t rx_dropped;        /* did not fit a receive chain */
    uint64_t tx_dropped;        /* offload not negotiated, or the tap refused it */
    uint64_t announces;         /* VIRTIO_NET_S_ANNOUNCE raised */
    uint64_t announce_acks;     /* ... and acknowledged by the driver */
    uint64_t rarps;             /* RARP frames vmm wrote on the tap */
};

struct virtio_net {
    struct virtio_device vdev;
    struct tap *tap;
    unsigned max_pairs;
    unsigned curr_pairs;
    uint8_t mac[6];
    uint8_t config[VIRTIO_NET_CONFIG_SIZE];
    unsigned offloads;          /* TAP_OFFLOAD_* set on the tap */
    uint8_t promisc, allmulti;
    bool announce;              /* VIRTIO_NET_S_ANNOUNCE is set (atomic: the loop sets, config reads) */
    bool tx_error_logged;
    struct virtio_net_pair *pairs;
    struct iovec *iov;          /* transmit scratch, one chain's worth */
    struct virtio_net_stats stats;
};

struct virtio_net *virtio_net_new(struct guest_memory *gm, struct loop *loop, const struct virtio_net_params *p);
/* Loop thread; the tap stays open (the caller's). */
void virtio_net_free(struct virtio_net *net);

/* After a load: a RARP from the guest's MAC on the tap, and with
 * GUEST_ANNOUNCE negotiated the S_ANNOUNCE bit and a config interrupt (see
 * the top). Loop thread (or the caller's, without a loop). The load calls it
 * through the loop by itself. */
void virtio_net_announce(struct virtio_net *net);

/* A locally administered unicast MAC derived from `seed` (stable). */
void virtio_net_mac_from_seed(const char *seed, uint8_t mac[6]);

#endif
