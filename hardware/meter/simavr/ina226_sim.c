/* Runs the INA226 logger sketch in simavr (ATmega328P, 16 MHz) with a modelled INA226 on its I2C bus
 * and a scripted DUT trigger on D2, so the real firmware's stream can be checked by the host driver.
 *
 * Usage: ina226_sim ELF [idle_ma active_ma supply_v trigger_period_ms trigger_high_ms sim_seconds]
 * The sketch's UART0 goes to stdout as raw bytes. The simulation starts when the first byte arrives on
 * stdin (the host asking for the info line), so nothing is lost to the host's open/flush.
 * The model: registers 0x00 config, 0x01 shunt, 0x02 bus, 0x05 calibration, 0x06 mask/enable,
 * 0xFE/0xFF ids; conversions every avg * (bus + shunt conversion time) from the config register; the
 * conversion-ready flag drives ALERT (D3) low when enabled and is cleared by reading mask/enable.
 * Build: make -C hardware/meter simavr-model   (needs libsimavr-dev).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "avr_ioport.h"
#include "avr_twi.h"
#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_time.h"

#define INA_ADDR8 0x80 /* 0x40 << 1 */
#define MASK_CNVR 0x0400
#define MASK_CVRF 0x0008

static const uint16_t avg_count[8] = {1, 4, 16, 64, 128, 256, 512, 1024};
static const uint16_t ct_us[8] = {140, 204, 332, 588, 1100, 2116, 4156, 8244};

typedef struct {
    avr_t *avr;
    avr_irq_t *irq;  /* TWI_IRQ_INPUT / TWI_IRQ_OUTPUT of the slave */
    avr_irq_t *alert, *trigger;
    uint16_t reg[256];
    uint8_t selected, pointer, index, msb;
    int trigger_level;
    double idle_a, active_a, supply_v, shunt_ohm;
    uint32_t trig_period_us, trig_high_us;
} ina_t;

static uint32_t period_us(const ina_t *p) {
    uint16_t c = p->reg[0x00];
    return (uint32_t)avg_count[(c >> 9) & 7] * (ct_us[(c >> 6) & 7] + ct_us[(c >> 3) & 7]);
}

static avr_cycle_count_t convert(avr_t *avr, avr_cycle_count_t when, void *param) {
    ina_t *p = param;
    double amps = p->trigger_level ? p->active_a : p->idle_a;
    p->reg[0x01] = (uint16_t)(int16_t)(amps * p->shunt_ohm / 2.5e-6 + 0.5);
    p->reg[0x02] = (uint16_t)(p->supply_v / 1.25e-3 + 0.5);
    p->reg[0x06] |= MASK_CVRF;
    if (p->reg[0x06] & MASK_CNVR) avr_raise_irq(p->alert, 0);
    return when + avr_usec_to_cycles(avr, period_us(p));
}

static avr_cycle_count_t toggle_trigger(avr_t *avr, avr_cycle_count_t when, void *param) {
    ina_t *p = param;
    p->trigger_level = !p->trigger_level;
    avr_raise_irq(p->trigger, p->trigger_level);
    uint32_t next = p->trigger_level ? p->trig_high_us : p->trig_period_us - p->trig_high_us;
    return when + avr_usec_to_cycles(avr, next);
}

static void twi_hook(avr_irq_t *irq, uint32_t value, void *param) {
    ina_t *p = param;
    avr_twi_msg_irq_t v;
    (void)irq;
    v.u.v = value;
    if (v.u.twi.msg & TWI_COND_STOP) p->selected = 0;
    if (v.u.twi.msg & TWI_COND_START) {
        p->selected = 0;
        p->index = 0;
        if ((v.u.twi.addr & 0xFE) == INA_ADDR8) {
            p->selected = v.u.twi.addr;
            avr_raise_irq(p->irq + TWI_IRQ_INPUT, avr_twi_irq_msg(TWI_COND_ACK, p->selected, 1));
        }
    }
    if (!p->selected) return;
    if (v.u.twi.msg & TWI_COND_WRITE) {
        avr_raise_irq(p->irq + TWI_IRQ_INPUT, avr_twi_irq_msg(TWI_COND_ACK, p->selected, 1));
        if (p->index == 0) {
            p->pointer = v.u.twi.data;
        } else if (p->index == 1) {
            p->msb = v.u.twi.data;
        } else if (p->index == 2) {
            uint16_t value16 = (uint16_t)(p->msb << 8 | v.u.twi.data);
            if (p->pointer == 0x00 && (value16 & 0x8000)) value16 = 0x4127; /* reset: power-on default */
            p->reg[p->pointer] = p->pointer == 0x06 ? (uint16_t)(value16 & 0xFC03) : value16;
        }
        p->index++;
    }
    if (v.u.twi.msg & TWI_COND_READ) {
        uint16_t r = p->reg[p->pointer];
        uint8_t data = (p->index & 1) ? (uint8_t)r : (uint8_t)(r >> 8);
        if (p->pointer == 0x06 && (p->index & 1)) { /* reading mask/enable clears CVRF, releases ALERT */
            p->reg[0x06] &= (uint16_t)~MASK_CVRF;
            avr_raise_irq(p->alert, 1);
        }
        avr_raise_irq(p->irq + TWI_IRQ_INPUT, avr_twi_irq_msg(TWI_COND_READ, p->selected, data));
        p->index++;
    }
}

