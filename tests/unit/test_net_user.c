/* devices/net_user.c, the user-networking backend, without a guest: frames
 * go in and out of the socketpair end virtio-net would use, on a real event
 * loop (io_uring, and epoll when run with VMM_LOOP_BACKEND=epoll). ARP for
 * the gateway; UDP to the gateway reaching a host socket on 127.0.0.1 and
 * its answer coming back (slirp's sockets polled through the backend's
 * epoll set); a host connect to a hostfwd port arriving as a SYN; a frame
 * asking for a checksum offload dropped; detach and free with the loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/net_user.h"
#include "devices/tap.h"
#include "vmm/loop.h"

#define HDR 12

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

struct fx {
    struct loop *loop;
    struct loop_timer *tick;    /* wakes loop_run_once now and then: the waits below are bounded */
    struct net_user_opts o;
    struct tap *tap;
    int fd;                     /* virtio-net's end */
    uint8_t buf[2048];
    ssize_t len;
};

static void on_tick(void *opaque)
{
}

static int setup_with(struct fx *f, const char *hostfwd)
{
    f->loop = loop_new(NULL);
    assert_non_null(f->loop);
    f->tick = loop_timer_new(f->loop, on_tick, f, NULL);
    assert_non_null(f->tick);
    assert_int_equal(loop_timer_arm(f->tick, 20000000, 20000000), 0);
    net_user_opts_init(&f->o);
    g_autoptr(GError) err = NULL;
    if (hostfwd)
        assert_int_equal(net_user_opt(&f->o, "test", "hostfwd", hostfwd, &err), 1);
    assert_int_equal(net_user_opts_finish(&f->o, "test", &err), 0);
    f->tap = net_user_open(&f->o, "u0", &err);
    if (!f->tap)
        fail_msg("net_user_open: %s", err->message);
    assert_true(f->tap->complete_frames);
    assert_int_equal(f->tap->nr_fds, 1);
    f->fd = f->tap->fds[0];
    net_user_attach(f->tap, f->loop);
    net_user_attach(f->tap, f->loop);   /* idempotent */
    return 0;
}

static int setup(void **state)
{
    struct fx *f = g_new0(struct fx, 1);
    *state = f;
    return setup_with(f, NULL);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    net_user_detach_loop(f->loop);
    tap_close(f->tap);
    loop_timer_free(f->tick);
    loop_free(f->loop);
    net_user_opts_clear(&f->o);
    g_free(f);
    return 0;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint16_t csum(const uint8_t *p, unsigned len)
{
    uint32_t s = 0;
    for (unsigned i = 0; i + 1 < len; i += 2)
        s += get16(p + i);
    if (len & 1)
        s += (uint32_t)p[len - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/* Sends header + frame from "the guest". */
static void send_frame(struct fx *f, const uint8_t *hdr, const uint8_t *frame, unsigned len)
{
    uint8_t b[2048] = { 0 };
    if (hdr)
        memcpy(b, hdr, HDR);
    memcpy(b + HDR, frame, len);
    assert_int_equal(send(f->fd, b, HDR + len, 0), (ssize_t)(HDR + len));
}

/* Runs the loop until a frame for the guest matches want (or ~5 s pass). */
static bool receive(struct fx *f, bool (*want)(const uint8_t *frame, size_t len, void *arg), void *arg)
{
    for (int i = 0; i < 250; i++) {
        f->len = recv(f->fd, f->buf, sizeof(f->buf), MSG_DONTWAIT);
        if (f->len > HDR) {
            static const uint8_t zero[HDR];
            assert_memory_equal(f->buf, zero, HDR);     /* the header: no offloads, from slirp */
            if (want(f->buf + HDR, (size_t)(f->len - HDR), arg))
                return true;
            continue;
        }
        assert_int_equal(loop_run_once(f->loop), 0);
    }
    return false;
}

static void arp_request(struct fx *f, const char *target)
{
    uint8_t e[42] = { 0 };
    memcpy(e, bcast, 6);
    memcpy(e + 6, guest_mac, 6);
    put16(e + 12, 0x0806);
    uint8_t *a = e + 14;
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, 1);
    memcpy(a + 8, guest_mac, 6);
    inet_pton(AF_INET, "10.0.2.15", a + 14);
    inet_pton(AF_INET, target, a + 24);
    send_frame(f, NULL, e, sizeof(e));
}

static bool is_arp_reply(const uint8_t *e, size_t len, void *arg)
{
    uint8_t gw[4];
    inet_pton(AF_INET, arg, gw);
    return len >= 42 && get16(e + 12) == 0x0806 && get16(e + 20) == 2 && memcmp(e + 28, gw, 4) == 0 &&
           memcmp(e, guest_mac, 6) == 0;
}

static void test_arp(void **state)
{
    struct fx *f = *state;
    arp_request(f, "10.0.2.2");
    assert_true(receive(f, is_arp_reply, "10.0.2.2"));
    static const uint8_t slirp_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
    assert_memory_equal(f->buf + HDR + 22, slirp_mac, 6);
    arp_request(f, "10.0.2.3");     /* the DNS address is slirp's too */
    assert_true(receive(f, is_arp_reply, "10.0.2.3"));
    struct net_user_stats st;
    net_user_get_stats(f->tap, &st);
    assert_int_equal(st.to_slirp, 2);
    assert_true(st.from_slirp >= 2);
}

/* A UDP datagram from 10.0.2.15:4444 to 10.0.2.2:port. */
static void send_udp(struct fx *f, const uint8_t *hdr, uint16_t port, const char *payload)
{
    unsigned pl = (unsigned)strlen(payload);
    uint8_t e[1500] = { 0 };
    memcpy(e, (uint8_t[]){ 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 }, 6);
    memcpy(e + 6, guest_mac, 6);
    put16(e + 12, 0x0800);
    uint8_t *ip = e + 14;
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + 8 + pl));
    ip[8] = 64;
    ip[9] = 17;
    inet_pton(AF_INET, "10.0.2.15", ip + 12);
    inet_pton(AF_INET, "10.0.2.2", ip + 16);
    put16(ip + 10, csum(ip, 20));
    uint8_t *u = ip + 20;
    put16(u, 4444);
    put16(u + 2, port);
    put16(u + 4, (uint16_t)(8 + pl));
    memcpy(u + 8, payload, pl);
    send_frame(f, hdr, e, 14 + 20 + 8 + pl);
}

