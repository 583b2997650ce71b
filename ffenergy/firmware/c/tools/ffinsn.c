/* ffinsn: a QEMU TCG plugin (plugin API v1, QEMU 7.2) that counts the instructions a Cortex-M
 * guest executes inside each trigger window, by class, and acts as the window's trigger probe.
 *
 *   -plugin libffinsn.so,begin=0xADDR,end=0xADDR[,skip=0xLO-0xHI],trigger=PATH[,log=PATH][,focus=0xLO-0xHI...]
 *
 * begin/end: addresses of the firmware's hil_trace_begin / hil_trace_end (from the ELF symbol
 * table, Thumb bit cleared). Executing begin opens a window, executing end closes it. skip: an
 * address range never counted (the SysTick ISR, which fires at host-time moments). trigger: a
 * FIFO or file that gets, per window, a rising-edge event ('T', level 1, 8 bytes) at begin and
 * a counted falling-edge event at end:
 *     'X' | n_classes u8 (=5) | reserved (6 bytes, 0) | u64 counts[5]   (little-endian, 48 bytes)
 * log: a text file that gets one line per window, "seq ldst mul fpu branch other focus".
 * focus (up to 8): address ranges whose executed instructions are also counted apart, the last
 * field of the log line (e.g. the mat-vec kernel's functions, to price the kernel alone).
 *
 * Classes (decoded from the Thumb-2 instruction bytes, see classify(); docs/hil.md):
 *   0 ldst   loads and stores of any register file (LDR*, STR*, LDM/STM, PUSH/POP, VLDR/VSTR/VPUSH/VPOP)
 *   1 mul    integer multiply, multiply-accumulate and divide (MUL, MLA, SMLAD, SMULL, SDIV, ...)
 *   2 fpu    floating-point data processing and FPU register moves (VADD, VMUL, VCVT, VMOV, VMRS, ...)
 *   3 branch B, BL, BLX, BX, CBZ/CBNZ, TBB/TBH, MOV/ADD to PC
 *   4 other  everything else (ALU, compare, IT, hints)
 *
 * Debian ships no qemu-plugin.h, so the few API v1 calls used are declared here.
 * Build: gcc -O2 -shared -fPIC -fvisibility=hidden -o libffinsn.so ffinsn.c */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op, void *ptr,
                                                uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

EXPORT int qemu_plugin_version = 1;

enum { LDST, MUL, FPU, BRANCH, OTHER, N_CLASSES };

#define MAX_FOCUS 8

static uint64_t count[N_CLASSES], base[N_CLASSES], focus_count, focus_base;
static uint64_t focus_lo[MAX_FOCUS], focus_hi[MAX_FOCUS];
static int n_focus;
static uint64_t begin_addr = UINT64_MAX, end_addr = UINT64_MAX, skip_lo = 1, skip_hi = 0, windows;
static int trigger_fd = -1, log_fd = -1, open_window;

static int is_fp_coproc(uint32_t hw2) { return ((hw2 >> 9) & 7u) == 5u; } /* coprocessor 10 or 11 */

static int classify16(uint32_t h) {
    if ((h >> 11) == 0x09u || (h >> 12) == 0x5u || (h >> 13) == 0x3u || (h >> 12) == 0x8u || (h >> 12) == 0x9u ||
        (h >> 12) == 0xCu || (h & 0xF600u) == 0xB400u) /* LDR lit, reg, imm, halfword, SP-rel, LDM/STM, PUSH/POP */
        return LDST;
    if ((h & 0xFFC0u) == 0x4340u) return MUL; /* MULS */
    if ((h & 0xFF00u) == 0x4700u) return BRANCH; /* BX, BLX */
    if ((h & 0xFC00u) == 0x4400u && (h & 0x0300u) != 0x0100u && (((h >> 4) & 8u) | (h & 7u)) == 15u)
        return BRANCH; /* ADD/MOV PC, Rm */
    if ((h >> 12) == 0xDu && ((h >> 8) & 0xFu) < 0xEu) return BRANCH; /* B<c> */
    if ((h >> 11) == 0x1Cu) return BRANCH;                             /* B */
    if ((h & 0xF500u) == 0xB100u) return BRANCH;                       /* CBZ, CBNZ */
    return OTHER;
}

static int classify32(uint32_t h1, uint32_t h2) {
    if ((h1 & 0xEE00u) == 0xEC00u && is_fp_coproc(h2)) /* extension register load/store, 64-bit moves */
        return (h1 & 0xFFE0u) == 0xEC40u ? FPU : LDST;
    if ((h1 & 0xEF00u) == 0xEE00u && is_fp_coproc(h2)) return FPU; /* VFP data processing, VMOV, VMRS */
    if ((h1 & 0xFFF0u) == 0xE8D0u && (h2 & 0xFFE0u) == 0xF000u) return BRANCH; /* TBB, TBH */
    if ((h1 & 0xFE00u) == 0xE800u) return LDST;                                 /* LDM/STM, LDRD/STRD, LDREX */
    if ((h1 & 0xFE00u) == 0xF800u) return LDST;                                 /* LDR/STR single */
    if ((h1 & 0xFF00u) == 0xFB00u) return MUL;                                  /* multiply, MAC, long, divide */
    if ((h1 & 0xF800u) == 0xF000u && (h2 & 0x8000u)) {                          /* branches and misc control */
        if ((h2 & 0x5000u) != 0u) return BRANCH;                                /* B.W, BL, BLX */
        if ((h1 & 0x0380u) != 0x0380u) return BRANCH;                           /* B<c>.W */
    }
    return OTHER;
}

