"""YAML files that remember where each key came from, and pydantic errors that point back to them.

Admins edit ``config.yaml`` and ``rules/*.yaml`` by hand. When one is wrong they need the file, line,
column and key, all problems at once, and a "did you mean" for typos, never a traceback.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem at a position in a YAML file."""

    path: Path
    line: int | None  # 1-based
    column: int | None  # 1-based
    key: str
    message: str

    def __str__(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


def load_yaml(path: Path) -> Any:
    """Parse one YAML file keeping positions; syntax errors become a one-problem list.

    Admins write these files by hand, a few kB each, so a file beyond the limits below is refused
    with what the limit is (never a traceback, a RecursionError or minutes of parsing): over
    MAX_BYTES before it is parsed, nested deeper than MAX_DEPTH, holding more than MAX_VALUES
    values as written ("too large") or once its aliases are expanded ("an alias bomb")."""
    text = _read(path)
    yaml = YAML(typ="rt")
    try:
        if _flow_depth(text) > MAX_DEPTH:  # ruamel scans deep flow nesting in quadratic time
            _refuse_deep_events(path, text)
        try:
            data = yaml.load(text)
        except RecursionError:  # block nesting a few hundred levels deep
            _refuse_deep_events(path, text)
            raise YamlProblems([Problem(path, None, None, "", _deep_message())]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise YamlProblems([Problem(path, line, col, "", f"YAML syntax error: {what}")]) from None
    except YAMLError as exc:
        raise YamlProblems([Problem(path, None, None, "", f"YAML error: {exc}")]) from None
    deep = too_deep(data, MAX_DEPTH)
    if deep is not None:
        line, col = position(deep, ())
        raise YamlProblems([Problem(path, line, col, "", _deep_message())]) from None
    if written_size(data, MAX_VALUES) > MAX_VALUES:
        raise YamlProblems([Problem(
            path, None, None, "",
            f"the file holds more than {MAX_VALUES:,} values, the most a config or rules file "
            f"may hold (one an admin writes holds a few thousand): check that this is the right "
            f"file, or split a rules file into several in the rules folder")]) from None
    if expanded_size(data, MAX_VALUES) > MAX_VALUES:
        raise YamlProblems([Problem(
            path, None, None, "",
            f"the aliases (*name) expand to more than {MAX_VALUES:,} values (an alias bomb?), the "
            f"most a config or rules file may hold once expanded; write the values out, or use "
            f"fewer and smaller aliases")]) from None
    return {} if data is None else data


# A config or rules file an admin writes has a few thousand values at most; past this many the file
# is refused before anything walks it (a "billion laughs" file parses into a few shared lists, but
# every later step would expand them: 75 s and a MemoryError for a 1 kB file).
MAX_VALUES = 200_000
# ruamel's round-trip parser reads about 80 kB a second: a 50 MB file took minutes before failing.
# The largest example file is 4 kB; 20,000 generated model-class lines would be about 1 MB.
MAX_BYTES = 2_000_000
# Nesting: the example files go 6 levels deep. ruamel recurses per level (a RecursionError past
# about 250), and so does validation; 50 leaves room for every real file and every later step.
MAX_DEPTH = 50


def _read(path: Path) -> str:
    """The file's text, refused past MAX_BYTES without reading further (a 50 MB file, a device)."""
    with path.open("rb") as f:  # FileNotFoundError: the caller says which file is missing
        size = os.fstat(f.fileno()).st_size
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        shown = f"{size / 1e6:.1f} MB, " if size > MAX_BYTES else ""
        raise YamlProblems([Problem(
            path, None, None, "",
            f"the file is {shown}over the {MAX_BYTES // 1_000_000} MB a config or rules file "
            f"may be (one an admin writes is a few kB): check that this is the right file, or "
            f"split a rules file into several in the rules folder")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblems([Problem(path, None, None, "", f"not UTF-8 text ({exc.reason})")]) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it


def _deep_message() -> str:
    return (f"the values are nested more than {MAX_DEPTH} levels deep, the most a config or rules "
            f"file may nest (the examples nest 6): check the brackets and the indentation here")


_BRACKETS = re.compile(r"[\[\]{}]")


def _flow_depth(text: str) -> int:
    """How deep the [ and { brackets nest, counted naively (quotes and comments too): only a
    cue to check the nesting properly before parsing."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(text):
        depth = depth + 1 if m.group() in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def _refuse_deep_events(path: Path, text: str) -> None:
    """Raise where the nesting first passes MAX_DEPTH, read from the parser's events (a loop,
    no recursion, stopping there); return if it never does."""
    depth = 0
    for event in YAML(typ="rt").parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise YamlProblems([Problem(path, mark.line + 1, mark.column + 1, "",
                                            _deep_message())]) from None
        elif isinstance(event, CollectionEndEvent):
            depth -= 1


def too_deep(data: Any, limit: int) -> Any:
    """The first container nested deeper than ``limit`` (the top level is 1), or None; a loop,
    each shared (aliased) container walked again only when met deeper than before."""
    seen: dict[int, int] = {}
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list) or seen.get(id(node), 0) >= depth:
            continue
        if depth > limit:
            return node
        seen[id(node)] = depth
        children = list(node.values()) if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return None


def written_size(data: Any, limit: int) -> int:
    """How many values ``data`` holds as written: an alias counts once, where it is used (each
    container's entries once); stops just past ``limit``."""
    seen: set[int] = set()
    total = 1
    stack: list[Any] = [data]
    while stack and total <= limit:
        node = stack.pop()
        if not isinstance(node, dict | list) or id(node) in seen:
            continue
        seen.add(id(node))
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        total += len(children)
        stack.extend(c for c in children if isinstance(c, dict | list))
    return total


def expanded_size(data: Any, limit: int) -> int:
    """How many values ``data`` holds once every alias is expanded, counted without expanding it
    (each shared container is counted once and reused); stops just past ``limit``."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, dict | list) or (id(node) in sizes and not done):
            continue
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        if done:
            total = 1 + sum(sizes.get(id(c), 1) if isinstance(c, dict | list) else 1
                            for c in children)
            sizes[id(node)] = min(total, limit + 1)
            continue
        sizes[id(node)] = 1  # a node met again while open (a cycle) counts once
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, dict | list))
    return sizes.get(id(data), 1)


class YamlProblems(Exception):
    """Carries every problem found in one or more files; callers wrap it in their own error."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def position(data: Any, loc: tuple[int | str, ...]) -> tuple[int | None, int | None]:
    """Walk ``loc`` through ruamel's commented containers to the deepest node with a position."""
    line: int | None = None
    col: int | None = None
    node = data
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            try:
                ln, cl = node.lc.key(part)
                line, col = ln + 1, cl + 1
            except (KeyError, TypeError, AttributeError):
                pass
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            try:
                ln, cl = node.lc.item(part)
                line, col = ln + 1, cl + 1
            except (KeyError, TypeError, AttributeError):
                pass
            node = node[part]
        else:
            break
    if line is None and isinstance(data, CommentedMap | CommentedSeq):
        line, col = data.lc.line + 1, data.lc.col + 1
    return line, col


def dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model whose field set applies at ``loc`` (for 'did you mean')."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """Find a BaseModel inside Optional[...] / list[...] / dict[..., ...] annotations."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def problems_from_validation(
    exc: ValidationError, data: Any, path: Path, model: type[BaseModel], prefix: tuple = ()
) -> list[Problem]:
    """Turn every pydantic error into a positioned Problem, with suggestions for unknown keys."""
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        # pydantic puts tagged-union / function-validator names into loc; keep only real keys
        loc = tuple(p for p in loc if isinstance(p, int) or not str(p).startswith("function-"))
        line, col = position(data, loc[len(prefix):] if prefix else loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            msg = "unknown key"
            if parent is not None:
                close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
                if close:
                    msg += f" (did you mean '{close[0]}'?)"
                else:
                    msg += f" (allowed: {', '.join(parent.model_fields)})"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        problems.append(Problem(path, line, col, dotted(loc), msg))
    return problems
