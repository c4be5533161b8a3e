/* The lifecycle QMP commands (QEMU 7.2's QAPI: qapi/run-state.json,
 * machine.json, block.json, pci.json) over struct machine. Main loop thread. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/pci/pci.h"
#include "devices/pci/pci_host.h"
#include "vmm/machine.h"
#include "vmm/qmp.h"
#include "vmm/vcpu.h"

static JsonNode *obj_node(JsonObject *o)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

static JsonNode *arr_node(JsonArray *a)
{
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

/* None of these commands takes an argument: QEMU's strict visitor error. */
static bool no_args(JsonObject *args, GError **err)
{
    g_autoptr(GList) names = json_object_get_members(args);
    if (!names)
        return true;
    g_set_error(err, QMP_ERROR, QMP_ERR_GENERIC, "Parameter '%s' is unexpected", (const char *)names->data);
    return false;
}

static void emit_event(struct machine *m, const char *name, JsonNode *data)
{
    qmp_emit_event(m->qmp, name, data);
}

static JsonNode *cmd_stop(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!no_args(args, err))
        return NULL;
    machine_pause(ctx->opaque);
    return NULL;
}

static JsonNode *cmd_cont(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    g_autoptr(GError) e = NULL;
    if (no_args(args, err) && machine_resume(ctx->opaque, &e) < 0)
        g_set_error_literal(err, QMP_ERROR, QMP_ERR_GENERIC, e->message);
    return NULL;
}

static JsonNode *cmd_query_status(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    if (!no_args(args, err))
        return NULL;
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "status", machine_run_state_name(m->state));
    json_object_set_boolean_member(o, "singlestep", FALSE);
    json_object_set_boolean_member(o, "running", m->state == RUN_STATE_RUNNING);
    return obj_node(o);
}

static JsonNode *cmd_system_powerdown(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!no_args(args, err))
        return NULL;
    machine_powerdown(ctx->opaque);
    return NULL;
}

static JsonNode *cmd_system_reset(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    if (!no_args(args, err))
        return NULL;
    machine_reset(ctx->opaque);
    return NULL;
}

/* One socket, one thread per core, a core per vCPU: what vmm's CPUID
 * topology leaves (0xB/0x1F) describe, and QEMU's -smp N on q35 7.2. The
 * qom-path is /machine/unattached/device[cpu-index] (in QEMU the index of
 * the CPU among all unattached devices, which is the cpu-index only for
 * vCPU 0; libvirt asks qom-list of device[0] and pins by thread-id), and
 * /machine/peripheral/ID for a CPU hot-added with device_add (config_cpu_qom_path). */
static JsonNode *cmd_query_cpus_fast(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    if (!no_args(args, err))
        return NULL;
    JsonArray *a = json_array_new();
    for (unsigned i = 0; m->vm_live && i < m->vm.max_vcpus; i++) {
        const struct vcpu *v = m->vm.vcpus[i];
        g_autofree char *path = v ? config_cpu_qom_path(m->cfg, v->index) : NULL;
        if (!path)  /* no CPU, or one the guest ejected a moment ago */
            continue;
        JsonObject *props = json_object_new();
        json_object_set_int_member(props, "core-id", v->index);
        json_object_set_int_member(props, "thread-id", 0);
        json_object_set_int_member(props, "socket-id", 0);
        JsonObject *o = json_object_new();
        json_object_set_int_member(o, "thread-id", __atomic_load_n(&v->tid, __ATOMIC_ACQUIRE));
        json_object_set_object_member(o, "props", props);
        json_object_set_string_member(o, "qom-path", path);
        json_object_set_int_member(o, "cpu-index", v->index);
        json_object_set_string_member(o, "target", "x86_64");
        json_array_add_object_element(a, o);
    }
    return arr_node(a);
}

/* The size of a raw image (file or block device), and the bytes it takes. */
static void image_sizes(const char *path, int64_t *virt, int64_t *actual)
{
    *virt = 0;
    *actual = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end > 0)
        *virt = end;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        *actual = (int64_t)st.st_blocks * 512;
    close(fd);
}

