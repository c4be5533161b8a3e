/* The lifecycle QMP commands (vmm/machine_qmp.c) called directly, with the
 * QMP server replaced by stubs that record registrations and events:
 * run-state transitions and their events as QEMU 7.2 answers (stop in
 * prelaunch does nothing, cont while running sends nothing, a second stop no
 * second STOP), argument checking, and the reply shapes of query-status,
 * query-block, query-cpus-fast and query-pci. No VM runs (vm_live false,
 * or a VM struct with only a PCI host and fake vCPUs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "devices/pci/pci.h"
#include "devices/pci/pci_host.h"
#include "vmm/bus.h"
#include "vmm/machine.h"
#include "vmm/qmp.h"
#include "vmm/vcpu.h"

/* ---- stubs for vmm/qmp.c ---- */
GQuark qmp_error_quark(void)
{
    return g_quark_from_static_string("qmp-error-quark");
}

struct reg {
    const char *name;
    qmp_cmd_fn fn;
    void *opaque;
};
static struct reg regs[32];
static unsigned nr_regs;
static GString *events;

void qmp_register(struct qmp_server *s, const char *name, qmp_cmd_fn fn, void *opaque, unsigned flags)
{
    (void)s;
    (void)flags;
    assert_true(nr_regs < G_N_ELEMENTS(regs));
    regs[nr_regs++] = (struct reg){ name, fn, opaque };
}

static char *to_json(JsonNode *n)
{
    return json_to_string(n, FALSE);
}

/* vmm/cpu_qmp.c (machine.c hands it each new VM) would pull in the real server. */
void cpu_qmp_vm_created(struct machine *m)
{
    (void)m;
}

/* vmm/migration.c (machine.c loads a restored VM through it) likewise. */
int migration_incoming_load(struct machine *m, GError **err)
{
    (void)m;
    (void)err;
    return 0;
}

void qmp_emit_event(struct qmp_server *s, const char *name, JsonNode *data)
{
    (void)s;
    g_string_append(events, name);
    if (data) {
        g_autofree char *j = to_json(data);
        g_string_append_printf(events, " %s", j);
        json_node_unref(data);
    }
    g_string_append_c(events, ';');
}

/* ---- helpers ---- */
static struct machine *new_machine(struct vm_config *cfg, enum machine_run_state st)
{
    struct machine *m = g_new0(struct machine, 1);
    m->cfg = cfg;
    m->state = st;
    nr_regs = 0;
    machine_qmp_register((struct qmp_server *)m, m);   /* never dereferenced by the stubs */
    g_string_truncate(events, 0);
    return m;
}

/* Runs `name` with the JSON arguments; returns the reply as JSON text
 * ("{}" for NULL) or "error: DESC". */
static char *run(struct machine *m, const char *name, const char *args_json)
{
    for (unsigned i = 0; i < nr_regs; i++) {
        if (strcmp(regs[i].name, name) != 0)
            continue;
        g_autoptr(JsonNode) an = json_from_string(args_json ? args_json : "{}", NULL);
        assert_non_null(an);
        struct qmp_cmd_ctx ctx = { .opaque = regs[i].opaque };
        GError *err = NULL;
        JsonNode *r = regs[i].fn(&ctx, json_node_get_object(an), &err);
        if (err) {
            assert_null(r);
            assert_true(err->domain == QMP_ERROR);
            char *s = g_strdup_printf("error: %s", err->message);
            g_error_free(err);
            return s;
        }
        if (!r)
            return g_strdup("{}");
        char *s = to_json(r);
        json_node_unref(r);
        return s;
    }
    fail_msg("command %s not registered", name);
    return NULL;
}

#define assert_reply(m, cmd, args, want)            \
    do {                                            \
        g_autofree char *got_ = run(m, cmd, args);  \
        assert_string_equal(got_, want);            \
    } while (0)

#define RUNNING "{\"status\":\"running\",\"singlestep\":false,\"running\":true}"
#define PAUSED "{\"status\":\"paused\",\"singlestep\":false,\"running\":false}"
#define PRELAUNCH "{\"status\":\"prelaunch\",\"singlestep\":false,\"running\":false}"

static void registers_all(void **state)
{
    (void)state;
    struct vm_config cfg = { 0 };
    g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_RUNNING);
    const char *want[] = { "stop", "cont", "query-status", "system_powerdown", "system_reset",
                           "query-cpus-fast", "query-block", "query-pci" };
    assert_int_equal(nr_regs, G_N_ELEMENTS(want));
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++)
        assert_string_equal(regs[i].name, want[i]);
    assert_non_null(m->emit_event);
}

