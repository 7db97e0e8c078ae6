// Fused CPU kernels for training (aelink/training/fused/__init__.py builds them at first use).
//
// Both replace a chain of ops that each read and write a 28x28x32 activation (6.4 MB for 64 images, beyond
// a core's L2) with one pass over it:
//  - conv_pool_*: the seed encoder's first layer, a 3x3 conv from 1 channel to 32, then 2x2 max-pooling.
//    The full-size conv output and the pooling's gradient are never written.
//  - relu_tap_backward: the gradient of every decoder's tail, a ReLU then a 3x3 conv from 32 channels to 1.
// Channels are fixed at 32 (every preset's outer width) and computed as two vectors of 16 floats (GCC/Clang
// vector extensions: one AVX-512 register each, or two AVX2 ones), one half per pass so that a 3x3
// kernel's nine weight vectors and nine gradient sums stay in registers.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <vector>

namespace {
constexpr int C = 32;   // channels: two vectors of 16 floats, each half its own pass (fits the registers)
constexpr int L = 16;
typedef float v16 __attribute__((vector_size(64)));
typedef uint32_t u16x32 __attribute__((vector_size(64)));
typedef uint16_t h16 __attribute__((vector_size(32)));

inline v16 load(const float* p) { v16 v; std::memcpy(&v, p, sizeof v); return v; }
inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }
inline v16 load(const at::BFloat16* p) {  // bf16 is the top half of a float
  h16 h; std::memcpy(&h, p, sizeof h);
  u16x32 u = __builtin_convertvector(h, u16x32) << 16;
  v16 v; std::memcpy(&v, &u, sizeof v); return v;
}
inline void store(at::BFloat16* p, v16 v) {  // round to nearest even, as c10::BFloat16 does; NaN stays NaN
  u16x32 u; std::memcpy(&u, &v, sizeof u);
  u16x32 r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  r = (v != v) ? (u16x32)(0x7FC0u + 0u * u) : r;
  h16 h = __builtin_convertvector(r, h16); std::memcpy(p, &h, sizeof h);
}
inline float hsum(v16 v) { float s = 0.f; for (int k = 0; k < L; ++k) s += v[k]; return s; }

// Gradient sums over images: each of parallel_for's threads adds into its own part; total() adds the parts.
struct ThreadSums {
  int64_t n;
  std::vector<std::vector<float>> parts;
  explicit ThreadSums(int64_t n) : n(n), parts(at::get_num_threads(), std::vector<float>(n, 0.f)) {}
  float* mine() { return parts[at::get_thread_num()].data(); }
  at::Tensor total() {
    auto sum = at::zeros({n}, at::kFloat);
    for (auto& part : parts) sum += at::from_blob(part.data(), {n}, at::kFloat);
    return sum;
  }
};

// image n of x (H x W floats) into a zero-bordered (H + 2) x (W + 2) buffer.
void pad_image(const float* __restrict__ x, float* __restrict__ pad, int64_t H, int64_t W) {
  const int64_t P = W + 2;
  std::memset(pad, 0, sizeof(float) * (H + 2) * P);
  for (int64_t i = 0; i < H; ++i) std::memcpy(pad + (i + 1) * P + 1, x + i * W, sizeof(float) * W);
}
}  // namespace