/* A block node as QEMU 7.2's BlockDeviceInfo shows a raw image (query-block's
 * "inserted", each query-named-block-nodes entry): drv "raw" over a "file"
 * node, no throttling, no backing file. */
JsonObject *machine_qmp_block_info(const char *drv, const char *node_name, const char *path, bool ro, bool direct)
{
    int64_t virt, actual;
    image_sizes(path, &virt, &actual);
    JsonObject *image = json_object_new();
    json_object_set_int_member(image, "virtual-size", virt);
    json_object_set_string_member(image, "filename", path);
    json_object_set_string_member(image, "format", drv);
    json_object_set_int_member(image, "actual-size", actual);
    json_object_set_boolean_member(image, "dirty-flag", FALSE);
    JsonObject *cache = json_object_new();
    json_object_set_boolean_member(cache, "no-flush", FALSE);
    json_object_set_boolean_member(cache, "direct", direct);
    json_object_set_boolean_member(cache, "writeback", TRUE);
    JsonObject *ins = json_object_new();
    json_object_set_int_member(ins, "iops_rd", 0);
    json_object_set_string_member(ins, "detect_zeroes", "off");
    json_object_set_object_member(ins, "image", image);
    json_object_set_int_member(ins, "iops_wr", 0);
    json_object_set_boolean_member(ins, "ro", ro);
    json_object_set_string_member(ins, "node-name", node_name);
    json_object_set_int_member(ins, "backing_file_depth", 0);
    json_object_set_string_member(ins, "drv", drv);
    json_object_set_int_member(ins, "iops", 0);
    json_object_set_int_member(ins, "bps_wr", 0);
    json_object_set_int_member(ins, "write_threshold", 0);
    json_object_set_boolean_member(ins, "encrypted", FALSE);
    json_object_set_int_member(ins, "bps", 0);
    json_object_set_int_member(ins, "bps_rd", 0);
    json_object_set_object_member(ins, "cache", cache);
    json_object_set_string_member(ins, "file", path);
    return ins;
}

/* One entry per disk, as QEMU 7.2 answers for a virtio-blk-pci over
 * -blockdev file + raw: no BlockBackend name ("device": ""), the qdev path,
 * no throttling, raw format. node-name: the disk's top block node (its
 * -blockdev drive= or blockdev-add node; a --disk's node is named by its
 * id), as query-named-block-nodes names it. */
static JsonNode *cmd_query_block(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    if (!no_args(args, err))
        return NULL;
    JsonArray *a = json_array_new();
    for (unsigned i = 0; i < m->cfg->nr_disks; i++) {
        const struct disk_config *d = &m->cfg->disks[i];
        JsonObject *ins = machine_qmp_block_info("raw", d->node_name ? d->node_name : d->id, d->path, d->readonly,
                                                 d->cache == BLOCK_CACHE_NONE);
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "io-status", "ok");
        json_object_set_string_member(o, "device", "");
        json_object_set_boolean_member(o, "locked", FALSE);
        json_object_set_boolean_member(o, "removable", FALSE);
        json_object_set_object_member(o, "inserted", ins);
        g_autofree char *qdev = g_strdup_printf("/machine/peripheral/%s/virtio-backend", d->id);
        json_object_set_string_member(o, "qdev", qdev);
        json_object_set_string_member(o, "type", "unknown");
        json_array_add_object_element(a, o);
    }
    return arr_node(a);
}

/* QEMU's names for the classes vmm's devices can have (hw/pci/pci.c's
 * table; classes it does not name get no "desc"). */
static const char *class_desc(unsigned cls)
{
    switch (cls) {
    case 0x0100: return "SCSI controller";
    case 0x0180: return "Storage controller";
    case 0x0200: return "Ethernet controller";
    case 0x0600: return "Host bridge";
    case 0x0601: return "ISA bridge";
    case 0x0604: return "PCI bridge";
    case 0x0700: return "Serial port";
    default: return NULL;
    }
}

