"""Name filters ignore case in every language: ``opportunity list --owner "zoë lambert"`` finds
Zoë Lambert's opportunities on SQLite (whose upper() knows ASCII only) as on PostgreSQL, and the
exports' --owner filter agrees with it (issue #27)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyservices.calls.lifecycle import OpportunityRecord
from keyservices.cli import cli
from keyservices.commands.export import export_alerts, export_opportunities
from keyservices.config import load_config
from keyservices.state import StateStore
from keyservices.state.opportunities import folded

from .conftest import postgres_erp, write_config
from .names_dealer import NIGHT2, build

DAY = dt.date(2026, 11, 24)
OWNERS = {1: "Zoë Lambert", 2: "Łukasz Żółw", 3: "Dana Rep", 4: "Jürgen Straße"}


def record(cid: int, number: str, owner: str) -> OpportunityRecord:
    return OpportunityRecord(customer_id=cid, service_code="MIT", customer_number=number,
                             customer_name=f"Name {number}", branch="Main", owner=owner,
                             status="open", priority="High", score=80.0, reason="typical",
                             first_seen=DAY, last_seen=DAY)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """A state store on SQLite and on a real PostgreSQL server, holding four opportunities."""
    if request.param == "sqlite":
        url = f"sqlite:///{(tmp_path / 'state.sqlite').as_posix()}"
        s = StateStore(url)
        yield from _filled(s)
    else:
        for builder in postgres_erp(request.getfixturevalue("pg_server")):
            yield from _filled(StateStore(builder.url))


def _filled(s: StateStore) -> Iterator[StateStore]:
    s.save_opportunities([record(cid, f"Çafé{cid:02d}", owner) for cid, owner in OWNERS.items()])
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize(("owner", "expected"), [
    ("Zoë Lambert", [1]),
    ("ZOË LAMBERT", [1]),
    ("zoë lambert", [1]),
    ("Zoe\u0308 Lambert", [1]),  # "ë" typed as "e" and a combining diaeresis
    ("  zoë lambert ", [1]),
    ("ŁUKASZ ŻÓŁW", [2]),
    ("JÜRGEN STRASSE", [4]),
    ("Zoe Lambert", []),  # an accent is a different letter, not a case
])
def test_the_owner_filter_ignores_case_beyond_ascii(store: StateStore, owner: str,
                                                    expected: list[int]) -> None:
    assert [r.customer_id for r in store.list_opportunities(owner=owner)] == expected


def test_customer_and_service_filters_ignore_case_beyond_ascii(store: StateStore) -> None:
    for number in ("ÇAFÉ03", "çafé03", "Çafé03"):
        assert [r.customer_id for r in store.list_opportunities(customer_number=number)] == [3]
    assert len(store.list_opportunities(service="mit", status="open")) == 4
    assert store.list_opportunities(owner="zoë lambert", status="won") == []


def test_opportunity_list_owner_finds_a_non_ascii_name_in_any_case(tmp_path: Path) -> None:
    path = write_config(tmp_path, f"sqlite:///{(tmp_path / 'erp.sqlite').as_posix()}")
    s = StateStore(load_config(path).state_url)
    s.save_opportunities([record(cid, f"C{cid:03d}", owner) for cid, owner in OWNERS.items()])
    s.close()
    result = CliRunner().invoke(cli, ["opportunity", "list", "--owner", "ZOË LAMBERT", "-c",
                                      str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert [r["owner"] for r in json.loads(result.stdout)] == ["Zoë Lambert"]


def test_the_exports_owner_filter_compares_names_the_same_way(tmp_path: Path) -> None:
    """The names dealer's rep Zoë Lambert, asked for in capitals and with a combining accent."""
    config = load_config(build(tmp_path / "dealer"))
    count = export_opportunities(config, owner="Zoë Lambert", as_of=NIGHT2).count
    assert count > 0
    for spelled in ("ZOË LAMBERT", "zoe\u0308 lambert"):
        assert export_opportunities(config, owner=spelled, as_of=NIGHT2).count == count
    _, n = export_alerts(config, owner="Zoë Lambert", as_of=NIGHT2)
    assert n > 0 and export_alerts(config, owner="zoe\u0308 LAMBERT", as_of=NIGHT2)[1] == n


def test_folded_names() -> None:
    assert folded("Zoë") == folded("ZOË") == folded("Zoe\u0308") == "zoë"
    assert folded("Straße") == folded("STRASSE")
    assert folded(None) == ""
