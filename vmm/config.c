#include "vmm/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/net_user.h"
#include "devices/tap.h"
#include "vmm/log.h"
#include "vmm/options.h"

#ifndef VMM_VERSION
#define VMM_VERSION "0.0.0"
#endif

#define MIB (1024ULL * 1024)
#define MEM_MIN (4 * MIB)
#define MEM_MAX (1024ULL * 1024 * MIB)     /* 1 TiB */
#define MEM_DEFAULT (512 * MIB)
#define HUGEPAGE_SIZE (2 * MIB)

G_DEFINE_QUARK(vmm-config-error-quark, config_error)

void config_init_defaults(struct vm_config *c)
{
    memset(c, 0, sizeof(*c));
    c->cpus_boot = 1;
    c->cpus_max = 1;
    c->cpu_model = CPU_MODEL_HOST;
    c->mem_size = MEM_DEFAULT;
    c->mem_hotplug_block = VMEM_BLOCK_DEFAULT;
    c->serial_mode = SERIAL_STDIO;
    c->reboot = REBOOT_RESTART;
    c->log_level = LOG_WARN;
    strcpy(c->uuid, "00000000-0000-0000-0000-000000000000");
}

void config_clear(struct vm_config *c)
{
    g_free(c->name);
    g_clear_pointer(&c->guest_cpuid, g_free);
    g_free(c->kernel);
    g_free(c->initrd);
    g_free(c->cmdline);
    g_free(c->serial_path);
    g_free(c->console_path);
    g_free(c->restore_dir);
    g_free(c->incoming);
    for (unsigned i = 0; i < c->nr_disks; i++) {
        g_free(c->disks[i].id);
        g_free(c->disks[i].path);
        g_free(c->disks[i].serial);
        g_free(c->disks[i].iothread);
        g_free(c->disks[i].node_name);
    }
    g_free(c->disks);
    for (unsigned i = 0; i < c->nr_nets; i++) {
        g_free(c->nets[i].id);
        g_free(c->nets[i].tap);
        net_user_opts_clear(c->nets[i].user);
        g_free(c->nets[i].user);
        tap_close(c->nets[i].backend);
    }
    g_free(c->nets);
    for (unsigned i = 0; i < c->nr_iothreads; i++)
        g_free(c->iothreads[i]);
    g_free(c->iothreads);
    for (unsigned i = 0; i < c->nr_qmp; i++)
        g_free(c->qmp[i].path);
    g_free(c->qmp);
    for (unsigned i = 0; i < VMM_MAX_CPUS; i++)
        g_free(c->cpu_ids[i]);
    memset(c, 0, sizeof(*c));
}

bool config_cpu_present(const struct vm_config *c, unsigned index)
{
    return index < c->cpus_boot || (index < c->cpus_max && index < VMM_MAX_CPUS && c->cpu_ids[index]);
}

const char *config_cpu_qom_type(const struct vm_config *cfg)
{
    return cfg->cpu_model == CPU_MODEL_BASELINE ? "qemu64-x86_64-cpu" : "host-x86_64-cpu";
}

char *config_cpu_qom_path(const struct vm_config *cfg, unsigned index)
{
    if (!config_cpu_present(cfg, index))
        return NULL;
    if (index < cfg->cpus_boot)
        return g_strdup_printf("/machine/unattached/device[%u]", index);
    if (cfg->cpu_ids[index][0])
        return g_strdup_printf("/machine/peripheral/%s", cfg->cpu_ids[index]);
    return g_strdup_printf("/machine/peripheral-anon/cpu[%u]", index);
}


int parse_size(const char *s, uint64_t default_unit, uint64_t *out)
{
    if (!s || !g_ascii_isdigit(s[0]))
        return -EINVAL;
    errno = 0;
    char *end;
    guint64 v = g_ascii_strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    uint64_t unit = default_unit;
    if (*end) {
        switch (g_ascii_toupper(*end)) {
        case 'B': unit = 1; break;
        case 'K': unit = 1ULL << 10; break;
        case 'M': unit = 1ULL << 20; break;
        case 'G': unit = 1ULL << 30; break;
        case 'T': unit = 1ULL << 40; break;
        default: return -EINVAL;
        }
        end++;
        if (unit != 1 && (g_ascii_strcasecmp(end, "") == 0 || g_ascii_strcasecmp(end, "B") == 0 ||
                          g_ascii_strcasecmp(end, "iB") == 0))
            end += strlen(end);
        if (*end)
            return -EINVAL;
    }
    if (v > UINT64_MAX / unit)
        return -ERANGE;
    *out = v * unit;
    return 0;
}

