"""Data-driven checks of example documents under tests/catalogs/.

valid/*.yaml must produce no problems for themselves. invalid/*.yaml carry their expectations
in leading comments:

    # expect: LINE:COL: SUBSTRING OF THE MESSAGE     (one or more)
    # xfail: bug: WHY                                 (optional: a known fcc bug, strict xfail)

File names start with `provider_`, `probe_` or `config_` (or `yaml_` for syntax errors, checked as
configs), and fcc must classify them that way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fcc.commands.check import guess_kind, run_check
from fcc.engine.catalog.documents import parse

CATALOGS = Path(__file__).resolve().parent / "catalogs"
VALID = CATALOGS / "valid"
INVALID = CATALOGS / "invalid"

_EXPECT = re.compile(r"^#\s*expect:\s*(\d+):(\d+):\s?(.*?)\s*$")
_XFAIL = re.compile(r"^#\s*xfail:\s*(.+?)\s*$")


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FCC_CONFIG", raising=False)


def _header(path: Path) -> list[str]:
    """The leading comment lines (and only those)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def expectations(path: Path) -> list[tuple[int, int, str]]:
    found = []
    for line in _header(path):
        m = _EXPECT.match(line)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return found


def _params(folder: Path) -> list[object]:
    params: list[object] = []
    for path in sorted(folder.glob("*.yaml")):
        reasons = [m.group(1) for line in _header(path) if (m := _XFAIL.match(line))]
        marks = [pytest.mark.xfail(strict=True, reason=r) for r in reasons]
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def _expected_kind(path: Path) -> str:
    for kind in ("provider", "probe"):
        if path.name.startswith(f"{kind}_"):
            return kind
    return "config"


def test_example_folders_are_populated() -> None:
    assert len(list(VALID.glob("*.yaml"))) >= 6
    assert len(list(INVALID.glob("*.yaml"))) >= 10
    for path in INVALID.glob("*.yaml"):
        assert expectations(path), f"{path.name} has no '# expect: LINE:COL: TEXT' comment"


@pytest.mark.parametrize("path", _params(VALID))
def test_valid_example_has_no_problems(path: Path) -> None:
    report = run_check([path])
    assert str(path) in report.files
    mine = [str(p) for p in report.problems if p.file == str(path)]
    assert mine == []
    assert report.ok, [str(p) for p in report.problems]


@pytest.mark.parametrize("path", _params(INVALID))
def test_invalid_example_reports_each_expected_problem(path: Path) -> None:
    report = run_check([path])
    assert not report.ok
    mine = [p for p in report.problems if p.file == str(path)]
    rendered = "\n".join(str(p) for p in report.problems)
    for line, col, text in expectations(path):
        hits = [p for p in mine if (p.line, p.col) == (line, col) and text in p.message]
        assert hits, f"expected {path.name}:{line}:{col}: ...{text}... among:\n{rendered}"
    # Nothing else is blamed: the shipped catalog stays clean whatever the given file says.
    assert all(p.file == str(path) for p in report.problems), rendered


@pytest.mark.parametrize(
    "path",
    [*sorted(VALID.glob("*.yaml")), *sorted(INVALID.glob("*.yaml"))],
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_example_is_checked_as_the_kind_its_name_says(path: Path) -> None:
    doc, problems = parse(path)
    if doc is None:  # a YAML syntax error: nothing to classify
        assert problems
        return
    assert guess_kind(path, doc.data) == _expected_kind(path)


def test_problems_render_as_file_line_col_message() -> None:
    path = INVALID / "config_bad_port.yaml"
    report = run_check([path])
    assert [str(p) for p in report.problems] == [
        f"{path}:4:3: server/port: 99999 is greater than the maximum of 65535"
    ]
