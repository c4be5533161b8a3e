/* The QEMU-style argv front end (see qemu_compat.h). Every option either
 * becomes part of struct vm_config, is in the one table of options accepted
 * and ignored (with the reason), or is refused with one line naming it. */
#include "vmm/qemu_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "devices/net_user.h"
#include "vmm/options.h"
#include "vmm/qemu_compat_internal.h"

#define MIB (1024ULL * 1024)
#ifndef VMM_VERSION
#define VMM_VERSION "0.0.0"
#endif

/* ---- options accepted and ignored: the one table ----
 * opt: the option; key: one of its keys (NULL: the whole option); value: the
 * only value ignored (NULL: any). For -device, key "driver" names a device
 * type that is accepted and not created. */
static const struct ignored_entry {
    const char *opt, *key, *value, *reason;
} ignored_table[] = {
    { "-no-user-config", NULL, NULL, "vmm reads no configuration files" },
    { "-nodefaults", NULL, NULL, "vmm adds no default devices in QEMU mode (no serial, monitor or NIC unless asked)" },
    { "-nographic", NULL, NULL, "vmm has no display; serial output goes only where -chardev says" },
    { "-display", "type", "none", "vmm has no display" },
    { "-msg", "timestamp", NULL, "vmm's stderr lines carry no timestamps" },
    { "-sandbox", NULL, NULL, "libvirt passes it only if query-command-line-options lists 'sandbox'; vmm lists nothing" },
    { "-audiodev", "id", NULL, "libvirt 9.0 always adds <audio type='none'/>; vmm has no sound device" },
    { "-audiodev", "driver", "none", "an audio backend that plays nothing; vmm has no sound device" },
    { "-object", "qom-type", "secret", "libvirt's master key for encrypted secrets; nothing in vmm takes a secret" },
    { "-overcommit", "mem-lock", "off", "the default: guest RAM is not locked" },
    { "-overcommit", "cpu-pm", "off", "the default: no CPU power management passthrough" },
    { "-machine", "usb", "off", "vmm has no USB" },
    { "-machine", "dump-guest-core", NULL, "vmm does not dump guest RAM in its core file either way" },
    { "-machine", "accel", NULL, "vmm always runs on KVM (kvm, or a list starting with kvm)" },
    { "-name", "debug-threads", NULL, "vmm's threads carry names already (vcpu N, iothread...)" },
    { "-cpu", "migratable", NULL, "host/max expose what KVM supports; migratable only changes qom-get's answer" },
    { "-smp", "sockets", NULL, "the guest sees one socket with one core per vCPU (vmm's CPUID topology)" },
    { "-smp", "dies", NULL, "the guest sees one socket with one core per vCPU (vmm's CPUID topology)" },
    { "-smp", "cores", NULL, "the guest sees one socket with one core per vCPU (vmm's CPUID topology)" },
    { "-smp", "threads", "1", "one thread per core, as vmm's CPUID topology says" },
    { "-rtc", "base", "utc", "vmm's RTC runs on the host's UTC clock" },
    { "-rtc", "driftfix", "slew", "vmm's RTC reads the host clock; there are no ticks to lose" },
    { "-boot", "strict", NULL, "vmm boots -kernel directly; there is no firmware boot order" },
    { "-device", "bootindex", NULL, "vmm boots -kernel directly; there is no firmware boot order" },
    { "-device", "write-cache", "on", "vmm's virtio-blk offers a volatile write cache and honours flushes" },
    { "-blockdev", "discard", "unmap", "what vmm does anyway: a guest's DISCARD punches a hole in the image" },
    { "-blockdev", "auto-read-only", NULL, "vmm opens an image read-only exactly when read-only=on" },
    { "-blockdev", "cache.no-flush", "off", "the default: guest flushes reach the disk" },
    { "-blockdev", "detect-zeroes", "off", "the default: no zero detection" },
    { "-netdev", "vhost", "off", "vmm has no vhost-net; the data path is vmm's own" },
    { "-device", "driver", "virtio-balloon-pci", "libvirt's default <memballoon>; vmm has no balloon (the guest sees none)" },
    { "-device", "driver", "piix3-usb-uhci", "libvirt's default USB controller; vmm has no USB (the guest sees none)" },
    { "-usb", NULL, NULL, "libvirt's legacy default USB controller; vmm has no USB (the guest sees none)" },
    { "-global", "PIIX4_PM.disable_s3", NULL, "vmm offers no S3 sleep state anyway (S5 only)" },
    { "-global", "PIIX4_PM.disable_s4", NULL, "vmm offers no S4 sleep state anyway (S5 only)" },
    { "-global", "kvm-pit.lost_tick_policy", NULL, "vmm's PIT is KVM's in-kernel one with its own policy" },
    { "-no-hpet", NULL, NULL, "vmm has no HPET" },
};

const char *qemu_compat_ignored(const char *opt, const char *key, const char *value)
{
    for (size_t i = 0; i < G_N_ELEMENTS(ignored_table); i++) {
        const struct ignored_entry *e = &ignored_table[i];
        if (strcmp(e->opt, opt) != 0)
            continue;
        if (!e->key) {
            if (!key)
                return e->reason;
            continue;
        }
        if (!key || strcmp(e->key, key) != 0)
            continue;
        if (!e->value || (value && strcmp(e->value, value) == 0))
            return e->reason;
    }
    return NULL;
}

