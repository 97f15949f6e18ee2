"""The pure rules of SQL steps (runtime/sdk/millrace_sql.py), each as Windmill states it."""

from __future__ import annotations

import datetime
import decimal
import importlib.util
import uuid
from pathlib import Path

import pytest

from millrace.runtime.launch import SDK, plan
from millrace.runtime.protocol import StepRequest

_spec = importlib.util.spec_from_file_location("millrace_sql", SDK / "millrace_sql.py")
assert _spec is not None and _spec.loader is not None
sql = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sql)


def test_pg_declarations_name_typed_and_inferred_arguments():
    """Windmill: windmill-parser-sql parse_pg_file: a typed `-- $N name (type) = default` wins; an untyped
    declaration names the argument and its type comes from the `$N::type` cast, text without one."""
    code = "-- $1 name\n-- $2 limit (int) = 10\n-- $3 since\nSELECT $1::character varying, $3, $2;"
    args = sql.signature("postgresql", code)
    assert [(a.name, a.otyp, a.default, a.index) for a in args] == [
        ("name", "varchar", None, 1), ("limit", "int", 10, 2), ("since", "text", None, 3)]


def test_pg_undeclared_parameter_is_named_by_its_index():
    assert [(a.name, a.otyp) for a in sql.signature("postgresql", "SELECT $1::BIGINT")] == [("$1", "bigint")]


def test_mysql_named_declarations_replace_positional_ones():
    """Windmill: parse_mysql_file reads `-- :name (type)` and only without them `-- ? name (type)`."""
    positional = sql.signature("mysql", "-- ? a (int) = 3\n-- ? b (varchar) = 'x'\nSELECT ?, ?")
    assert [(a.name, a.default) for a in positional] == [("a", 3), ("b", "x")]
    named = sql.signature("mysql", "-- :a (int)\n-- ? b (varchar)\nSELECT :a")
    assert [a.name for a in named] == ["a"]


def test_duckdb_declarations():
    """Windmill: parse_duckdb_file reads `-- $name (type) = default`."""
    args = sql.signature("duckdb", "-- $n (integer) = 2\n-- $s (varchar)\nSELECT $n, $s")
    assert [(a.name, a.otyp, a.default, a.has_default) for a in args] == [("n", "integer", 2, True), ("s", "varchar", None, False)]


def test_statements_split_at_semicolons_outside_quotes_and_comments():
    """Windmill: parse_sql_blocks over run_on_sql_statement_matches; a trailing comment is no statement."""
    code = "SELECT 'a;b'; -- c;d\nSELECT \"x;\" /* ; */;\n-- the end"
    assert sql.statements(code) == ["SELECT 'a;b';", " -- c;d\nSELECT \"x;\" /* ; */;"]


def test_each_statement_renumbers_the_parameters_it_uses():
    """Windmill: pg_executor.rs do_postgresql_inner binds only a statement's own $N, renumbered from 1."""
    args = sql.signature("postgresql", "-- $1 a\n-- $2 b\nSELECT $2::int, '$1';")
    query, params = sql.pg_statement("SELECT $2::int, '$1';", args, {"a": 1, "b": 2})
    assert query == "SELECT $1::int, '$1';"
    assert [(arg.name, value) for arg, value in params] == [("b", 2)]


def test_mysql_placeholders_become_the_drivers_and_percent_is_doubled():
    args = sql.signature("mysql", "-- ? a (int)\n-- ? b (text)")
    query, params = sql.mysql_statement("SELECT ?, '?%', ? LIKE 'x%'", args, {"a": 1, "b": "y"}, named=False)
    assert (query, params) == ("SELECT %s, '?%%', %s LIKE 'x%%'", [1, "y"])
    named = sql.signature("mysql", "-- :a (int)")
    assert sql.mysql_statement("SELECT :a, ':a'", named, {"a": 5}, named=True) == ("SELECT %s, ':a'", [5])
    with pytest.raises(sql.SqlStepError, match=":b"):
        sql.mysql_statement("SELECT :b", named, {}, named=True)


@pytest.mark.parametrize(("header", "expected"), [
    ("", [{"b": 2}]),
    ("-- result_collection=all_statements_all_rows\n", [[{"a": 1}, {"a": 3}], [{"b": 2}]]),
    ("-- result_collection=last_statement_first_row\n", {"b": 2}),
    ("-- result_collection=all_statements_first_row_scalar\n", [1, 2]),
    ("-- result_collection=legacy\n", [[{"a": 1}, {"a": 3}], [{"b": 2}]]),
    ("-- return_last_result\n", [{"b": 2}]),
    ("-- result_collection=nonsense\n", [{"b": 2}]),
])
def test_result_collection_strategies(header: str, expected: object):
    """Windmill: SqlResultCollectionStrategy (default last_statement_all_rows) and its collect()."""
    assert sql.collect(sql.strategy(header + "SELECT 1;"), [[{"a": 1}, {"a": 3}], [{"b": 2}]]) == expected


