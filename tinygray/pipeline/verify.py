"""Re-hash every stage output in the workspace against dvc.lock: `python -m tinygray.pipeline.verify`.

DVC trusts its cache: with bytes overwritten inside a cached model, `dvc status` said up to date, `dvc checkout`
restored the damaged file and `dvc repro` reran nothing; only loading the model failed. This reads every output
dvc.lock records, file by file (a directory through the list of its files DVC keeps in its cache), hashes it
as DVC does (md5 of the bytes) and names each file that differs with the command that rebuilds it. `make repro`
runs it after `dvc repro`. Exit status 1 when anything differs or is missing.
"""
from __future__ import annotations

import hashlib
import json
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

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; rebuild it with `dvc repro -f {self.stage}`"


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def differs(md5: str, cache: Path) -> str:
    """What is wrong with a file whose bytes are not dvc.lock's, and with its copy in DVC's cache if that is
    damaged too: DVC would keep a damaged copy when the rebuilt file has the same hash, so it must go first."""
    cached = cache / md5[:2] / md5[2:]
    problem = f"its bytes are not the ones dvc.lock records (md5 {md5})"
    if cached.is_file() and md5_of(cached) != md5:
        problem += f"; its copy in DVC's cache, {cached}, is damaged too: delete that file first"
    return problem


def dvc_repo(root: Path) -> tuple[Path, set[str]]:
    """DVC's cache of md5-addressed files (`dvc cache dir`, files/md5 under it) and the names of the stages
    dvc.yaml defines now (dvc.lock may keep the entry of a stage since removed)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return Path(repo.cache.local.path), {stage.addressing for stage in repo.index.stages}


def check(root: Path = Path(".")) -> tuple[list[Finding], int]:
    """(what differs, how many files were hashed) for every output of every stage in root/dvc.lock."""
    lock_path = root / "dvc.lock"
    if not lock_path.is_file():
        raise SystemExit(f"{lock_path}: not found; run `dvc repro` first")
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    cache, defined = dvc_repo(root)
    findings, hashed = [], 0
    for stage, entry in stages.items():
        for out in entry.get("outs", []) if stage in defined else []:
            path, expected = root / out["path"], out.get("md5")
            if expected is None:
                continue
            if not path.exists():
                findings.append(Finding(stage, out["path"], "missing from the workspace"))
                continue
            if not expected.endswith(".dir"):
                hashed += 1
                if md5_of(path) != expected:
                    findings.append(Finding(stage, out["path"], differs(expected, cache)))
                continue
            manifest = cache / expected[:2] / expected[2:]
            # a `cache: false` folder (reports/): DVC keeps no list of its files and no copy to damage; git holds it
            if out["path"] in uncached_outputs(stage, root / "dvc.yaml"):
                continue
            if not manifest.is_file():
                findings.append(Finding(stage, out["path"], f"DVC's list of its files ({manifest}) is not in the cache, "
                                                            "so it cannot be checked (`dvc pull` or `dvc repro` brings it)"))
                continue
            listed = {item["relpath"]: item["md5"] for item in json.loads(manifest.read_text())}
            present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
            for extra in sorted(present - set(listed)):
                findings.append(Finding(stage, f"{out['path']}/{extra}", "not an output dvc.lock records"))
            for relpath, md5 in sorted(listed.items()):
                file = path / relpath
                if not file.is_file():
                    findings.append(Finding(stage, f"{out['path']}/{relpath}", "missing from the workspace"))
                    continue
                hashed += 1
                if md5_of(file) != md5:
                    findings.append(Finding(stage, f"{out['path']}/{relpath}", differs(md5, cache)))
    return findings, hashed


def main() -> int:
    findings, hashed = check()
    for finding in findings:
        print(f"verify: {finding}", file=sys.stderr)
    if findings:
        print(f"verify: {len(findings)} output(s) differ from dvc.lock. A damaged file may have come from DVC's cache: "
              "`dvc repro -f <stage>` rebuilds it and replaces the cached copy.", file=sys.stderr, flush=True)
        return 1
    print(f"verify: all {hashed} output files match dvc.lock", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
