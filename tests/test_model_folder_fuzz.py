"""Crafted model folders and checkpoints (issue 32): whatever a file holds, anycl loads it or says what is wrong.

Copies of a small saved model and of a toy run's checkpoint, each with one file changed (cut short at seeded
random points, a huge declared header or tensor size, a sparse file, a link to ``/dev/zero``, out of the folder,
dangling or in a loop, a FIFO, a socket or a folder in its place, another file's tensors, a tensor of another
shape, JSON of the wrong shape, nested too deeply, keys dropped, numbers made huge) are loaded with ``anycl.load``
or resumed with ``fit(resume_from=...)`` in a child process with a capped address space (tests/folder_probe.py).
Each must succeed or raise anycl's own error (an ``AnyclError``), with the child's peak memory grown by less than
200 MB; a hang (a FIFO read) ends the child, which fails the case. The default run takes every mutation of the
config and of two weights files, and four checkpoint cases (a resume is a whole ``fit`` set-up); ``-m slow`` takes
every file of both.
"""

import json
import os
import random
import shutil
import struct

import pytest
import safetensors.torch
import torch
from folder_probe import GROWTH_LIMIT_MB, TOY_RUN, probe, small_model
from unix_socket import bind_unix_socket

import anycl

SEED = 32


# -- what can be done to one file -------------------------------------------------------------------------------------
def _truncate(fraction):
    def cut(path, rng, root):
        size = path.stat().st_size
        at = int(size * fraction) if fraction is not None else rng.randrange(1, max(size, 2))
        with open(path, "r+b") as f:
            f.truncate(at)

    return cut


def _cut_to(n):
    def cut(path, rng, root):
        with open(path, "r+b") as f:
            f.truncate(min(n, path.stat().st_size - 1))

    return cut


def _garbage(path, rng, root):
    path.write_bytes(bytes(rng.randrange(256) for _ in range(max(path.stat().st_size, 16))))


def _header_length(n, sparse_to=None):
    def write(path, rng, root):
        with open(path, "r+b") as f:
            f.write(struct.pack("<Q", n))
            if sparse_to:
                f.truncate(sparse_to)

    return write


def _header(path):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _with_header(path, header, body):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def _huge_offsets(path, rng, root):
    header, body = _header(path)
    key = rng.choice(sorted(k for k in header if k != "__metadata__"))
    header[key]["data_offsets"] = [0, 10**12]
    _with_header(path, header, body)


def _sparse_consistent(path, rng, root):
    """A header and a length that agree (one tensor of 2 GiB), the file a few KB on disk."""
    header = {"x": {"dtype": "F32", "shape": [2**29], "data_offsets": [0, 2**31]}}
    _with_header(path, header, b"")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size + 2**31)


def _wrong_shape(path, rng, root):
    tensors = safetensors.torch.load_file(str(path))
    key = rng.choice(sorted(tensors))
    t = tensors[key]
    tensors[key] = torch.zeros((t.shape[0] + 3, *t.shape[1:]) if t.dim() else (3,), dtype=t.dtype)
    safetensors.torch.save_file(tensors, str(path))


def _other_weights(path, rng, root):
    others = sorted(p for p in root.rglob("*.safetensors") if p != path)
    shutil.copy(rng.choice(others), path)


def _link_to(target_of):
    def link(path, rng, root):
        target = target_of(path, root)
        path.unlink()
        path.symlink_to(target)

    return link


def _outside_copy(path, root):
    copy = root.parent / f"outside-{root.name}-{path.name}"
    shutil.copy(path, copy)
    return copy


def _loop(path, rng, root):
    path.unlink()
    other = path.with_name(path.name + ".loop")
    path.symlink_to(other.name)
    other.symlink_to(path.name)


def _fifo(path, rng, root):
    path.unlink()
    os.mkfifo(path)


def _socket(path, rng, root):
    path.unlink()
    bind_unix_socket(path).close()  # the socket file stays


