/* The QMP commands qemu_compat adds, over a real QMP server on a socket pair
 * (no KVM needed): each reply of libvirt's probe exactly (libvirt-contract.md
 * §3.2-§3.4: what crashes or misleads libvirtd is checked by name), the
 * launch and reconnect queries, and the QOM objects it registers; and
 * libvirt's detach of a disk given at launch (device_del, then blockdev-del
 * of its -blockdev nodes) with the hotplug registry (hotplug_qmp.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/hotplug_qmp.h"
#include "vmm/loop.h"
#include "vmm/machine.h"
#include "vmm/qemu_compat.h"
#include "vmm/qmp.h"
#include "vmm/qom.h"
#include "tests/unit/qmp_loop_client.h"

struct t {
    struct vm_config cfg;
    struct qemu_compat q;
    struct machine m;
    int fd;
};

static char *read_msg(struct t *t)
{
    return qmp_loop_read_msg(t->fd, t->m.loop);
}

static void expect(struct t *t, const char *json, const char *want)
{
    assert_int_equal(send(t->fd, json, strlen(json), 0), (ssize_t)strlen(json));
    char *r = read_msg(t);
    if (strcmp(r, want) != 0)
        fail_msg("%s\n  got  %s\n  want %s", json, r, want);
    g_free(r);
}

/* libvirt's launch argv (a disk is not needed here: its QOM object is
 * hotplug_qmp's), on a machine whose KVM fd is kvm_fd. */
static int setup_with(void **state, int kvm_fd)
{
    struct t *t = g_new0(struct t, 1);
    static const char *argv[] = {
        "vmm", "-name", "guest=u,debug-threads=on", "-S", "-machine", "pc-i440fx-7.2,usb=off", "-cpu",
        "host,migratable=off", "-m", "64", "-smp", "2", "-kernel", "/k",
        "-chardev", "socket,id=charmonitor,fd=24,server=on,wait=off", "-mon", "chardev=charmonitor,mode=control",
        "-chardev", "file,id=charserial0,path=/tmp/s.log", "-device", "isa-serial,chardev=charserial0,id=serial0",
        "-device", "virtio-serial-pci,id=virtio-serial0,bus=pci.0,addr=0x5", "-chardev", "pty,id=charconsole0",
        "-device", "virtconsole,chardev=charconsole0,id=console0", NULL,
    };
    config_init_defaults(&t->cfg);
    GError *err = NULL;
    assert_int_equal(qemu_compat_parse(&t->cfg, &t->q, G_N_ELEMENTS(argv) - 1, (char **)argv, &err), 0);
    t->m.cfg = &t->cfg;
    t->m.kvm_fd = kvm_fd;
    t->m.loop = loop_new(NULL);
    assert_non_null(t->m.loop);
    t->m.qmp = qmp_server_new(t->m.loop);
    qemu_compat_qmp_register(t->m.qmp, &t->m, &t->q);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_non_null(qmp_server_add_client(t->m.qmp, sv[1]));
    t->fd = sv[0];
    g_free(read_msg(t));
    expect(t, "{\"execute\": \"qmp_capabilities\"}", "{\"return\": {}}");
    *state = t;
    return 0;
}

static int setup(void **s) { return setup_with(s, 0); }
static int setup_nokvm(void **s) { return setup_with(s, -1); }

static int teardown(void **state)
{
    struct t *t = *state;
    qom_remove("/machine/peripheral/serial0");
    qom_remove("/machine/peripheral/virtio-serial0");
    qom_remove("/machine/unattached/device[0]");
    qom_remove("/machine/unattached/device[1]");
    close(t->fd);
    qmp_server_free(t->m.qmp);
    loop_free(t->m.loop);
    qemu_compat_clear(&t->q);
    config_clear(&t->cfg);
    g_free(t);
    return 0;
}