void config_print_help(void)
{
    printf(
"Usage: vmm --kernel PATH [options]\n"
"       vmm --restore DIR [--qmp ...] [--paused] [--serial ...] [--console ...]\n"
"       vmm --incoming tcp:HOST:PORT|unix:PATH [the same]\n"
"Boots a guest on /dev/kvm: one process is one VM.\n"
"\n"
"Guest image:\n"
"  --kernel PATH          kernel to boot: a Linux bzImage, or an ELF with a PVH entry\n"
"                         note (XEN_ELFNOTE_PHYS32_ENTRY), e.g. a vmlinux or a unikernel\n"
"  --initrd PATH          initial ramdisk (Linux initrd, or PVH module 0)\n"
"  --cmdline STR          kernel command line (default: \"console=ttyS0\")\n"
"\n"
"Machine:\n"
"  --cpus N | boot=N,max=M,nested=on|off\n"
"                         vCPUs at boot (default 1); max: up to how many CPUs may be\n"
"                         plugged in at runtime (QMP device_add, ACPI CPU hotplug);\n"
"                         nested: expose SVM/VMX so the guest can run its own VMs\n"
"                         (default: on where the host KVM can nest; on where it cannot\n"
"                         is an error)\n"
"  --cpu-model host|baseline\n"
"                         host: what KVM supports (default); baseline: hides XSAVE, AVX,\n"
"                         FMA, CMPXCHG16B, SSE3 and later, so the guest can move to older\n"
"                         hosts and runs under KVM's instruction emulator; vmm warns\n"
"                         when the host's KVM shows the guest features anyway\n"
"  --memory SIZE | size=SIZE,hugepages=on|off,shared=on|off[,hotplug_size=H\n"
"           [,hotplug_block=B][,requested_size=R]]\n"
"                         guest RAM (default 512M); SIZE takes K, M, G, T suffixes,\n"
"                         a bare number is MiB; hugepages=on backs RAM with 2M huge\n"
"                         pages (size a multiple of 2M, pool in /proc/sys/vm/nr_hugepages);\n"
"                         shared=on maps it shared so other processes may map it too;\n"
"                         hotplug_size=H adds a virtio-mem device (id vmem0) managing H\n"
"                         bytes above RAM in blocks of B (power of two, 2M..1G, default\n"
"                         2M; H a multiple of B); the guest plugs up to R (default 0),\n"
"                         changed at run time with QMP qom-set requested-size\n"
"  --name NAME            name of the VM (process title, logs, QMP query-name)\n"
"  --uuid UUID            the VM's UUID (QMP query-uuid; default all zero)\n"
"\n"
"Devices:\n"
"  --serial stdio|pty|file=PATH|socket=PATH|off\n"
"                         COM1 (16550A at 0x3f8, IRQ 4); default stdio; on a terminal\n"
"                         it goes raw and Ctrl-A x quits vmm; socket: a unix socket\n"
"                         server at PATH, one client at a time (output is dropped\n"
"                         while none is connected); file: created or truncated, but\n"
"                         file=/dev/fd/N (N > 2) writes to inherited fd N as it is\n"
"  --console stdio|pty|file=PATH|socket=PATH|off\n"
"                         a virtio-console device (virtio-pci): the guest's hvc0\n"
"                         (Linux: console=hvc0), on the same backends as --serial;\n"
"                         default off. Only one of --serial and --console may be on\n"
"                         stdio. Output to stdio, a file or a socket client is never\n"
"                         dropped: a slow reader holds the guest back\n"
"  --rng                  a virtio-rng device (virtio-pci, in the first free slot of PCI\n"
"                         bus 0): the guest's hwrng, fed from the host's getrandom(2)\n"
"  --disk PATH | path=PATH,readonly=on|off,aio=io_uring|native|threads,\n"
"         cache=none|writeback,num_queues=N,serial=STR,id=ID,iothread=NAME\n"
"                         a virtio-blk disk (virtio-pci) on a raw image file or a block\n"
"                         device; may be given up to 16 times. readonly=on: the guest\n"
"                         sees a read-only disk and writes fail; aio: the I/O engine\n"
"                         (default io_uring; native is Linux AIO; threads a small pool\n"
"                         of I/O threads); cache=none opens with O_DIRECT (default\n"
"                         writeback: the host page cache); a guest flush is fdatasync\n"
"                         either way; num_queues: request queues (1-64, default 1);\n"
"                         serial: up to 20 bytes the guest reads as the disk's ID;\n"
"                         id: a name for the disk (default disk0, disk1, ...);\n"
"                         iothread: run its queues and I/O on that --object iothread\n"
"                         instead of the main loop\n"
"  --net tap=NAME|fd=N[,mac=XX:XX:XX:XX:XX:XX,num_queues=N,id=ID]\n"
"                         a virtio-net NIC (virtio-pci) on a Linux tap: tap=NAME opens\n"
"                         (or creates: needs CAP_NET_ADMIN) the tap NAME, fd=N takes an\n"
"                         inherited tap fd opened with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR;\n"
"                         link up, checksum and TSO offloads as the guest negotiates;\n"
"                         mac: default a locally administered one derived from --name\n"
"                         and id; num_queues: queue pairs, each a queue of a\n"
"                         multi-queue tap (1-16, default 1; tap= only); id: default\n"
"                         net0, net1, ...; up to 8 NICs\n"
"  --net user[,id=ID,mac=..,net=10.0.2.0/24,host=..,dns=..,dhcpstart=..,\n"
"            hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT,...]\n"
"                         a virtio-net NIC on user-mode networking (libslirp, no\n"
"                         privileges): QEMU's defaults, gateway (the host) 10.0.2.2,\n"
"                         DNS 10.0.2.3, DHCP from 10.0.2.15, IPv6 fec0::/64; guest\n"
"                         connections become the host's own sockets; hostfwd (up to 16)\n"
"                         forwards a host port to the guest; also restrict=on|off,\n"
"                         ipv4=, ipv6=, hostname=, domainname=; one queue pair, no\n"
"                         host-side offloads; a VM with one cannot be snapshotted or\n"
"                         migrated\n"
"  --object iothread,id=NAME\n"
"                         an I/O thread: one more event loop (io_uring) on a thread of\n"
"                         its own, for the devices given iothread=NAME; up to 16\n"
"  --test-exit            QEMU isa-debug-exit compatible port 0xf4: the guest writes V,\n"
"                         vmm exits with status (V << 1) | 1\n"
"\n"
"Control:\n"
"  --qmp unix:PATH[,server=on][,wait=on|off] | fd=N[,wait=on|off]\n"
"                         a QMP control socket (QEMU's protocol: socat, vmmctl, libvirt):\n"
"                         listens on the unix socket PATH (removed at exit), or on an\n"
"                         inherited listening socket fd N (a connected one is one client);\n"
"                         several clients at once; may be given several times. wait=on:\n"
"                         the guest starts only once a first client has connected\n"
"                         (default off)\n"
"\n"
"Behaviour:\n"
"  --reboot restart|exit  on a guest reset or triple fault, restart the guest (default)\n"
"                         or exit with status 4 (reset) / 6 (triple fault); QMP\n"
"                         system_reset counts as a reset\n"
"  -S, --paused           create the vCPUs but run none until the QMP command cont\n"
"                         (query-status says \"prelaunch\" until then); needs --qmp\n"
"  --restore DIR          start the VM saved in DIR by the QMP command x-vmm-snapshot\n"
"                         (DIR/state, DIR/memory) where it was: the machine, its disks\n"
"                         and NICs come from the snapshot, RAM is mapped from\n"
"                         DIR/memory (copy on write, not read up front); only --qmp,\n"
"                         --paused, --serial, --console (a new backend, not on/off),\n"
"                         --net fd=N|tap=NAME[,id=ID] (a new backend for the saved NIC\n"
"                         of that id; one that was on an inherited fd must get one)\n"
"                         and --log-level may be added. The guest keeps its saved\n"
"                         CPUID; one this host's KVM cannot give (a CPU model\n"
"                         mismatch) or a bad snapshot: one line, exit 2\n"
"  --incoming tcp:HOST:PORT | unix:PATH | defer\n"
"                         wait there for a migration (QMP migrate on the source, which\n"
"                         sends the machine, its state and RAM; the VM runs here once\n"
"                         loaded); the same options as with --restore may be added,\n"
"                         and --cpu-model / --memory SIZE: what the source must have\n"
"                         (checked before any RAM or state is taken), as is the source\n"
"                         guest's CPUID (kept as it was). A broken or refused stream,\n"
"                         a mismatch: one line, exit 2. QMP comes up first\n"
"                         (query-status \"inmigrate\"); defer: QMP migrate-incoming\n"
"                         {\"uri\": ...} then listens, QMP still answering (needs --qmp)\n"
"  --log-level error|warn|info|debug\n"
"                         what vmm logs on stderr (default warn)\n"
"  -h, --help             this text\n"
"  -V, --version          version\n"
"\n"
"Exit status:\n"
"  0   the guest powered off (ACPI S5), or vmm got SIGTERM/SIGINT/Ctrl-A x\n"
"  2   bad command line or configuration (one line on stderr says what)\n"
"  4   the guest reset (or QMP system_reset) and --reboot exit was given\n"
"  6   the guest triple-faulted and --reboot exit was given\n"
"  8   KVM could not run the guest (internal error; the guest RIP is printed)\n"
"  10  host problem: no /dev/kvm, out of memory, I/O error\n"
"  odd (V << 1) | 1 after a write of V to the --test-exit port\n"
"\n"
"QEMU-style command lines (libvirt's, or vmm run as qemu-system-x86_64) are\n"
"understood too; see README, \"libvirt (QEMU compatibility)\".\n"
"\n"
"Signals: SIGTERM/SIGINT/SIGHUP stop the guest; SIGUSR1 prints each vCPU's state\n"
"(KVM counters, then registers, MP state, pending events) on stderr.\n");
}