def _folder(path, rng, root):
    path.unlink()
    path.mkdir()


def _json(change):
    def edit(path, rng, root):
        path.write_text(change(json.loads(path.read_text()), rng))

    return edit


def _drop_key(doc, rng):
    dicts = []

    def walk(node):
        if isinstance(node, dict):
            if node:
                dicts.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    if dicts:
        d = rng.choice(dicts)
        del d[rng.choice(sorted(map(str, d)))]
    return json.dumps(doc)


def _numbers(value):
    def change(doc, rng):
        def walk(node):
            if isinstance(node, dict):
                return {k: walk(v) for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v) for v in node]
            if isinstance(node, int) and not isinstance(node, bool):
                return value
            return node

        return json.dumps(walk(doc))

    return change


def _retype(doc, rng):
    if isinstance(doc, dict) and doc:
        doc[rng.choice(sorted(doc))] = rng.choice(["oops", [], {}, None, -1, 1e300])
    return json.dumps(doc)


ANY_FILE = {
    "empty": _truncate(0.0),
    "cut-8": _cut_to(8),
    "cut-half": _truncate(0.5),
    "cut-random": _truncate(None),
    "garbage": _garbage,
    "link-dev-zero": _link_to(lambda p, root: "/dev/zero"),
    "link-outside": _link_to(_outside_copy),
    "link-dangling": _link_to(lambda p, root: p.with_name("nowhere")),
    "link-loop": _loop,
    "fifo": _fifo,
    "socket": _socket,
    "folder": _folder,
}
SAFETENSORS = {
    "header-2e40": _header_length(2**40),
    "header-2e9-sparse": _header_length(2_000_000_000, sparse_to=2_400_000_000),
    "offsets-1e12": _huge_offsets,
    "sparse-2gib-tensor": _sparse_consistent,
    "wrong-shape": _wrong_shape,
    "other-weights": _other_weights,
}
JSON_FILE = {
    "not-an-object": lambda p, rng, root: p.write_text("[]"),
    "deep": lambda p, rng, root: p.write_text("[" * 100_000 + "]" * 100_000),
    "over-16mib": lambda p, rng, root: p.write_text(" " * (17 * 2**20) + "{}"),
    "drop-key-1": _json(_drop_key),
    "drop-key-2": _json(_drop_key),
    "drop-key-3": _json(_drop_key),
    "ints-4e8": _json(_numbers(400_000_000)),
    "ints-0": _json(_numbers(0)),
    "ints-negative": _json(_numbers(-7)),
    "retype-1": _json(_retype),
    "retype-2": _json(_retype),
}


def _mutations(path):
    out = dict(ANY_FILE)
    if path.suffix == ".safetensors":
        out.update(SAFETENSORS)
    if path.suffix == ".json":
        out.update(JSON_FILE)
    return out


def _crafted(source, workdir, pick=lambda label: True):
    """(job label, crafted folder) for every file of ``source`` and every mutation that applies to it (whose label
    ``file:mutation`` is picked)."""
    out = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source)
        for name, mutate in _mutations(path).items():
            label = f"{rel}:{name}"
            if not pick(label):
                continue
            dst = workdir / f"case-{len(out)}"
            shutil.copytree(source, dst)
            mutate(dst / rel, random.Random(f"{SEED}:{label}"), dst)
            out.append((label, dst))
    return out


def _judge(outcomes):
    bad = {
        k: v
        for k, v in outcomes.items()
        if not (v["ok"] or v.get("anycl_error")) or v.get("growth_mb", GROWTH_LIMIT_MB) >= GROWTH_LIMIT_MB
    }
    assert not bad, json.dumps(bad, indent=1)[:6000]


# -- the model folder -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz-model") / "m"
    small_model().save(path)
    return path


# the default run: the config and two weights files, every mutation; -m slow: every file
QUICK_MODEL_FILES = ("anycl_config.json", "heads.safetensors", "towers/audio/encoder.safetensors")


