/* The learner's per-example step, fused and compiled: standardise, forward, loss gradient,
 * backward, optimizer update, continual backprop's unit statistics and the telemetry sums, for a
 * sequence of examples learned one at a time, in order, each seeing the weights the previous one
 * left. Same arithmetic, in the same order per element, as the reference NumPy/torch path
 * (network.py, optim.py, plasticity.py, telemetry.py, scaler.py); only the summation order of dot
 * products differs.
 *
 * What needs the learner's torch random generator (continual backprop's and ReDo's unit
 * replacements) or an eigendecomposition (closing a telemetry window) stays in Python:
 * `lifelong_learn` returns early when a replacement or a ReDo sweep is due, and the caller never
 * runs it across a window boundary. Shrink and perturb's noise is counter-based (`gaussian`,
 * plasticity.py's twin): computed here, in the update pass, element by element.
 *
 * Divergence: each example is checked before it changes anything (learner.py's `_check`): its
 * output must be finite and its gradient bounded (network.py's `Network.propagate`), the scaler
 * and target statistics are only counted once it passes. A failing example stops the loop with
 * `diverged` set (1: output not finite, 2: gradient beyond the limit; 3: a raw value not finite
 * or beyond RAW_LIMIT, which the caller's own checks then name), the examples before it
 * learned.
 *
 * Step size: SGD's is bounded per example (learner.py's `_step_size` and `step_ratio`, from the
 * output error d and |g|^2, the loss gradient's, in closed form from the deltas and the layers'
 * inputs before the update).
 *
 * Memory traffic: the weights (1 MB at 784-256-256-10) stream from beyond L1 per pass, so each
 * example makes one pass over them that updates a row for this example and then, while the row is
 * in L1, computes the next example's output of that unit (the next example sees the updated row,
 * as it must). The check's backpropagation reads the weights before, but only the rows of units
 * with a nonzero delta (ReLU); plain SGD writes only those rows (a zero delta changes nothing).
 *
 * Loaded with ctypes: plain C, no Python or torch headers. */
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { SGD = 0, ADAM = 1 };
enum { CLASSIFY = 0, REGRESS = 1 };
#define MAX_LAYERS 16
#define GRAM_ROWS 32 /* examples buffered per float64 second-moment update */
#define TINY 1e-12   /* scaler.py: floor of a standard deviation */
#define REGIME_RUN 8 /* scaler.py: values beyond the bound in a row that restart the statistics */
#define RAW_LIMIT 1e100 /* learner.py: a raw value beyond it counts as it */

typedef struct {
    int32_t n_layers;               /* hidden layers + 1 */
    int32_t sizes[MAX_LAYERS + 1];  /* logical widths: inputs, hidden..., outputs */
    int64_t w_off[MAX_LAYERS];      /* offset of layer i's W in every slot */
    int64_t w_stride[MAX_LAYERS];   /* row stride of W (column capacity) */
    int64_t b_off[MAX_LAYERS];
    /* slots, all with the same layout; NULL when unused */
    float *param, *momentum, *exp_avg, *exp_avg_sq, *beta1_power, *beta2_power, *initial;
    int32_t optimizer, task, standardize, cbp, adaptable;
    /* constants as the reference's float32 arithmetic sees them: expressions such as 1 - beta1
     * are evaluated in double by Python, then rounded once */
    float lr, mom, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, l2_twice;
    double step_lr;    /* the optimizer's step size; `lr` is this example's, set per example */
    double kappa;      /* step bound (SGD), 0: none */
    double logit_step; /* config.py: LOGIT_STEP */
    double clip;       /* of standardised inputs and target, and of values counted (winsorised) */
    double limit;      /* learner.py: GRADIENT_LIMIT */
    double min_weight; /* scaler.py: 1 / horizon, the least weight of a new value (0: none) */
    /* scaler (float64, one per input) and target scaler */
    double *sc_count, *sc_mean, *sc_var, *sc_run;
    double *target; /* regression target: count, mean, var, run */
    /* continual backprop, per hidden unit, all hidden layers end to end */
    int64_t *age;
    float *mean, *utility, *decay_power, *correction, *mean_hat;
    uint8_t *mature;
    double *accumulated; /* per hidden layer */
    float eta, one_minus_eta;
    double rho;
    int64_t maturity;
    /* telemetry, per hidden layer: float64 w x w second-moment sum, (2, w) sums of |h|, 1[h>0] */
    double *gram[MAX_LAYERS];
    double *unit_sums[MAX_LAYERS];
    /* scratch: hidden activations and deltas (sum of widths), output, input, |W| per unit,
     * GRAM_ROWS buffered activation rows per hidden layer, one row's gradient, and the next
     * example's input and hidden activations (computed in this example's update pass) */
    float *h, *delta, *out, *d_out, *x, *magnitude, *rows, *g, *x_next, *h_next;
    /* results: squared norm of the last learned example's gradient; set if an example diverged;
     * what is due after the last one learned: DUE_CBP (a continual-backprop replacement) and/or
     * DUE_REDO (a ReDo sweep) */
    double grad_norm2;
    int32_t diverged;
    int32_t due;
    /* shrink and perturb (sp_steps non-NULL), after the optimizer, per element:
     * p = p keep (if shrink) + gaussian(step key, flat index) std (if std) */
    int64_t *sp_steps; /* steps taken: the step's key is step_key(sp_key, *sp_steps) */
    uint64_t sp_key;
    int32_t sp_shrink;
    float sp_keep, sp_std;
    uint64_t sp_stepkey; /* this example's, set per example */
    /* ReDo (redo_sums non-NULL): per hidden unit, the sum of h since the last sweep, and the
     * examples since it; a sweep is due every redo_every */
    double *redo_sums;
    int64_t *redo_steps;
    int64_t redo_every;
} Net;

