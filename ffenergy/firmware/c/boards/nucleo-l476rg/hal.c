/* STM32 Nucleo-L476RG, register level: 80 MHz from MSI via the PLL, USART2 (PA2/PA3, the
 * ST-LINK virtual COM port) at 115200 8N1, DWT cycle counter as ticks, trigger on PA8 (Arduino D7). */
#include "hal.h"

#define REG(a) (*(volatile uint32_t *)(a))
#define RCC 0x40021000u
#define RCC_CR (RCC + 0x00u)
#define RCC_CFGR (RCC + 0x08u)
#define RCC_PLLCFGR (RCC + 0x0Cu)
#define RCC_AHB2ENR (RCC + 0x4Cu)
#define RCC_APB1ENR1 (RCC + 0x58u)
#define FLASH_ACR 0x40022000u
#define GPIOA 0x48000000u
#define G_MODER 0x00u
#define G_OSPEEDR 0x08u
#define G_BSRR 0x18u
#define G_AFRL 0x20u
#define USART2 0x40004400u
#define U_CR1 0x00u
#define U_BRR 0x0Cu
#define U_ISR 0x1Cu
#define U_ICR 0x20u
#define U_RDR 0x24u
#define U_TDR 0x28u
#define DEMCR 0xE000EDFCu
#define DWT_CTRL 0xE0001000u
#define DWT_CYCCNT 0xE0001004u
#define SYSCLK 80000000u
#define TRIG_PIN 8u

static void clock_80mhz(void) {
    REG(FLASH_ACR) = (REG(FLASH_ACR) & ~7u) | 4u | (1u << 8) | (1u << 9) | (1u << 10); /* 4 WS, prefetch, caches */
    while ((REG(FLASH_ACR) & 7u) != 4u) {}
    /* MSI 4 MHz (reset default) -> PLL: M=1, N=40, R=2 -> 80 MHz (voltage range 1 is the reset default). */
    REG(RCC_PLLCFGR) = 1u /* PLLSRC=MSI */ | (0u << 4) /* M=1 */ | (40u << 8) /* N */ | (0u << 25) /* R=2 */ | (1u << 24);
    REG(RCC_CR) |= 1u << 24; /* PLLON */
    while (!(REG(RCC_CR) & (1u << 25))) {}
    REG(RCC_CFGR) = (REG(RCC_CFGR) & ~3u) | 3u; /* SW = PLL */
    while (((REG(RCC_CFGR) >> 2) & 3u) != 3u) {}
}

void hal_init(void) {
    clock_80mhz();
    REG(RCC_AHB2ENR) |= 1u;        /* GPIOA */
    REG(RCC_APB1ENR1) |= 1u << 17; /* USART2 (clocked from PCLK1 = 80 MHz) */
    (void)REG(RCC_APB1ENR1);
    /* PA2/PA3 alternate function 7; PA8 push-pull output, low. */
    REG(GPIOA + G_MODER) = (REG(GPIOA + G_MODER) & ~((3u << 4) | (3u << 6) | (3u << (2 * TRIG_PIN))))
                           | (2u << 4) | (2u << 6) | (1u << (2 * TRIG_PIN));
    REG(GPIOA + G_AFRL) = (REG(GPIOA + G_AFRL) & ~0xFF00u) | (7u << 8) | (7u << 12);
    REG(GPIOA + G_OSPEEDR) |= 3u << (2 * TRIG_PIN);
    REG(GPIOA + G_BSRR) = 1u << (16 + TRIG_PIN);
    REG(USART2 + U_BRR) = SYSCLK / 115200u;
    REG(USART2 + U_CR1) = (1u << 3) | (1u << 2) | 1u; /* TE, RE, UE */
    REG(DEMCR) |= 1u << 24;                           /* TRCENA */
    REG(DWT_CYCCNT) = 0;
    REG(DWT_CTRL) |= 1u;                              /* CYCCNTENA */
}

uint32_t hal_ticks(void) { return REG(DWT_CYCCNT); }

uint32_t hal_tick_hz(void) { return SYSCLK; }

int hal_getc(uint32_t timeout_ms) {
    const uint32_t t0 = hal_ticks(), limit = timeout_ms * (SYSCLK / 1000u);
    for (;;) {
        const uint32_t isr = REG(USART2 + U_ISR);
        if (isr & (1u << 3)) REG(USART2 + U_ICR) = 1u << 3; /* clear overrun; the CRC catches the loss */
        if (isr & (1u << 5)) return (int)(REG(USART2 + U_RDR) & 0xFFu);
        if (hal_ticks() - t0 > limit) return -1;
    }
}

void hal_write(const uint8_t *buf, uint32_t n) {
    while (n--) {
        while (!(REG(USART2 + U_ISR) & (1u << 7))) {}
        REG(USART2 + U_TDR) = *buf++;
    }
    while (!(REG(USART2 + U_ISR) & (1u << 6))) {} /* TC: the reply has left before the next command */
}

void hal_trigger(int level, uint32_t work) {
    (void)work; /* the meter measures the work; the pin carries only the window */
    REG(GPIOA + G_BSRR) = level ? (1u << TRIG_PIN) : (1u << (16 + TRIG_PIN));
}
