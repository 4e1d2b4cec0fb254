// Temperature (+ logit bias) and the random draw in three passes over the
// logits, without llama.cpp's candidate array: find z*, exponentiate and sum,
// then walk the cumulative sum to the draw. It does the same float and double
// arithmetic, in the same order, as patched llama.cpp's temp + dist samplers
// (llama_sampler_temp_impl, llama_sampler_dist_apply), so one seed draws the
// same tokens through either. Used for the plain chain only: other samplers
// keep llama.cpp's implementation.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace negtemp {

struct FusedSampler {
    static constexpr float kExpUnderflow = -104.0f;

    float temp;
    std::vector<float> bias;  // empty, or one additive bias per token
    std::mt19937 rng;
    std::vector<float> w;     // unnormalised probabilities of the last call

    FusedSampler(float temp, std::vector<float> bias, uint32_t seed) : temp(temp), bias(std::move(bias)), rng(seed) {}

    float logit(const float * z, size_t i) const { return bias.empty() ? z[i] : z[i] + bias[i]; }

    // Fills w; returns the sum of w, or -1 for greedy (T = 0) with the argmax in *greedy.
    double weigh(const float * z, size_t n, size_t * greedy) {
        w.resize(n);
        if (temp == 0.0f) {
            size_t best = 0;
            for (size_t i = 1; i < n; ++i) {
                if (logit(z, i) > logit(z, best)) {
                    best = i;
                }
            }
            *greedy = best;
            return -1.0;
        }
        float z_star = NAN;
        for (size_t i = 0; i < n; ++i) {
            const float v = logit(z, i);
            if (std::isfinite(v) && (std::isnan(z_star) || (temp > 0.0f ? v > z_star : v < z_star))) {
                z_star = v;
            }
        }
        double sum = 0.0;
        for (size_t i = 0; i < n; ++i) {
            const float v = logit(z, i);
            const float x = std::isfinite(v) ? (v - z_star) / temp : -INFINITY;
            // expf is exactly 0 below about -103.98: skip the call (most tokens at small |T|)
            w[i] = x < kExpUnderflow ? 0.0f : expf(x);
            sum += w[i];
        }
        return sum;
    }

    // One draw; *logprob gets the log-probability of the chosen token.
    size_t sample(const float * z, size_t n, double * logprob) {
        std::uniform_real_distribution<double> dist(0.0, 1.0);
        size_t greedy = 0;
        const double sum = weigh(z, n, &greedy);
        const double u = dist(rng);  // drawn for greedy too, as llama.cpp's dist does
        if (sum < 0.0) {
            *logprob = 0.0;
            return greedy;
        }
        const double target = sum * u;
        double run = 0.0;
        size_t chosen = n - 1;
        for (size_t i = 0; i < n; ++i) {
            run += w[i];
            if (run >= target) {
                chosen = i;
                break;
            }
        }
        *logprob = std::log(static_cast<double>(w[chosen]) / sum);
        return chosen;
    }

    void probs(const float * z, size_t n, double * out) {
        size_t greedy = 0;
        const double sum = weigh(z, n, &greedy);
        for (size_t i = 0; i < n; ++i) {
            out[i] = sum < 0.0 ? (i == greedy ? 1.0 : 0.0) : w[i] / sum;
        }
    }
};

}  // namespace negtemp
