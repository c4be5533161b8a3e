#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/cpuid.h"
#include "vmm/cpu_state.h"
#include "vmm/log.h"
#include "vmm/machine.h"
#include "vmm/state.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define STR_MAX 65536u
#define STATE_FILE_MAX (1u << 30)

static int fail(GError **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static int fail(GError **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, msg);
    return -1;
}

/* ---- config ---- */

void snapshot_config_save(struct state_writer *w, const struct vm_config *c)
{
    state_begin_section(w, "config", SNAPSHOT_CONFIG_VERSION);
    state_put_str(w, c->name);
    state_put_str(w, c->uuid);
    state_put_str(w, c->kernel);
    state_put_str(w, c->initrd);
    state_put_str(w, c->cmdline);
    state_put_u32(w, c->cpus_boot);
    state_put_u32(w, c->cpus_max);
    for (unsigned i = 0; i < VMM_MAX_CPUS; i++)
        state_put_str(w, c->cpu_ids[i]);
    state_put_u8(w, (uint8_t)c->cpu_model);
    state_put_u8(w, (uint8_t)c->nested);
    state_put_u64(w, c->mem_size);
    state_put_u8(w, c->mem_hugepages);
    state_put_u8(w, c->mem_shared);
    state_put_u64(w, c->mem_hotplug_size);
    state_put_u64(w, c->mem_hotplug_block);
    state_put_u64(w, c->mem_hotplug_requested);
    state_put_u8(w, (uint8_t)c->serial_mode);
    state_put_str(w, c->serial_path);
    state_put_u8(w, (uint8_t)c->console_mode);
    state_put_str(w, c->console_path);
    state_put_u8(w, (uint8_t)c->console_pci_slot);
    state_put_u8(w, c->rng);
    state_put_u32(w, c->nr_iothreads);
    for (unsigned i = 0; i < c->nr_iothreads; i++)
        state_put_str(w, c->iothreads[i]);
    state_put_u32(w, c->nr_disks);
    for (unsigned i = 0; i < c->nr_disks; i++) {
        const struct disk_config *d = &c->disks[i];
        state_put_str(w, d->id);
        state_put_str(w, d->path);
        state_put_u8(w, d->readonly);
        state_put_u8(w, (uint8_t)d->aio);
        state_put_u8(w, (uint8_t)d->cache);
        state_put_u32(w, d->num_queues);
        state_put_str(w, d->serial);
        state_put_str(w, d->iothread);
        state_put_u8(w, (uint8_t)d->pci_slot);
        state_put_str(w, d->node_name);
    }
    state_put_u32(w, c->nr_nets);
    for (unsigned i = 0; i < c->nr_nets; i++) {
        const struct net_config *n = &c->nets[i];
        state_put_str(w, n->id);
        state_put_str(w, n->tap);
        state_put_u8(w, n->tap ? 0 : 1);      /* 1: an inherited fd (its number means nothing elsewhere) */
        state_put_u8(w, n->mac_set);
        state_put_bytes(w, n->mac, 6);
        state_put_u32(w, n->num_queues);
        state_put_u8(w, (uint8_t)n->pci_slot);
    }
    state_put_u8(w, c->test_exit);
    state_put_u8(w, (uint8_t)c->reboot);
    state_end_section(w);
}

/* The saved NICs (c->nets) take the backends the restoring command line
 * gives (cli, matched by id); one saved on an inherited fd must get one. */
static int net_overrides(struct vm_config *c, const struct net_config *cli, unsigned nr_cli, GError **err)
{
    for (unsigned k = 0; k < nr_cli; k++) {
        struct net_config *n = NULL;
        for (unsigned i = 0; i < c->nr_nets && !n; i++)
            if (strcmp(c->nets[i].id, cli[k].id) == 0)
                n = &c->nets[i];
        if (!n) {
            g_autoptr(GString) ids = g_string_new(NULL);
            for (unsigned i = 0; i < c->nr_nets; i++)
                g_string_append_printf(ids, "%s%s", i ? ", " : "", c->nets[i].id);
            return fail(err, "--net id=%s: the saved machine has no NIC of that id (%s%s)", cli[k].id,
                        c->nr_nets ? "its NICs: " : "it has no NIC", ids->str);
        }
        if (cli[k].fd >= 0 && n->num_queues > 1)
            return fail(err, "--net fd=%d,id=%s: the NIC has %u queue pairs, an inherited fd is one queue; "
                        "give tap=NAME", cli[k].fd, n->id, n->num_queues);
        g_free(n->tap);
        n->tap = g_strdup(cli[k].tap);
        n->fd = cli[k].fd;
    }
    for (unsigned i = 0; i < c->nr_nets; i++)
        if (!c->nets[i].tap && c->nets[i].fd < 0)
            return fail(err, "NIC %s was on an inherited fd (fd=), which does not travel: give it one here, "
                        "--net fd=N,id=%s (or tap=NAME,id=%s)", c->nets[i].id, c->nets[i].id, c->nets[i].id);
    return 0;
}

/* need_backends: every NIC must have a backend now (false for the copy of
 * the config that comes again with a migration's final state). */
