"""Load pipeline specs: YAML → JSON Schema → typed `Pipeline`, collecting every error.

Nothing here raises on bad input: each problem becomes a located `Diagnostic`, so that
`v10r validate` reports all of them in one run, and callers that need pipelines
(`plan`, `listen`...) turn remaining errors into one `SpecError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path as FsPath
from typing import Any

import jsonschema
import pydantic
import yaml

from v10r.errors import SpecError
from v10r.redact import mask_text
from v10r.spec import env
from v10r.spec.diagnostics import Diagnostic
from v10r.spec.model import (
    HEADER_NAME_PATTERN,
    HEADER_VALUE_PATTERN,
    IDENTIFIER_PATTERN,
    PIPELINE_NAME_PATTERN,
    Pipeline,
    json_schema,
)
from v10r.spec.semantic import check_pipelines
from v10r.spec.yaml_nodes import Document, Path, YamlLimitError, parse_documents

MAX_FILE_BYTES = 256 * 1024  # bounds the parse time too (pure-Python YAML, ~1 s)
SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedPipeline:
    """A valid pipeline and where it came from (for error messages)."""

    pipeline: Pipeline
    file: str
    positions: Any = field(repr=False, compare=False, default=None)


@dataclass
class LoadResult:
    files: list[str] = field(default_factory=list)
    pipelines: list[LoadedPipeline] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "error"]

    def raise_for_errors(self) -> list[Pipeline]:
        """The pipelines, or one `SpecError` listing every error."""
        if self.errors:
            listing = "\n".join(d.render() for d in self.errors)
            raise SpecError(
                f"{len(self.errors)} error(s) in the pipeline specs:\n{listing}",
                hint="run `v10r validate` on the same path for details",
            )
        if not self.pipelines:
            raise SpecError(
                f"no pipelines found in {', '.join(self.files) or 'the given paths'}",
                hint="pass a directory or files holding pipeline specs (*.yaml)",
            )
        return [p.pipeline for p in self.pipelines]


def discover(paths: Iterable[str | FsPath]) -> list[FsPath]:
    """Spec files under the given files and directories, sorted; missing paths raise."""
    found: list[FsPath] = []
    for raw in paths:
        path = FsPath(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise SpecError(f"{path}: no such file or directory",
                            hint="pass spec files or directories that contain *.yaml")
    return found


def load_paths(paths: Sequence[str | FsPath], environ: dict[str, str] | None = None) -> LoadResult:
    result = LoadResult()
    for path in discover(paths):
        result.files.append(str(path))
        pipelines, diagnostics = load_file(path, environ)
        result.pipelines.extend(pipelines)
        result.diagnostics.extend(diagnostics)
    semantic = check_pipelines(result.pipelines)
    invalid = {(d.file, d.pipeline) for d in semantic if d.level == "error"}
    result.pipelines = [p for p in result.pipelines if (p.file, p.pipeline.name) not in invalid]
    result.diagnostics.extend(semantic)
    result.diagnostics.sort(key=lambda d: (d.file, d.line, d.col))
    return result


def load_pipelines(paths: Sequence[str | FsPath]) -> list[Pipeline]:
    """Pipelines from spec paths, or a `SpecError` naming every problem."""
    return load_paths(paths).raise_for_errors()


def load_file(path: FsPath, environ: dict[str, str] | None = None
              ) -> tuple[list[LoadedPipeline], list[Diagnostic]]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], [Diagnostic(name, 1, 1, "error", f"cannot read file: {exc.strerror}", "io")]
    if len(raw) > MAX_FILE_BYTES:
        return [], [Diagnostic(name, 1, 1, "error",
                               f"file is {len(raw):,} bytes; specs are limited to {MAX_FILE_BYTES:,}",
                               "file-too-large", hint="split it into one file per pipeline")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [Diagnostic(name, 1, 1, "error", f"file is not UTF-8 ({exc.reason} at byte "
                               f"{exc.start})", "encoding")]
    try:
        documents = parse_documents(text)
    except yaml.YAMLError as exc:
        return [], [_syntax_error(name, exc)]
    if not documents:
        return [], [Diagnostic(name, 1, 1, "error", "file holds no pipeline spec (it is empty)",
                               "empty-file", hint="add a pipeline, or delete the file")]
    pipelines: list[LoadedPipeline] = []
    diagnostics: list[Diagnostic] = []
    for document in documents:
        pipeline, found = _load_document(name, document, environ)
        diagnostics.extend(found)
        if pipeline is not None:
            pipelines.append(LoadedPipeline(pipeline, name, document.positions))
    return pipelines, diagnostics


def _syntax_error(name: str, exc: yaml.YAMLError) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if isinstance(exc, YamlLimitError):
        return Diagnostic(name, line, col, "error", f"YAML beyond limits: {problem}", exc.rule,
                          hint=exc.hint)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return Diagnostic(name, line, col, "error", message, "yaml-syntax")


def _load_document(name: str, document: Document, environ: dict[str, str] | None
                   ) -> tuple[Pipeline | None, list[Diagnostic]]:
    positions = document.positions
    if not isinstance(document.data, dict):
        kind = "empty" if document.data is None else type(document.data).__name__
        return None, [Diagnostic(name, document.start_line, 1, "error",
                                 f"a pipeline spec must be a mapping, got {kind}",
                                 "not-a-mapping", hint="start the document with `name: ...`")]
    diagnostics = [
        Diagnostic(name, *pos, "error", f"duplicate key `{path[-1]}`", "duplicate-key",
                   _dotted(path), hint="keep one of them")
        for path, pos in positions.duplicates
    ]
    pipeline_name = document.data.get("name") if isinstance(document.data.get("name"), str) else None
    diagnostics.extend(_env_warnings(name, document.data, positions, (), environ, pipeline_name))
    schema_errors = list(_schema_errors(name, document, pipeline_name))
    diagnostics.extend(schema_errors)
    if schema_errors or positions.duplicates:
        return None, diagnostics
    try:
        pipeline = Pipeline.model_validate(document.data)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            path = tuple(error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            where = f" in `{_dotted(path)}`" if path else ""
            at = positions.of_key if isinstance(_value_at(document.data, path), dict) \
                else positions.of_value
            diagnostics.append(Diagnostic(name, *at(path), "error",
                                          mask_text(message + where), "invalid-value",
                                          _dotted(path), pipeline=pipeline_name))
        return None, diagnostics
    return pipeline, diagnostics


def _env_warnings(name: str, data: Any, positions: Any, path: Path,
                  environ: dict[str, str] | None, pipeline: str | None) -> Iterable[Diagnostic]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _env_warnings(name, value, positions, (*path, str(key)), environ, pipeline)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _env_warnings(name, value, positions, (*path, index), environ, pipeline)
    elif isinstance(data, str):
        for var in env.missing(data, environ):
            yield Diagnostic(name, *positions.of_value(path), "warning",
                             f"environment variable {var} is not set or empty (used by `{_dotted(path)}`)",
                             "env-unset", _dotted(path),
                             hint=f"it must be set wherever v10r connects: export {var}=...",
                             pipeline=pipeline)


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema())


def _schema_errors(name: str, document: Document, pipeline: str | None) -> Iterable[Diagnostic]:
    positions = document.positions
    for error in sorted(_validator().iter_errors(document.data), key=lambda e: list(map(str, e.absolute_path))):
        path: Path = tuple(error.absolute_path)
        for key_path, message, hint, rule in _describe(error, path):
            position = positions.of_key(key_path) if rule == "unknown-key" else positions.of_value(key_path)
            yield Diagnostic(name, *position, "error", mask_text(message), rule, _dotted(key_path),
                             hint=hint, pipeline=pipeline)


def _describe(error: jsonschema.ValidationError, path: Path
              ) -> Iterable[tuple[Path, str, str | None, str]]:
    """Turn one schema error into (path, message, hint, rule) in v10r's own words."""
    where = f"`{_dotted(path)}`" if path else "the pipeline"
    schema = error.schema if isinstance(error.schema, dict) else {}
    match error.validator:
        case "additionalProperties":
            known = sorted(_properties(schema))
            for key in sorted(set(error.instance) - set(known)):
                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                hint = f"did you mean `{close[0]}`?" if close else (
                    f"known keys here: {', '.join(known)}" if known else None)
                yield (*path, str(key)), f"unknown key `{key}` in {where}", hint, "unknown-key"
        case "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            yield path, f"missing required key `{missing}` in {where}", None, "missing-key"
        case "anyOf" | "oneOf":
            inner = _inner_error(error)
            if inner is not None:
                yield from _describe(inner, (*path, *inner.relative_path))
            else:
                yield path, _alternatives_message(error, where), None, "invalid-value"
        case "enum" | "const":
            options = schema.get("enum") or [schema.get("const")]
            yield (path, (f"{where} must be one of {', '.join(repr(o) for o in options)}, "
                          f"got {error.instance!r}"), _closest(error.instance, options),
                   "invalid-value")
        case "type":
            yield (path, (f"{where} must be {_type_name(schema.get('type'))}, got "
                          f"{_json_type(error.instance)}"), None, "wrong-type")
        case "minItems" if schema.get("minItems") == 1:
            yield path, f"{where} must not be empty", None, "invalid-value"
        case "pattern":
            yield path, f"{where} {_pattern_message(schema, error.instance)}", None, "invalid-value"
        case _:
            yield path, f"{where}: {error.message}", None, "invalid-value"