static JsonObject *pci_regions_and_info(struct pci_device *d, unsigned slot)
{
    JsonObject *o = json_object_new();
    unsigned pin = pci_cfg_get(d, 0x3d, 1);
    unsigned cls = pci_cfg_get(d, PCI_CFG_CLASS_PROG + 1, 2);
    json_object_set_int_member(o, "irq_pin", pin);
    json_object_set_int_member(o, "bus", 0);
    /* The host bridge has no id; a device's is its --disk/--net id. */
    json_object_set_string_member(o, "qdev_id", slot == 0 ? "" : d->name);
    if (pin)
        json_object_set_int_member(o, "irq", pci_cfg_get(d, 0x3c, 1));
    json_object_set_int_member(o, "slot", slot);
    JsonObject *ci = json_object_new();
    json_object_set_int_member(ci, "class", cls);
    if (class_desc(cls))
        json_object_set_string_member(ci, "desc", class_desc(cls));
    json_object_set_object_member(o, "class_info", ci);
    JsonObject *id = json_object_new();
    json_object_set_int_member(id, "device", pci_cfg_get(d, PCI_CFG_DEVICE_ID, 2));
    json_object_set_int_member(id, "subsystem-vendor", pci_cfg_get(d, 0x2c, 2));
    json_object_set_int_member(id, "vendor", pci_cfg_get(d, PCI_CFG_VENDOR_ID, 2));
    json_object_set_int_member(id, "subsystem", pci_cfg_get(d, 0x2e, 2));
    json_object_set_object_member(o, "id", id);
    json_object_set_int_member(o, "function", 0);
    JsonArray *regions = json_array_new();
    for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
        const struct pci_bar *bar = &d->bar[b];
        if (!bar->size || bar->type == PCI_BAR_NONE)
            continue;
        JsonObject *r = json_object_new();
        if (bar->type != PCI_BAR_IO) {
            json_object_set_boolean_member(r, "prefetch", bar->prefetch);
            json_object_set_boolean_member(r, "mem_type_64", bar->type == PCI_BAR_MEM64);
        }
        json_object_set_int_member(r, "bar", b);
        json_object_set_int_member(r, "size", (int64_t)bar->size);
        uint64_t addr = pci_device_bar_addr(d, b);
        json_object_set_int_member(r, "address", addr == PCI_BAR_UNMAPPED ? -1 : (int64_t)addr);
        json_object_set_string_member(r, "type", bar->type == PCI_BAR_IO ? "io" : "memory");
        json_array_add_object_element(regions, r);
    }
    json_object_set_array_member(o, "regions", regions);
    return o;
}

/* Bus 0: the host bridge and one single-function device per used slot; a
 * BAR's address is where it decodes now (-1: decoding off), as QEMU. */
static JsonNode *cmd_query_pci(const struct qmp_cmd_ctx *ctx, JsonObject *args, GError **err)
{
    struct machine *m = ctx->opaque;
    if (!no_args(args, err))
        return NULL;
    JsonArray *buses = json_array_new();
    if (!m->vm_live || !m->vm.pci)
        return arr_node(buses);
    JsonArray *devs = json_array_new();
    pci_host_lock(m->vm.pci);
    for (unsigned slot = 0; slot < PCI_MAX_SLOTS; slot++) {
        struct pci_device *d = pci_host_slot(m->vm.pci, slot);
        if (d)
            json_array_add_object_element(devs, pci_regions_and_info(d, slot));
    }
    pci_host_unlock(m->vm.pci);
    JsonObject *bus = json_object_new();
    json_object_set_int_member(bus, "bus", 0);
    json_object_set_array_member(bus, "devices", devs);
    json_array_add_object_element(buses, bus);
    return arr_node(buses);
}

void machine_qmp_register(struct qmp_server *s, struct machine *m)
{
    m->emit_event = emit_event;
    qmp_register(s, "stop", cmd_stop, m, 0);
    qmp_register(s, "cont", cmd_cont, m, 0);
    qmp_register(s, "query-status", cmd_query_status, m, 0);
    qmp_register(s, "system_powerdown", cmd_system_powerdown, m, 0);
    qmp_register(s, "system_reset", cmd_system_reset, m, 0);
    qmp_register(s, "query-cpus-fast", cmd_query_cpus_fast, m, 0);
    qmp_register(s, "query-block", cmd_query_block, m, 0);
    qmp_register(s, "query-pci", cmd_query_pci, m, 0);
}
