"""What a SQL step means, as Windmill reads it: arguments, statements, result shape, values as JSON.

Standard library only and free of I/O: the SQL wrapper (wrappers/sql.py)
imports it in a step process, the unit tests import it directly. Windmill's
rules come from windmill-parser-sql (parse_pg_file, parse_mysql_file,
parse_duckdb_file, parse_sql_blocks, run_on_sql_statement_matches), its
SqlAnnotations/SqlResultCollectionStrategy (windmill-common worker.rs) and
pg_executor.rs (do_postgresql_inner, pg_cell_to_json_value).
"""

import base64
import datetime
import decimal
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

DIALECTS = ("postgresql", "mysql", "duckdb")

# Declaration comments, one per line (windmill-parser-sql's RE_ARG_*).
_PG_DECLARED = re.compile(r"(?m)^-- \$(\d+) (\w+)(?: \(([A-Za-z0-9_\[\]]+)\))?(?: ?= ?(.+?))? *$")
_PG_USED = re.compile(r"\$(\d+)(?:::(\w+(?:\[\])?))?")
_MYSQL_NAMED = re.compile(r"(?m)^-- :([a-z_][a-z0-9_]*) \((\w+(?:\([\w, ]+\))?)\)(?: ?= ?(.+?))? *$")
_MYSQL_POSITIONAL = re.compile(r"(?m)^-- \? (\w+) \((\w+)\)(?: ?= ?(.+?))? *$")
_DUCKDB_DECLARED = re.compile(r"(?m)^-- \$(\w+) \(([A-Za-z0-9_\[\]]+)\)(?: ?= ?(.+?))? *$")
_DATABASE = re.compile(r"(?m)^-- database (\S+) *$")
_NONEMPTY_BLOCK = re.compile(r"(?m)^\s*[^\s](?:[^-]|$)")
# Windmill's parser reads `character varying` and friends after `::` as these.
_SPACED_TYPES = (("character varying", "varchar"), ("double precision", "double"),
                 ("time with time zone", "timetz"), ("time without time zone", "time"),
                 ("timestamp with time zone", "timestamptz"), ("timestamp without time zone", "timestamp"))
_INT_TYPES = {"int", "integer", "int4", "bigint", "int8", "smallint", "int2", "serial", "serial4", "smallserial",
              "serial2", "bigserial", "serial8", "oid", "uint", "tinyint", "int1", "ubigint", "uinteger",
              "usmallint", "utinyint", "long", "short", "signed"}
_FLOAT_TYPES = {"real", "float4", "double", "float8", "float", "numeric", "decimal", "dec", "fixed"}
_BOOL_TYPES = {"bool", "boolean", "bit", "logical"}

STRATEGIES = ("last_statement_all_rows", "last_statement_first_row", "last_statement_all_rows_scalar",
              "last_statement_first_row_scalar", "all_statements_all_rows", "all_statements_first_row",
              "all_statements_all_rows_scalar", "all_statements_first_row_scalar", "legacy")
DEFAULT_STRATEGY = "last_statement_all_rows"


class SqlStepError(Exception):
    """A SQL step that cannot run as written: a bad argument, a missing database."""


@dataclass(frozen=True)
class Arg:
    name: str
    otyp: str  # the SQL type as written, lower case
    default: Any = None
    has_default: bool = False
    index: Optional[int] = None  # postgresql's $N


def _default(otyp: str, text: Optional[str]) -> Tuple[Any, bool]:
    """A declared default as Windmill's parsed_default reads it: typed, quotes off a string, null is none."""
    if text is None:
        return None, False
    base = otyp.removesuffix("[]")
    try:
        if text.lower() == "null":
            return None, True
        if base in _INT_TYPES:
            return int(text), True
        if base in _FLOAT_TYPES:
            return float(text), True
        if base in _BOOL_TYPES:
            return {"true": True, "false": False}[text], True
    except (ValueError, KeyError):
        return text, True  # Windmill keeps a default it cannot parse as the text
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1], True
    return text, True


def _spaced_type(code: str, start: int, written: str) -> str:
    rest = code[start:]
    for long_type, alias in _SPACED_TYPES:
        pattern = r"\s*".join(re.escape(token) for token in long_type.split(" "))
        if re.match(pattern, rest, re.IGNORECASE):
            return alias
    return written


def signature(dialect: str, code: str) -> List[Arg]:
    """The step's arguments in Windmill's order, from its declaration comments (and $N uses for postgresql)."""
    if dialect == "postgresql":
        return _pg_signature(code)
    if dialect == "mysql":
        named = [Arg(m[1], m[2].lower(), *_default(m[2].lower(), m[3])) for m in _MYSQL_NAMED.finditer(code)]
        return named or [Arg(m[1], m[2].lower(), *_default(m[2].lower(), m[3])) for m in _MYSQL_POSITIONAL.finditer(code)]
    if dialect == "duckdb":
        return [Arg(m[1], m[2].lower(), *_default(m[2].lower(), m[3])) for m in _DUCKDB_DECLARED.finditer(code)]
    raise SqlStepError(f"unknown SQL dialect {dialect!r}")


