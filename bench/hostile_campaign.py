"""Issue 12's hostile-user campaign, re-runnable: every defect class against the real CLI.

Each case runs ``python -m uticompile ...`` in a subprocess of its own folder (a fresh copy of
the fixtures), under an address-space cap, and is checked for:

- the exit code (2; or 0 where a damaged run directory is salvaged by redoing the round);
- stderr: no traceback, and for exit 2 exactly one line ``uticompile: error: ...``;
- no leftover file: an exit-2 case leaves the folder's files and folders as they were, and no
  case leaves a ``*.tmp``;
- every input byte-identical (sha256 of every file present before, a resumed run's own run
  directory excepted), plus a per-case check where one applies (same bytes as an unbroken run,
  valid JSON, file mode).

Full-disk and read-only cases use a small tmpfs (``mount``: root only); without it they are
reported as skipped. About 4-6 minutes of one core; run it niced, single-threaded:

    OMP_NUM_THREADS=1 nice -n 10 python bench/hostile_campaign.py [--only CLASS] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

MEMORY_CAP = 8 << 30  # address space per case: far below what the hostile files ask for
TIMEOUT = 300
TRAIN = ["train", "--model", "vgg_small", "--epochs", "0", "--size", "8"]
PRUNE = ["--dataset", "digits", "--rounds", "1", "--epochs", "1", "--batch-size", "128",
         "--train-limit", "128", "--pes", "4", "--seed", "1"]  # fmt: skip


def _cli(argv: list[str], cwd: Path, umask: int | None = None) -> subprocess.CompletedProcess:
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
        if umask is not None:
            os.umask(umask)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "uticompile", *argv], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=TIMEOUT, preexec_fn=limits, check=False,
    )  # fmt: skip


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path) -> dict[str, str]:
    """Every regular file under ``root`` (mount points included) -> sha256; folders -> "dir"."""
    out = {}
    for dirpath, dirs, names in os.walk(root):
        for name in dirs:
            out[(Path(dirpath) / name).relative_to(root).as_posix() + "/"] = "dir"
        for name in names:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                out[p.relative_to(root).as_posix()] = _sha(p)
    return out


# --- fixtures -------------------------------------------------------------------------------


def _hostile_mapping(mapped: Path, out: Path) -> None:
    """A mapped file valid per the spec whose first layer makes 65532 x 65532 feature maps: pads
    of 32763 (the format allows 65535), then a pooling of the same stride back to 4 x 4."""
    from uticompile.mapfile import encode_mapping, read_mapping

    m = copy.deepcopy(read_mapping(mapped))
    layers, big = m.layers, (65532, 65532)
    layers[0]["pads"] = (32763,) * len(layers[0]["pads"])
    layers[0]["out_shape"][1:] = big
    layers[1]["in_shape"][1:] = layers[1]["out_shape"][1:] = big
    layers[2]["in_shape"][1:] = big
    layers[2]["kernel"] = layers[2]["stride"] = (16383, 16383)
    out.write_bytes(encode_mapping(m))


def _hostile_trace(out: Path) -> None:
    """A few hundred bytes of ``.uts`` declaring one 65535 x 65535 activation map."""
    from uticompile.spikes import SpikeCSR, write_spikes

    matrix = sparse.csr_matrix((1, 65535 * 65535), dtype=np.uint8)
    write_spikes(SpikeCSR(4, (1, 65535, 65535), 1, matrix, layer=1), out)


def _edited_model(model: Path, out: Path, value: float | None) -> None:
    """``model`` with one weight set to ``value``, or without its metadata (``None``)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model))
    if value is None:
        del proto.metadata_props[:]
    else:
        init = next(t for t in proto.graph.initializer if t.name.endswith("weight"))
        w = numpy_helper.to_array(init).copy()
        w.flat[0] = value
        init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(proto, str(out))


