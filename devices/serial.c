#include "devices/serial.h"
#include <stddef.h>
struct serial *serial_create(struct bus *pio, uint16_t base, struct irq_line irq, struct char_backend *be) { return NULL; }
struct device serial_device(struct serial *s) { return (struct device){ 0 }; }
