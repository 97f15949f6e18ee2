"""SQL steps through the real `millrace run`: PostgreSQL and MariaDB servers on 127.0.0.1, duckdb embedded.

The database is a resource (`millrace resource set`), given to the step as
its `database` argument (`$res:...`), as Windmill's executors take it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_shell import Shell

pytestmark = pytest.mark.local


def flow(path: Path, steps: list[tuple[str, str, str, str]]) -> Path:
    """A flow of (id, language, transforms, code) steps."""
    text = "summary: sql\nvalue:\n  modules:\n"
    for step_id, language, transforms, code in steps:
        body = "\n".join(f"          {line}" for line in code.strip("\n").splitlines())
        text += (f"    - id: {step_id}\n      value:\n        type: rawscript\n        language: {language}\n"
                 f"        input_transforms: {transforms}\n        content: |\n{body}\n")
    path.write_text(text, encoding="utf-8")
    return path


def with_db(resource: str, **static: Any) -> str:
    fields = [f'database: {{type: static, value: "$res:{resource}"}}']
    fields += [f"{name}: {{type: static, value: {json.dumps(value)}}}" for name, value in static.items()]
    return "{" + ", ".join(fields) + "}"


PG_CREATE = """
CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text, price numeric(8,2), tags text[],
  meta jsonb, made timestamp, seen timestamptz, day date, ok boolean, raw bytea);
"""
PG_INSERT = """
-- $1 name
-- $2 price (numeric)
-- $3 meta (jsonb)
INSERT INTO items (name, price, tags, meta, made, seen, day, ok, raw)
VALUES ($1::text, $2, ARRAY['a','b'], $3, '2024-01-02 03:04:05', '2024-01-02 03:04:05.250+02', '2024-01-02', true, '\\x0102')
RETURNING id, name;
"""
PG_SELECT = """
-- $1 wanted
SELECT name, price, tags, meta, made, seen, day, ok, raw FROM items WHERE name = $1::text;
"""


def test_postgresql_creates_inserts_with_arguments_and_selects_rows(shell: Shell, tmp_path: Path,
                                                                    postgres_resource: dict[str, Any]):
    """Windmill: pg_executor.rs do_postgresql binds `-- $N name` arguments by name, returns the rows as
    objects (postgres_row_to_json_value) and renders cells as pg_cell_to_json_value does: numeric as
    rust_decimal's string, timestamp as chrono prints it, timestamptz in UTC, bytea as \\x hex."""
    assert shell("resource", "set", "f/db/pg", json.dumps(postgres_resource), "--type", "postgresql").code == 0
    path = flow(tmp_path / "pg.yaml", [
        ("create", "postgresql", with_db("f/db/pg"), PG_CREATE),
        ("insert", "postgresql", with_db("f/db/pg", name="lamp", price=12.5, meta={"colour": "red", "n": [1, 2]}), PG_INSERT),
        ("select", "postgresql", with_db("f/db/pg", wanted="lamp"), PG_SELECT),
    ])
    document = shell.run(path)
    assert document["exit"] == 0, document
    assert document["result"] == [{"name": "lamp", "price": "12.50", "tags": ["a", "b"],
                                   "meta": {"colour": "red", "n": [1, 2]}, "made": "2024-01-02 03:04:05",
                                   "seen": "2024-01-02 01:04:05.250 UTC", "day": "2024-01-02", "ok": True,
                                   "raw": "\\x0102"}]