void qemu_compat_foreach_ignored(void (*fn)(const char *, const char *, const char *, const char *, void *),
                                 void *opaque)
{
    for (size_t i = 0; i < G_N_ELEMENTS(ignored_table); i++)
        fn(ignored_table[i].opt, ignored_table[i].key, ignored_table[i].value, ignored_table[i].reason, opaque);
}

static const char *const machines_ok[] = { "pc", "pc-i440fx-7.2", NULL };

static bool machine_known(const char *t)
{
    for (const char *const *m = machines_ok; *m; m++)
        if (strcmp(*m, t) == 0)
            return true;
    return g_str_has_prefix(t, "pc-i440fx-");
}

static int check_accel(const char *opt, const char *accel, GError **err)
{
    /* "kvm", or a list tried in order ("kvm:tcg"): vmm is the kvm part. */
    if (strcmp(accel, "kvm") != 0 && !g_str_has_prefix(accel, "kvm:"))
        return config_fail(err, "%s: accel=%s: vmm runs on KVM only; give accel=kvm", opt, accel);
    return 0;
}

static int opt_machine(struct vm_config *c, struct qemu_compat *q, struct qc_state *st, const char *arg,
                       GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-machine", arg, "type", err);
    if (!p)
        return -1;
    const char *type = opts_get(p, "type");
    static const char *const k[] = { "type", "memory-backend", NULL };
    if (qc_check_keys("-machine", type ? type : "", p, k, err) < 0)
        return -1;
    const char *accel = opts_get(p, "accel");
    if (accel && check_accel("-machine", accel, err) < 0)
        return -1;
    if (type) {
        if (strcmp(type, "none") == 0)
            q->probe = true;
        else if (!machine_known(type))
            return config_fail(err, "-machine %s: vmm offers the machine 'pc' (pc-i440fx-7.2: PCI bus 0, devices at "
                        "bus=pci.0,addr=N) and 'none'", type);
        g_free(q->machine_type);
        q->machine_type = g_strdup(type);
    }
    const char *mb = opts_get(p, "memory-backend");
    if (mb) {
        g_free(st->memory_backend);
        st->memory_backend = g_strdup(mb);
    }
    (void)c;
    return 0;
}

static int opt_cpu(struct vm_config *c, struct qemu_compat *q, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-cpu", arg, "model", err);
    if (!p)
        return -1;
    const char *model = opts_get(p, "model");
    if (!model || (strcmp(model, "host") != 0 && strcmp(model, "max") != 0))
        return config_fail(err, "-cpu %s: vmm offers the CPU models host and max (<cpu mode='host-passthrough'> or "
                    "'maximum')", model ? model : "");
    static const char *const k[] = { "model", NULL };
    if (qc_check_keys("-cpu", model, p, k, err) < 0)
        return -1;
    bool mig = true;
    if (opts_get_bool("-cpu", p, "migratable", &mig, err) < 0)
        return -1;
    c->cpu_model = CPU_MODEL_HOST;
    q->cpu_migratable = mig;
    return 0;
}

static int parse_uint(const char *opt, const char *key, const char *v, unsigned max, unsigned *out, GError **err)
{
    char *end;
    errno = 0;
    unsigned long n = v ? strtoul(v, &end, 10) : 0;
    if (!v || !g_ascii_isdigit(v[0]) || *end || errno || n > max)
        return config_fail(err, "%s: %s=%s is not a number up to %u", opt, key, v ? v : "", max);
    *out = (unsigned)n;
    return 0;
}

static int opt_smp(struct vm_config *c, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-smp", arg, "cpus", err);
    if (!p)
        return -1;
    static const char *const k[] = { "cpus", "maxcpus", NULL };
    if (qc_check_keys("-smp", "", p, k, err) < 0)
        return -1;
    unsigned cpus = 1, max = 0, s = 1, d = 1, co = 1, t = 1;
    if (opts_get(p, "cpus") && parse_uint("-smp", "cpus", opts_get(p, "cpus"), 100000, &cpus, err) < 0)
        return -1;
    if (opts_get(p, "maxcpus") && parse_uint("-smp", "maxcpus", opts_get(p, "maxcpus"), 100000, &max, err) < 0)
        return -1;
    if ((opts_get(p, "sockets") && parse_uint("-smp", "sockets", opts_get(p, "sockets"), 100000, &s, err) < 0) ||
        (opts_get(p, "dies") && parse_uint("-smp", "dies", opts_get(p, "dies"), 100000, &d, err) < 0) ||
        (opts_get(p, "cores") && parse_uint("-smp", "cores", opts_get(p, "cores"), 100000, &co, err) < 0) ||
        (opts_get(p, "threads") && parse_uint("-smp", "threads", opts_get(p, "threads"), 100000, &t, err) < 0))
        return -1;
    if (!max)
        max = cpus;
    if ((opts_get(p, "sockets") || opts_get(p, "cores") || opts_get(p, "dies")) && (uint64_t)s * d * co * t != max)
        return config_fail(err, "-smp: sockets*dies*cores*threads (%u) is not maxcpus (%u)", s * d * co * t, max);
    c->cpus_boot = cpus;
    c->cpus_max = max;
    return 0;
}

