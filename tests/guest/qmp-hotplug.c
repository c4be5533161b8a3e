/* The host side of the pcihp guest test (tests/guest/hotplug.sh): a QMP
 * client (C, json-glib: python3 is not on every Debian) that checks the
 * hotplug commands' errors as QEMU words them, then runs CYCLES add/remove
 * cycles of a virtio-blk disk against the pcihp guest and checks that vmm's
 * open fds and RSS do not grow with them. Prints TAP lines from number FIRST.
 *
 *   qmp-hotplug SOCKET VMM_PID WORKDIR CYCLES FIRST
 *
 * (CYCLES "devices": boot-time devices and a NIC instead, see devices_run.)
 *
 * WORKDIR/out is the guest's serial output: the next cycle starts once it
 * says "# cycle N ejected". After the last cycle and the measurement one more
 * disk ("final", marker cycle CYCLES + 1) is added: the guest's signal to
 * finish (or, with CYCLES 0, the disk at addr 0x7 the guest's reset=1 mode
 * looks for after a reset).
 *
 * Each cycle: "VMMHP" + the cycle number (4 digits) into sector 0 of
 * WORKDIR/disk.img, blockdev-add (odd cycles raw over a nested file, even
 * ones the file driver alone), device_add virtio-blk-pci (cycle 2 at
 * addr 0x7, every third cycle on I/O thread io0), device_del, then the DEVICE_DELETED events (the virtio backend
 * child, then the device with its /machine/peripheral path), which come
 * only after the guest's eject; blockdev-del. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EVENT_WAIT_MS 60000

static int sock = -1;
static GString *inbuf;
static unsigned tap_n, tap_failed;
static GQueue events = G_QUEUE_INIT;   /* JsonNode * of events read while waiting for replies */