def _pg_signature(code: str) -> List[Arg]:
    """parse_pg_file: a declaration with a type wins; otherwise the type is the first `$N::type` cast, or text."""
    declared: Dict[int, Tuple[str, Optional[str], Optional[str]]] = {}
    for match in _PG_DECLARED.finditer(code):
        declared.setdefault(int(match[1]), (match[2], match[3], match[4]))
    inferred: Dict[int, str] = {}
    for match in _PG_USED.finditer(code):
        index = int(match[1])
        if index in declared and declared[index][1]:
            continue
        written = _spaced_type(code, match.start(2), match[2]) if match[2] else "text"
        inferred[index] = written.lower()  # the last use wins, as in Windmill's map
    args = []
    for index in sorted(set(inferred) | {i for i, (_, typ, _) in declared.items() if typ}):
        name, typ, default = declared.get(index, (f"${index}", None, None))
        otyp = typ.lower() if typ else inferred[index]
        args.append(Arg(name, otyp, *_default(otyp, default), index=index))
    return args


def statements(code: str) -> List[str]:
    """The script cut at each `;` outside quotes and comments; a trailing block only if it holds SQL."""
    blocks, last = [], 0
    for index in _outside_quotes(code, lambda char, _: char == ";"):
        blocks.append(code[last:index + 1])
        last = index + 1
    if last < len(code) and _NONEMPTY_BLOCK.search(code[last:]):
        blocks.append(code[last:])
    return blocks


def _outside_quotes(code: str, wanted: Callable[[str, str], bool]) -> Iterator[int]:
    """Indices of characters `wanted` (given the character and the next) outside quotes and comments."""
    state, index = "normal", 0
    while index < len(code):
        char, following = code[index], code[index + 1:index + 2]
        if state == "normal":
            if char in "'\"":
                state = char
            elif char == "-" and following == "-":
                state = "line"
            elif char == "/" and following == "*":
                state = "block"
            elif wanted(char, following):
                yield index
        elif state in "'\"" and char == state:
            if following == state:
                index += 1  # a doubled quote stays inside
            else:
                state = "normal"
        elif state == "line" and char == "\n":
            state = "normal"
        elif state == "block" and char == "*" and following == "/":
            state = "normal"
        index += 1


def database_path(code: str) -> Optional[str]:
    """The resource named by a `-- database PATH` line (Windmill's parse_db_resource)."""
    match = _DATABASE.search(code)
    return match[1] if match else None


_UNSUPPORTED = ((re.compile(r"(?m)^-- s3(?: .*)? *$"), "the `-- s3` result mode"),
                (re.compile(r"(?m)^--\s*%%[a-z_][a-z0-9_]*%%"), "`%%name%%` interpolated arguments"),
                (re.compile(r"(?m)^-- prepare *$"), "the `prepare` annotation"))


def refuse_unsupported(code: str) -> None:
    """Windmill features this wrapper does not have fail the step rather than being passed over."""
    for pattern, feature in _UNSUPPORTED:
        if pattern.search(code):
            raise SqlStepError(f"{feature} is not supported by millrace's SQL steps")


def strategy(code: str) -> str:
    """How the results of the statements make the step's result: `-- result_collection=...`, `-- return_last_result`.

    SqlAnnotations reads `--` comment lines at the top of the script; an
    unknown strategy name falls back to the default, as in Windmill.
    """
    chosen = DEFAULT_STRATEGY
    for line in code.split("\n"):
        stripped = line.strip()
        if not stripped.startswith("--"):
            break
        words = stripped[2:].split()
        for word in words:
            key, _, value = word.partition("=")
            if key == "return_last_result" and not value:
                return "last_statement_all_rows"
            if key == "result_collection":
                chosen = value if value in STRATEGIES else DEFAULT_STRATEGY
    return chosen


def collect(chosen: str, results: List[List[Dict[str, Any]]]) -> Any:
    """The step's result from each statement's rows (SqlResultCollectionStrategy.collect)."""
    last_only = chosen.startswith("last_statement") or (chosen == "legacy" and len(results) == 1)
    first_row = "first_row" in chosen
    scalar = chosen.endswith("_scalar")
    if last_only:
        results = results[-1:]
    if first_row:
        results = [rows[:1] for rows in results]
    if scalar:
        results = [[_scalar(row) for row in rows] for rows in results]
    if last_only:
        if not results:
            return None
        if first_row:
            return results[-1][0] if results[-1] else None
        return results[-1]
    if first_row:
        return [rows[0] if rows else None for rows in results]
    return results


def _scalar(row: Any) -> Any:
    if not isinstance(row, dict) or not row:
        raise SqlStepError("could not collect a sql scalar value from an empty or non-object row")
    return next(iter(row.values()))


def _fraction(value: Any) -> str:
    """chrono's Display of a time's fraction: none, milliseconds or microseconds, whichever is exact."""
    micros = value.microsecond
    if micros == 0:
        return ""
    return f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"


