/* i8042 keyboard controller: enough for guests to probe it, and the reset
 * line (command 0xFE on port 0x64) which asks the machine to reset. */
#ifndef DEVICES_I8042_H
#define DEVICES_I8042_H

#include "devices/device.h"

struct bus;
struct i8042;

struct i8042 *i8042_create(struct bus *pio, struct machine_ctl ctl);
struct device i8042_device(struct i8042 *k);

#endif
