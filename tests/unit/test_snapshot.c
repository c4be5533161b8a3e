/* Snapshot files without KVM (vmm/snapshot.c): the vm_config round-trips
 * through its section, and snapshot_restore_open refuses, with one line
 * naming the problem, every broken snapshot directory: missing, no state
 * file, corrupted or truncated state, a newer format or section version, no
 * memory file, a memory file of the wrong size, a --serial that would take
 * the serial port away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <glib/gstdio.h>
#include <linux/kvm.h>
#include <string.h>
#include <unistd.h>

#include "vmm/snapshot.h"
#include "vmm/state.h"

#define RAM (8ull << 20)

static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
    }
    return ~crc;
}

static void sample_config(struct vm_config *c)
{
    config_init_defaults(c);
    c->name = g_strdup("guest-1");
    config_parse_uuid("978C6AF3-B5F0-4591-A637-630869349030", c->uuid);
    c->kernel = g_strdup("/boot/vmlinuz");
    c->initrd = NULL;
    c->cmdline = g_strdup("console=ttyS0 quiet");
    c->cpus_boot = 2;
    c->cpus_max = 4;
    c->cpu_ids[3] = g_strdup("cpu3");
    c->cpu_model = CPU_MODEL_BASELINE;
    c->nested = NESTED_OFF;
    c->mem_size = RAM;
    c->mem_shared = true;
    c->serial_mode = SERIAL_FILE;
    c->serial_path = g_strdup("/tmp/serial.log");
    c->console_mode = SERIAL_OFF;
    c->rng = true;
    c->nr_iothreads = 1;
    c->iothreads = g_new0(char *, 2);
    c->iothreads[0] = g_strdup("io0");
    c->nr_disks = 2;
    c->disks = g_new0(struct disk_config, 2);
    c->disks[0] = (struct disk_config){ .id = g_strdup("disk0"), .path = g_strdup("/tmp/a.img"), .aio = BLOCK_AIO_NATIVE,
                                        .cache = BLOCK_CACHE_NONE, .num_queues = 2, .serial = g_strdup("SER1"),
                                        .iothread = g_strdup("io0"), .pci_slot = 7, .node_name = g_strdup("n1") };
    c->disks[1] = (struct disk_config){ .id = g_strdup("d1"), .path = g_strdup("/tmp/b.img"), .readonly = true,
                                        .num_queues = 1 };
    c->nr_nets = 1;
    c->nets = g_new0(struct net_config, 1);
    c->nets[0] = (struct net_config){ .id = g_strdup("net0"), .tap = g_strdup("tap7"), .fd = -1, .mac_set = true,
                                      .mac = { 0x52, 0x54, 0, 1, 2, 3 }, .num_queues = 2, .pci_slot = 9 };
    c->test_exit = true;
    c->reboot = REBOOT_EXIT;
}

static void test_config_round_trip(void **state)
{
    struct vm_config a, b;
    sample_config(&a);
    struct state_writer *w = state_writer_new();
    snapshot_config_save(w, &a);
    g_autoptr(GBytes) s = state_writer_finish(w);
    struct state_reader *r = state_reader_new(s, NULL);
    config_init_defaults(&b);
    g_autoptr(GError) err = NULL;
    assert_int_equal(snapshot_config_load(r, &b, &err), 0);
    assert_true(state_reader_at_end(r));
    state_reader_free(r);
    assert_string_equal(b.name, "guest-1");
    assert_string_equal(b.uuid, "978c6af3-b5f0-4591-a637-630869349030");
    assert_string_equal(b.kernel, "/boot/vmlinuz");
    assert_null(b.initrd);
    assert_string_equal(b.cmdline, "console=ttyS0 quiet");
    assert_int_equal(b.cpus_boot, 2);
    assert_int_equal(b.cpus_max, 4);
    assert_null(b.cpu_ids[2]);
    assert_string_equal(b.cpu_ids[3], "cpu3");
    assert_int_equal(b.cpu_model, CPU_MODEL_BASELINE);
    assert_int_equal(b.nested, NESTED_OFF);
    assert_true(b.mem_size == RAM);
    assert_true(b.mem_shared);
    assert_false(b.mem_hugepages);
    assert_int_equal(b.serial_mode, SERIAL_FILE);
    assert_string_equal(b.serial_path, "/tmp/serial.log");
    assert_int_equal(b.console_mode, SERIAL_OFF);
    assert_true(b.rng);
    assert_int_equal(b.nr_iothreads, 1);
    assert_string_equal(b.iothreads[0], "io0");
    assert_int_equal(b.nr_disks, 2);
    assert_string_equal(b.disks[0].id, "disk0");
    assert_string_equal(b.disks[0].path, "/tmp/a.img");
    assert_int_equal(b.disks[0].aio, BLOCK_AIO_NATIVE);
    assert_int_equal(b.disks[0].cache, BLOCK_CACHE_NONE);
    assert_int_equal(b.disks[0].num_queues, 2);
    assert_string_equal(b.disks[0].serial, "SER1");
    assert_string_equal(b.disks[0].iothread, "io0");
    assert_true(b.disks[1].readonly);
    assert_null(b.disks[1].serial);
    /* hot-plugged devices keep their slot and block node name */
    assert_int_equal(b.disks[0].pci_slot, 7);
    assert_string_equal(b.disks[0].node_name, "n1");
    assert_int_equal(b.disks[1].pci_slot, 0);
    assert_null(b.disks[1].node_name);
    assert_int_equal(b.nets[0].pci_slot, 9);
    assert_int_equal(b.nr_nets, 1);
    assert_string_equal(b.nets[0].tap, "tap7");
    assert_int_equal(b.nets[0].fd, -1);
    assert_true(b.nets[0].mac_set);
    assert_memory_equal(b.nets[0].mac, a.nets[0].mac, 6);
    assert_int_equal(b.nets[0].num_queues, 2);
    assert_true(b.test_exit);
    assert_int_equal(b.reboot, REBOOT_EXIT);
    config_clear(&a);
    config_clear(&b);
}

