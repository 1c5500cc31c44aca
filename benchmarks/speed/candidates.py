"""Which tool compiles the fused per-example loop fastest: Numba, C via ctypes, or a C++ torch
extension (`torch.utils.cpp_extension.load_inline`)?

The same prototype step in each (20-64-64-2, softmax cross-entropy, SGD, continual backprop's
running mean and utility, telemetry sums with the float64 second moment), learned one example at
a time over one sequence per call. The C and C++ candidates compile the same source; only the
binding differs. Prints build time, the first call's cost, and examples/s (median of interleaved
repetitions), and checks that the three end on the same weights.

    .venv/bin/python -m pip install --target .cache/numba-trial numba      # once
    PYTHONPATH=.cache/numba-trial .venv/bin/python benchmarks/speed/candidates.py

"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import itertools
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "speed-candidates"
SIZES = (20, 64, 64, 2)
N = 50_000
REPEATS = 5
LR, ETA = 0.01, 0.99

C_SOURCE = r"""
#include <math.h>
#include <stdint.h>

/* out = relu?(W x + b), W (rows, cols) row-major */
static void dense(const float* W, const float* b, const float* x, float* out,
                  int rows, int cols, int relu) {
    for (int r = 0; r < rows; r++) {
        const float* w = W + (int64_t)r * cols;
        float s = 0.0f;
        #pragma omp simd reduction(+:s)
        for (int c = 0; c < cols; c++) s += w[c] * x[c];
        s += b[r];
        out[r] = relu && s < 0.0f ? 0.0f : s;
    }
}

/* d_prev = W^T d (masked by a > 0), then W -= lr d a^T, b -= lr d; col_abs = sum_r |W[r, :]| */
static void backward_update(float* W, float* b, const float* d, const float* a, float* d_prev,
                            float* col_abs, int rows, int cols, float lr) {
    for (int c = 0; c < cols; c++) { d_prev[c] = 0.0f; col_abs[c] = 0.0f; }
    for (int r = 0; r < rows; r++) {
        float* w = W + (int64_t)r * cols;
        const float dr = d[r], step = lr * d[r];
        #pragma omp simd
        for (int c = 0; c < cols; c++) {
            d_prev[c] += w[c] * dr;
            w[c] -= step * a[c];
            col_abs[c] += fabsf(w[c]);
        }
        b[r] -= step;
    }
    for (int c = 0; c < cols; c++) if (a[c] <= 0.0f) d_prev[c] = 0.0f;
}

static void telemetry(const float* h, int width, double* gram, double* active, double* abs_sum) {
    for (int i = 0; i < width; i++) {
        const double hi = h[i];
        active[i] += hi > 0.0;
        abs_sum[i] += fabs(hi);
        if (hi == 0.0) continue;  /* ReLU rows are sparse: skip the zero rows of h h^T */
        double* g = gram + (int64_t)i * width;
        #pragma omp simd
        for (int j = 0; j < width; j++) g[j] += hi * h[j];
    }
}

static void cbp(const float* h, const float* col_abs, int width, int rows_out,
                float* f, float* u, float eta) {
    for (int i = 0; i < width; i++) {
        f[i] = eta * f[i] + (1.0f - eta) * h[i];
        const float y = col_abs[i] / rows_out * fabsf(h[i] - f[i]);
        u[i] = eta * u[i] + (1.0f - eta) * y;
    }
}

void learn_seq(int n, const float* X, const int32_t* y,
               float* W1, float* b1, float* W2, float* b2, float* W3, float* b3,
               int d0, int d1, int d2, int d3, float lr, float eta,
               double* gram1, double* gram2, double* stats1, double* stats2,
               float* cbp1, float* cbp2, float* scratch) {
    float *a1 = scratch, *a2 = a1 + d1, *o = a2 + d2, *e1 = o + d3, *e2 = e1 + d1;
    float *abs1 = e2 + d2, *abs2 = abs1 + d1, *abs3 = abs2 + d2;
    for (int t = 0; t < n; t++) {
        const float* x = X + (int64_t)t * d0;
        dense(W1, b1, x, a1, d1, d0, 1);
        dense(W2, b2, a1, a2, d2, d1, 1);
        dense(W3, b3, a2, o, d3, d2, 0);
        float m = o[0], z = 0.0f;
        for (int k = 1; k < d3; k++) m = o[k] > m ? o[k] : m;
        for (int k = 0; k < d3; k++) { o[k] = expf(o[k] - m); z += o[k]; }
        for (int k = 0; k < d3; k++) o[k] = o[k] / z - (k == y[t]);
        backward_update(W3, b3, o, a2, e2, abs3, d3, d2, lr);
        backward_update(W2, b2, e2, a1, e1, abs2, d2, d1, lr);
        backward_update(W1, b1, e1, x, abs1, abs1, d1, d0, lr);
        telemetry(a1, d1, gram1, stats1, stats1 + d1);
        telemetry(a2, d2, gram2, stats2, stats2 + d2);
        cbp(a1, abs2, d1, d2, cbp1, cbp1 + d1, eta);
        cbp(a2, abs3, d2, d3, cbp2, cbp2 + d2, eta);
    }
}
"""

CPP_BINDING = r"""
#include <torch/extension.h>
extern "C" void learn_seq(int, const float*, const int32_t*, float*, float*, float*, float*,
    float*, float*, int, int, int, int, float, float, double*, double*, double*, double*,
    float*, float*, float*);
