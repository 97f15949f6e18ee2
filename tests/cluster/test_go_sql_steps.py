"""Go and SQL steps through the operator, each a Job in the image its language runs in.

The node agent has no images: the test cluster's `--image` folders stand for
them (scripts/cluster/cluster.py): the default Go image is this machine's Go
toolchain, and `SQL_IMAGE`, which the flows name in `spec.runtime.images`
as docs/architecture.md tells users to, is a Python with the SQL drivers.
PostgreSQL and MariaDB are the real servers of the local tests (tests/local/databases.py).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from millrace.runtime.languages import DEFAULT_IMAGES

from .conftest import Operator, installed_operator, load_cluster_script
from .test_operator import flow_manifest, labelled, run_manifest, wait_phase

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
SQL_IMAGE = load_cluster_script().SQL_IMAGE


def _databases() -> Any:
    spec = importlib.util.spec_from_file_location("millrace_test_databases", REPO / "tests" / "local" / "databases.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def operator(kube: Any, helm: Any, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    with installed_operator(kube, helm, namespace, tmp_path) as op:
        yield op


@pytest.fixture(scope="module")
def postgres_resource() -> Iterator[dict[str, Any]]:
    with _databases().postgres() as resource:
        yield resource


@pytest.fixture(scope="module")
def mysql_resource() -> Iterator[dict[str, Any]]:
    with _databases().mariadb() as resource:
        yield resource


def static(value: Any) -> dict[str, Any]:
    return {"type": "static", "value": value}


def step(step_id: str, language: str, code: str, **transforms: str | dict[str, Any]) -> dict[str, Any]:
    """A rawscript step; a transform given as a string is an expression."""
    inputs = {name: {"type": "javascript", "expr": t} if isinstance(t, str) else t for name, t in transforms.items()}
    return {"id": step_id, "value": {"type": "rawscript", "language": language, "content": code, "input_transforms": inputs}}


def step_image(kube: Any, namespace: str, run: str, step_id: str) -> str:
    jobs = kube.list("jobs", namespace, f"millrace.dev/run={run},millrace.dev/step={step_id}")
    assert len(jobs) == 1, jobs
    return str(jobs[0]["spec"]["template"]["spec"]["containers"][0]["image"])


GO = """\
package inner

import "fmt"

type Point struct { X, Y int }