static int config_load(struct state_reader *r, struct vm_config *c, bool need_backends, GError **err)
{
    uint32_t cfg_version = 0;
    if (state_open_section(r, "config", SNAPSHOT_CONFIG_VERSION, &cfg_version, err) < 0)
        return -1;
    /* The restoring command line's --net: new backends, by id. */
    struct net_config *cli_nets = c->nets;
    unsigned nr_cli_nets = c->nr_nets;
    c->nets = NULL;
    c->nr_nets = 0;
    int ret = -1;
    int bad = 0;
    uint8_t u8;
    uint32_t u32;
    char *s = NULL;
#define STR(dst) do { bad |= state_get_str(r, &s, STR_MAX); g_free(dst); dst = s; s = NULL; } while (0)
#define U8(dst, max) do { bad |= state_get_u8(r, &u8); bad |= u8 > (max); dst = u8; } while (0)
    STR(c->name);
    bad |= state_get_str(r, &s, 36);
    if (s && config_parse_uuid(s, c->uuid) < 0)
        bad = 1;
    g_clear_pointer(&s, g_free);
    STR(c->kernel);
    STR(c->initrd);
    STR(c->cmdline);
    bad |= state_get_u32(r, &c->cpus_boot);
    bad |= state_get_u32(r, &c->cpus_max);
    for (unsigned i = 0; i < VMM_MAX_CPUS; i++)
        STR(c->cpu_ids[i]);
    U8(c->cpu_model, CPU_MODEL_BASELINE);
    U8(c->nested, NESTED_OFF);
    bad |= state_get_u64(r, &c->mem_size);
    U8(c->mem_hugepages, 1);
    U8(c->mem_shared, 1);
    bad |= state_get_u64(r, &c->mem_hotplug_size);
    bad |= state_get_u64(r, &c->mem_hotplug_block);
    bad |= state_get_u64(r, &c->mem_hotplug_requested);
    enum serial_mode sm, cm;
    char *sp = NULL, *cp = NULL;
    U8(sm, SERIAL_SOCKET);
    bad |= state_get_str(r, &sp, STR_MAX);
    U8(cm, SERIAL_SOCKET);
    bad |= state_get_str(r, &cp, STR_MAX);
    uint8_t console_slot = 0;
    if (cfg_version >= 3)
        U8(console_slot, 31);
    c->console_pci_slot = console_slot;
    /* The restoring command line's --serial / --console win, as long as
     * the device stays (the guest has it, or has it not). */
    if (!bad && c->serial_given && (sm == SERIAL_OFF) != (c->serial_mode == SERIAL_OFF))
        goto onoff;
    if (!bad && c->console_given && (cm == SERIAL_OFF) != (c->console_mode == SERIAL_OFF))
        goto onoff;
    if (!c->serial_given) {
        c->serial_mode = sm;
        g_free(c->serial_path);
        c->serial_path = g_steal_pointer(&sp);
    }
    if (!c->console_given) {
        c->console_mode = cm;
        g_free(c->console_path);
        c->console_path = g_steal_pointer(&cp);
    }
    g_free(sp);
    g_free(cp);
    U8(c->rng, 1);
    bad |= state_get_u32(r, &u32);
    if (!bad && u32 <= VMM_MAX_IOTHREADS) {
        c->nr_iothreads = u32;
        c->iothreads = g_new0(char *, u32 + 1);
        for (unsigned i = 0; i < u32; i++)
            STR(c->iothreads[i]);
    } else {
        bad = 1;
    }
    bad |= state_get_u32(r, &u32);
    if (!bad && u32 <= VMM_MAX_DISKS) {
        c->nr_disks = u32;
        c->disks = g_new0(struct disk_config, MAX(u32, 1u));
        for (unsigned i = 0; i < u32; i++) {
            struct disk_config *d = &c->disks[i];
            STR(d->id);
            STR(d->path);
            U8(d->readonly, 1);
            U8(d->aio, BLOCK_AIO_THREADS);
            U8(d->cache, BLOCK_CACHE_NONE);
            bad |= state_get_u32(r, &d->num_queues);
            STR(d->serial);
            STR(d->iothread);
            if (cfg_version >= 3) {
                U8(d->pci_slot, 31);
                STR(d->node_name);
            }
            if (!d->id || !d->path)
                bad = 1;
        }
    } else {
        bad = 1;
    }
    bad |= state_get_u32(r, &u32);
    if (!bad && u32 <= VMM_MAX_NICS) {
        c->nr_nets = u32;
        c->nets = g_new0(struct net_config, MAX(u32, 1u));
        for (unsigned i = 0; i < u32; i++) {
            struct net_config *n = &c->nets[i];
            n->fd = -1;
            uint8_t on_fd = 0;
            STR(n->id);
            STR(n->tap);
            if (cfg_version >= 2)
                U8(on_fd, 1);
            U8(n->mac_set, 1);
            bad |= state_get_bytes(r, n->mac, 6);
            bad |= state_get_u32(r, &n->num_queues);
            if (cfg_version >= 3)
                U8(n->pci_slot, 31);
            if (!n->id || (n->tap == NULL) != (on_fd != 0) || n->num_queues == 0)
                bad = 1;
        }
    } else {
        bad = 1;
    }
    U8(c->test_exit, 1);
    U8(c->reboot, REBOOT_EXIT);
#undef STR
#undef U8
    if (bad || state_close_section(r, NULL) < 0) {
        fail(err, "state: the config section is malformed");
        goto out;
    }
    if (0) {
onoff:
        g_free(sp);
        g_free(cp);
        fail(err, "--serial/--console: the snapshot's machine %s; give a backend for it, not off/on",
             (sm == SERIAL_OFF) != (c->serial_mode == SERIAL_OFF)
                 ? (sm == SERIAL_OFF ? "has no serial port" : "has a serial port")
                 : (cm == SERIAL_OFF ? "has no virtio-console" : "has a virtio-console"));
        goto out;
    }
    if (!c->kernel || c->cpus_boot == 0 || c->cpus_max < c->cpus_boot || c->cpus_max > VMM_MAX_CPUS ||
        c->mem_size == 0 || c->mem_size % GUEST_PAGE_SIZE) {
        fail(err, "state: the config section describes no valid machine");
        goto out;
    }
    if (need_backends && net_overrides(c, cli_nets, nr_cli_nets, err) < 0)
        goto out;
    ret = 0;
out:
    for (unsigned i = 0; i < nr_cli_nets; i++) {
        g_free(cli_nets[i].id);
        g_free(cli_nets[i].tap);
    }
    g_free(cli_nets);
    return ret;
}

int snapshot_config_load(struct state_reader *r, struct vm_config *c, GError **err)
{
    return config_load(r, c, true, err);
}