static void test_probe_replies(void **state)
{
    struct t *t = *state;
    expect(t, "{\"execute\": \"query-target\"}", "{\"return\": {\"arch\": \"x86_64\"}}");
    expect(t, "{\"execute\": \"query-qmp-schema\"}", "{\"return\": []}");
    expect(t, "{\"execute\": \"query-kvm\"}", "{\"return\": {\"enabled\": true, \"present\": true}}");
    expect(t, "{\"execute\": \"qom-list-types\"}",
           "{\"return\": [{\"name\": \"isa-serial\", \"parent\": \"isa-device\"}, {\"name\": \"host-x86_64-cpu\", "
           "\"parent\": \"max-x86_64-cpu\"}, {\"name\": \"max-x86_64-cpu\", \"parent\": \"x86_64-cpu\"}]}");
    expect(t, "{\"execute\": \"qom-list-types\", \"arguments\": {\"implements\": \"isa-device\", \"abstract\": false}}",
           "{\"return\": [{\"name\": \"isa-serial\", \"parent\": \"isa-device\"}]}");
    expect(t, "{\"execute\": \"device-list-properties\", \"arguments\": {\"typename\": \"PIIX4_PM\"}}",
           "{\"return\": [{\"name\": \"disable_s3\", \"type\": \"uint8\"}, {\"name\": \"disable_s4\", \"type\": "
           "\"uint8\"}]}");
    expect(t, "{\"execute\": \"device-list-properties\", \"arguments\": {\"typename\": \"virtio-blk-pci\"}}",
           "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'virtio-blk-pci' not found\"}}");
    /* libvirtd 9.0 crashes on DeviceNotFound for these two. */
    expect(t, "{\"execute\": \"qom-list-properties\", \"arguments\": {\"typename\": \"memory-backend-file\"}}",
           "{\"return\": []}");
    expect(t, "{\"execute\": \"qom-list-properties\", \"arguments\": {\"typename\": \"none-machine\"}}",
           "{\"return\": []}");
    expect(t, "{\"execute\": \"qom-list-properties\", \"arguments\": {\"typename\": \"max-x86_64-cpu\"}}",
           "{\"return\": [{\"name\": \"migratable\", \"type\": \"bool\"}]}");
    expect(t, "{\"execute\": \"query-machines\"}",
           "{\"return\": [{\"name\": \"pc-i440fx-7.2\", \"alias\": \"pc\", \"is-default\": true, \"cpu-max\": 255, "
           "\"hotpluggable-cpus\": true, \"numa-mem-supported\": false, \"deprecated\": false, \"default-cpu-type\": "
           "\"host-x86_64-cpu\"}, {\"name\": \"none\", \"cpu-max\": 1, \"hotpluggable-cpus\": false, "
           "\"numa-mem-supported\": false, \"deprecated\": false}]}");
    expect(t, "{\"execute\": \"query-cpu-definitions\"}",
           "{\"return\": [{\"name\": \"host\", \"typename\": \"host-x86_64-cpu\", \"unavailable-features\": [], "
           "\"static\": false, \"migration-safe\": false, \"deprecated\": false}, {\"name\": \"max\", \"typename\": "
           "\"max-x86_64-cpu\", \"unavailable-features\": [], \"static\": false, \"migration-safe\": false, "
           "\"deprecated\": false}]}");
    /* Only CommandNotFound is tolerated by the probe here. */
    expect(t, "{\"execute\": \"query-tpm-models\"}",
           "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command query-tpm-models has not been "
           "found\"}}");
    expect(t, "{\"execute\": \"query-command-line-options\"}", "{\"return\": []}");
    expect(t, "{\"execute\": \"query-migrate-capabilities\"}", "{\"return\": []}");
    expect(t, "{\"execute\": \"query-target\", \"arguments\": {\"x\": 1}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}");
}

static void test_no_kvm(void **state)
{
    struct t *t = *state;
    expect(t, "{\"execute\": \"query-kvm\"}", "{\"return\": {\"enabled\": false, \"present\": false}}");
}