def test_legacy_with_one_statement_gives_its_rows():
    assert sql.collect("legacy", [[{"a": 1}]]) == [{"a": 1}]


def test_values_render_as_pg_cell_to_json_value_does():
    """Windmill: pg_cell_to_json_value: chrono's Display for timestamps (UTC for timestamptz), numeric
    through rust_decimal's serde (a string), bytea as \\x hex, uuid as text, NaN not JSON (null)."""
    zone = datetime.timezone(datetime.timedelta(hours=2))
    assert sql.to_json(datetime.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05"
    assert sql.to_json(datetime.datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=zone)) == "2024-01-02 01:04:05.120 UTC"
    assert sql.to_json(datetime.time(1, 2, 3, 5)) == "01:02:03.000005"
    assert sql.to_json(datetime.date(2024, 1, 2)) == "2024-01-02"
    assert sql.to_json(decimal.Decimal("1.50")) == "1.50"
    assert sql.to_json(b"\x01\xff") == "\\x01ff"
    assert sql.to_json(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert sql.to_json(float("nan")) is None
    assert sql.to_json([1, {"k": decimal.Decimal("2")}]) == [1, {"k": "2"}]


def test_arguments_take_defaults_and_bytea_base64():
    args = sql.signature("postgresql", "-- $1 n (int) = 4\n-- $2 raw (bytea)\nSELECT $1, $2")
    values = sql.arguments({"raw": "AQI="}, args)
    assert values == {"n": 4, "raw": "AQI="}
    assert sql.bound_value(args[1], values["raw"]) == b"\x01\x02"
    with pytest.raises(sql.SqlStepError, match="raw"):
        sql.bound_value(args[1], "not base64!")


def test_database_line_names_a_resource():
    """Windmill: parse_db_resource reads `-- database PATH`."""
    assert sql.database_path("-- database f/env/pg\nSELECT 1") == "f/env/pg"
    assert sql.database_path("SELECT 1") is None


def test_launch_runs_the_sql_wrapper_with_the_dialect(tmp_path: Path):
    request = StepRequest(key="q/1", language="postgresql", code="SELECT 1", workdir=str(tmp_path))
    launch = plan(request, "python3", wrappers=Path("/w"))
    assert launch.argv == ["python3", "/w/sql.py", "postgresql"]
    assert launch.files["main.sql"] == "SELECT 1"


def test_a_sql_step_pod_runs_the_sql_wrapper_on_the_python_image():
    """In the cluster the SQL wrapper runs on the python image (or runtime.images[<dialect>])."""
    from millrace.cluster.jobs import RunMeta, runtime_config_map, step_objects
    from millrace.engine.actions import RunStep
    from millrace.model.resources import Runtime

    step = RunStep(path="q", attempt=1, step_id="q", language="postgresql", code="SELECT 1", args={})
    meta = RunMeta(namespace="ns", run="r", run_uid="u", flow="f", api_url="http://127.0.0.1:1")
    secret, job = step_objects(meta, step, "token")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "python:3.12-slim"
    assert container["command"][-3:] == ["python3", "/millrace/wrappers/sql.py", "postgresql"]
    assert secret["stringData"]["files..main.sql"] == "SELECT 1"
    runtime = runtime_config_map("ns")["data"]
    assert "wrappers..sql.py" in runtime and "sdk..millrace_sql.py" in runtime
    custom = RunMeta(namespace="ns", run="r", run_uid="u", flow="f", api_url="http://127.0.0.1:1",
                     runtime=Runtime(images={"postgresql": "registry.local/python-psycopg:3.12"}))
    assert step_objects(custom, step, "t")[1]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/python-psycopg:3.12"


@pytest.mark.parametrize("code", ["-- s3 format=csv\nSELECT 1", "-- %%table%% a/b\nSELECT * FROM %%table%%",
                                  "-- prepare\nSELECT 1"])
def test_windmill_features_not_supported_are_refused(code: str):
    with pytest.raises(sql.SqlStepError, match="not supported"):
        sql.refuse_unsupported(code)