/* ---- CPUID ---- */

#define CPUID_SECTION_MAX 4096u

void snapshot_cpuid_save(struct state_writer *w, const struct kvm_cpuid2 *t)
{
    state_begin_section(w, "cpuid", 1);
    state_put_u32(w, t->nent);
    for (uint32_t i = 0; i < t->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &t->entries[i];
        state_put_u32(w, e->function);
        state_put_u32(w, e->index);
        state_put_u32(w, e->flags);
        state_put_u32(w, e->eax);
        state_put_u32(w, e->ebx);
        state_put_u32(w, e->ecx);
        state_put_u32(w, e->edx);
    }
    state_end_section(w);
}

int snapshot_cpuid_load(struct state_reader *r, struct vm_config *c, GError **err)
{
    if (state_open_section(r, "cpuid", 1, NULL, err) < 0)
        return -1;
    uint32_t n = 0;
    if (state_get_u32(r, &n) < 0 || n == 0 || n > CPUID_SECTION_MAX)
        return fail(err, "state: the cpuid section is malformed");
    struct kvm_cpuid2 *t = g_malloc0(sizeof(*t) + n * sizeof(t->entries[0]));
    t->nent = n;
    int bad = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct kvm_cpuid_entry2 *e = &t->entries[i];
        bad |= state_get_u32(r, &e->function);
        bad |= state_get_u32(r, &e->index);
        bad |= state_get_u32(r, &e->flags);
        bad |= state_get_u32(r, &e->eax);
        bad |= state_get_u32(r, &e->ebx);
        bad |= state_get_u32(r, &e->ecx);
        bad |= state_get_u32(r, &e->edx);
    }
    if (bad || state_close_section(r, NULL) < 0) {
        g_free(t);
        return fail(err, "state: the cpuid section is malformed");
    }
    g_free(c->guest_cpuid);
    c->guest_cpuid = t;
    return 0;
}

int snapshot_check_cpuid(const struct vm_config *c, const char *what, GError **err)
{
    if (!c->guest_cpuid)
        return 0;
    const char *dev = getenv("VMM_KVM_DEVICE") ? getenv("VMM_KVM_DEVICE") : "/dev/kvm";
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: cannot open %s to check the guest's CPUID: %s", what, dev,
                    g_strerror(errno));
        return -1;
    }
    GError *e = NULL;
    g_autofree struct kvm_cpuid2 *sup = cpuid_get_supported(fd, &e);
    close(fd);
    if (!sup) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: %s", what, e->message);
        g_error_free(e);
        return -1;
    }
    /* What this host would give the same machine (vm.c's choice of nesting). */
    bool nests = cpuid_host_nests(sup) && c->nested != NESTED_OFF;
    if (!nests)
        cpuid_hide_nested(sup);
    g_autofree struct kvm_cpuid2 *host = cpuid_build_nested(sup, c->cpu_model, 0, c->cpus_max, nests);
    g_autofree char *missing = cpuid_missing_features(c->guest_cpuid, host);
    if (missing) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: CPU model mismatch: the guest has CPUID %s, which this host's KVM "
                    "cannot give", what, missing);
        return -1;
    }
    return 0;
}

/* The "snapshot", "config" and "cpuid" sections every stream begins with. */
static int read_head(struct state_reader *r, struct vm_config *c, uint64_t *ram, uint32_t *nr_vcpus,
                     bool need_backends, GError **err)
{
    uint32_t version = 0;
    if (state_open_section(r, "snapshot", SNAPSHOT_VERSION, &version, err) < 0)
        return -1;
    state_get_u64(r, ram);
    state_get_u32(r, nr_vcpus);
    if (state_close_section(r, err) < 0)
        return -1;
    if (version < 2)
        return fail(err, "state: made by an older vmm, before the guest's CPUID was saved (version %u); "
                    "restore it with that vmm", version);
    if (config_load(r, c, need_backends, err) < 0 || snapshot_cpuid_load(r, c, err) < 0)
        return -1;
    if (*ram != c->mem_size)
        return fail(err, "state: RAM size %" G_GUINT64_FORMAT " disagrees with its config (%" G_GUINT64_FORMAT ")",
                    *ram, c->mem_size);
    return 0;
}

/* ---- the VM's state ---- */

static int save_irqchip(struct vm *vm, struct state_writer *w, GError **err)
{
    state_begin_section(w, "irqchip", 1);
    state_put_u8(w, !vm->split_irqchip);
    if (!vm->split_irqchip)
        for (uint32_t chip = 0; chip < 3; chip++) {
            struct kvm_irqchip ic = { .chip_id = chip };
            if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &ic) < 0) {
                state_end_section(w);
                return fail(err, "KVM_GET_IRQCHIP %u: %s", chip, g_strerror(errno));
            }
            state_put_bytes(w, &ic, sizeof(ic));
        }
    state_end_section(w);
    return 0;
}

static int load_irqchip(struct vm *vm, struct state_reader *r, GError **err)
{
    uint8_t kernel = 0;
    struct kvm_irqchip ic[3];
    if (state_open_section(r, "irqchip", 1, NULL, err) < 0)
        return -1;
    state_get_u8(r, &kernel);
    if (kernel)
        state_get_bytes(r, ic, sizeof(ic));
    if (state_close_section(r, err) < 0)
        return -1;
    if (kernel != !vm->split_irqchip)
        return fail(err, "state: the snapshot has %s IOAPIC, this host's KVM gives %s", kernel ? "KVM's" : "vmm's",
                    vm->split_irqchip ? "vmm's" : "KVM's");
    for (unsigned i = 0; kernel && i < 3; i++)
        if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &ic[i]) < 0)
            return fail(err, "KVM_SET_IRQCHIP %u: %s", i, g_strerror(errno));
    return 0;
}

