"""The demo dealer: deterministic data, two nights with real changes, a safe folder policy."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

import keyservices
from keyservices.demodb import build_demo_db
from keyservices.erp.profile import DEFAULT_PROFILE
from keyservices.errors import ConfigError

AS_OF = dt.date(2026, 11, 24)


def digest(path: Path) -> str:
    engine = sa.create_engine(f"sqlite:///{path.as_posix()}")
    h = hashlib.sha256()
    with engine.connect() as conn:
        for table in sorted(sa.inspect(conn).get_table_names()):
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY 1')):
                h.update(repr(tuple(row)).encode())
    engine.dispose()
    return h.hexdigest()


def test_demo_db_is_deterministic_and_has_the_profile_schema(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "c.sqlite"
    summary = build_demo_db(a, customers=400, seed=7, as_of=AS_OF)
    build_demo_db(b, customers=400, seed=7, as_of=AS_OF)
    build_demo_db(c, customers=400, seed=8, as_of=AS_OF)
    assert digest(a) == digest(b) != digest(c)
    assert summary.customers == 400 and summary.locations > 0
    active = summary.customers - summary.inactive - summary.prospects
    assert 0.03 <= summary.no_configuration / active <= 0.12
    assert summary.configuration_without_attribute > 0 and summary.free_licences > 0
    engine = sa.create_engine(f"sqlite:///{a.as_posix()}")
    inspector = sa.inspect(engine)
    for logical, spec in DEFAULT_PROFILE.items():
        columns = {col["name"] for col in inspector.get_columns(spec["table"])}
        assert set(spec["columns"].values()) <= columns, logical
    with engine.connect() as conn:
        dupes = conn.execute(sa.text(
            'SELECT COUNT(*) FROM (SELECT "CustomerID", "ShAttributeID" FROM '
            '"ARCustomerCustomProperties" GROUP BY 1, 2 HAVING COUNT(*) > 1) d')).scalar()
        orphans = conn.execute(sa.text(
            'SELECT COUNT(*) FROM "ARCustomers" l LEFT JOIN "ARCustomers" p '
            'ON p."CustomerID" = l."LocationID" WHERE l."LocationID" IS NOT NULL '
            'AND p."CustomerID" IS NULL')).scalar()
    engine.dispose()
    assert dupes == 0 and orphans == 0


def test_demo_db_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "erp.sqlite"
    build_demo_db(path, customers=20, as_of=AS_OF)
    with pytest.raises(ConfigError, match="already exists; choose another --out or use --force"):
        build_demo_db(path, customers=20, as_of=AS_OF)


def test_demo_runs_two_nights_with_real_added_and_removed(tmp_path: Path) -> None:
    result = keyservices.demo(tmp_path / "demo", customers=600, as_of=AS_OF)
    night1, night2 = result.nights
    assert night1.baseline and night1.counts.written > 0
    assert not night2.baseline and night2.counts.written == night2.counts.changed > 0
    assert any(ch.added for ch in night2.changes) and any(ch.removed for ch in night2.changes)
    assert night1.statements == night2.statements
    msg = email.message_from_bytes(night2.digest_eml.read_bytes(), policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "SERVICES ADDED AND REMOVED" in text and "WHO TO CALL FIRST" in text
    assert f"+{len(night2.opportunities) - 25} more, ranked lower" in text
    assert night2.changes[0].number in text
    assert sorted(p.name for p in result.outbox.iterdir()) == sorted(
        [night1.digest_eml.name, night1.digest_html.name, night2.digest_eml.name,
         night2.digest_html.name])


def test_demo_again_in_the_same_folder_starts_fresh(tmp_path: Path) -> None:
    first = keyservices.demo(tmp_path / "demo", customers=60, as_of=AS_OF)
    again = keyservices.demo(tmp_path / "demo", customers=60, as_of=AS_OF)
    assert not first.replaced and again.replaced
    assert again.nights[0].baseline and again.nights[0].run_id == 1


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(ConfigError, match="not empty and was not made by 'keyservices demo'"):
        keyservices.demo(tmp_path, customers=20, as_of=AS_OF)
    assert (tmp_path / "mine.txt").read_text(encoding="utf-8") == "precious"


def test_explain_answers_for_every_demo_customer(tmp_path: Path) -> None:
    result = keyservices.demo(tmp_path / "demo", customers=80, as_of=AS_OF)
    config = keyservices.load_config(result.config)
    engine = sa.create_engine(f"sqlite:///{result.database.as_posix()}")
    with engine.connect() as conn:
        numbers = conn.execute(sa.text('SELECT "CustomerNumber" FROM "ARCustomers"')).scalars().all()
    engine.dispose()
    assert len(numbers) == 80
    for number in numbers:
        e = keyservices.explain(config, number, as_of=AS_OF + dt.timedelta(days=1))
        assert e.records and all(len(r["verdicts"]) == 4 for r in e.records)
