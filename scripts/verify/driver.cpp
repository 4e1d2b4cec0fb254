// verify_driver TEMP PATH IN OUT [TOP_K TOP_P MIN_P]: read float32 logits from IN,
// write to OUT the float64 probabilities negtemp's sampler chain (chain.hpp:
// top-k, top-p, min-p, temperature, draw; TEMP 0 is greedy) assigns on PATH: chain, backend (on
// ggml's CPU backend) or backend@DEVICE (backend@Vulkan0: on that ggml device).
// Built against an unpatched and a patched tree by verify_patch.py.
#include "chain_probs.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

int main(int argc, char ** argv) {
    if (argc != 5 && argc != 8) {
        std::fprintf(stderr, "usage: %s TEMP chain|backend[@DEVICE] IN OUT [TOP_K TOP_P MIN_P]\n", argv[0]);
        return 2;
    }
    negtemp::ChainSpec spec;
    spec.beta = 1.0 / std::strtod(argv[1], nullptr);
    if (argc == 8) {
        spec.top_k = std::atoi(argv[5]);
        spec.top_p = std::strtod(argv[6], nullptr);
        spec.min_p = std::strtod(argv[7], nullptr);
    }
    const std::string path = argv[2];
    spec.path = path.rfind("backend", 0) == 0 ? negtemp::SamplerPath::Backend : negtemp::SamplerPath::Chain;
    const std::string device = path.find('@') == std::string::npos ? "CPU" : path.substr(path.find('@') + 1);
    std::FILE * in = std::fopen(argv[3], "rb");
    if (!in) {
        std::perror(argv[3]);
        return 1;
    }
    std::vector<float> z;
    float v;
    while (std::fread(&v, sizeof(v), 1, in) == 1) {
        z.push_back(v);
    }
    std::fclose(in);
    std::vector<double> p(z.size());
    try {
        const negtemp::BoundChain chain(spec, static_cast<int64_t>(z.size()));
        negtemp::sampler_probs(chain, z.data(), {}, p.data(), device);
    } catch (const std::exception & e) {
        std::fprintf(stderr, "verify_driver: %s\n", e.what());
        return 1;
    }
    std::FILE * out = std::fopen(argv[4], "wb");
    if (!out || std::fwrite(p.data(), sizeof(double), p.size(), out) != p.size()) {
        std::perror(argv[4]);
        return 1;
    }
    std::fclose(out);
    return 0;
}
