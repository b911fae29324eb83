#!/usr/bin/python3
"""Makes the node's test models (issue 17): llama-architecture GGUF files with seeded random weights and the real
tokenizer of llama.cpp's models/ggml-vocab-llama-spm.gguf, then llama-quantize's Q8_0, Q4_0 and Q4_K_M of each.

Latency depends on the architecture, the sizes and the number formats, not on the weight values, so random weights
time like trained ones; their outputs are meaningless. The same seed gives byte-identical F16 files. Outputs and
manifest.json (shapes, parameter counts, sizes, sha256, timings) go to ENGINE_DIR/models; a rerun skips every file
whose manifest entry still matches. Run with Debian's /usr/bin/python3 (python3-numpy, python3-yaml); gguf-py is
the engine's own copy (ENGINE_DIR/llama.cpp/gguf-py), not a pip package. `make node-models` calls it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

VOCAB_FILE = "models/ggml-vocab-llama-spm.gguf"
QUANT_FORMATS = ["Q8_0", "Q4_0", "Q4_K_M"]
# Every dimension is a multiple of 256: the K-quants (Q4_K_M) store rows in super-blocks of 256 values and fall back
# to other formats for rows that are not, which would blur the comparison between formats.
WEIGHT_STD = 0.02  # the usual initialisation scale; keeps activations finite through random layers


@dataclass(frozen=True)
class ModelSpec:
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int  # per expert when n_expert > 0
    n_expert: int = 0
    n_expert_used: int = 0
    context_length: int = 4096
    rope_freq_base: float = 10000.0
    rms_eps: float = 1e-5


# Names carry the total parameter count (vocabulary 32,000, untied input and output embeddings).
MODELS: dict[str, ModelSpec] = {
    "llama-30m": ModelSpec(n_embd=256, n_layer=12, n_head=4, n_head_kv=4, n_ff=1024),
    "llama-120m": ModelSpec(n_embd=768, n_layer=10, n_head=12, n_head_kv=12, n_ff=2048),
    # grouped-query attention: llama-120m with 3 query heads per key/value head (a third of its KV cache; 112M)
    "llama-120m-gqa": ModelSpec(n_embd=768, n_layer=10, n_head=12, n_head_kv=4, n_ff=2048),
    # mixture of experts (llama arch with llama.expert_count, as Mixtral): llama-30m's shape with 8 experts, 2 used
    # per token, so about 30M parameters are active of 95M
    "llama-moe-95m": ModelSpec(n_embd=256, n_layer=12, n_head=4, n_head_kv=4, n_ff=1024, n_expert=8, n_expert_used=2),
    "llama-500m": ModelSpec(n_embd=1280, n_layer=20, n_head=20, n_head_kv=20, n_ff=3584),
}


def tensor_shapes(spec: ModelSpec, n_vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    """The llama arch's tensors in numpy order (gguf-py reverses it to ggml's ne order)."""
    head_dim = spec.n_embd // spec.n_head
    n_q, n_kv = head_dim * spec.n_head, head_dim * spec.n_head_kv
    shapes = [("token_embd.weight", (n_vocab, spec.n_embd)), ("output_norm.weight", (spec.n_embd,)),
              ("output.weight", (n_vocab, spec.n_embd))]
    for i in range(spec.n_layer):
        b = f"blk.{i}."
        shapes += [(b + "attn_norm.weight", (spec.n_embd,)), (b + "attn_q.weight", (n_q, spec.n_embd)),
                   (b + "attn_k.weight", (n_kv, spec.n_embd)), (b + "attn_v.weight", (n_kv, spec.n_embd)),
                   (b + "attn_output.weight", (spec.n_embd, n_q)), (b + "ffn_norm.weight", (spec.n_embd,))]
        if spec.n_expert == 0:
            shapes += [(b + "ffn_gate.weight", (spec.n_ff, spec.n_embd)), (b + "ffn_up.weight", (spec.n_ff, spec.n_embd)),
                       (b + "ffn_down.weight", (spec.n_embd, spec.n_ff))]
        else:
            e = spec.n_expert
            shapes += [(b + "ffn_gate_inp.weight", (e, spec.n_embd)),
                       (b + "ffn_gate_exps.weight", (e, spec.n_ff, spec.n_embd)),
                       (b + "ffn_up_exps.weight", (e, spec.n_ff, spec.n_embd)),
                       (b + "ffn_down_exps.weight", (e, spec.n_embd, spec.n_ff))]
    return shapes


def keeps_f32(name: str, shape: tuple[int, ...]) -> bool:
    # Norm weights and the expert router stay F32, as llama.cpp's own converter writes them.
    return len(shape) == 1 or name.endswith("ffn_gate_inp.weight")


def make_tensor(np, seed: int, model: str, name: str, shape: tuple[int, ...]):
    if name.endswith("norm.weight"):
        return np.ones(shape, dtype=np.float32)
    # Each tensor has its own stream, derived from (seed, model, tensor): independent of the order of generation.
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(model.encode()), zlib.crc32(name.encode())]))
    values = rng.standard_normal(shape, dtype=np.float32)
    values *= np.float32(WEIGHT_STD)
    return values if keeps_f32(name, shape) else values.astype(np.float16)


def read_vocab(gguf, path: Path) -> dict:
    reader = gguf.GGUFReader(path)
    fields = reader.fields
    value = lambda key: fields[key].contents()  # noqa: E731
    return {
        "model": value("tokenizer.ggml.model"), "pre": value("tokenizer.ggml.pre"),
        "tokens": value("tokenizer.ggml.tokens"), "scores": value("tokenizer.ggml.scores"),
        "token_types": value("tokenizer.ggml.token_type"), "bos": value("tokenizer.ggml.bos_token_id"),
        "eos": value("tokenizer.ggml.eos_token_id"), "unk": value("tokenizer.ggml.unknown_token_id"),
        "add_bos": value("tokenizer.ggml.add_bos_token"), "add_eos": value("tokenizer.ggml.add_eos_token"),
    }


def write_model(gguf, np, path: Path, name: str, spec: ModelSpec, vocab: dict, seed: int) -> int:
    """Writes one F16 model, tensor by tensor (the 500M one never sits in memory whole); returns its parameters."""
    n_vocab = len(vocab["tokens"])
    shapes = tensor_shapes(spec, n_vocab)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_description("random weights (seeded) with the llama-spm tokenizer, for timing only: not a trained model")
    w.add_uint32("accelsel.seed", seed)
    w.add_context_length(spec.context_length)
    w.add_embedding_length(spec.n_embd)
    w.add_block_count(spec.n_layer)
    w.add_feed_forward_length(spec.n_ff)
    w.add_head_count(spec.n_head)
    w.add_head_count_kv(spec.n_head_kv)
    w.add_rope_dimension_count(spec.n_embd // spec.n_head)
    w.add_rope_freq_base(spec.rope_freq_base)
    w.add_layer_norm_rms_eps(spec.rms_eps)
    w.add_vocab_size(n_vocab)
    if spec.n_expert:
        w.add_expert_count(spec.n_expert)
        w.add_expert_used_count(spec.n_expert_used)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model(vocab["model"])
    w.add_tokenizer_pre(vocab["pre"])
    w.add_token_list(vocab["tokens"])
    w.add_token_scores(vocab["scores"])
    w.add_token_types(vocab["token_types"])
    w.add_bos_token_id(vocab["bos"])
    w.add_eos_token_id(vocab["eos"])
    w.add_unk_token_id(vocab["unk"])
    w.add_add_bos_token(vocab["add_bos"])
    w.add_add_eos_token(vocab["add_eos"])
    for tname, shape in shapes:
        dtype = np.float32 if keeps_f32(tname, shape) else np.float16
        w.add_tensor_info(tname, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for tname, shape in shapes:
        w.write_tensor_data(make_tensor(np, seed, name, tname, shape))
    w.close()
    return sum(int(np.prod(s)) for _, s in shapes)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def build_lock(path: str):
    """Holds the machine's shared build lock (the one flock(1) takes in the Makefile and scripts), if any."""
    if not path:
        yield
        return
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"make_models: waiting for {path} (another build or benchmark holds it)", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_manifest(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {"models": {}}


def save_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def file_entry_ok(out_dir: Path, entry: dict | None) -> bool:
    return bool(entry) and (out_dir / entry["file"]).is_file() and (out_dir / entry["file"]).stat().st_size == entry["bytes"]


def wanted(name: str, seed: int) -> dict:
    return {"spec": asdict(MODELS[name]), "seed": seed, "vocab": VOCAB_FILE}


def f16_ok(out_dir: Path, entry: dict | None, want: dict) -> bool:
    return bool(entry) and {k: entry.get(k) for k in want} == want and file_entry_ok(out_dir, entry["files"].get("F16"))


def quant_ok(out_dir: Path, entry: dict, fmt: str) -> bool:
    q = entry["files"].get(fmt)
    return file_entry_ok(out_dir, q) and q.get("from_sha256") == entry["files"]["F16"]["sha256"]


def pending(out_dir: Path, manifest: dict, name: str, seed: int) -> bool:
    entry = manifest["models"].get(name)
    return not f16_ok(out_dir, entry, wanted(name, seed)) or not all(quant_ok(out_dir, entry, f) for f in QUANT_FORMATS)


def make_one(gguf, np, args, out_dir: Path, manifest: dict, name: str, vocab: dict) -> None:
    spec = MODELS[name]
    want = wanted(name, args.seed)
    entry = manifest["models"].get(name)
    if not f16_ok(out_dir, entry, want):
        f16 = out_dir / f"{name}.F16.gguf"
        tmp = f16.with_suffix(".gguf.tmp")
        t0 = time.monotonic()
        params = write_model(gguf, np, tmp, name, spec, vocab, args.seed)
        tmp.replace(f16)
        entry = dict(want, params=params, files={"F16": {
            "file": f16.name, "bytes": f16.stat().st_size, "sha256": sha256_of(f16),
            "seconds": round(time.monotonic() - t0, 1)}})
        manifest["models"][name] = entry
        save_manifest(out_dir / "manifest.json", manifest)
        print(f"make_models: {f16.name}: {params / 1e6:.1f}M parameters, {entry['files']['F16']['bytes'] / 2**20:.0f} MiB,"
              f" {entry['files']['F16']['seconds']} s", flush=True)
    f16_sha = entry["files"]["F16"]["sha256"]
    for fmt in QUANT_FORMATS:
        if quant_ok(out_dir, entry, fmt):
            continue
        out = out_dir / f"{name}.{fmt}.gguf"
        tmp = out.with_suffix(".gguf.tmp")
        t0 = time.monotonic()
        cmd = [str(args.quantize), str(out_dir / entry["files"]["F16"]["file"]), str(tmp), fmt, str(args.threads)]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            sys.exit(f"make_models: {' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-4000:]}")
        tmp.replace(out)
        entry["files"][fmt] = {"file": out.name, "bytes": out.stat().st_size, "sha256": sha256_of(out),
                               "from_sha256": f16_sha, "seconds": round(time.monotonic() - t0, 1)}
        save_manifest(out_dir / "manifest.json", manifest)
        print(f"make_models: {out.name}: {entry['files'][fmt]['bytes'] / 2**20:.0f} MiB,"
              f" {entry['files'][fmt]['seconds']} s", flush=True)


def check_seed(gguf, np, args, out_dir: Path, manifest: dict, names: list[str], vocab: dict) -> int:
    """Regenerates each F16 model in a temporary folder and compares its sha256 with the manifest's."""
    failures = 0
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp_dir:
        for name in names:
            entry = manifest["models"].get(name)
            if not entry or entry.get("seed") != args.seed:
                print(f"make_models: --check-seed: no {name} with seed {args.seed} in the manifest")
                failures += 1
                continue
            path = Path(tmp_dir) / f"{name}.F16.gguf"
            write_model(gguf, np, path, name, MODELS[name], vocab, args.seed)
            got, want = sha256_of(path), entry["files"]["F16"]["sha256"]
            print(f"make_models: --check-seed {name}: {'same' if got == want else 'DIFFERENT'} sha256 {got}")
            failures += got != want
            path.unlink()
    return 1 if failures else 0


def main() -> int:
    repo = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine-dir", type=Path, default=repo / "build" / "node-engine",
                   help="what node/build_engine.sh built (default build/node-engine)")
    p.add_argument("--models", default="", help=f"comma-separated subset of {', '.join(MODELS)} (default: all)")
    p.add_argument("--seed", type=int, default=17, help="weights seed (default 17)")
    p.add_argument("--threads", type=int, default=2, help="llama-quantize threads (default 2)")
    p.add_argument("--lock", default=os.environ.get("NODE_ENGINE_LOCK", "/tmp/accelsel-build.lock"),
                   help="flock file held while generating and quantizing (default /tmp/accelsel-build.lock; '' none)")
    p.add_argument("--check-seed", action="store_true",
                   help="regenerate the F16 models and compare their sha256 with the manifest; make nothing")
    args = p.parse_args()

    if args.models:
        names = [n for n in args.models.split(",") if n]
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            p.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    else:
        names = list(MODELS)

    src = args.engine_dir / "llama.cpp"
    args.quantize = args.engine_dir / "build" / "bin" / "llama-quantize"
    if not (src / "gguf-py" / "gguf").is_dir() or not args.quantize.is_file():
        sys.exit(f"make_models: no engine in {args.engine_dir}; run `make node-engine` first")
    sys.path.insert(0, str(src / "gguf-py"))
    import numpy as np  # noqa: E402  (Debian's python3-numpy)
    import gguf  # noqa: E402  (the engine's own gguf-py)

    out_dir = args.engine_dir / "models"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(out_dir / "manifest.json")
    todo = names if args.check_seed else [n for n in names if pending(out_dir, manifest, n, args.seed)]
    if not todo:  # checked before taking the lock: a rerun with nothing to do waits for no one
        print(f"make_models: up to date ({len(names)} models x {1 + len(QUANT_FORMATS)} formats in {out_dir})")
        return 0
    vocab = read_vocab(gguf, src / VOCAB_FILE)
    os.nice(19)  # the machine is shared; llama-quantize inherits it
    with build_lock(args.lock):
        if args.check_seed:
            return check_seed(gguf, np, args, out_dir, manifest, names, vocab)
        for name in todo:
            make_one(gguf, np, args, out_dir, manifest, name, vocab)
    print(f"make_models: {len(names)} models x {1 + len(QUANT_FORMATS)} formats in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
