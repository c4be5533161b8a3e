/* device_add / device_del dispatch (vmm/device_qmp.c) and the CPU kind
 * (vmm/cpu_qmp.c) through a real QMP server on a socket pair, with no VM:
 * query-hotpluggable-cpus, every refusal QEMU 7.2 gives for a CPU (checked
 * against it), ids and QOM paths, duplicate ids across kinds, and routing
 * by driver to the kind that takes it. Plugging in a vCPU needs KVM: the
 * guest test cpuhp does that. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/config.h"
#include "vmm/cpu_qmp.h"
#include "vmm/device_qmp.h"
#include "vmm/loop.h"
#include "vmm/machine.h"
#include "vmm/qmp.h"

struct t {
    struct loop *loop;
    struct qmp_server *s;
    struct vm_config cfg;
    struct machine m;
    int fd;
};

/* A second kind: driver "x-fake", owns the id "fake0", records calls. */
static unsigned fake_adds, fake_dels;
static bool fake_takes(struct machine *m, const char *driver)
{
    return strcmp(driver, "x-fake") == 0;
}
static bool fake_owns(struct machine *m, const char *id)
{
    return strcmp(id, "fake0") == 0;
}
static bool fake_add(struct machine *m, const char *driver, JsonObject *args, GError **err)
{
    fake_adds++;
    return true;
}
static bool fake_del(struct machine *m, const char *id, GError **err)
{
    fake_dels++;
    return true;
}
static const struct device_qmp_kind fake_kind = { "fake", fake_takes, fake_owns, fake_add, fake_del };

static char *read_msg(int fd)
{
    GString *b = g_string_new(NULL);
    while (b->len < 2 || b->str[b->len - 2] != '\r' || b->str[b->len - 1] != '\n') {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        assert_int_equal(poll(&p, 1, 10000), 1);    /* a reply that never came */
        char c;
        assert_int_equal(recv(fd, &c, 1, 0), 1);
        g_string_append_c(b, c);
    }
    g_string_truncate(b, b->len - 2);
    return g_string_free(b, FALSE);
}

static void exchange(struct t *t, const char *cmd, const char *want)
{
    g_autofree char *line = g_strdup_printf("%s\r\n", cmd);
    assert_int_equal(send(t->fd, line, strlen(line), 0), (ssize_t)strlen(line));
    assert_int_equal(loop_run_once(t->loop), 0);
    g_autofree char *got = read_msg(t->fd);
    if (strcmp(got, want) != 0)
        fail_msg("%s\n  got:  %s\n  want: %s", cmd, got, want);
}

static int setup(void **state)
{
    struct t *t = g_new0(struct t, 1);
    config_init_defaults(&t->cfg);
    t->cfg.cpus_boot = 2;
    t->cfg.cpus_max = 4;
    t->m.cfg = &t->cfg;
    t->loop = loop_new(NULL);
    assert_non_null(t->loop);
    t->m.loop = t->loop;
    t->s = qmp_server_new(t->loop);
    cpu_qmp_register(t->s, &t->m);
    device_qmp_register_kind(t->s, &t->m, &fake_kind);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_non_null(qmp_server_add_client(t->s, sv[1]));
    t->fd = sv[0];
    g_free(read_msg(t->fd));
    exchange(t, "{\"execute\": \"qmp_capabilities\"}", "{\"return\": {}}");
    fake_adds = fake_dels = 0;
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t *t = *state;
    close(t->fd);
    qmp_server_free(t->s);
    loop_free(t->loop);
    config_clear(&t->cfg);
    g_free(t);
    return 0;
}

#define ERR(desc) "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" desc "\"}}"
#define ADD(props) "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"host-x86_64-cpu\", " props "}}"

/* The slots, last first; qom-path only where a CPU is, at the path its
 * origin gives it; the type follows --cpu-model. */
static void test_query_hotpluggable_cpus(void **state)
{
    struct t *t = *state;
    t->cfg.cpu_ids[3] = g_strdup("cpu3");
    exchange(t, "{\"execute\": \"query-hotpluggable-cpus\"}",
             "{\"return\": [{\"props\": {\"core-id\": 3, \"thread-id\": 0, \"socket-id\": 0}, \"vcpus-count\": 1, "
             "\"qom-path\": \"/machine/peripheral/cpu3\", \"type\": \"host-x86_64-cpu\"}, "
             "{\"props\": {\"core-id\": 2, \"thread-id\": 0, \"socket-id\": 0}, \"vcpus-count\": 1, "
             "\"type\": \"host-x86_64-cpu\"}, "
             "{\"props\": {\"core-id\": 1, \"thread-id\": 0, \"socket-id\": 0}, \"vcpus-count\": 1, "
             "\"qom-path\": \"/machine/unattached/device[1]\", \"type\": \"host-x86_64-cpu\"}, "
             "{\"props\": {\"core-id\": 0, \"thread-id\": 0, \"socket-id\": 0}, \"vcpus-count\": 1, "
             "\"qom-path\": \"/machine/unattached/device[0]\", \"type\": \"host-x86_64-cpu\"}]}");
    g_free(t->cfg.cpu_ids[3]);
    t->cfg.cpu_ids[3] = g_strdup("");   /* added without an id */
    t->cfg.cpu_model = CPU_MODEL_BASELINE;
    t->cfg.cpus_boot = 1;
    t->cfg.cpus_max = 1;
    exchange(t, "{\"execute\": \"query-hotpluggable-cpus\"}",
             "{\"return\": [{\"props\": {\"core-id\": 0, \"thread-id\": 0, \"socket-id\": 0}, \"vcpus-count\": 1, "
             "\"qom-path\": \"/machine/unattached/device[0]\", \"type\": \"qemu64-x86_64-cpu\"}]}");
    t->cfg.cpus_max = 4;
    g_autofree char *anon = config_cpu_qom_path(&t->cfg, 3);
    assert_string_equal(anon, "/machine/peripheral-anon/cpu[3]");
    assert_null(config_cpu_qom_path(&t->cfg, 2));
    exchange(t, "{\"execute\": \"query-hotpluggable-cpus\", \"arguments\": {\"x\": 1}}",
             ERR("Parameter 'x' is unexpected"));
}

