"""The ERP schema profile: logical table/column names -> the names in the dealer's database.

Names marked [INF] in ``shared/eautomate-schema.md`` were never seen on a real e-automate database, so
every name here can be overridden in ``config.yaml`` under ``erp.profile``, table by table and column by
column. Pure data: no SQLAlchemy here, so config validation can use it cheaply.
"""

from __future__ import annotations

import copy
from typing import Any

# logical table -> {"table": physical name, "columns": {logical column -> physical column}}
DEFAULT_PROFILE: dict[str, dict[str, Any]] = {
    "customers": {  # [DB]
        "table": "ARCustomers",
        "columns": {
            "id": "CustomerID",
            "number": "CustomerNumber",
            "name": "CustomerName",
            "parent_id": "LocationID",
            "type_id": "CustomerTypeID",
            "sales_rep_id": "SalesRepID",
            "branch_id": "BranchID",
            "active": "Active",
            "prospect": "Prospect",
            "config_id": "ShTrackingConfigID",
            "created": "CreateDate",
            "decision_contact_id": "DecisionContactID",  # read only by the opportunity export
        },
    },
    "customer_types": {  # [INF] the list behind ARCustomers.CustomerTypeID (used as industry)
        "table": "ARCustomerTypes",
        "columns": {"id": "CustomerTypeID", "name": "CustomerType", "description": "Description"},
    },
    "branches": {  # [INF]
        "table": "GLBranches",
        "columns": {"id": "BranchID", "number": "BranchNumber", "name": "Description"},
    },
    "sales_reps": {  # [SQL] SHAgents; that reps are agents is [INF]
        "table": "SHAgents",
        "columns": {"id": "AgentID", "name": "PrefFullName"},
    },
    "models": {  # [SQL] ICModels; the category FK is [INF]
        "table": "ICModels",
        "columns": {"id": "ModelID", "model": "Model", "category_id": "CategoryID"},
    },
    "model_categories": {  # [INF] table name; the code is varchar(15) in dealer views
        "table": "ICModelCategories",
        "columns": {"id": "CategoryID", "code": "ModelCategory", "description": "Description"},
    },
    "equipment": {  # [SQL]
        "table": "SCEquipments",
        "columns": {
            "id": "EquipmentID",
            "customer_id": "CustomerID",
            "location_id": "LocationID",
            "model_id": "ModelID",
            "active": "Active",
            "install_date": "InstallDate",  # [INF] optional: OPTIONAL_COLUMNS
        },
    },
    "contracts": {  # [DB]
        "table": "SCContracts",
        "columns": {
            "id": "ContractID",
            "customer_id": "CustomerID",
            "contract_code_id": "ContractCodeID",
            "bill_code_id": "BillCodeID",
            "start_date": "StartDate",
            "exp_date": "ExpDate",
            "active": "Active",
            "base_rate": "BaseRate",
            "status_id": "ContractStatusID",  # read only when a rule filters on statuses
            "number": "ContractNumber",  # read only for digest.renewals_ics (the calendar)
        },
    },
    "contract_details": {  # [SQL] S1m: the contract lines, one per machine covered
        "table": "SCContractDetails",  # read only when an equipment rule uses on_contract
        "columns": {"id": "ContractDetailID", "contract_id": "ContractID",
                    "equipment_id": "EquipmentID",
                    "start_date": "StartDate", "end_date": "EndDate"},  # [API] optional
    },
    "contract_statuses": {  # [INF] the list behind SCContracts.ContractStatusID
        "table": "SCContractStatuses",
        "columns": {"id": "ContractStatusID", "code": "ContractStatus"},
    },
    "contract_codes": {  # [INF] table; the code is varchar(15) in dealer views
        "table": "SCContractCodes",
        "columns": {"id": "ContractCodeID", "code": "ContractCode", "description": "Description"},
    },
    "bill_codes": {  # [INF]
        "table": "SCBillCodes",
        "columns": {"id": "BillCodeID", "code": "BillCode", "description": "Description"},
    },
    "gl_accounts": {  # [INF]
        "table": "GLAccounts",
        "columns": {"id": "GLID", "number": "AccountNumber", "name": "AccountName"},
    },
    "gl_detail": {  # [INF]
        "table": "GLDetail",
        "columns": {
            "id": "GLDetailID",
            "account_id": "GLID",
            "customer_id": "CustomerID",
            "date": "TransactionDate",
            "amount": "Amount",
            "transaction_type": "TransactionType",  # read only when a rule filters on it
        },
    },
    "invoices": {  # [SQL] InvoiceID, CustomerID; the rest [API]/[INF]
        "table": "ARInvoices",
        "columns": {
            "id": "InvoiceID",
            "customer_id": "CustomerID",
            "date": "InvoiceDate",
            "void": "IsVoid",
        },
    },
    "invoice_lines": {  # [INF] table; fields per the API InvoiceDetail shape
        "table": "ARInvoiceDetails",
        "columns": {
            "id": "InvoiceDetailID",
            "invoice_id": "InvoiceID",
            "item_id": "ItemID",
            "quantity": "Quantity",
            "amount": "Amount",
            "cost": "Cost",
        },
    },
    "items": {  # [INF]
        "table": "ICItems",
        "columns": {"id": "ItemID", "number": "Item", "model_id": "ModelID",
                    "item_category_id": "ItemCategoryID"},  # the latter only when rules use it
    },
    "item_categories": {  # [INF] CEO Juice's "Item Categories"
        "table": "ICItemCategories",
        "columns": {"id": "ItemCategoryID", "code": "ItemCategory"},
    },
    "attributes": {  # [SQL]
        "table": "ShAttributes",
        "columns": {"id": "ShAttributeID", "name": "AttributeName"},
    },
    "custom_properties": {  # [SQL] CustomerID, ShAttributeID, TextVal
        "table": "ARCustomerCustomProperties",
        "columns": {"customer_id": "CustomerID", "attribute_id": "ShAttributeID", "text": "TextVal"},
    },
    "contacts": {  # [SQL] CMContacts; the customer link is [INF]
        "table": "CMContacts",
        "columns": {
            "id": "ContactID",
            "customer_id": "CustomerID",
            "full_name": "PrefFullName",
            "first_name": "FirstName",
            "last_name": "LastName",
            "email": "Email",
            "phone": "Phone1",
            "active": "Active",
        },
    },
    # [INF] not seen: contact custom property values, by analogy with ARCustomerCustomProperties
    # (the attribute's name is in ShAttributes). Read only by 'export opportunities
    # --nps-property' (the promoter filter); rename it here if your database differs.
    "contact_custom_properties": {
        "table": "CMContactCustomProperties",
        "columns": {"contact_id": "ContactID", "attribute_id": "ShAttributeID", "text": "TextVal"},
    },
}