def to_json(value: Any) -> Any:
    """A value from the driver as pg_cell_to_json_value renders it.

    Timestamps as chrono prints them (`2024-01-02 03:04:05`, with ` UTC` when
    zoned, after conversion to UTC), dates ISO, numerics as strings (rust_decimal's
    serde form), bytes as `\\x` and hex, UUIDs and addresses as text, JSON as is.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            utc = value.astimezone(datetime.timezone.utc)
            return f"{utc:%Y-%m-%d %H:%M:%S}{_fraction(utc)} UTC"
        return f"{value:%Y-%m-%d %H:%M:%S}{_fraction(value)}"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.time):
        return f"{value:%H:%M:%S}{_fraction(value)}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def row_object(columns: List[str], row: Any) -> Dict[str, Any]:
    """One row as an object keyed by column name; a repeated name keeps the last value, as a JSON map does."""
    return {name: to_json(cell) for name, cell in zip(columns, row)}


def bound_value(arg: Arg, value: Any) -> Any:
    """An argument's JSON value as the driver should bind it (pg_executor convert_val, for the types it names).

    bytea arguments arrive as base64; text arguments given an object get its
    JSON text. Anything else goes as it is and the server converts it.
    """
    base = arg.otyp.removesuffix("[]")
    if value is None:
        return None
    if base == "bytea" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as problem:
            raise SqlStepError(f"argument {arg.name!r} ({arg.otyp}) is not base64: {problem}") from None
    if base in ("text", "varchar") and isinstance(value, (dict, list)) and not arg.otyp.endswith("[]"):
        return json.dumps(value)
    return value


def arguments(args_in: Dict[str, Any], declared: List[Arg]) -> Dict[str, Any]:
    """Each declared argument's value: the given one, else its default, else null (the missing ones Windmill binds as null)."""
    values = {}
    for arg in declared:
        given = args_in.get(arg.name)
        values[arg.name] = arg.default if given is None and arg.has_default else given
    return values


def pg_statement(block: str, declared: List[Arg], values: Dict[str, Any]) -> Tuple[str, List[Tuple[Arg, Any]]]:
    """One statement with its $N renumbered 1.. over the parameters it uses (do_postgresql_inner), and their values."""
    by_index = {arg.index: arg for arg in declared if arg.index is not None}
    used = sorted({int(m.group(1)) for m in _pg_placeholders(block)} & set(by_index))
    renumber = {old: new for new, old in enumerate(used, start=1)}
    parts, last = [], 0
    for match in _pg_placeholders(block):
        index = int(match.group(1))
        if index in renumber:
            parts.append(block[last:match.start()] + f"${renumber[index]}")
            last = match.end()
    parts.append(block[last:])
    params = [(by_index[i], bound_value(by_index[i], values.get(by_index[i].name))) for i in used]
    return "".join(parts), params


def _pg_placeholders(block: str) -> Iterator["re.Match[str]"]:
    for index in _outside_quotes(block, lambda char, following: char == "$" and following.isdigit()):
        match = re.compile(r"\$(\d+)").match(block, index)
        if match:
            yield match


def duckdb_statement(block: str, declared: List[Arg], values: Dict[str, Any]) -> Dict[str, Any]:
    """The named parameters one statement uses ($name outside quotes and comments), with their values."""
    names = {arg.name: arg for arg in declared}
    used = set()
    for index in _outside_quotes(block, lambda char, following: char == "$" and (following.isalpha() or following == "_")):
        used.add(re.compile(r"\w+").match(block, index + 1).group(0))  # type: ignore[union-attr]
    return {name: bound_value(names[name], values.get(name)) for name in sorted(used) if name in names}


def mysql_named(code: str) -> bool:
    """Whether the script declares `-- :name (type)` arguments, which turn `:name` placeholders on."""
    return _MYSQL_NAMED.search(code) is not None


def mysql_statement(block: str, declared: List[Arg], values: Dict[str, Any], named: bool) -> Tuple[str, List[Any]]:
    """One statement in the driver's %s form: `?` take the declared arguments in order, `:name` by name.

    Every literal % is doubled for the driver, quoted ones too; placeholders
    are only read outside quotes and comments, so declarations stay as they are.
    """
    parts, params, last, position = [], [], 0, 0
    by_name = {arg.name: arg for arg in declared}
    for index in list(_outside_quotes(block, lambda c, f: c == "?" or (c == ":" and (f.isalpha() or f == "_")))):
        if block[index] == "?" and not named:
            if position >= len(declared):
                raise SqlStepError(f"the statement has more ? placeholders than declared arguments ({len(declared)})")
            arg = declared[position]
            position += 1
            end = index + 1
        elif block[index] == ":" and named:
            name = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(block, index + 1).group(0)  # type: ignore[union-attr]
            if name not in by_name:
                raise SqlStepError(f"the statement uses :{name}, which no `-- :{name} (type)` line declares")
            arg, end = by_name[name], index + 1 + len(name)
        else:
            continue
        parts.append(block[last:index].replace("%", "%%") + "%s")
        params.append(bound_value(arg, values.get(arg.name)))
        last = end
    parts.append(block[last:].replace("%", "%%"))
    return "".join(parts), params
