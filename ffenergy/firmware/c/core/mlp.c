/* Early-exit inference of FF networks (MP, OP) and exit-head networks (scheme exit: bp-exits,
 * PEPITA); see ffenergy/firmware/arrays.py for the semantics and
 * ffenergy/firmware/reference.py for the bit-exact numpy twin. Every sum runs sequentially
 * in float32; build with -ffp-contract=off -fno-math-errno so no FMA is fused and sqrtf is
 * the FPU instruction. */
#include "mlp.h"

#define NEG_INF (-__builtin_inff())
#define FF_PROC_MP (!FF_PROC_OP && !FF_PROC_EXIT)

static float h_buf[FF_MAX_IN_DIM];
#if FF_PROC_OP
static float z_cat[FF_SUM_HID];
#define N_PASS 1
#elif FF_PROC_MP
static float act[2][FF_N_CLASSES][FF_MAX_HID_DIM];
#define N_PASS FF_N_CLASSES
#endif
static float acc_score[FF_N_CLASSES];
static uint8_t active[FF_N_CLASSES];

float ff_expf(float x) {
    if (x < -87.0f) return 0.0f;
    float t = x * 1.44269504088896341f + 0.5f;
    int32_t n = (int32_t)t;
    if ((float)n > t) n -= 1;            /* floor */
    float fx = (float)n;
    float r = x - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    float z = r * r;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r;
    y = y + 1.0f;
    union { uint32_t u; float f; } s;
    s.u = (uint32_t)(n + 127) << 23;
    return y * s.f;
}

#if !FF_PROC_EXIT
/* Input of pass p to layer l: OP layer 0 reads x with the neutral label applied on the fly;
 * MP layer 0 runs in first_layer. */
static float layer_in(const float *x, int l, int p, int i, int in_slot) {
#if FF_PROC_OP
    (void)p; (void)in_slot;
    if (l == 0) return i < FF_N_CLASSES ? ff_neutral : x[i];
    int off = 0;
    for (int k = 0; k < l - 1; k++) off += ff_dims[k + 1];
    return z_cat[off + i];
#else
    (void)x; (void)l;
    return act[in_slot][p][i];
#endif
}
#endif

/* in_buf holds the normalised layer input as the dot products read it: operand() makes int8
 * codes (round half away from zero) or keeps the float32 value; dot() sums row[i] * in_buf[i]
 * for i in [from, to) in index order; activate() applies the int8 scale, the bias and ReLU. */
#if FF_DTYPE_INT8
typedef int32_t acc_t;
static int8_t in_buf[FF_MAX_IN_DIM];
static int8_t operand(float h, int l) {
    float t = h * ff_in_inv_scale[l];
    if (t > 127.0f) t = 127.0f;
    if (t < -127.0f) t = -127.0f;
    return (int8_t)(int32_t)(t + (t >= 0.0f ? 0.5f : -0.5f));
}
static acc_t dot(const ff_w_t *row, int from, int to) {
    acc_t acc = 0;
    for (int i = from; i < to; i++) acc += (int32_t)row[i] * (int32_t)in_buf[i];
    return acc;
}
static float activate(acc_t acc, int l, int j) {
    float z = (float)acc * ff_WS[l][j] + ff_B[l][j];
    return z > 0.0f ? z : 0.0f;
}
#else
typedef float acc_t;
static float in_buf[FF_MAX_IN_DIM];
static float operand(float h, int l) {
    (void)l;
    return h;
}
static acc_t dot(const ff_w_t *row, int from, int to) {
    acc_t acc = 0.0f;
    for (int i = from; i < to; i++) acc = acc + row[i] * in_buf[i];
    return acc;
}
static float activate(acc_t acc, int l, int j) {
    float z = acc + ff_B[l][j];
    return z > 0.0f ? z : 0.0f;
}
#endif

#if FF_DTYPE_INT8
#if FF_PROC_EXIT && FF_N_CLASSES > FF_MAX_HID_DIM
static int32_t acc_buf[FF_N_CLASSES]; /* the heads' sums */
#else
static int32_t acc_buf[FF_MAX_HID_DIM];
#endif
#endif

#if FF_DTYPE_INT8 && defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
/* Cortex-M4/M7 DSP kernel: dual 16-bit MACs (SMLAD). The layer's quantised input is widened once
 * into int16 pairs in the lane order SXTB16 gives a word of four weights, (q0,q2) then (q1,q3);
 * rows go four at a time, so each pair loaded feeds four rows (mac8_rows4 has the counts).
 * Integer sums are exact, so the order change keeps the result bit-identical with the portable loop. */
#include <arm_acle.h>
static int16x2_t q_pairs[FF_MAX_IN_DIM / 2 + 2];