int config_fail(GError **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(err, CONFIG_ERROR, 0, msg);
    return -1;
}

static int parse_count(const char *opt, const char *v, unsigned *out, GError **err)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!g_ascii_isdigit(v[0]) || *end || errno || n > 1000000)
        return config_fail(err, "%s: '%s' is not a number of vCPUs; give e.g. --cpus 2 or --cpus boot=2,max=4", opt, v);
    *out = (unsigned)n;
    return 0;
}

static int parse_cpus(struct vm_config *c, const char *arg, GError **err)
{
    if (!*arg)
        return config_fail(err, "--cpus: empty value; give e.g. --cpus 2 or --cpus boot=2,max=4");
    g_autoptr(GPtrArray) pairs = opts_parse(arg, "boot", err);
    if (!pairs) {
        g_prefix_error(err, "--cpus: ");
        return -1;
    }
    bool have_max = false;
    for (guint i = 0; i < pairs->len; i++) {
        struct opt_pair *o = pairs->pdata[i];
        if (!o->value)
            return config_fail(err, "--cpus: '%s' needs a value, e.g. %s=2", o->key, o->key);
        if (strcmp(o->key, "boot") == 0) {
            if (parse_count("--cpus boot", o->value, &c->cpus_boot, err) < 0)
                return -1;
        } else if (strcmp(o->key, "max") == 0) {
            if (parse_count("--cpus max", o->value, &c->cpus_max, err) < 0)
                return -1;
            have_max = true;
        } else if (strcmp(o->key, "nested") == 0) {
            if (strcmp(o->value, "on") == 0)
                c->nested = NESTED_ON;
            else if (strcmp(o->value, "off") == 0)
                c->nested = NESTED_OFF;
            else
                return config_fail(err, "--cpus nested: '%s' is not one of on, off", o->value);
        } else {
            return config_fail(err, "--cpus: unknown key '%s'; known: boot, max, nested", o->key);
        }
    }
    if (!have_max)
        c->cpus_max = c->cpus_boot;
    return 0;
}

static int parse_memory(struct vm_config *c, const char *arg, GError **err)
{
    if (!*arg)
        return config_fail(err, "--memory: empty value; give e.g. --memory 512M or --memory size=2G,hugepages=on");
    g_autoptr(GPtrArray) pairs = opts_parse(arg, "size", err);
    if (!pairs) {
        g_prefix_error(err, "--memory: ");
        return -1;
    }
    for (guint i = 0; i < pairs->len; i++) {
        struct opt_pair *o = pairs->pdata[i];
        if (!o->value)
            return config_fail(err, "--memory: '%s' needs a value", o->key);
        if (strcmp(o->key, "size") != 0)
            c->memory_more_given = true;
        if (strcmp(o->key, "size") == 0) {
            int r = parse_size(o->value, MIB, &c->mem_size);
            if (r == -ERANGE)
                return config_fail(err, "--memory: size '%s' is too large", o->value);
            if (r < 0)
                return config_fail(err, "--memory: '%s' is not a size; give e.g. 512M or 2G", o->value);
        } else if (strcmp(o->key, "hotplug_size") == 0 || strcmp(o->key, "hotplug_block") == 0 ||
                   strcmp(o->key, "requested_size") == 0) {
            uint64_t *dst = strcmp(o->key, "hotplug_size") == 0    ? &c->mem_hotplug_size
                          : strcmp(o->key, "hotplug_block") == 0 ? &c->mem_hotplug_block
                                                                 : &c->mem_hotplug_requested;
            int r = parse_size(o->value, MIB, dst);
            if (r == -ERANGE)
                return config_fail(err, "--memory: %s '%s' is too large", o->key, o->value);
            if (r < 0)
                return config_fail(err, "--memory: %s '%s' is not a size; give e.g. 1G or 128M", o->key, o->value);
        } else if (strcmp(o->key, "hugepages") == 0 || strcmp(o->key, "shared") == 0) {
            bool *dst = o->key[0] == 'h' ? &c->mem_hugepages : &c->mem_shared;
            if (opts_parse_bool(o->value, dst) < 0)
                return config_fail(err, "--memory: %s=%s: expected on or off", o->key, o->value);
        } else {
            return config_fail(err, "--memory: unknown key '%s'; known: size, hugepages, shared, hotplug_size, "
                        "hotplug_block, requested_size", o->key);
        }
    }
    return 0;
}

