/* MC146818 CMOS RTC at ports 0x70/0x71, IRQ 8: host time (UTC), BCD or
 * binary and 12/24-hour modes as the guest selects, update-in-progress flag. */
#ifndef DEVICES_RTC_H
#define DEVICES_RTC_H

#include "devices/device.h"

struct bus;
struct rtc;

struct rtc *rtc_create(struct bus *pio, struct irq_line irq);
struct device rtc_device(struct rtc *r);

#endif