# Enrichment tables: what they add is shown (digest, report, monitor texts), never classified.
# A database without one still runs, the value left blank; ``check`` warns. A table the config
# renames (erp.profile.<name>.table) must exist: a missing one is then a typo.
ENRICHMENTS: dict[str, str] = {
    "branches": "branches are shown blank",
    "sales_reps": "sales reps are shown blank",
    "customer_types": "industries are blank (industry: source: customer_type)",
}


# Dated columns the ERP may not have ([INF]/[API]): with one, a past date is rebuilt more
# exactly (a machine counts from its install date; a contract line covers its machine only
# between its start and end dates). A database without one still runs: the column is left
# out, and ``check`` and ``backtest`` say what that costs.
OPTIONAL_COLUMNS: dict[tuple[str, str], str] = {
    ("equipment", "install_date"):
        "machines count on every past date, whenever they were installed",
    ("contract_details", "start_date"):
        "a contract line covers its machine from its contract's start",
    ("contract_details", "end_date"):
        "a contract line covers its machine until its contract expires",
}


def merged_profile(overrides: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """The default profile with the config's overrides applied (already validated by config)."""
    profile = copy.deepcopy(DEFAULT_PROFILE)
    for logical, override in (overrides or {}).items():
        if override.get("table"):
            profile[logical]["table"] = override["table"]
        profile[logical]["columns"].update(override.get("columns") or {})
    return profile