static bool is_udp_answer(const uint8_t *e, size_t len, void *arg)
{
    const char *want = arg;
    size_t wl = strlen(want);
    return len >= 14 + 20 + 8 + wl && get16(e + 12) == 0x0800 && e[14 + 9] == 17 &&
           get16(e + 14 + 20 + 2) == 4444 && memcmp(e + 14 + 28, want, wl) == 0;
}

/* Runs the loop until the host socket s has a datagram (or ~5 s). */
static ssize_t host_recv(struct fx *f, int s, char *buf, size_t n, struct sockaddr_in *from)
{
    for (int i = 0; i < 250; i++) {
        socklen_t fl = sizeof(*from);
        ssize_t r = recvfrom(s, buf, n, MSG_DONTWAIT, (struct sockaddr *)from, &fl);
        if (r >= 0)
            return r;
        assert_int_equal(loop_run_once(f->loop), 0);
    }
    return -1;
}

static void test_udp_to_host(void **state)
{
    struct fx *f = *state;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    uint16_t port = ntohs(sa.sin_port);

    /* A checksum-offload header (virtio-net offers no CSUM here): dropped. */
    uint8_t bad[HDR] = { 1 };
    send_udp(f, bad, port, "offloaded");
    arp_request(f, "10.0.2.2");
    assert_true(receive(f, is_arp_reply, "10.0.2.2"));
    struct net_user_stats st;
    net_user_get_stats(f->tap, &st);
    assert_int_equal(st.dropped, 1);

    send_udp(f, NULL, port, "hello host");
    char buf[64];
    struct sockaddr_in from;
    ssize_t n = host_recv(f, s, buf, sizeof(buf), &from);
    assert_int_equal(n, 10);
    assert_memory_equal(buf, "hello host", 10);
    /* The answer goes back through slirp's socket to the guest. */
    assert_int_equal(sendto(s, "hello guest", 11, 0, (struct sockaddr *)&from, sizeof(from)), 11);
    assert_true(receive(f, is_udp_answer, "hello guest"));
    close(s);
}

static bool is_syn(const uint8_t *e, size_t len, void *arg)
{
    uint16_t port = *(uint16_t *)arg;
    return len >= 14 + 20 + 20 && get16(e + 12) == 0x0800 && e[14 + 9] == 6 && get16(e + 14 + 20 + 2) == port &&
           (e[14 + 20 + 13] & 0x12) == 0x02;
}

static void test_hostfwd_syn(void **state)
{
    /* A port that is free now: the kernel's pick, closed again. */
    int p = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(p, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(p, (struct sockaddr *)&sa, &sl), 0);
    close(p);
    g_autofree char *fwd = g_strdup_printf("tcp:127.0.0.1:%u-:7777", ntohs(sa.sin_port));
    struct fx *f = g_new0(struct fx, 1);
    *state = f;
    setup_with(f, fwd);
    /* slirp learns the guest's MAC from its ARP */
    arp_request(f, "10.0.2.2");
    assert_true(receive(f, is_arp_reply, "10.0.2.2"));
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int r = connect(c, (struct sockaddr *)&sa, sizeof(sa));
    assert_true(r == 0 || errno == EINPROGRESS);
    uint16_t gport = 7777;
    assert_true(receive(f, is_syn, &gport));
    uint8_t dst[4];
    inet_pton(AF_INET, "10.0.2.15", dst);
    assert_memory_equal(f->buf + HDR + 14 + 16, dst, 4);
    close(c);
}

static void test_open_errors(void **state)
{
    /* the same host port twice: the second backend cannot listen */
    int p = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(p, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(p, 1), 0);
    assert_int_equal(getsockname(p, (struct sockaddr *)&sa, &sl), 0);
    struct net_user_opts o;
    net_user_opts_init(&o);
    g_autoptr(GError) err = NULL;
    g_autofree char *fwd = g_strdup_printf("tcp:127.0.0.1:%u-:22", ntohs(sa.sin_port));
    assert_int_equal(net_user_opt(&o, "t", "hostfwd", fwd, &err), 1);
    assert_int_equal(net_user_opts_finish(&o, "t", &err), 0);
    assert_null(net_user_open(&o, "u", &err));
    assert_non_null(err);
    assert_true(g_str_has_prefix(err->message, "user networking: hostfwd tcp 127.0.0.1:"));
    assert_null(strchr(err->message, '\n'));
    close(p);
    net_user_opts_clear(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_arp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_to_host, setup, teardown),
        cmocka_unit_test_teardown(test_hostfwd_syn, teardown),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
