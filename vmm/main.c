#include <stdio.h>
#include <string.h>
#include <time.h>

#include "arch/x86/boot.h"
#include "vmm/config.h"
#include "vmm/cpu_qmp.h"
#include "vmm/log.h"
#include "vmm/hotplug_qmp.h"
#include "vmm/loop.h"
#include "vmm/machine.h"
#include "vmm/qemu_compat.h"
#include "vmm/qmp.h"
#include "vmm/qmp_cmds.h"
#include "vmm/vmem_qmp.h"
#include "vmm/migration.h"
#include "vmm/snapshot.h"

/* What QMP shows of the machine's config (its virtio-mem device, its disks
 * and NICs), once cfg is the machine's: at once, or for an incoming
 * migration once the source's config is in. */
static void qmp_add_config_objects(struct machine *m)
{
    if (!m->qmp)
        return;
    vmem_qmp_add_objects(m);
    hotplug_qmp_add_boot_devices(m);
}

int main(int argc, char **argv)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);    /* restore-to-running counts from here */
    struct vm_config cfg;
    config_init_defaults(&cfg);
    g_autoptr(GError) err = NULL;
    /* A QEMU-style argv (libvirt's, or vmm run as qemu-system-x86_64) goes
     * through the QEMU front end to the same struct vm_config. */
    static struct qemu_compat qc;
    bool compat = qemu_compat_wanted(argc, argv);
    int pr = compat ? qemu_compat_parse(&cfg, &qc, argc, argv, &err) : config_parse_args(&cfg, argc, argv, &err);
    if (pr == 1)
        return 0;
    struct snapshot_restore *restore = NULL;
    /* --incoming URI is --incoming defer with migrate-incoming URI at once:
     * QMP serves (query-status "inmigrate") and a signal or quit ends the
     * wait for the source, as in QEMU. */
    bool incoming = pr == 0 && cfg.incoming;
    if (pr == 0 && cfg.restore_dir) {
        log_threshold = (enum log_level)cfg.log_level;     /* "waiting for the source" */
        /* The machine is the snapshot's (or the source's): its config
         * replaces the checks of a command line (a later guest reset boots
         * its kernel again). */
        restore = snapshot_restore_open(cfg.restore_dir, &cfg, &err);
        if (restore) {
            g_autofree char *what = g_strdup_printf("--restore %s", cfg.restore_dir);
            if (snapshot_check_cpuid(&cfg, what, &err) < 0)
                g_clear_pointer(&restore, snapshot_restore_free);
        }
        if (!restore) {
            fprintf(stderr, "vmm: error: %s\n", err->message);
            config_clear(&cfg);
            return VMM_EXIT_CONFIG;
        }
    } else if (incoming) {
        log_threshold = (enum log_level)cfg.log_level;
    } else if (pr < 0 || (!qc.probe && config_validate(&cfg, &err) < 0)) {
        /* The probe (-machine none) has no guest: only its QMP socket. */
        fprintf(stderr, "vmm: error: %s\n", err->message);
        return VMM_EXIT_CONFIG;
    }
    if (!restore && !incoming && !qc.probe && boot_check_kernel(cfg.kernel, &err) < 0) {
        fprintf(stderr, "vmm: error: %s\n", err->message);
        return VMM_EXIT_CONFIG;
    }
    /* Taps are host backends: opened once, kept across guest resets. */
    if (config_open_nets(&cfg, &err) < 0) {
        fprintf(stderr, "vmm: error: %s\n", err->message);
        snapshot_restore_free(restore);
        return VMM_EXIT_CONFIG;
    }
    log_threshold = (enum log_level)cfg.log_level;
    /* -daemonize: the parent waits for qemu_compat_daemon_ready below. */
    if (qc.daemonize && qemu_compat_daemonize(&err) < 0) {
        fprintf(stderr, "vmm: error: %s\n", err->message);
        return VMM_EXIT_HOST;
    }

    static struct machine m;
    int status = machine_open(&m, &cfg);
    m.restore = restore;
    m.start_ns = (uint64_t)t0.tv_sec * 1000000000ull + (uint64_t)t0.tv_nsec;
    if (status == 0 && cfg.nr_qmp) {
        /* The control socket, before the first boot; every module adds its
         * commands here. */
        m.qmp = qmp_server_new(m.loop);
        qmp_cmds_qmp_register(m.qmp, &m);
        machine_qmp_register(m.qmp, &m);
        vmem_qmp_register(m.qmp, &m);
        snapshot_qmp_register(m.qmp, &m);
        cpu_qmp_register(m.qmp, &m);
        migration_qmp_register(m.qmp, &m);
        if (compat)
            qemu_compat_qmp_register(m.qmp, &m, &qc);
        hotplug_qmp_register(m.qmp, &m);
        if (!incoming)
            qmp_add_config_objects(&m);
        status = qmp_cmds_listen(&m);
    }
    /* -daemonize: the parent exits 0 now that the socket listens. */
    if (status == 0 && compat && qemu_compat_daemon_ready(&qc, &err) < 0) {
        fprintf(stderr, "vmm: error: %s\n", err->message);
        status = VMM_EXIT_HOST;
    }
    if (status == 0 && incoming && m.state != RUN_STATE_SHUTDOWN) {
        /* --incoming: QMP is up, no VM; the listening socket (at once for a
         * URI, on migrate-incoming for defer) is on the loop and its
         * accepted connection ends this loop_run. */
        m.state = RUN_STATE_INMIGRATE;
        if (strcmp(cfg.incoming, "defer") != 0 && migration_incoming_listen(&m, cfg.incoming, &err) < 0) {
            fprintf(stderr, "vmm: error: %s\n", err->message);
            status = VMM_EXIT_CONFIG;
        } else if (loop_run(m.loop) < 0)
            status = VMM_EXIT_HOST;
        const char *uri = NULL;
        int fd = migration_incoming_deferred(&uri);
        if (status == 0 && fd >= 0) {
            m.restore = migration_incoming_fd(fd, uri, &cfg, &err);
            if (!m.restore || config_open_nets(&cfg, &err) < 0) {
                fprintf(stderr, "vmm: error: %s\n", err->message);
                status = VMM_EXIT_CONFIG;
            } else if ((status = machine_open_backends(&m)) == 0) {
                m.state = cfg.paused ? RUN_STATE_PRELAUNCH : RUN_STATE_RUNNING;
                qmp_add_config_objects(&m);
            }
        } else if (status == 0) {
            m.state = RUN_STATE_SHUTDOWN;       /* quit or a signal before any source came */
        }
        if (fd < 0)
            migration_incoming_deferred_abandon(&m);
    }
    if (status == 0 && m.state != RUN_STATE_SHUTDOWN) {  /* no signal or quit while waiting for a client */
        if (qc.probe) {
            /* Serve QMP until SIGTERM (or quit). */
            if (loop_run(m.loop) < 0)
                status = VMM_EXIT_HOST;
        } else {
            status = machine_run(&m);
        }
    }
    snapshot_restore_free(m.restore);
    qmp_server_free(m.qmp);
    m.qmp = NULL;
    machine_close(&m);
    qemu_compat_cleanup(&qc);
    qemu_compat_clear(&qc);
    config_clear(&cfg);
    return status;
}
