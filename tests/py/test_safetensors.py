"""safetensors I/O against its reference: the Python `safetensors` package (Rust core)
writes and reads files, huggingface_hub writes and loads sharded checkpoints, and the
reference's accept/reject decision is compared with hyla's on crafted and mutated files.

The testkit side: st-dump (read), st-write (write formula tensors), st-check (headers)."""
import json
import random
import struct

import pytest
import torch
from huggingface_hub import load_torch_model, save_torch_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import run

# safetensors dtype name -> torch dtype, every one hyla maps.
DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "C64": torch.complex64,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U64": torch.uint64, "U32": torch.uint32, "U16": torch.uint16, "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAME_OF = {v: k for k, v in DTYPES.items()}


def raw_bytes(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def f64_sum(t):
    x = torch.view_as_real(t) if t.is_complex() else t
    return x.to(torch.float64).sum().item()


def sample_tensors(seed):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, (name, dt) in enumerate(DTYPES.items()):
        base = torch.randn(2 + i % 3, 3, generator=g, dtype=torch.float64) * 30
        if dt == torch.bool:
            t = base > 0
        elif dt.is_complex:
            t = torch.complex(base.float(), -base.float())
        elif not dt.is_floating_point:
            t = base.round().clamp(0 if name[0] == "U" else -128, 127).to(dt)
        else:
            t = base.to(dt)
        out[f"t.{name.lower()}"] = t
    out["scalar"] = torch.tensor(2.5, dtype=torch.float32)
    out["empty"] = torch.zeros(0, 4, dtype=torch.bfloat16)
    return out


def dump(testkit_bin, path):
    return json.loads(run([testkit_bin, "st-dump", path]).stdout)


def assert_dump_matches(d, tensors):
    assert sorted(d["tensors"]) == sorted(tensors)
    for name, t in tensors.items():
        got = d["tensors"][name]
        assert got["dtype"] == NAME_OF[t.dtype], name
        assert got["shape"] == list(t.shape), name
        assert bytes.fromhex(got["hex"]) == raw_bytes(t), name
        assert got["sum"] == pytest.approx(f64_sum(t), rel=1e-12, abs=1e-12), name


def test_reads_reference_files_of_every_dtype(testkit_bin, tmp_path):
    tensors = sample_tensors(0)
    path = tmp_path / "ref.safetensors"
    save_file(tensors, path, metadata={"format": "pt", "note": "written by safetensors"})
    d = dump(testkit_bin, path)
    assert_dump_matches(d, tensors)
    assert d["metadata"] == {"format": "pt", "note": "written by safetensors"}


def test_reads_huggingface_hub_sharded_checkpoint(testkit_bin, tmp_path):
    tensors = {f"model.layers.{k}": t for k, t in enumerate(sample_tensors(1).values())}
    save_torch_state_dict(tensors, tmp_path, max_shard_size=200)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 3  # really sharded
    assert_dump_matches(dump(testkit_bin, tmp_path), tensors)


# ---- files hyla writes, read by the reference -------------------------------------

SPECS = [f"{n.lower()}:{n}:3x5" for n in DTYPES] + [
    "scalar:F32:", "empty:BF16:0x7", "long_row:F16:1x37", "transposed:F32:4x6:T", "z.int:I32:2x2x2"]


def formula(i, dtype, shape):
    """tests/testkit/safetensors.cpp `formula`, recomputed here: element k of tensor i
    has j = (37 k + 11 i) mod 251."""
    numel = 1
    for s in shape:
        numel *= s
    j = (torch.arange(numel, dtype=torch.int64) * 37 + 11 * i) % 251
    f = (j - 125).to(torch.float64) / 8
    if dtype == "BOOL":
        v = j % 3 == 0
    elif dtype[0] == "U":
        v = j.to(DTYPES[dtype])
    elif dtype[0] == "I":
        v = (j - 125).to(DTYPES[dtype])
    elif dtype == "C64":
        v = torch.complex(f.float(), -f.float())
    else:
        v = f.to(DTYPES[dtype])
    return v.reshape(shape)


def expected_from_specs(specs=SPECS):
    out = {}
    for i, spec in enumerate(specs):
        parts = spec.split(":")
        shape = [int(s) for s in parts[2].split("x")] if parts[2] else []
        if len(parts) > 3 and parts[3] == "T":
            out[parts[0]] = formula(i, parts[1], [shape[1], shape[0]]).t()
        else:
            out[parts[0]] = formula(i, parts[1], shape)
    return out


def st_write(testkit_bin, out, *extra, specs=SPECS):
    args = [testkit_bin, "st-write", out]
    for s in specs:
        args += ["--tensor", s]
    return run(args + list(extra)).stdout.split()


def test_hyla_files_load_in_reference(testkit_bin, tmp_path):
    path = tmp_path / "hyla.safetensors"
    st_write(testkit_bin, path, "--metadata", "format=pt", "--metadata", "note=hyla")
    expected = expected_from_specs()
    got = load_file(path)
    assert sorted(got) == sorted(expected)
    for name, t in expected.items():
        assert got[name].dtype == t.dtype and got[name].shape == t.shape, name
        assert torch.equal(got[name], t), name
    with safe_open(path, "pt") as f:
        assert f.metadata() == {"format": "pt", "note": "hyla"}


def test_hyla_file_bytes_equal_reference_writer(testkit_bin, tmp_path):
    """Same tensors, same metadata: hyla's file is byte-for-byte the reference's
    (tensor order, header JSON, space padding to 8 bytes)."""
    st_write(testkit_bin, tmp_path / "hyla.safetensors", "--metadata", "format=pt")
    expected = {k: v.contiguous() for k, v in expected_from_specs().items()}
    save_file(expected, tmp_path / "ref.safetensors", metadata={"format": "pt"})
    assert (tmp_path / "hyla.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()


def nested_module(tensors):
    """A module whose state_dict keys are the tensor names, as buffers to fill."""
    root = torch.nn.Module()
    for name, t in tensors.items():
        *path, leaf = name.split(".")
        m = root
        for p in path:
            if not hasattr(m, p):
                m.add_module(p, torch.nn.Module())
            m = getattr(m, p)
        m.register_buffer(leaf, torch.empty(t.shape, dtype=t.dtype))
    return root


def test_hyla_sharded_checkpoint_loads_in_huggingface_hub(testkit_bin, tmp_path):
    specs = [s.replace(s.split(":")[0], f"model.layers.{i}.w", 1) for i, s in enumerate(SPECS)]
    files = st_write(testkit_bin, tmp_path, "--shard-bytes", "150", "--metadata", "format=pt", specs=specs)
    expected = expected_from_specs(specs)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    n = len(shards)
    assert n > 3 and shards == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    assert sorted(files) == sorted(shards + ["model.safetensors.index.json"])
    assert sorted(index["weight_map"]) == sorted(expected)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in expected.values())
    for shard in shards:  # each shard holds exactly what the index says
        with safe_open(tmp_path / shard, "pt") as f:
            assert sorted(f.keys()) == sorted(k for k, v in index["weight_map"].items() if v == shard)
            assert f.metadata() == {"format": "pt"}
    model = nested_module(expected)
    load_torch_model(model, tmp_path, strict=True)
    state = model.state_dict()
    for name, t in expected.items():
        assert torch.equal(state[name], t), name
    # and hyla reads its own checkpoint back through the index, byte for byte
    assert_dump_matches(dump(testkit_bin, tmp_path), {k: v.contiguous() for k, v in expected.items()})


# ---- the reference's strictness ---------------------------------------------------

def pack(header, data=b""):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def reference_accepts(path):
    try:
        with safe_open(path, "pt") as f:
            f.keys()
        return True
    except Exception:  # noqa: BLE001 - any refusal counts
        return False


def has_duplicate_keys(b):
    """hyla refuses a key given twice; the reference keeps the last (a known difference)."""
    def hook(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("dup")
        return dict(pairs)
    if len(b) < 8:
        return False
    n = struct.unpack("<Q", b[:8])[0]
    try:
        json.loads(b[8:8 + n].decode("utf-8"), object_pairs_hook=hook)
    except ValueError as e:
        return str(e) == "dup"
    except Exception:  # noqa: BLE001
        return False
    return False


E = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
CRAFTED = {
    "valid": pack({"a": E}, b"\0" * 8),
    "leading space": pack(b" " + json.dumps({"a": E}).encode(), b"\0" * 8),
    "unknown field": pack({"a": {**E, "x": [1]}}, b"\0" * 8),
    "null metadata": pack({"__metadata__": None, "a": E}, b"\0" * 8),
    "empty header": pack({}),
    "scalar": pack({"a": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}}, b"\0" * 8),
    "unaligned": pack({"b": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                       "a": {**E, "data_offsets": [1, 9]}}, b"\0" * 9),
    "f6": pack({"a": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [0, 3]}}, b"\0" * 3),
    "short": b"\x01\x02",
    "length past eof": struct.pack("<Q", 99) + b"{}",
    "trailing nul": pack(json.dumps({"a": E}).encode() + b"\0", b"\0" * 8),
    "trailing data": pack({"a": E}, b"\0" * 12),
    "gap": pack({"a": {**E, "data_offsets": [4, 12]}}, b"\0" * 12),
    "overlap": pack({"a": E, "b": {**E, "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
    "size mismatch": pack({"a": {**E, "shape": [3]}}, b"\0" * 8),
    "negative dim": pack({"a": {**E, "shape": [-2]}}, b"\0" * 8),
    "float dim": pack({"a": {**E, "shape": [2.0]}}, b"\0" * 8),
    "unknown dtype": pack({"a": {**E, "dtype": "f32"}}, b"\0" * 8),
    "metadata int": pack({"__metadata__": {"k": 1}, "a": E}, b"\0" * 8),
    "array header": pack([]),
    "three offsets": pack({"a": {**E, "data_offsets": [0, 8, 8]}}, b"\0" * 8),
    "f4 odd": pack({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0" * 2),
}


def mutants(bases, count, seed):
    rng = random.Random(seed)
    out = []
    for k in range(count):
        b = bytearray(bases[k % len(bases)])
        for _ in range(rng.randint(1, 2)):
            op = rng.randrange(8)
            n = struct.unpack("<Q", b[:8])[0] if len(b) >= 8 else 0
            if op == 5 and 8 + n < len(b):  # data bytes only: still valid
                b[rng.randrange(8 + n, len(b))] ^= 1 << rng.randrange(8)
            elif op == 6 and len(b) >= 8:
                b = bytearray(benign_tweak(bytes(b), rng))
            elif op == 7 and len(b) >= 8:
                b = bytearray(duplicate_entry(bytes(b), rng))
            elif op == 0 and b:
                for _ in range(rng.randint(1, 4)):
                    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            elif op == 1:
                del b[rng.randrange(len(b) + 1):]
            elif op == 2 and len(b) >= 8:
                n = struct.unpack("<Q", b[:8])[0]
                b[:8] = struct.pack("<Q", rng.choice([n + 1, n - 1, n + 8, len(b), 2**63, rng.getrandbits(64)]) % 2**64)
            elif op == 3:
                b += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 9)))
            elif len(b) >= 8:
                b = bytearray(json_tweak(bytes(b), rng))
        out.append(bytes(b))
    return out


SAME_SIZE = [["BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2"], ["I16", "U16", "F16", "BF16"],
             ["I32", "U32", "F32"], ["I64", "U64", "F64", "C64"]]


def benign_tweak(b, rng):
    """An edit that keeps the file valid: same-size dtype, same-numel shape, metadata."""
    n = struct.unpack("<Q", b[:8])[0]
    try:
        h = json.loads(b[8:8 + n])
        name = rng.choice([k for k in h if k != "__metadata__"])
        e = h[name]
        group = next(g for g in SAME_SIZE if e["dtype"] in g)
    except Exception:  # noqa: BLE001 - not tweakable, keep as is
        return b
    r = rng.random()
    if r < 0.4:
        e["dtype"] = rng.choice(group)
    elif r < 0.8:
        numel = 1
        for d in e["shape"]:
            numel *= d
        e["shape"] = rng.choice([[numel], [1, numel], [numel, 1, 1]])
    else:
        h["__metadata__"] = {"k": str(rng.random())}
    text = json.dumps(h, separators=(",", ":")).encode()
    text += b" " * rng.randrange(8)
    return struct.pack("<Q", len(text)) + text + b[8 + n:]


def duplicate_entry(b, rng):
    """The same header with one entry written twice (the reference keeps the last)."""
    n = struct.unpack("<Q", b[:8])[0]
    try:
        pairs = list(json.loads(b[8:8 + n]).items())
        pairs.append(rng.choice(pairs))
    except Exception:  # noqa: BLE001 - not an object with entries, keep as is
        return b
    text = ("{" + ",".join(json.dumps(k) + ":" + json.dumps(v) for k, v in pairs) + "}").encode()
    return struct.pack("<Q", len(text)) + text + b[8 + n:]


def json_tweak(b, rng):
    n = struct.unpack("<Q", b[:8])[0]
    try:
        h = json.loads(b[8:8 + n])
        names = [k for k in h if k != "__metadata__"]
        name = rng.choice(names)
    except Exception:  # noqa: BLE001 - not tweakable, keep as is
        return b
    field = rng.choice(["dtype", "shape", "data_offsets"])
    value = rng.choice([-1, 0, 3, 2**40, 1.5, "F16", "BOOL", "Q8", [], [1, 2], [0, 4], None, {}])
    if not isinstance(h[name], dict):
        h[name] = value
    elif rng.random() < 0.3:
        h[name].pop(field, None)
    elif isinstance(h[name].get(field), list) and h[name][field] and rng.random() < 0.5:
        h[name][field][rng.randrange(len(h[name][field]))] = value
    else:
        h[name][field] = value
    text = json.dumps(h, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b[8 + n:]


def test_accepts_and_rejects_what_the_reference_does(testkit_bin, tmp_path):
    bases = []
    for seed in range(3):
        p = tmp_path / f"base{seed}.safetensors"
        save_file(dict(list(sample_tensors(seed).items())[seed::3]), p, metadata={"format": "pt"})
        bases.append(p.read_bytes())
    cases = list(CRAFTED.items()) + [(f"mutant{k}", b) for k, b in enumerate(mutants(bases, 600, 7))]
    paths = []
    for k, (name, b) in enumerate(cases):
        p = tmp_path / f"case{k}.safetensors"
        p.write_bytes(b)
        paths.append(p)
    verdicts = run([testkit_bin, "st-check", *paths]).stdout.splitlines()
    assert len(verdicts) == len(cases)
    agree = stricter = 0
    disagreements = []
    for (name, b), p, v in zip(cases, paths, verdicts):
        ours, ref = v == "ok", reference_accepts(p)
        if ours == ref:
            agree += 1
        elif ref and not ours and has_duplicate_keys(b):
            stricter += 1
        else:
            disagreements.append(f"{name}: reference {'accepts' if ref else 'rejects'}, hyla says {v}")
        if not ours:
            assert str(p) in v, v  # the error names the file
    print(f"\n[strictness] {len(cases)} files: {agree} same verdict as safetensors, "
          f"{stricter} refused only by hyla (duplicate keys)")
    assert not disagreements, "\n".join(disagreements[:20])
    assert sum(v == "ok" for v in verdicts) > 60 and stricter > 5  # every verdict is exercised


def test_errors_name_file_and_tensor(testkit_bin, tmp_path):
    p = tmp_path / "broken.safetensors"
    p.write_bytes(pack({"layer.w": {**E, "shape": [3]}}, b"\0" * 8))
    r = run([testkit_bin, "st-dump", p], check=False)
    assert r.returncode != 0
    assert str(p) in r.stderr and "layer.w" in r.stderr and "needs 12 bytes" in r.stderr
