/* struct tap: the host side of a NIC, a Linux tap interface carrying the
 * 12-byte virtio-net v1 header in front of every frame (IFF_VNET_HDR,
 * TUNSETVNETHDRSZ 12), one non-blocking fd per queue pair
 * (IFF_MULTI_QUEUE).
 *
 * Opened by name through /dev/net/tun (the interface is created if it does
 * not exist; that needs CAP_NET_ADMIN, as does attaching to an existing tap
 * the caller does not own), or from an fd the caller inherited (one queue).
 *
 * The tap outlives guest resets: main opens it once, every boot's
 * virtio-net device uses it. A non-tap fd (a datagram socket carrying the
 * same header + frame) is accepted by tap_from_socket for tests: it takes
 * no ioctls (offloads and queue attachment are then no-ops). */
#ifndef DEVICES_TAP_H
#define DEVICES_TAP_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define TAP_MAX_QUEUES 16
#define TAP_VNET_HDR_LEN 12

/* Offload bits for tap_set_offload (the kernel's TUN_F_*). */
#define TAP_OFFLOAD_CSUM 0x01
#define TAP_OFFLOAD_TSO4 0x02
#define TAP_OFFLOAD_TSO6 0x04
#define TAP_OFFLOAD_ECN  0x08

struct tap {
    char name[16];              /* interface name ("" for a socket) */
    bool is_tap;                /* false: a test socket, no ioctls */
    bool owns_fds;              /* close the fds in tap_close */
    unsigned nr_fds;
    int fds[TAP_MAX_QUEUES];
    unsigned mtu;               /* the interface's MTU (1500 for a socket) */
    bool complete_frames;       /* the far end takes only complete frames: virtio-net offers no
                                 * CSUM/HOST_TSO (user networking) */
    void *backend;              /* what serves the far end of a socket (user networking), */
    void (*release)(struct tap *t);     /* freed by tap_close through release */
};

/* Opens (or creates) tap `name` with `queues` queues. NULL with *err (one
 * line naming the tap and the cause; permission problems say what is
 * missing). */
struct tap *tap_open(const char *name, unsigned queues, GError **err);
/* Takes an inherited tap fd (checked: a tap with IFF_VNET_HDR). */
struct tap *tap_from_fd(int fd, GError **err);
/* Test backends: datagram sockets, not closed by tap_close. */
struct tap *tap_from_socket(const int *fds, unsigned n);
void tap_close(struct tap *t);

/* TUNSETOFFLOAD on the tap: which offloaded frames the tap may hand us
 * (the guest accepts them). 0 or -errno. */
int tap_set_offload(struct tap *t, unsigned flags);
/* Attaches (or detaches) queue i of a multiqueue tap, so the kernel only
 * steers frames to queues someone reads. 0 or -errno. */
int tap_set_queue_enabled(struct tap *t, unsigned i, bool on);

#endif
