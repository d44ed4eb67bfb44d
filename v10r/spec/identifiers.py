"""SQL identifiers from specs: parsing, validation and quoting.

Every identifier that reaches SQL goes through :func:`quote_ident`, so a spec can
name tables with spaces, quotes, mixed case or unicode, and can never inject SQL.
"""

from __future__ import annotations

MAX_IDENTIFIER_BYTES = 63


class IdentifierError(ValueError):
    """An identifier PostgreSQL cannot store as written."""


def check_identifier(name: str) -> str:
    if not name:
        raise IdentifierError("identifier is empty")
    if "\x00" in name:
        raise IdentifierError("identifier contains a NUL byte")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise IdentifierError(
            f"identifier {name!r} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte limit"
        )
    return name


def quote_ident(name: str) -> str:
    """Quote an identifier the way PostgreSQL's `quote_ident` does, always."""
    check_identifier(name)
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A SQL string literal, safe with `standard_conforming_strings` on or off."""
    if "\x00" in value:
        raise IdentifierError("string literal contains a NUL byte")
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


def split_qualified(name: str, default_schema: str = "public") -> tuple[str, str]:
    """`schema.table` → (schema, table); parts may be double-quoted to hold dots.

    An unquoted part is kept as written (not case-folded): v10r never relies on
    PostgreSQL's folding rules, so `Docs` means the table named exactly `Docs`.
    """
    parts: list[str] = []
    i, n = 0, len(name)
    while i <= n:
        if i < n and name[i] == '"':
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise IdentifierError(f"unterminated quote in {name!r}")
                if name[j] == '"':
                    if j + 1 < n and name[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(name[j])
                j += 1
            parts.append("".join(buf))
            i = j + 1
            if i < n and name[i] != ".":
                raise IdentifierError(f"unexpected text after quoted name in {name!r}")
        else:
            j = name.find(".", i)
            j = n if j < 0 else j
            parts.append(name[i:j])
            i = j
        if i >= n:
            break
        i += 1  # skip the dot
        if i == n:
            raise IdentifierError(f"{name!r} ends with a dot")
    if len(parts) == 1:
        parts.insert(0, default_schema)
    if len(parts) != 2:
        raise IdentifierError(f"{name!r} is not `table` or `schema.table`")
    schema, table = (check_identifier(p) for p in parts)
    return schema, table


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def derive_name(base: str, suffix: str) -> str:
    """`base + suffix`, shortened deterministically to fit 63 bytes.

    Too-long names keep a readable prefix and end in a short hash of the full name, so
    two long names that share a prefix still get different, stable results.
    """
    import hashlib

    full = base + suffix
    if len(full.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return full
    digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:8]
    tail = f"_{digest}{suffix}"
    budget = MAX_IDENTIFIER_BYTES - len(tail.encode("utf-8"))
    prefix = base.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return prefix + tail
