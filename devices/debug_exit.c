#include "devices/debug_exit.h"
#include <stddef.h>
struct debug_exit *debug_exit_create(struct bus *pio, uint16_t port, struct machine_ctl ctl) { return NULL; }
struct device debug_exit_device(struct debug_exit *d) { return (struct device){ 0 }; }