/* Each refusal, in the order QEMU checks. No VM exists: every one of them
 * must come before any attempt to plug. */
static void test_device_add_refused(void **state)
{
    struct t *t = *state;
    t->cfg.cpu_ids[3] = g_strdup("cpu3");
    exchange(t, "{\"execute\": \"device_add\", \"arguments\": {\"id\": \"a\"}}", ERR("Parameter 'driver' is missing"));
    exchange(t, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"nosuch\"}}",
             ERR("'nosuch' is not a valid device model name"));
    exchange(t, ADD("\"id\": \"1bad\", \"socket-id\": 0, \"core-id\": 2, \"thread-id\": 0"),
             ERR("Parameter 'id' expects an identifier"));
    exchange(t, ADD("\"id\": \"cpu3\", \"socket-id\": 0, \"core-id\": 2, \"thread-id\": 0"),
             ERR("Duplicate device ID 'cpu3'"));
    exchange(t, ADD("\"id\": \"fake0\", \"socket-id\": 0, \"core-id\": 2, \"thread-id\": 0"),
             ERR("Duplicate device ID 'fake0'"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": 0, \"core-id\": 2, \"thread-id\": 0, \"foo\": 1"),
             ERR("Property 'host-x86_64-cpu.foo' not found"));
    exchange(t, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"max-x86_64-cpu\", \"id\": \"a\"}}",
             ERR("Invalid CPU type, expected cpu type: 'host-x86_64-cpu'"));
    exchange(t, ADD("\"id\": \"a\", \"core-id\": 2, \"thread-id\": 0"), ERR("CPU socket-id is not set"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": -1, \"core-id\": 2, \"thread-id\": 0"),
             ERR("CPU socket-id is not set"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": 1, \"core-id\": 2, \"thread-id\": 0"),
             ERR("Invalid CPU socket-id: 1 must be in range 0:0"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": 0, \"thread-id\": 0"), ERR("CPU core-id is not set"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": 0, \"core-id\": 4, \"thread-id\": 0"),
             ERR("Invalid CPU core-id: 4 must be in range 0:3"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": 0, \"core-id\": \"x\", \"thread-id\": 0"),
             ERR("Parameter 'core-id' expects integer"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": 0, \"core-id\": 2"), ERR("CPU thread-id is not set"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": 0, \"core-id\": 2, \"thread-id\": 1"),
             ERR("Invalid CPU thread-id: 1 must be in range 0:0"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": 0, \"core-id\": 1, \"thread-id\": 0"),
             ERR("CPU[1] with APIC ID 1 exists"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": 0, \"core-id\": 3, \"thread-id\": 0"),
             ERR("CPU[3] with APIC ID 3 exists"));
    exchange(t, ADD("\"id\": \"a\", \"socket-id\": 0, \"core-id\": 2, \"thread-id\": 0"),
             ERR("no VM is running to plug CPU 2 into"));
    assert_null(t->cfg.cpu_ids[2]);     /* nothing recorded */
    assert_int_equal(fake_adds, 0);
}

/* device_del finds CPUs by id or QOM path; boot CPUs stay; other ids go to
 * the kind that owns them; unknown ones are DeviceNotFound. */
static void test_device_del(void **state)
{
    struct t *t = *state;
    t->cfg.cpu_ids[3] = g_strdup("cpu3");
    exchange(t, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"/machine/unattached/device[0]\"}}",
             ERR("Boot CPU is unpluggable"));
    exchange(t, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"/machine/unattached/device[1]\"}}",
             ERR("CPU 1 was there at boot (--cpus boot=2): only hot-added CPUs can be unplugged"));
    exchange(t, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"cpu3\"}}",
             ERR("no VM is running to unplug CPU 3 from"));
    exchange(t, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"/machine/peripheral/cpu3\"}}",
             ERR("no VM is running to unplug CPU 3 from"));
    exchange(t, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"cpu2\"}}",
             "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'cpu2' not found\"}}");
    exchange(t, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"/machine/unattached/device[2]\"}}",
             "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device '/machine/unattached/device[2]' not "
             "found\"}}");
    exchange(t, "{\"execute\": \"device_del\", \"arguments\": {}}", ERR("Parameter 'id' is missing"));
    exchange(t, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"fake0\", \"x\": 1}}",
             ERR("Parameter 'x' is unexpected"));
    exchange(t, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"fake0\"}}", "{\"return\": {}}");
    assert_int_equal(fake_dels, 1);
    exchange(t, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"x-fake\", \"id\": \"fake1\"}}",
             "{\"return\": {}}");
    assert_int_equal(fake_adds, 1);
    assert_string_equal(t->cfg.cpu_ids[3], "cpu3");
}

static void test_id_wellformed(void **state)
{
    assert_true(device_qmp_id_wellformed("cpu-0-2-0"));
    assert_true(device_qmp_id_wellformed("a.b_c-1"));
    assert_false(device_qmp_id_wellformed(""));
    assert_false(device_qmp_id_wellformed("1a"));
    assert_false(device_qmp_id_wellformed("a b"));
    assert_false(device_qmp_id_wellformed("a/b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_query_hotpluggable_cpus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_add_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_del, setup, teardown),
        cmocka_unit_test(test_id_wellformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