static int opt_m(struct vm_config *c, struct qc_state *st, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-m", arg, "size", err);
    if (!p)
        return -1;
    static const char *const k[] = { "size", NULL };
    if (qc_check_keys("-m", "", p, k, err) < 0)   /* slots=, maxmem=: DIMM hotplug, which vmm does not have */
        return -1;
    const char *size = opts_get(p, "size");
    int r = size ? parse_size(size, MIB, &c->mem_size) : -EINVAL;
    if (r < 0)
        return config_fail(err, "-m: '%s' is not a size (a number of MiB, or with a K, M, G suffix)", size ? size : "");
    st->have_mem = true;
    return 0;
}

/* addr=0xN or 0xN.0 on bus pci.0: the slot. */
static int pci_addr(const char *what, GPtrArray *p, int *slot, GError **err)
{
    const char *bus = opts_get(p, "bus"), *addr = opts_get(p, "addr");
    if (bus && strcmp(bus, "pci.0") != 0)
        return config_fail(err, "-device %s: bus=%s: vmm has the one PCI bus pci.0", what, bus);
    bool mf = false;
    if (opts_get_bool("-device", p, "multifunction", &mf, err) < 0)
        return -1;
    if (mf)
        return config_fail(err, "-device %s: multifunction=on is not supported by vmm", what);
    *slot = 0;
    if (!addr)
        return 0;
    char *end;
    errno = 0;
    unsigned long s = strtoul(addr, &end, 0);
    if (end == addr || errno || (*end && strcmp(end, ".0") != 0 && strcmp(end, ".00") != 0))
        return config_fail(err, "-device %s: addr=%s is not a PCI device number (function 0) like 0x3", what, addr);
    if (s < 1 || s >= 32)
        return config_fail(err, "-device %s: addr=%s: the slot must be 1 to 31", what, addr);
    *slot = (int)s;
    return 0;
}

/* A chardev as a --serial/--console backend. */
static int use_chardev(struct qc_state *st, const char *what, const char *id, enum serial_mode *mode, char **path,
                       GError **err)
{
    if (!id)
        return config_fail(err, "-device %s: no chardev=", what);
    struct qc_chardev *ch = qc_find_chardev(st, id);
    if (!ch)
        return config_fail(err, "-device %s: chardev '%s' is not a -chardev", what, id);
    if (ch->used)
        return config_fail(err, "-device %s: chardev '%s' is used twice", what, id);
    ch->used = true;
    g_clear_pointer(path, g_free);
    if (strcmp(ch->backend, "pty") == 0)
        *mode = SERIAL_PTY;
    else if (strcmp(ch->backend, "null") == 0)
        *mode = SERIAL_OFF;
    else if (strcmp(ch->backend, "file") == 0) {
        *mode = SERIAL_FILE;
        if (g_str_has_prefix(ch->path, "/dev/fdset/")) {
            /* the file libvirt opened (O_APPEND or truncated, as it chose):
             * the device writes to that fd as it is (char_backend's
             * /dev/fd/N) */
            const char *set = ch->path + strlen("/dev/fdset/");
            int fd = qc_fdset_fd(st, set, O_WRONLY);
            if (fd < 0)
                return config_fail(err, "-chardev file,id=%s: path=%s: no -add-fd set=%s with a writable fd", id, ch->path,
                            set);
            *path = g_strdup_printf("/dev/fd/%d", fd);
        } else {
            *path = g_strdup(ch->path);
        }
    } else if (ch->path) {
        if (ch->wait)
            return config_fail(err, "-chardev socket,id=%s: wait=on is not supported for a %s; give wait=off", id, what);
        *mode = SERIAL_SOCKET;
        *path = g_strdup(ch->path);
    } else {
        return config_fail(err, "-chardev socket,id=%s,fd=%d: vmm cannot serve a %s on an inherited socket; use a pty, a file "
                    "or path=", id, ch->fd, what);
    }
    return 0;
}

static int dup_id(struct vm_config *c, const char *id)
{
    for (unsigned i = 0; i < c->nr_disks; i++)
        if (strcmp(c->disks[i].id, id) == 0)
            return 1;
    for (unsigned i = 0; i < c->nr_nets; i++)
        if (strcmp(c->nets[i].id, id) == 0)
            return 1;
    return 0;
}

