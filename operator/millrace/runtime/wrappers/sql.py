"""millrace step wrapper for SQL: run ./main.sql with ./args.json against a database, as Windmill does.

`python3 sql.py DIALECT` (postgresql, mysql or duckdb) in the step's
directory. It needs the dialect's driver importable: psycopg for postgresql,
PyMySQL for mysql, duckdb for duckdb (millrace's own dependencies locally; in
a pod the image must have them). The rules of the script (arguments,
statements, result shape, JSON values) are in ../sdk/millrace_sql.py; the
outcome goes to the step API through the python3 wrapper's report().

The database is the `database` argument, a resource value ({host, port,
user, password, dbname, sslmode} for postgresql, Windmill's PgDatabase;
{host, port, user, password, database, ssl} for mysql), or the resource a
`-- database PATH` line names. duckdb runs in memory, or on the file the
`database` argument names ({"path": ...} or a string).
"""

import json
import sys
import traceback
from typing import Any, Dict, List

from python3 import ARGS, failure, report  # noqa: E402  (the python3 wrapper beside this file puts ../sdk on sys.path)

import millrace_sql as sql  # noqa: E402
import wmill  # noqa: E402

SCRIPT = "main.sql"


def database(code: str, args: Dict[str, Any]) -> Any:
    path = sql.database_path(code)
    if path is not None:
        return wmill.get_resource(path)
    return args.get("database")


def postgresql(code: str, args: Dict[str, Any], declared: List[sql.Arg], values: Dict[str, Any]) -> List[List[Dict[str, Any]]]:
    import psycopg
    from psycopg.types.string import TextLoader

    resource = database(code, args)
    if not isinstance(resource, dict) or "host" not in resource or "dbname" not in resource:
        raise sql.SqlStepError("Missing database argument: a postgresql resource {host, port, user, password, dbname, sslmode}")
    # Windmill's PgDatabase defaults: user postgres, no password, port 5432, sslmode prefer.
    with psycopg.connect(host=resource["host"], port=int(resource.get("port") or 5432),
                         user=resource.get("user") or "postgres", password=resource.get("password") or "",
                         dbname=resource["dbname"], sslmode=resource.get("sslmode") or "prefer",
                         autocommit=True, cursor_factory=psycopg.RawCursor) as connection:
        for text_type in ("interval", "timetz", "inet", "cidr", "money"):
            connection.adapters.register_loader(text_type, TextLoader)  # Windmill renders these as the server's text
        results = []
        with connection.cursor() as cursor:
            for block in sql.statements(code):
                query, params = sql.pg_statement(block, declared, values)
                cursor.execute(query, [jsonb(arg, value) for arg, value in params])
                results.append(rows(cursor))
        return results


def jsonb(arg: sql.Arg, value: Any) -> Any:
    """json/jsonb arguments go as JSON documents, the way convert_val boxes a serde Value."""
    if arg.otyp in ("json", "jsonb") and value is not None:
        from psycopg.types.json import Jsonb
        return Jsonb(value)
    return value


def rows(cursor: Any) -> List[Dict[str, Any]]:
    if cursor.description is None:
        return []  # a statement that returns no rows
    columns = [column[0] for column in cursor.description]
    return [sql.row_object(columns, row) for row in cursor.fetchall()]


def mysql(code: str, args: Dict[str, Any], declared: List[sql.Arg], values: Dict[str, Any]) -> List[List[Dict[str, Any]]]:
    import pymysql

    resource = database(code, args)
    if not isinstance(resource, dict) or "host" not in resource:
        raise sql.SqlStepError("Missing database argument: a mysql resource {host, port, user, password, database}")
    named = sql.mysql_named(code)
    connection = pymysql.connect(host=resource["host"], port=int(resource.get("port") or 3306),
                                 user=resource.get("user") or "root", password=resource.get("password") or "",
                                 database=resource.get("database"), autocommit=True)
    with connection, connection.cursor() as cursor:
        results = []
        for block in sql.statements(code):
            query, params = sql.mysql_statement(block, declared, values, named)
            cursor.execute(query, params)
            results.append(rows(cursor))
        return results


def duckdb(code: str, args: Dict[str, Any], declared: List[sql.Arg], values: Dict[str, Any]) -> List[List[Dict[str, Any]]]:
    import duckdb as driver

    target = args.get("database")
    path = target.get("path") if isinstance(target, dict) else target
    if isinstance(path, str) and path.startswith("datatable://"):
        raise sql.SqlStepError("datatable:// databases are not supported by millrace's SQL steps")
    connection = driver.connect(path if isinstance(path, str) and path else ":memory:")
    try:
        results = []
        for block in sql.statements(code):
            cursor = connection.execute(block, sql.duckdb_statement(block, declared, values))
            results.append(rows(cursor))
        return results
    finally:
        connection.close()


RUNNERS = {"postgresql": postgresql, "mysql": mysql, "duckdb": duckdb}


def run_step(dialect: str) -> str:
    with open(SCRIPT, encoding="utf-8") as stream:
        code = stream.read()
    with open(ARGS, encoding="utf-8") as stream:
        args = json.load(stream, strict=False)
    try:
        sql.refuse_unsupported(code)
        declared = sql.signature(dialect, code)
        result = sql.collect(sql.strategy(code), RUNNERS[dialect](code, args, declared, sql.arguments(args, declared)))
        return json.dumps({"ok": True, "result": result}, separators=(",", ":"))
    except Exception as error:
        # The server's message is the error's text; Windmill reports it as an execution error.
        return failure(type(error).__name__, str(error).strip(), traceback.format_exc())


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    report(run_step(sys.argv[1]))


if __name__ == "__main__":
    main()