// x (N,1,H,W) fp32, w (32,1,3,3), b (32): conv (padding 1) then 2x2 max-pool (floor). Returns the pooled
// (N,32,H/2,W/2) in channels-last memory and the winner of each window (N,H/2,W/2,32) as 0..3, row-major
// in the window; the first of equal maxima wins, and NaN wins, as in max_pool2d.
std::vector<at::Tensor> conv_pool_forward(at::Tensor x, at::Tensor w, at::Tensor b) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && w.size(0) == C && x.size(1) == 1, "conv_pool_forward: shapes");
  x = x.contiguous();
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3), Ho = H / 2, Wo = W / 2, P = W + 2;
  auto wt = w.to(at::kFloat).reshape({C, 9}).t().contiguous();  // (9, 32)
  auto bc = b.to(at::kFloat).contiguous();
  auto out = at::empty({N, Ho, Wo, C}, x.options());
  auto idx = at::empty({N, Ho, Wo, C}, x.options().dtype(at::kByte));
  const float* X = x.data_ptr<float>();
  const float* Wt = wt.data_ptr<float>();
  const float* B = bc.data_ptr<float>();
  float* O = out.data_ptr<float>();
  uint8_t* I = idx.data_ptr<uint8_t>();
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<float> pad((H + 2) * P);
    for (int64_t n = n0; n < n1; ++n) {
      pad_image(X + n * H * W, pad.data(), H, W);
      for (int half = 0; half < C / L; ++half) {
        v16 wk[9];
        for (int t = 0; t < 9; ++t) wk[t] = load(Wt + t * C + half * L);
        const v16 bias = load(B + half * L);
        for (int64_t pi = 0; pi < Ho; ++pi)
          for (int64_t pj = 0; pj < Wo; ++pj) {
            v16 acc[4];
            for (int q = 0; q < 4; ++q) {
              const float* px = pad.data() + (2 * pi + (q >> 1)) * P + 2 * pj + (q & 1);
              v16 a = bias;
#pragma GCC unroll 9
              for (int t = 0; t < 9; ++t) a += wk[t] * px[(t / 3) * P + t % 3];
              acc[q] = a;
            }
            v16 m = acc[0], k = {};
            for (int q = 1; q < 4; ++q) {
              const auto take = (acc[q] > m) | (acc[q] != acc[q]);
              m = take ? acc[q] : m;
              k = take ? (v16){} + float(q) : k;
            }
            const int64_t at = ((n * Ho + pi) * Wo + pj) * C + half * L;
            store(O + at, m);
            for (int c = 0; c < L; ++c) I[at + c] = static_cast<uint8_t>(k[c]);
          }
      }
    }
  });
  return {out.permute({0, 3, 1, 2}), idx};
}

// g: the gradient of the pooled output (N,32,Ho,Wo); x and idx as in the forward. Returns the gradients of
// w (32,1,3,3) and b (32). (x needs none: it is the images.)
std::vector<at::Tensor> conv_pool_backward(at::Tensor g, at::Tensor x, at::Tensor idx) {
  x = x.contiguous();
  auto gl = g.to(at::kFloat).permute({0, 2, 3, 1}).contiguous();  // a view when g is channels-last fp32
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3), Ho = H / 2, Wo = W / 2, P = W + 2;
  const float* X = x.data_ptr<float>();
  const float* G = gl.data_ptr<float>();
  const uint8_t* I = idx.data_ptr<uint8_t>();
  ThreadSums grads(10 * C);  // 9 taps, then the bias
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<float> pad((H + 2) * P);
    float* sums = grads.mine();
    for (int64_t n = n0; n < n1; ++n) {
      pad_image(X + n * H * W, pad.data(), H, W);
      for (int half = 0; half < C / L; ++half) {
        v16 dw[9] = {}, db = {};
        for (int64_t pi = 0; pi < Ho; ++pi)
          for (int64_t pj = 0; pj < Wo; ++pj) {
            const int64_t at = ((n * Ho + pi) * Wo + pj) * C + half * L;
            const v16 gr = load(G + at);
            v16 k;
            for (int c = 0; c < L; ++c) k[c] = I[at + c];
            db += gr;
            for (int q = 0; q < 4; ++q) {
              const float* px = pad.data() + (2 * pi + (q >> 1)) * P + 2 * pj + (q & 1);
              const v16 gq = (k == float(q)) ? gr : (v16){};
#pragma GCC unroll 9
              for (int t = 0; t < 9; ++t) dw[t] += gq * px[(t / 3) * P + t % 3];
            }
          }
        for (int t = 0; t < 9; ++t)
          for (int c = 0; c < L; ++c) sums[t * C + half * L + c] += dw[t][c];
        for (int c = 0; c < L; ++c) sums[9 * C + half * L + c] += db[c];
      }
    }
  });
  auto total = grads.total().view({10, C});
  return {total.narrow(0, 0, 9).t().reshape({C, 1, 3, 3}).contiguous(), total[9].contiguous()};
}