void learn(torch::Tensor X, torch::Tensor y, std::vector<torch::Tensor> p, double lr, double eta,
           std::vector<torch::Tensor> s) {
    learn_seq(X.size(0), X.data_ptr<float>(), y.data_ptr<int32_t>(),
              p[0].data_ptr<float>(), p[1].data_ptr<float>(), p[2].data_ptr<float>(),
              p[3].data_ptr<float>(), p[4].data_ptr<float>(), p[5].data_ptr<float>(),
              X.size(1), p[0].size(0), p[2].size(0), p[4].size(0), lr, eta,
              s[0].data_ptr<double>(), s[1].data_ptr<double>(), s[2].data_ptr<double>(),
              s[3].data_ptr<double>(), s[4].data_ptr<float>(), s[5].data_ptr<float>(),
              s[6].data_ptr<float>());
}
"""
FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno"]


def build_ctypes() -> ctypes.CDLL:
    CACHE.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(C_SOURCE.encode()).hexdigest()[:16]
    lib = CACHE / f"proto-{digest}.so"
    if not lib.exists():
        src = CACHE / f"proto-{digest}.c"
        src.write_text(C_SOURCE)
        cmd = ["gcc", *FLAGS, "-shared", "-fPIC", str(src), "-o", str(lib)]
        subprocess.run(cmd, check=True)
    return ctypes.CDLL(str(lib))


def build_torch_extension():
    from torch.utils.cpp_extension import load_inline

    return load_inline(
        name="lifelong_speed_proto",
        cpp_sources=[CPP_BINDING, 'extern "C" {' + C_SOURCE + "}"],
        functions=["learn"],
        extra_cflags=FLAGS,
        build_directory=str(_mkdir(CACHE / "torch-ext")),
    )


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_numba():
    import numba

    @numba.njit(cache=False, fastmath={"reassoc", "contract", "nsz", "arcp"})
    def learn_seq(X, y, W1, b1, W2, b2, W3, b3, lr, eta, gram1, gram2, st1, st2, cbp1, cbp2):
        d1, d2, d3 = W1.shape[0], W2.shape[0], W3.shape[0]
        Ws, bs = (W1, W2, W3), (b1, b2, b3)
        a1 = np.empty(d1, np.float32)
        a2 = np.empty(d2, np.float32)
        o = np.empty(d3, np.float32)
        e1 = np.empty(d1, np.float32)
        e2 = np.empty(d2, np.float32)
        abs2 = np.empty(d1, np.float32)
        abs3 = np.empty(d2, np.float32)
        for t in range(X.shape[0]):
            x = X[t]
            for layer, (inp, out, relu) in enumerate(((x, a1, True), (a1, a2, True))):
                W, b = Ws[layer], bs[layer]
                for r in range(W.shape[0]):
                    s = np.float32(0.0)
                    for c in range(W.shape[1]):
                        s += W[r, c] * inp[c]
                    s += b[r]
                    out[r] = 0.0 if relu and s < 0 else s
            for r in range(d3):
                s = np.float32(0.0)
                for c in range(d2):
                    s += W3[r, c] * a2[c]
                o[r] = s + b3[r]
            m = o.max()
            z = np.float32(0.0)
            for k in range(d3):
                o[k] = np.exp(o[k] - m)
                z += o[k]
            for k in range(d3):
                o[k] = o[k] / z - (1.0 if k == y[t] else 0.0)
            for W, b, d, a, prev, col in ((W3, b3, o, a2, e2, abs3), (W2, b2, e2, a1, e1, abs2)):
                prev[:] = 0.0
                col[:] = 0.0
                for r in range(W.shape[0]):
                    step = lr * d[r]
                    for c in range(W.shape[1]):
                        prev[c] += W[r, c] * d[r]
                        W[r, c] -= step * a[c]
                        col[c] += abs(W[r, c])
                    b[r] -= step
                for c in range(W.shape[1]):
                    if a[c] <= 0:
                        prev[c] = 0.0
            for r in range(d1):
                step = lr * e1[r]
                for c in range(W1.shape[1]):
                    W1[r, c] -= step * x[c]
                b1[r] -= step
            for h, gram, st, cb, col, rows in (
                (a1, gram1, st1, cbp1, abs2, d2),
                (a2, gram2, st2, cbp2, abs3, d3),
            ):
                w = h.shape[0]
                for i in range(w):
                    hi = np.float64(h[i])
                    st[0, i] += 1.0 if hi > 0 else 0.0
                    st[1, i] += abs(hi)
                    if hi != 0.0:
                        for j in range(w):
                            gram[i, j] += hi * h[j]
                    cb[0, i] = eta * cb[0, i] + (1 - eta) * h[i]
                    util = col[i] / rows * abs(h[i] - cb[0, i])
                    cb[1, i] = eta * cb[1, i] + (1 - eta) * util
        return 0

    return learn_seq


def fresh_state(seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    params = []
    for fan_in, fan_out in itertools.pairwise(SIZES):
        bound = (2.0**0.5) * (3.0 / fan_in) ** 0.5
        params += [torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=g)]
        params += [torch.zeros(fan_out)]
    d1, d2 = SIZES[1], SIZES[2]
    state = [
        torch.zeros(d1, d1, dtype=torch.float64),
        torch.zeros(d2, d2, dtype=torch.float64),
        torch.zeros(2, d1, dtype=torch.float64),
        torch.zeros(2, d2, dtype=torch.float64),
        torch.zeros(2, d1),
        torch.zeros(2, d2),
        torch.zeros(3 * (d1 + d2) + SIZES[3] + d1),
    ]
    return params, state


def stream() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, SIZES[0]), dtype=np.float32)
    y = (X @ rng.standard_normal(SIZES[0]) > 0).astype(np.int32)
    return X, y


def main() -> None:
    if importlib.util.find_spec("numba") is None:  # before minutes of C++ extension build
        raise SystemExit(
            "numba is not importable: .venv/bin/python -m pip install --target "
            ".cache/numba-trial numba, then run with PYTHONPATH=.cache/numba-trial"
        )
    torch.set_num_threads(1)
    X, y = stream()
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    runners, builds = {}, {}

    t0 = time.perf_counter()
    lib = build_ctypes()
    builds["C (ctypes)"] = time.perf_counter() - t0
    fp = ctypes.POINTER(ctypes.c_float)
    dp = ctypes.POINTER(ctypes.c_double)

    def run_ctypes(p: list[torch.Tensor], s: list[torch.Tensor]) -> None:
        f, d = (lambda t: ctypes.cast(t.data_ptr(), fp)), (lambda t: ctypes.cast(t.data_ptr(), dp))
        lib.learn_seq(
            ctypes.c_int(N), f(X_t), ctypes.c_void_p(y_t.data_ptr()), *map(f, p),
            *map(ctypes.c_int, SIZES), ctypes.c_float(LR), ctypes.c_float(ETA),
            *map(d, s[:4]), *map(f, s[4:]),
        )  # fmt: skip

    runners["C (ctypes)"] = run_ctypes

    t0 = time.perf_counter()
    ext = build_torch_extension()
    builds["C++ (load_inline)"] = time.perf_counter() - t0
    runners["C++ (load_inline)"] = lambda p, s: ext.learn(X_t, y_t, p, LR, ETA, s)

    t0 = time.perf_counter()
    nb = build_numba()
    builds["Numba"] = time.perf_counter() - t0

    def run_numba(p: list[torch.Tensor], s: list[torch.Tensor]) -> None:
        nb(X, y, *(t.numpy() for t in p), np.float32(LR), np.float32(ETA),
           *(t.numpy() for t in s[:6]))  # fmt: skip

    runners["Numba"] = run_numba

    finals, rates = {}, {name: [] for name in runners}
    first_call = {}
    for name, run in runners.items():  # first call: Numba compiles here
        p, s = fresh_state()
        t0 = time.perf_counter()
        run(p, s)
        first_call[name] = time.perf_counter() - t0
        finals[name] = p
    for _ in range(REPEATS):
        for name, run in runners.items():
            p, s = fresh_state()
            t0 = time.perf_counter()
            run(p, s)
            rates[name].append(N / (time.perf_counter() - t0))
    ref = finals["C (ctypes)"]
    for name in runners:
        diff = max(float((a - b).abs().max()) for a, b in zip(finals[name], ref, strict=True))
        print(
            f"{name:18s} build {builds[name]:6.2f} s  first call {first_call[name]:6.2f} s  "
            f"{statistics.median(rates[name]):9.0f} ex/s  max |dW| vs C {diff:.1e}"
        )


if __name__ == "__main__":
    main()