static void tap_line(bool good, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void tap_line(bool good, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    printf("%sok %u - %s\n", good ? "" : "not ", ++tap_n, msg);
    fflush(stdout);
    if (!good)
        tap_failed++;
}

/* One JSON line (QMP ends each with \r\n), or NULL on EOF/timeout. */
static JsonNode *read_msg(int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    for (;;) {
        char *nl = memchr(inbuf->str, '\n', inbuf->len);
        if (nl) {
            size_t len = (size_t)(nl - inbuf->str) + 1;
            g_autofree char *line = g_strndup(inbuf->str, len);
            g_string_erase(inbuf, 0, (gssize)len);
            g_autoptr(JsonParser) p = json_parser_new();
            if (!json_parser_load_from_data(p, line, -1, NULL))
                continue;
            return json_node_copy(json_parser_get_root(p));
        }
        gint64 left = deadline - g_get_monotonic_time();
        if (left <= 0)
            return NULL;
        fd_set rf;
        FD_ZERO(&rf);
        FD_SET(sock, &rf);
        struct timeval tv = { .tv_sec = left / 1000000, .tv_usec = left % 1000000 };
        if (select(sock + 1, &rf, NULL, NULL, &tv) <= 0)
            continue;
        char buf[4096];
        ssize_t n = read(sock, buf, sizeof(buf));
        if (n <= 0)
            return NULL;
        g_string_append_len(inbuf, buf, n);
    }
}

/* Sends a command, returns its reply (events on the way are queued). */
static JsonNode *execute(const char *json)
{
    g_autofree char *line = g_strdup_printf("%s\r\n", json);
    if (write(sock, line, strlen(line)) != (ssize_t)strlen(line))
        return NULL;
    for (;;) {
        JsonNode *m = read_msg(30000);
        if (!m)
            return NULL;
        JsonObject *o = json_node_get_object(m);
        if (json_object_has_member(o, "event")) {
            g_queue_push_tail(&events, m);
            continue;
        }
        return m;
    }
}

static char *to_str(JsonNode *n)
{
    return n ? json_to_string(n, FALSE) : g_strdup("(no reply)");
}

/* The command succeeds with {}. */
static bool cmd_ok(const char *json)
{
    g_autoptr(JsonNode) r = execute(json);
    bool good = r && json_object_has_member(json_node_get_object(r), "return");
    if (!good) {
        g_autofree char *s = to_str(r);
        printf("# %s -> %s\n", json, s);
    }
    return good;
}

/* The command fails with this class and description. */
static void cmd_err(const char *json, const char *cls, const char *desc)
{
    g_autoptr(JsonNode) r = execute(json);
    bool good = false;
    if (r && json_object_has_member(json_node_get_object(r), "error")) {
        JsonObject *e = json_object_get_object_member(json_node_get_object(r), "error");
        good = g_strcmp0(json_object_get_string_member(e, "class"), cls) == 0 &&
               g_strcmp0(json_object_get_string_member(e, "desc"), desc) == 0;
    }
    g_autofree char *s = to_str(r);
    tap_line(good, "%s -> %s \"%s\"", json, cls, desc);
    if (!good)
        printf("#   got %s\n", s);
}

/* Waits for DEVICE_DELETED of `id` (the device itself); the backend child's
 * event must have come before it. */
static bool wait_deleted(const char *id)
{
    g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", id);
    g_autofree char *backend = g_strdup_printf("/machine/peripheral/%s/virtio-backend", id);
    bool saw_backend = false;
    gint64 deadline = g_get_monotonic_time() + (gint64)EVENT_WAIT_MS * 1000;
    for (;;) {
        JsonNode *m = g_queue_pop_head(&events);
        if (!m) {
            gint64 left = (deadline - g_get_monotonic_time()) / 1000;
            if (left <= 0 || !(m = read_msg((int)left))) {
                printf("# no DEVICE_DELETED for %s\n", id);
                return false;
            }
        }
        JsonObject *o = json_node_get_object(m);
        bool done = false, good = false;
        if (g_strcmp0(json_object_get_string_member_with_default(o, "event", ""), "DEVICE_DELETED") == 0 &&
            json_object_has_member(o, "data") && json_object_has_member(o, "timestamp")) {
            JsonObject *d = json_object_get_object_member(o, "data");
            const char *dev = json_object_get_string_member_with_default(d, "device", NULL);
            const char *p = json_object_get_string_member_with_default(d, "path", "");
            if (!dev && strcmp(p, backend) == 0)
                saw_backend = true;
            if (dev && strcmp(dev, id) == 0) {
                done = true;
                good = saw_backend && strcmp(p, path) == 0;
                if (!good)
                    printf("# DEVICE_DELETED for %s: path %s, backend event before it: %d\n", id, p, saw_backend);
            }
        }
        json_node_unref(m);
        if (done)
            return good;
    }
}

static long fd_count(int pid)
{
    g_autofree char *dir = g_strdup_printf("/proc/%d/fd", pid);
    GDir *d = g_dir_open(dir, 0, NULL);
    if (!d)
        return -1;
    long n = 0;
    while (g_dir_read_name(d))
        n++;
    g_dir_close(d);
    return n;
}

static long rss_kib(int pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
    g_autofree char *s = NULL;
    if (!g_file_get_contents(path, &s, NULL, NULL))
        return -1;
    char *p = strstr(s, "VmRSS:");
    return p ? strtol(p + 6, NULL, 10) : -1;
}

static bool write_marker(const char *img, unsigned n)
{
    char m[10];
    snprintf(m, sizeof(m), "VMMHP%04u", n % 10000);
    int fd = open(img, O_WRONLY);
    bool good = fd >= 0 && pwrite(fd, m, 9, 0) == 9 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    return good;
}

static char *serial_out;

/* The guest says `want` on its serial line. */
static bool wait_serial(const char *want)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)EVENT_WAIT_MS * 1000;
    while (g_get_monotonic_time() < deadline) {
        g_autofree char *s = NULL;
        if (g_file_get_contents(serial_out, &s, NULL, NULL) && strstr(s, want))
            return true;
        g_usleep(5000);
    }
    printf("# the guest never said: %s", want);
    return false;
}

/* The guest says it saw the slot empty after cycle n. */
static bool wait_guest(unsigned n)
{
    g_autofree char *want = g_strdup_printf("# cycle %u ejected\n", n);
    return wait_serial(want);
}