enum { DUE_CBP = 1, DUE_REDO = 2 };

/* plasticity.py: mix64, SplitMix64's finaliser */
#define GOLDEN 0x9E3779B97F4A7C15ULL
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t step_key(uint64_t key, uint64_t step) { return mix64(key + step * GOLDEN); }

static inline float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* plasticity.py: gaussian, the same float32 operations in the same order (so the same bits):
 * element j of a step with key k is Box-Muller's r cos(theta) from the 64 bits mix64(k + (j + 1)
 * GOLDEN); ln and cos by polynomials, so that the loop vectorises. Constants: float32 values of
 * sqrt 2, ln 2, pi/2, 1/9, 1/7, 1/5, 1/3, cos's 1/8!, -1/6!, 1/4!, -1/2!, sin's 1/9!, ... -1/3!. */
static inline float gaussian(uint64_t stepkey, uint64_t j) {
    const uint64_t z = mix64(stepkey + (j + 1) * GOLDEN);
    const float u1 = (float)(int32_t)((z >> 40) + 1) * 0x1p-24f; /* (0, 1], exact */
    uint32_t bits;
    memcpy(&bits, &u1, sizeof bits);
    int32_t e = (int32_t)(bits >> 23) - 127;
    /* u1 = m 2^e, m in [1, 2), then halved if above sqrt 2 (0x3FB504F3): on the bits, as gcc
     * keeps a branch for a float comparison (it may trap) or a multiplication by 1 or 1/2 */
    const uint32_t big = (bits & 0x7FFFFFu) > 0x3504F3u;
    const float m = from_bits((bits & 0x7FFFFFu) | (0x3F800000u - (big << 23)));
    e += (int32_t)big;
    const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    const float poly = (((0x1.c71c72p-4f * s2 + 0x1.24924ap-3f) * s2 + 0x1.99999ap-3f) * s2 +
                        0x1.555556p-2f) * s2;
    const float ln_m = (s * poly + s) * 2.0f;
    const float r = sqrtf(((float)e * 0x1.62e430p-1f + ln_m) * -2.0f);
    const uint32_t v = (uint32_t)z & 0xFFFFFFu, q = v >> 22;
    const float x = (((float)(int32_t)(v & 0x3FFFFFu) + 0.5f) * 0x1p-22f - 0.5f) * 0x1.921fb6p+0f;
    const float x2 = x * x;
    const float cos_x =
        ((((0x1.a01a02p-16f * x2 + -0x1.6c16c2p-10f) * x2 + 0x1.555556p-5f) * x2 + -0.5f) * x2) +
        1.0f;
    const float sin_x =
        ((((0x1.71de3ap-19f * x2 + -0x1.a01a02p-13f) * x2 + 0x1.111112p-7f) * x2 +
          -0x1.555556p-3f) * x2) * x + x;
    /* cos(q pi/2 + x): cos x, -sin x, -cos x, sin x; chosen and negated on the bits, so gcc
     * computes both and keeps no branch */
    uint32_t sin_bits, cos_bits, out_bits;
    memcpy(&sin_bits, &sin_x, sizeof sin_bits);
    memcpy(&cos_bits, &cos_x, sizeof cos_bits);
    const uint32_t odd = 0u - (q & 1u);
    const float out = r * from_bits((sin_bits & odd) | (cos_bits & ~odd));
    memcpy(&out_bits, &out, sizeof out_bits);
    return from_bits(out_bits ^ (((q ^ (q >> 1)) & 1u) << 31));
}