static int opt_device(struct vm_config *c, struct qemu_compat *q, struct qc_state *st, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-device", arg, "driver", err);
    if (!p)
        return -1;
    const char *drv = opts_get(p, "driver"), *id = opts_get(p, "id");
    if (!drv)
        return config_fail(err, "-device: no driver; give e.g. -device virtio-blk-pci,drive=NODE,id=virtio-disk0");
    if (qemu_compat_ignored("-device", "driver", drv))
        return 0;
    if (strcmp(drv, "virtio-blk-pci") == 0) {
        static const char *const k[] = { "driver", "id", "bus", "addr", "drive", "num-queues", "serial", "iothread",
                                         "multifunction", NULL };
        if (qc_check_keys("-device", drv, p, k, err) < 0 || qc_need_id("-device", drv, id, err) < 0)
            return -1;
        if (c->nr_disks >= VMM_MAX_DISKS)
            return config_fail(err, "-device %s: at most %u disks", drv, VMM_MAX_DISKS);
        if (dup_id(c, id))
            return config_fail(err, "-device %s: id '%s' is used twice", drv, id);
        struct disk_config d = { .aio = BLOCK_AIO_IO_URING, .cache = BLOCK_CACHE_WRITEBACK, .num_queues = 1 };
        if (pci_addr(drv, p, &d.pci_slot, err) < 0)
            return -1;
        const char *drive = opts_get(p, "drive");
        if (!drive)
            return config_fail(err, "-device %s,id=%s: no drive= (a -blockdev node-name)", drv, id);
        struct qc_node *fmt = qc_find_node(st, drive);
        if (!fmt)
            return config_fail(err, "-device %s,id=%s: drive '%s' is not a -blockdev node", drv, id, drive);
        struct qc_node *proto = fmt->file ? qc_find_node(st, fmt->file) : fmt;
        if (fmt->used || proto->used)
            return config_fail(err, "-device %s,id=%s: drive '%s' is used by another device", drv, id, drive);
        fmt->used = proto->used = true;
        d.readonly = fmt->read_only || proto->read_only;
        if (fmt->direct || proto->direct)
            d.cache = BLOCK_CACHE_NONE;
        if (proto->aio)
            d.aio = strcmp(proto->aio, "native") == 0    ? BLOCK_AIO_NATIVE
                    : strcmp(proto->aio, "threads") == 0 ? BLOCK_AIO_THREADS
                                                         : BLOCK_AIO_IO_URING;
        const char *nq = opts_get(p, "num-queues"), *serial = opts_get(p, "serial"), *iot = opts_get(p, "iothread");
        if (nq && parse_uint("-device virtio-blk-pci", "num-queues", nq, VMM_DISK_MAX_QUEUES, &d.num_queues, err) < 0)
            return -1;
        if (nq && d.num_queues < 1)
            return config_fail(err, "-device %s: num-queues=0", drv);
        if (serial && strlen(serial) > VMM_DISK_SERIAL_MAX)
            return config_fail(err, "-device %s: serial '%s' is longer than %d bytes", drv, serial, VMM_DISK_SERIAL_MAX);
        d.path = g_strdup(proto->filename);
        d.node_name = g_strdup(drive);
        d.id = g_strdup(id);
        d.serial = g_strdup(serial);
        d.iothread = g_strdup(iot);
        c->disks = g_renew(struct disk_config, c->disks, c->nr_disks + 1);
        c->disks[c->nr_disks++] = d;
        return 0;
    }
    if (strcmp(drv, "virtio-net-pci") == 0) {
        static const char *const k[] = { "driver", "id", "bus", "addr", "netdev", "mac", "multifunction", NULL };
        if (qc_check_keys("-device", drv, p, k, err) < 0 || qc_need_id("-device", drv, id, err) < 0)
            return -1;
        if (c->nr_nets >= VMM_MAX_NICS)
            return config_fail(err, "-device %s: at most %u NICs", drv, VMM_MAX_NICS);
        if (dup_id(c, id))
            return config_fail(err, "-device %s: id '%s' is used twice", drv, id);
        struct net_config n = { .fd = -1, .num_queues = 1 };
        if (pci_addr(drv, p, &n.pci_slot, err) < 0)
            return -1;
        const char *nd = opts_get(p, "netdev"), *mac = opts_get(p, "mac");
        if (!nd)
            return config_fail(err, "-device %s,id=%s: no netdev=", drv, id);
        struct qc_netdev *b = qc_find_netdev(st, nd);
        if (!b)
            return config_fail(err, "-device %s,id=%s: netdev '%s' is not a -netdev", drv, id, nd);
        if (b->used)
            return config_fail(err, "-device %s,id=%s: netdev '%s' is used by another NIC", drv, id, nd);
        b->used = true;
        b->device = g_strdup(id);
        if (mac) {
            if (parse_mac(mac, n.mac) < 0 || (n.mac[0] & 1))
                return config_fail(err, "-device %s,id=%s: mac=%s is not a unicast MAC address", drv, id, mac);
            n.mac_set = true;
        }
        n.fd = b->fd;
        n.user = b->user;       /* the NIC takes the netdev's settings */
        b->user = NULL;
        n.id = g_strdup(id);
        c->nets = g_renew(struct net_config, c->nets, c->nr_nets + 1);
        c->nets[c->nr_nets++] = n;
        return 0;
    }
    if (strcmp(drv, "isa-serial") == 0) {
        static const char *const k[] = { "driver", "id", "chardev", "index", NULL };
        if (qc_check_keys("-device", drv, p, k, err) < 0)
            return -1;
        const char *idx = opts_get(p, "index");
        if ((idx && strcmp(idx, "0") != 0) || q->serial_dev_id)
            return config_fail(err, "-device isa-serial: vmm has one serial port (COM1, index=0)");
        if (use_chardev(st, drv, opts_get(p, "chardev"), &c->serial_mode, &c->serial_path, err) < 0)
            return -1;
        q->serial_label = g_strdup(opts_get(p, "chardev"));
        q->serial_dev_id = g_strdup(id ? id : "serial0");
        return 0;
    }
    if (strcmp(drv, "virtio-serial-pci") == 0) {
        static const char *const k[] = { "driver", "id", "bus", "addr", "multifunction", NULL };
        if (qc_check_keys("-device", drv, p, k, err) < 0 || qc_need_id("-device", drv, id, err) < 0)
            return -1;
        if (q->vserial_dev_id)
            return config_fail(err, "-device virtio-serial-pci: vmm has one virtio console device");
        if (pci_addr(drv, p, &c->console_pci_slot, err) < 0)
            return -1;
        q->vserial_dev_id = g_strdup(id);
        return 0;
    }
    if (strcmp(drv, "virtconsole") == 0) {
        static const char *const k[] = { "driver", "id", "chardev", "bus", "nr", NULL };
        if (qc_check_keys("-device", drv, p, k, err) < 0)
            return -1;
        const char *bus = opts_get(p, "bus"), *nr = opts_get(p, "nr");
        if (!q->vserial_dev_id)
            return config_fail(err, "-device virtconsole: needs a -device virtio-serial-pci before it");
        g_autofree char *want = g_strdup_printf("%s.0", q->vserial_dev_id);
        if (bus && strcmp(bus, want) != 0)
            return config_fail(err, "-device virtconsole: bus=%s is not the virtio-serial-pci's (%s)", bus, want);
        if ((nr && strcmp(nr, "0") != 0) || q->console_dev_id)
            return config_fail(err, "-device virtconsole: vmm's virtio console has one port (nr=0)");
        if (use_chardev(st, drv, opts_get(p, "chardev"), &c->console_mode, &c->console_path, err) < 0)
            return -1;
        q->console_label = g_strdup(opts_get(p, "chardev"));
        q->console_dev_id = g_strdup(id ? id : "console0");
        return 0;
    }
    return config_fail(err, "-device %s: device type '%s' is not supported by vmm", drv, drv);
}

