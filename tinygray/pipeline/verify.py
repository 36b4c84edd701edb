"""Re-hash every stage output in the workspace against dvc.lock: `python -m tinygray.pipeline.verify`.

DVC trusts its cache: with bytes overwritten inside a cached model, `dvc status` said up to date, `dvc checkout`
restored the damaged file and `dvc repro` reran nothing; only loading the model failed. This reads every output
dvc.lock records, file by file (a directory through the list of its files DVC keeps in its cache), hashes it
as DVC does (md5 of the bytes), and each file's copy in DVC's cache too (`--workspace-only` skips that), and
names each file that differs with the cheapest command that puts it right. `make repro` runs it after
`dvc repro`. Exit status 1 when anything differs or is missing.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from tinygray.pipeline.params import uncached_outputs

CHUNK = 1 << 20


@dataclass
class Finding:
    stage: str
    path: str
    problem: str
    advice: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; {self.advice}"


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_copy(md5: str, cache: Path, workspace: Path | None = None) -> str:
    """The state of a file's copy in DVC's cache: "intact", "damaged" or "missing". A copy that is the workspace
    file itself (a hard link or symlink, DVC's other link types) is judged with it and not read twice."""
    cached = cache / md5[:2] / md5[2:]
    if not cached.is_file():
        return "missing"
    if workspace is not None and workspace.exists() and os.path.samefile(cached, workspace):
        return "intact"
    return "intact" if md5_of(cached) == md5 else "damaged"


def judge(stage: str, path: str, md5: str, cache: Path, workspace: Path, check_cache: bool) -> Finding | None:
    """What is wrong with one output file and its cached copy, with the cheapest command that is right:
    `dvc checkout` (seconds) where the cached copy is intact, `dvc commit -f` where only the cached copy is bad,
    `dvc repro -f -s` (this stage alone, never its upstream: the teacher's training can take an hour) where both are."""
    cached = cache / md5[:2] / md5[2:]
    state = workspace.is_file() and md5_of(workspace) == md5
    if state and not check_cache:
        return None
    copy = cached_copy(md5, cache, workspace if state else None)
    rebuild = f"rebuild this stage alone with `dvc repro -f -s {stage}`"
    if state:
        if copy == "intact":
            return None
        if copy == "damaged":
            return Finding(stage, path, f"its copy in DVC's cache, {cached}, is damaged (the workspace file is intact)",
                           f"delete that cache file, then `dvc commit -f {stage}` copies the intact one back")
        return Finding(stage, path, "its copy is missing from DVC's cache (the workspace file is intact)",
                       f"`dvc commit -f {stage}` copies it back")
    problem = "missing from the workspace" if not workspace.exists() else \
        f"its bytes are not the ones dvc.lock records (md5 {md5})"
    if copy == "intact":
        return Finding(stage, path, problem, f"`dvc checkout -f {stage}` restores it from DVC's cache in seconds")
    if copy == "damaged":
        return Finding(stage, path, f"{problem}; its copy in DVC's cache, {cached}, is damaged too",
                       f"delete that cache file first (DVC would keep it), then {rebuild}")
    return Finding(stage, path, f"{problem}, and DVC's cache has no copy", f"`dvc pull` it from a remote, or {rebuild}")


def dvc_repo(root: Path) -> tuple[Path, set[str]]:
    """DVC's cache of md5-addressed files (`dvc cache dir`, files/md5 under it) and the names of the stages
    dvc.yaml defines now (dvc.lock may keep the entry of a stage since removed)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return Path(repo.cache.local.path), {stage.addressing for stage in repo.index.stages}


def check(root: Path = Path("."), check_cache: bool = True) -> tuple[list[Finding], int]:
    """(what differs, how many files were hashed) for every output of every stage in root/dvc.lock, and with
    check_cache each file's copy in DVC's cache too (a damaged copy behind an intact file is found before a
    `dvc checkout` brings it back)."""
    lock_path = root / "dvc.lock"
    if not lock_path.is_file():
        raise SystemExit(f"{lock_path}: not found; run `dvc repro` first")
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    cache, defined = dvc_repo(root)
    findings, hashed = [], 0
    for stage, entry in stages.items():
        uncached = uncached_outputs(stage, root / "dvc.yaml")
        for out in entry.get("outs", []) if stage in defined else []:
            path, expected = root / out["path"], out.get("md5")
            if expected is None:
                continue
            if not expected.endswith(".dir"):
                hashed += 1
                # a `cache: false` file (metrics/*.json): no copy in DVC's cache; git holds it
                finding = judge(stage, out["path"], expected, cache, path, check_cache and out["path"] not in uncached)
                findings += [finding] if finding else []
                continue
            # a `cache: false` folder (reports/): DVC keeps no list of its files and no copy to damage; git holds it
            if out["path"] in uncached:
                continue
            manifest = cache / expected[:2] / expected[2:]
            if not manifest.is_file():
                findings.append(Finding(stage, out["path"], f"DVC's list of its files ({manifest}) is not in the cache, "
                                                            "so it cannot be checked",
                                        f"`dvc pull` brings it, or rebuild this stage alone with `dvc repro -f -s {stage}`"))
                continue
            listed = {item["relpath"]: item["md5"] for item in json.loads(manifest.read_text())}
            present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} if path.is_dir() else set()
            for extra in sorted(present - set(listed)):
                findings.append(Finding(stage, f"{out['path']}/{extra}", "not an output dvc.lock records",
                                        f"`dvc checkout -f {stage}` puts the folder back as recorded"))
            for relpath, md5 in sorted(listed.items()):
                hashed += 1
                finding = judge(stage, f"{out['path']}/{relpath}", md5, cache, path / relpath, check_cache)
                findings += [finding] if finding else []
    return findings, hashed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinygray.pipeline.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--workspace-only", action="store_true",
                        help="hash the workspace's outputs only, not their copies in DVC's cache (half the reading)")
    args = parser.parse_args(argv)
    findings, hashed = check(check_cache=not args.workspace_only)
    for finding in findings:
        print(f"verify: {finding}", file=sys.stderr)
    if findings:
        print(f"verify: {len(findings)} output file(s) or cached copies differ from dvc.lock; the command after each "
              "puts it right.", file=sys.stderr, flush=True)
        return 1
    where = "" if args.workspace_only else " (and their copies in DVC's cache)"
    print(f"verify: all {hashed} output files{where} match dvc.lock", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
