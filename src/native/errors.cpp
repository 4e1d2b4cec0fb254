#include "errors.hpp"

#include "llama.h"

#include <mutex>

namespace negtemp {
namespace {

std::mutex g_log_mutex;
std::string g_last_errors;

void log_callback(ggml_log_level level, const char * text, void *) {
    if (level != GGML_LOG_LEVEL_ERROR && level != GGML_LOG_LEVEL_WARN) {
        return;
    }
    std::lock_guard<std::mutex> lock(g_log_mutex);
    g_last_errors += text;
    if (g_last_errors.size() > 4096) {
        g_last_errors.erase(0, g_last_errors.size() - 4096);
    }
}

}  // namespace

void log_to_buffer() { llama_log_set(log_callback, nullptr); }

std::string take_log() {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    std::string out;
    out.swap(g_last_errors);
    return out;
}

}  // namespace negtemp