/* Shrink and perturb parameters [k, k + len) (plasticity.py: ShrinkPerturb.step). */
static void perturb(const Net *n, int64_t k, int len) {
    float *restrict p = n->param + k;
    if (n->sp_shrink) {
        const float keep = n->sp_keep;
#pragma omp simd
        for (int c = 0; c < len; c++) p[c] *= keep;
    }
    if (n->sp_std != 0.0f) {
        const float std = n->sp_std;
        const uint64_t key = n->sp_stepkey;
#pragma omp simd
        for (int c = 0; c < len; c++) p[c] += gaussian(key, (uint64_t)(k + c)) * std;
    }
}

static inline float *hidden_of(const Net *n, float *all, int layer) {
    int start = 0;
    for (int i = 0; i < layer; i++) start += n->sizes[i + 1];
    return all + start;
}

/* One unit's input w . a + b. The sum runs in LANES independent partial sums (a single vector
 * accumulator would wait on each multiply-add's latency), halved in a fixed tree. */
#define LANES 64
#define HALVE(width)                                                                              \
    _Pragma("omp simd") for (int j = 0; j < (width); j++) acc[j] += acc[j + (width)];
static inline float dot(const float *restrict w, const float *restrict a, int cols, float b) {
    float acc[LANES] = {0.0f};
    int c = 0;
    for (; c + LANES <= cols; c += LANES) {
#pragma omp simd
        for (int j = 0; j < LANES; j++) acc[j] = fmaf(w[c + j], a[c + j], acc[j]);
    }
    const int rest = cols - c;
#pragma omp simd
    for (int j = 0; j < rest; j++) acc[j] = fmaf(w[c + j], a[c + j], acc[j]);
    HALVE(32) HALVE(16) HALVE(8) HALVE(4) HALVE(2) HALVE(1)
    return acc[0] + b;
}

/* Layer i's output for one unit from its input s, ReLU'd on hidden layers; clears *finite if s
 * is not finite (a row of W with a non-finite element always gives a non-finite s). */
static inline float activate(const Net *n, int i, float s, int *finite) {
    if (!isfinite(s)) *finite = 0;
    return i < n->n_layers - 1 && !(s > 0.0f) ? 0.0f : s;
}

/* out = W a + b, ReLU on hidden layers; whether every unit's input was finite */
static int dense(const Net *n, int i, const float *a, float *out) {
    const int rows = n->sizes[i + 1], cols = n->sizes[i];
    const float *W = n->param + n->w_off[i], *b = n->param + n->b_off[i];
    int finite = 1;
    for (int r = 0; r < rows; r++)
        out[r] = activate(n, i, dot(W + r * n->w_stride[i], a, cols, b[r]), &finite);
    return finite;
}

/* Parameters [k, k + len) from their gradient g (overwritten), as optim.py updates them; with
 * L2-init, adds the gradient's squares to *norm2 (without, the caller has them in closed form). */
static void update(const Net *n, int64_t k, float *restrict g, int len, double *norm2) {
    float *restrict p = n->param + k;
    if (n->initial) { /* L2 toward the initial weights: g += (p - p0) 2 lambda */
        const float *restrict p0 = n->initial + k;
        const float l2 = n->l2_twice;
        double sq = 0.0;
#pragma omp simd reduction(+ : sq)
        for (int c = 0; c < len; c++) {
            g[c] += (p[c] - p0[c]) * l2;
            sq += (double)g[c] * g[c];
        }
        *norm2 += sq;
    }
    const float lr = n->lr;
    if (n->optimizer == SGD) {
        if (n->momentum) {
            float *restrict m = n->momentum + k;
            const float mom = n->mom;
#pragma omp simd
            for (int c = 0; c < len; c++) g[c] = m[c] = m[c] * mom + g[c];
        }
#pragma omp simd
        for (int c = 0; c < len; c++) p[c] -= g[c] * lr;
        return;
    }
    float *restrict m = n->exp_avg + k, *restrict v = n->exp_avg_sq + k;
    float *restrict p1 = n->beta1_power + k, *restrict p2 = n->beta2_power + k;
    const float b1 = n->beta1, b2 = n->beta2, c1 = n->one_minus_beta1, c2 = n->one_minus_beta2;
    const float eps = n->eps;
#pragma omp simd
    for (int c = 0; c < len; c++) {
        p1[c] *= b1;
        p2[c] *= b2;
        m[c] = m[c] * b1 + g[c] * c1;
        v[c] = v[c] * b2 + g[c] * g[c] * c2;
        const float den = sqrtf(v[c] / (1.0f - p2[c])) + eps;
        p[c] -= m[c] / (1.0f - p1[c]) / den * lr;
    }
}

