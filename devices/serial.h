/* 16550A UART (COM1 at 0x3f8, IRQ 4) wired to a char backend. */
#ifndef DEVICES_SERIAL_H
#define DEVICES_SERIAL_H

#include <stdint.h>

#include "devices/device.h"

struct bus;
struct char_backend;

struct serial;

struct serial *serial_create(struct bus *pio, uint16_t base, struct irq_line irq, struct char_backend *be);
struct device serial_device(struct serial *s);

#endif
