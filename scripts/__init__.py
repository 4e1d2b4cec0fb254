"""negtemp's developer tools, a package: run each from the repository root as `python -m scripts.NAME`.

llama_tree (the pinned tree, patched), patches (the series' round trip through
git), llama_tools (llama.cpp's own tools from that tree), verify_patch (the
series against pristine upstream), bench (speed ratios), fuzz_gguf (hostile
model files), stubgen (the extension's type stub), tiny_model (small GGUFs
for tests and fuzzing).
"""