func main(x int, names []string, p Point) (interface{}, error) {
	fmt.Println("hello from go")
	return map[string]interface{}{"double": x * 2, "n": len(names), "sum": p.X + p.Y}, nil
}
"""


# A first build compiles the standard library into the pod's empty Go cache: minutes on a loaded machine.
@pytest.mark.timeout(1500)
def test_a_go_step_builds_and_runs_in_the_default_go_image(kube: Any, namespace: str, operator: Operator) -> None:
    go = step("double", "go", GO, x="flow_input.x", names=static(["a", "b"]), p=static({"X": 1, "Y": 2}))
    kube.apply(flow_manifest("gosteps", [go]), namespace)
    kube.apply(run_manifest("gosteps-1", "gosteps", {"x": 21}), namespace)
    status = wait_phase(kube, namespace, "gosteps-1", timeout=1200)
    assert status["phase"] == "Succeeded", status
    assert status["result"] == {"double": 42, "n": 2, "sum": 3}
    assert step_image(kube, namespace, "gosteps-1", "double") == DEFAULT_IMAGES["go"]
    pod = kube.list("pods", namespace, "millrace.dev/run=gosteps-1,millrace.dev/step=double")[0]
    assert "hello from go" in kube.logs(namespace, pod["metadata"]["name"])


PG_CREATE = "CREATE TABLE items (id serial PRIMARY KEY, name text, price numeric(8,2), seen timestamptz);"
PG_INSERT = """\
-- $1 name
-- $2 price (numeric)
INSERT INTO items (name, price, seen) VALUES ($1::text, $2, '2024-01-02 03:04:05.250+02') RETURNING id, name;
"""
PG_SELECT = "-- $1 wanted\nSELECT name, price, seen FROM items WHERE name = $1::text;\n"
DUCKDB = "-- $rows (integer)\nSELECT range AS n, range * range AS square FROM range($rows);\n"


def test_postgresql_and_duckdb_steps_query_from_their_image(kube: Any, namespace: str, operator: Operator,
                                                            postgres_resource: dict[str, Any]) -> None:
    kube.apply(labelled("resource", "f/db/pg", {"value": json.dumps(postgres_resource)}), namespace)
    db = static("$res:f/db/pg")
    flow = flow_manifest("sqlsteps", [
        step("create", "postgresql", PG_CREATE, database=db),
        step("insert", "postgresql", PG_INSERT, database=db, name=static("lamp"), price=static(12.5)),
        step("select", "postgresql", PG_SELECT, database=db, wanted="results.insert[0].name"),
        step("squares", "duckdb", DUCKDB, rows="results.select.length + 2"),
        step("missing", "postgresql", "SELECT * FROM no_such_table;", database=db),
    ])
    flow["spec"]["runtime"] = {"images": {"postgresql": SQL_IMAGE, "duckdb": SQL_IMAGE}}
    kube.apply(flow, namespace)
    kube.apply(run_manifest("sqlsteps-1", "sqlsteps"), namespace)
    status = wait_phase(kube, namespace, "sqlsteps-1", timeout=300)
    steps = status["steps"]
    assert set(steps) >= {"create", "insert", "select", "squares", "missing"}, status
    assert steps["insert"]["result"] == [{"id": 1, "name": "lamp"}], status
    assert steps["select"]["result"] == [{"name": "lamp", "price": "12.50", "seen": "2024-01-02 01:04:05.250 UTC"}]
    assert steps["squares"]["result"] == [{"n": 0, "square": 0}, {"n": 1, "square": 1}, {"n": 2, "square": 4}]
    # A failing query names its step and carries the server's message.
    assert status["phase"] == "Failed" and status["error"]["step_id"] == "missing", status
    assert status["error"]["name"] == "UndefinedTable" and 'relation "no_such_table" does not exist' in status["error"]["message"]
    assert {step_image(kube, namespace, "sqlsteps-1", s) for s in ("create", "squares", "missing")} == {SQL_IMAGE}


MY_NAMED = """\
-- :name (varchar)
-- :qty (int)
CREATE TABLE IF NOT EXISTS stock (name varchar(20), qty int, at datetime);
INSERT INTO stock VALUES (:name, :qty, '2024-01-02 03:04:05');
SELECT name, qty, qty * 100 / 100 AS ratio, at FROM stock WHERE name = :name;
"""


def test_a_mysql_step_queries_mariadb_from_its_image(kube: Any, namespace: str, operator: Operator,
                                                     mysql_resource: dict[str, Any]) -> None:
    kube.apply(labelled("resource", "f/db/my", {"value": json.dumps(mysql_resource)}), namespace)
    db = static("$res:f/db/my")
    flow = flow_manifest("mysteps", [
        step("stock", "mysql", MY_NAMED, database=db, name=static("bolt"), qty="flow_input.qty"),
        step("missing", "mysql", "SELECT * FROM no_such_table;", database=db),
    ])
    flow["spec"]["runtime"] = {"images": {"mysql": SQL_IMAGE}}
    kube.apply(flow, namespace)
    kube.apply(run_manifest("mysteps-1", "mysteps", {"qty": 3}), namespace)
    status = wait_phase(kube, namespace, "mysteps-1", timeout=300)
    assert status["steps"]["stock"]["result"] == [{"name": "bolt", "qty": 3, "ratio": "3.0000", "at": "2024-01-02 03:04:05"}], status
    assert status["phase"] == "Failed" and status["error"]["step_id"] == "missing", status
    assert status["error"]["name"] == "ProgrammingError" and "no_such_table" in status["error"]["message"], status
    assert step_image(kube, namespace, "mysteps-1", "stock") == SQL_IMAGE
