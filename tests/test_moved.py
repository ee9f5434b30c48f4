"""The module paths of anycl 0.1 still import after the move to stage packages (issue 28), each with a
DeprecationWarning that names the new path, and give the very objects of the new modules."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import anycl
from anycl.moved import FORWARDED, MOVED, SPLIT


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_module_path_imports_with_a_warning_naming_its_new_home(old):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        stand_in = importlib.import_module(old)
    new = importlib.import_module(MOVED[old])
    public = [n for n in vars(new) if not n.startswith("_") and getattr(vars(new)[n], "__module__", "") == new.__name__]
    for name in public:
        assert getattr(stand_in, name) is getattr(new, name)


def test_from_imports_of_old_paths_give_the_new_objects():
    sys.modules.pop("anycl.batching", None)
    with pytest.warns(DeprecationWarning):
        from anycl.batching import BatchBuilder  # type: ignore[import-not-found]
    from anycl.data.batching import BatchBuilder as new

    assert BatchBuilder is new


def test_names_that_left_with_a_split_are_found_where_they_went():
    sys.modules.pop("anycl.config", None)
    with pytest.warns(DeprecationWarning):
        config = importlib.import_module("anycl.config")
    for name, home in SPLIT["anycl.config"].items():
        assert getattr(config, name) is getattr(importlib.import_module(home), name)


@pytest.mark.parametrize("old", sorted(SPLIT))
def test_every_name_that_left_with_a_split_is_found_where_it_went(old):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        stand_in = importlib.import_module(old)
    for name, home in SPLIT[old].items():
        assert getattr(stand_in, name) is getattr(importlib.import_module(home), name), name


def test_the_names_multi_dataset_split_three_ways_import_from_the_old_path():
    # anycl.multi_dataset became anycl.sampling.multi_dataset (the sampler), anycl.data.multi (the rows) and
    # anycl.losses.multi_dataset (the loss)
    from anycl.data.multi import MultiRows as rows_home
    from anycl.losses.multi_dataset import MultiLoss as loss_home
    from anycl.sampling.multi_dataset import MultiDatasetSampler as sampler_home

    sys.modules.pop("anycl.multi_dataset", None)
    with pytest.warns(DeprecationWarning, match="anycl.multi_dataset moved to anycl.sampling.multi_dataset"):
        from anycl.multi_dataset import MultiDatasetSampler, MultiLoss, MultiRows  # type: ignore[import-not-found]
    assert (MultiRows, MultiLoss, MultiDatasetSampler) == (rows_home, loss_home, sampler_home)


@pytest.mark.parametrize("package", sorted(FORWARDED))
def test_a_package_that_replaced_a_module_forwards_its_other_names_with_a_warning(package):
    pkg = importlib.import_module(package)
    old_home = importlib.import_module(FORWARDED[package])
    names = [n for n in vars(old_home) if not n.startswith("_") and n not in vars(pkg)]
    names = [n for n in names if not (pkg.__path__ and any((p / f"{n}.py").exists() for p in map(_path, pkg.__path__)))]
    assert names, f"{package}: nothing to forward?"
    with pytest.warns(DeprecationWarning, match=f"{package}.{names[0]} moved to {FORWARDED[package]}.{names[0]}"):
        assert getattr(pkg, names[0]) is getattr(old_home, names[0])


def _path(p):
    from pathlib import Path

    return Path(p)


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        anycl.data.no_such_thing  # noqa: B018
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        stand_in = importlib.import_module("anycl.rows")
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        stand_in.no_such_thing  # noqa: B018


def test_a_submodule_of_a_forwarding_package_is_imported_not_forwarded():
    # `from anycl.data import rows` must give the module anycl.data.rows, even though the old module
    # anycl.data (now anycl.data.inputs) had no such name
    code = "from anycl.data import rows; import sys; print(rows.__name__)"
    out = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "anycl.data.rows"


def test_the_public_surface_warns_nothing():
    code = (
        "import anycl; anycl.fit; anycl.load; anycl.FitConfig; anycl.losses.get; anycl.samplers.get; anycl.adapters.get;"
        "anycl.evaluators.get; anycl.evaluators.STSEvaluator; anycl.evaluation.register; anycl.exports.names"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning:anycl", "-c", code], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
