/* QEMU isa-debug-exit compatible port: a write of v asks vmm to exit with
 * status (v << 1) | 1. Only present with --test-exit. */
#ifndef DEVICES_DEBUG_EXIT_H
#define DEVICES_DEBUG_EXIT_H

#include <stdint.h>

#include "devices/device.h"

struct bus;
struct debug_exit;

struct debug_exit *debug_exit_create(struct bus *pio, uint16_t port, struct machine_ctl ctl);
struct device debug_exit_device(struct debug_exit *d);

#endif