static void test_launch_replies(void **state)
{
    struct t *t = *state;
    expect(t, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": [{\"capability\": "
              "\"events\", \"state\": true}]}}",
           "{\"return\": {}}");
    expect(t, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": [{\"capability\": "
              "\"postcopy-ram\", \"state\": true}]}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Migration capability 'postcopy-ram' is not supported "
           "by vmm\"}}");
    expect(t, "{\"execute\": \"migrate-set-capabilities\"}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'capabilities' is missing\"}}");
    /* No backends opened here: the pty's path is empty (vmm fills it in). */
    expect(t, "{\"execute\": \"query-chardev\"}",
           "{\"return\": [{\"frontend-open\": true, \"filename\": \"file:/tmp/s.log\", \"label\": \"charserial0\"}, "
           "{\"frontend-open\": true, \"filename\": \"pty:\", \"label\": \"charconsole0\"}, {\"frontend-open\": true, "
           "\"filename\": \"unix:\", \"label\": \"charmonitor\"}]}");
    expect(t, "{\"execute\": \"query-jobs\"}", "{\"return\": []}");
    expect(t, "{\"execute\": \"qom-list\", \"arguments\": {\"path\": \"/machine/peripheral\"}}",
           "{\"return\": [{\"name\": \"serial0\", \"type\": \"child<isa-serial>\"}, {\"name\": \"virtio-serial0\", "
           "\"type\": \"child<virtio-serial-pci>\"}]}");
    /* -cpu host,migratable=off: qom-get says so (libvirt asks on reconnect). */
    expect(t, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/machine/unattached/device[1]\", \"property\": "
              "\"migratable\"}}",
           "{\"return\": false}");
    expect(t, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/machine/unattached/device[2]\", \"property\": "
              "\"migratable\"}}",
           "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device '/machine/unattached/device[2]' not "
           "found\"}}");
    expect(t, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/machine/unattached/device[0]\", \"property\": "
              "\"nope\"}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Property 'host-x86_64-cpu.nope' not found\"}}");
}

/* A disk given at launch as libvirt gives it (-blockdev file + raw,
 * -device virtio-blk-pci), the hotplug registry's commands on top. The
 * registry is the process's: one test only. No VM: device_del forgets the
 * disk at once (as for a machine not built yet). */