static int save_devices(struct vm *vm, struct state_writer *w, GError **err)
{
    state_begin_section(w, "devices", 1);
    state_put_u32(w, vm->devices->len);
    state_end_section(w);
    for (guint i = 0; i < vm->devices->len; i++) {
        struct device *d = &g_array_index(vm->devices, struct device, i);
        state_begin_section(w, "device", 1);
        state_put_str(w, d->ops->type);
        state_put_str(w, d->id);
        state_put_u8(w, d->ops->save != NULL);
        state_end_section(w);
        if (d->ops->save) {
            int e = d->ops->save(d->dev, w);
            if (e < 0)
                return fail(err, "device %s (%s) cannot save its state: %s", d->id ? d->id : "-", d->ops->type,
                            g_strerror(-e));
        }
    }
    return 0;
}

static int load_devices(struct vm *vm, struct state_reader *r, GError **err)
{
    uint32_t n = 0;
    if (state_open_section(r, "devices", 1, NULL, err) < 0 || state_get_u32(r, &n) < 0 ||
        state_close_section(r, err) < 0)
        return err && *err ? -1 : fail(err, "state: devices section malformed");
    if (n != vm->devices->len)
        return fail(err, "state: the snapshot has %u devices, the machine its config builds %u", n,
                    vm->devices->len);
    for (guint i = 0; i < n; i++) {
        struct device *d = &g_array_index(vm->devices, struct device, i);
        g_autofree char *type = NULL, *id = NULL;
        uint8_t has = 0;
        if (state_open_section(r, "device", 1, NULL, err) < 0)
            return -1;
        state_get_str(r, &type, 256);
        state_get_str(r, &id, 256);
        state_get_u8(r, &has);
        if (state_close_section(r, err) < 0)
            return -1;
        if (g_strcmp0(type, d->ops->type) != 0 || g_strcmp0(id, d->id) != 0 || has != (d->ops->save != NULL))
            return fail(err, "state: device %u is %s '%s' in the snapshot, %s '%s' here", i, type ? type : "?",
                        id ? id : "-", d->ops->type, d->id ? d->id : "-");
        if (has) {
            int e = d->ops->load(d->dev, r);
            if (e < 0)
                return fail(err, "state: device %s (%s) refused its saved state", d->id ? d->id : "-",
                            d->ops->type);
        }
    }
    return 0;
}

static int save_vcpus(struct vm *vm, struct state_writer *w, GError **err)
{
    struct cpu_caps caps;
    if (cpu_caps_probe(vm->kvm_fd, vm->vm_fd, &caps, err) < 0)
        return -1;
    int ret = 0;
    for (unsigned i = 0; i < vm->max_vcpus && ret == 0; i++) {
        struct vcpu *v = vm->vcpus[i];
        if (!v)
            continue;
        struct cpu_state s;
        if (cpu_state_get(v->fd, &caps, &s, err) < 0) {
            g_prefix_error(err, "vCPU %u: ", i);
            ret = -1;
        } else {
            cpu_state_save(w, i, &s);
        }
        cpu_state_clear(&s);
    }
    cpu_caps_clear(&caps);
    return ret;
}

static int load_vcpus(struct vm *vm, struct state_reader *r, GError **err)
{
    struct cpu_caps caps;
    if (cpu_caps_probe(vm->kvm_fd, vm->vm_fd, &caps, err) < 0)
        return -1;
    int ret = 0;
    for (unsigned i = 0; i < vm->max_vcpus && ret == 0; i++) {
        struct vcpu *v = vm->vcpus[i];
        if (!v)
            continue;
        struct cpu_state s;
        unsigned index = 0;
        if (cpu_state_load(r, &index, &s, err) < 0)
            ret = -1;
        else if (index != i)
            ret = fail(err, "state: vCPU %u found where vCPU %u was expected", index, i);
        else if (cpu_state_set(v->fd, &caps, &s, i, err) < 0) {
            g_prefix_error(err, "vCPU %u: ", i);
            ret = -1;
        }
        cpu_state_clear(&s);
    }
    cpu_caps_clear(&caps);
    return ret;
}

static int save_clock(struct vm *vm, struct state_writer *w, GError **err)
{
    struct kvm_clock_data cd = { 0 };
    if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &cd) < 0)
        return fail(err, "KVM_GET_CLOCK: %s", g_strerror(errno));
    state_begin_section(w, "kvmclock", 1);
    state_put_u64(w, cd.clock);
    state_end_section(w);
    return 0;
}

static int load_clock(struct vm *vm, struct state_reader *r, GError **err)
{
    uint64_t clock = 0;
    if (state_open_section(r, "kvmclock", 1, NULL, err) < 0)
        return -1;
    state_get_u64(r, &clock);
    if (state_close_section(r, err) < 0)
        return -1;
    /* The guest's clock goes on from the snapshot (time stood still while
     * the VM was paused and saved, as after QEMU's stop). */
    struct kvm_clock_data cd = { .clock = clock };
    if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &cd) < 0)
        return fail(err, "KVM_SET_CLOCK: %s", g_strerror(errno));
    return 0;
}

/* ---- files ---- */

static int write_all(int fd, const void *p, size_t n, off_t off)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t k = pwrite(fd, b, MIN(n, (size_t)1 << 30), off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
        off += k;
    }
    return 0;
}

