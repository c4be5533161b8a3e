#include <stdio.h>
#include <time.h>

#include "arch/x86/boot.h"
#include "vmm/config.h"
#include "vmm/cpu_qmp.h"
#include "vmm/log.h"
#include "vmm/machine.h"
#include "vmm/qmp.h"
#include "vmm/qmp_cmds.h"
#include "vmm/vmem_qmp.h"
#include "vmm/snapshot.h"

int main(int argc, char **argv)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);    /* restore-to-running counts from here */
    struct vm_config cfg;
    config_init_defaults(&cfg);
    g_autoptr(GError) err = NULL;
    int pr = config_parse_args(&cfg, argc, argv, &err);
    if (pr == 1)
        return 0;
    struct snapshot_restore *restore = NULL;
    if (pr == 0 && cfg.restore_dir) {
        /* The machine is the snapshot's: its config replaces the checks of
         * a command line (a later guest reset boots its kernel again). */
        restore = snapshot_restore_open(cfg.restore_dir, &cfg, &err);
        if (!restore) {
            fprintf(stderr, "vmm: error: %s\n", err->message);
            config_clear(&cfg);
            return VMM_EXIT_CONFIG;
        }
    } else if (pr < 0 || config_validate(&cfg, &err) < 0) {
        fprintf(stderr, "vmm: error: %s\n", err->message);
        return VMM_EXIT_CONFIG;
    }
    if (!restore && boot_check_kernel(cfg.kernel, &err) < 0) {
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
        status = qmp_cmds_listen(&m);
    }
    if (status == 0 && m.state != RUN_STATE_SHUTDOWN)   /* no signal or quit while waiting for a client */
        status = machine_run(&m);
    snapshot_restore_free(m.restore);
    qmp_server_free(m.qmp);
    m.qmp = NULL;
    machine_close(&m);
    config_clear(&cfg);
    return status;
}