static int opt_mon(struct vm_config *c, struct qemu_compat *q, struct qc_state *st, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any("-mon", arg, "chardev", err);
    if (!p)
        return -1;
    static const char *const k[] = { "chardev", "id", "mode", "pretty", NULL };
    if (qc_check_keys("-mon", "", p, k, err) < 0)
        return -1;
    const char *mode = opts_get(p, "mode"), *id = opts_get(p, "chardev");
    if (!mode || strcmp(mode, "control") != 0)
        return config_fail(err, "-mon: mode=%s: vmm offers QMP only; give mode=control", mode ? mode : "readline");
    if (!id)
        return config_fail(err, "-mon: no chardev=");
    struct qc_chardev *ch = qc_find_chardev(st, id);
    if (!ch)
        return config_fail(err, "-mon: chardev '%s' is not a -chardev", id);
    if (strcmp(ch->backend, "socket") != 0)
        return config_fail(err, "-mon: chardev '%s' is a %s; QMP needs a socket chardev", id, ch->backend);
    if (ch->used)
        return config_fail(err, "-mon: chardev '%s' is used twice", id);
    ch->used = true;
    g_autofree char *spec = NULL;
    if (ch->path) {
        /* config_parse_qmp takes ",," as a comma in the path. */
        g_auto(GStrv) parts = g_strsplit(ch->path, ",", -1);
        g_autofree char *esc = g_strjoinv(",,", parts);
        spec = g_strdup_printf("unix:%s,wait=%s", esc, ch->wait ? "on" : "off");
    } else {
        spec = g_strdup_printf("fd=%d,wait=%s", ch->fd, ch->wait ? "on" : "off");
    }
    if (config_parse_qmp(c, spec, err) < 0)
        return -1;
    if (!q->monitor_label)
        q->monitor_label = g_strdup(id);
    return 0;
}

/* ---- the option table ---- */

enum qc_phase { PH_EARLY, PH_DEVICES };

static const struct qc_option {
    const char *name;
    bool has_arg;
} options[] = {
    { "name", true }, { "S", false }, { "object", true }, { "machine", true }, { "M", true }, { "accel", true },
    { "enable-kvm", false }, { "cpu", true }, { "m", true }, { "overcommit", true }, { "smp", true },
    { "uuid", true }, { "display", true }, { "no-user-config", false }, { "nodefaults", false },
    { "nographic", false }, { "chardev", true }, { "mon", true }, { "qmp", true }, { "rtc", true },
    { "no-shutdown", false }, { "no-reboot", false }, { "no-acpi", false }, { "no-hpet", false },
    { "boot", true }, { "kernel", true }, { "initrd", true }, { "append", true }, { "blockdev", true },
    { "device", true }, { "netdev", true }, { "audiodev", true }, { "msg", true }, { "sandbox", true },
    { "global", true }, { "usb", false }, { "pidfile", true }, { "daemonize", false }, { "add-fd", true },
};

bool qemu_compat_wanted(int argc, char **argv)
{
    if (argc > 0 && argv[0]) {
        g_autofree char *base = g_path_get_basename(argv[0]);
        if (strcmp(base, "qemu-system-x86_64") == 0)
            return true;
    }
    int i = 1;
    while (i < argc && strcmp(argv[i], "-S") == 0)
        i++;
    if (i >= argc)
        return false;
    const char *a = argv[i];
    return a[0] == '-' && a[1] != '-' && a[1] && a[2];
}