/* load_with CLI_NETS: the saved config `a` loaded over a config whose
 * --net list (id, tap, fd) is given; returns the load's result. */
static int load_with(const struct vm_config *a, struct vm_config *b, const struct net_config *cli, unsigned n,
                     GError **err)
{
    struct state_writer *w = state_writer_new();
    snapshot_config_save(w, a);
    g_autoptr(GBytes) s = state_writer_finish(w);
    struct state_reader *r = state_reader_new(s, NULL);
    config_init_defaults(b);
    b->nr_nets = n;
    b->nets = g_new0(struct net_config, MAX(n, 1u));
    for (unsigned i = 0; i < n; i++)
        b->nets[i] = (struct net_config){ .id = g_strdup(cli[i].id), .tap = g_strdup(cli[i].tap), .fd = cli[i].fd,
                                          .num_queues = 1 };
    int ret = snapshot_config_load(r, b, err);
    state_reader_free(r);
    return ret;
}

/* A NIC on an inherited fd: saved as "on an fd", never its number; the
 * restoring command line must give it a backend (--net fd=M,id=ID), and
 * may give any saved NIC a new one, by id. */
static void test_config_net_backends(void **state)
{
    struct vm_config a, b;
    sample_config(&a);
    a.nets[0].num_queues = 1;
    a.nets = g_renew(struct net_config, a.nets, 2);
    a.nets[1] = (struct net_config){ .id = g_strdup("lan"), .fd = 5, .num_queues = 1 };
    a.nr_nets = 2;
    g_autoptr(GError) err = NULL;

    /* no backend for the fd NIC */
    assert_int_equal(load_with(&a, &b, NULL, 0, &err), -1);
    assert_non_null(strstr(err->message, "NIC lan was on an inherited fd"));
    assert_non_null(strstr(err->message, "--net fd=N,id=lan"));
    config_clear(&b);
    g_clear_error(&err);

    /* a new fd for it; the tap NIC keeps its tap */
    const struct net_config fd9 = { .id = "lan", .fd = 9 };
    assert_int_equal(load_with(&a, &b, &fd9, 1, &err), 0);
    assert_int_equal(b.nr_nets, 2);
    assert_string_equal(b.nets[0].tap, "tap7");
    assert_int_equal(b.nets[0].fd, -1);
    assert_string_equal(b.nets[1].id, "lan");
    assert_null(b.nets[1].tap);
    assert_int_equal(b.nets[1].fd, 9);
    config_clear(&b);

    /* both overridden: the tap NIC onto an fd, the fd NIC onto a tap */
    const struct net_config both[] = { { .id = "net0", .fd = 4 }, { .id = "lan", .tap = "tapx", .fd = -1 } };
    assert_int_equal(load_with(&a, &b, both, 2, &err), 0);
    assert_null(b.nets[0].tap);
    assert_int_equal(b.nets[0].fd, 4);
    assert_string_equal(b.nets[1].tap, "tapx");
    assert_int_equal(b.nets[1].fd, -1);
    config_clear(&b);

    /* an id the saved machine does not have */
    const struct net_config bad[] = { { .id = "lan", .fd = 9 }, { .id = "wan", .fd = 10 } };
    assert_int_equal(load_with(&a, &b, bad, 2, &err), -1);
    assert_string_equal(err->message, "--net id=wan: the saved machine has no NIC of that id (its NICs: net0, lan)");
    config_clear(&b);
    g_clear_error(&err);

    /* an fd for a multi-queue NIC */
    a.nets[0].num_queues = 2;
    const struct net_config mq = { .id = "net0", .fd = 4 };
    const struct net_config two[] = { mq, fd9 };
    assert_int_equal(load_with(&a, &b, two, 2, &err), -1);
    assert_non_null(strstr(err->message, "2 queue pairs"));
    config_clear(&b);
    config_clear(&a);
}