/* Pairs of in_buf[from, n), from a multiple of 4. */
__attribute__((noipa)) static void widen_input(int from, int n) {
    for (int g = from; g + 4 <= n; g += 4) {
        q_pairs[g / 2] = (int16x2_t)((uint16_t)in_buf[g] | (uint32_t)(uint16_t)in_buf[g + 2] << 16);
        q_pairs[g / 2 + 1] = (int16x2_t)((uint16_t)in_buf[g + 1] | (uint32_t)(uint16_t)in_buf[g + 3] << 16);
    }
}

/* One row's 4 weights (the word at addr) against a pair of input words (p0, p1) into acc. */
#define MAC4(acc, addr)                               \
    "ldr %[w], " addr "\n\t"                          \
    "sxtb16 %[t], %[w]\n\t"                           \
    "smlad %[" acc "], %[t], %[p0], %[" acc "]\n\t"   \
    "sxtb16 %[w], %[w], ror #8\n\t"                   \
    "smlad %[" acc "], %[w], %[p1], %[" acc "]\n\t"

/* Four rows, r0 + k n for k < 4, by 4 weights: rows 1 to 3 addressed off row 0, which advances last. */
#define MAC4_ROWS4                                                                        \
    "ldrd %[p0], %[p1], [%[q]], #8\n\t" MAC4("a1", "[%[r0], %[n]]") MAC4("a2", "[%[r0], %[n], lsl #1]") \
        MAC4("a3", "[%[r0], %[n3]]") MAC4("a0", "[%[r0]], #4")

/* a[k] += row (r0 + k n) . input for k < 4 over `blocks` (> 0) groups of 8 weights, the input's
 * pairs read from q. Per group of 8 weights of the four rows: two LDRD of pairs, eight word loads
 * of weights (unaligned is fine on v7-M), sixteen SXTB16, sixteen SMLAD and the loop's compare
 * and branch: 44 instructions for 32 MACs. Assembly, because GCC spills here. */
static inline void mac8_rows4(const int8_t *r0, int n, const int16x2_t *q, int blocks, int32_t a[4]) {
    const int8_t *const end = r0 + 8 * blocks;
    const int n3 = 3 * n;
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], p0, p1, w, t;
    __asm__ volatile("1:\n\t" MAC4_ROWS4 MAC4_ROWS4
                     "cmp %[r0], %[end]\n\t"
                     "bne 1b"
                     : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [r0] "+r"(r0), [q] "+r"(q),
                       [p0] "=&r"(p0), [p1] "=&r"(p1), [w] "=&r"(w), [t] "=&r"(t)
                     : [n] "r"(n), [n3] "r"(n3), [end] "r"(end)
                     : "cc", "memory");
    a[0] = a0;
    a[1] = a1;
    a[2] = a2;
    a[3] = a3;
}

/* acc[k] += row (row + k n) . in_buf over [from, n) for k < rows, in C: the weights after the last
 * group of 8, and the rows after the last group of 4. */
__attribute__((noinline)) static void dot_rows_c(const int8_t *row, int n, int rows, int from, int32_t *acc) {
    for (int k = 0; k < rows; k++, row += n) {
        int32_t a = acc[k];
        for (int i = from; i < n; i++) a += (int32_t)row[i] * (int32_t)in_buf[i];
        acc[k] = a;
    }
}

/* acc[j] = row j of w (d_out rows of n weights) . in_buf over [from, n): four rows at a time through
 * mac8_rows4, the remainders through dot_rows_c. */
__attribute__((noipa)) static void matvec_i8(const int8_t *w, int from, int n, int d_out, int32_t *acc) {
    const int blocks = (n - from) / 8, tail = from + 8 * blocks;
    const int16x2_t *const q = q_pairs + from / 2;
    int j = 0;
    for (; j + 4 <= d_out; j += 4) {
        const int8_t *row = w + (int32_t)j * n;
        acc[j] = acc[j + 1] = acc[j + 2] = acc[j + 3] = 0;
        if (blocks) mac8_rows4(row + from, n, q, blocks, &acc[j]);
        if (tail < n) dot_rows_c(row, n, 4, tail, &acc[j]);
    }
    for (int k = j; k < d_out; k++) acc[k] = 0;
    if (j < d_out) dot_rows_c(w + (int32_t)j * n, n, d_out - j, from, &acc[j]);
}
#elif FF_DTYPE_INT8
static void widen_input(int from, int n) { (void)from; (void)n; }

/* The portable loop (host build, cores without the DSP extension). */
static void matvec_i8(const int8_t *w, int from, int n, int d_out, int32_t *acc) {
    for (int j = 0; j < d_out; j++) acc[j] = dot(w + (int32_t)j * n, from, n);
}
#endif

