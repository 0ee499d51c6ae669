"""A synthetic, e-automate-shaped dealer database, deterministic for a given seed and date.

The demo, the tests and the benchmarks need a realistic ERP without a dealer's data: parents and
locations, copiers and printers and PCs and water coolers in the field, contracts for the four key
services, items sold (including the zero-cost licence trap) and years of GL revenue; customers
without the custom-property configuration; awkward names. Table and column names follow
``profile.DEFAULT_PROFILE`` plus the other e-automate columns that make it look real.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..errors import ConfigError
from . import revisions
from .adoption import Company, adopt
from .bulk import flush as _flush
from .schema import (
    ATTRIBUTE_ID,
    AWKWARD_NAMES,
    BILL_CODES,
    BRANCHES,
    CATEGORIES,
    CONFIG_LEGACY,
    CONFIG_STANDARD,
    CONTRACT_CODES,
    COPIERS,
    DM_SOFTWARE,
    FIRST_NAMES,
    GL_ACCOUNTS,
    INDUSTRIES,
    IT_GEAR,
    ITEM_CATEGORIES,
    LAST_NAMES,
    NAME_SUFFIXES,
    NAME_WORDS,
    OTHER,
    PRINTERS,
    REPS,
    build_metadata,
    demo_indexes,
    item_category_of,
    name_prefix,
)


@dataclass
class DemoSummary:
    customers: int = 0
    parents: int = 0
    locations: int = 0
    equipment: int = 0
    contracts: int = 0
    gl_lines: int = 0
    invoice_lines: int = 0
    no_configuration: int = 0
    configuration_without_attribute: int = 0
    inactive: int = 0
    prospects: int = 0
    free_licences: int = 0
    url: str = ""
    contract_lines: int = 0  # SCContractDetails: machines on a contract
    adopted: int = 0  # services taken up and fleets put on contract in the last two years


@dataclass
class NextDaySummary:
    contracts_ended: int = 0
    contracts_started: int = 0
    equipment_removed: int = 0
    gl_lines_added: int = 0
    invoices_added: int = 0
    free_licences_added: int = 0


@dataclass
class _Ids:
    """Sequential ids per table, so the data does not depend on the database's identity columns."""

    counters: dict[str, int] = field(default_factory=dict)

    def next(self, table: str) -> int:
        self.counters[table] = self.counters.get(table, 0) + 1
        return self.counters[table]