/* A CPUID table: two leaves. */
static const struct kvm_cpuid2 *sample_cpuid(void)
{
    static struct {
        struct kvm_cpuid2 h;
        struct kvm_cpuid_entry2 e[2];
    } t = { .h = { .nent = 2 },
            .e = { { .function = 1, .eax = 0x806f8, .ecx = 0x80000001, .edx = 0x10 },
                   { .function = 7, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = 0x209 } } };
    return &t.h;
}

/* A snapshot directory with a good state (header and config only: what
 * snapshot_restore_open reads) and a sparse memory file of mem bytes. */
static char *make_dir(uint64_t mem, uint32_t format_bump, uint32_t section_version)
{
    char *dir = g_dir_make_tmp("vmm-snap-XXXXXX", NULL);
    assert_non_null(dir);
    struct vm_config c;
    sample_config(&c);
    struct state_writer *w = state_writer_new();
    state_begin_section(w, "snapshot", section_version);
    state_put_u64(w, RAM);
    state_put_u32(w, 2);
    state_end_section(w);
    snapshot_config_save(w, &c);
    config_clear(&c);
    snapshot_cpuid_save(w, sample_cpuid());
    g_autoptr(GBytes) s = state_writer_finish(w);
    gsize n;
    const void *data = g_bytes_get_data(s, &n);
    uint8_t *p = g_memdup2(data, n);
    if (format_bump) {
        p[8] = (uint8_t)(p[8] + format_bump);
        uint32_t crc = crc32_ieee(p, n - 4);
        memcpy(p + n - 4, &crc, 4);
    }
    g_autofree char *sp = g_build_filename(dir, "state", NULL);
    assert_true(g_file_set_contents(sp, (const char *)p, (gssize)n, NULL));
    g_free(p);
    g_autofree char *mp = g_build_filename(dir, "memory", NULL);
    int fd = open(mp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)mem), 0);
    close(fd);
    return dir;
}

static void rm_dir(char *dir)
{
    g_autofree char *sp = g_build_filename(dir, "state", NULL);
    g_autofree char *mp = g_build_filename(dir, "memory", NULL);
    g_unlink(sp);
    g_unlink(mp);
    g_rmdir(dir);
    g_free(dir);
}

static void expect_refused(const char *dir, struct vm_config *c, const char *needle)
{
    g_autoptr(GError) err = NULL;
    struct snapshot_restore *s = snapshot_restore_open(dir, c, &err);
    assert_null(s);
    assert_non_null(err);
    assert_null(strchr(err->message, '\n'));
    if (!strstr(err->message, needle))
        fail_msg("\"%s\" does not mention \"%s\"", err->message, needle);
    assert_int_equal(err->domain, CONFIG_ERROR);  /* exit status 2 */
}

