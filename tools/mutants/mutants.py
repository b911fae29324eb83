#!/usr/bin/env python3
"""Applies the curated faults of mutants.txt one at a time to a private copy of the tree and reports which the
test suite misses (tools/mutants/README.md). Never edits the checkout it is run from."""
import argparse
import datetime
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
KEYS = ("id", "file", "find", "replace", "build", "tests", "why")


def parse(path):
    """Blocks of `key: value` lines separated by blank lines; `#` lines are comments."""
    mutants, cur = [], {}
    with open(path) as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines + [""], 1):
        if line.startswith("#"):
            continue
        if not line.strip():
            if cur:
                missing = [k for k in KEYS if k not in cur]
                if missing:
                    sys.exit(f"{path}: fault {cur.get('id', '?')} (ends line {n}) lacks {', '.join(missing)}")
                mutants.append(cur)
                cur = {}
            continue
        key, sep, value = line.partition(":")
        if not sep or key not in KEYS:
            sys.exit(f"{path}:{n}: expected one of {', '.join(KEYS)}, got {line!r}")
        cur[key] = value[1:] if value.startswith(" ") else value
    ids = [m["id"] for m in mutants]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        sys.exit(f"{path}: duplicate ids {sorted(dup)}")
    return mutants


def source_files(repo, rev=None, overlay=()):
    """{path: (bytes, executable)} of the tree to test: the working tree's tracked files plus untracked ones git does
    not ignore (what a fresh clone plus work in progress holds), or commit `rev`'s files with the `overlay` paths
    taken from the working tree (to test committed code with tests not yet committed while others edit the tree)."""
    def from_worktree(paths):
        out = {}
        for p in paths:
            full = os.path.join(repo, p)
            if os.path.isfile(full):
                with open(full, "rb") as f:
                    out[p] = (f.read(), os.access(full, os.X_OK))
        return out

    if rev is None:
        listed = subprocess.run(["git", "-C", repo, "ls-files", "-co", "--exclude-standard", "-z"], check=True,
                                capture_output=True).stdout.decode()
        return from_worktree(p for p in listed.split("\0") if p)
    tree = subprocess.run(["git", "-C", repo, "ls-tree", "-r", "-z", rev], check=True,
                          capture_output=True).stdout.decode()
    entries = []
    for e in tree.split("\0"):
        if not e:
            continue
        meta, path = e.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind == "blob":
            entries.append((path, sha, mode == "100755"))
    batch = subprocess.run(["git", "-C", repo, "cat-file", "--batch"], check=True, capture_output=True,
                           input="".join(f"{sha}\n" for _, sha, _ in entries).encode()).stdout
    out, pos = {}, 0
    for path, _, executable in entries:
        header_end = batch.index(b"\n", pos)
        size = int(batch[pos:header_end].split()[2])
        out[path] = (batch[header_end + 1:header_end + 1 + size], executable)
        pos = header_end + 1 + size + 1
    out.update(from_worktree(overlay))
    return out


def sync_tree(repo, dest, rev=None, overlay=()):
    """Copies the tree to test (source_files) to `dest`, rewriting only files whose bytes differ (so they get a new
    mtime and Ninja rebuilds exactly what changed, including a file left mutated by an interrupted run); removes
    the rest."""
    files = source_files(repo, rev, overlay)
    changed = 0
    for rel, (data, executable) in files.items():
        dst = os.path.join(dest, rel)
        try:
            with open(dst, "rb") as f:
                same = f.read() == data
        except OSError:
            same = False
        if not same:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(data)
            os.chmod(dst, 0o755 if executable else 0o644)
            changed += 1
    for root, dirs, names in os.walk(dest):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), dest)
            if rel not in files:
                os.remove(os.path.join(root, name))
    return len(files), changed


def run(cmd, log, cwd=None, timeout=None):
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        try:
            return subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            f.write(f"timed out after {timeout} s\n")
            return 124


