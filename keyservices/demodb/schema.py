"""The demo dealer database's shape: e-automate's tables and columns (``DEFAULT_PROFILE`` plus the
other columns that make it look real), and the code lists, names and GL accounts the generator
draws from."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CHAR,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
)

ATTRIBUTE_ID = 2044
CONFIG_STANDARD, CONFIG_LEGACY = 101, 102
BATCH = 5000

# code -> (description, model names)
CATEGORIES: dict[str, tuple[str, list[str]]] = {
    "MFP-A3-CO-03": ("MFP A3 Color Segment 3", ["bizhub C300i", "imageRUNNER ADVANCE DX C3835i"]),
    "MFP-A3-CO-04": ("MFP A3 Color Segment 4", ["bizhub C450i", "imageRUNNER ADVANCE DX C5860i"]),
    "MFP-A3-BW-04": ("MFP A3 Mono Segment 4", ["bizhub 450i", "TASKalfa 5003i"]),
    "MFP-A3-BW-05": ("MFP A3 Mono Segment 5", ["bizhub 750i", "TASKalfa 7003i"]),
    "MFP-A4-CO-01": ("MFP A4 Color Segment 1", ["ECOSYS MA2100cfx", "bizhub C3120i"]),
    "MFP-A4-BW-01": ("MFP A4 Mono Segment 1", ["ECOSYS MA4500ifx", "bizhub 4020i"]),
    "PRN-A4-BW": ("Printer A4 Mono", ["ECOSYS PA4500x", "LaserJet M406dn"]),
    "PRN-A4-CO": ("Printer A4 Color", ["ECOSYS PA2100cwx", "Color LaserJet M455dn"]),
    "PRN-WIDE": ("Wide format printer", ["imagePROGRAF TM-300"]),
    "SW-DM-ECOPY": ("Scanning software (eCopy)", ["eCopy ShareScan Desktop"]),
    "SW-DM-CAPTURE": ("Capture software", ["Kofax Capture", "Dispatcher Phoenix"]),
    "SW-DM-ARCHIVE": ("Document archive software", ["DocuWare Cloud", "M-Files Business"]),
    "SW-PM-PAPERCUT": ("Print management software", ["PaperCut MF"]),
    "PC-DESKTOP": ("Desktop PC", ["OptiPlex 7010", "ThinkCentre M70q"]),
    "PC-LAPTOP": ("Laptop", ["Latitude 5440", "ThinkPad T14"]),
    "SRV-RACK": ("Rack server", ["PowerEdge R660"]),
    "NET-ROUTER": ("Router", ["Meraki MX68"]),
    "NET-SWITCH": ("Switch", ["Meraki MS120-24P"]),
    "NET-FIREWALL": ("Firewall", ["FortiGate 60F"]),
    "FURN-DESK": ("Office desk", ["Steelcase Migration SE"]),
    "FURN-CHAIR": ("Office chair", ["Steelcase Series 2"]),
    "WTR-COOLER": ("Water cooler", ["Culligan Bottleless"]),
    "SCAN-DESKTOP": ("Desktop scanner", ["fi-8170"]),
}
COPIERS = [c for c in CATEGORIES if c.startswith("MFP-")]
PRINTERS = ["PRN-A4-BW", "PRN-A4-CO", "PRN-WIDE"]
DM_SOFTWARE = ["SW-DM-CAPTURE", "SW-DM-ARCHIVE"]
IT_GEAR = ["PC-DESKTOP", "PC-LAPTOP", "SRV-RACK", "NET-ROUTER", "NET-SWITCH", "NET-FIREWALL"]
OTHER = ["FURN-DESK", "FURN-CHAIR", "WTR-COOLER", "SCAN-DESKTOP", "SW-PM-PAPERCUT"]
CONTRACT_CODES = {"COPY-MAINT": "Copier maintenance", "COPY-CPC": "Copier cost per copy",
                  "RENT-COPY": "Copier rental", "MPS-FLEET": "Managed print fleet",
                  "MPS-CLICK": "Managed print per click", "DM-SUB": "Document management "
                  "subscription", "DM-SUPPORT": "Document management support",
                  "IT-MANAGED": "Managed IT services", "IT-HELPDESK": "IT help desk",
                  "SUPPLY-ONLY": "Supplies only"}
ITEM_CATEGORIES = {"HARDWARE": "Equipment and hardware", "SOFTWARE": "Software licences",
                   "SUBSCRIPTION": "Software subscriptions", "FURNITURE": "Furniture",
                   "OTHER": "Other items"}
BILL_CODES = {"MONTHLY": "Monthly", "QUARTERLY": "Quarterly", "ANNUAL": "Annual",
              "IN-ARREARS": "In arrears"}
GL_ACCOUNTS = {"4000": "Equipment sales", "4100": "Copier service revenue",
               "4150": "Document management software & services", "4200": "Managed print revenue",
               "4300": "Managed IT services", "4310": "IT project services", "4500": "Supplies",
               "4900": "Other income"}
# industry -> likelihood of (copiers, managed print, document management, managed IT)
INDUSTRIES: dict[str, tuple[float, float, float, float]] = {
    "Legal": (0.85, 0.20, 0.55, 0.25), "Healthcare": (0.80, 0.45, 0.25, 0.30),
    "Education": (0.85, 0.50, 0.15, 0.20), "Manufacturing": (0.70, 0.25, 0.10, 0.45),
    "Government": (0.80, 0.35, 0.30, 0.15), "Real Estate": (0.70, 0.10, 0.25, 0.15),
    "Accounting": (0.80, 0.15, 0.50, 0.30), "Non-profit": (0.65, 0.10, 0.10, 0.10),
    "Retail": (0.55, 0.15, 0.05, 0.25), "Construction": (0.60, 0.10, 0.10, 0.20),
}
BRANCHES = ["Springfield (Main)", "Shelbyville", "Capital City", "Ogdenville"]
REPS = ["Dana Whitfield", "Marco Rossi", "Priya Nair", "Tom O'Connell", "Zoë Lambert",
        "Sam Okafor", "Lena Schäfer", "Chris Park"]
FIRST_NAMES = ["Anna", "Ben", "Chloé", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jack",
          "Kai", "Lucía", "Mia", "Noah", "Olga", "Pete", "Rosa", "Sven", "Tara", "Yusuf"]
LAST_NAMES = ["Smith", "O'Brien", "Müller", "García", "Nguyen", "Kowalski", "Dubois", "Johnson",
         "Rossi", "Andersen", "Brown", "Novák", "Silva", "Taylor", "Walsh", "Lefèvre"]
NAME_WORDS = ["Summit", "Harbor", "Pioneer", "Evergreen", "Keystone", "Maple", "Granite", "Lakeside",
          "Riverside", "Northwind", "Bluebird", "Cedar", "Meridian", "Oakridge", "Sterling"]
NAME_SUFFIXES = {"Legal": ["Law Group", "& Partners LLP", "Legal Services"],
           "Healthcare": ["Family Clinic", "Medical Center", "Dental Care"],
           "Education": ["Academy", "School District", "Learning Center"],
           "Manufacturing": ["Manufacturing", "Fabrication Inc.", "Tooling Co."],
           "Government": ["County Office", "City Hall", "Water Authority"],
           "Real Estate": ["Realty", "Properties", "Estates"],
           "Accounting": ["CPAs", "Accounting & Tax", "Bookkeeping"],
           "Non-profit": ["Foundation", "Food Bank", "Community Trust"],
           "Retail": ["Outfitters", "Market", "Home & Garden"],
           "Construction": ["Builders", "Construction", "Roofing & Siding"]}
AWKWARD_NAMES = ["O'Brien & Sons", "Smith <Legal> LLP", "Café Müller GmbH",
            "Société Générale d'Études", 'The "Best" Copies Ltd', "AT&T Regional Office",
            "Ñandú Importaciones S.A.", "Zürich Treuhand AG",
            ("Very Long Name Holdings International Consolidated Regional Services and "
             "Document Solutions Partnership of the Greater Tri-County Area LLC")]


def item_category_of(category: str) -> int:
    """Item category id for a model category: software, hardware, furniture, other."""
    code = ("SOFTWARE" if category.startswith("SW-") else "FURNITURE" if category.startswith("FURN")
            else "OTHER" if category.startswith("WTR") else "HARDWARE")
    return list(ITEM_CATEGORIES).index(code) + 1


def name_prefix(name: str) -> str:
    """Customer numbers look like e-automate's: letters from the name, then digits."""
    letters = [ch for ch in name.upper() if "A" <= ch <= "Z"]
    return "".join(letters[:3]).ljust(3, "X")