static int simple_ignored(const char *opt, const char *arg, const char *implied, GError **err)
{
    g_autoptr(GPtrArray) p = opts_parse_any(opt, arg, implied, err);
    if (!p)
        return -1;
    static const char *const none[] = { NULL };
    return qc_check_keys(opt, "", p, none, err);
}

static int early_option(struct vm_config *c, struct qemu_compat *q, struct qc_state *st, const char *name,
                        const char *arg, GError **err)
{
    if (strcmp(name, "name") == 0) {
        g_autoptr(GPtrArray) p = opts_parse_any("-name", arg, "guest", err);
        if (!p)
            return -1;
        static const char *const k[] = { "guest", "process", NULL };
        if (qc_check_keys("-name", "", p, k, err) < 0)
            return -1;
        if (opts_get(p, "guest")) {
            g_free(c->name);
            c->name = g_strdup(opts_get(p, "guest"));
        }
    } else if (strcmp(name, "S") == 0) {
        c->paused = true;
    } else if (strcmp(name, "object") == 0) {
        return qc_opt_object(c, st, arg, err);
    } else if (strcmp(name, "machine") == 0 || strcmp(name, "M") == 0) {
        return opt_machine(c, q, st, arg, err);
    } else if (strcmp(name, "accel") == 0) {
        g_autoptr(GPtrArray) p = opts_parse_any("-accel", arg, "accel", err);
        if (!p)
            return -1;
        static const char *const k[] = { "accel", NULL };
        if (qc_check_keys("-accel", "", p, k, err) < 0)
            return -1;
        return check_accel("-accel", opts_get(p, "accel") ? opts_get(p, "accel") : "", err);
    } else if (strcmp(name, "enable-kvm") == 0) {
        /* what vmm does anyway */
    } else if (strcmp(name, "cpu") == 0) {
        return opt_cpu(c, q, arg, err);
    } else if (strcmp(name, "m") == 0) {
        return opt_m(c, st, arg, err);
    } else if (strcmp(name, "overcommit") == 0) {
        return simple_ignored("-overcommit", arg, NULL, err);
    } else if (strcmp(name, "smp") == 0) {
        return opt_smp(c, arg, err);
    } else if (strcmp(name, "uuid") == 0) {
        if (config_parse_uuid(arg, c->uuid) < 0)
            return config_fail(err, "-uuid: '%s' is not a UUID like 978c6af3-b5f0-4591-a637-630869349030", arg);
    } else if (strcmp(name, "display") == 0) {
        return simple_ignored("-display", arg, "type", err);
    } else if (strcmp(name, "chardev") == 0) {
        return qc_opt_chardev(st, arg, err);
    } else if (strcmp(name, "add-fd") == 0) {
        return qc_opt_add_fd(st, arg, err);
    } else if (strcmp(name, "qmp") == 0) {
        if (!g_str_has_prefix(arg, "unix:"))
            return config_fail(err, "-qmp %s: vmm serves QMP on unix:PATH,server=on,wait=off", arg);
        if (config_parse_qmp(c, arg, err) < 0) {
            g_prefix_error(err, "-qmp: ");
            return -1;
        }
        if (!q->monitor_label)
            q->monitor_label = g_strdup("compat_monitor0");
    } else if (strcmp(name, "rtc") == 0) {
        return simple_ignored("-rtc", arg, NULL, err);
    } else if (strcmp(name, "no-shutdown") == 0) {
        q->no_shutdown = true;
        c->no_shutdown = true;
    } else if (strcmp(name, "no-reboot") == 0) {
        c->reboot = REBOOT_EXIT;
    } else if (strcmp(name, "no-acpi") == 0) {
        return config_fail(err, "-no-acpi: vmm's machine is ACPI-only (the guest finds its devices through ACPI); "
                    "give the domain <features><acpi/></features>");
    } else if (strcmp(name, "boot") == 0) {
        return simple_ignored("-boot", arg, "order", err);
    } else if (strcmp(name, "kernel") == 0) {
        g_free(c->kernel);
        c->kernel = g_strdup(arg);
    } else if (strcmp(name, "initrd") == 0) {
        g_free(c->initrd);
        c->initrd = g_strdup(arg);
    } else if (strcmp(name, "append") == 0) {
        g_free(c->cmdline);
        c->cmdline = g_strdup(arg);
    } else if (strcmp(name, "blockdev") == 0) {
        return qc_opt_blockdev(st, arg, err);
    } else if (strcmp(name, "netdev") == 0) {
        return qc_opt_netdev(st, arg, err);
    } else if (strcmp(name, "audiodev") == 0) {
        return simple_ignored("-audiodev", arg, "driver", err);
    } else if (strcmp(name, "msg") == 0) {
        return simple_ignored("-msg", arg, NULL, err);
    } else if (strcmp(name, "sandbox") == 0 || strcmp(name, "no-user-config") == 0 ||
               strcmp(name, "nodefaults") == 0 || strcmp(name, "nographic") == 0 || strcmp(name, "usb") == 0 ||
               strcmp(name, "no-hpet") == 0) {
        /* in the ignored table as whole options */
    } else if (strcmp(name, "global") == 0) {
        g_autoptr(GPtrArray) p = opts_parse_any("-global", arg, NULL, err);
        if (!p)
            return -1;
        for (guint i = 0; i < p->len; i++) {
            struct opt_pair *o = p->pdata[i];
            if (!qemu_compat_ignored("-global", o->key, o->value))
                return config_fail(err, "-global %s: not supported by vmm", arg);
        }
    } else if (strcmp(name, "pidfile") == 0) {
        g_free(q->pidfile);
        q->pidfile = g_strdup(arg);
    } else if (strcmp(name, "daemonize") == 0) {
        q->daemonize = true;
    }
    return 0;
}

