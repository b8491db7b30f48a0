"""YAML documents in, plain data and located problems out.

Documents are parsed with ruamel's round-trip loader only to keep key positions (it builds
plain mappings, never arbitrary objects), validated with jsonschema collecting every error,
and handed on as plain dicts. Nothing here knows what a provider or a tier is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fcc.engine.catalog.resources import schema_path
from fcc.engine.errors import Problem

if TYPE_CHECKING:  # imported where used: a start with every document cached needs neither
    import jsonschema
    from ruamel.yaml.error import MarkedYAMLError

SCHEMA_KINDS = ("provider", "probe", "config")  # the kinds of document
_SHARED = ("conditions",)  # schemas the kinds refer to


_UNREAD: Any = object()  # a cached document's tree, until a message needs it


class Document:
    """A parsed document: its plain data, and the positions of its keys for later messages.
    A document read from the cache (catalog/cache.py) has no tree until a message needs a
    position: then the file is parsed again."""

    __slots__ = ("_tree", "data", "path")

    def __init__(self, path: str, data: Any, tree: Any = _UNREAD) -> None:
        self.path = path
        self.data = data
        self._tree = tree

    @property
    def tree(self) -> Any:
        """The ruamel tree, only used to locate keys."""
        if self._tree is _UNREAD:
            again, _ = parse(Path(self.path))
            self._tree = again._tree if again is not None else None
        return self._tree

    def locate(self, where: Sequence[str | int]) -> tuple[int, int]:
        return locate(self.tree, where)


def load_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    return schema


@cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    import jsonschema
    from referencing import Registry, Resource

    schemas = {k: load_schema(k) for k in (*SCHEMA_KINDS, *_SHARED) if schema_path(k).exists()}
    resources = [(s["$id"], Resource.from_contents(s)) for s in schemas.values()]
    # Relative "$ref": "provider.schema.json#..." resolves against the sibling's $id.
    registry: Registry[Any] = Registry().with_resources(resources)
    cls = jsonschema.validators.validator_for(schemas[kind])
    return cls(schemas[kind], registry=registry)


def parse(path: Path, text: str | None = None) -> tuple[Document | None, list[Problem]]:
    """Read and parse one YAML file; a problem instead of an exception for any failure."""
    name = str(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, [Problem(name, 1, 1, "file not found")]
        except IsADirectoryError:
            return None, [Problem(name, 1, 1, "is a directory, expected a YAML file")]
        except PermissionError:
            return None, [Problem(name, 1, 1, "cannot be read (permission denied): fix its permissions")]
        except UnicodeDecodeError as exc:
            return None, [Problem(name, 1, exc.start + 1, "is not UTF-8 text")]
        except OSError as exc:
            return None, [Problem(name, 1, 1, f"cannot be read: {exc.strerror}")]
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        return None, [_syntax_problem(name, text, exc)]
    except YAMLError as exc:
        return None, [Problem(name, 1, 1, f"YAML syntax: {exc}")]
    return Document(name, plain(tree), tree), []


def _syntax_problem(name: str, text: str, exc: MarkedYAMLError) -> Problem:
    problem, context = exc.problem_mark, exc.context_mark
    what = " ".join(x for x in (exc.context, exc.problem) if x) or "invalid YAML"
    # ruamel quotes both values of a duplicate key in full; the key's name is what helps.
    what = re.sub(r' with value ".*?" \(original value: ".*"\)', "", what, flags=re.S)
    # An unclosed bracket or quote is only noticed at the end of the file: point at where
    # it opened, which is where the fix goes.
    at_end = problem is None or problem.index >= len(text.rstrip())
    mark = context if (at_end and context is not None) else (problem or context)
    if mark is None:
        return Problem(name, 1, 1, f"YAML syntax: {what}")
    if context is not None and mark is problem and context.line != problem.line:
        what += f" (started at line {context.line + 1})"
    return Problem(name, mark.line + 1, mark.column + 1, f"YAML syntax: {what}")


def plain(node: Any) -> Any:
    """ruamel's round-trip values as plain dict/list/str/int/float/bool/None."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return bool(node) if type(node).__name__ == "ScalarBoolean" else int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    # Dates and other YAML-only scalars: keep their text; the schema then rejects them.
    return str(node)


