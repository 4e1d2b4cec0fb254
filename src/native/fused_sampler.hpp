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

// The two passes over every logit (fused_sampler.cpp), compiled for several
// instruction sets and picked at load time when the build is not for one CPU.
// The key of z_i is sign * z_i, -inf for a masked (non-finite) logit; the max key.
float max_key(const float * z, size_t n, float sign);
// w_i = exp((z_i - z_star) / t) for z[lo, hi), 0 where masked; returns their sum in double.
double weigh_block(const float * z, float * w, size_t lo, size_t hi, float z_star, float t);
// What the dispatch chose ("x86-64-v4", ...), or what the build targeted.
const char * fused_target();

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
        const float z_star = sign * max_key(z, n, sign);
        const float t = temp;
        w.resize(n);
        float * wp = w.data();
        const size_t n_blocks = (n + kBlock - 1) / kBlock;
        block_sum.resize(n_blocks);
        double sum = 0.0;
        for (size_t blk = 0; blk < n_blocks; ++blk) {
            const size_t lo = blk * kBlock;
            const double s = weigh_block(z, wp, lo, std::min(n, lo + kBlock), z_star, t);
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