class _Generator:
    """Produces rows table by table; every random choice comes from one seeded RNG."""

    def __init__(self, *, customers: int, seed: int, as_of: dt.date) -> None:
        self.n = customers
        self.rng = random.Random(seed)
        self.day = dt.datetime.combine(as_of, dt.time())
        self.ids = _Ids()
        self.summary = DemoSummary()
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.model_ids: dict[str, list[int]] = {}
        self.item_ids: dict[str, list[int]] = {}
        self.companies: list[Company] = []
        self.first_terms: dict[int, revisions.FirstTerm] = {}  # contract id -> (revisions)
        self.installed: dt.datetime = self.day  # the install date of the last machine made

    def emit(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def days_ago(self, lo: int, hi: int) -> dt.datetime:
        return self.day - dt.timedelta(days=self.rng.randint(lo, hi))

    def reference(self) -> None:
        for i, name in enumerate(INDUSTRIES, 1):
            self.emit("ARCustomerTypes", {"CustomerTypeID": i, "CustomerType": name,
                                          "Description": f"{name} customers"})
        for i, name in enumerate(BRANCHES, 1):
            self.emit("GLBranches", {"BranchID": i, "BranchNumber": f"{i:02d}", "Description": name})
        for i, name in enumerate(REPS, 1):
            self.emit("SHAgents", {"AgentID": i, "PrefFullName": name,
                                   "Email": name.lower().replace(" ", ".").replace("'", "")
                                   + "@demo-dealer.example"})
        for i, (code, desc) in enumerate(ITEM_CATEGORIES.items(), 1):
            self.emit("ICItemCategories", {"ItemCategoryID": i, "ItemCategory": code,
                                           "Description": desc})
        for i, code in enumerate(["ACTIVE", "PENDING", "ONHOLD", "CANCELLED"], 1):
            self.emit("SCContractStatuses", {"ContractStatusID": i, "ContractStatus": code,
                                             "Description": code.title()})
        for cat, (desc, models) in CATEGORIES.items():
            cid = self.ids.next("cat")
            self.emit("ICModelCategories", {"CategoryID": cid, "ModelCategory": cat,
                                            "Description": desc})
            for model in models:
                mid = self.ids.next("model")
                self.model_ids.setdefault(cat, []).append(mid)
                self.emit("ICModels", {"ModelID": mid, "Model": model, "CategoryID": cid})
                iid = self.ids.next("item")
                self.item_ids.setdefault(cat, []).append(iid)
                self.emit("ICItems", {"ItemID": iid, "Item": f"{cat[:10]}-{mid:04d}",
                                      "ModelID": mid, "ItemCategoryID": item_category_of(cat),
                                      "Description": model})
        for i, (code, desc) in enumerate(CONTRACT_CODES.items(), 1):
            self.emit("SCContractCodes", {"ContractCodeID": i, "ContractCode": code,
                                          "Description": desc})
        for i, (code, desc) in enumerate(BILL_CODES.items(), 1):
            self.emit("SCBillCodes", {"BillCodeID": i, "BillCode": code, "Description": desc})
        for i, (num, name) in enumerate(GL_ACCOUNTS.items(), 1):
            self.emit("GLAccounts", {"GLID": i, "AccountNumber": num, "AccountName": name})
        for aid, name, desc in [(2001, "ZCJNextReviewDue", "Next contract review"),
                                (2006, "ZCJDisable116", "Disable ID116 alert"),
                                (ATTRIBUTE_ID, "ZCJKeyServices", "Key services in use"),
                                (2050, "Industry", "Industry (free text)")]:
            self.emit("ShAttributes", {"ShAttributeID": aid, "AttributeName": name,
                                       "Description": desc, "DataType": "Text"})
        self.emit("ShTrackingConfigs", {"ShTrackingConfigID": CONFIG_STANDARD,
                                        "Description": "Customer - Standard", "GroupName": "Customer"})
        self.emit("ShTrackingConfigs", {"ShTrackingConfigID": CONFIG_LEGACY,
                                        "Description": "Customer - Legacy", "GroupName": "Customer"})

    def customers(self) -> Iterator[None]:
        """Companies (a parent and 0-5 locations) until ``n`` customer records exist; yields per
        company so the caller can flush batches."""
        made = 0
        industries = list(INDUSTRIES)
        while made < self.n:
            rng = self.rng
            industry = rng.choice(industries)
            size = 1 if rng.random() < 0.8 else 1 + rng.randint(1, 4)
            size = min(size, self.n - made)
            name = self._company_name(industry, made)
            active = rng.random() > 0.05
            prospect = active and rng.random() < 0.04
            parent = self._customer(name, industry, None, active, prospect)
            records = [parent] + [self._customer(f"{name} – Site {k}", industry, parent, active
                                                 and rng.random() > 0.05, prospect)
                                  for k in range(1, size)]
            made += size
            if not prospect:
                held, uncovered = self._services(industry, parent, records)
                if active:  # what the two years of adoption (``adoption``) start from
                    self.companies.append(Company(parent, industry, size, held, uncovered))
            yield None

    def _company_name(self, industry: str, made: int) -> str:
        rng = self.rng
        if rng.random() < 0.03:
            return rng.choice(AWKWARD_NAMES) + ("" if made < 50 else f" {made}")
        return f"{rng.choice(NAME_WORDS)} {rng.choice(NAME_SUFFIXES[industry])}"

    def _customer(self, name: str, industry: str, parent: int | None, active: bool,
                  prospect: bool) -> int:
        rng, s = self.rng, self.summary
        cid = self.ids.next("customer")
        contacts = []
        for _ in range(rng.randint(1, 3)):
            ctid = self.ids.next("contact")
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            contacts.append(ctid)
            self.emit("CMContacts", {"ContactID": ctid, "CustomerID": cid,
                                     "ContactNumber": f"CT{ctid:07d}", "FirstName": first,
                                     "LastName": last, "PrefFullName": f"{first} {last}",
                                     "Email": f"{first}.{last}@customer{cid}.example".lower()
                                     .replace("'", ""),
                                     "Phone1": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"})
        r = rng.random()
        config = None if r < 0.07 else CONFIG_LEGACY if r < 0.10 else CONFIG_STANDARD
        self.emit("ARCustomers", {
            "CustomerID": cid, "CustomerNumber": f"{name_prefix(name)}{cid:06d}",
            "CustomerName": name[:128], "LocationID": parent, "BillToID": parent or cid,
            "CustomerTypeID": list(INDUSTRIES).index(industry) + 1,
            "SalesRepID": rng.randint(1, len(REPS)), "BranchID": rng.randint(1, len(BRANCHES)),
            "Prospect": prospect, "Active": active, "Email": f"info@customer{cid}.example",
            "Phone1": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
            "City": rng.choice(["Springfield", "Shelbyville", "Capital City", "Ogdenville"]),
            "DecisionContactID": contacts[0], "ShTrackingConfigID": config})
        s.customers += 1
        s.parents += parent is None
        s.locations += parent is not None
        s.inactive += not active
        s.prospects += prospect
        if active and not prospect:
            s.no_configuration += config is None
            s.configuration_without_attribute += config == CONFIG_LEGACY
        if config is not None:
            self._property(cid, 2001, (self.day + dt.timedelta(days=rng.randint(10, 300)))
                           .date().isoformat())
            if config == CONFIG_STANDARD:
                self._property(cid, ATTRIBUTE_ID, "CPY" if rng.random() < 0.05 else None)
        return cid

    def _property(self, cid: int, attr: int, text: str | None) -> None:
        self.emit("ARCustomerCustomProperties", {
            "CustomerCustomPropertyID": self.ids.next("cp"), "CustomerID": cid,
            "ShAttributeID": attr, "TextVal": text, "Required": False})

    def _services(self, industry: str, parent: int, records: list[int]
                  ) -> tuple[frozenset[str], tuple[tuple[int, dt.datetime], ...]]:
        """The company's services, and what it ends with: the services it uses and its
        copiers on no contract (with their install dates)."""
        rng = self.rng
        p_cpy, p_mps, p_dm, p_it = INDUSTRIES[industry]
        sites = records  # equipment sits at the parent (single site) or at its locations
        held: set[str] = set()
        bare: list[tuple[int, dt.datetime]] = []
        if rng.random() < p_cpy:
            held.add("CPY")
            copiers = []
            for _ in range(rng.randint(1, 4)):
                copiers.append(self.equipment(parent, rng.choice(sites), rng.choice(COPIERS)))
                bare.append((copiers[-1], self.installed))
            if rng.random() < 0.7:
                self.cover(self.contract(rng.choice([parent] * 4 + sites),
                                         rng.choice(["COPY-MAINT", "COPY-CPC"])), copiers)
                bare = [b for b in bare if b[0] % 7 == 0]  # cover() leaves every seventh off
            elif rng.random() < 0.3:
                self.cover(self.contract(parent, "RENT-COPY"), copiers)
                bare = [b for b in bare if b[0] % 7 == 0]
            self.sale(parent, rng.choice(COPIERS), rng.uniform(3500, 18000), 60, 1500)
        if rng.random() < p_mps:
            held.add("MPS")
            mps = self.contract(parent, rng.choice(["MPS-FLEET", "MPS-CLICK"]))
            fleet = 1 if rng.random() < 0.1 else rng.randint(3, 12)  # a few too small to count
            self.cover(mps, [self.equipment(parent, rng.choice(sites), rng.choice(PRINTERS))
                             for _ in range(fleet)])
            self.gl(parent, "4200", 300, 2500, 12)
        if rng.random() < p_dm:
            held.add("DM")
            how = rng.random()
            if how < 0.4:
                self.contract(parent, rng.choice(["DM-SUB", "DM-SUPPORT"]))
            elif how < 0.8:
                self.sale(parent, rng.choice(DM_SOFTWARE), rng.uniform(400, 6000), 30, 700)
            self.gl(parent, "4150", 250, 2000, 4 if how >= 0.8 else 1)
        elif rng.random() < 0.08:  # the trap: a zero-cost, never-registered eCopy licence
            self.sale(parent, "SW-DM-ECOPY", 0.0, 30, 700)
            self.summary.free_licences += 1
        if rng.random() < p_it:
            held.add("MIT")
            if rng.random() < 0.6:
                self.contract(parent, rng.choice(["IT-MANAGED", "IT-HELPDESK"]))
            self.gl(parent, "4300", 400, 3000, rng.randint(3, 12))
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 8)):
                self.equipment(parent, rng.choice(sites), rng.choice(IT_GEAR))
            self.gl(parent, "4310", 500, 8000, 1)
        if rng.random() < 0.3:
            self.equipment(parent, rng.choice(sites), rng.choice(OTHER))
        if rng.random() < 0.2:
            self.contract(parent, "SUPPLY-ONLY")
        self.gl(parent, "4100", 100, 1500, rng.randint(2, 10))
        self.gl(parent, "4500", 50, 600, rng.randint(1, 6))
        return frozenset(held), tuple(bare)

    def equipment(self, owner: int, site: int, category: str, active: bool = True) -> int:
        eid = self.ids.next("equipment")
        self.emit("SCEquipments", {
            "EquipmentID": eid, "EquipmentNumber": f"EQ{eid:07d}",
            "SerialNumber": f"SN{self.rng.randint(10**7, 10**8 - 1)}", "CustomerID": owner,
            "LocationID": site, "ModelID": self.rng.choice(self.model_ids[category]),
            "InstallDate": (installed := self.days_ago(30, 2000)), "Active": active})
        self.installed = installed
        self.summary.equipment += 1
        return eid

    def cover(self, contract: int, machines: list[int]) -> None:
        """Contract lines (``SCContractDetails``) putting machines on a contract. Every seventh
        machine is left off, as one added to the fleet later and never put on the contract: with
        the copier customers who have no contract at all, the MIF report's "machines in the
        field without a service contract". No random draw, so the rest of the data is as it was.
        """
        term = self.first_terms.get(contract)
        for eid in machines:
            if eid % 7 and term is not None:
                term.machines.append(eid)  # its first term covered it too
            if eid % 7:
                self.emit("SCContractDetails", {"ContractDetailID": self.ids.next("detail"),
                                                "ContractID": contract, "EquipmentID": eid})
                self.summary.contract_lines += 1

    def contract(self, customer: int, code: str, start: dt.datetime | None = None) -> int:
        rng = self.rng
        kid = self.ids.next("contract")
        start = start or self.days_ago(30, 1400)
        term = rng.choice([12, 36, 48, 60])
        exp = start + dt.timedelta(days=30 * term)
        ended = exp if exp < self.day else None
        if ended is not None:  # renewed: keep most contracts running
            exp = self.day + dt.timedelta(days=rng.randint(20, 700))
        row = {
            "ContractID": kid, "ContractNumber": f"CN{kid:06d}-01", "ContractMajor": f"CN{kid:06d}",
            "ContractMinor": "01", "CustomerID": customer, "BillToID": customer,
            "ContractCodeID": list(CONTRACT_CODES).index(code) + 1,
            "BillCodeID": rng.randint(1, len(BILL_CODES)), "StartDate": start, "ExpDate": exp,
            "ExpDateInitial": exp, "Active": True, "BaseRate": round(rng.uniform(49, 1900), 2),
            "SalesRepID": rng.randint(1, len(REPS))}
        if ended is not None and revisions.in_window(self.day, ended):
            revisions.split(self.first_terms, row, start, ended)  # a new revision since then
        self.emit("SCContracts", row)
        self.summary.contracts += 1
        return kid

    def gl(self, customer: int, account: str, lo: float, hi: float, lines: int,
           within: int = 1095) -> None:
        for _ in range(lines):
            self.emit("GLDetail", {
                "GLDetailID": self.ids.next("gl"), "GLID": list(GL_ACCOUNTS).index(account) + 1,
                "CustomerID": customer, "BranchID": 1, "TransactionDate": self.days_ago(0, within),
                "TransactionType": "service invoice", "Amount": round(self.rng.uniform(lo, hi), 2),
                "Description": GL_ACCOUNTS[account]})
            self.summary.gl_lines += 1

    def sale(self, customer: int, category: str, price: float, lo: int, hi: int,
             when: dt.datetime | None = None) -> None:
        inv = self.ids.next("invoice")
        price = round(price, 2)
        self.emit("ARInvoices", {"InvoiceID": inv, "InvoiceNumber": f"IN{inv:07d}",
                                 "CustomerID": customer,
                                 "InvoiceDate": when or self.days_ago(lo, hi), "InvoiceType": "SI",
                                 "IsVoid": self.rng.random() < 0.02, "Total": price})
        self.emit("ARInvoiceDetails", {
            "InvoiceDetailID": self.ids.next("invline"), "InvoiceID": inv,
            "ItemID": self.rng.choice(self.item_ids[category]), "LineNumber": 1,
            "Description": CATEGORIES[category][1][0], "Quantity": 1, "Amount": price,
            "Cost": round(price * 0.6, 2)})
        self.summary.invoice_lines += 1


def populate(engine: sa.Engine, *, customers: int, seed: int = 42, as_of: dt.date,
             schema: str | None = None, plain_dates: bool = False,
             history: bool = True) -> DemoSummary:
    """Create the tables and load a deterministic dealer (streamed in batches); ``plain_dates``
    stores dates without a time (``build_metadata``), the data being otherwise the same;
    ``history`` adds the two years of adoption (``adoption``)."""
    md = build_metadata(schema, plain_dates=plain_dates)
    gen = _Generator(customers=customers, seed=seed, as_of=as_of)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
        md.create_all(conn)
        gen.reference()
        for _ in gen.customers():
            _flush(conn, md, gen)
        if history:  # after every company: the ids drawn above stay as they were
            adopt(gen, seed=seed)
            revisions.revise(gen, seed=seed)
        _flush(conn, md, gen, force=True)
        for index in demo_indexes(md):
            index.create(conn)
    gen.summary.url = engine.url.render_as_string(hide_password=True)
    return gen.summary


def build_demo_db(path: Path, *, customers: int, seed: int = 42, as_of: dt.date,
                  overwrite: bool = False, plain_dates: bool = False,
                  history: bool = True) -> DemoSummary:
    """A demo SQLite ERP file; refuses to replace an existing file unless ``overwrite``.

    ``plain_dates`` stores every date as 'YYYY-MM-DD' text instead of a date and time."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise ConfigError(f"{path} already exists; choose another --out or use --force "
                              "to replace it")
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{path.as_posix()}")
    try:
        return populate(engine, customers=customers, seed=seed, as_of=as_of,
                        plain_dates=plain_dates, history=history)
    finally:
        engine.dispose()


def simulate_next_day(engine: sa.Engine, *, day: dt.date, seed: int = 43,
                      schema: str | None = None, plain_dates: bool = False) -> NextDaySummary:
    """A plausible day in the ERP between two nightly runs: contracts end and start, machines
    are removed, new revenue and sales arrive. (The ERP's own writes, not the tool's.)"""
    md = build_metadata(schema, plain_dates=plain_dates)
    key = (md.schema + ".") if md.schema else ""
    t = {name[len(key):]: tbl for name, tbl in md.tables.items()}
    rng = random.Random(seed)
    today = dt.datetime.combine(day, dt.time())
    yesterday = today - dt.timedelta(days=1)
    out = NextDaySummary()
    with engine.begin() as conn:
        customers = conn.execute(sa.select(t["ARCustomers"].c.CustomerID).where(
            t["ARCustomers"].c.Active == sa.true(), t["ARCustomers"].c.Prospect == sa.false(),
            t["ARCustomers"].c.LocationID.is_(None)).order_by(t["ARCustomers"].c.CustomerID)
        ).scalars().all()
        k = t["SCContracts"]
        running = conn.execute(sa.select(k.c.ContractID).where(
            k.c.Active == sa.true(), k.c.StartDate < today,
            sa.or_(k.c.ExpDate.is_(None), k.c.ExpDate >= today)).order_by(k.c.ContractID)
        ).scalars().all()
        ending = rng.sample(running, max(1, len(running) // 50))
        for i in range(0, len(ending), 500):
            conn.execute(k.update().where(k.c.ContractID.in_(ending[i:i + 500]))
                         .values(ExpDate=yesterday))
        out.contracts_ended = len(ending)
        e = t["SCEquipments"]
        active_eq = conn.execute(sa.select(e.c.EquipmentID).where(e.c.Active == sa.true())
                                 .order_by(e.c.EquipmentID)).scalars().all()
        removed = set(rng.sample(active_eq, max(1, len(active_eq) // 100)))
        # a few customers return every machine they had (they lose Copiers)
        for cid in rng.sample(customers, max(1, len(customers) // 200)):
            removed |= set(conn.execute(sa.select(e.c.EquipmentID).where(
                e.c.CustomerID == cid, e.c.Active == sa.true())).scalars())
        removed_list = sorted(removed)
        for i in range(0, len(removed_list), 500):
            conn.execute(e.update().where(e.c.EquipmentID.in_(removed_list[i:i + 500]))
                         .values(Active=False))
        out.equipment_removed = len(removed_list)
        gen = _Generator(customers=0, seed=seed, as_of=day)
        gen.rng = rng
        for name, col in [("contract", k.c.ContractID), ("gl", t["GLDetail"].c.GLDetailID),
                          ("invoice", t["ARInvoices"].c.InvoiceID),
                          ("invline", t["ARInvoiceDetails"].c.InvoiceDetailID)]:
            gen.ids.counters[name] = conn.execute(sa.select(sa.func.max(col))).scalar() or 0
        mc, m, it = t["ICModelCategories"], t["ICModels"], t["ICItems"]
        for cat, item in conn.execute(sa.select(mc.c.ModelCategory, it.c.ItemID).select_from(
                it.join(m, m.c.ModelID == it.c.ModelID).join(mc, mc.c.CategoryID == m.c.CategoryID)
        ).order_by(it.c.ItemID)):
            gen.item_ids.setdefault(cat, []).append(item)
        starters = rng.sample(customers, max(2, len(customers) * 3 // 200))
        for cid in starters:
            gen.contract(cid, rng.choice(["IT-MANAGED", "DM-SUB", "COPY-MAINT", "IT-HELPDESK"]),
                         start=today)
        out.contracts_started = len(starters)
        for cid in rng.sample(customers, max(1, len(customers) // 100)):
            gen.gl(cid, "4300", 1500, 4000, 1, within=0)
            out.gl_lines_added += 1
        for cid in rng.sample(customers, max(1, len(customers) // 150)):
            gen.sale(cid, rng.choice(DM_SOFTWARE), rng.uniform(500, 5000), 0, 0, when=yesterday)
            out.invoices_added += 1
        for cid in rng.sample(customers, max(1, len(customers) // 400)):
            gen.sale(cid, "SW-DM-ECOPY", 0.0, 0, 0, when=yesterday)
            out.free_licences_added += 1
        for name, rows in gen.rows.items():
            if name == "ARInvoices":
                for r in rows:
                    r["IsVoid"] = False
        _flush(conn, md, gen, force=True)
    return out