def locate(tree: Any, where: Sequence[str | int]) -> tuple[int, int]:
    """1-based line and column of the key (or item) at `where`, or of the nearest parent."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    line, col = 1, 1
    node = tree
    for step in where:
        if isinstance(node, CommentedMap) and step in node:
            ln, cl = node.lc.key(step)
            line, col = ln + 1, cl + 1
            node = node[step]
        elif isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
            ln, cl = node.lc.item(step)
            line, col = ln + 1, cl + 1
            node = node[step]
        else:
            break
    return line, col


def validate(doc: Document, kind: str, at: Sequence[str | int] = ()) -> list[Problem]:
    """Every schema error in `doc` (or in its sub-tree at `at`), each at its own key."""
    instance = doc.data
    for step in at:
        instance = instance[step]
    problems = []
    for top in _validator(kind).iter_errors(instance):
        err = _branch_error(top)
        path: list[str | int] = [*at, *err.absolute_path]
        path += _offending_key(err)
        line, col = doc.locate(path)
        where = "/".join(str(p) for p in path) or "(document)"
        problems.append(Problem(doc.path, line, col, f"{where}: {_message(err)}"))
    return sorted(problems, key=lambda p: (p.line, p.col, p.message))


def _offending_key(err: jsonschema.ValidationError) -> list[str]:
    """Point an additionalProperties or propertyNames error at the key itself, not its parent."""
    if "propertyNames" in err.relative_schema_path and isinstance(err.instance, str):
        return [err.instance]
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        extra = [k for k in err.instance if k not in known]
        if extra:
            return [extra[0]]
    return []


def _branch_error(err: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For oneOf/anyOf, the error of the branch whose type the value has (a tier written as
    a mapping is judged as a mapping), so the message names the real mistake."""
    if err.validator not in ("oneOf", "anyOf") or not err.context:
        return err
    wrong_type = {
        e.relative_schema_path[0] for e in err.context if e.validator == "type" and not e.relative_path
    }
    branches: dict[object, list[jsonschema.ValidationError]] = {}
    for e in err.context:
        if e.relative_schema_path[0] not in wrong_type:
            branches.setdefault(e.relative_schema_path[0], []).append(e)
    if not branches:
        return err
    # Of the branches the value could be, the one it misses by least (then by deepest error).
    errors = min(branches.values(), key=lambda es: (len(es), -max(len(e.relative_path) for e in es)))
    return _branch_error(max(errors, key=lambda e: len(e.relative_path)))


_JSON_TYPES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "true/false",
    int: "a number",
    float: "a number",
}
_SHOWN = 60  # longer values are not echoed: a message must never carry a file's secrets


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    text = repr(value)
    return text if isinstance(value, int | float | bool) or len(text) <= _SHOWN else _kind(value)


def _message(err: jsonschema.ValidationError) -> str:
    v, value, schema = err.validator, err.instance, err.schema if isinstance(err.schema, dict) else {}
    if v in ("oneOf", "anyOf"):
        return "expected PROVIDER/MODEL or a mapping with model: PROVIDER/MODEL"
    if v == "type":
        wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        names = {
            "object": "a mapping",
            "array": "a list",
            "string": "a string",
            "integer": "a whole number",
            "number": "a number",
            "boolean": "true or false",
            "null": "null",
        }
        return f"expected {' or '.join(names.get(str(w), str(w)) for w in wanted)}, got {_kind(value)}"
    if v == "pattern":
        hint = f" ({schema['description']})" if "description" in schema else ""
        return f"{_shown(value)} must match {err.validator_value}{hint}"
    if v == "enum":
        choices = ", ".join(repr(c) for c in err.validator_value)  # type: ignore[union-attr]
        return f"{_shown(value)} is not one of {choices}"
    if v == "minLength":
        return f"too short: at least {err.validator_value} characters"
    if v == "minProperties":
        why = f" ({schema['description']})" if "description" in schema else ""
        return f"needs at least {err.validator_value} keys{why}"
    if v == "required":
        return str(err.message)
    if v == "additionalProperties":
        extra = (
            sorted(k for k in value if k not in schema.get("properties", {}))
            if isinstance(value, dict)
            else []
        )
        known = ", ".join(sorted(schema.get("properties", {})))
        return (
            f"unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}; known keys: {known}"
        )
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return str(err.message)
    message = str(err.message)
    return message if len(message) <= 200 else f"{message[:200]}…"


def iter_yaml(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def flatten(groups: Iterable[list[Problem]]) -> list[Problem]:
    return [p for g in groups for p in g]