static bool one_cycle(const char *img, unsigned n)
{
    if (!write_marker(img, n))
        return false;
    g_autofree char *add = n % 2
        ? g_strdup_printf("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"raw\", \"node-name\": \"n%u\", "
                          "\"file\": {\"driver\": \"file\", \"filename\": \"%s\"}, \"read-only\": true}}", n, img)
        : g_strdup_printf("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", \"node-name\": \"n%u\", "
                          "\"filename\": \"%s\", \"read-only\": false}}", n, img);
    g_autofree char *dev = g_strdup_printf("{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"virtio-blk-pci\", "
                                           "\"drive\": \"n%u\", \"id\": \"hp%u\"%s}}", n, n,
                                           n == 2 ? ", \"addr\": \"0x7\"" : n % 3 == 0 ? ", \"iothread\": \"io0\"" : "");
    g_autofree char *del = g_strdup_printf("{\"execute\": \"device_del\", \"arguments\": {\"id\": \"hp%u\"}}", n);
    g_autofree char *bdel = g_strdup_printf("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"n%u\"}}", n);
    g_autofree char *id = g_strdup_printf("hp%u", n);
    if (!cmd_ok(add) || !cmd_ok(dev))
        return false;
    if (n == 1) {
        g_autoptr(JsonNode) l = execute("{\"execute\": \"qom-list\", \"arguments\": {\"path\": \"/machine/peripheral\"}}");
        g_autofree char *ls = to_str(l);
        tap_line(ls && strstr(ls, "{\"name\":\"hp1\",\"type\":\"child<virtio-blk-pci>\"}"),
                 "qom-list /machine/peripheral has hp1 as child<virtio-blk-pci>");
        if (!strstr(ls, "child<virtio-blk-pci>"))
            printf("#   got %s\n", ls);
        g_autoptr(JsonNode) g = execute("{\"execute\": \"qom-get\", \"arguments\": {\"path\": "
                                        "\"/machine/peripheral/hp1\", \"property\": \"drive\"}}");
        g_autofree char *gs = to_str(g);
        tap_line(gs && strcmp(gs, "{\"return\":\"n1\"}") == 0, "qom-get /machine/peripheral/hp1 drive is n1 (%s)", gs);
        cmd_err(dev, "GenericError", "Duplicate device ID 'hp1'");
        cmd_err(bdel, "GenericError", "Node n1 is in use");
    }
    return cmd_ok(del) && wait_deleted(id) && cmd_ok(bdel) && wait_guest(n);
}

/* The command's reply as JSON text (for matching). */
static char *reply_str(const char *json)
{
    g_autoptr(JsonNode) r = execute(json);
    return to_str(r);
}

/* CYCLES "devices": the pcihp guest's devices=3 mode with a disk (id bdisk0)
 * and a NIC (id bnet0, MAC 52:54:00:00:00:b0) given at launch: both leave
 * as a hot-added device does (device_del, DEVICE_DELETED after the guest
 * released and ejected it, then blockdev-del / netdev_del of the node and
 * netdev named by their ids), and a NIC is hot-added (netdev_add of a tap
 * vmm creates, device_add) and hot-unplugged again. */
