/* User-mode networking (libslirp) as a NIC backend: `--net user`, QEMU's
 * `-netdev user` and QMP `netdev_add` type user. No privileges needed: the
 * guest's TCP/UDP/ICMP become the host's own sockets.
 *
 * To virtio-net it is a struct tap over one end of a SOCK_DGRAM socketpair
 * (tap_from_socket: each datagram is the 12-byte virtio-net header + a
 * frame), so virtio-net keeps its one fd-based data path; the slirp
 * instance owns the other end. tap->complete_frames tells virtio-net not to
 * offer CSUM / HOST_TSO*: slirp takes only complete, checksummed frames.
 * One queue pair.
 *
 * Everything runs on one event loop's thread (the main loop's): the
 * socketpair end is watched there; slirp's sockets are put into a
 * level-triggered epoll set of our own whose fd the loop watches, and after
 * every slirp_pollfds_fill that set is synchronised with what slirp asked
 * for, so slirp_pollfds_poll sees poll(2)'s level semantics (what libslirp
 * is written for) although the loop's own watches are edge-like; slirp's
 * timeout and its timers are loop timers.
 *
 * The backend outlives guest resets, as a tap does; slirp's connection
 * state is not saved (snapshot and migration of a VM with a user NIC are
 * refused). */
#ifndef DEVICES_NET_USER_H
#define DEVICES_NET_USER_H

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

struct loop;
struct tap;

#define NET_USER_MAX_FWD 16

struct net_user_fwd {
    bool udp;
    struct in_addr haddr;       /* INADDR_ANY when not given */
    uint16_t hport;
    struct in_addr gaddr;       /* 0: the first DHCP address */
    uint16_t gport;
};

/* The options of one user backend (QEMU's -netdev user names and defaults). */
struct net_user_opts {
    struct in_addr net, mask;   /* net=ADDR[/BITS|/MASK]: 10.0.2.0/24 */
    struct in_addr host;        /* host=: the gateway, net + 2 */
    struct in_addr dns;         /* dns=: net + 3 */
    struct in_addr dhcp;        /* dhcpstart=: net + 15 */
    bool net_set, host_set, dns_set, dhcp_set;
    bool restricted;            /* restrict=on: the guest reaches only hostfwd peers and the host's services */
    bool ipv4, ipv6;            /* ipv4=, ipv6=: both on by default; IPv6 is fec0::/64, as QEMU's */
    char *hostname;             /* hostname=: sent in DHCP */
    char *domainname;           /* domainname=: sent in DHCP */
    unsigned nr_fwd;
    struct net_user_fwd fwd[NET_USER_MAX_FWD];
};

/* The domain of every error below (callers re-file them: CONFIG_ERROR...). */
#define NET_USER_ERROR net_user_error_quark()
GQuark net_user_error_quark(void);

void net_user_opts_init(struct net_user_opts *o);
void net_user_opts_clear(struct net_user_opts *o);
struct net_user_opts *net_user_opts_dup(const struct net_user_opts *o);
/* The option keys a user backend takes, for error messages. */
#define NET_USER_KEYS "net, host, dns, dhcpstart, hostfwd, restrict, ipv4, ipv6, hostname, domainname"
/* Applies one key=value. 1: taken; 0: not a user-backend key (the caller
 * may know it: id=, mac=...); -1 with *err (one line, naming `what`, e.g.
 * "--net user"): a bad value, or a QEMU option vmm does not support
 * (smb=, tftp=, guestfwd=...). */
int net_user_opt(struct net_user_opts *o, const char *what, const char *key, const char *value, GError **err);
/* Fills the defaults from net= and checks the whole: host, dns and
 * dhcpstart inside the network and distinct. -1 with *err. */
int net_user_opts_finish(struct net_user_opts *o, const char *what, GError **err);

/* Opens the backend: a slirp instance with o's settings and its host
 * forwards (a port already in use fails here), and the tap virtio-net uses
 * (tap_close frees everything). Not yet polled: net_user_attach. NULL with
 * *err (one line). */
struct tap *net_user_open(const struct net_user_opts *o, const char *id, GError **err);
/* Runs the backend on loop l (its thread; idempotent). Called when the NIC
 * is created. */
void net_user_attach(struct tap *t, struct loop *l);
/* Stops every backend running on l (before loop_free). */
void net_user_detach_loop(struct loop *l);

struct net_user_stats {
    uint64_t to_slirp, from_slirp;  /* frames */
    uint64_t dropped;               /* to the guest when its socket was full; malformed from the guest */
};
void net_user_get_stats(const struct tap *t, struct net_user_stats *s);

#endif