static int parse_disk(struct vm_config *c, const char *arg, GError **err)
{
    if (!*arg)
        return config_fail(err, "--disk: empty value; give e.g. --disk disk.img or --disk path=disk.img,readonly=on");
    if (c->nr_disks >= VMM_MAX_DISKS)
        return config_fail(err, "--disk: at most %u disks", VMM_MAX_DISKS);
    g_autoptr(GPtrArray) pairs = opts_parse(arg, "path", err);
    if (!pairs) {
        g_prefix_error(err, "--disk: ");
        return -1;
    }
    struct disk_config d = { .aio = BLOCK_AIO_IO_URING, .cache = BLOCK_CACHE_WRITEBACK, .num_queues = 1 };
    for (guint i = 0; i < pairs->len; i++) {
        struct opt_pair *o = pairs->pdata[i];
        if (!o->value) {
            config_fail(err, "--disk: '%s' needs a value, e.g. %s=...", o->key, o->key);
            goto out;
        }
        if (strcmp(o->key, "path") == 0) {
            if (!*o->value) {
                config_fail(err, "--disk: path= is empty");
                goto out;
            }
            g_free(d.path);
            d.path = g_strdup(o->value);
        } else if (strcmp(o->key, "readonly") == 0) {
            if (opts_parse_bool(o->value, &d.readonly) < 0) {
                config_fail(err, "--disk readonly=%s: expected on or off", o->value);
                goto out;
            }
        } else if (strcmp(o->key, "aio") == 0) {
            if (strcmp(o->value, "io_uring") == 0)
                d.aio = BLOCK_AIO_IO_URING;
            else if (strcmp(o->value, "native") == 0)
                d.aio = BLOCK_AIO_NATIVE;
            else if (strcmp(o->value, "threads") == 0)
                d.aio = BLOCK_AIO_THREADS;
            else {
                config_fail(err, "--disk aio: '%s' is not one of io_uring, native, threads", o->value);
                goto out;
            }
        } else if (strcmp(o->key, "cache") == 0) {
            if (strcmp(o->value, "none") == 0)
                d.cache = BLOCK_CACHE_NONE;
            else if (strcmp(o->value, "writeback") == 0)
                d.cache = BLOCK_CACHE_WRITEBACK;
            else {
                config_fail(err, "--disk cache: '%s' is not one of none, writeback", o->value);
                goto out;
            }
        } else if (strcmp(o->key, "num_queues") == 0) {
            char *end;
            errno = 0;
            unsigned long n = strtoul(o->value, &end, 10);
            if (!g_ascii_isdigit(o->value[0]) || *end || errno || n < 1 || n > VMM_DISK_MAX_QUEUES) {
                config_fail(err, "--disk num_queues: '%s' is not a number from 1 to %u", o->value, VMM_DISK_MAX_QUEUES);
                goto out;
            }
            d.num_queues = (unsigned)n;
        } else if (strcmp(o->key, "serial") == 0) {
            if (strlen(o->value) > VMM_DISK_SERIAL_MAX) {
                config_fail(err, "--disk serial: '%s' is longer than %d bytes", o->value, VMM_DISK_SERIAL_MAX);
                goto out;
            }
            g_free(d.serial);
            d.serial = g_strdup(o->value);
        } else if (strcmp(o->key, "id") == 0) {
            if (!*o->value) {
                config_fail(err, "--disk: id= is empty");
                goto out;
            }
            g_free(d.id);
            d.id = g_strdup(o->value);
        } else if (strcmp(o->key, "iothread") == 0) {
            if (!*o->value) {
                config_fail(err, "--disk: iothread= is empty");
                goto out;
            }
            g_free(d.iothread);
            d.iothread = g_strdup(o->value);
        } else {
            config_fail(err, "--disk: unknown key '%s'; known: path, readonly, aio, cache, num_queues, serial, id, iothread",
                 o->key);
            goto out;
        }
    }
    if (!d.path) {
        config_fail(err, "--disk: no path; give --disk PATH or --disk path=PATH,...");
        goto out;
    }
    if (!d.id)
        d.id = g_strdup_printf("disk%u", c->nr_disks);
    for (unsigned i = 0; i < c->nr_disks; i++)
        if (strcmp(c->disks[i].id, d.id) == 0) {
            config_fail(err, "--disk: id '%s' is used by two disks", d.id);
            goto out;
        }
    c->disks = g_renew(struct disk_config, c->disks, c->nr_disks + 1);
    c->disks[c->nr_disks++] = d;
    return 0;
out:
    g_free(d.path);
    g_free(d.serial);
    g_free(d.id);
    g_free(d.iothread);
    return -1;
}

/* --object TYPE,key=value,...: only iothread,id=NAME so far. */
static int parse_object(struct vm_config *c, const char *arg, GError **err)
{
    g_autoptr(GPtrArray) pairs = opts_parse(arg, "type", err);
    if (!pairs) {
        g_prefix_error(err, "--object: ");
        return -1;
    }
    const char *type = NULL, *id = NULL;
    for (guint i = 0; i < pairs->len; i++) {
        struct opt_pair *o = pairs->pdata[i];
        if (!o->value)
            return config_fail(err, "--object: '%s' needs a value, e.g. --object iothread,id=io0", o->key);
        if (strcmp(o->key, "type") == 0)
            type = o->value;
        else if (strcmp(o->key, "id") == 0)
            id = o->value;
        else
            return config_fail(err, "--object: unknown key '%s'; known: id (e.g. --object iothread,id=io0)", o->key);
    }
    if (!type || strcmp(type, "iothread") != 0)
        return config_fail(err, "--object: '%s' is not a known object type; known: iothread (e.g. --object iothread,id=io0)",
                    type ? type : "");
    if (!id || !*id)
        return config_fail(err, "--object iothread: no id; give e.g. --object iothread,id=io0");
    if (c->nr_iothreads >= VMM_MAX_IOTHREADS)
        return config_fail(err, "--object iothread: at most %u I/O threads", VMM_MAX_IOTHREADS);
    for (unsigned i = 0; i < c->nr_iothreads; i++)
        if (strcmp(c->iothreads[i], id) == 0)
            return config_fail(err, "--object iothread: id '%s' is used twice", id);
    c->iothreads = g_renew(char *, c->iothreads, c->nr_iothreads + 1);
    c->iothreads[c->nr_iothreads++] = g_strdup(id);
    return 0;
}

/* --serial and --console: where a character device goes. */
int parse_mac(const char *s, uint8_t mac[6])
{
    if (strlen(s) != 17)
        return -1;
    for (int i = 0; i < 6; i++) {
        const char *p = s + 3 * i;
        if (!g_ascii_isxdigit(p[0]) || !g_ascii_isxdigit(p[1]) || (i < 5 && p[2] != ':'))
            return -1;
        mac[i] = (uint8_t)(g_ascii_xdigit_value(p[0]) << 4 | g_ascii_xdigit_value(p[1]));
    }
    return 0;
}