static void devices_run(int pid, const char *img_path)
{
    bool good = wait_serial("# ready for unplug\n");
    tap_line(good, "the guest drives the disk and NIC given at launch");
    cmd_err("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"bdisk0\"}}", "GenericError",
            "Node bdisk0 is in use");
    cmd_err("{\"execute\": \"netdev_add\", \"arguments\": {\"type\": \"tap\", \"id\": \"bnet0\", \"ifname\": "
            "\"vmmhp9\"}}", "GenericError", "Duplicate ID 'bnet0'");
    g_autofree char *nodes0 = reply_str("{\"execute\": \"query-named-block-nodes\"}");
    tap_line(strstr(nodes0, "\"node-name\":\"bdisk0\"") && strstr(nodes0, "\"drv\":\"raw\""),
             "query-named-block-nodes lists the --disk's node bdisk0");
    if (!strstr(nodes0, "bdisk0"))
        printf("#   got %s\n", nodes0);

    /* libvirt's blockdev-add pair (a file node, a raw node over it by name):
     * both listed, newest first, each with its own drv; the file node is
     * busy while the raw node sits over it. */
    g_autofree char *addf = g_strdup_printf("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", "
                                            "\"node-name\": \"hf\", \"filename\": \"%s\", \"read-only\": true}}", img_path);
    bool added = cmd_ok(addf) && cmd_ok("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"raw\", "
                                        "\"node-name\": \"hr\", \"file\": \"hf\", \"read-only\": true}}");
    g_autofree char *nodes2 = reply_str("{\"execute\": \"query-named-block-nodes\"}");
    const char *r = strstr(nodes2, "\"node-name\":\"hr\""), *f = strstr(nodes2, "\"node-name\":\"hf\""),
               *b = strstr(nodes2, "\"node-name\":\"bdisk0\"");
    g_autoptr(JsonNode) busy = execute("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"hf\"}}");
    g_autofree char *busys = to_str(busy);
    bool dels = cmd_ok("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"hr\"}}") &&
                cmd_ok("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"hf\"}}");
    tap_line(added && r && f && b && r < f && f < b && strstr(r, "\"drv\":\"raw\"") && strstr(f, "\"drv\":\"file\"") &&
             strstr(busys, "\"desc\":\"Block device hf is in use\"") && dels,
             "blockdev-add file + raw: query-named-block-nodes lists hr, hf, bdisk0 in that order; blockdev-del of "
             "hf under hr: \"Block device hf is in use\"; hr then hf deleted");
    if (!(r && f && b && r < f && f < b) || !strstr(busys, "Block device hf is in use"))
        printf("#   nodes %s; blockdev-del hf: %s\n", nodes2, busys);

    /* The NIC given at launch. The tap is vmm's until netdev_del: one fd
     * fewer after it than after DEVICE_DELETED. */
    good = good && cmd_ok("{\"execute\": \"device_del\", \"arguments\": {\"id\": \"bnet0\"}}") &&
           wait_deleted("bnet0") && wait_serial("ejected (net 52:54:00:00:00:b0)\n");
    long fds_before = fd_count(pid);
    good = good && cmd_ok("{\"execute\": \"netdev_del\", \"arguments\": {\"id\": \"bnet0\"}}");
    long fds_after = fd_count(pid);
    tap_line(good && fds_after == fds_before - 1, "a NIC given at launch: device_del, the guest releases and ejects "
             "it, DEVICE_DELETED, netdev_del bnet0 closes its tap (vmm's fds %ld -> %ld)", fds_before, fds_after);
    cmd_err("{\"execute\": \"netdev_del\", \"arguments\": {\"id\": \"bnet0\"}}", "DeviceNotFound",
            "Device 'bnet0' not found");

    /* A NIC hot-added and hot-unplugged. */
    good = cmd_ok("{\"execute\": \"netdev_add\", \"arguments\": {\"type\": \"tap\", \"id\": \"hn1\", "
                  "\"ifname\": \"vmmhp1\"}}") &&
           cmd_ok("{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"virtio-net-pci\", \"netdev\": "
                  "\"hn1\", \"id\": \"hnic1\", \"mac\": \"52:54:00:00:00:b1\"}}") &&
           wait_serial("up (net 52:54:00:00:00:b1)\n");
    cmd_err("{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"virtio-net-pci\", \"netdev\": "
            "\"hn1\", \"id\": \"hnic2\"}}", "GenericError",
            "Property 'virtio-net-device.netdev' can't take value 'hn1', it's in use");
    good = good && cmd_ok("{\"execute\": \"device_del\", \"arguments\": {\"id\": \"hnic1\"}}") &&
           wait_deleted("hnic1") && wait_serial("ejected (net 52:54:00:00:00:b1)\n") &&
           cmd_ok("{\"execute\": \"netdev_del\", \"arguments\": {\"id\": \"hn1\"}}");
    tap_line(good, "a hot-added NIC: netdev_add, device_add, the guest drives it (its MAC), device_del, the guest "
             "releases and ejects it, DEVICE_DELETED, netdev_del");

    /* The disk given at launch. */
    good = cmd_ok("{\"execute\": \"device_del\", \"arguments\": {\"id\": \"bdisk0\"}}") &&
           wait_deleted("bdisk0") && wait_serial("ejected (blk)\n") &&
           cmd_ok("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"bdisk0\"}}");
    g_autofree char *nodes1 = reply_str("{\"execute\": \"query-named-block-nodes\"}");
    g_autofree char *peri = reply_str("{\"execute\": \"qom-list\", \"arguments\": {\"path\": \"/machine/peripheral\"}}");
    tap_line(good && strcmp(nodes1, "{\"return\":[]}") == 0 && !strstr(peri, "bdisk0") && !strstr(peri, "bnet0"),
             "a disk given at launch: device_del, the guest releases and ejects it, DEVICE_DELETED, blockdev-del "
             "bdisk0; no node and no device left");
    if (!good || strcmp(nodes1, "{\"return\":[]}") != 0)
        printf("#   nodes %s, peripheral %s\n", nodes1, peri);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: qmp-hotplug SOCKET VMM_PID WORKDIR CYCLES FIRST\n");
        return 2;
    }
    const char *path = argv[1];
    int pid = atoi(argv[2]);
    unsigned cycles = (unsigned)atoi(argv[4]);
    tap_n = (unsigned)atoi(argv[5]) - 1;
    g_autofree char *img = g_build_filename(argv[3], "disk.img", NULL);
    serial_out = g_build_filename(argv[3], "out", NULL);
    inbuf = g_string_new(NULL);

    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    for (int i = 0; i < 300; i++) {
        sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        close(sock);
        sock = -1;
        g_usleep(100000);
    }
    g_autoptr(JsonNode) greeting = sock >= 0 ? read_msg(10000) : NULL;
    g_autoptr(JsonNode) caps = greeting ? execute("{\"execute\": \"qmp_capabilities\"}") : NULL;
    tap_line(caps && json_object_has_member(json_node_get_object(caps), "return"),
             "QMP: greeting and qmp_capabilities on %s", path);
    if (!caps)
        return 1;

    cmd_err("{\"execute\": \"device_del\", \"arguments\": {\"id\": \"nope\"}}", "DeviceNotFound",
            "Device 'nope' not found");
    cmd_err("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"raw\", \"node-name\": \"x\", \"file\": "
            "{\"driver\": \"file\", \"filename\": \"/nonexistent/vmm.img\"}}}",
            "GenericError", "Could not open '/nonexistent/vmm.img': No such file or directory");
    cmd_err("{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"virtio-blk-pci\", \"drive\": \"none\", "
            "\"id\": \"d\"}}", "GenericError", "Property 'virtio-blk-device.drive' can't find value 'none'");
    cmd_err("{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"e1000\", \"id\": \"d\"}}", "GenericError",
            "'e1000' is not a valid device model name");
    cmd_err("{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"virtio-blk-pci\", \"drive\": \"none\", "
            "\"id\": \"d\", \"iothread\": \"nope\"}}", "GenericError",
            "Property 'virtio-blk-pci.iothread' can't find value 'nope'");
    cmd_err("{\"execute\": \"netdev_del\", \"arguments\": {\"id\": \"nope\"}}", "DeviceNotFound",
            "Device 'nope' not found");
    cmd_err("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"nope\"}}", "GenericError",
            "Failed to find node with node-name='nope'");

    if (strcmp(argv[4], "devices") == 0) {
        devices_run(pid, img);
        close(sock);
        return tap_failed ? 1 : 0;
    }

    /* Nothing is added before the guest looks (its reset=1 mode tells the
     * boots apart by whether a disk is there from the start). */
    if (!wait_serial("# ready for hotplug\n"))
        cycles = 0;
    long fd0 = -1, rss0 = -1;
    unsigned done = 0;
    const unsigned warmup = cycles < 4 ? cycles : 4;
    for (unsigned n = 1; n <= cycles; n++) {
        if (!one_cycle(img, n))
            break;
        done++;
        if (n == warmup) {
            fd0 = fd_count(pid);
            rss0 = rss_kib(pid);
        }
    }
    tap_line(done == cycles, "%u of %u add/remove cycles: device_add, the guest reads it, device_del, "
             "DEVICE_DELETED after its eject, blockdev-del", done, cycles);
    long fd1 = fd_count(pid), rss1 = rss_kib(pid);
    printf("# vmm after cycle %u: %ld fds, RSS %ld KiB; after cycle %u: %ld fds, RSS %ld KiB\n", warmup, fd0, rss0,
           cycles, fd1, rss1);
    tap_line(fd0 > 0 && fd1 == fd0, "vmm's open fds are the same after %u more cycles (%ld, %ld)", cycles - warmup,
             fd0, fd1);
    /* A leak of one page per cycle would show; allocator noise stays far below. */
    long limit = (long)(cycles - warmup) * 4 / 2;
    tap_line(rss0 > 0 && rss1 - rss0 <= limit, "vmm's RSS grew %ld KiB over %u cycles (at most %ld allowed)",
             rss1 - rss0, cycles - warmup, limit);
    if (done == cycles && write_marker(img, cycles + 1)) {
        g_autofree char *add = g_strdup_printf("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", "
                                               "\"node-name\": \"final\", \"filename\": \"%s\"}}", img);
        /* With no cycles (the reset case) not in the first free slot: the
         * slot must be kept across the reset. */
        g_autofree char *dev = g_strdup_printf("{\"execute\": \"device_add\", \"arguments\": {\"driver\": "
                                               "\"virtio-blk-pci\", \"drive\": \"final\", \"id\": \"final\"%s}}",
                                               cycles ? "" : ", \"addr\": \"0x7\"");
        if (!cmd_ok(add) || !cmd_ok(dev))
            printf("# the final disk could not be added\n");
    }
    close(sock);
    return tap_failed ? 1 : 0;
}