class Runner:
    def __init__(self, args):
        self.args = args
        self.src = os.path.join(args.work, "src")
        self.build = os.path.join(args.work, "build")
        self.logs = os.path.join(args.work, "logs")
        os.makedirs(self.src, exist_ok=True)
        os.makedirs(self.logs, exist_ok=True)

    def configure(self, log):
        flags = "-O1 -g0 -DNDEBUG"
        cmd = ["cmake", "-S", self.src, "-B", self.build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
               f"-DCMAKE_CXX_FLAGS_RELWITHDEBINFO={flags}", f"-DCMAKE_C_FLAGS_RELWITHDEBINFO={flags}",
               "-DACCELSEL_BUILD_BENCH=OFF", "-DACCELSEL_BUILD_TESTS=ON"]
        if shutil.which("ccache"):
            cmd.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
        return run(cmd, log)

    def build_targets(self, targets, log):
        cmd = ["cmake", "--build", self.build, "-j", str(self.args.jobs), "--target", *targets]
        if self.args.lock and shutil.which("flock"):
            cmd = ["flock", self.args.lock, *cmd]
        return run(cmd, log)

    def ctest(self, regex, log):
        # A fault that hangs a test is caught too: the timeout counts as a failure.
        return run(["ctest", "--test-dir", self.build, "-R", regex, "--no-tests=error", "--timeout",
                    str(self.args.test_timeout), "-j", str(self.args.jobs), "--output-on-failure"], log)

    @staticmethod
    def failed_tests(log):
        """The names in ctest's closing "The following tests FAILED" list."""
        names = []
        with open(log) as f:
            for line in f:
                m = re.match(r"\s*\d+ - (\S+) \(", line)
                if m and m.group(1) not in names:
                    names.append(m.group(1))
        return names


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("ids", nargs="*", help="fault ids or shell patterns (default: all)")
    ap.add_argument("--list", action="store_true", help="list the faults and exit")
    ap.add_argument("--mutants", default=os.path.join(HERE, "mutants.txt"))
    ap.add_argument("--work", default=os.environ.get("MUTANTS_WORK", "/tmp/accelsel-mutants"),
                    help="private copy and build dir (default /tmp/accelsel-mutants); reused between runs")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("MUTANTS_JOBS", os.cpu_count() or 2)))
    ap.add_argument("--lock", default=os.environ.get("MUTANTS_LOCK", "/tmp/accelsel-build.lock"),
                    help="flock file held around each build (empty: none)")
    ap.add_argument("--test-timeout", type=int, default=300)
    ap.add_argument("--report", help="also write the table as Markdown to this file")
    ap.add_argument("--rev", help="test this commit's files instead of the working tree's")
    ap.add_argument("--overlay", nargs="*", default=[],
                    help="with --rev: paths taken from the working tree all the same (e.g. new tests)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the selected tests")
    args = ap.parse_args()

    mutants = parse(args.mutants)
    if args.ids:
        mutants = [m for m in mutants if any(fnmatch.fnmatch(m["id"], p) for p in args.ids)]
        if not mutants:
            sys.exit(f"no fault matches {' '.join(args.ids)}")
    if args.list:
        for m in mutants:
            print(f"{m['id']:28} {m['file']:26} {m['why']}")
        return 0

    r = Runner(args)
    started = time.time()
    setup_log = os.path.join(r.logs, "setup.log")
    open(setup_log, "w").close()
    nfiles, changed = sync_tree(REPO, r.src, args.rev, args.overlay)
    what = f"{args.rev} of {REPO}" + (f" with {len(args.overlay)} working-tree files" if args.overlay else "") \
        if args.rev else REPO
    print(f"copied {what} -> {r.src} ({nfiles} files, {changed} changed); build in {r.build}; logs in {r.logs}",
          flush=True)

    # Every snippet must match exactly once before anything is built.
    bad = []
    for m in mutants:
        with open(os.path.join(r.src, m["file"])) as f:
            count = f.read().count(m["find"])
        if count != 1:
            bad.append(f"{m['id']}: `find` occurs {count} times in {m['file']}")
    if bad:
        print("\n".join(bad))
        return 2

    if r.configure(setup_log) != 0:
        print(f"configure failed, see {setup_log}")
        return 2
    targets = sorted({t for m in mutants for t in m["build"].split()})
    print(f"building {' '.join(targets)} ...", flush=True)
    if r.build_targets(targets, setup_log) != 0:
        print(f"build of the unmutated tree failed, see {setup_log}")
        return 2
    if not args.no_baseline:
        for regex in sorted({m["tests"] for m in mutants}):
            if r.ctest(regex, setup_log) != 0:
                print(f"the unmutated tree fails `ctest -R '{regex}'`, see {setup_log}")
                return 2
    print(f"baseline built and passing in {time.time() - started:.0f} s", flush=True)

    results = []
    for m in mutants:
        path = os.path.join(r.src, m["file"])
        log = os.path.join(r.logs, f"{m['id']}.log")
        open(log, "w").close()
        with open(path) as f:
            original = f.read()
        t0 = time.time()
        try:
            with open(path, "w") as f:
                f.write(original.replace(m["find"], m["replace"], 1))
            if r.build_targets(m["build"].split(), log) != 0:
                verdict, detail = "BUILD-FAILED", "the fault does not compile: fix its entry"
            elif r.ctest(m["tests"], log) != 0:
                failed = Runner.failed_tests(log)
                verdict, detail = "KILLED", ", ".join(failed[:3]) + (f" (+{len(failed) - 3})" if len(failed) > 3 else "")
            else:
                verdict, detail = "SURVIVED", f"no test of `{m['tests']}` fails"
        finally:
            # Written anew (a fresh mtime), so the next build recompiles the original.
            with open(path, "w") as f:
                f.write(original)
        secs = time.time() - t0
        results.append((m, verdict, detail, secs))
        print(f"{verdict:12} {m['id']:28} {secs:5.0f} s  {detail}", flush=True)

    total = time.time() - started
    survived = [m["id"] for m, v, _, _ in results if v != "KILLED"]
    rows = ["| fault | file | result | seconds | failing tests |", "|---|---|---|---|---|"]
    for m, v, d, s in results:
        rows.append(f"| `{m['id']}` | `{m['file']}` | {v} | {s:.0f} | {d} |")
    print()
    print("\n".join(rows))
    print(f"\n{len(results) - len(survived)} of {len(results)} faults killed in {total / 60:.1f} min"
          + (f"; not killed: {' '.join(survived)}" if survived else ""))
    if args.report:
        with open(args.report, "w") as f:
            f.write(f"{datetime.date.today()} {len(results) - len(survived)} of {len(results)} killed, "
                    f"{total / 60:.1f} min\n\n" + "\n".join(rows) + "\n")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
