/* struct machine: what outlives one boot of the guest. The process owns one:
 * the configuration (changed by hotplug, so that a guest reset rebuilds the
 * same machine), the main loop, the control socket, and the current struct vm
 * (destroyed and re-created on a guest reset). Main loop thread only. */
#ifndef VMM_MACHINE_H
#define VMM_MACHINE_H

#include <stdbool.h>

#include "vmm/config.h"
#include "vmm/vm.h"

struct loop;
struct qmp_server;

struct machine {
    struct vm_config *cfg;      /* hotplug records its changes here */
    struct loop *loop;          /* the main loop */
    struct qmp_server *qmp;     /* NULL without --qmp */
    struct vm vm;               /* valid while vm_live */
    bool vm_live;
};

#endif