def test_postgresql_several_statements_give_the_last_ones_rows_unless_annotated(shell: Shell, tmp_path: Path,
                                                                                 postgres_resource: dict[str, Any]):
    """Windmill: SqlResultCollectionStrategy's default is last_statement_all_rows; the
    `-- result_collection=all_statements_all_rows` annotation gives a list of rows per statement.
    do_postgresql_inner renumbers each statement's $N over the parameters it uses."""
    assert shell("resource", "set", "f/db/pg", json.dumps(postgres_resource)).code == 0
    code = "-- $1 a\n-- $2 b\nSELECT $2::int AS b;\nSELECT $1::int AS a, $2::int AS b;\n"
    path = flow(tmp_path / "multi.yaml", [
        ("last", "postgresql", with_db("f/db/pg", a=1, b=2), code),
        ("all", "postgresql", with_db("f/db/pg", a=1, b=2), "-- result_collection=all_statements_all_rows\n" + code),
        ("collect", "python3", '{x: {type: javascript, expr: "results.last"}, y: {type: javascript, expr: "results.all"}}',
         "def main(x, y):\n    return {'last': x, 'all': y}"),
    ])
    document = shell.run(path)
    assert document["exit"] == 0, document
    assert document["result"] == {"last": [{"a": 1, "b": 2}], "all": [[{"b": 2}], [{"a": 1, "b": 2}]]}


def test_a_failing_query_names_the_step_and_carries_the_servers_message(shell: Shell, tmp_path: Path,
                                                                         postgres_resource: dict[str, Any]):
    assert shell("resource", "set", "f/db/pg", json.dumps(postgres_resource)).code == 0
    path = flow(tmp_path / "bad.yaml", [("broken", "postgresql", with_db("f/db/pg"), "SELECT * FROM no_such_table;")])
    outcome = shell("run", path, "--output", "json")
    assert outcome.code != 0
    error = outcome.json()["error"]
    assert error["step_id"] == "broken"
    assert error["name"] == "UndefinedTable"
    assert 'relation "no_such_table" does not exist' in error["message"]


def test_postgresql_without_a_database_says_so(shell: Shell, tmp_path: Path):
    """Windmill: do_postgresql fails with "Missing database argument" when none is given."""
    path = flow(tmp_path / "nodb.yaml", [("q", "postgresql", "{}", "SELECT 1;")])
    outcome = shell("run", path, "--output", "json")
    assert outcome.code != 0
    assert "Missing database argument" in outcome.out + outcome.err


def test_duckdb_runs_embedded_with_named_arguments(shell: Shell, tmp_path: Path):
    """Windmill: windmill-parser-sql parse_duckdb_file reads `-- $name (type) = default`; the
    statement uses $name."""
    code = ("-- $n (integer)\n-- $label (varchar) = 'none'\n"
            "CREATE TABLE t AS SELECT range AS i FROM range($n);\n"
            "SELECT count(*) AS count, sum(i) AS total, $label AS label, DATE '2024-01-02' AS day FROM t;\n")
    path = flow(tmp_path / "duck.yaml", [("d", "duckdb", '{n: {type: static, value: 4}}', code)])
    document = shell.run(path)
    assert document["exit"] == 0, document
    assert document["result"] == [{"count": 4, "total": 6, "label": "none", "day": "2024-01-02"}]


def test_mysql_positional_arguments_against_mariadb(shell: Shell, tmp_path: Path, mysql_resource: dict[str, Any]):
    """Windmill: parse_mysql_file reads `-- ? name (type)`; each `?` takes the next declared argument."""
    assert shell("resource", "set", "f/db/my", json.dumps(mysql_resource), "--type", "mysql").code == 0
    code = ("-- ? name (varchar)\n-- ? qty (int)\n"
            "CREATE TABLE IF NOT EXISTS stock (name varchar(20), qty int);\n"
            "INSERT INTO stock VALUES (?, ?);\n"
            "SELECT name, qty, qty * 100 / 100 AS ratio FROM stock WHERE name LIKE 'b%';\n")
    path = flow(tmp_path / "my.yaml", [("m", "mysql", with_db("f/db/my", name="bolt", qty=3), code)])
    document = shell.run(path)
    assert document["exit"] == 0, document["error"]
    assert document["result"] == [{"name": "bolt", "qty": 3, "ratio": "3.0000"}]
