/* QEMU mps2-an386 (Cortex-M4F, 25 MHz): CMSDK UART0 = protocol, UART1 = trigger events,
 * SysTick extended to 32 bits = ticks. */
#include "hal.h"

#define REG(a) (*(volatile uint32_t *)(a))
#define UART0 0x40004000u
#define UART1 0x40005000u
#define U_DATA 0x00u
#define U_STATE 0x04u /* bit0 TX full, bit1 RX full */
#define U_CTRL 0x08u  /* bit0 TX enable, bit1 RX enable */
#define U_BAUDDIV 0x10u
#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
#define SYSCLK 25000000u

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps++; }

void hal_init(void) {
    REG(UART0 + U_BAUDDIV) = SYSCLK / 115200u; /* QEMU refuses to transmit with BAUDDIV < 16 */
    REG(UART0 + U_CTRL) = 3u;
    REG(UART1 + U_BAUDDIV) = SYSCLK / 115200u;
    REG(UART1 + U_CTRL) = 1u;
    REG(SYST_RVR) = 0x00FFFFFFu;
    REG(SYST_CVR) = 0u;
    REG(SYST_CSR) = 7u; /* core clock, interrupt, enable */
}

uint32_t hal_ticks(void) {
    uint32_t hi, lo;
    do {
        hi = systick_wraps;
        lo = 0x00FFFFFFu - REG(SYST_CVR);
    } while (hi != systick_wraps);
    return (hi << 24) | lo;
}

uint32_t hal_tick_hz(void) { return SYSCLK; }

int hal_getc(uint32_t timeout_ms) {
    const uint32_t t0 = hal_ticks(), limit = timeout_ms * (SYSCLK / 1000u);
    while (!(REG(UART0 + U_STATE) & 2u))
        if (hal_ticks() - t0 > limit) return -1;
    return (int)(REG(UART0 + U_DATA) & 0xFFu);
}

static void uart_put(uint32_t base, uint8_t c) {
    while (REG(base + U_STATE) & 1u) {}
    REG(base + U_DATA) = c;
}

void hal_write(const uint8_t *buf, uint32_t n) {
    while (n--) uart_put(UART0, *buf++);
}

void hal_trigger(int level, uint32_t work) {
    const uint8_t ev[8] = {0x54, (uint8_t)level, 0, 0, (uint8_t)work, (uint8_t)(work >> 8), (uint8_t)(work >> 16),
                           (uint8_t)(work >> 24)};
    REG(0x40028000u) = (uint32_t)level; /* FPGAIO LED0 mirrors the pin */
    for (int i = 0; i < 8; i++) uart_put(UART1, ev[i]);
}