static void stop_cont_events(void **state)
{
    (void)state;
    struct vm_config cfg = { 0 };
    g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_RUNNING);
    assert_reply(m, "query-status", NULL, RUNNING);
    assert_reply(m, "cont", NULL, "{}");            /* running: nothing */
    assert_string_equal(events->str, "");
    assert_reply(m, "stop", NULL, "{}");
    assert_reply(m, "query-status", NULL, PAUSED);
    assert_reply(m, "stop", NULL, "{}");            /* idempotent: no second STOP */
    assert_string_equal(events->str, "STOP;");
    assert_reply(m, "cont", NULL, "{}");
    assert_reply(m, "query-status", NULL, RUNNING);
    assert_string_equal(events->str, "STOP;RESUME;");
}

static void prelaunch(void **state)
{
    (void)state;
    struct vm_config cfg = { 0 };
    g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_PRELAUNCH);
    assert_reply(m, "query-status", NULL, PRELAUNCH);
    assert_reply(m, "stop", NULL, "{}");            /* QEMU: stays prelaunch, no event */
    assert_reply(m, "query-status", NULL, PRELAUNCH);
    assert_string_equal(events->str, "");
    assert_reply(m, "cont", NULL, "{}");
    assert_reply(m, "query-status", NULL, RUNNING);
    assert_string_equal(events->str, "RESUME;");
}

static void after_shutdown(void **state)
{
    (void)state;
    struct vm_config cfg = { 0 };
    g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_SHUTDOWN);
    assert_reply(m, "cont", NULL, "error: Resetting the Virtual Machine is required");
    assert_reply(m, "query-status", NULL, "{\"status\":\"shutdown\",\"singlestep\":false,\"running\":false}");
    m->state = RUN_STATE_INTERNAL_ERROR;
    assert_reply(m, "cont", NULL, "error: Resetting the Virtual Machine is required");
    assert_reply(m, "query-status", NULL,
                 "{\"status\":\"internal-error\",\"singlestep\":false,\"running\":false}");
    assert_string_equal(events->str, "");
}

/* A signal or quit while a reset of the VM is under way (a vCPU asked for
 * it, the loop has not handled it yet): vmm ends with SHUTDOWN, the reset
 * does not swallow it (once, a guest reset loop sent SIGTERM hung on). A
 * poweroff under way keeps its own event and the signal adds none. */
static void shutdown_during_reset(void **state)
{
    (void)state;
    const enum vm_stop_reason resets[] = { VM_STOP_RESET, VM_STOP_TRIPLE_FAULT, VM_STOP_HOST_RESET };
    for (unsigned i = 0; i < G_N_ELEMENTS(resets); i++) {
        struct vm_config cfg = { 0 };
        g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_RUNNING);
        m->vm_live = true;
        m->vm.stop_reason = resets[i];
        machine_shutdown(m, "host-signal");
        assert_string_equal(events->str, "SHUTDOWN {\"guest\":false,\"reason\":\"host-signal\"};");
        assert_int_equal(m->state, RUN_STATE_SHUTDOWN);
        assert_true(m->quit_after_reset);
        machine_shutdown(m, "host-qmp-quit");      /* a second one: no second SHUTDOWN */
        assert_string_equal(events->str, "SHUTDOWN {\"guest\":false,\"reason\":\"host-signal\"};");
    }
    struct vm_config cfg = { 0 };
    g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_RUNNING);
    m->vm_live = true;
    m->vm.stop_reason = VM_STOP_POWEROFF;
    machine_shutdown(m, "host-signal");
    assert_string_equal(events->str, "");
    assert_false(m->quit_after_reset);
}

static void unexpected_args(void **state)
{
    (void)state;
    struct vm_config cfg = { 0 };
    g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_RUNNING);
    const char *cmds[] = { "stop", "cont", "query-status", "system_powerdown", "system_reset",
                           "query-cpus-fast", "query-block", "query-pci" };
    for (unsigned i = 0; i < G_N_ELEMENTS(cmds); i++)
        assert_reply(m, cmds[i], "{\"force\": true}", "error: Parameter 'force' is unexpected");
    assert_reply(m, "query-status", NULL, RUNNING);   /* stop did not happen */
    assert_string_equal(events->str, "");
}