static FILE *uart_file; /* the original stdout; simavr's own log lines go to stderr */

static void uart_out(avr_irq_t *irq, uint32_t value, void *param) {
    (void)irq;
    (void)param;
    uint8_t b = (uint8_t)value;
    fwrite(&b, 1, 1, uart_file);
}

static avr_cycle_count_t flush_out(avr_t *avr, avr_cycle_count_t when, void *param) {
    (void)param;
    fflush(uart_file);
    return when + avr_usec_to_cycles(avr, 2000);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s ELF [idle_ma active_ma supply_v trigger_period_ms trigger_high_ms sim_seconds]\n",
                argv[0]);
        return 2;
    }
    static ina_t ina;
    ina.idle_a = (argc > 2 ? atof(argv[2]) : 2.0) * 1e-3;
    ina.active_a = (argc > 3 ? atof(argv[3]) : 10.0) * 1e-3;
    ina.supply_v = argc > 4 ? atof(argv[4]) : 3.3;
    ina.trig_period_us = (uint32_t)((argc > 5 ? atof(argv[5]) : 300.0) * 1000);
    ina.trig_high_us = (uint32_t)((argc > 6 ? atof(argv[6]) : 120.0) * 1000);
    double seconds = argc > 7 ? atof(argv[7]) : 1.5;
    ina.shunt_ohm = 0.1;
    uart_file = fdopen(dup(1), "wb");
    dup2(2, 1);

    static elf_firmware_t fw; /* zeroed */
    if (elf_read_firmware(argv[1], &fw)) {
        fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[1]);
        return 2;
    }
    avr_t *avr = avr_make_mcu_by_name("atmega328p");
    if (!avr) return 2;
    avr_init(avr);
    fw.frequency = 16000000;
    avr_load_firmware(avr, &fw);
    ina.avr = avr;

    uint32_t flags = 0;
    avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
    flags &= ~(uint32_t)(AVR_UART_FLAG_STDIO | AVR_UART_FLAG_POLL_SLEEP);
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), uart_out, NULL);

    static const char *names[2] = {[TWI_IRQ_INPUT] = "8>ina226.out", [TWI_IRQ_OUTPUT] = "32<ina226.in"};
    ina.irq = avr_alloc_irq(&avr->irq_pool, 0, 2, names);
    avr_irq_register_notify(ina.irq + TWI_IRQ_OUTPUT, twi_hook, &ina);
    avr_connect_irq(ina.irq + TWI_IRQ_INPUT, avr_io_getirq(avr, AVR_IOCTL_TWI_GETIRQ(0), TWI_IRQ_INPUT));
    avr_connect_irq(avr_io_getirq(avr, AVR_IOCTL_TWI_GETIRQ(0), TWI_IRQ_OUTPUT), ina.irq + TWI_IRQ_OUTPUT);
    ina.alert = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('D'), 3);
    ina.trigger = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('D'), 2);
    ina.reg[0x00] = 0x4127;
    ina.reg[0xFE] = 0x5449;
    ina.reg[0xFF] = 0x2260;
    avr_raise_irq(ina.alert, 1);
    avr_raise_irq(ina.trigger, 0);

    char go;
    if (read(0, &go, 1) != 1) return 0; /* wait until the host listens */
    avr_cycle_timer_register_usec(avr, 140 * 2, convert, &ina);
    avr_cycle_timer_register_usec(avr, ina.trig_period_us - ina.trig_high_us, toggle_trigger, &ina);
    avr_cycle_timer_register_usec(avr, 2000, flush_out, NULL);
    avr_cycle_count_t end = avr_usec_to_cycles(avr, (uint32_t)(seconds * 1e6));
    int state = cpu_Running;
    while (state != cpu_Done && state != cpu_Crashed && avr->cycle < end) state = avr_run(avr);
    fflush(uart_file);
    return state == cpu_Crashed ? 1 : 0;
}
