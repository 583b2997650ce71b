/* Minimal Cortex-M4F start-up without a C library: vector table, .data/.bss init, FPU on,
 * and the memcpy/memset that gcc may emit calls to. */
#include <stddef.h>
#include <stdint.h>
#include "proto.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

void *memcpy(void *d, const void *s, size_t n) {
    uint8_t *dp = d;
    const uint8_t *sp = s;
    while (n--) *dp++ = *sp++;
    return d;
}

void *memset(void *d, int c, size_t n) {
    uint8_t *dp = d;
    while (n--) *dp++ = (uint8_t)c;
    return d;
}

void *memmove(void *d, const void *s, size_t n) {
    uint8_t *dp = d;
    const uint8_t *sp = s;
    if (dp < sp) return memcpy(d, s, n);
    while (n--) dp[n] = sp[n];
    return d;
}

static void default_handler(void) { for (;;) {} }
void SysTick_Handler(void) __attribute__((weak, alias("default_handler")));

void Reset_Handler(void) {
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20; /* CP10, CP11 full access: FPU on */
    __asm__ volatile("dsb\n isb");
    for (uint32_t *s = &_sidata, *d = &_sdata; d < &_edata;) *d++ = *s++;
    for (uint32_t *d = &_sbss; d < &_ebss;) *d++ = 0;
    proto_run();
    for (;;) {}
}

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, default_handler, default_handler, default_handler,
    default_handler, default_handler, 0, 0, 0, 0, default_handler, default_handler, 0, default_handler,
    SysTick_Handler,
};
