"""anycl.statefile: nested state through JSON + safetensors comes back equal, types included."""

import math
import random

import numpy as np
import pytest
import torch

from anycl.statefile import StateFileError, check_safetensors, load_state, save_state


def test_round_trip_keeps_values_and_types(tmp_path):
    random.seed(3)
    np.random.seed(4)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.randn(3, 2))], lr=1e-3)
    opt.param_groups[0]["params"][0].grad = torch.ones(3, 2)
    opt.step()
    state = {
        "optimizer": opt.state_dict(),  # int keys, tuples (betas), tensors, None, bools
        "python_rng": random.getstate(),
        "numpy_rng": np.random.get_state(),  # a uint32 array inside a tuple
        "floats": [1.5, float("nan"), float("inf"), -0.0],
        "flags": [True, 1, False, 0],
        (1, "a"): "tuple key",
        "np_scalar": np.int64(7),
        "empty": {},
    }
    save_state(state, tmp_path, "s")
    back = load_state(tmp_path, "s")
    assert back["python_rng"] == random.getstate()
    kind, keys, pos, has_gauss, gauss = back["numpy_rng"]
    ref = np.random.get_state()
    assert kind == ref[0] and keys.dtype == np.uint32 and np.array_equal(keys, ref[1]) and pos == ref[2]
    assert (has_gauss, gauss) == (ref[3], ref[4])
    assert back["optimizer"]["param_groups"] == opt.state_dict()["param_groups"]
    assert list(back["optimizer"]["state"]) == [0]
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(back["optimizer"]["state"][0][k], v)
    assert back["floats"][0] == 1.5 and math.isnan(back["floats"][1]) and back["floats"][2] == math.inf
    assert [type(x) for x in back["flags"]] == [bool, int, bool, int]
    assert back[(1, "a")] == "tuple key" and back["np_scalar"] == 7 and back["empty"] == {}
    # an optimiser loads the state back
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.randn(3, 2))], lr=1e-3)
    opt2.load_state_dict(back["optimizer"])


def test_objects_cannot_be_saved_and_bad_files_are_named(tmp_path):
    with pytest.raises(TypeError, match=r"s\['bad'\] is a object, which anycl cannot save without pickle"):
        save_state({"bad": object()}, tmp_path, "s")
    save_state({"t": torch.arange(100.0)}, tmp_path, "ok")
    path = tmp_path / "ok.safetensors"
    check_safetensors(path)
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(StateFileError, match=r"ok.safetensors is truncated: its tensors need"):
        load_state(tmp_path, "ok")
    (tmp_path / "ok.json").write_text('{"format": "anycl-st')
    with pytest.raises(StateFileError, match=r"ok.json is not valid JSON"):
        load_state(tmp_path, "ok")