def _fuzz_model_folder(model_dir, tmp_path, pick):
    cases = _crafted(model_dir, tmp_path, pick)
    outcomes = probe(
        [{"label": label, "kind": "load", "path": str(p)} for label, p in cases], warmup=str(model_dir), timeout=500
    )
    _judge(outcomes)
    # every change to the weights and every broken config is caught (a dropped or retyped key may be harmless)
    broken = set(ANY_FILE) | set(SAFETENSORS) | {"not-an-object", "deep", "over-16mib"}
    missed = [
        label
        for label, _ in cases
        if label.split(":")[0].endswith((".safetensors", "anycl_config.json"))
        and label.split(":")[1] in broken
        and outcomes[label]["ok"]
    ]
    assert not missed, missed
    return cases, outcomes


@pytest.mark.timeout(600)
def test_crafted_model_folders_load_or_give_anycls_error_within_the_memory_bound(model_dir, tmp_path):
    cases, _ = _fuzz_model_folder(model_dir, tmp_path, lambda label: label.startswith(QUICK_MODEL_FILES))
    assert len(cases) == len(ANY_FILE) * 3 + len(SAFETENSORS) * 2 + len(JSON_FILE)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_every_crafted_model_folder_loads_or_gives_anycls_error_within_the_memory_bound(model_dir, tmp_path):
    cases, outcomes = _fuzz_model_folder(model_dir, tmp_path, lambda label: True)
    assert len(cases) > 100
    assert outcomes["README.md:garbage"]["ok"]  # the card is not read


def test_an_intact_copy_of_the_fuzzed_model_loads_and_encodes_as_saved(model_dir, tmp_path):
    shutil.copytree(model_dir, tmp_path / "m")
    model = anycl.load(tmp_path / "m")
    again = anycl.load(model_dir)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


# -- the checkpoint ----------------------------------------------------------------------------------------------------
QUICK_CHECKPOINT_CASES = {  # a resume is a whole fit set-up: four in the default run, every one with -m slow
    "model.safetensors:wrong-shape",
    "optimizer.safetensors:sparse-2gib-tensor",
    "trainer.json:fifo",
    "anycl_checkpoint.json:link-dev-zero",
}


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    from toy_modality import toy_rows

    out = tmp_path_factory.mktemp("fuzz-run")
    anycl.fit(toy_rows(16), max_steps=2, checkpoint_every=2, output_dir=str(out / "run"), **TOY_RUN)
    return out / "run" / "checkpoints" / "step-2"


def _resume_cases(checkpoint_dir, tmp_path, pick):
    cases = _crafted(checkpoint_dir, tmp_path, pick)
    return [
        {"label": label, "kind": "resume", "path": str(p), "out": str(tmp_path / f"out-{i}")}
        for i, (label, p) in enumerate(cases)
    ]


def _warm_resume(checkpoint_dir, tmp_path):
    return {"label": "warmup", "kind": "resume", "path": str(checkpoint_dir), "out": str(tmp_path / "out-warmup")}


@pytest.mark.timeout(600)
def test_crafted_checkpoints_resume_or_give_anycls_error_within_the_memory_bound(checkpoint_dir, tmp_path):
    jobs = _resume_cases(checkpoint_dir, tmp_path, QUICK_CHECKPOINT_CASES.__contains__)
    assert {j["label"] for j in jobs} == QUICK_CHECKPOINT_CASES
    outcomes = probe(jobs, warmup=_warm_resume(checkpoint_dir, tmp_path), timeout=500)
    _judge(outcomes)
    assert not any(v["ok"] for v in outcomes.values())  # each of these breaks the checkpoint


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_every_crafted_checkpoint_resumes_or_gives_anycls_error_within_the_memory_bound(checkpoint_dir, tmp_path):
    jobs = _resume_cases(checkpoint_dir, tmp_path, lambda label: True)
    outcomes = probe(jobs, warmup=_warm_resume(checkpoint_dir, tmp_path), timeout=2800)
    _judge(outcomes)