static void powerdown_without_vm(void **state)
{
    (void)state;
    struct vm_config cfg = { 0 };
    g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_RUNNING);
    assert_reply(m, "system_powerdown", NULL, "{}");
    assert_string_equal(events->str, "POWERDOWN;");
    assert_reply(m, "system_reset", NULL, "{}");      /* no VM: nothing to reset, no event yet */
    assert_string_equal(events->str, "POWERDOWN;");
}

static void query_block(void **state)
{
    (void)state;
    char path[] = "/tmp/vmm-test-qb.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    close(fd);
    struct disk_config disks[2] = {
        { .id = "disk0", .path = path, .cache = BLOCK_CACHE_WRITEBACK },
        { .id = "d1", .path = path, .readonly = true, .cache = BLOCK_CACHE_NONE },
    };
    struct vm_config cfg = { .disks = disks, .nr_disks = 2 };
    g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_RUNNING);
    g_autofree char *got = run(m, "query-block", NULL);
    g_autofree char *want = g_strdup_printf(
        "[{\"io-status\":\"ok\",\"device\":\"\",\"locked\":false,\"removable\":false,\"inserted\":{\"iops_rd\":0,"
        "\"detect_zeroes\":\"off\",\"image\":{\"virtual-size\":1048576,\"filename\":\"%s\",\"format\":\"raw\","
        "\"actual-size\":0,\"dirty-flag\":false},\"iops_wr\":0,\"ro\":false,\"node-name\":\"disk0\","
        "\"backing_file_depth\":0,\"drv\":\"raw\",\"iops\":0,\"bps_wr\":0,\"write_threshold\":0,\"encrypted\":false,"
        "\"bps\":0,\"bps_rd\":0,\"cache\":{\"no-flush\":false,\"direct\":false,\"writeback\":true},\"file\":\"%s\"},"
        "\"qdev\":\"/machine/peripheral/disk0/virtio-backend\",\"type\":\"unknown\"},"
        "{\"io-status\":\"ok\",\"device\":\"\",\"locked\":false,\"removable\":false,\"inserted\":{\"iops_rd\":0,"
        "\"detect_zeroes\":\"off\",\"image\":{\"virtual-size\":1048576,\"filename\":\"%s\",\"format\":\"raw\","
        "\"actual-size\":0,\"dirty-flag\":false},\"iops_wr\":0,\"ro\":true,\"node-name\":\"d1\","
        "\"backing_file_depth\":0,\"drv\":\"raw\",\"iops\":0,\"bps_wr\":0,\"write_threshold\":0,\"encrypted\":false,"
        "\"bps\":0,\"bps_rd\":0,\"cache\":{\"no-flush\":false,\"direct\":true,\"writeback\":true},\"file\":\"%s\"},"
        "\"qdev\":\"/machine/peripheral/d1/virtio-backend\",\"type\":\"unknown\"}]",
        path, path, path, path);
    unlink(path);
    assert_string_equal(got, want);
    cfg.nr_disks = 0;
    assert_reply(m, "query-block", NULL, "[]");
}

static void query_cpus_fast(void **state)
{
    (void)state;
    struct vm_config cfg = { .cpus_boot = 2, .cpus_max = 2 };
    g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_RUNNING);
    assert_reply(m, "query-cpus-fast", NULL, "[]");  /* no VM */
    struct vcpu v[2] = { { .index = 0, .tid = 4242 }, { .index = 1, .tid = 4243 } };
    struct vcpu *vp[2] = { &v[0], &v[1] };
    m->vm.vcpus = vp;
    m->vm.max_vcpus = 2;
    m->vm_live = true;
    assert_reply(m, "query-cpus-fast", NULL,
                 "[{\"thread-id\":4242,\"props\":{\"core-id\":0,\"thread-id\":0,\"socket-id\":0},"
                 "\"qom-path\":\"/machine/unattached/device[0]\",\"cpu-index\":0,\"target\":\"x86_64\"},"
                 "{\"thread-id\":4243,\"props\":{\"core-id\":1,\"thread-id\":0,\"socket-id\":0},"
                 "\"qom-path\":\"/machine/unattached/device[1]\",\"cpu-index\":1,\"target\":\"x86_64\"}]");
    m->vm_live = false;
}

static void nop_bar_read(struct pci_device *d, unsigned bar, uint64_t off, void *data, unsigned size)
{
    (void)d, (void)bar, (void)off;
    memset(data, 0, size);
}

static void nop_bar_write(struct pci_device *d, unsigned bar, uint64_t off, const void *data, unsigned size)
{
    (void)d, (void)bar, (void)off, (void)data, (void)size;
}

static const struct pci_device_ops nop_ops = { .bar_read = nop_bar_read, .bar_write = nop_bar_write };