int write_all_stream(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

bool snapshot_page_zero(const uint8_t *p)
{
    const uint64_t *q = (const uint64_t *)p;
    for (unsigned i = 0; i < GUEST_PAGE_SIZE / 8; i++)
        if (q[i])
            return false;
    return true;
}


#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define ZS_ENTRIES 512u                 /* pagemap entries read at a time: 2 MiB of RAM */

struct zero_scan {
    int fd;                             /* /proc/self/pagemap, or -1: read every page */
    uint64_t first;                     /* the virtual page number of ent[0] */
    unsigned n;                         /* entries valid */
    uint64_t ent[ZS_ENTRIES];
};

struct zero_scan *zero_scan_new(const struct guest_memory *gm)
{
    struct zero_scan *z = g_new0(struct zero_scan, 1);
    z->fd = gm->anon ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
    return z;
}

void zero_scan_free(struct zero_scan *z)
{
    if (!z)
        return;
    if (z->fd >= 0)
        close(z->fd);
    g_free(z);
}

bool zero_scan_page(struct zero_scan *z, const uint8_t *p)
{
    if (z->fd >= 0) {
        uint64_t vpn = (uintptr_t)p / GUEST_PAGE_SIZE;
        if (vpn < z->first || vpn >= z->first + z->n) {
            ssize_t k = pread(z->fd, z->ent, sizeof(z->ent), (off_t)(vpn * sizeof(uint64_t)));
            if (k < (ssize_t)sizeof(uint64_t)) {
                close(z->fd);           /* no pagemap after all: read the pages */
                z->fd = -1;
                return snapshot_page_zero(p);
            }
            z->first = vpn;
            z->n = (unsigned)((size_t)k / sizeof(uint64_t));
        }
        if (!(z->ent[vpn - z->first] & (PM_PRESENT | PM_SWAPPED)))
            return true;
    }
    return snapshot_page_zero(p);
}

/* Runs of at least this much go through the O_DIRECT descriptor. */
#define DIRECT_MIN (256u << 10)

/* npages pages from base into the memory file at `off`: runs of non-zero
 * pages written, zero pages (and, with `skip`, the hotplug region, its
 * unplugged blocks) left as holes. Large runs go through an O_DIRECT
 * descriptor (*dfd, or -1), straight from guest RAM to the disk: through
 * the page cache, each page of the file is first a freshly allocated (and,
 * on a VM host, freshly backed) kernel page and a copy, and then written
 * back by fsync anyway (240 MiB on this host: 0.77 s pwrite + 0.25 s fsync
 * buffered against ~0.5 s direct). Small runs (a scattered guest's) stay
 * buffered: one synchronous disk write each would cost more than the copy.
 * A filesystem or device that refuses the direct write (EINVAL: alignment,
 * no O_DIRECT support) gets the buffered one (and *dfd becomes -1). */
static int write_pages(int fd, int *dfd, struct zero_scan *zs, const uint8_t *base, uint64_t npages, off_t off0,
                       const struct guest_region *skip)
{
    uint64_t run = 0;
    bool in_run = false;
    for (uint64_t pg = 0; pg <= npages; pg++) {
        bool data = pg < npages;
        if (data && skip) {
            uint64_t blk = pg * GUEST_PAGE_SIZE / skip->block_size;
            data = (skip->plugged[blk / (8 * sizeof(long))] >> (blk % (8 * sizeof(long)))) & 1;
        }
        data = data && !zero_scan_page(zs, base + pg * GUEST_PAGE_SIZE);
        if (data && !in_run) {
            run = pg;
            in_run = true;
        } else if (!data && in_run) {
            const uint8_t *p = base + run * GUEST_PAGE_SIZE;
            uint64_t n = (pg - run) * GUEST_PAGE_SIZE;
            off_t off = off0 + (off_t)(run * GUEST_PAGE_SIZE);
            int r = -1;
            if (*dfd >= 0 && n >= DIRECT_MIN) {
                r = write_all(*dfd, p, n, off);
                if (r < 0 && errno != EINVAL)
                    return -1;
                if (r < 0) {
                    log_debug("snapshot: O_DIRECT write refused (EINVAL), writing through the page cache");
                    *dfd = -1;
                }
            }
            if (r < 0 && write_all(fd, p, n, off) < 0)
                return -1;
            in_run = false;
        }
    }
    return 0;
}

/* RAM into the memory file, then the virtio-mem hotplug region's plugged
 * blocks after it. */
static int write_memory(const struct guest_memory *gm, int fd, int dfd)
{
    const struct guest_region *hp = guest_memory_hotplug_region(gm);
    if (ftruncate(fd, (off_t)(gm->ram_size + (hp ? hp->size : 0))) < 0)
        return -1;
    g_autoptr(zero_scan) zs = zero_scan_new(gm);
    if (write_pages(fd, &dfd, zs, gm->base, gm->ram_size / GUEST_PAGE_SIZE, 0, NULL) < 0)
        return -1;
    return hp ? write_pages(fd, &dfd, zs, hp->hva, hp->size / GUEST_PAGE_SIZE, (off_t)gm->ram_size, hp) : 0;
}

static int write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int r = write_all(fd, p, n, 0) < 0 || fsync(fd) < 0 ? -1 : 0;
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

/* Every disk's data on stable storage (the devices drained their requests
 * while they saved): fdatasync through a descriptor of our own. */
static int flush_disks(const struct vm_config *c, GError **err)
{
    for (unsigned i = 0; i < c->nr_disks; i++) {
        if (c->disks[i].readonly)
            continue;
        int fd = open(c->disks[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fdatasync(fd) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return fail(err, "cannot flush disk %s (%s): %s", c->disks[i].id, c->disks[i].path, g_strerror(e));
        }
        close(fd);
    }
    return 0;
}

GBytes *snapshot_state_stream(struct machine *m, GError **err)
{
    if (!m->vm_live || (m->state != RUN_STATE_PAUSED && m->state != RUN_STATE_PRELAUNCH)) {
        fail(err, "the VM must be paused for a snapshot (QMP stop first)");
        return NULL;
    }
    struct vm *vm = &m->vm;
    if (vm->stopping) {
        fail(err, "the VM is shutting down or resetting");
        return NULL;
    }
    for (unsigned i = 0; i < m->cfg->nr_nets; i++)
        if (config_net_is_user(&m->cfg->nets[i])) {
            fail(err, "NIC %s is on user networking (slirp), whose connections vmm does not save: a VM with one "
                 "cannot be snapshotted or migrated", m->cfg->nets[i].id);
            return NULL;
        }
    unsigned nr_vcpus = vm_nr_vcpus(vm);
    struct state_writer *w = state_writer_new();
    state_begin_section(w, "snapshot", SNAPSHOT_VERSION);
    state_put_u64(w, vm->mem.ram_size);
    state_put_u32(w, nr_vcpus);
    state_end_section(w);
    snapshot_config_save(w, m->cfg);
    snapshot_cpuid_save(w, vm->guest_cpuid);
    /* Devices first: saving drains their in-flight I/O, whose completions
     * (used rings in RAM, MSI-X into the LAPICs) the rest then captures. */
    if (save_devices(vm, w, err) < 0 || flush_disks(m->cfg, err) < 0 || save_irqchip(vm, w, err) < 0 ||
        save_vcpus(vm, w, err) < 0 || save_clock(vm, w, err) < 0) {
        state_writer_free(w);
        return NULL;
    }
    return state_writer_finish(w);
}

int snapshot_save(struct machine *m, const char *dir, GError **err)
{
    if (!m->vm_live || (m->state != RUN_STATE_PAUSED && m->state != RUN_STATE_PRELAUNCH))
        return fail(err, "the VM must be paused for a snapshot (QMP stop first)");
    if (g_mkdir_with_parents(dir, 0700) < 0)
        return fail(err, "cannot create %s: %s", dir, g_strerror(errno));
    g_autoptr(GBytes) stream = snapshot_state_stream(m, err);
    if (!stream)
        return -1;
    struct vm *vm = &m->vm;

    g_autofree char *state_tmp = g_build_filename(dir, "state.tmp", NULL);
    g_autofree char *mem_tmp = g_build_filename(dir, "memory.tmp", NULL);
    g_autofree char *state_path = g_build_filename(dir, "state", NULL);
    g_autofree char *mem_path = g_build_filename(dir, "memory", NULL);
    gsize n;
    const void *p = g_bytes_get_data(stream, &n);
    int fd = open(mem_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    /* A second descriptor for the direct writes; none where the filesystem
     * has no O_DIRECT (EINVAL), which is not an error. */
    int dfd = fd < 0 ? -1 : open(mem_tmp, O_WRONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0 || write_memory(&vm->mem, fd, dfd) < 0 || fsync(fd) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (dfd >= 0)
            close(dfd);
        unlink(mem_tmp);
        return fail(err, "cannot write %s: %s", mem_tmp, g_strerror(e));
    }
    close(fd);
    if (dfd >= 0)
        close(dfd);
    if (write_file(state_tmp, p, n) < 0) {
        int e = errno;
        unlink(mem_tmp);
        unlink(state_tmp);
        return fail(err, "cannot write %s: %s", state_tmp, g_strerror(e));
    }
    /* The memory first: a state file under its final name always has its memory. */
    if (rename(mem_tmp, mem_path) < 0 || rename(state_tmp, state_path) < 0) {
        int e = errno;
        unlink(mem_tmp);
        unlink(state_tmp);
        return fail(err, "cannot rename the snapshot files into %s: %s", dir, g_strerror(e));
    }
    log_info("snapshot: %s (%zu bytes of state, %" G_GUINT64_FORMAT " MiB of RAM)", dir, (size_t)n,
             vm->mem.ram_size >> 20);
    return 0;
}

/* ---- restore ---- */

struct snapshot_restore {
    struct state_reader *r;
    int mem_fd;             /* the memory file, or -1 */
    int sock;               /* --incoming: the connection RAM comes on and the answer goes to, or -1 */
    uint32_t nr_vcpus;
    char *what;             /* "--restore DIR", "--incoming URI": errors start with it */
};

int snapshot_restore_memory_fd(const struct snapshot_restore *s)
{
    return s->mem_fd;
}

void snapshot_restore_free(struct snapshot_restore *s)
{
    if (!s)
        return;
    state_reader_free(s->r);
    if (s->mem_fd >= 0)
        close(s->mem_fd);
    if (s->sock >= 0)
        close(s->sock);
    g_free(s->what);
    g_free(s);
}

struct snapshot_restore *snapshot_restore_from_stream(GBytes *bytes, struct vm_config *c, const char *what,
                                                     GError **err)
{
    GError *e = NULL;
    struct snapshot_restore *s = g_new0(struct snapshot_restore, 1);
    s->mem_fd = -1;
    s->sock = -1;
    s->what = g_strdup(what);
    s->r = state_reader_new(bytes, &e);
    uint64_t ram = 0;
    if (!s->r)
        goto fail;
    if (read_head(s->r, c, &ram, &s->nr_vcpus, true, &e) < 0)
        goto fail;
    return s;
fail:
    g_set_error(err, CONFIG_ERROR, 0, "%s: %s", what, e ? e->message : "cannot read the state");
    g_clear_error(&e);
    snapshot_restore_free(s);
    return NULL;
}

struct snapshot_restore *snapshot_restore_open(const char *dir, struct vm_config *c, GError **err)
{
    g_autofree char *state_path = g_build_filename(dir, "state", NULL);
    g_autofree char *mem_path = g_build_filename(dir, "memory", NULL);
    g_autofree char *data = NULL;
    g_autofree char *what = g_strdup_printf("--restore %s", dir);
    gsize len = 0;
    GError *e = NULL;
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: not a directory", what);
        return NULL;
    }
    if (!g_file_get_contents(state_path, &data, &len, &e)) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: %s", what, e->message);
        g_error_free(e);
        return NULL;
    }
    g_autoptr(GBytes) bytes = g_bytes_new_take(g_steal_pointer(&data), len);
    struct snapshot_restore *s = snapshot_restore_from_stream(bytes, c, what, err);
    if (!s)
        return NULL;
    s->mem_fd = open(mem_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (s->mem_fd < 0 || fstat(s->mem_fd, &st) < 0) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: %s: %s", what, mem_path, g_strerror(errno));
        snapshot_restore_free(s);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != c->mem_size + c->mem_hotplug_size) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: %s: %" G_GUINT64_FORMAT " bytes, the snapshot's RAM is %"
                    G_GUINT64_FORMAT "%s", what, mem_path, (uint64_t)st.st_size, c->mem_size + c->mem_hotplug_size,
                    c->mem_hotplug_size ? " (with its hotplug region)" : "");
        snapshot_restore_free(s);
        return NULL;
    }
    return s;
}

