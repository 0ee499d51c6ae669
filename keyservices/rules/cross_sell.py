"""Cross-sell rules: who to offer what, written by the admin beside industry typicality.

Industry typicality only finds a service most of a customer's peers use; a dealer also knows
its own plays ("copier customers without Managed IT", CEO Juice ID789's HubSpot example;
"machines in the field without a service contract", the ID923 MIF report). A rule names the
services a customer must use (``has``), the services offered (``lacks``: only to customers who
lack them; ``offer``: whatever they use, e.g. a contract for machines on none), and optionally
industries, size tiers and an equipment count (the same keys as a service's ``equipment``
section, ``on_contract`` included).

Pure: pydantic only. ``language`` imports this module (``RuleFile.cross_sell``), so it imports
nothing from there; the loader checks the service codes, tiers and model classes it names.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Pattern = Annotated[str, Field(min_length=1, max_length=64)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Units(_Closed):
    """Machines in the field: the keys of a service's ``equipment`` section."""

    model_classes: list[str] = Field([], description="model classes (from model_classes)")
    categories: list[Pattern] = Field([], description="raw dealer model categories, globs")
    min_count: int = Field(1, ge=1, description="units needed")
    active_only: bool = Field(True, description="count only active equipment")
    on_contract: bool | None = Field(
        None, description="true: only machines on an active contract; false: only machines on "
                          "none; unset: all")

    @model_validator(mode="after")
    def _needs_a_filter(self) -> Units:
        if not self.model_classes and not self.categories:
            raise ValueError("name at least one of model_classes or categories")
        return self

    def describe(self) -> str:
        """The condition as people read it, e.g. '3+ COPIER units not on a contract'."""
        what = ", ".join([*self.model_classes, *self.categories])
        cover = {True: " on an active contract", False: " on no active contract",
                 None: ""}[self.on_contract]
        state = "" if self.active_only else " (active or not)"
        return f"{self.min_count}+ {what} unit{'s' if self.min_count != 1 else ''}{state}{cover}"


class CrossSell(_Closed):
    """A cross-sell rule: customers meeting every condition are offered its services."""

    name: str = Field(min_length=1, max_length=80, description="shown in the reason and why")
    has: list[str] = Field([], description="service codes the customer uses (all of them)")
    lacks: list[str] = Field([], description="service codes offered to customers lacking them "
                                             "(one opportunity each)")
    offer: list[str] = Field([], description="service codes offered whether or not the customer "
                                             "uses them (instead of lacks)")
    industries: list[str] = Field([], description="customer industries (any case); empty: any")
    tiers: list[str] = Field([], description="customer tiers (from priority.tiers); empty: any")
    equipment: Units | None = Field(None, description="machines in the field the customer needs")
    priority: Literal["Critical", "High", "Medium", "Low"] = Field(
        "Medium", description="priority before the priority rules refine it")
    value: float | None = Field(None, ge=0, description="estimated annual value of the offer; "
                                                        "unset: the peers' median contract value")
    reason: str = Field("", max_length=200, description="why, for the rep; empty: generated "
                                                        "from the conditions")

    @model_validator(mode="after")
    def _offers_something(self) -> CrossSell:
        if bool(self.lacks) == bool(self.offer):
            raise ValueError(f"cross-sell rule {self.name!r} needs either lacks: (services "
                             "offered to customers without them) or offer: (offered anyway), "
                             "not both")
        overlap = sorted(set(self.has) & set(self.lacks))
        if overlap:
            raise ValueError(f"cross-sell rule {self.name!r} both has and lacks "
                             f"{', '.join(overlap)}")
        return self

    @property
    def offered(self) -> list[str]:
        return self.lacks or self.offer


__all__ = ["CrossSell", "Units"]
