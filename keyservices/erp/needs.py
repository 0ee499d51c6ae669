"""Which of the profile's tables and columns a rule set reads, so ``check`` and a failed run can
tell a missing table (a setup problem) from an outage."""

from __future__ import annotations

from ..rules import RuleSet


def needed_tables(rules: RuleSet) -> list[str]:
    """The profile tables this rule set reads (and so must exist)."""
    needed = ["customers", "sales_reps", "branches", "attributes", "custom_properties",
              "model_categories"]
    if rules.industry_source == "customer_type":
        needed.append("customer_types")
    if rules.all_sections("equipment"):
        needed += ["equipment", "models"]
    if rules.all_sections("contracts"):
        needed += ["contracts", "contract_codes", "bill_codes"]
    if rules.uses_contract_statuses():
        needed.append("contract_statuses")
    if rules.uses_item_categories():
        needed.append("item_categories")
    if rules.all_sections("gl"):
        needed += ["gl_detail", "gl_accounts"]
    if rules.all_sections("items_sold"):
        needed += ["invoices", "invoice_lines", "items", "models"]
    return list(dict.fromkeys(needed))


def unused_columns(rules: RuleSet) -> set[tuple[str, str]]:
    """Optional profile columns that this rule set does not read (so need not exist)."""
    unused = {("customers", "decision_contact_id")}  # only the opportunity export reads it
    if not rules.uses_transaction_types():
        unused.add(("gl_detail", "transaction_type"))
    if not rules.uses_contract_statuses():
        unused.add(("contracts", "status_id"))
    if not rules.uses_item_categories():
        unused.add(("items", "item_category_id"))
    return unused