static double max_abs(const float *v, int len) { /* nan if any is nan */
    float m = 0.0f;
    int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
    for (int c = 0; c < len; c++) {
        const float a = fabsf(v[c]);
        m = a > m ? a : m;
        nan |= a != a;
    }
    return nan ? NAN : m;
}

/* Layer i: d_prev = (W^T d) masked by a > 0, from the weights before the update (network.py:
 * Network.propagate). Returns the layer's gradient bound max|d| max(1, max|a|). With `finite`
 * (every row of W finite, known from the forward pass) a row whose delta is zero adds nothing
 * and is not read; else it is, as in the reference, where inf * 0 makes a nan. */
static double propagate(const Net *n, int i, const float *d, const float *a, float *d_prev,
                        int finite) {
    const int rows = n->sizes[i + 1], cols = n->sizes[i];
    const int64_t w0 = n->w_off[i], stride = n->w_stride[i];
    const double top = max_abs(d, rows), a_max = max_abs(a, cols);
    if (d_prev) {
        memset(d_prev, 0, cols * sizeof(float));
        for (int r = 0; r < rows; r++) {
            const float *w = n->param + w0 + r * stride;
            const float dr = d[r];
            if (finite && dr == 0.0f) continue;
#pragma omp simd
            for (int c = 0; c < cols; c++) d_prev[c] = fmaf(w[c], dr, d_prev[c]);
        }
        for (int c = 0; c < cols; c++)
            if (!(a[c] > 0.0f)) d_prev[c] *= 0.0f; /* as the reference's mask: inf * 0 is nan */
    }
    return top * (a_max > 1.0 ? a_max : 1.0);
}

static double sum_sq(const float *v, int len) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < len; c++) s += (double)v[c] * v[c];
    return s;
}

/* Layer i: W, b updated from d a^T and d, reading each weight once; col_abs[c] = sum_r |W[r, c]|
 * after the update (continual backprop's outgoing weight magnitude). Adds the squared norm of
 * the layer's gradient to *norm2. With `next` (the next example's input to the layer), each
 * updated row also gives that example's output of its unit, into out_next; returns whether every
 * unit's input was finite (1 without `next`). */
static int backward(const Net *n, int i, const float *d, const float *a, float *col_abs,
                    double *norm2, const float *next, float *out_next) {
    const int rows = n->sizes[i + 1], cols = n->sizes[i];
    const int64_t w0 = n->w_off[i], stride = n->w_stride[i], b0 = n->b_off[i];
    if (col_abs) memset(col_abs, 0, cols * sizeof(float));
    /* |d a^T|^2 + |d|^2 = |d|^2 (|a|^2 + 1); L2-init's term is only known element by element */
    if (!n->initial) *norm2 += sum_sq(d, rows) * (sum_sq(a, cols) + 1.0);
    /* plain SGD: w -= (d a) lr, which leaves a row whose delta is zero as it is (the check has
     * made d and a finite); shrink and perturb changes every row */
    const int plain = n->optimizer == SGD && !n->momentum && !n->initial && !n->sp_steps;
    const float lr = n->lr;
    int finite = 1;
    for (int r = 0; r < rows; r++) {
        float *w = n->param + w0 + r * stride;
        const float dr = d[r];
        int summed = 0; /* col_abs has the row */
        if (!plain) {
            float *g = n->g;
#pragma omp simd
            for (int c = 0; c < cols; c++) g[c] = dr * a[c];
            update(n, w0 + r * stride, g, cols, norm2);
            g[0] = dr;
            update(n, b0 + r, g, 1, norm2);
        } else if (dr != 0.0f && col_abs) { /* col_abs in the same pass */
#pragma omp simd
            for (int c = 0; c < cols; c++) {
                w[c] -= (dr * a[c]) * lr;
                col_abs[c] += fabsf(w[c]);
            }
            n->param[b0 + r] -= dr * lr;
            summed = 1;
        } else if (dr != 0.0f) {
#pragma omp simd
            for (int c = 0; c < cols; c++) w[c] -= (dr * a[c]) * lr;
            n->param[b0 + r] -= dr * lr;
        }
        if (n->sp_steps) {
            perturb(n, w0 + r * stride, cols);
            perturb(n, b0 + r, 1);
        }
        if (col_abs && !summed) {
#pragma omp simd
            for (int c = 0; c < cols; c++) col_abs[c] += fabsf(w[c]);
        }
        if (next) out_next[r] = activate(n, i, dot(w, next, cols, n->param[b0 + r]), &finite);
    }
    return finite;
}

/* Add the buffered activation rows to each hidden layer's float64 second moment S: its upper
 * triangle (telemetry.py reads no other), each element summed in example order. Tiles of S's
 * rows, aligned to GRAM_TILE columns (so a few elements left of the diagonal are summed too),
 * stay in registers across the examples; rows are skipped where h_i is zero (ReLU). */
