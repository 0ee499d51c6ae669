"""The report's figures by column: the same matrices and annual values as per customer.

At a million customers the report made an object and a mapping for every in-scope customer
(about 5 s above its night); these tests pin that reading columns gives the same figures, float
for float, as the per-customer way it replaced.
"""

from __future__ import annotations

import pytest

import keyservices
from keyservices import night
from keyservices.calls.wonlost import annual_book, annual_values
from keyservices.demodb import build_demo_db
from keyservices.outputs.report import DIMENSIONS, penetration_matrix

from .conftest import AS_OF, write_config


@pytest.fixture(scope="module")
def tonight(tmp_path_factory: pytest.TempPathFactory) -> night.Night:
    folder = tmp_path_factory.mktemp("report-demo")
    build_demo_db(folder / "erp.sqlite", customers=800, seed=5, as_of=AS_OF)
    config = keyservices.load_config(write_config(folder, f"sqlite:///{folder / 'erp.sqlite'}"))
    with night.open_erp(config) as erp:
        return night.compute(config, AS_OF, erp=erp, calls=False)


@pytest.mark.parametrize("by", DIMENSIONS)
def test_a_matrix_from_the_columns_is_the_one_from_objects(tonight: night.Night, by: str) -> None:
    table = tonight.facts.customers
    services = tonight.classification.services
    names = tonight.rules.service_names()
    objects = {cid: table[cid] for cid in services}  # a plain mapping: the per-object way
    from_columns = penetration_matrix(table, services, names, by)  # type: ignore[arg-type]
    assert from_columns == penetration_matrix(objects, services, names, by)  # type: ignore[arg-type]
    assert len(from_columns.rows) > 1 and from_columns.total.customers == len(services)


def test_the_annual_book_is_the_sum_of_each_customers_values(tonight: night.Night) -> None:
    classification, facts, values = tonight.classification, tonight.facts, tonight.values
    assert values is not None
    worth = annual_values(classification, facts, values)
    want: dict[str, float] = {}
    for cid, codes in classification.services.items():  # the per-customer way it replaced
        mine = worth.get(cid)
        if mine:
            for code in codes:
                want[code] = want.get(code, 0.0) + mine.get(code, 0.0)
    got = annual_book(classification, facts, values)
    assert got == want  # the same floats, not only close ones
    assert any(v > 0 for v in got.values())


def test_an_unknown_dimension_is_still_refused(tonight: night.Night) -> None:
    with pytest.raises(ValueError, match="unknown dimension"):
        penetration_matrix(tonight.facts.customers, tonight.classification.services,
                           tonight.rules.service_names(), "colour")  # type: ignore[arg-type]