static int parse_net(struct vm_config *c, const char *arg, GError **err)
{
    if (!*arg)
        return config_fail(err, "--net: empty value; give e.g. --net tap=tap0 or --net fd=3");
    if (c->nr_nets >= VMM_MAX_NICS)
        return config_fail(err, "--net: at most %u NICs", VMM_MAX_NICS);
    g_autoptr(GPtrArray) pairs = opts_parse(arg, NULL, err);
    if (!pairs) {
        g_prefix_error(err, "--net: ");
        return -1;
    }
    struct net_config n = { .fd = -1, .num_queues = 1 };
    int r = -1;
    struct opt_pair *first = pairs->len ? pairs->pdata[0] : NULL;
    if (first && !first->value && strcmp(first->key, "user") == 0) {
        /* --net user[,...]: user networking (slirp) */
        n.user = g_new(struct net_user_opts, 1);
        net_user_opts_init(n.user);
    }
    for (guint i = n.user ? 1 : 0; i < pairs->len; i++) {
        struct opt_pair *o = pairs->pdata[i];
        if (n.user && o->value && strcmp(o->key, "mac") && strcmp(o->key, "id")) {
            int k = net_user_opt(n.user, "--net user", o->key, o->value, err);
            if (k < 0) {
                (*err)->domain = CONFIG_ERROR;
                goto out;
            }
            if (k == 0) {
                config_fail(err, "--net user: unknown key '%s'; known: id, mac, " NET_USER_KEYS, o->key);
                goto out;
            }
            continue;
        }
        if (!o->value) {
            config_fail(err, "--net: '%s' needs a value, e.g. %s=...", o->key, o->key);
            goto out;
        }
        if (strcmp(o->key, "tap") == 0) {
            if (!*o->value || strlen(o->value) >= 16 || strchr(o->value, '/') || strchr(o->value, ' ')) {
                config_fail(err, "--net tap: '%s' is not an interface name (1 to 15 bytes, no '/' or spaces)", o->value);
                goto out;
            }
            g_free(n.tap);
            n.tap = g_strdup(o->value);
        } else if (strcmp(o->key, "fd") == 0) {
            char *end;
            errno = 0;
            long v = strtol(o->value, &end, 10);
            if (!g_ascii_isdigit(o->value[0]) || *end || errno || v < 3 || v > INT_MAX) {
                config_fail(err, "--net fd: '%s' is not a file descriptor number (3 or more)", o->value);
                goto out;
            }
            n.fd = (int)v;
        } else if (strcmp(o->key, "mac") == 0) {
            if (parse_mac(o->value, n.mac) < 0) {
                config_fail(err, "--net mac: '%s' is not a MAC address like 52:54:00:12:34:56", o->value);
                goto out;
            }
            if (n.mac[0] & 1) {
                config_fail(err, "--net mac: %s is a multicast address; the first byte must be even", o->value);
                goto out;
            }
            n.mac_set = true;
        } else if (strcmp(o->key, "num_queues") == 0) {
            char *end;
            errno = 0;
            unsigned long v = strtoul(o->value, &end, 10);
            if (!g_ascii_isdigit(o->value[0]) || *end || errno || v < 1 || v > TAP_MAX_QUEUES) {
                config_fail(err, "--net num_queues: '%s' is not a number from 1 to %u", o->value, TAP_MAX_QUEUES);
                goto out;
            }
            n.num_queues = (unsigned)v;
        } else if (strcmp(o->key, "id") == 0) {
            if (!*o->value) {
                config_fail(err, "--net: id= is empty");
                goto out;
            }
            g_free(n.id);
            n.id = g_strdup(o->value);
        } else {
            config_fail(err, "--net: unknown key '%s'; known: tap, fd, mac, num_queues, id", o->key);
            goto out;
        }
    }
    if (n.user && net_user_opts_finish(n.user, "--net user", err) < 0) {
        (*err)->domain = CONFIG_ERROR;
        goto out;
    }
    if (n.tap && n.fd >= 0) {
        config_fail(err, "--net: give tap= or fd=, not both");
        goto out;
    }
    if (!n.tap && n.fd < 0 && !n.user) {
        config_fail(err, "--net: no backend; give tap=NAME, fd=N or user");
        goto out;
    }
    if (n.fd >= 0 && n.num_queues > 1) {
        config_fail(err, "--net fd=%d: num_queues=%u needs tap= (one inherited fd is one queue)", n.fd, n.num_queues);
        goto out;
    }
    if (!n.id)
        n.id = g_strdup_printf("net%u", c->nr_nets);
    for (unsigned i = 0; i < c->nr_nets; i++) {
        if (strcmp(c->nets[i].id, n.id) == 0) {
            config_fail(err, "--net: id '%s' is used by two NICs", n.id);
            goto out;
        }
        if (n.tap && c->nets[i].tap && strcmp(c->nets[i].tap, n.tap) == 0) {
            config_fail(err, "--net tap=%s: the tap is given twice", n.tap);
            goto out;
        }
        if (n.fd >= 0 && c->nets[i].fd == n.fd) {
            config_fail(err, "--net fd=%d: the fd is given twice", n.fd);
            goto out;
        }
    }
    c->nets = g_renew(struct net_config, c->nets, c->nr_nets + 1);
    c->nets[c->nr_nets++] = n;
    return 0;
out:
    g_free(n.tap);
    g_free(n.id);
    net_user_opts_clear(n.user);
    g_free(n.user);
    return r;
}

bool config_net_is_user(const struct net_config *n)
{
    return n->user || (n->backend && n->backend->complete_frames);
}

int config_open_nets(struct vm_config *c, GError **err)
{
    for (unsigned i = 0; i < c->nr_nets; i++) {
        struct net_config *n = &c->nets[i];
        if (n->backend)
            continue;
        GError *e = NULL;
        n->backend = n->user  ? net_user_open(n->user, n->id, &e)
                     : n->tap ? tap_open(n->tap, n->num_queues, &e)
                              : tap_from_fd(n->fd, &e);
        if (!n->backend) {
            g_set_error(err, CONFIG_ERROR, 0, "--net %s: %s", n->id, e->message);
            g_error_free(e);
            return -1;
        }
    }
    return 0;
}

void config_add_disk(struct vm_config *c, const struct disk_config *d)
{
    c->disks = g_renew(struct disk_config, c->disks, c->nr_disks + 1);
    struct disk_config *n = &c->disks[c->nr_disks++];
    *n = *d;
    n->id = g_strdup(d->id);
    n->path = g_strdup(d->path);
    n->serial = g_strdup(d->serial);
    n->iothread = g_strdup(d->iothread);
    n->node_name = g_strdup(d->node_name);
}

void config_add_net(struct vm_config *c, const struct net_config *n)
{
    c->nets = g_renew(struct net_config, c->nets, c->nr_nets + 1);
    struct net_config *e = &c->nets[c->nr_nets++];
    *e = *n;
    e->id = g_strdup(n->id);
    e->tap = g_strdup(n->tap);
    e->user = n->user ? net_user_opts_dup(n->user) : NULL;
}

bool config_has_device(const struct vm_config *c, const char *id)
{
    for (unsigned i = 0; i < c->nr_disks; i++)
        if (g_strcmp0(c->disks[i].id, id) == 0)
            return true;
    for (unsigned i = 0; i < c->nr_nets; i++)
        if (g_strcmp0(c->nets[i].id, id) == 0)
            return true;
    return false;
}

bool config_remove_device(struct vm_config *c, const char *id, struct tap **tap)
{
    for (unsigned i = 0; i < c->nr_disks; i++) {
        struct disk_config *d = &c->disks[i];
        if (g_strcmp0(d->id, id) != 0)
            continue;
        g_free(d->id);
        g_free(d->path);
        g_free(d->serial);
        g_free(d->iothread);
        g_free(d->node_name);
        memmove(d, d + 1, (c->nr_disks - i - 1) * sizeof(*d));
        c->nr_disks--;
        return true;
    }
    for (unsigned i = 0; i < c->nr_nets; i++) {
        struct net_config *n = &c->nets[i];
        if (g_strcmp0(n->id, id) != 0)
            continue;
        if (tap)
            *tap = n->backend;
        else
            tap_close(n->backend);
        g_free(n->id);
        g_free(n->tap);
        net_user_opts_clear(n->user);
        g_free(n->user);
        memmove(n, n + 1, (c->nr_nets - i - 1) * sizeof(*n));
        c->nr_nets--;
        return true;
    }
    return false;
}

static int parse_chardev(const char *opt, const char *arg, enum serial_mode *mode, char **path, GError **err)
{
    g_clear_pointer(path, g_free);
    if (strcmp(arg, "stdio") == 0)
        *mode = SERIAL_STDIO;
    else if (strcmp(arg, "pty") == 0)
        *mode = SERIAL_PTY;
    else if (strcmp(arg, "off") == 0 || strcmp(arg, "none") == 0)
        *mode = SERIAL_OFF;
    else if (g_str_has_prefix(arg, "file=") && arg[5]) {
        *mode = SERIAL_FILE;
        *path = g_strdup(arg + 5);
    } else if (g_str_has_prefix(arg, "socket=") && arg[7]) {
        *mode = SERIAL_SOCKET;
        *path = g_strdup(arg + 7);
    } else
        return config_fail(err, "%s: '%s' is not one of stdio, pty, file=PATH, socket=PATH, off", opt, arg);
    return 0;
}