static void compat_node_free(gpointer p)
{
    struct qemu_compat_node *n = p;
    g_free(n->name);
    g_free(n->driver);
    g_free(n->filename);
    g_free(n->file);
    g_free(n);
}

static void compat_netdev_free(gpointer p)
{
    struct qemu_compat_netdev *n = p;
    g_free(n->id);
    g_free(n->device);
    g_free(n);
}

int qemu_compat_parse(struct vm_config *c, struct qemu_compat *q, int argc, char **argv, GError **err)
{
    memset(q, 0, sizeof(*q));
    q->cpu_migratable = true;
    /* QEMU mode has no default devices: COM1 only with -device isa-serial. */
    c->serial_mode = SERIAL_OFF;
    struct qc_state st = {
        .chardevs = g_ptr_array_new_with_free_func(qc_chardev_free),
        .nodes = g_ptr_array_new_with_free_func(qc_node_free),
        .netdevs = g_ptr_array_new_with_free_func(qc_netdev_free),
        .objects = g_ptr_array_new_with_free_func(qc_object_free),
        .fdsets = g_array_new(FALSE, FALSE, sizeof(struct qc_fdset_fd)),
    };
    int r = -1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-version") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("QEMU emulator version %d.%d.%d (vmm %s; QEMU-compatible front end)\n", QMP_QEMU_MAJOR,
                   QMP_QEMU_MINOR, QMP_QEMU_MICRO, VMM_VERSION);
            r = 1;
            goto out;
        }
    /* Two passes, as QEMU: what devices refer to (-chardev, -blockdev,
     * -netdev, -object) first, then -device and -mon. */
    for (int phase = PH_EARLY; phase <= PH_DEVICES; phase++) {
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i];
            if (a[0] != '-' || !a[1]) {
                config_fail(err, "'%s': expected an option (QEMU-style, e.g. -machine)", a);
                goto out;
            }
            const char *name = a + 1 + (a[1] == '-');
            const struct qc_option *o = NULL;
            for (size_t k = 0; k < G_N_ELEMENTS(options); k++)
                if (strcmp(options[k].name, name) == 0)
                    o = &options[k];
            if (!o) {
                config_fail(err, "%s: option not supported by vmm (see README, QEMU compatibility)", a);
                goto out;
            }
            const char *arg = NULL;
            if (o->has_arg) {
                if (i + 1 >= argc) {
                    config_fail(err, "%s: needs a value", a);
                    goto out;
                }
                arg = argv[++i];
            }
            bool dev = strcmp(name, "device") == 0 || strcmp(name, "mon") == 0;
            if (phase == PH_EARLY && !dev) {
                if (early_option(c, q, &st, name, arg, err) < 0)
                    goto out;
            } else if (phase == PH_DEVICES && dev) {
                if ((strcmp(name, "device") == 0 ? opt_device(c, q, &st, arg, err) : opt_mon(c, q, &st, arg, err)) < 0)
                    goto out;
            }
        }
    }
    /* What nothing used is refused: vmm would not create it. */
    for (guint i = 0; i < st.chardevs->len; i++) {
        struct qc_chardev *ch = st.chardevs->pdata[i];
        if (!ch->used) {
            config_fail(err, "-chardev %s,id=%s: no device uses it (vmm creates chardevs only for isa-serial, "
                 "virtconsole and -mon)", ch->backend, ch->id);
            goto out;
        }
    }
    for (guint i = 0; i < st.nodes->len; i++) {
        struct qc_node *n = st.nodes->pdata[i];
        if (!n->used) {
            config_fail(err, "-blockdev %s,node-name=%s: no device uses it", n->driver, n->name);
            goto out;
        }
    }
    for (guint i = 0; i < st.netdevs->len; i++) {
        struct qc_netdev *n = st.netdevs->pdata[i];
        if (!n->used) {
            config_fail(err, "-netdev %s,id=%s: no NIC uses it", n->user ? "user" : "tap", n->id);
            goto out;
        }
    }
    if (q->vserial_dev_id && !q->console_dev_id) {
        config_fail(err, "-device virtio-serial-pci,id=%s: vmm's virtio console needs a virtconsole on it", q->vserial_dev_id);
        goto out;
    }
    for (guint i = 0; i < st.objects->len; i++) {
        struct qc_object *o = st.objects->pdata[i];
        if (!st.memory_backend || strcmp(st.memory_backend, o->id) != 0) {
            config_fail(err, "-object %s,id=%s: only the machine's memory-backend= is supported", o->type, o->id);
            goto out;
        }
        if (st.have_mem && o->size != c->mem_size) {
            config_fail(err, "-object %s,id=%s: size %" G_GUINT64_FORMAT " is not -m's %" G_GUINT64_FORMAT, o->type, o->id,
                 o->size, c->mem_size);
            goto out;
        }
        c->mem_size = o->size;
        c->mem_shared = o->share;
        c->mem_hugepages = o->hugepages;
    }
    if (st.memory_backend && !st.objects->len) {
        config_fail(err, "-machine memory-backend=%s: no such -object", st.memory_backend);
        goto out;
    }
    if (!q->probe && !c->kernel) {
        config_fail(err, "no -kernel: vmm boots a kernel directly (the domain's <os><kernel>); firmware boot is not supported");
        goto out;
    }
    if (q->probe && (c->nr_disks || c->nr_nets || c->kernel)) {
        config_fail(err, "-machine none: no devices or kernel with the 'none' machine");
        goto out;
    }
    if (!c->cmdline)
        c->cmdline = g_strdup("");
    /* The backends, for the hotplug registry (every one is used by now). */
    q->blockdevs = g_ptr_array_new_with_free_func(compat_node_free);
    q->netdevs = g_ptr_array_new_with_free_func(compat_netdev_free);
    for (guint i = 0; i < st.nodes->len; i++) {
        struct qc_node *n = st.nodes->pdata[i];
        struct qc_node *proto = n->file ? qc_find_node(&st, n->file) : n;
        struct qemu_compat_node *b = g_new0(struct qemu_compat_node, 1);
        b->name = g_strdup(n->name);
        b->driver = g_strdup(n->driver);
        b->filename = g_strdup(proto->filename);
        b->file = g_strdup(n->file);
        b->read_only = n->read_only;
        b->direct = n->direct;
        b->aio = !proto->aio || strcmp(proto->aio, "io_uring") == 0 ? BLOCK_AIO_IO_URING
                 : strcmp(proto->aio, "native") == 0                ? BLOCK_AIO_NATIVE
                                                                    : BLOCK_AIO_THREADS;
        g_ptr_array_add(q->blockdevs, b);
    }
    for (guint i = 0; i < st.netdevs->len; i++) {
        struct qc_netdev *n = st.netdevs->pdata[i];
        struct qemu_compat_netdev *b = g_new0(struct qemu_compat_netdev, 1);
        b->id = g_strdup(n->id);
        b->device = g_strdup(n->device);
        g_ptr_array_add(q->netdevs, b);
    }
    r = 0;