#if FF_PROC_EXIT
/* Layer l (0-based) and its exit head, scheme exit. in_buf holds the operand of z_l (made here
 * from x for l = 0); z_{l+1} = ReLU(W_l z_l + b_l) is turned into its operand in in_buf, which
 * head l reads now and layer l + 1 next: in int8, one set of codes (at z_{l+1}'s scale) and one
 * widening serve both, and every product runs through matvec_i8. Writes the logits to scores. */
static void exit_layer(const float *x, int l, float *scores) {
    const int d_in = ff_dims[l], d_out = ff_dims[l + 1];
    if (l == 0) {
        for (int i = 0; i < d_in; i++) in_buf[i] = operand(x[i], 0);
#if FF_DTYPE_INT8
        widen_input(0, d_in);
#endif
    }
#if FF_DTYPE_INT8
    matvec_i8(ff_W[l], 0, d_in, d_out, acc_buf);
    for (int j = 0; j < d_out; j++) h_buf[j] = activate(acc_buf[j], l, j);
    for (int j = 0; j < d_out; j++) in_buf[j] = operand(h_buf[j], l + 1);
    widen_input(0, d_out);
    matvec_i8(ff_H[l], 0, d_out, FF_N_CLASSES, acc_buf);
    for (int c = 0; c < FF_N_CLASSES; c++) scores[c] = (float)acc_buf[c] * ff_HS[l][c] + ff_HB[l][c];
#else
    for (int j = 0; j < d_out; j++) h_buf[j] = activate(dot(ff_W[l] + (int32_t)j * d_in, 0, d_in), l, j);
    for (int j = 0; j < d_out; j++) in_buf[j] = operand(h_buf[j], l + 1);
    for (int c = 0; c < FF_N_CLASSES; c++) scores[c] = dot(ff_H[l] + (int32_t)c * d_out, 0, d_out) + ff_HB[l][c];
#endif
}
#else
static float norm_denom(float ss, int d_in) { return __builtin_sqrtf(ss / (float)d_in) + ff_norm_eps; }

/* z = ReLU(W_l n(in) + b_l) for pass p; writes d_l floats to out. */
static void layer(const float *x, int l, int p, int in_slot, float *out) {
    const int d_in = ff_dims[l], d_out = ff_dims[l + 1];
    float ss = 0.0f;
    for (int i = 0; i < d_in; i++) {
        float v = layer_in(x, l, p, i, in_slot);
        h_buf[i] = v;
        ss = ss + v * v;
    }
    const float denom = norm_denom(ss, d_in);
    for (int i = 0; i < d_in; i++) in_buf[i] = operand(h_buf[i] / denom, l);
#if FF_DTYPE_INT8
    widen_input(0, d_in);
    matvec_i8(ff_W[l], 0, d_in, d_out, acc_buf);
    for (int j = 0; j < d_out; j++) out[j] = activate(acc_buf[j], l, j);
#else
    for (int j = 0; j < d_out; j++) out[j] = activate(dot(ff_W[l] + (int32_t)j * d_in, 0, d_in), l, j);
#endif
}
#endif

#if FF_PROC_MP
/* Layer 1 of every active MP pass at once (DESIGN.md section 2): the label overlays differ only
 * in the first FF_N_CLASSES inputs and share one norm (the image part's sum of squares after
 * label_on^2, the order the per-pass loop adds them in), so each row's image product is computed
 * once and pass p adds W[j][p] times its label input. Returns the MACs it ran. */
static uint32_t first_layer(const float *x, float out[][FF_MAX_HID_DIM]) {
    const int d_in = ff_dims[0], d_out = ff_dims[1];
    float ss = ff_label_on * ff_label_on;
    for (int i = FF_N_CLASSES; i < d_in; i++) ss = ss + x[i] * x[i];
    const float denom = norm_denom(ss, d_in);
    for (int i = FF_N_CLASSES; i < d_in; i++) in_buf[i] = operand(x[i] / denom, 0);
    const acc_t label = operand(ff_label_on / denom, 0);
    int n_active = 0;
    for (int p = 0; p < FF_N_CLASSES; p++) n_active += active[p];
#if FF_DTYPE_INT8
    /* the image part through the mat-vec kernel, from the label slots' last word boundary on: the
     * slots before FF_N_CLASSES are zeroed, so the integer sums are exactly those over
     * [FF_N_CLASSES, d_in) */
    const int from = FF_N_CLASSES & ~3;
    for (int i = from; i < FF_N_CLASSES; i++) in_buf[i] = 0;
    widen_input(from, d_in);
    matvec_i8(ff_W[0], from, d_in, d_out, acc_buf);
#endif
    for (int j = 0; j < d_out; j++) {
        const ff_w_t *row = ff_W[0] + (int32_t)j * d_in;
#if FF_DTYPE_INT8
        const acc_t base = acc_buf[j];
#else
        const acc_t base = dot(row, FF_N_CLASSES, d_in);
#endif
        for (int p = 0; p < FF_N_CLASSES; p++)
            if (active[p]) out[p][j] = activate(base + (acc_t)row[p] * label, 0, j);
    }
    return (uint32_t)(d_in - FF_N_CLASSES) * d_out + (uint32_t)n_active * d_out;
}
#endif