def _audit(when: type[DateTime | Date]) -> list[Column]:
    return [Column("Locks", Integer, nullable=False, default=0),
            Column("CreatorID", CHAR(8), nullable=False, default="DEMO"),
            Column("UpdatorID", CHAR(8), nullable=False, default="DEMO"),
            Column("CreateDate", when, nullable=False, default=dt.datetime(2015, 1, 1)),
            Column("LastUpdate", when, nullable=False, default=dt.datetime(2015, 1, 1))]


def _money(name: str, nullable: bool = False) -> Column:
    return Column(name, Numeric(19, 4, asdecimal=False), nullable=nullable, default=0)


def build_metadata(schema: str | None = None, *, plain_dates: bool = False) -> MetaData:
    """The demo's e-automate tables (``schema`` is ``dbo`` on PostgreSQL/SQL Server tests).

    ``plain_dates`` declares every date column as a date instead of a date and time: SQLite then
    stores 'YYYY-MM-DD' text (as many exports and hand-made databases do), PostgreSQL ``date``.
    """
    md = MetaData(schema=schema)
    when = Date if plain_dates else DateTime
    Table("ARCustomerTypes", md, Column("CustomerTypeID", Integer, primary_key=True),
          Column("CustomerType", String(32), nullable=False), Column("Description", String(64)),
          Column("Active", Boolean, nullable=False, default=True))
    Table("GLBranches", md, Column("BranchID", Integer, primary_key=True),
          Column("BranchNumber", String(15), nullable=False), Column("Description", String(64)))
    Table("SHAgents", md, Column("AgentID", Integer, primary_key=True),
          Column("PrefFullName", String(50), nullable=False), Column("Email", String(64)),
          Column("Active", Boolean, nullable=False, default=True))
    Table("ARCustomers", md,
          Column("CustomerID", Integer, primary_key=True),
          Column("CustomerNumber", String(32), nullable=False, unique=True),
          Column("CustomerName", String(128), nullable=False),
          Column("LocationID", Integer), Column("BillToID", Integer),
          Column("CustomerTypeID", Integer), Column("SalesRepID", Integer),
          Column("TerritoryID", Integer), Column("TechnicianID", Integer),
          Column("BranchID", Integer, nullable=False),
          Column("Prospect", Boolean, nullable=False, default=False),
          Column("Active", Boolean, nullable=False, default=True),
          Column("Email", String(64), nullable=False, default=""),
          Column("Phone1", String(32)), Column("Address", String(128)),
          Column("City", String(64)), Column("State", String(32)), Column("Zip", String(16)),
          Column("DecisionContactID", Integer), Column("ShTrackingConfigID", Integer),
          Column("InheritParentCustomPrices", Boolean, nullable=False, default=False),
          Column("ShowInAllBranches", Boolean, nullable=False, default=False), *_audit(when))
    Table("CMContacts", md, Column("ContactID", Integer, primary_key=True),
          Column("CustomerID", Integer, nullable=False), Column("ContactNumber", String(15)),
          Column("FirstName", String(15)), Column("LastName", String(20)),
          Column("PrefFullName", String(50)), Column("Email", String(255)),
          Column("Phone1", String(30)), Column("Active", Boolean, nullable=False, default=True))
    Table("ICModelCategories", md, Column("CategoryID", Integer, primary_key=True),
          Column("ModelCategory", String(15), nullable=False),
          Column("Description", String(64)))
    Table("ICModels", md, Column("ModelID", Integer, primary_key=True),
          Column("Model", String(32), nullable=False), Column("CategoryID", Integer),
          Column("Active", Boolean, nullable=False, default=True))
    Table("ICItemCategories", md, Column("ItemCategoryID", Integer, primary_key=True),
          Column("ItemCategory", String(15), nullable=False), Column("Description", String(64)))
    Table("ICItems", md, Column("ItemID", Integer, primary_key=True),
          Column("Item", String(32), nullable=False), Column("ModelID", Integer),
          Column("ItemCategoryID", Integer), Column("Description", String(128)))
    Table("SCEquipments", md, Column("EquipmentID", Integer, primary_key=True),
          Column("EquipmentNumber", String(32), nullable=False, default=""),
          Column("SerialNumber", String(30)), Column("CustomerID", Integer, nullable=False),
          Column("LocationID", Integer), Column("ModelID", Integer, nullable=False),
          Column("InstallDate", when), Column("Active", Boolean, nullable=False, default=True),
          *_audit(when))
    Table("SCContractCodes", md, Column("ContractCodeID", Integer, primary_key=True),
          Column("ContractCode", String(15), nullable=False), Column("Description", String(64)))
    Table("SCContractStatuses", md, Column("ContractStatusID", Integer, primary_key=True),
          Column("ContractStatus", String(15), nullable=False), Column("Description", String(64)))
    Table("SCBillCodes", md, Column("BillCodeID", Integer, primary_key=True),
          Column("BillCode", String(15), nullable=False), Column("Description", String(64)))
    Table("SCContracts", md, Column("ContractID", Integer, primary_key=True),
          Column("ContractNumber", String(35), nullable=False, default=""),
          Column("ContractMajor", String(30)), Column("ContractMinor", String(4)),
          Column("CustomerID", Integer, nullable=False), Column("BillToID", Integer, nullable=False),
          Column("ContractCodeID", Integer, nullable=False),
          Column("BillCodeID", Integer, nullable=False),
          Column("StartDate", when, nullable=False), Column("ExpDate", when),
          Column("ExpDateInitial", when), Column("Active", Boolean, nullable=False, default=True),
          Column("ContractStatusID", Integer, nullable=False, default=1),
          Column("Bill", Boolean, nullable=False, default=True),
          Column("Accrual", Boolean, nullable=False, default=False), _money("BaseRate"),
          Column("SalesRepID", Integer), Column("BranchID", Integer, nullable=False, default=1),
          Column("ShTrackingConfigID", Integer), *_audit(when))
    Table("SCContractDetails", md, Column("ContractDetailID", Integer, primary_key=True),
          Column("ContractID", Integer, nullable=False), Column("EquipmentID", Integer),
          Column("LocationID", Integer), Column("StartDate", when), Column("EndDate", when))
    Table("GLAccounts", md, Column("GLID", Integer, primary_key=True),
          Column("AccountNumber", String(32), nullable=False),
          Column("AccountName", String(64), nullable=False))
    Table("GLDetail", md, Column("GLDetailID", Integer, primary_key=True),
          Column("GLID", Integer, nullable=False), Column("CustomerID", Integer),
          Column("BranchID", Integer), Column("TransactionDate", when, nullable=False),
          Column("TransactionType", String(32)), _money("Amount"), Column("Description", String(64)))
    Table("ARInvoices", md, Column("InvoiceID", Integer, primary_key=True),
          Column("InvoiceNumber", String(15), nullable=False, default=""),
          Column("CustomerID", Integer, nullable=False), Column("InvoiceDate", when,
                                                                nullable=False),
          Column("InvoiceType", CHAR(2)), Column("IsVoid", Boolean, nullable=False, default=False),
          _money("Total"))
    Table("ARInvoiceDetails", md, Column("InvoiceDetailID", Integer, primary_key=True),
          Column("InvoiceID", Integer, nullable=False), Column("ItemID", Integer),
          Column("LineNumber", Integer), Column("Description", String(128)),
          Column("Quantity", Numeric(19, 4, asdecimal=False), nullable=False, default=1),
          _money("Amount"), _money("Cost"))
    Table("ShAttributes", md, Column("ShAttributeID", Integer, primary_key=True),
          Column("AttributeName", String(64), nullable=False), Column("Description", String(128)),
          Column("DataType", String(32)))
    Table("ShTrackingConfigs", md, Column("ShTrackingConfigID", Integer, primary_key=True),
          Column("Description", String(64), nullable=False), Column("GroupName", String(32)))
    Table("ARCustomerCustomProperties", md,
          Column("CustomerCustomPropertyID", Integer, primary_key=True),
          Column("CustomerID", Integer, nullable=False),
          Column("ShAttributeID", Integer, nullable=False), Column("IDVal", Integer),
          Column("TextVal", String(1024)), Column("Required", Boolean, nullable=False, default=False),
          Column("CreatorID", CHAR(8), nullable=False, default="DEMO"),
          Column("CreateDate", when, nullable=False, default=dt.datetime(2015, 1, 1)))
    Table("CMContactCustomProperties", md,  # empty in the demo ([INF]: profile.py)
          Column("ContactCustomPropertyID", Integer, primary_key=True),
          Column("ContactID", Integer, nullable=False),
          Column("ShAttributeID", Integer, nullable=False), Column("IDVal", Integer),
          Column("TextVal", String(1024)),
          Column("Required", Boolean, nullable=False, default=False),
          Column("CreatorID", CHAR(8), nullable=False, default="DEMO"),
          Column("CreateDate", when, nullable=False, default=dt.datetime(2015, 1, 1)))
    return md


def demo_indexes(md: MetaData) -> list[Index]:
    """Created after loading: the columns the tool groups and joins on."""
    t = md.tables
    key = (md.schema + ".") if md.schema else ""
    return [Index("ix_cust_location", t[key + "ARCustomers"].c.LocationID),
            Index("ix_eq_customer", t[key + "SCEquipments"].c.CustomerID),
            Index("ix_eq_location", t[key + "SCEquipments"].c.LocationID),
            Index("ix_eq_model", t[key + "SCEquipments"].c.ModelID),
            Index("ix_contract_customer", t[key + "SCContracts"].c.CustomerID),
            Index("ix_contract_detail_equipment", t[key + "SCContractDetails"].c.EquipmentID),
            Index("ix_gl_customer_date", t[key + "GLDetail"].c.CustomerID,
                  t[key + "GLDetail"].c.TransactionDate),
            Index("ix_inv_customer", t[key + "ARInvoices"].c.CustomerID),
            Index("ix_invline_invoice", t[key + "ARInvoiceDetails"].c.InvoiceID),
            Index("ix_cp_customer_attr", t[key + "ARCustomerCustomProperties"].c.CustomerID,
                  t[key + "ARCustomerCustomProperties"].c.ShAttributeID, unique=True)]