static void test_boot_disk_detach(void **state)
{
    (void)state;
    struct t t = { 0 };
    static const char *argv[] = {
        "vmm", "-S", "-machine", "pc-i440fx-7.2", "-m", "64", "-kernel", "/k",
        "-blockdev", "{\"driver\":\"file\",\"filename\":\"/nonexistent/d.raw\",\"node-name\":\"libvirt-1-storage\","
                     "\"auto-read-only\":true,\"discard\":\"unmap\",\"cache\":{\"direct\":true,\"no-flush\":false},"
                     "\"aio\":\"native\"}",
        "-blockdev", "{\"node-name\":\"libvirt-1-format\",\"read-only\":false,\"cache\":{\"direct\":true,\"no-flush\":false},"
                     "\"driver\":\"raw\",\"file\":\"libvirt-1-storage\"}",
        "-device", "virtio-blk-pci,bus=pci.0,addr=0x4,drive=libvirt-1-format,id=virtio-disk0,bootindex=1", NULL,
    };
    config_init_defaults(&t.cfg);
    GError *err = NULL;
    assert_int_equal(qemu_compat_parse(&t.cfg, &t.q, G_N_ELEMENTS(argv) - 1, (char **)argv, &err), 0);
    t.m.cfg = &t.cfg;
    t.m.loop = loop_new(NULL);
    assert_non_null(t.m.loop);
    t.m.qmp = qmp_server_new(t.m.loop);
    machine_qmp_register(t.m.qmp, &t.m);
    qemu_compat_qmp_register(t.m.qmp, &t.m, &t.q);
    hotplug_qmp_register(t.m.qmp, &t.m);
    hotplug_qmp_add_boot_devices(&t.m);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_non_null(qmp_server_add_client(t.m.qmp, sv[1]));
    t.fd = sv[0];
    g_free(read_msg(&t));
    expect(&t, "{\"execute\": \"qmp_capabilities\"}", "{\"return\": {}}");
    /* QEMU 7.2's shape: newest first, each node with its own drv and cache. */
    static const char *const node_fmt =
        "{\"iops_rd\": 0, \"detect_zeroes\": \"off\", \"image\": {\"virtual-size\": 0, \"filename\": "
        "\"/nonexistent/d.raw\", \"format\": \"%s\", \"actual-size\": 0, \"dirty-flag\": false}, \"iops_wr\": 0, "
        "\"ro\": false, \"node-name\": \"libvirt-1-%s\", \"backing_file_depth\": 0, \"drv\": \"%s\", \"iops\": 0, "
        "\"bps_wr\": 0, \"write_threshold\": 0, \"encrypted\": false, \"bps\": 0, \"bps_rd\": 0, \"cache\": "
        "{\"no-flush\": false, \"direct\": true, \"writeback\": true}, \"file\": \"/nonexistent/d.raw\"}";
    g_autofree char *fmt = g_strdup_printf(node_fmt, "raw", "format", "raw");
    g_autofree char *sto = g_strdup_printf(node_fmt, "file", "storage", "file");
    g_autofree char *nodes = g_strdup_printf("{\"return\": [%s, %s]}", fmt, sto);
    expect(&t, "{\"execute\": \"query-named-block-nodes\"}", nodes);
    expect(&t, "{\"execute\": \"query-named-block-nodes\", \"arguments\": {\"flat\": true}}", nodes);
    /* query-block's disk is the format node, as query-named-block-nodes says. */
    g_autofree char *blk = g_strdup_printf("{\"return\": [{\"io-status\": \"ok\", \"device\": \"\", \"locked\": false, "
                                           "\"removable\": false, \"inserted\": %s, \"qdev\": "
                                           "\"/machine/peripheral/virtio-disk0/virtio-backend\", \"type\": \"unknown\"}]}",
                                           fmt);
    expect(&t, "{\"execute\": \"query-block\"}", blk);
    expect(&t, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/machine/peripheral/virtio-disk0\", "
              "\"property\": \"drive\"}}",
           "{\"return\": \"libvirt-1-format\"}");
    expect(&t, "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"libvirt-1-format\"}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Node libvirt-1-format is in use\"}}");
    expect(&t, "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"libvirt-1-storage\"}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Block device libvirt-1-storage is in use\"}}");
    expect(&t, "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"raw\", \"node-name\": "
              "\"libvirt-1-format\", \"file\": \"libvirt-1-storage\"}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Duplicate nodes with node-name='libvirt-1-format'\"}}");
    expect(&t, "{\"execute\": \"netdev_del\", \"arguments\": {\"id\": \"hostnet0\"}}",
           "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'hostnet0' not found\"}}");
    /* libvirt's detach: device_del, then the format node, then the storage node. */
    const char *del = "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"virtio-disk0\"}}";
    assert_int_equal(send(t.fd, del, strlen(del), 0), (ssize_t)strlen(del));
    g_autofree char *ev1 = read_msg(&t), *ev2 = read_msg(&t), *ret = read_msg(&t);
    if (!strstr(ev1, "\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": "
                     "\"/machine/peripheral/virtio-disk0/virtio-backend\"}}") ||
        !strstr(ev2, "\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"virtio-disk0\", \"path\": "
                     "\"/machine/peripheral/virtio-disk0\"}}") ||
        strcmp(ret, "{\"return\": {}}") != 0)
        fail_msg("device_del: got\n  %s\n  %s\n  %s", ev1, ev2, ret);
    expect(&t, "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"libvirt-1-storage\"}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Block device libvirt-1-storage is in use\"}}");
    expect(&t, "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"libvirt-1-format\"}}",
           "{\"return\": {}}");
    expect(&t, "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"libvirt-1-storage\"}}",
           "{\"return\": {}}");
    expect(&t, "{\"execute\": \"query-named-block-nodes\"}", "{\"return\": []}");
    expect(&t, "{\"execute\": \"qom-list\", \"arguments\": {\"path\": \"/machine/peripheral\"}}", "{\"return\": []}");
    assert_int_equal(t.cfg.nr_disks, 0);
    close(t.fd);
    qmp_server_free(t.m.qmp);
    loop_free(t.m.loop);
    qom_remove("/machine/unattached/device[0]");
    qemu_compat_clear(&t.q);
    config_clear(&t.cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_probe_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_kvm, setup_nokvm, teardown),
        cmocka_unit_test_setup_teardown(test_launch_replies, setup, teardown),
        cmocka_unit_test(test_boot_disk_detach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