#define GRAM_TILE 32
static void flush_gram(const Net *n, int buffered) {
    for (int l = 0; l < n->n_layers - 1; l++) {
        const int w = n->sizes[l + 1];
        const float *rows = n->rows + GRAM_ROWS * (hidden_of(n, n->h, l) - n->h);
        double *S = n->gram[l];
        for (int i = 0; i < w; i++) {
            double *Si = S + (int64_t)i * w;
            const float *h[GRAM_ROWS];
            double hi[GRAM_ROWS];
            int active = 0;
            for (int b = 0; b < buffered; b++) {
                h[active] = rows + b * w;
                hi[active] = h[active][i];
                active += hi[active] != 0.0;
            }
            if (!active) continue;
            int j0 = i - i % GRAM_TILE;
            for (; j0 + GRAM_TILE <= w; j0 += GRAM_TILE) {
                double acc[GRAM_TILE];
#pragma omp simd
                for (int j = 0; j < GRAM_TILE; j++) acc[j] = Si[j0 + j];
                for (int k = 0; k < active; k++) {
#pragma omp simd
                    for (int j = 0; j < GRAM_TILE; j++)
                        acc[j] = fma(hi[k], (double)h[k][j0 + j], acc[j]);
                }
#pragma omp simd
                for (int j = 0; j < GRAM_TILE; j++) Si[j0 + j] = acc[j];
            }
            for (int k = 0; k < active; k++) { /* the columns past the last whole tile */
#pragma omp simd
                for (int j = j0 > i ? j0 : i; j < w; j++)
                    Si[j] = fma(hi[k], (double)h[k][j], Si[j]);
            }
        }
    }
}

/* Continual backprop's counters for this step (plasticity.py, ContinualBackprop.step): ages,
 * maturity, accumulated replacements; whether a layer has a replacement due. */
static int cbp_count(Net *n) {
    int64_t *restrict age = n->age;
    uint8_t *restrict mature = n->mature;
    const int64_t maturity = n->maturity;
    int due = 0;
    for (int l = 0, start = 0; l < n->n_layers - 1; l++) {
        const int w = n->sizes[l + 1];
        int64_t eligible = 0;
#pragma omp simd reduction(+ : eligible)
        for (int k = start; k < start + w; k++) {
            age[k] += 1;
            mature[k] = age[k] > maturity;
            eligible += mature[k];
        }
        if (eligible) {
            n->accumulated[l] += n->rho * eligible;
            if (n->accumulated[l] >= 1.0) due = 1;
        }
        start += w;
    }
    return due;
}

/* Continual backprop's unit statistics for this step, from its activations, outgoing weight
 * magnitudes and (adaptable) incoming ones. */
static void cbp_step(Net *n) {
    const float eta = n->eta, keep = n->one_minus_eta;
    float *restrict decay = n->decay_power, *restrict correction = n->correction;
    float *restrict mean = n->mean, *restrict mean_hat = n->mean_hat, *restrict util = n->utility;
    const float *restrict h = n->h, *restrict mag = n->magnitude, *restrict in_abs = n->delta;
    for (int l = 0, start = 0; l < n->n_layers - 1; l++) {
        const int w = n->sizes[l + 1], end = start + w;
        /* magnitude: sum |outgoing| per unit (backward of layer l+1), turned into the mean;
         * adaptable: divided by the mean |incoming| (sums in the deltas) */
        const int out_rows = n->sizes[l + 2], in_cols = n->sizes[l];
        const float scale = out_rows ? 1.0f / out_rows : 0.0f;
        const int adaptable = n->adaptable && in_cols;
#pragma omp simd
        for (int k = start; k < end; k++) {
            decay[k] *= eta;
            correction[k] = 1.0f - decay[k];
            mean[k] = mean[k] * eta + h[k] * keep;
            mean_hat[k] = mean[k] / correction[k];
        }
        if (adaptable) {
#pragma omp simd
            for (int k = start; k < end; k++) {
                const float weight = (out_rows ? mag[k] * scale : 0.0f) * in_cols / in_abs[k];
                util[k] = util[k] * eta + fabsf(h[k] - mean_hat[k]) * weight * keep;
            }
        } else {
#pragma omp simd
            for (int k = start; k < end; k++) {
                const float weight = out_rows ? mag[k] * scale : 0.0f;
                util[k] = util[k] * eta + fabsf(h[k] - mean_hat[k]) * weight * keep;
            }
        }
        start = end;
    }
}

/* scaler.py's update of one value's statistics (count, mean, var, run) once x is counted: weight
 * w = max(1/count, min_weight), x winsorised to mean +- clip sqrt(var) (while var > 0), and a
 * restart from x after REGIME_RUN values beyond that bound in a row. */