out:
    g_ptr_array_unref(st.chardevs);
    g_ptr_array_unref(st.nodes);
    g_ptr_array_unref(st.netdevs);
    g_ptr_array_unref(st.objects);
    g_array_unref(st.fdsets);
    g_free(st.memory_backend);
    return r;
}

void qemu_compat_clear(struct qemu_compat *q)
{
    g_free(q->pidfile);
    g_free(q->machine_type);
    g_free(q->monitor_label);
    g_free(q->serial_label);
    g_free(q->serial_dev_id);
    g_free(q->console_label);
    g_free(q->console_dev_id);
    g_free(q->vserial_dev_id);
    if (q->blockdevs)
        g_ptr_array_unref(q->blockdevs);
    if (q->netdevs)
        g_ptr_array_unref(q->netdevs);
    memset(q, 0, sizeof(*q));
}

/* ---- -daemonize and -pidfile ---- */

static int ready_fd = -1;
static bool pidfile_written;

int qemu_compat_daemonize(GError **err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return config_fail(err, "-daemonize: pipe: %s", g_strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return config_fail(err, "-daemonize: fork: %s", g_strerror(errno));
    if (pid > 0) {
        close(p[1]);
        char b;
        ssize_t n;
        do
            n = read(p[0], &b, 1);
        while (n < 0 && errno == EINTR);
        if (n == 1)
            _exit(0);
        /* The child failed before it was ready (it said why on stderr). */
        int status;
        if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
            _exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : VMM_EXIT_HOST);
        _exit(VMM_EXIT_HOST);
    }
    close(p[0]);
    ready_fd = p[1];
    setsid();
    return 0;
}

int qemu_compat_daemon_ready(const struct qemu_compat *q, GError **err)
{
    if (q->pidfile) {
        int fd = open(q->pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return config_fail(err, "-pidfile %s: %s", q->pidfile, g_strerror(errno));
        g_autofree char *s = g_strdup_printf("%d\n", (int)getpid());
        ssize_t w = write(fd, s, strlen(s));
        close(fd);
        if (w != (ssize_t)strlen(s))
            return config_fail(err, "-pidfile %s: write failed", q->pidfile);
        pidfile_written = true;
    }
    if (ready_fd >= 0) {
        /* Nothing of the parent's stdio stays open: libvirt reads its
         * stdout/stderr pipes until EOF. */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            if (null > 2)
                close(null);
        }
        char b = 1;
        if (write(ready_fd, &b, 1) != 1) {
            /* the parent is gone; nothing to tell */
        }
        close(ready_fd);
        ready_fd = -1;
    }
    return 0;
}

void qemu_compat_cleanup(const struct qemu_compat *q)
{
    if (pidfile_written && q->pidfile)
        unlink(q->pidfile);
}