def _inner_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError | None:
    """The error inside the alternative the value was meant for, if one stands out.

    `dimensions: 20000` fails `integer <= 16000` and `null`; the useful message is the
    maximum, not "must be null". A value of the wrong type for every alternative gets
    the merged "must be X or Y" message instead.
    """
    context = error.context or []
    specific = [c for c in context if c.validator not in ("type", "const", "enum")
                or c.relative_path]
    if not specific:
        return None
    best = max(specific, key=lambda c: len(c.relative_path))
    if best.validator in ("anyOf", "oneOf"):
        return _inner_error(best) or best
    return best


def _alternatives_message(error: jsonschema.ValidationError, where: str) -> str:
    context = error.context or []
    wanted = []
    for c in context:
        schema = c.schema if isinstance(c.schema, dict) else {}
        if c.validator == "type":
            wanted.append(_type_name(schema.get("type")))
        elif c.validator in ("const", "enum"):
            wanted.extend(repr(v) for v in schema.get("enum", [schema.get("const")]))
    if wanted:
        return f"{where} must be {' or '.join(wanted)}, got {_json_type(error.instance)}"
    return f"{where} is not valid: {error.message}"


def _properties(schema: dict[str, Any]) -> set[str]:
    props = set(schema.get("properties", {}))
    if not props and "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        props = set(json_schema().get("$defs", {}).get(ref, {}).get("properties", {}))
    return props