static float sumsq(const float *v, int n) {
    float g = 0.0f;
    for (int i = 0; i < n; i++) g = g + v[i] * v[i];
    return g;
}

static int argmax(const float *s) {
    int best = 0;
    for (int c = 1; c < FF_N_CLASSES; c++)
        if (s[c] > s[best]) best = c;
    return best;
}

static float confidence(const float *s) {
    int best = argmax(s);
    float top1 = s[best], top2 = NEG_INF;
    for (int c = 0; c < FF_N_CLASSES; c++)
        if (c != best && s[c] > top2) top2 = s[c];
#if FF_STAT_MAX
#if !FF_PROC_MP
    (void)top2;
    float total = 0.0f;
    for (int c = 0; c < FF_N_CLASSES; c++) total = total + ff_expf(s[c] - top1);
    return 1.0f / total;
#else
    (void)top2;
    return top1;
#endif
#else
    return top1 - top2;
#endif
}

#if FF_PROC_MP && FF_PRUNE_KEEP
/* Keep the FF_PRUNE_KEEP highest accumulated scores (lower label first on ties). */
static void prune(void) {
    uint8_t keep[FF_N_CLASSES] = {0};
    for (int r = 0; r < FF_PRUNE_KEEP; r++) {
        int best = -1;
        for (int c = 0; c < FF_N_CLASSES; c++)
            if (!keep[c] && (best < 0 || acc_score[c] > acc_score[best])) best = c;
        keep[best] = 1;
    }
    for (int c = 0; c < FF_N_CLASSES; c++) {
        active[c] = keep[c];
        if (!keep[c]) acc_score[c] = NEG_INF;
    }
}
#endif

void ff_infer(const float *x, int mode, int depth, const float *thr, ff_result_t *out) {
    const int last = mode == FF_MODE_FULL ? FF_N_LAYERS : mode == FF_MODE_DEPTH ? depth : FF_N_LAYERS;
    uint32_t macs = 0;
    int l = 0;
    for (int c = 0; c < FF_N_CLASSES; c++) {
        acc_score[c] = 0.0f;
        active[c] = 1;
    }
    for (l = 0; l < last; l++) {
        const uint32_t layer_macs = (uint32_t)ff_dims[l] * ff_dims[l + 1];
#if FF_PROC_EXIT
        exit_layer(x, l, acc_score);
        macs += layer_macs + (uint32_t)FF_N_CLASSES * ff_dims[l + 1];
#elif FF_PROC_OP
        int off = 0;
        for (int k = 0; k < l; k++) off += ff_dims[k + 1];
        layer(x, l, 0, 0, z_cat + off);
        const int width = off + ff_dims[l + 1];
        const ff_w_t *head = ff_H[l];
        for (int c = 0; c < FF_N_CLASSES; c++) {
            float a = 0.0f;
            for (int m = 0; m < width; m++) a = a + (float)head[c * width + m] * z_cat[m];
#if FF_DTYPE_INT8
            a = a * ff_HS[l][c];
#endif
            acc_score[c] = a;
        }
        macs += layer_macs + (uint32_t)FF_N_CLASSES * width;
#else
        const int in_slot = l & 1, out_slot = in_slot ^ 1;
        if (l == 0) macs += first_layer(x, act[out_slot]);
        for (int p = 0; p < N_PASS; p++) {
            if (!active[p]) continue;
            if (l > 0) {
                layer(x, l, p, in_slot, act[out_slot][p]);
                macs += layer_macs;
            }
            acc_score[p] = acc_score[p] + sumsq(act[out_slot][p], ff_dims[l + 1]);
        }
#endif
        if (l + 1 == last) break;
        if (mode == FF_MODE_LIGHT && confidence(acc_score) >= thr[l]) break;
#if FF_PROC_MP && FF_PRUNE_KEEP
        if (l + 1 == FF_PRUNE_AFTER) prune();
#endif
    }
    out->exit_layer = (uint8_t)(l + 1);
    out->macs = macs;
    for (int c = 0; c < FF_N_CLASSES; c++) out->scores[c] = acc_score[c];
    out->pred = (uint8_t)argmax(acc_score);
}
