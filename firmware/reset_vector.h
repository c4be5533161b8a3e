/* The x86 reset vector (0xFFFF0, reached as F000:FFF0 in real mode).
 *
 * vmm has no BIOS, but guests still jump here to reset: Linux's last-resort
 * reboot (machine_real_restart, which it reaches by default on a
 * hardware-reduced ACPI platform without EFI) switches to real mode and
 * jumps to F000:FFF0. The stub there asks for a reset through the ACPI reset
 * register, so every reboot path ends in a reset instead of a hang. */
#ifndef FIRMWARE_RESET_VECTOR_H
#define FIRMWARE_RESET_VECTOR_H

#include <stdint.h>

struct guest_memory;

/* Writes the stub; returns 0 or -EFAULT when RAM does not cover it. */
int firmware_install_reset_vector(struct guest_memory *gm);

#endif