static void query_pci(void **state)
{
    (void)state;
    struct vm_config cfg = { 0 };
    g_autofree struct machine *m = new_machine(&cfg, RUN_STATE_RUNNING);
    assert_reply(m, "query-pci", NULL, "[]");        /* no VM */
    struct bus pio, mmio;
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    struct pci_host_config pc = {
        .ecam = { 0xb0000000, 1 << 20 },
        .mmio32 = { 0xc0000000, 0x10000000 },
        .mmio64 = { 1ull << 36, 1ull << 32 },
        .io = { 0x1000, 0xf000 },
    };
    struct pci_host *h = pci_host_create(&pio, &mmio, &pc);
    assert_non_null(h);
    struct pci_device d;
    /* virtio-blk's identity: class 0x010000, subsystem 0x1af4:0x0002 */
    pci_device_init(&d, "disk0", &nop_ops, NULL, 0x1af4, 0x1042, 0x010000, 1);
    pci_device_set_subsystem(&d, 0x1af4, 0x0002);
    pci_cfg_set(&d, 0x3d, 1, 1);    /* INTA */
    assert_int_equal(pci_device_add_bar(&d, 0, PCI_BAR_IO, false, 32), 0);
    assert_int_equal(pci_device_add_bar(&d, 4, PCI_BAR_MEM64, true, 0x4000), 0);
    assert_int_equal(pci_host_add_device(h, &d, 2), 2 << 3);
    m->vm.pci = h;
    m->vm_live = true;
    /* Decoding is off until the guest sets the command register: -1. */
    const char *head =
        "[{\"bus\":0,\"devices\":[{\"irq_pin\":0,\"bus\":0,\"qdev_id\":\"\",\"slot\":0,\"class_info\":{\"class\":1536,"
        "\"desc\":\"Host bridge\"},\"id\":{\"device\":8,\"subsystem-vendor\":0,\"vendor\":6966,\"subsystem\":0},"
        "\"function\":0,\"regions\":[]},"
        "{\"irq_pin\":1,\"bus\":0,\"qdev_id\":\"disk0\",\"irq\":0,\"slot\":2,\"class_info\":{\"class\":256,"
        "\"desc\":\"SCSI controller\"},\"id\":{\"device\":4162,\"subsystem-vendor\":6900,\"vendor\":6900,"
        "\"subsystem\":2},\"function\":0,\"regions\":[";
    g_autofree char *off = g_strdup_printf(
        "%s{\"bar\":0,\"size\":32,\"address\":-1,\"type\":\"io\"},{\"prefetch\":true,\"mem_type_64\":true,\"bar\":4,"
        "\"size\":16384,\"address\":-1,\"type\":\"memory\"}]}]}]", head);
    assert_reply(m, "query-pci", NULL, off);
    /* The guest enables I/O and memory decoding (ECAM, command register). */
    uint16_t cmd = 3;
    assert_true(bus_write(&mmio, 0xb0000000 + (2 << 15) + PCI_CFG_COMMAND, &cmd, 2));
    g_autofree char *on = g_strdup_printf(
        "%s{\"bar\":0,\"size\":32,\"address\":%llu,\"type\":\"io\"},{\"prefetch\":true,\"mem_type_64\":true,"
        "\"bar\":4,\"size\":16384,\"address\":%llu,\"type\":\"memory\"}]}]}]",
        head, (unsigned long long)pci_device_bar_addr(&d, 0), (unsigned long long)pci_device_bar_addr(&d, 4));
    assert_true(pci_device_bar_addr(&d, 0) >= 0x1000 && pci_device_bar_addr(&d, 0) < 0x10000);
    assert_true(pci_device_bar_addr(&d, 4) >= (1ull << 36));
    assert_reply(m, "query-pci", NULL, on);
    m->vm_live = false;
    struct device hd = pci_host_device(h);
    hd.ops->destroy(hd.dev);
    bus_destroy(&pio);
    bus_destroy(&mmio);
}

int main(void)
{
    events = g_string_new(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registers_all),
        cmocka_unit_test(stop_cont_events),
        cmocka_unit_test(prelaunch),
        cmocka_unit_test(after_shutdown),
        cmocka_unit_test(shutdown_during_reset),
        cmocka_unit_test(unexpected_args),
        cmocka_unit_test(powerdown_without_vm),
        cmocka_unit_test(query_block),
        cmocka_unit_test(query_cpus_fast),
        cmocka_unit_test(query_pci),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    g_string_free(events, TRUE);
    return r;
}