typedef struct {
    double count, mean, var, run;
} Moments;
static inline Moments count_value(const Net *n, double x, Moments m) {
    const double spread = m.var == 0.0 ? INFINITY : sqrt(m.var) * n->clip;
    const double run = fabs(x - m.mean) > spread ? m.run + 1.0 : 0.0;
    if (run >= REGIME_RUN) return (Moments){1.0, x, 0.0, 0.0};
    const double count = m.count + 1.0;
    double w = 1.0 / count;
    w = w < n->min_weight ? n->min_weight : w;
    const double lo = m.mean - spread, hi = m.mean + spread;
    double xc = x < lo ? lo : x;
    xc = xc > hi ? hi : xc;
    const double d = xc - m.mean, t = w * d;
    return (Moments){count, m.mean + t, (1.0 - w) * (t * d + m.var), run};
}

/* Standardise raw row xr into x as if it were counted, clipped (scaler.py:
 * Standardizer.prepare); `count_inputs` counts it. Vectorised only without trapping math: with
 * it, gcc keeps the clips as branches (no floating-point exception is ever inspected here). */
__attribute__((optimize("no-trapping-math"))) static void
standardize(const Net *n, const double *restrict xr, float *restrict x) {
    const double clip = n->clip;
    const int len = n->sizes[0];
#pragma omp simd
    for (int c = 0; c < len; c++) {
        const Moments m = count_value(
            n, xr[c], (Moments){n->sc_count[c], n->sc_mean[c], n->sc_var[c], n->sc_run[c]});
        double sd = sqrt(m.var);
        sd = sd < TINY ? TINY : sd;
        double z = (xr[c] - m.mean) / sd;
        z = z < -clip ? -clip : z;
        x[c] = (float)(z > clip ? clip : z);
    }
}

/* Standardizer.commit: the same arithmetic as `standardize`, stored. */
__attribute__((optimize("no-trapping-math"))) static void
count_inputs(const Net *n, const double *restrict xr) {
    const int len = n->sizes[0];
#pragma omp simd
    for (int c = 0; c < len; c++) {
        const Moments m = count_value(
            n, xr[c], (Moments){n->sc_count[c], n->sc_mean[c], n->sc_var[c], n->sc_run[c]});
        n->sc_count[c] = m.count;
        n->sc_mean[c] = m.mean;
        n->sc_var[c] = m.var;
        n->sc_run[c] = m.run;
    }
}

/* Whether every value of row xr is finite and within RAW_LIMIT. */
static int in_range(const double *xr, int len) {
    int ok = 1;
    for (int c = 0; c < len; c++) ok &= fabs(xr[c]) <= RAW_LIMIT;
    return ok;
}

/* Row t of X into x, standardised if enabled. */
static void input(const Net *n, const double *X, int64_t t, float *x) {
    const int n_in = n->sizes[0];
    if (n->standardize)
        standardize(n, X + t * n_in, x);
    else
        for (int c = 0; c < n_in; c++) x[c] = (float)X[t * n_in + c];
}

/* Learn examples [0, count) of X (count x sizes[0], row-major; raw features, standardised here
 * if enabled) with targets y_class (output index) or y_value. Writes each example's prediction,
 * made before learning it, to outputs (count x sizes[-1]): class probabilities or the regression
 * estimate. Returns the number learned: count, or fewer when a continual-backprop replacement
 * (accumulated >= 1) or a ReDo sweep is due after the last one learned (`due` says which) or
 * when the next one would diverge (`diverged` set; that example changed nothing). */
