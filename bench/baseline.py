"""`--baseline REF`: the fcc of a git ref as one more contender, in its own venv under bench/.cache.

The ref is checked out into a temporary git worktree, installed (not editable) into
`bench/.cache/baselines/<sha>/venv`, and the worktree is removed again: the venv is
self-contained and is reused by every later run against the same commit. Only
`fcc serve --config FILE --port N` of the ref is relied on (its CLI may differ otherwise).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


class BaselineError(Exception):
    """Why the baseline could not be prepared: one line, printed as the bench's failure."""


@dataclass(frozen=True, slots=True)
class Baseline:
    ref: str  # as the user wrote it, e.g. HEAD~1
    sha: str
    subject: str  # the commit's first line
    venv: Path

    @property
    def name(self) -> str:
        """The contender's name in every table."""
        return f"fcc@{self.ref}"

    @property
    def fcc(self) -> Path:
        return self.venv / "bin" / "fcc"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def resolve(repo: Path, ref: str) -> tuple[str, str]:
    """(full sha, subject) of `ref`; BaselineError if it names no commit."""
    done = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if done.returncode != 0 or not done.stdout.strip():
        raise BaselineError(f"--baseline {ref}: not a commit in {repo} (git rev-parse found nothing)")
    sha = done.stdout.strip()
    subject = _git(repo, "log", "-1", "--format=%s", sha).stdout.strip()
    return sha, subject


def venv_dir(cache: Path, sha: str) -> Path:
    return cache / "baselines" / sha / "venv"


def prepare(repo: Path, cache: Path, ref: str, log: Path) -> Baseline:
    """The ref's fcc installed in its own venv (once per commit); BaselineError with a reason."""
    sha, subject = resolve(repo, ref)
    venv = venv_dir(cache, sha)
    baseline = Baseline(ref, sha, subject, venv)
    marker = venv / ".installed"
    if marker.exists() and baseline.fcc.exists():
        return baseline
    shutil.rmtree(venv, ignore_errors=True)  # a half-made venv from an interrupted run
    venv.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"fcc-baseline-{sha[:12]}-"))
    tree = work / "src"
    _git(repo, "worktree", "prune")
    added = _git(repo, "worktree", "add", "--detach", "--force", str(tree), sha)
    if added.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise BaselineError(
            f"--baseline {ref} ({sha[:12]}): git worktree add failed: {last_line(added.stderr)}"
        )
    try:
        if not (tree / "pyproject.toml").exists():
            raise BaselineError(f"--baseline {ref} ({sha[:12]}): the commit has no pyproject.toml to install")
        steps = [
            ("python -m venv", [sys.executable, "-m", "venv", str(venv)]),
            # Not editable: the venv keeps working once the worktree is gone.
            ("pip install", [str(venv / "bin" / "pip"), "install", "--quiet", str(tree)]),
        ]
        with log.open("w", encoding="utf-8") as out:
            for what, step in steps:
                try:
                    code = subprocess.run(
                        step, stdout=out, stderr=subprocess.STDOUT, timeout=900, cwd=work
                    ).returncode
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise BaselineError(f"--baseline {ref} ({sha[:12]}): {what} failed: {exc}") from None
                if code != 0:
                    out.flush()
                    why = last_line(log.read_text(encoding="utf-8", errors="replace"))
                    raise BaselineError(
                        f"--baseline {ref} ({sha[:12]}): {what} exited with {code}: {why} (log: {log})"
                    )
        if not baseline.fcc.exists():
            raise BaselineError(f"--baseline {ref} ({sha[:12]}): installed, but it has no `fcc` command")
        marker.write_text(f"{sha} {subject}\n", encoding="utf-8")
        return baseline
    except BaselineError:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    finally:
        _git(repo, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(work, ignore_errors=True)
        _git(repo, "worktree", "prune")


def head_label(repo: Path) -> str:
    """What "this commit" is: HEAD's short sha, and whether fcc's files have uncommitted changes."""
    sha = _git(repo, "rev-parse", "--short=7", "HEAD").stdout.strip() or "unknown"
    dirty = _git(repo, "status", "--porcelain", "--", "fcc", "catalog", "schemas", "pyproject.toml")
    return f"{sha} + uncommitted changes" if dirty.stdout.strip() else sha


def micro_rates(
    baseline: Baseline, budget: float, bench_dir: Path
) -> tuple[list[tuple[str, float, str]], str]:
    """bench/micro.py run by the ref's interpreter against the ref's fcc: (rates, problem).

    The micro-benchmarks import fcc's internals, which may have moved since; then the rates
    are empty and `problem` says why. `bench` is reached through a symlink in a scratch folder,
    so the repository's own fcc/ is never on the ref's sys.path.
    """
    scratch = Path(tempfile.mkdtemp(prefix="fcc-baseline-micro-"))
    try:
        (scratch / "bench").symlink_to(bench_dir, target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        try:
            done = subprocess.run(
                [str(baseline.python), "-m", "bench.micro", "--json", f"--budget={budget}"],
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [], f"could not run: {exc}"
        if done.returncode != 0:
            return [], last_line(done.stderr)
        with contextlib.suppress(ValueError, KeyError, TypeError):
            rows = json.loads(done.stdout.strip().splitlines()[-1])
            return [(str(r["name"]), float(r["per_second"]), str(r["unit"])) for r in rows], ""
        return [], "unreadable output"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