int snapshot_restore_socket(const struct snapshot_restore *s)
{
    return s->sock;
}

void snapshot_restore_set_socket(struct snapshot_restore *s, int sock)
{
    s->sock = sock;
}

static int read_full(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t k = read(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* After RAM, the source sends the whole state stream, taken once the VM was
 * paused: it replaces the config-only stream the connection began with. */
static int read_final_state(struct snapshot_restore *s, GError **err)
{
    uint64_t len;
    if (read_full(s->sock, &len, sizeof(len)) < 0) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: the connection ended before the device state", s->what);
        return -1;
    }
    len = GUINT64_FROM_LE(len);
    if (len > STATE_FILE_MAX) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: corrupted stream (state of %" G_GUINT64_FORMAT " bytes)", s->what,
                    len);
        return -1;
    }
    uint8_t *buf = g_malloc(len ? len : 1);
    if (read_full(s->sock, buf, len) < 0) {
        g_free(buf);
        g_set_error(err, CONFIG_ERROR, 0, "%s: the connection ended in the middle of the device state", s->what);
        return -1;
    }
    g_autoptr(GBytes) bytes = g_bytes_new_take(buf, len);
    GError *e = NULL;
    struct vm_config scratch;
    config_init_defaults(&scratch);
    struct state_reader *r = state_reader_new(bytes, &e);
    uint64_t ram = 0;
    uint32_t nr = 0;
    if (r)
        read_head(r, &scratch, &ram, &nr, false, &e);
    config_clear(&scratch);
    if (e) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: %s", s->what, e->message);
        g_error_free(e);
        state_reader_free(r);
        return -1;
    }
    state_reader_free(s->r);
    s->r = r;
    s->nr_vcpus = nr;
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define RX_BLOCK (2ul << 20)            /* a THP's worth */
#define PREFAULT_MIN (4ul << 20)        /* runs shorter than this: the receiver's own faults */
#define LONG_BITS (8 * sizeof(unsigned long))

