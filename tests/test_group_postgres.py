"""A dealer group with a PostgreSQL company beside three SQLite ones (#25): one night, and
whichever company fails (a missing database, a tripped guard, a value the rules cannot read),
the others are written and audited, and the exit code and ``--json`` say which and why."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.config import company_configs, load_config
from keyservices.demodb import ATTRIBUTE_ID, build_demo_db, build_metadata, populate

from .conftest import AS_OF, postgres_erp, write_config

pytestmark = pytest.mark.postgres

CUSTOMERS = 120
SQLITE = ("north", "east", "west")


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database on the session's server holding a demo dealer in a dbo schema."""
    for builder in postgres_erp(request.getfixturevalue("pg_server")):
        builder.metadata.drop_all(builder.engine)  # the demo's own tables and rows instead
        populate(builder.engine, customers=CUSTOMERS, seed=21, as_of=AS_OF, schema="dbo")
        yield builder.url


def _values(url: str, schema: str | None = None) -> dict[int, str | None]:
    """The attribute's values in a demo ERP, by customer."""
    engine = sa.create_engine(url)
    table = build_metadata(schema).tables[
        f"{schema}.ARCustomerCustomProperties" if schema else "ARCustomerCustomProperties"]
    try:
        with engine.connect() as conn:
            return {int(k): v for k, v in conn.execute(
                sa.select(table.c.CustomerID, table.c.TextVal)
                .where(table.c.ShAttributeID == ATTRIBUTE_ID))}
    finally:
        engine.dispose()


def _group(folder: Path, pg_url: str, failing: str) -> Path:
    """North, East and West on SQLite, Pg on PostgreSQL; ``failing`` says what goes wrong:
    Pg's database missing, West's change guard tripping, or East holding an amount the
    data-shape check refuses."""
    for seed, name in enumerate(SQLITE, start=31):
        build_demo_db(folder / f"{name}.sqlite", customers=CUSTOMERS, seed=seed, as_of=AS_OF)
    if failing == "shape":
        with closing(sqlite3.connect(folder / "east.sqlite")) as db, db:
            db.execute("UPDATE GLDetail SET Amount = 'twelve' WHERE GLDetailID = "
                       "(SELECT min(GLDetailID) FROM GLDetail)")
    url = sa.engine.make_url(pg_url)
    if failing == "missing":
        url = url.set(database=f"{url.database}_gone")
    companies = "".join(f"  - name: {name.title()}\n    erp: {{url: 'sqlite:///{name}.sqlite'}}\n"
                        for name in SQLITE)
    if failing == "guard":
        companies += "    write: {max_changes: 1, max_changes_percent: 'off'}\n"
    companies += (f"  - name: Pg\n    erp: {{url: '{url.render_as_string(hide_password=False)}',"
                  " schema: dbo}\n")
    return write_config(folder, "sqlite:///north.sqlite", f"parallel: 2\ncompanies:\n{companies}")


@pytest.mark.parametrize(("failing", "company", "code", "error"), [
    ("missing", "Pg", 1, None),
    ("guard", "West", 3, "GuardTripped"),
    ("shape", "East", 2, "SchemaError")])
def test_a_postgresql_company_in_the_night_and_one_company_failing(
        tmp_path: Path, pg_url: str, runner: CliRunner, failing: str, company: str, code: int,
        error: str | None) -> None:
    path = _group(tmp_path, pg_url, failing)
    urls = {name.title(): f"sqlite:///{(tmp_path / f'{name}.sqlite').as_posix()}"
            for name in SQLITE}
    urls["Pg"] = pg_url
    schemas = {"Pg": "dbo"}
    before = {name: _values(url, schemas.get(name)) for name, url in urls.items()}

    out = runner.invoke(cli, ["run", "-c", str(path), "--no-email", "--json"])
    assert out.exit_code == code, out.output
    data = json.loads(out.stdout)
    assert data["exit_code"] == code and data["failed"] == [company]
    nights = {c["company"]: c for c in data["companies"]}
    assert list(nights) == ["North", "East", "West", "Pg"]
    failed = nights[company]
    assert failed["exit_code"] == code and failed["error"]["message"]
    if error is not None:
        assert failed["error"]["type"] == error
    if failing == "missing":
        assert failed["result"] is None and "_gone" in failed["error"]["message"]
        assert "password" not in failed["error"]["message"].casefold()
    elif failing == "guard":
        assert failed["result"]["guard_message"] and failed["result"]["counts"]["written"] == 0
    else:
        assert failed["result"] is None and "GLDetail.Amount" in failed["error"]["message"]
    if failing != "missing":
        assert _values(urls[company], schemas.get(company)) == before[company]  # nothing written

    # every other company, PostgreSQL included, was written and audited in its own store
    config = load_config(path)
    by_name = {c.company_name: c for c in company_configs(config)}
    for name, night in nights.items():
        if name == company:
            continue
        assert night["exit_code"] == 0 and night["error"] is None
        written = night["result"]["counts"]["written"]
        assert written > 0
        after = _values(urls[name], schemas.get(name))
        assert sum(1 for k, v in after.items() if before[name].get(k) != v) == written
        runs = keyservices.history(by_name[name])["runs"]
        assert [(r["company"], r["status"]) for r in runs] == [(name, "done")]
        audited = keyservices.history(by_name[name], customer=None, run_id=runs[0]["id"])
        assert len(audited["changes"]) == written
    # the group's table names the company that failed and why
    table = Path(data["digest_eml"]).with_suffix(".html").read_text(encoding="utf-8")
    assert f"4 companies, 1 not written ({company})" in table
    assert failed["error"]["message"].split("\n")[0][:40] in table.replace("&#x27;", "'")