def _inf_meta(mapped: Path, out: Path) -> None:
    from uticompile.container import read_container, write_container
    from uticompile.mapfile import MAGIC_UTM

    c = read_container(mapped.read_bytes(), MAGIC_UTM, (), what="m")
    meta = b'{"a": 1e999, "b": [-1e999]}'
    parts = [(t, meta if t == b"META" else bytes(b)) for t, b in c.sections.items()]
    out.write_bytes(write_container(MAGIC_UTM, parts, version=c.version))


def _hw(out: Path, **changes: str) -> None:
    """The default hardware table with ``changes`` (key = value) made."""
    import uticompile

    text = (Path(uticompile.__file__).parent / "hw_default.toml").read_text()
    for key, value in changes.items():
        lines = text.splitlines()
        lines = [f"{key} = {value}" if ln.split("=")[0].strip() == key else ln for ln in lines]
        text = "\n".join(lines) + "\n"
    out.write_text(text)


def build_fixtures(root: Path) -> Path:
    fx = root / "fixtures"
    fx.mkdir()

    def ok(argv: list[str]) -> None:
        r = _cli(argv, fx)
        if r.returncode != 0:
            raise SystemExit(f"fixture {' '.join(argv)} failed: {r.stderr}")

    ok([*TRAIN, "-o", "m.onnx"])
    ok(["map", "m.onnx", "--calibration", "0", "-o", "m.utm"])
    ok(["prune", "m.onnx", "-o", "p.onnx", *PRUNE])  # the unbroken run: p.run, p.onnx
    _hostile_mapping(fx / "m.utm", fx / "huge.utm")
    _hostile_trace(fx / "huge.uts")
    _edited_model(fx / "m.onnx", fx / "nan.onnx", float("nan"))
    _edited_model(fx / "m.onnx", fx / "inf.onnx", float("inf"))
    _edited_model(fx / "m.onnx", fx / "big.onnx", 3e38)
    _edited_model(fx / "m.onnx", fx / "nometa.onnx", None)
    _inf_meta(fx / "m.utm", fx / "infmeta.utm")
    (fx / "empty.utm").write_bytes(b"")
    (fx / "empty.onnx").write_bytes(b"")
    (fx / "garbage.onnx").write_bytes(b"\x00garbage\xff" * 50)
    _hw(fx / "neg.toml", mac_dynamic="-1.0")
    _hw(fx / "nan.toml", mac_dynamic="nan")
    _hw(fx / "infclock.toml", clock_mhz="inf")
    return fx


# --- cases ----------------------------------------------------------------------------------


@dataclass
class Case:
    cls: str
    name: str
    argv: list[str]
    expect: int = 2
    setup: Callable[[Path], None] | None = None
    mount: str | None = None  # "ro" or "full": a tmpfs at ./ro or ./full
    mutable: str | None = None  # a folder the command may change (a resumed run directory)
    check: Callable[[Path, subprocess.CompletedProcess], str | None] | None = None
    umask: int | None = None
    words: list[str] = field(default_factory=list)  # the error line must contain each


def _resumed_same_bytes(work: Path, _r: subprocess.CompletedProcess) -> str | None:
    same = (work / "q.onnx").read_bytes() == (work / "p.onnx").read_bytes()
    stale = list((work / "p.run").rglob("*.tmp"))
    if stale:
        return f"stale temporaries left: {stale}"
    return None if same else "resumed output differs from the unbroken run's"


