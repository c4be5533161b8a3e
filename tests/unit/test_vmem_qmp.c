/* virtio-mem's control socket over a real QMP server on a socket pair:
 * qom-get/qom-set/qom-list of /machine/peripheral/vmem0 with QEMU 7.2's
 * replies and errors (checked against QEMU by the guest tier's virtio-mem
 * case), query-memory-devices, requested-size reaching the configuration
 * (kept across resets) and the live device, and MEMORY_DEVICE_SIZE_CHANGE:
 * its shape, at most one a second with the latest size, and back to 0 when
 * a new VM is attached. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/mem.h"
#include "vmm/loop.h"
#include "vmm/machine.h"
#include "vmm/memory.h"
#include "vmm/qmp.h"
#include "vmm/qom.h"
#include "vmm/vmem.h"
#include "vmm/vmem_qmp.h"
#include "tests/unit/qmp_loop_client.h"

#define MIB (1ULL << 20)
#define OK_EMPTY "{\"return\": {}}"

struct t {
    struct vm_config cfg;
    struct machine m;
    struct guest_memory gm;
    int fd;
};

static void emit(struct machine *m, const char *name, JsonNode *data)
{
    qmp_emit_event(m->qmp, name, data);
}

static char *read_msg(struct t *t)
{
    return qmp_loop_read_msg(t->fd, t->m.loop);
}

static void expect_nothing(struct t *t)
{
    char c;
    assert_int_equal(recv(t->fd, &c, 1, MSG_DONTWAIT), -1);
}

/* Sends one command, returns the reply. */
static char *cmd(struct t *t, const char *json)
{
    assert_int_equal(send(t->fd, json, strlen(json), 0), (ssize_t)strlen(json));
    return read_msg(t);
}

static void expect_reply(struct t *t, const char *json, const char *want)
{
    char *r = cmd(t, json);
    assert_string_equal(r, want);
    g_free(r);
}

static int setup_with(void **state, uint64_t hotplug)
{
    struct t *t = g_new0(struct t, 1);
    config_init_defaults(&t->cfg);
    t->cfg.mem_size = 128 * MIB;
    t->cfg.mem_hotplug_size = hotplug;
    t->m.cfg = &t->cfg;
    t->m.loop = loop_new(NULL);
    assert_non_null(t->m.loop);
    t->m.qmp = qmp_server_new(t->m.loop);
    t->m.emit_event = emit;
    vmem_qmp_register(t->m.qmp, &t->m);
    vmem_qmp_add_objects(&t->m);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_non_null(qmp_server_add_client(t->m.qmp, sv[1]));
    t->fd = sv[0];
    g_free(read_msg(t));    /* greeting */
    expect_reply(t, "{\"execute\": \"qmp_capabilities\"}", OK_EMPTY);
    *state = t;
    return 0;
}

static int setup(void **s) { return setup_with(s, 256 * MIB); }
static int setup_none(void **s) { return setup_with(s, 0); }

static int teardown(void **state)
{
    struct t *t = *state;
    if (t->m.vm.vmem)
        virtio_mem_free(t->m.vm.vmem);
    if (t->gm.base)
        guest_memory_destroy(&t->gm);
    qom_remove(VMEM_QOM_PATH);
    close(t->fd);
    qmp_server_free(t->m.qmp);
    loop_free(t->m.loop);
    g_free(t);
    return 0;
}

#define QOM_GET(prop) "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/machine/peripheral/vmem0\", " \
                      "\"property\": \"" prop "\"}}"
#define QOM_SET(prop, v) "{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"/machine/peripheral/vmem0\", " \
                         "\"property\": \"" prop "\", \"value\": " v "}}"

static void test_no_device(void **state)
{
    struct t *t = *state;
    expect_reply(t, "{\"execute\": \"query-memory-devices\"}", "{\"return\": []}");
    expect_reply(t, QOM_GET("size"),
                 "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device '/machine/peripheral/vmem0' not found\"}}");
    expect_reply(t, "{\"execute\": \"qom-list\", \"arguments\": {\"path\": \"/machine/peripheral\"}}",
                 "{\"return\": []}");
}

