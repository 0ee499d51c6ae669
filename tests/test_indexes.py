"""``check --suggest-indexes``: advice for the DBA, in the ERP's dialect, never executed."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from keyservices.cli import cli
from keyservices.erp import ErpTables
from keyservices.erp.indexes import IndexAdvice, create_statement
from tests.conftest import ErpBuilder


def _schema_objects(erp: ErpBuilder) -> list[tuple]:
    with erp.engine.connect() as conn:
        return conn.execute(sa.text("SELECT type, name FROM sqlite_master ORDER BY 1, 2")).all()


def test_suggests_only_missing_indexes_and_creates_none(erp: ErpBuilder, config_for,
                                                        runner) -> None:
    config = config_for(erp)
    before = _schema_objects(erp)
    result = runner.invoke(cli, ["check", "-c", str(config.config_path), "--suggest-indexes"])
    assert result.exit_code == 0, result.output
    assert 'CREATE INDEX "IX_KS_GL_DETAIL_DATE" ON "GLDetail" ("TransactionDate", "CustomerID", '\
        '"GLID", "Amount");' in result.output
    assert _schema_objects(erp) == before  # advice only: nothing was created
    with erp.engine.begin() as conn:  # the DBA adds an index leading on the date
        conn.execute(sa.text('CREATE INDEX dba_gl ON "GLDetail" ("TransactionDate", "GLID")'))
    again = runner.invoke(cli, ["check", "-c", str(config.config_path), "--suggest-indexes"])
    assert again.exit_code == 0 and "GLDetail" not in again.output
    assert "SCContracts" in again.output  # the others are still advised


def test_sql_server_gets_included_columns() -> None:
    advice = IndexAdvice("gl_detail", ("date",), ("customer_id", "account_id", "amount"), "why")
    sql = create_statement(advice, ErpTables(schema="dbo"), mssql.dialect())
    assert sql == ("CREATE INDEX [IX_KS_GL_DETAIL_DATE] ON dbo.[GLDetail] ([TransactionDate]) "
                   "INCLUDE ([CustomerID], [GLID], [Amount]);")