static void test_restore_open_good(void **state)
{
    char *dir = make_dir(RAM, 0, SNAPSHOT_VERSION);
    struct vm_config c;
    config_init_defaults(&c);
    c.paused = true;    /* host-side options survive */
    g_autoptr(GError) err = NULL;
    struct snapshot_restore *s = snapshot_restore_open(dir, &c, &err);
    assert_non_null(s);
    assert_true(snapshot_restore_memory_fd(s) >= 0);
    assert_true(c.paused);
    assert_int_equal(c.cpus_boot, 2);
    assert_string_equal(c.disks[1].path, "/tmp/b.img");
    assert_int_equal(c.serial_mode, SERIAL_FILE);
    /* the guest's CPUID comes back as it was saved */
    assert_non_null(c.guest_cpuid);
    assert_int_equal(c.guest_cpuid->nent, 2);
    assert_memory_equal(c.guest_cpuid->entries, sample_cpuid()->entries, 2 * sizeof(struct kvm_cpuid_entry2));
    snapshot_restore_free(s);
    config_clear(&c);

    /* --serial on the restoring command line: a new backend for the port. */
    config_init_defaults(&c);
    c.serial_mode = SERIAL_PTY;
    c.serial_given = true;
    s = snapshot_restore_open(dir, &c, &err);
    if (!s)
        fail_msg("%s", err->message);
    assert_int_equal(c.serial_mode, SERIAL_PTY);
    assert_null(c.serial_path);
    snapshot_restore_free(s);
    config_clear(&c);

    /* ... but not taking the port away. */
    config_init_defaults(&c);
    c.serial_mode = SERIAL_OFF;
    c.serial_given = true;
    expect_refused(dir, &c, "has a serial port");
    config_clear(&c);
    rm_dir(dir);
}

static void test_restore_refusals(void **state)
{
    struct vm_config c;
    config_init_defaults(&c);
    expect_refused("/nonexistent/snap", &c, "not a directory");
    config_clear(&c);

    char *dir = make_dir(RAM, 0, SNAPSHOT_VERSION);
    g_autofree char *sp = g_build_filename(dir, "state", NULL);
    g_autofree char *mp = g_build_filename(dir, "memory", NULL);
    g_autofree char *good = NULL;
    gsize n;
    assert_true(g_file_get_contents(sp, &good, &n, NULL));

    /* One flipped byte in the config. */
    g_autofree char *bad = g_memdup2(good, n);
    bad[n / 2] ^= 0x40;
    assert_true(g_file_set_contents(sp, bad, (gssize)n, NULL));
    config_init_defaults(&c);
    expect_refused(dir, &c, "checksum");
    config_clear(&c);

    /* Truncated: a third of it. */
    assert_true(g_file_set_contents(sp, good, (gssize)(n / 3), NULL));
    config_init_defaults(&c);
    expect_refused(dir, &c, "corrupted");
    config_clear(&c);

    /* Empty. */
    assert_true(g_file_set_contents(sp, "", 0, NULL));
    config_init_defaults(&c);
    expect_refused(dir, &c, "not a vmm state stream");
    config_clear(&c);

    /* No state file. */
    g_unlink(sp);
    config_init_defaults(&c);
    expect_refused(dir, &c, "state");
    config_clear(&c);

    /* No memory file, then one of the wrong size. */
    assert_true(g_file_set_contents(sp, good, (gssize)n, NULL));
    g_unlink(mp);
    config_init_defaults(&c);
    expect_refused(dir, &c, "memory");
    config_clear(&c);
    int fd = open(mp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(ftruncate(fd, (off_t)RAM - 4096), 0);
    close(fd);
    config_init_defaults(&c);
    expect_refused(dir, &c, "the snapshot's RAM is 8388608");
    config_clear(&c);
    rm_dir(dir);

    /* A newer stream format, and a newer snapshot section (checksums right). */
    dir = make_dir(RAM, 1, SNAPSHOT_VERSION);
    config_init_defaults(&c);
    expect_refused(dir, &c, "newer than this vmm");
    config_clear(&c);
    rm_dir(dir);
    dir = make_dir(RAM, 0, SNAPSHOT_VERSION + 1);
    config_init_defaults(&c);
    expect_refused(dir, &c, "section 'snapshot' version 3 is newer");
    config_clear(&c);
    rm_dir(dir);
    /* An older one, from before the CPUID table was saved. */
    dir = make_dir(RAM, 0, 1);
    config_init_defaults(&c);
    expect_refused(dir, &c, "made by an older vmm, before the guest's CPUID was saved");
    config_clear(&c);
    rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_round_trip),
        cmocka_unit_test(test_config_net_backends),
        cmocka_unit_test(test_restore_open_good),
        cmocka_unit_test(test_restore_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