int config_parse_uuid(const char *s, char out[37])
{
    static const int groups[] = { 8, 4, 4, 4, 12 };
    const char *p = s;
    for (unsigned g = 0; g < G_N_ELEMENTS(groups); g++) {
        for (int i = 0; i < groups[g]; i++, p++)
            if (!g_ascii_isxdigit(*p))
                return -EINVAL;
        if (g + 1 < G_N_ELEMENTS(groups) && *p++ != '-')
            return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    for (int i = 0; i < 36; i++)
        out[i] = g_ascii_tolower(s[i]);
    out[36] = 0;
    return 0;
}

int config_parse_qmp(struct vm_config *c, const char *arg, GError **err)
{
    struct qmp_endpoint ep = { .fd = -1 };
    const char *rest;
    if (g_str_has_prefix(arg, "unix:")) {
        /* The path runs to the first single ',' (",," is a comma in it). */
        GString *path = g_string_new(NULL);
        const char *s = arg + 5;
        while (*s) {
            if (*s == ',') {
                if (s[1] == ',') {
                    g_string_append_c(path, ',');
                    s += 2;
                    continue;
                }
                s++;
                break;
            }
            g_string_append_c(path, *s++);
        }
        ep.path = g_string_free(path, FALSE);
        rest = s;
        if (!*ep.path) {
            g_free(ep.path);
            return config_fail(err, "--qmp unix:: no path; give e.g. --qmp unix:/run/vmm/vm0.sock");
        }
        if (strlen(ep.path) > 107) {
            config_fail(err, "--qmp unix:%s: the path is %zu bytes, a unix socket path has at most 107; give a shorter one",
                 ep.path, strlen(ep.path));
            g_free(ep.path);
            return -1;
        }
    } else if (g_str_has_prefix(arg, "fd=")) {
        const char *v = arg + 3;
        size_t n = strcspn(v, ",");
        g_autofree char *num = g_strndup(v, n);
        char *end;
        errno = 0;
        long fd = strtol(num, &end, 10);
        if (!g_ascii_isdigit(num[0]) || *end || errno || fd > INT_MAX)
            return config_fail(err, "--qmp fd=%s: not a file descriptor number; give e.g. --qmp fd=3", num);
        ep.fd = (int)fd;
        rest = v[n] ? v + n + 1 : v + n;
    } else
        return config_fail(err, "--qmp %s: give unix:PATH[,server=on,wait=off] or fd=N (a socket)", arg);

    g_autoptr(GPtrArray) pairs = opts_parse(rest, NULL, err);
    if (!pairs) {
        g_prefix_error(err, "--qmp: ");
        g_free(ep.path);
        return -1;
    }
    for (guint i = 0; i < pairs->len; i++) {
        struct opt_pair *o = pairs->pdata[i];
        bool b;
        if (strcmp(o->key, "server") == 0) {
            if (o->value && opts_parse_bool(o->value, &b) < 0) {
                config_fail(err, "--qmp server=%s: give server=on", o->value);
                goto out;
            }
            if (o->value && !b) {
                config_fail(err, "--qmp server=off: vmm does not connect out, it listens; leave server= out or give server=on");
                goto out;
            }
        } else if (strcmp(o->key, "wait") == 0) {
            if (!o->value || opts_parse_bool(o->value, &b) < 0) {
                config_fail(err, "--qmp wait=%s: give wait=on or wait=off", o->value ? o->value : "");
                goto out;
            }
            ep.wait = b;
        } else if (strcmp(o->key, "nowait") == 0 && !o->value) {
            ep.wait = false;
        } else {
            config_fail(err, "--qmp: unknown key '%s'; known: server, wait (e.g. --qmp unix:/tmp/vm.sock,server=on,wait=off)",
                 o->key);
            goto out;
        }
    }
    for (unsigned i = 0; i < c->nr_qmp; i++) {
        if (ep.path && c->qmp[i].path && strcmp(ep.path, c->qmp[i].path) == 0) {
            config_fail(err, "--qmp unix:%s: the path is given twice", ep.path);
            goto out;
        }
        if (ep.fd >= 0 && ep.fd == c->qmp[i].fd) {
            config_fail(err, "--qmp fd=%d: the fd is given twice", ep.fd);
            goto out;
        }
    }
    c->qmp = g_renew(struct qmp_endpoint, c->qmp, c->nr_qmp + 1);
    c->qmp[c->nr_qmp++] = ep;
    return 0;
out:
    g_free(ep.path);
    return -1;
}

enum {
    OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_CPUS, OPT_CPU_MODEL, OPT_MEMORY, OPT_SERIAL,
    OPT_LOG_LEVEL, OPT_NAME, OPT_TEST_EXIT, OPT_REBOOT, OPT_DISK, OPT_RNG, OPT_CONSOLE, OPT_OBJECT, OPT_NET,
    OPT_QMP, OPT_UUID, OPT_RESTORE, OPT_INCOMING,
};

int config_parse_args(struct vm_config *c, int argc, char **argv, GError **err)
{
    static const struct option longopts[] = {
        { "kernel", required_argument, NULL, OPT_KERNEL },
        { "initrd", required_argument, NULL, OPT_INITRD },
        { "cmdline", required_argument, NULL, OPT_CMDLINE },
        { "cpus", required_argument, NULL, OPT_CPUS },
        { "cpu-model", required_argument, NULL, OPT_CPU_MODEL },
        { "memory", required_argument, NULL, OPT_MEMORY },
        { "serial", required_argument, NULL, OPT_SERIAL },
        { "console", required_argument, NULL, OPT_CONSOLE },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
        { "name", required_argument, NULL, OPT_NAME },
        { "uuid", required_argument, NULL, OPT_UUID },
        { "qmp", required_argument, NULL, OPT_QMP },
        { "rng", no_argument, NULL, OPT_RNG },
        { "disk", required_argument, NULL, OPT_DISK },
        { "net", required_argument, NULL, OPT_NET },
        { "test-exit", no_argument, NULL, OPT_TEST_EXIT },
        { "reboot", required_argument, NULL, OPT_REBOOT },
        { "paused", no_argument, NULL, 'S' },
        { "restore", required_argument, NULL, OPT_RESTORE },
        { "incoming", required_argument, NULL, OPT_INCOMING },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    optind = 0;     /* glibc: 0 also resets its state left by an earlier parse that stopped early */
    opterr = 0;
    int opt;
    int idx = -1;
    while ((opt = getopt_long(argc, argv, ":hVS", longopts, &idx)) != -1) {
        /* What shapes the machine (everything but the host side: --qmp,
         * --paused, --serial, --console, --log-level): --restore takes it
         * from the snapshot instead. */
        if (!c->machine_opt && opt >= OPT_KERNEL && opt != OPT_QMP && opt != OPT_SERIAL && opt != OPT_CONSOLE &&
            opt != OPT_LOG_LEVEL && opt != OPT_RESTORE && opt != OPT_INCOMING && opt != OPT_CPU_MODEL &&
            opt != OPT_MEMORY && opt != OPT_NET && idx >= 0)
            c->machine_opt = longopts[idx].name;
        idx = -1;
        switch (opt) {
        case OPT_RESTORE: g_free(c->restore_dir); c->restore_dir = g_strdup(optarg); break;
        case OPT_INCOMING: g_free(c->incoming); c->incoming = g_strdup(optarg); break;
        case OPT_KERNEL: g_free(c->kernel); c->kernel = g_strdup(optarg); break;
        case OPT_INITRD: g_free(c->initrd); c->initrd = g_strdup(optarg); break;
        case OPT_CMDLINE: g_free(c->cmdline); c->cmdline = g_strdup(optarg); break;
        case OPT_NAME: g_free(c->name); c->name = g_strdup(optarg); break;
        case OPT_UUID:
            if (config_parse_uuid(optarg, c->uuid) < 0)
                return config_fail(err, "--uuid: '%s' is not a UUID like 978c6af3-b5f0-4591-a637-630869349030", optarg);
            break;
        case OPT_QMP:
            if (config_parse_qmp(c, optarg, err) < 0)
                return -1;
            break;
        case OPT_CPUS:
            if (parse_cpus(c, optarg, err) < 0)
                return -1;
            break;
        case OPT_CPU_MODEL:
            c->cpu_model_given = true;
            if (strcmp(optarg, "host") == 0)
                c->cpu_model = CPU_MODEL_HOST;
            else if (strcmp(optarg, "baseline") == 0)
                c->cpu_model = CPU_MODEL_BASELINE;
            else
                return config_fail(err, "--cpu-model: '%s' is not one of host, baseline", optarg);
            break;
        case OPT_MEMORY:
            c->memory_given = true;
            if (parse_memory(c, optarg, err) < 0)
                return -1;
            break;
        case OPT_SERIAL:
            if (parse_chardev("--serial", optarg, &c->serial_mode, &c->serial_path, err) < 0)
                return -1;
            c->serial_given = true;
            break;
        case OPT_OBJECT:
            if (parse_object(c, optarg, err) < 0)
                return -1;
            break;
        case OPT_CONSOLE:
            if (parse_chardev("--console", optarg, &c->console_mode, &c->console_path, err) < 0)
                return -1;
            c->console_given = true;
            break;
        case OPT_LOG_LEVEL: {
            int l = log_level_from_name(optarg);
            if (l < 0)
                return config_fail(err, "--log-level: '%s' is not one of error, warn, info, debug", optarg);
            c->log_level = l;
            break;
        }
        case OPT_TEST_EXIT: c->test_exit = true; break;
        case OPT_DISK:
            if (parse_disk(c, optarg, err) < 0)
                return -1;
            break;
        case OPT_NET:
            if (parse_net(c, optarg, err) < 0)
                return -1;
            break;
        case OPT_RNG: c->rng = true; break;
        case 'S': c->paused = true; break;
        case OPT_REBOOT:
            if (strcmp(optarg, "restart") == 0)
                c->reboot = REBOOT_RESTART;
            else if (strcmp(optarg, "exit") == 0)
                c->reboot = REBOOT_EXIT;
            else
                return config_fail(err, "--reboot: '%s' is not one of restart, exit", optarg);
            break;
        case 'h':
            config_print_help();
            return 1;
        case 'V':
            printf("vmm %s\n", VMM_VERSION);
            return 1;
        case ':':
            return config_fail(err, "option %s needs a value; see vmm --help", argv[optind - 1]);
        default:
            return config_fail(err, "unknown option '%s'; see vmm --help", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return config_fail(err, "unexpected argument '%s'; options start with --, see vmm --help", argv[optind]);
    if (c->restore_dir && c->incoming)
        return config_fail(err, "--incoming: the machine comes from --restore already; give one of them");
    /* --net with --restore / --incoming: a new backend for a NIC of the
     * saved machine, matched by id (snapshot_config_load); nothing else. */
    for (unsigned i = 0; (c->restore_dir || c->incoming) && i < c->nr_nets; i++) {
        const struct net_config *n = &c->nets[i];
        if (n->user || n->mac_set || n->num_queues != 1)
            return config_fail(err, "--net %s: with %s only a new backend (tap=NAME or fd=N) and id= (the NIC's) may be "
                        "given; the rest comes from the %s", n->id, c->restore_dir ? "--restore" : "--incoming",
                        c->restore_dir ? "snapshot" : "source");
        /* (the backend opens only once the saved machine is read: an
         * --incoming would wait for the source on a bad fd first) */
        if (n->fd >= 0 && fcntl(n->fd, F_GETFD) < 0)
            return config_fail(err, "--net %s: fd=%d is not an open file descriptor", n->id, n->fd);
    }
    if (c->incoming && c->machine_opt)
        return config_fail(err, "--%s: the machine comes from the migration source with --incoming; only --qmp, "
                    "--paused, --serial, --console, --log-level, --net (a NIC's new backend) and (what the source "
                    "must match) --cpu-model and --memory SIZE may be added", c->machine_opt);
    if (c->restore_dir && !c->machine_opt && (c->cpu_model_given || c->memory_given))
        c->machine_opt = c->cpu_model_given ? "cpu-model" : "memory";
    if (c->incoming && c->memory_more_given)
        return config_fail(err, "--memory: with --incoming only a size may be given (what the source must have); the rest "
                    "comes from the source");
    if (c->incoming) {
        c->expect_cpu_model = c->cpu_model_given ? (int)c->cpu_model : -1;
        c->expect_mem_size = c->memory_given ? c->mem_size : 0;
    }
    if (c->restore_dir && c->machine_opt)
        return config_fail(err, "--%s: the machine comes from the snapshot with --restore; only --qmp, --paused, "
                    "--serial, --console, --net (a NIC's new backend) and --log-level may be added", c->machine_opt);
    if (c->incoming && strcmp(c->incoming, "defer") == 0 && c->nr_qmp == 0)
        return config_fail(err, "--incoming defer: the URI comes with QMP migrate-incoming, and there is no --qmp to "
                    "send it; give --qmp unix:PATH");
    if ((c->restore_dir || c->incoming) && c->paused && c->nr_qmp == 0)
        return config_fail(err, "--paused: the vCPUs would wait for a QMP cont, and there is no --qmp to send it; "
                    "give --qmp unix:PATH");
    if (c->restore_dir || c->incoming)
        return 0;       /* the cmdline, like the rest, comes from the snapshot or the source */
    if (!c->cmdline)
        c->cmdline = g_strdup("console=ttyS0");
    return 0;
}

static int check_readable(const char *opt, const char *path, GError **err)
{
    if (access(path, R_OK) == 0 && !g_file_test(path, G_FILE_TEST_IS_DIR))
        return 0;
    if (g_file_test(path, G_FILE_TEST_IS_DIR))
        return config_fail(err, "%s %s: is a directory, expected a file", opt, path);
    return config_fail(err, "%s %s: %s", opt, path, g_strerror(errno));
}

char *config_check_requested_size(const struct vm_config *c, uint64_t size)
{
    if (!c->mem_hotplug_size)
        return g_strdup("this VM has no hotplug memory (--memory hotplug_size=)");
    if (size > c->mem_hotplug_size)
        return g_strdup_printf("requested_size %" G_GUINT64_FORMAT " is above hotplug_size (%" G_GUINT64_FORMAT
                               ")", size, c->mem_hotplug_size);
    if (size % c->mem_hotplug_block)
        return g_strdup_printf("requested_size %" G_GUINT64_FORMAT " is not a multiple of the block size (%"
                               G_GUINT64_FORMAT ")", size, c->mem_hotplug_block);
    return NULL;
}

int config_validate(const struct vm_config *c, GError **err)
{
    if (!c->kernel)
        return config_fail(err, "no guest kernel: give --kernel PATH (a bzImage or a PVH ELF); see vmm --help");
    if (check_readable("--kernel", c->kernel, err) < 0)
        return -1;
    if (c->initrd && check_readable("--initrd", c->initrd, err) < 0)
        return -1;
    if (c->cpus_boot == 0)
        return config_fail(err, "--cpus: a VM needs at least 1 vCPU");
    if (c->cpus_max < c->cpus_boot)
        return config_fail(err, "--cpus: max=%u is below boot=%u", c->cpus_max, c->cpus_boot);
    if (c->cpus_max > VMM_MAX_CPUS)
        return config_fail(err, "--cpus: %u vCPUs is more than vmm supports (%u)", c->cpus_max, VMM_MAX_CPUS);
    if (c->mem_size < MEM_MIN)
        return config_fail(err, "--memory: %" G_GUINT64_FORMAT " bytes is too small; give at least 4M",
                    c->mem_size);
    if (c->mem_size > MEM_MAX)
        return config_fail(err, "--memory: %" G_GUINT64_FORMAT " MiB is more than vmm supports (1T)",
                    (guint64)(c->mem_size / MIB));
    if (c->mem_size % 4096)
        return config_fail(err, "--memory: size must be a multiple of 4K");
    if (c->mem_hugepages && c->mem_size % HUGEPAGE_SIZE)
        return config_fail(err, "--memory: with hugepages=on the size must be a multiple of 2M");
    if (c->mem_hotplug_size || c->mem_hotplug_requested) {
        uint64_t b = c->mem_hotplug_block, h = c->mem_hotplug_size;
        if (b < VMEM_BLOCK_MIN || b > VMEM_BLOCK_MAX || (b & (b - 1)))
            return config_fail(err, "--memory: hotplug_block %" G_GUINT64_FORMAT "K is not a power of two between 2M and 1G",
                        (guint64)(b >> 10));
        if (!h)
            return config_fail(err, "--memory: requested_size needs hotplug_size");
        if (h % b)
            return config_fail(err, "--memory: hotplug_size %" G_GUINT64_FORMAT "M is not a multiple of hotplug_block "
                        "(%" G_GUINT64_FORMAT "M)", (guint64)(h / MIB), (guint64)(b / MIB));
        if (h > MEM_MAX - c->mem_size)
            return config_fail(err, "--memory: size plus hotplug_size is more than vmm supports (1T)");
        if (c->mem_hugepages)
            return config_fail(err, "--memory: hotplug_size with hugepages=on is not supported; give hugepages=off");
        g_autofree char *why = config_check_requested_size(c, c->mem_hotplug_requested);
        if (why)
            return config_fail(err, "--memory: %s", why);
    }
    for (unsigned i = 0; i < c->nr_disks; i++) {
        const struct disk_config *d = &c->disks[i];
        bool known = !d->iothread;
        for (unsigned k = 0; !known && k < c->nr_iothreads; k++)
            known = strcmp(c->iothreads[k], d->iothread) == 0;
        if (!known)
            return config_fail(err, "--disk %s: iothread '%s' does not exist; add --object iothread,id=%s", d->path,
                        d->iothread, d->iothread);
        struct stat st;
        if (stat(d->path, &st) < 0)
            return config_fail(err, "--disk %s: %s", d->path, g_strerror(errno));
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
            return config_fail(err, "--disk %s: not a regular file or a block device", d->path);
        if (access(d->path, R_OK) < 0)
            return config_fail(err, "--disk %s: %s", d->path, g_strerror(errno));
        if (!d->readonly && access(d->path, W_OK) < 0)
            return config_fail(err, "--disk %s: %s; give readonly=on to use it read-only", d->path, g_strerror(errno));
    }
    for (unsigned i = 0; i < c->nr_nets; i++)
        for (unsigned k = 0; k < c->nr_disks; k++)
            if (strcmp(c->nets[i].id, c->disks[k].id) == 0)
                return config_fail(err, "--net: id '%s' is also a disk's; give each device its own", c->nets[i].id);
    if (c->serial_mode == SERIAL_STDIO && c->console_mode == SERIAL_STDIO)
        return config_fail(err, "--console stdio: --serial is on stdio too (its default); only one may be, give "
                    "e.g. --serial off or --serial file=PATH");
    if (c->serial_mode != SERIAL_OFF && c->console_mode != SERIAL_OFF && c->serial_path && c->console_path &&
        strcmp(c->serial_path, c->console_path) == 0)
        return config_fail(err, "--console %s: --serial uses the same path; give each its own",
                    c->console_path);
    for (unsigned i = 0; i < c->nr_qmp; i++) {
        const struct qmp_endpoint *q = &c->qmp[i];
        struct stat st;
        if (q->path) {
            g_autofree char *dir = g_path_get_dirname(q->path);
            if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return config_fail(err, "--qmp unix:%s: the directory %s does not exist; create it or give another path",
                            q->path, dir);
            if (lstat(q->path, &st) == 0 && !S_ISSOCK(st.st_mode))
                return config_fail(err, "--qmp unix:%s: exists and is not a socket; give another path", q->path);
        } else {
            if (fstat(q->fd, &st) < 0)
                return config_fail(err, "--qmp fd=%d: the fd is not open (%s); pass the socket to vmm as fd %d",
                            q->fd, g_strerror(errno), q->fd);
            if (!S_ISSOCK(st.st_mode))
                return config_fail(err, "--qmp fd=%d: not a socket; give a listening (or connected) unix socket", q->fd);
        }
    }
    if (c->paused && c->nr_qmp == 0)
        return config_fail(err, "--paused: the vCPUs would wait for a QMP cont, and there is no --qmp to send it; "
                    "give --qmp unix:PATH");
    if (c->cmdline && strlen(c->cmdline) >= 0x10000)
        return config_fail(err, "--cmdline: %zu bytes is too long (at most 65535)", strlen(c->cmdline));
    return 0;
}