// h (N,32,H,W) channels-last, fp32 or bf16: the ReLU's output; gy (N,1,H,W): the gradient of the conv's
// output; w (1,32,3,3). Returns the gradient of the ReLU's input (h's dtype, channels-last), of w and of b.
template <typename T>
void relu_tap_kernel(const T* Hp, const float* GY, const float* Wt, T* GZ, ThreadSums& grads, int64_t N, int64_t H,
                     int64_t W) {
  const int64_t P = W + 2;
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<float> gpad((H + 2) * P);
    float* sums = grads.mine();  // 9 taps, then the bias
    for (int64_t n = n0; n < n1; ++n) {
      pad_image(GY + n * H * W, gpad.data(), H, W);
      for (int64_t k = 0; k < H * W; ++k) sums[9 * C] += GY[n * H * W + k];
      for (int half = 0; half < C / L; ++half) {
        v16 wk[9], dw[9] = {};
        for (int t = 0; t < 9; ++t) wk[t] = load(Wt + t * C + half * L);
        for (int64_t i = 0; i < H; ++i)
          for (int64_t j = 0; j < W; ++j) {
            const int64_t at = ((n * H + i) * W + j) * C + half * L;
            const v16 h = load(Hp + at);
            v16 acc = {};
#pragma GCC unroll 9
            for (int t = 0; t < 9; ++t) {
              // tap (a, b) = (t / 3, t % 3) reads h at q + (a - 1, b - 1): pixel p gets gy at p - (a - 1, b - 1)
              const float g = gpad[(i + 2 - t / 3) * P + j + 2 - t % 3];
              acc += wk[t] * g;
              dw[t] += h * g;
            }
            store(GZ + at, h > 0.f ? acc : (v16){});
          }
        for (int t = 0; t < 9; ++t)
          for (int c = 0; c < L; ++c) sums[t * C + half * L + c] += dw[t][c];
      }
    }
  });
}

std::vector<at::Tensor> relu_tap_backward(at::Tensor h, at::Tensor gy, at::Tensor w) {
  TORCH_CHECK(h.size(1) == C && w.size(0) == 1 && w.size(1) == C, "relu_tap_backward: shapes");
  const int64_t N = h.size(0), H = h.size(2), W = h.size(3);
  auto hl = h.permute({0, 2, 3, 1}).contiguous();  // a view when h is channels-last
  auto gyc = gy.to(at::kFloat).reshape({N, H, W}).contiguous();
  auto wt = w.to(at::kFloat).reshape({C, 9}).t().contiguous();  // (9, 32)
  auto gz = at::empty({N, H, W, C}, hl.options());
  ThreadSums grads(9 * C + 1);
  if (hl.scalar_type() == at::kBFloat16) {
    relu_tap_kernel<at::BFloat16>(hl.data_ptr<at::BFloat16>(), gyc.data_ptr<float>(), wt.data_ptr<float>(),
                                  gz.data_ptr<at::BFloat16>(), grads, N, H, W);
  } else {
    TORCH_CHECK(hl.scalar_type() == at::kFloat, "relu_tap_backward: float32 or bfloat16, not ", hl.scalar_type());
    relu_tap_kernel<float>(hl.data_ptr<float>(), gyc.data_ptr<float>(), wt.data_ptr<float>(), gz.data_ptr<float>(),
                           grads, N, H, W);
  }
  auto total = grads.total();
  auto gw = total.narrow(0, 0, 9 * C).reshape({9, C}).t().reshape({1, C, 3, 3}).contiguous();
  return {gz.permute({0, 3, 1, 2}), gw, total.narrow(0, 9 * C, 1).clone()};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("conv_pool_forward", &conv_pool_forward);
  m.def("conv_pool_backward", &conv_pool_backward);
  m.def("relu_tap_backward", &relu_tap_backward);
}
