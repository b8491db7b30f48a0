"""`python -m bench --baseline REF`: the parts that need no load run (a bad ref, the comparison table)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import baseline, report
from bench.plan import QUICK
from bench.run import BaselineResults, Results, serving_baseline, upgrade
from bench.stats import Phase

REPO = Path(__file__).resolve().parents[1]


def test_a_ref_that_names_no_commit_fails_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--baseline",
            "no-such-ref-anywhere",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"bench: --baseline no-such-ref-anywhere: not a commit in {REPO} (git rev-parse found nothing)"
    ], done.stderr
    assert not (tmp_path / "RESULTS.md").exists()


def test_resolve_names_the_commit() -> None:
    sha, subject = baseline.resolve(REPO, "HEAD")
    assert len(sha) == 40 and subject


def _phase(name: str, c: int, ttft: float, cpu: float, tokens: int = QUICK.tokens, n: int = 10) -> Phase:
    records = [(True, i * 0.1, ttft + i * 1e-4, ttft + 0.25, tokens) for i in range(n)]
    return Phase(name, c, tokens, records=records, wall=1.0, cpu=cpu, rss_peak_kb=60 * 1024)


def test_the_comparison_table_has_both_values_and_the_ratio(tmp_path: Path) -> None:
    results = Results(QUICK, True, "raw", contenders=["direct", "fcc", "fcc@OLD"], head="abc1234")
    for c in (1, 16):
        results.phases += [
            Phase("direct", c, QUICK.tokens, records=_phase("d", c, 0.050, 0).records, wall=1.0),
            _phase("fcc", c, 0.054, 0.30),
            _phase("fcc@OLD", c, 0.058, 0.60),
        ]
    results.fcc_long = _phase("fcc", 16, 0.054, 0.40, tokens=QUICK.long_tokens)
    results.cold_start, results.fcc_rss_hwm_kb = [0.7, 0.8], 61 * 1024
    results.first_answer = [0.4, 0.5]
    results.baseline = BaselineResults(
        "OLD",
        "f" * 40,
        "an older commit",
        "fcc@OLD",
        long=_phase("fcc@OLD", 16, 0.058, 0.90, tokens=QUICK.long_tokens),
        cold_start=[1.4, 1.6],
        first_answer=[0.9, 1.1],
        rss_hwm_kb=122 * 1024,
        micro_problem="ModuleNotFoundError: No module named 'x'",
    )
    report.write(results, tmp_path / "RESULTS.md", tmp_path / "latency.png", REPO)
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "## This commit vs fcc@OLD" in text
    assert "| figure | this commit | fcc@OLD | ratio |" in text
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| c=")}
    assert rows["c=1: added TTFT p50 (ms)"].endswith("| 4.00 | 8.00 | 0.50 |")
    assert rows["c=16: proxy CPU ms/req"].endswith("| 30.00 | 60.00 | 0.50 |")
    assert "| cold start, median of 2 / 2 (s) | 0.750 | 1.500 | 0.50 |" in text
    assert "| cold start, min of 2 / 2 (s) | 0.700 | 1.400 | 0.50 |" in text
    assert "| start → first request answered, median of 2 / 2 (s) | 0.450 | 1.000 | 0.45 |" in text
    assert "| start → first request answered, min of 2 / 2 (s) | 0.400 | 0.900 | 0.44 |" in text
    assert "| peak RSS (VmHWM) up to c=16 (MB) | 61.0 | 122.0 | 0.50 |" in text
    assert "could not run against fcc@OLD: ModuleNotFoundError" in text
    # The latency table lists the baseline between fcc and LiteLLM's place.
    names = [line.split(" | ")[1] for line in text.splitlines() if line.startswith("| 1 | ")]
    assert names == ["direct", "fcc", "fcc@OLD"]


def test_an_old_pickle_without_the_new_fields_still_renders(tmp_path: Path) -> None:
    results = Results(QUICK, True, "raw")
    results.phases = [_phase("direct", 1, 0.05, 0), _phase("fcc", 1, 0.055, 0.3)]
    for name in ("contenders", "baseline", "run_dir", "head", "plotted"):
        delattr(results, name)
    upgraded = upgrade(results)
    assert upgraded.contenders == ["direct", "fcc"] and upgraded.baseline is None
    report.write(upgraded, tmp_path / "RESULTS.md", tmp_path / "latency.png", REPO)
    assert "This commit vs" not in (tmp_path / "RESULTS.md").read_text(encoding="utf-8")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


@pytest.mark.slow  # creates a venv and runs pip
def test_a_ref_that_does_not_install_fails_with_one_line(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "pyproject.toml").write_text("[project\nname = broken\n", encoding="utf-8")
    _git(repo, "add", "pyproject.toml")
    _git(repo, "commit", "-q", "-m", "broken")
    with pytest.raises(baseline.BaselineError) as caught:
        baseline.prepare(repo, tmp_path / "cache", "HEAD", tmp_path / "install.log")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("--baseline HEAD (") and "pip install exited with" in message
    sha, _ = baseline.resolve(repo, "HEAD")
    assert not baseline.venv_dir(tmp_path / "cache", sha).exists(), "a failed install leaves no venv"
    listed = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True)
    assert len(listed.stdout.strip().splitlines()) == 1, "the temporary worktree is removed"


def test_a_ref_whose_serve_does_not_start_fails_with_one_line(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fcc = venv / "bin" / "fcc"
    fcc.write_text('#!/bin/sh\necho "Error: No such option: --config" >&2\nexit 2\n', encoding="utf-8")
    fcc.chmod(0o755)
    base = baseline.Baseline("OLD", "a" * 40, "old", venv)
    config = tmp_path / "fcc.yaml"
    config.write_text("tiers: {}\n", encoding="utf-8")
    with (
        pytest.raises(baseline.BaselineError) as caught,
        serving_baseline(base, [(config, "a plain config")], tmp_path, None, {}),
    ):
        pass
    message = str(caught.value)
    assert "\n" not in message
    assert "`fcc serve --config` did not start" in message
    assert message.endswith("its log ends: Error: No such option: --config")
