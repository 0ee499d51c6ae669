"""The export files: the opportunity CSV a CRM imports (plain or HubSpot columns), the alerts CSV,
and the promoters' survey CSV read in (NPS scores by contact id or email).

The promoter filter (CEO Juice ID789: "a HubSpot campaign aimed at promoters at companies missing
a service") lets only contacts with an NPS score of at least ``min_score`` be chosen. Scores come
from a contact custom property, from an imported survey CSV, or both (a CSV score wins over the
property's for the same contact). ``keyservices.commands.export`` composes them with the night.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

HUBSPOT = ["First Name", "Last Name", "Email", "Phone Number", "Company Name", "Key Service",
           "Priority", "Reason", "Sales Rep", "Customer Number", "Estimated Annual Value",
           "Play", "Chance To Win In 90 Days", "Expected Value", "Rank"]
PLAIN = ["customer_number", "customer_name", "branch", "sales_rep", "service", "priority",
         "reason", "contact_first_name", "contact_last_name", "contact_email", "contact_phone",
         "estimated_annual_value", "value_basis", "play", "p_win", "expected_value", "evidence",
         "rank", "hidden"]


def rate_cell(value: float | None) -> str:
    """A chance as a CSV cell: a plain number (4 decimals), blank when none."""
    return "" if value is None else f"{value:.4f}"


def money_cell(value: float | None) -> str:
    """An estimated annual value as a CSV cell: a plain number (2 decimals), blank when none."""
    return "" if value is None else f"{value:.2f}"


@dataclass(frozen=True, slots=True)
class NpsFilter:
    """Only promoters may be the contact: an NPS score (0-10) of at least ``min_score``, from the
    contact custom property ``property`` and/or the survey CSV ``csv``."""

    property: str | None = None
    csv: Path | None = None
    min_score: float = 9

    def __post_init__(self) -> None:
        if self.property is None and self.csv is None:
            raise ConfigError("the promoter filter needs --nps-property NAME or --nps-csv FILE")
        if not 0 <= self.min_score <= 10:
            raise ConfigError(f"the minimum NPS score must be 0-10, not {self.min_score:g}")


@dataclass(slots=True)
class NpsScores:
    """Scores read from a survey CSV, by contact id and by (lower-case) email."""

    by_id: dict[int, float] = field(default_factory=dict)
    by_email: dict[str, float] = field(default_factory=dict)
    rows: int = 0  # data rows read (blank lines not counted)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, what is wrong)


@dataclass(slots=True)
class OpportunityExport:
    """The CSV text and what went into it. Unpacks as ``(text, count)``, as before."""

    text: str
    count: int  # opportunity rows written
    left_out_customers: int = 0  # customers with no promoter contact (promoter filter only)
    left_out_rows: int = 0  # their opportunity rows, not written
    promoters: int = 0  # active contacts scoring at least the minimum
    csv_problems: list[tuple[int, str]] = field(default_factory=list)  # bad CSV rows, skipped
    csv_unmatched: int = 0  # valid CSV rows naming no active contact of any customer
    bad_property_values: int = 0  # property values that are not a number from 0 to 10
    warnings: list[str] = field(default_factory=list)  # e.g. no contacts table: blank contacts

    def __iter__(self) -> Iterator[Any]:
        return iter((self.text, self.count))


def nps_score(text: object) -> float | None:
    """An NPS score 0-10 from a stored value or a CSV cell; None when it is not one."""
    raw = str(text if text is not None else "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0 <= value <= 10 else None


# -- the survey CSV -------------------------------------------------------------------------------
_EMAIL = {"email", "contact_email", "e_mail", "email_address", "contact_email_address"}
_ID = {"contact_id", "contactid", "contact_number_id"}
_SCORE = {"score", "nps", "nps_score", "rating", "likelihood_to_recommend"}


def _header_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def read_nps_csv(path: Path) -> NpsScores:
    """Scores from a survey export: a header row with a score column and a contact email and/or
    contact id column (comma, semicolon or tab separated, UTF-8 with or without a BOM).

    A row that cannot be used is skipped and reported with its line number; a file without the
    needed columns, or with no usable row at all, is an error (exit 2). When a contact appears
    twice, the later row wins (survey exports list the oldest answer first).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"NPS file {path} not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"NPS file {path} is not UTF-8 text; save it as 'CSV UTF-8'") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the NPS file {path}: {exc.strerror or exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""), dialect=_survey_dialect(text))
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise ConfigError(f"NPS file {path} is empty; it needs a header row such as "
                          "'email,score' or 'contact_id,score'")
    keys = [_header_key(h) for h in header]

    def column(names: set[str]) -> int | None:
        return next((i for i, k in enumerate(keys) if k in names), None)

    score_at, email_at, id_at = column(_SCORE), column(_EMAIL), column(_ID)
    missing = ([] if score_at is not None else ["a score column (score or nps)"]) + (
        [] if email_at is not None or id_at is not None
        else ["a contact column (email or contact_id)"])
    if missing:
        raise ConfigError(f"{path}:1: the header ({', '.join(h.strip() for h in header)}) lacks "
                          f"{' and '.join(missing)}")
    out = NpsScores()
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        out.rows += 1

        raw_score, email, raw_id = (_cell(cells, score_at), _cell(cells, email_at),
                                    _cell(cells, id_at))
        score = nps_score(raw_score)
        if not raw_score:
            out.problems.append((line, "no score"))
            continue
        if score is None:
            out.problems.append((line, f"score {raw_score!r} is not a number from 0 to 10"))
            continue
        if raw_id:
            if not re.fullmatch(r"\d+", raw_id):
                out.problems.append((line, f"contact id {raw_id!r} is not a whole number"))
                continue
            out.by_id[int(raw_id)] = score
        elif email:
            if "@" not in email:
                out.problems.append((line, f"{email!r} is not an email address"))
                continue
            out.by_email[email.lower()] = score
        else:
            out.problems.append((line, "no contact email or contact id"))
    if len(out.problems) == out.rows:  # nothing to go on: every customer would be left out
        shown = "; ".join(f"line {n}: {what}" for n, what in out.problems[:3])
        more = " ..." if len(out.problems) > 3 else ""
        raise ConfigError(f"NPS file {path} has no usable row" + (f" ({shown}{more})" if shown
                                                                   else ""))
    return out


ALERT_COLUMNS = ["customer_number", "customer_name", "branch", "sales_rep", "monitor_code",
                 "monitor", "text", "first_seen", "priority"]


def write(text: str, out: Path | None) -> Path | None:
    """Write with a BOM so that Excel reads accented names right; None means stdout."""
    if out is None:
        return None
    out.write_text("\ufeff" + text, encoding="utf-8", newline="")
    return out


def _cell(cells: list[str], at: int | None) -> str:
    """One cell of a survey row, stripped; a column the file lacks reads as empty."""
    return cells[at].strip() if at is not None and at < len(cells) else ""


def _survey_dialect(text: str) -> type[csv.Dialect] | str:
    """The survey file's delimiter as ``csv.Sniffer`` reads it from the header row (a comma,
    a semicolon from a European Excel, or a tab); a header it cannot read is plain CSV."""
    first = text.split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(first, delimiters=",;\t")
    except csv.Error:
        return "excel"
