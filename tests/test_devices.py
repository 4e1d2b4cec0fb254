"""negtemp.devices() and the GPU placement options, as a CPU build accepts and reports them."""

import pytest

import negtemp


def test_devices_lists_the_cpu_with_its_kind_and_memory():
    devices = negtemp.devices()
    cpu = [d for d in devices if d[2] == "cpu"]
    assert cpu and cpu[0][0] == "CPU" and cpu[0][3] > 0, f"no CPU device with memory in {devices}"


def test_gpu_placement_options_are_recorded_in_each_completion(tiny_path):
    with negtemp.Model(tiny_path, n_ctx=64, n_threads=1, n_gpu_layers=0, main_gpu=0) as m:
        s = m.complete("hi", -1.0, n_predict=2).settings
    assert (s["n_gpu_layers"], s["main_gpu"]) == (0, 0)


@pytest.mark.parametrize("options", [{"n_gpu_layers": -2}, {"main_gpu": -1}, {"main_gpu": 1.5}],
                         ids=["layers-below-minus-one", "negative-main-gpu", "fractional-main-gpu"])
def test_invalid_gpu_placement_is_refused(tiny_path, options):
    with pytest.raises((ValueError, TypeError), match="n_gpu_layers|main_gpu"):
        negtemp.Model(tiny_path, n_ctx=64, n_threads=1, **options)