static void test_properties(void **state)
{
    struct t *t = *state;
    expect_reply(t, QOM_GET("requested-size"), "{\"return\": 0}");
    expect_reply(t, QOM_GET("size"), "{\"return\": 0}");
    expect_reply(t, QOM_GET("max-size"), "{\"return\": 268435456}");
    expect_reply(t, QOM_GET("block-size"), "{\"return\": 2097152}");
    expect_reply(t, QOM_GET("memaddr"), "{\"return\": 4294967296}");
    expect_reply(t, QOM_SET("requested-size", "67108864"), OK_EMPTY);
    assert_int_equal(t->cfg.mem_hotplug_requested, 64 * MIB);
    expect_reply(t, QOM_GET("requested-size"), "{\"return\": 67108864}");
    /* refused: nothing changes */
    expect_reply(t, QOM_SET("requested-size", "3145728"),
                 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"'requested-size' has to be multiples of "
                 "'block-size' (0x200000)\"}}");
    expect_reply(t, QOM_SET("requested-size", "1073741824"),
                 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"'requested-size' cannot exceed the memory "
                 "backend size(0x10000000)\"}}");
    expect_reply(t, QOM_SET("requested-size", "-1"),
                 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"'requested-size' has to be multiples of "
                 "'block-size' (0x200000)\"}}");
    expect_reply(t, QOM_SET("requested-size", "\"1G\""),
                 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'requested-size' expects uint64\"}}");
    expect_reply(t, QOM_SET("size", "0"),
                 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Property 'virtio-mem-pci.size' is not "
                 "writable\"}}");
    expect_reply(t, QOM_GET("nope"),
                 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Property 'virtio-mem-pci.nope' not found\"}}");
    expect_reply(t, "{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"/machine/peripheral/vmem0\", "
                    "\"property\": \"requested-size\"}}",
                 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'value' is missing\"}}");
    expect_reply(t, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/machine/peripheral/vmem0\"}}",
                 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'property' is missing\"}}");
    assert_int_equal(t->cfg.mem_hotplug_requested, 64 * MIB);
    expect_reply(t, "{\"execute\": \"qom-list\", \"arguments\": {\"path\": \"/machine/peripheral\"}}",
                 "{\"return\": [{\"name\": \"vmem0\", \"type\": \"child<virtio-mem-pci>\"}]}");
    expect_reply(t, "{\"execute\": \"qom-list\", \"arguments\": {\"path\": \"/machine/peripheral/vmem0\"}}",
                 "{\"return\": [{\"name\": \"requested-size\", \"type\": \"size\"}, {\"name\": \"size\", \"type\": "
                 "\"size\"}, {\"name\": \"max-size\", \"type\": \"size\"}, {\"name\": \"block-size\", \"type\": "
                 "\"size\"}, {\"name\": \"memaddr\", \"type\": \"uint64\"}]}");
    expect_reply(t, "{\"execute\": \"query-memory-devices\"}",
                 "{\"return\": [{\"type\": \"virtio-mem\", \"data\": {\"memdev\": \"/objects/vmem0-mem\", "
                 "\"memaddr\": 4294967296, \"block-size\": 2097152, \"size\": 0, \"node\": 0, \"max-size\": "
                 "268435456, \"requested-size\": 67108864, \"id\": \"vmem0\"}}]}");
}

#define EVENT(size) "\"event\": \"MEMORY_DEVICE_SIZE_CHANGE\", \"data\": {\"id\": \"vmem0\", \"size\": " size \
                    ", \"qom-path\": \"/machine/peripheral/vmem0\"}}"

static void expect_event(struct t *t, const char *tail)
{
    char *e = read_msg(t);
    assert_non_null(strstr(e, tail));
    assert_true(g_str_has_suffix(e, tail));
    g_free(e);
}

/* A live device: qom-set reaches it; plugged-size changes make events, at
 * most one a second, each with the size at the time it goes out. */
static void test_live_device(void **state)
{
    struct t *t = *state;
    assert_int_equal(guest_memory_create(&t->gm, 16 * MIB, false, false, NULL), 0);
    assert_int_equal(guest_memory_add_hotplug(&t->gm, guest_memory_hotplug_base(t->cfg.mem_size), 256 * MIB,
                                              2 * MIB, NULL), 0);
    t->m.vm.vmem = virtio_mem_new(&t->gm, NULL, VMEM_DEVICE_ID, 0);
    t->m.vm_live = true;
    vmem_machine_attach(&t->m);
    expect_reply(t, QOM_SET("requested-size", "8388608"), OK_EMPTY);
    assert_int_equal(virtio_mem_requested(t->m.vm.vmem), 8 * MIB);
    assert_int_equal(t->cfg.mem_hotplug_requested, 8 * MIB);

    /* what the device does after a run of requests that changed plugged_size */
    struct virtio_mem *d = t->m.vm.vmem;
    d->size_changed(d->size_opaque, d, 2 * MIB);
    expect_event(t, EVENT("2097152"));
    d->size_changed(d->size_opaque, d, 4 * MIB);
    d->size_changed(d->size_opaque, d, 6 * MIB);
    expect_nothing(t);                  /* within the second: held back */
    expect_event(t, EVENT("6291456"));   /* then one, with the latest size */
    /* a new VM (guest reset) starts with nothing plugged */
    vmem_machine_attach(&t->m);
    expect_event(t, EVENT("0"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_device, setup_none, teardown),
        cmocka_unit_test_setup_teardown(test_properties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_device, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