static int classify(const uint8_t *p, size_t n) {
    const uint32_t h1 = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    if (n >= 4) return classify32(h1, (uint32_t)p[2] | (uint32_t)p[3] << 8);
    return classify16(h1);
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void emit(const uint8_t *buf, size_t n) {
    while (n && trigger_fd >= 0) {
        ssize_t w = write(trigger_fd, buf, n);
        if (w <= 0) return;
        buf += w;
        n -= (size_t)w;
    }
}

static void on_begin(unsigned int vcpu, void *udata) {
    (void)vcpu; (void)udata;
    uint8_t ev[8] = {'T', 1, 0, 0, 0, 0, 0, 0};
    memcpy(base, count, sizeof base);
    focus_base = focus_count;
    open_window = 1;
    emit(ev, sizeof ev);
}

static void on_end(unsigned int vcpu, void *udata) {
    (void)vcpu; (void)udata;
    if (!open_window) return;
    open_window = 0;
    uint64_t d[N_CLASSES];
    uint8_t ev[8 + 8 * N_CLASSES] = {'X', N_CLASSES, 0, 0};
    for (int c = 0; c < N_CLASSES; c++) {
        d[c] = count[c] - base[c];
        put_le(ev + 8 + 8 * c, d[c], 8);
    }
    if (log_fd >= 0)
        dprintf(log_fd, "%llu %llu %llu %llu %llu %llu %llu\n", (unsigned long long)windows++,
                (unsigned long long)d[LDST], (unsigned long long)d[MUL], (unsigned long long)d[FPU],
                (unsigned long long)d[BRANCH], (unsigned long long)d[OTHER],
                (unsigned long long)(focus_count - focus_base));
    emit(ev, sizeof ev);
}

static int in_focus(uint64_t pc) {
    for (int k = 0; k < n_focus; k++)
        if (pc >= focus_lo[k] && pc < focus_hi[k]) return 1;
    return 0;
}

/* "0xLO-0xHI" into *lo, *hi; 0 when malformed. */
static int parse_range(const char *s, uint64_t *lo, uint64_t *hi) {
    char *dash;
    *lo = strtoull(s, &dash, 0);
    if (*dash != '-') return 0;
    *hi = strtoull(dash + 1, 0, 0);
    return *hi > *lo;
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    const size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc == begin_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, 0);
        if (pc == end_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, 0);
        if (pc >= skip_lo && pc < skip_hi) continue;
        const int c = classify(qemu_plugin_insn_data(insn), qemu_plugin_insn_size(insn));
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &count[c], 1);
        if (in_focus(pc)) qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &focus_count, 1);
    }
}

static void at_exit(qemu_plugin_id_t id, void *udata) {
    (void)id; (void)udata;
    if (trigger_fd >= 0) close(trigger_fd);
    if (log_fd >= 0) close(log_fd);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "begin=", 6)) begin_addr = strtoull(a + 6, 0, 0);
        else if (!strncmp(a, "end=", 4)) end_addr = strtoull(a + 4, 0, 0);
        else if (!strncmp(a, "skip=", 5)) {
            if (!parse_range(a + 5, &skip_lo, &skip_hi)) {
                fprintf(stderr, "ffinsn: skip=%s is not a range 0xLO-0xHI\n", a + 5);
                return -1;
            }
        } else if (!strncmp(a, "focus=", 6)) {
            if (n_focus == MAX_FOCUS || !parse_range(a + 6, &focus_lo[n_focus], &focus_hi[n_focus])) {
                fprintf(stderr, "ffinsn: focus=%s is not a range 0xLO-0xHI, or more than %d were given\n", a + 6,
                        MAX_FOCUS);
                return -1;
            }
            n_focus++;
        } else if (!strncmp(a, "trigger=", 8)) trigger_fd = open(a + 8, O_WRONLY | O_APPEND | O_CREAT, 0644);
        else if (!strncmp(a, "log=", 4)) log_fd = open(a + 4, O_WRONLY | O_APPEND | O_CREAT, 0644);
        else {
            fprintf(stderr, "ffinsn: unknown argument %s (use begin=, end=, skip=, focus=, trigger=, log=)\n", a);
            return -1;
        }
    }
    if (begin_addr == UINT64_MAX || end_addr == UINT64_MAX || trigger_fd < 0) {
        fprintf(stderr, "ffinsn: needs begin=ADDR, end=ADDR and a writable trigger=PATH\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    qemu_plugin_register_atexit_cb(id, at_exit, 0);
    return 0;
}