def _json_valid(_work: Path, r: subprocess.CompletedProcess) -> str | None:
    try:
        json.loads(r.stdout, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except ValueError as exc:
        return f"stdout is not strict JSON: {exc}"
    return None


def _mode_follows_umask(work: Path, _r: subprocess.CompletedProcess) -> str | None:
    mode = (work / "u.utm").stat().st_mode & 0o777
    return None if mode == 0o640 else f"mode {oct(mode)}, expected 0o640 under umask 027"


def _damage(name: str, data: bytes | None) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        p = work / "p.run" / name
        if data is None:
            p.unlink()
        else:
            p.write_bytes(data)

    return setup


def _unfinished(extra: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        for name in ("done", "trained.onnx", "report.json"):
            (work / "p.run" / "round_01" / name).unlink()
        extra(work)

    return setup


def _setup_chain(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        for s in steps:
            s(work)

    return setup


def _mkdir(name: str) -> Callable[[Path], None]:
    return lambda work: (work / name).mkdir(parents=True)


def _symlink(name: str, target: str) -> Callable[[Path], None]:
    return lambda work: (work / name).symlink_to(work / target)


RESUME = ["prune", "m.onnx", "-o", "q.onnx", "--run-dir", "p.run", "--resume", *PRUNE]
GARBAGE = b"\x00garbage\xff" * 9


def cases() -> list[Case]:
    c: list[Case] = []
    add = c.append
    # 1. work bounded by nothing
    add(Case("bounded work", "run of a 65535x65535 input", ["run", "huge.utm"]))
    add(Case("bounded work", "encode-input of it", ["encode-input", "huge.utm", "-o", "t.uts"]))
    add(Case("bounded work", "run --spikes of a 65535x65535 trace",
             ["run", "m.utm", "--spikes", "huge.uts"]))  # fmt: skip
    # 2. I/O failures
    for where in ("ro", "full"):
        add(Case("I/O", f"map -o {where}", ["map", "m.onnx", "-o", f"{where}/x.utm"], mount=where))
        add(Case("I/O", f"train -o {where}", [*TRAIN, "--epochs", "1", "-o", f"{where}/x.onnx"],
                 mount=where))  # fmt: skip
        add(Case("I/O", f"prune -o {where}", ["prune", "m.onnx", "-o", f"{where}/p.onnx", *PRUNE],
                 mount=where))  # fmt: skip
        add(Case("I/O", f"encode-input -o {where}",
                 ["encode-input", "m.utm", "-o", f"{where}/x.uts"], mount=where))  # fmt: skip
    add(Case("I/O", "output whose parent is a file", ["map", "m.onnx", "-o", "m.utm/x.utm"]))
    add(Case("I/O", "-o ''", ["map", "m.onnx", "-o", ""]))
    add(Case("I/O", "checkpoint path is a directory", [*TRAIN, "-o", "c.onnx"],
             setup=_mkdir("c.onnx.ckpt")))  # fmt: skip
    # 3. non-finite and absurd numbers
    for bad in ("nan", "inf", "big"):
        add(Case("non-finite", f"map {bad}.onnx", ["map", f"{bad}.onnx", "-o", "x.utm"]))
    add(Case("non-finite", "eval nan.onnx", ["eval", "nan.onnx"]))
    add(Case("non-finite", "prune nan.onnx", ["prune", "nan.onnx", "-o", "x.onnx", *PRUNE]))
    add(Case("non-finite", "train --weight-decay nan", [*TRAIN, "--weight-decay", "nan",
                                                        "-o", "x.onnx"]))  # fmt: skip
    add(Case("non-finite", "train --lr 1e30",
             [*TRAIN, "--epochs", "1", "--lr", "1e30", "--json", "-o", "x.onnx"]))  # fmt: skip
    for toml in ("neg", "nan", "infclock"):
        add(Case("non-finite", f"run --hw {toml}.toml", ["run", "m.utm", "--samples", "4",
                                                          "--hw", f"{toml}.toml"]))  # fmt: skip
    for opt, value in (("--width", "nan"), ("--width", "inf"), ("--width", "1000"),
                       ("--size", "100000"), ("-T", "1000"), ("--seed", "-1")):  # fmt: skip
        add(Case("non-finite", f"train {opt} {value}", [*TRAIN, opt, value, "-o", "x.onnx"]))
    add(Case("non-finite", "prune --search-timesteps 1000",
             ["prune", "m.onnx", "-o", "x.onnx", "--search-timesteps", "1000"]))  # fmt: skip
    # 4. output paths
    add(Case("output paths", "map x -o x", ["map", "m.onnx", "-o", "m.onnx"]))
    add(Case("output paths", "encode-input x -o x", ["encode-input", "m.utm", "-o", "m.utm"]))
    add(Case("output paths", "prune x -o x", ["prune", "m.onnx", "-o", "m.onnx", *PRUNE]))
    add(Case("output paths", "map -o symlink to the input", ["map", "m.onnx", "-o", "l.onnx"],
             setup=_symlink("l.onnx", "m.onnx")))  # fmt: skip
    add(Case("output paths", "map -o /dev/null", ["map", "m.onnx", "-o", "/dev/null"]))
    add(Case("output paths", "map -o a directory", ["map", "m.onnx", "-o", "d"],
             setup=_mkdir("d")))  # fmt: skip
    add(Case("output paths", "encode-input -o /dev/null",
             ["encode-input", "m.utm", "-o", "/dev/null"]))  # fmt: skip
    add(Case("output paths", "prune --run-dir = -o",
             ["prune", "m.onnx", "-o", "x.onnx", "--run-dir", "x.onnx", *PRUNE]))  # fmt: skip
    add(Case("output paths", "map under umask 027", ["map", "m.onnx", "-o", "u.utm"], expect=0,
             umask=0o027, check=_mode_follows_umask))  # fmt: skip
    # 5. corrupt run directories (resumed: redo to the same bytes, or one line)
    for name, data in (("round_00/masks.npz", b""), ("round_01/masks.npz", GARBAGE),
                       ("round_01/report.json", GARBAGE), ("round_01/trained.onnx", GARBAGE),
                       ("round_01/masks.npz", None), ("rewind.onnx", GARBAGE),
                       ("round_01/done", GARBAGE)):  # fmt: skip
        what = "deleted" if data is None else "zero-byte" if not data else "garbage"
        add(Case("run directory", f"{what} {name}", RESUME, expect=0, mutable="p.run",
                 setup=_damage(name, data), check=_resumed_same_bytes))  # fmt: skip
    for what, data in (("zero-byte", b""), ("garbage", GARBAGE)):
        add(Case("run directory", f"{what} train.ckpt mid-round", RESUME, expect=0,
                 mutable="p.run", check=_resumed_same_bytes,
                 setup=_unfinished(_damage("round_01/train.ckpt", data))))  # fmt: skip
    add(Case("run directory", "stale .tmp files after kill -9", RESUME, expect=0, mutable="p.run",
             check=_resumed_same_bytes, setup=_unfinished(_setup_chain(
                 _damage("round_01/.trained.onnx.x1y2z3.tmp", b"half"),
                 _damage(".report.jsonl.a1b2c3.tmp", b"")))))  # fmt: skip
    for what, data in (("zero-byte", b""), ("garbage", GARBAGE)):
        add(Case("run directory", f"{what} config.json", RESUME, setup=_damage("config.json", data),
                 words=["config.json", "damaged"]))  # fmt: skip
    add(Case("run directory", "deleted config.json", RESUME, setup=_damage("config.json", None),
             words=["config.json", "missing"]))  # fmt: skip
    # 6. smaller
    add(Case("smaller", "prune --pes 100000", ["prune", "m.onnx", "-o", "x.onnx", "--pes",
                                                "100000"], words=["--pes"]))  # fmt: skip
    for cmd in (["run", "m.utm"], ["encode-input", "m.utm", "-o", "x.uts"]):
        add(Case("smaller", f"{cmd[0]} --samples past the split", [*cmd, "--samples", "100000"],
                 words=["--samples", "test split"]))  # fmt: skip
    add(Case("smaller", "inspect --json of META 1e999", ["inspect", "infmeta.utm", "--json"],
             expect=0, check=_json_valid))  # fmt: skip
    add(Case("smaller", "show of an empty .utm", ["show", "empty.utm"],
             words=["empty.utm", "empty mapped binary"]))  # fmt: skip
    add(Case("smaller", "show of an empty .onnx", ["show", "empty.onnx"], words=["empty.onnx"]))
    for cmd in (["eval"], ["map", "-o", "x.utm"]):
        for model in ("nometa.onnx", "garbage.onnx"):
            add(Case("smaller", f"{cmd[0]} {model} names the file", [cmd[0], model, *cmd[1:]],
                     words=[model]))  # fmt: skip
    return c


# --- running --------------------------------------------------------------------------------


def _mount(work: Path, kind: str) -> bool:
    target = work / kind
    target.mkdir()
    opts = "size=64k,ro" if kind == "ro" else "size=64k"
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(target)],
                      capture_output=True, check=False).returncode:  # fmt: skip
        return False
    if kind == "full":  # fill it to the last block
        fd = os.open(target / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        with contextlib.suppress(OSError):
            while os.write(fd, bytes(4096)):
                pass
        os.close(fd)
    return True


def run_case(case: Case, fixtures: Path, work: Path) -> tuple[str, str]:
    """("pass" | "FAIL" | "skip", detail)."""
    shutil.copytree(fixtures, work, symlinks=True)
    if case.setup is not None:
        case.setup(work)
    mounted = False
    try:
        if case.mount is not None:
            mounted = _mount(work, case.mount)
            if not mounted:
                return "skip", "tmpfs mount not permitted"
        before = _files(work)
        t0 = time.perf_counter()
        try:
            r = _cli(case.argv, work, case.umask)
        except subprocess.TimeoutExpired:
            return "FAIL", f"no answer in {TIMEOUT} s"
        secs = time.perf_counter() - t0
        after = _files(work)
        problems = []
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        if r.returncode != case.expect:
            problems.append(f"exit {r.returncode}, expected {case.expect}")
        if "Traceback" in r.stderr:
            problems.append("traceback")
        if r.returncode == 2:
            if len(lines) != 1 or not lines[0].startswith("uticompile: error:"):
                problems.append(f"{len(lines)} stderr lines")
            missing = [w for w in case.words if lines and w not in lines[0]]
            if missing:
                problems.append(f"message lacks {missing}")
        keep = case.mutable
        changed = [k for k, v in before.items() if not (keep and k.startswith(keep + "/"))
                   and after.get(k) != v]  # fmt: skip
        if changed:
            problems.append(f"inputs changed: {changed}")
        if r.returncode != 0 and set(after) != set(before):
            problems.append(f"files left: {sorted(set(after) ^ set(before))}")
        if any(k.endswith(".tmp") for k in after):
            problems.append("*.tmp left")
        if not problems and case.check is not None:
            detail = case.check(work, r)
            if detail:
                problems.append(detail)
        line = lines[0] if lines else ""
        if problems:
            return "FAIL", f"{'; '.join(problems)} | {line[:160]}"
        return "pass", f"{secs:.1f} s | exit {r.returncode} | {line[:160]}"
    finally:
        if mounted:
            subprocess.run(["umount", str(work / case.mount)], check=False)  # type: ignore[operator]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="run the cases of one class (e.g. 'run directory')")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="hostile-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        fixtures = build_fixtures(root)
        todo = [c for c in cases() if args.only is None or c.cls == args.only]
        tally: dict[str, dict[str, int]] = {}
        for i, case in enumerate(todo):
            verdict, detail = run_case(case, fixtures, root / f"case{i:02d}")
            tally.setdefault(case.cls, {"pass": 0, "FAIL": 0, "skip": 0})[verdict] += 1
            print(f"{verdict:4}  [{case.cls}] {case.name}: {detail}", flush=True)
            if verdict == "pass" and args.keep is None:
                shutil.rmtree(root / f"case{i:02d}")
        print()
        for cls, t in tally.items():
            print(f"{cls:14} {t['pass']:3} pass {t['FAIL']:3} fail {t['skip']:3} skipped")
        total = {k: sum(t[k] for t in tally.values()) for k in ("pass", "FAIL", "skip")}
        print(f"{'total':14} {total['pass']:3} pass {total['FAIL']:3} fail "
              f"{total['skip']:3} skipped of {len(todo)} cases")  # fmt: skip
        return 1 if total["FAIL"] else 0
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
