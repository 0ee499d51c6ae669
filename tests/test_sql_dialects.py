"""Every statement the run sends to the ERP compiles for SQL Server and PostgreSQL.

No SQL Server can run here, so its SQL is compiled by SQLAlchemy's mssql dialect and checked.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql, sqlite

from keyservices.erp import ErpTables
from keyservices.erp.queries import customers_query, fact_queries
from keyservices.erp.writeback import update_statements
from keyservices.resources import example_rules_dir
from keyservices.rules import load_rules

RULES = load_rules(example_rules_dir())
CATEGORIES = ["MFP-A3-CO-03", "PRN-A4-BW", "SW-DM-ECOPY", "PC-DESKTOP"]


def statements(schema: str | None) -> dict[str, sa.Executable]:
    tables = ErpTables(schema=schema)
    out: dict[str, sa.Executable] = {"customers": customers_query(tables, RULES, 2044)}
    out.update(fact_queries(tables, RULES, CATEGORIES, dt.date(2026, 11, 24)))
    out["update_null"], out["update_text"] = update_statements(tables, 2044)
    return out


@pytest.mark.parametrize("dialect", [mssql.dialect(), postgresql.dialect(), sqlite.dialect()],
                         ids=["mssql", "postgresql", "sqlite"])
def test_all_statements_compile(dialect: sa.Dialect) -> None:
    for name, stmt in statements("dbo" if dialect.name != "sqlite" else None).items():
        sql = str(stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}))
        assert sql.strip(), name


def test_mssql_sql_reads_dbo_tables_and_binds_every_value() -> None:
    stmts = statements("dbo")
    compiled = {n: s.compile(dialect=mssql.dialect(),
                             compile_kwargs={"render_postcompile": True})
                for n, s in stmts.items()}
    assert "FROM dbo.[ARCustomers]" in str(compiled["customers"])
    gl = str(compiled["gl"])
    assert "dbo.[GLDetail]" in gl and "LIKE" in gl and "GROUP BY" in gl
    # values are parameters, never inlined text
    assert "4150" not in gl and "2026" not in gl
    assert "'COPIER'" not in str(compiled["equipment"])
    update = str(compiled["update_text"])
    assert update.startswith("UPDATE dbo.[ARCustomerCustomProperties] SET [TextVal]=")
    assert "[TextVal] = :b_before" in update and "INSERT" not in update and "DELETE" not in update


def test_queries_do_not_depend_on_the_number_of_customers() -> None:
    # the statements are built from the rules and the category list only: no customer ids
    for name, stmt in statements("dbo").items():
        params = stmt.compile(dialect=mssql.dialect()).params
        assert not any("customer" in key and isinstance(v, list) for key, v in params.items()), name


def test_only_needed_fact_kinds_are_queried() -> None:
    rules = load_rules(example_rules_dir())
    import dataclasses

    only_contracts = dataclasses.replace(
        rules, services=tuple(s for s in rules.services if s.code == "MIT"))
    names = set(fact_queries(ErpTables(), only_contracts, CATEGORIES, dt.date(2026, 1, 1)))
    assert names == {"contracts", "gl"}


def test_check_show_sql_prints_sql_server_statements_without_connecting(tmp_path) -> None:
    from click.testing import CliRunner

    from keyservices.cli import cli

    from .conftest import write_config

    path = write_config(tmp_path, "mssql+pyodbc://keyservices@erpserver/coDemo?driver=X")
    result = CliRunner().invoke(cli, ["check", "-c", str(path), "--show-sql"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "-- customers\nDECLARE @attribute_id int = (SELECT" in out
    assert "SELECT [ARCustomers].[CustomerID]" in out
    assert "UPDATE [ARCustomerCustomProperties] SET [TextVal]=@after" in out
    assert "INSERT" not in out and "DELETE" not in out
    # session, attribute, categories, 2 code lists, customers, 5 facts, the week's learning
    # (the count of inactive machines and 5 facts), contacts, the contract lines of closing
    # uncovered-machines offers, 2 updates and the read-back: each a batch
    # (tests/test_sqlserver.py parses them)
    assert out.count("\nGO\n") == 22