def _pattern_message(schema: dict[str, Any], value: Any) -> str:
    if schema.get("pattern") == IDENTIFIER_PATTERN:
        return f"{value!r} is not a valid PostgreSQL identifier (1 to 63 bytes, no NUL)"
    if schema.get("pattern") == PIPELINE_NAME_PATTERN:
        return f"{value!r} is not a valid name: use lowercase letters, digits and `_`, starting with a letter (at most 48)"
    if schema.get("pattern") == HEADER_NAME_PATTERN:
        return (f"{value!r} is not an HTTP header name (1 to 256 letters, digits and "
                "!#$%&'*+.^_`|~-, no spaces)")
    if schema.get("pattern") == HEADER_VALUE_PATTERN:
        return (f"{value!r} is not a valid HTTP header value: no line breaks or other "
                "control characters (tab is allowed), at most 8,192 characters")
    return f"{value!r} does not match {schema.get('pattern')}"


def _closest(value: Any, options: list[Any]) -> str | None:
    close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1, cutoff=0.5)
    return f"did you mean `{close[0]}`?" if close else None


def _type_name(kind: Any) -> str:
    names = {"string": "a string", "integer": "an integer", "number": "a number", "boolean":
             "true or false", "array": "a list", "object": "a mapping", "null": "null"}
    if isinstance(kind, list):
        return " or ".join(names.get(k, k) for k in kind)
    return names.get(kind, str(kind))


def _json_type(value: Any) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return f"boolean {str(value).lower()}"
        case int() | float():
            return f"number {value}"
        case str():
            return f"string {value!r}" if len(value) < 40 else "a string"
        case list():
            return "a list"
        case dict():
            return "a mapping"
    return type(value).__name__


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
