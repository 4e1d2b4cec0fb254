// Temperature (+ logit bias) and the random draw in three passes over the
// logits, without llama.cpp's candidate array or a sort:
//   1. z*, the max finite logit for T > 0 or the min for T < 0;
//   2. w_i = exp((z_i - z*) / T) with a vectorisable exp, and the sums of
//      blocks of kBlock weights (in double);
//   3. the draw: walk the block sums to the block holding u * sum, then the
//      weights inside it.
// Samples the distribution of patched llama.cpp's temp + dist chain with the
// same random stream (one uniform double per draw, from the same mt19937), so
// one seed draws the same tokens as the chain unless u lands within rounding
// of a cumulative boundary. Used for the plain chain only: other samplers
// keep llama.cpp's implementation.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace negtemp {

// exp(x) for x <= 0, written so that compilers vectorise the loops that call
// it (no branches, no libm call). Max relative error 7.9e-8 (1.3 ulp), checked
// against double exp over every float in [-87.3, 0]. Results below FLT_MIN,
// where expf would return a denormal, are 0: weights that small are under
// 1e-38 of the largest weight, which is 1.
inline float exp_nonpositive(float x) {
    constexpr float kLog2e = 1.44269504088896341f;
    constexpr float kLn2Hi = 0.693145751953125f;  // few mantissa bits: n * kLn2Hi is exact
    constexpr float kLn2Lo = 1.42860682030941723e-6f;
    constexpr float kRound = 12582912.0f;          // 1.5 * 2^23: adding it rounds to an integer
    constexpr float kMin = -87.33654475f;          // log(FLT_MIN)
    const bool tiny = !(x >= kMin);                // also -inf
    const float xc = tiny ? 0.0f : x;
    const float n = (xc * kLog2e + kRound) - kRound;
    const float r = (xc - n * kLn2Hi) - n * kLn2Lo;  // |r| <= ln2 / 2
    // Taylor series to r^7: truncation error below 2e-9 relative on |r| <= ln2 / 2
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n; n >= -126 here
    float scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return tiny ? 0.0f : p * scale;
}

struct FusedSampler {
    static constexpr size_t kBlock = 256;
    static constexpr size_t kNoToken = SIZE_MAX;  // sample() when every token is masked

    float temp;
    std::vector<float> bias;  // empty, or one additive bias per token
    std::mt19937 rng;
    std::vector<float> w;     // unnormalised probabilities of the last call
    std::vector<double> block_sum;
    std::vector<float> biased;  // logits + bias, when there is a bias

    FusedSampler(float temp, std::vector<float> bias, uint32_t seed) : temp(temp), bias(std::move(bias)), rng(seed) {}

    // Fills w and block_sum; returns the sum of w, or -1 for greedy (T = 0)
    // with the argmax in *greedy.
    double weigh(const float * logits, size_t n, size_t * greedy) {
        const float * z = logits;
        if (!bias.empty()) {
            biased.resize(n);
            for (size_t i = 0; i < n; ++i) {
                biased[i] = logits[i] + bias[i];
            }
            z = biased.data();
        }
        if (temp == 0.0f) {
            // llama.cpp's greedy: the first maximum among unmasked logits, by the same comparison
            size_t best = kNoToken;
            for (size_t i = 0; i < n; ++i) {
                if (std::fabs(z[i]) <= FLT_MAX && (best == kNoToken || z[i] > z[best])) {
                    best = i;
                }
            }
            *greedy = best;
            return -1.0;
        }
        // z* as the max of sign(T) * z over finite z; the sign flip is exact
        const float sign = temp > 0.0f ? 1.0f : -1.0f;
        float key_max = -INFINITY;
#pragma omp simd reduction(max : key_max)
        for (size_t i = 0; i < n; ++i) {
            const float key = std::fabs(z[i]) <= FLT_MAX ? sign * z[i] : -INFINITY;
            key_max = key > key_max ? key : key_max;
        }
        const float z_star = sign * key_max;
        const float t = temp;
        w.resize(n);
        float * wp = w.data();
        const size_t n_blocks = (n + kBlock - 1) / kBlock;
        block_sum.resize(n_blocks);
        double sum = 0.0;
        for (size_t blk = 0; blk < n_blocks; ++blk) {
            const size_t lo = blk * kBlock;
            const size_t hi = std::min(n, lo + kBlock);
            double s = 0.0;
#pragma omp simd reduction(+ : s)
            for (size_t i = lo; i < hi; ++i) {
                // as llama.cpp's temp sampler: (z - z*) / T in float; masks to -inf
                const float x = std::fabs(z[i]) <= FLT_MAX ? (z[i] - z_star) / t : -INFINITY;
                wp[i] = exp_nonpositive(x);
                s += wp[i];
            }
            block_sum[blk] = s;
            sum += s;
        }
        return sum;
    }

    // One draw; *logprob gets the log-probability of the chosen token. kNoToken
    // when every token is masked.
    size_t sample(const float * z, size_t n, double * logprob) {
        std::uniform_real_distribution<double> dist(0.0, 1.0);
        size_t greedy = 0;
        const double sum = weigh(z, n, &greedy);
        const double u = dist(rng);  // drawn for greedy too, as llama.cpp's dist does
        if (sum < 0.0) {
            *logprob = greedy == kNoToken ? NAN : 0.0;
            return greedy;
        }
        if (!(sum > 0.0)) {
            *logprob = NAN;
            return kNoToken;
        }
        const double target = sum * u;
        const size_t n_blocks = block_sum.size();
        // the block whose cumulative range holds the target; a token of weight 0
        // (masked) is never chosen, even at u = 0 or through rounding at the end
        double run = 0.0;
        size_t blk = 0;
        while (blk + 1 < n_blocks && (block_sum[blk] == 0.0 || run + block_sum[blk] < target)) {
            run += block_sum[blk];
            ++blk;
        }
        while (block_sum[blk] == 0.0) {
            --blk;  // some block has weight, since sum > 0
        }
        const size_t lo = blk * kBlock;
        const size_t hi = std::min(n, lo + kBlock);
        size_t chosen = lo;
        for (size_t i = lo; i < hi; ++i) {
            if (w[i] > 0.0f) {
                chosen = i;
                run += w[i];
                if (run >= target) {
                    break;
                }
            }
        }
        *logprob = std::log(static_cast<double>(w[chosen]) / sum);
        return chosen;
    }

    // Every token's probability; false (and out untouched) when every token is masked.
    bool probs(const float * z, size_t n, double * out) {
        size_t greedy = 0;
        const double sum = weigh(z, n, &greedy);
        if (sum < 0.0 ? greedy == kNoToken : !(sum > 0.0)) {
            return false;
        }
        for (size_t i = 0; i < n; ++i) {
            out[i] = sum < 0.0 ? (i == greedy ? 1.0 : 0.0) : w[i] / sum;
        }
        return true;
    }
};

}  // namespace negtemp