/* The destination's RAM is fresh anonymous memory: every page read into is
 * first allocated and zeroed by the kernel, and on a VM host backed by its
 * hypervisor, which (measured) is most of the receiving thread's time. A
 * helper thread populates each long run ahead of the receiver
 * (MADV_POPULATE_WRITE, a block at a time), so that cost overlaps the
 * network and the copy instead of adding to them. Blocks the receiver has
 * reached are left to it, and each block is populated once (later passes
 * send pages again into memory that is there). */
struct prefault {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint8_t *base;
    uint64_t ram_size;
    uint64_t start, end;                /* the run being received */
    uint64_t gen;                       /* bumped per run */
    bool quit;
    uint64_t rx_pos;                    /* atomic: where the receiver reads */
    unsigned long *done;                /* atomic bits: blocks populated or reached */
};

static bool block_test_set(unsigned long *bits, uint64_t b)
{
    unsigned long m = 1ul << (b % LONG_BITS);
    return __atomic_fetch_or(&bits[b / LONG_BITS], m, __ATOMIC_RELAXED) & m;
}

static void *prefault_thread(void *opaque)
{
    struct prefault *pf = opaque;
    uint64_t seen = 0;
    pthread_mutex_lock(&pf->lock);
    for (;;) {
        while (!pf->quit && pf->gen == seen)
            pthread_cond_wait(&pf->cond, &pf->lock);
        if (pf->quit)
            break;
        seen = pf->gen;
        uint64_t a = pf->start / RX_BLOCK * RX_BLOCK, end = pf->end;
        pthread_mutex_unlock(&pf->lock);
        for (; a < end && __atomic_load_n(&pf->gen, __ATOMIC_RELAXED) == seen; a += RX_BLOCK) {
            /* The receiver's block and the next are its own. */
            if (a < __atomic_load_n(&pf->rx_pos, __ATOMIC_RELAXED) + RX_BLOCK ||
                block_test_set(pf->done, a / RX_BLOCK))
                continue;
            if (madvise(pf->base + a, MIN(RX_BLOCK, pf->ram_size - a), MADV_POPULATE_WRITE) < 0 &&
                errno == EINVAL) {
                pthread_mutex_lock(&pf->lock);
                goto out;       /* before Linux 5.14: no such advice; the receiver faults */
            }
        }
        pthread_mutex_lock(&pf->lock);
    }
out:
    pthread_mutex_unlock(&pf->lock);
    return NULL;
}