int64_t lifelong_learn(Net *n, int64_t count, const double *X, const int64_t *y_class,
                       const double *y_value, double *outputs) {
    const int L = n->n_layers, n_in = n->sizes[0], n_out = n->sizes[L];
    int buffered = 0;
    int finite[MAX_LAYERS]; /* per layer: every unit's input finite in this example's forward */
    int ready = 0;          /* this example's forward pass was made by the previous update pass */
    int64_t t = 0;
    n->diverged = n->due = 0;
    while (t < count) {
        if (!in_range(X + t * n_in, n_in)) {
            n->diverged = 3;
            break;
        }
        float *x = n->x;
        if (!ready) {
            input(n, X, t, x);
            const float *a = x;
            for (int i = 0; i < L - 1; i++) {
                float *h = hidden_of(n, n->h, i);
                finite[i] = dense(n, i, a, h);
                a = h;
            }
            finite[L - 1] = dense(n, L - 1, a, n->out);
        }
        float *o = n->out, *d = n->d_out;
        double *pred = outputs + t * n_out;
        Moments target; /* the target scaler's statistics once this example is counted */
        if (n->task == CLASSIFY) { /* learner.py: softmax in double, d = p - onehot in float */
            double sum = 0.0;
            for (int k = 0; k < n_out; k++) sum += o[k];
            if (!isfinite(sum)) { /* learner.py: _softmax */
                n->diverged = 1;
                break;
            }
            double top = o[0], total = 0.0;
            for (int k = 1; k < n_out; k++) top = o[k] > top ? o[k] : top;
            for (int k = 0; k < n_out; k++) total += pred[k] = exp((double)o[k] - top);
            for (int k = 0; k < n_out; k++) d[k] = (float)(pred[k] /= total);
            d[y_class[t]] -= 1.0f;
        } else { /* squared error on the standardised target, scaler.py's TargetScaler */
            if (!isfinite(o[0])) {
                n->diverged = 1;
                break;
            }
            double sd = n->target[2] > 0 ? sqrt(n->target[2]) : 1.0;
            pred[0] = n->target[1] + sd * (double)o[0]; /* predicted before learning y */
            const double y = y_value[t];
            const double *old = n->target;
            target = count_value(n, y, (Moments){old[0], old[1], old[2], old[3]});
            sd = target.var > 0 ? sqrt(target.var) : 1.0;
            double z = (y - target.mean) / sd;
            z = z < -n->clip ? -n->clip : z;
            z = z > n->clip ? n->clip : z;
            d[0] = (float)(2.0 * ((double)o[0] - z));
        }
        double bound = 0.0; /* the gradient's, from the weights before anything changes */
        for (int i = L - 1; i >= 0; i--) {
            float *d_prev = i ? hidden_of(n, n->delta, i - 1) : NULL;
            const float *a = i ? hidden_of(n, n->h, i - 1) : x;
            const double b = propagate(n, i, d, a, d_prev, finite[i]);
            if (!(b <= bound)) bound = b;
            d = d_prev;
        }
        if (!(bound <= n->limit)) {
            n->diverged = 2;
            break;
        }
        double lr = n->step_lr;
        if (n->kappa > 0.0) { /* learner.py: _step_size */
            const double error2 = sum_sq(n->d_out, n_out);
            if (error2 > 0.0) {
                double g2 = 0.0; /* network.py: Network.gradient_sq_norm */
                for (int i = L - 1; i >= 0; i--) {
                    const float *di = i < L - 1 ? hidden_of(n, n->delta, i) : n->d_out;
                    const float *ai = i ? hidden_of(n, n->h, i - 1) : x;
                    g2 += sum_sq(di, n->sizes[i + 1]) * (sum_sq(ai, n->sizes[i]) + 1.0);
                }
                /* learner.py: step_ratio */
                const double ratio = n->task == REGRESS
                                         ? 2.0 * n->kappa * lr * g2 / error2
                                         : n->kappa * lr * g2 / (sqrt(error2) * n->logit_step);
                if (ratio > 1.0) lr /= ratio;
            }
        }
        n->lr = (float)lr;
        if (n->standardize) count_inputs(n, X + t * n_in);
        if (n->task == REGRESS) memcpy(n->target, &target, sizeof target);
        const int due = (n->cbp && cbp_count(n) ? DUE_CBP : 0) |
                        (n->redo_sums && *n->redo_steps + 1 >= n->redo_every ? DUE_REDO : 0);
        if (n->sp_steps) n->sp_stepkey = step_key(n->sp_key, (uint64_t)(*n->sp_steps)++);
        /* The next example's forward pass rides on this one's update, unless a replacement
         * (in Python) changes the weights in between. */
        ready = t + 1 < count && !due;
        if (ready) input(n, X, t + 1, n->x_next);
        double norm2[MAX_LAYERS];
        for (int i = 0; i < L; i++) {
            float *col = n->cbp && i ? hidden_of(n, n->magnitude, i - 1) : NULL;
            const float *a = i ? hidden_of(n, n->h, i - 1) : x;
            const float *next = ready ? (i ? hidden_of(n, n->h_next, i - 1) : n->x_next) : NULL;
            float *out_next = i < L - 1 ? hidden_of(n, n->h_next, i) : n->out;
            d = i < L - 1 ? hidden_of(n, n->delta, i) : n->d_out;
            norm2[i] = 0.0;
            finite[i] = backward(n, i, d, a, col, &norm2[i], next, out_next);
        }
        n->grad_norm2 = 0.0;
        for (int i = L - 1; i >= 0; i--) n->grad_norm2 += norm2[i];
        if (n->cbp && n->adaptable) { /* sum |incoming| per unit, into the deltas, now free */
            for (int i = 0; i < L - 1; i++) {
                const int rows = n->sizes[i + 1], cols = n->sizes[i];
                float *row_abs = hidden_of(n, n->delta, i);
                for (int r = 0; r < rows; r++) {
                    const float *w = n->param + n->w_off[i] + r * n->w_stride[i];
                    float s = 0.0f;
                    for (int c = 0; c < cols; c++) s += fabsf(w[c]);
                    row_abs[r] = s;
                }
            }
        }
        if (n->cbp) cbp_step(n);
        for (int l = 0, start = 0; l < L - 1; l++) { /* telemetry.py: LayerTelemetry.observe */
            const int w = n->sizes[l + 1];
            const float *h = n->h + start;
            double *abs_sum = n->unit_sums[l], *active = abs_sum + w;
            for (int u = 0; u < w; u++) {
                abs_sum[u] += fabs((double)h[u]);
                active[u] += h[u] > 0.0f;
            }
            memcpy(n->rows + GRAM_ROWS * start + buffered * w, h, w * sizeof(float));
            start += w;
        }
        if (n->redo_sums) { /* plasticity.py: ReDo.step, h >= 0 (ReLU) */
            double *restrict sums = n->redo_sums;
            const int hidden = (int)(hidden_of(n, n->h, L - 1) - n->h);
            for (int k = 0; k < hidden; k++) sums[k] += (double)n->h[k];
            ++*n->redo_steps;
        }
        if (++buffered == GRAM_ROWS) {
            flush_gram(n, buffered);
            buffered = 0;
        }
        if (ready) {
            memcpy(x, n->x_next, n_in * sizeof(float));
            const int hidden = (int)(hidden_of(n, n->h, L - 1) - n->h);
            memcpy(n->h, n->h_next, hidden * sizeof(float));
        }
        t++;
        if (due) {
            n->due = due;
            break;
        }
    }
    if (buffered) flush_gram(n, buffered);
    return t;
}

