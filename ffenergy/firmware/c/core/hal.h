/* The board interface the protocol layer needs: a byte stream, a tick counter, a trigger pin. */
#ifndef FF_HAL_H
#define FF_HAL_H
#include <stdint.h>

void hal_init(void);
/* Next received byte, or -1 if none arrived within timeout_ms. */
int hal_getc(uint32_t timeout_ms);
void hal_write(const uint8_t *buf, uint32_t n);
uint32_t hal_ticks(void);      /* free-running, wraps at 2^32 */
uint32_t hal_tick_hz(void);
/* Trigger pin: level 1 before the first repetition, 0 after the last; work = MACs in between. */
void hal_trigger(int level, uint32_t work);

#endif