static int fill_runs(struct snapshot_restore *s, struct guest_memory *gm, struct prefault *pf, GError **err)
{
    /* Runs of RAM: u64 offset, u64 length (page multiples inside RAM), the
     * bytes; an offset of all ones ends them. */
    const struct guest_region *hp = guest_memory_hotplug_region(gm);
    for (;;) {
        uint64_t hdr[2];
        if (read_full(s->sock, hdr, sizeof(hdr)) < 0) {
            g_set_error(err, CONFIG_ERROR, 0, "%s: the connection ended in the middle of RAM", s->what);
            return -1;
        }
        uint64_t off = GUINT64_FROM_LE(hdr[0]), len = GUINT64_FROM_LE(hdr[1]);
        if (off == UINT64_MAX && len == 0)
            return read_final_state(s, err);
        /* RAM from GPA 0, then the hotplug region (whose blocks the device
         * state plugs; those it leaves unplugged it zeroes). */
        uint8_t *dst = NULL;
        if (off % GUEST_PAGE_SIZE == 0 && len % GUEST_PAGE_SIZE == 0) {
            if (off <= gm->ram_size && len <= gm->ram_size - off)
                dst = gm->base + off;
            else if (hp && off >= gm->ram_size && off - gm->ram_size <= hp->size &&
                     len <= hp->size - (off - gm->ram_size))
                dst = hp->hva + (off - gm->ram_size);
        }
        if (!dst) {
            g_set_error(err, CONFIG_ERROR, 0, "%s: corrupted stream (RAM run of %" G_GUINT64_FORMAT
                        " bytes at %" G_GUINT64_FORMAT ")", s->what, len, off);
            return -1;
        }
        if (dst != gm->base + off) {
            /* The hotplug region: no helper there (it covers RAM). */
            if (read_full(s->sock, dst, len) < 0) {
                g_set_error(err, CONFIG_ERROR, 0, "%s: the connection ended in the middle of RAM", s->what);
                return -1;
            }
            continue;
        }
        __atomic_store_n(&pf->rx_pos, off, __ATOMIC_RELAXED);
        if (pf->done && len >= PREFAULT_MIN) {
            pthread_mutex_lock(&pf->lock);
            pf->start = off;
            pf->end = off + len;
            __atomic_store_n(&pf->gen, pf->gen + 1, __ATOMIC_RELAXED);
            pthread_cond_signal(&pf->cond);
            pthread_mutex_unlock(&pf->lock);
        }
        /* Block by block, so the helper knows where the receiver is. */
        for (uint64_t p = off; p < off + len;) {
            uint64_t next = MIN((p / RX_BLOCK + 1) * RX_BLOCK, off + len);
            __atomic_store_n(&pf->rx_pos, p, __ATOMIC_RELAXED);
            if (pf->done)
                block_test_set(pf->done, p / RX_BLOCK);
            if (read_full(s->sock, gm->base + p, next - p) < 0) {
                g_set_error(err, CONFIG_ERROR, 0, "%s: the connection ended in the middle of RAM", s->what);
                return -1;
            }
            p = next;
        }
    }
}

int snapshot_restore_fill_memory(struct snapshot_restore *s, struct vm *vm, GError **err)
{
    if (s->sock < 0)
        return 0;
    struct guest_memory *gm = &vm->mem;
    struct prefault pf = { .base = gm->base, .ram_size = gm->ram_size };
    pthread_t t;
    pthread_mutex_init(&pf.lock, NULL);
    pthread_cond_init(&pf.cond, NULL);
    uint64_t blocks = (gm->ram_size + RX_BLOCK - 1) / RX_BLOCK;
    pf.done = g_new0(unsigned long, (blocks + LONG_BITS - 1) / LONG_BITS);
    /* Without the helper (no thread to be had) the receiver faults alone. */
    bool helper = pthread_create(&t, NULL, prefault_thread, &pf) == 0;
    if (!helper)
        g_clear_pointer(&pf.done, g_free);
    int r = fill_runs(s, gm, &pf, err);
    if (helper) {
        pthread_mutex_lock(&pf.lock);
        pf.quit = true;
        __atomic_store_n(&pf.gen, pf.gen + 1, __ATOMIC_RELAXED);
        pthread_cond_signal(&pf.cond);
        pthread_mutex_unlock(&pf.lock);
        pthread_join(t, NULL);
        g_free(pf.done);
    }
    pthread_mutex_destroy(&pf.lock);
    pthread_cond_destroy(&pf.cond);
    return r;
}

void snapshot_restore_answer(struct snapshot_restore *s, const char *error)
{
    if (s->sock < 0)
        return;
    g_autofree char *line = error ? g_strdup_printf("ERR %s\n", error) : g_strdup("OK\n");
    if (write_all_stream(s->sock, line, strlen(line)) < 0)
        log_warn("%s: cannot answer the source: %s", s->what, g_strerror(errno));
}

/* --restore: the hotplug region's plugged blocks (virtio-mem's device state
 * has just plugged them) read from the memory file, after RAM. Copied, not
 * mapped: an unplugged block must read as zero when plugged again, which a
 * private mapping of the file would not give. */
static int load_hotplug_memory(struct snapshot_restore *s, struct vm *vm, GError **err)
{
    const struct guest_region *hp = guest_memory_hotplug_region(&vm->mem);
    if (!hp || s->mem_fd < 0)
        return 0;
    for (uint64_t off = 0; off < hp->size; off += hp->block_size) {
        if (!guest_memory_count_plugged(&vm->mem, hp->gpa + off, hp->block_size))
            continue;
        uint64_t done = 0;
        while (done < hp->block_size) {
            ssize_t k = pread(s->mem_fd, hp->hva + off + done, hp->block_size - done,
                              (off_t)(vm->mem.ram_size + off + done));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return fail(err, "cannot read the hotplug memory from the memory file: %s",
                            k < 0 ? g_strerror(errno) : "short file");
            done += (uint64_t)k;
        }
    }
    return 0;
}

int snapshot_restore_load(struct snapshot_restore *s, struct vm *vm, GError **err)
{
    GError *e = NULL;
    if (vm_nr_vcpus(vm) != s->nr_vcpus) {
        g_set_error(&e, G_FILE_ERROR, G_FILE_ERROR_INVAL, "state: %u vCPUs saved, the config builds %u",
                    s->nr_vcpus, vm_nr_vcpus(vm));
    } else if (load_devices(vm, s->r, &e) == 0 && load_hotplug_memory(s, vm, &e) == 0 && load_irqchip(vm, s->r, &e) == 0 &&
               load_vcpus(vm, s->r, &e) == 0 && load_clock(vm, s->r, &e) == 0 && !state_reader_at_end(s->r)) {
        g_set_error(&e, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "state: sections follow that this vmm does not know (a newer vmm's snapshot?)");
    }
    if (e) {
        g_set_error(err, CONFIG_ERROR, 0, "%s: %s", s->what, e->message);
        g_error_free(e);
        return -1;
    }
    return 0;
}