/* A predictor's weights for one row at a time: layer i's W (rows `stride` floats apart) and b,
 * and the input statistics (NULL: inputs not standardised). */
typedef struct {
    int32_t n_layers;
    int32_t sizes[MAX_LAYERS + 1];
    const float *W[MAX_LAYERS];
    int64_t stride[MAX_LAYERS];
    const float *b[MAX_LAYERS];
    const double *mean, *var;
    double clip;
} Rows;

/* `dot` with 16 partial sums: a predictor's rows are short, and any fixed order will do. */
static inline float dot16(const float *restrict w, const float *restrict a, int cols, float b) {
    float acc[16] = {0.0f};
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
#pragma omp simd
        for (int j = 0; j < 16; j++) acc[j] = fmaf(w[c + j], a[c + j], acc[j]);
    }
    const int rest = cols - c;
#pragma omp simd
    for (int j = 0; j < rest; j++) acc[j] = fmaf(w[c + j], a[c + j], acc[j]);
    HALVE(8) HALVE(4) HALVE(2) HALVE(1)
    return acc[0] + b;
}

/* One row's outputs (learner.py's Predictor): x z-scored as Standardizer.transform does (0
 * without spread, clipped; a NaN is a missing feature: 0, its mean), then the forward pass with
 * a ReLU that keeps NaN, as NumPy's. Scratch on the stack: any number of threads at once. With
 * `check`, returns 1 and computes nothing if a value is not finite or beyond RAW_LIMIT (the
 * caller's own checks say what is wrong), else 0. */
int32_t lifelong_predict(const Rows *m, const double *x, double *out, int32_t check) {
    const int L = m->n_layers;
    if (check && !in_range(x, m->sizes[0])) return 1;
    int width = 1;
    for (int i = 0; i < L; i++) width = m->sizes[i] > width ? m->sizes[i] : width;
    float a[width], h[width];
    for (int c = 0; c < m->sizes[0]; c++) {
        double z = x[c];
        if (z != z) {
            z = 0.0;
        } else if (m->mean) {
            const double sd = sqrt(m->var[c]);
            z = sd > 0.0 ? (z - m->mean[c]) / sd : 0.0;
            z = z < -m->clip ? -m->clip : z;
            z = z > m->clip ? m->clip : z;
        }
        a[c] = (float)z;
    }
    for (int i = 0; i < L; i++) {
        const int rows = m->sizes[i + 1], cols = m->sizes[i];
        for (int r = 0; r < rows; r++) {
            const float s = dot16(m->W[i] + r * m->stride[i], a, cols, m->b[i][r]);
            if (i == L - 1)
                out[r] = s;
            else
                h[r] = s <= 0.0f ? 0.0f : s;
        }
        if (i < L - 1) memcpy(a, h, rows * sizeof(float));
    }
    return 0;
}
