"""Loading the rule files: every file parsed, merged and validated at once, each problem with
its file, line and key, so an admin fixes all of them in one go."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import RulesError
from ..yamlfile import Problem, YamlProblems, dotted, load_yaml, position, problems_from_validation
from .cross_sell import CrossSell, Units
from .language import (
    PROPERTY_MAX_LENGTH,
    ContractsSection,
    Criterion,
    EquipmentSection,
    Exclude,
    GlSection,
    Industry,
    ItemsSoldSection,
    Monitor,
    Opportunities,
    Priority,
    PriorityRule,
    Renewal,
    RuleFile,
    RuleSet,
    Service,
    Tiers,
    When,
)


def rule_files(location: Path) -> list[Path]:
    """The rule files at ``location``: one file, or the ``*.yaml``/``*.yml`` directly in a folder
    (sub-folders such as ``rules/tests/`` hold other things)."""
    if location.is_file():
        return [location]
    if location.is_dir():
        return sorted(p for p in location.iterdir()
                      if p.is_file() and p.suffix in (".yaml", ".yml"))
    raise RulesError(f"rules not found: {location} (set 'rules:' in config.yaml to a folder of "
                     "*.yaml rule files, or run 'keyservices init' to get a starter set)")


def load_rules(location: Path, *, property_override: str | None = None) -> RuleSet:
    """Load, merge and validate every rule file; raise RulesError listing all problems."""
    files = rule_files(location)
    if not files:
        raise RulesError(f"no *.yaml rule files in {location}")
    problems: list[Problem] = []
    parsed: list[tuple[Path, Any, RuleFile]] = []
    broken: list[Any] = []  # what the files that failed validation hold, as written
    for path in files:
        try:
            data = load_yaml(path)
        except YamlProblems as exc:
            problems.extend(exc.problems)
            continue
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else type(data).__name__
            line, col = position(data, ())
            problems.append(Problem(path, line or 1, col or 1, "",
                                    f"must be a mapping of settings and services, got {kind}"))
            continue
        try:
            parsed.append((path, data, RuleFile.model_validate(dict(data))))
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, data, path, RuleFile))
            broken.append(data)
    # files that parsed are also checked together, so one run reports every problem at once
    ruleset, merge_problems = (_merge(parsed, property_override, complete=not problems)
                               if parsed else (None, []))
    if problems and merge_problems:  # what a broken file may still define is not "unknown"
        merge_problems = [p for p in merge_problems if not _maybe_in(p, broken)]
    if problems:  # some files failed: "no services defined" would only be noise then
        merge_problems = [p for p in merge_problems if "no services defined" not in p.message]
    problems += merge_problems
    if problems:
        raise RulesError(_summary(problems))
    assert ruleset is not None
    return ruleset


def _maybe_in(problem: Problem, broken: list[Any]) -> bool:
    """Whether a problem of the merged files may be answered by a file that failed validation:
    a service or monitor code it names, or a setting (monitor periods, priority tiers, the
    opportunities block) it sets."""
    for data in broken:
        if not isinstance(data, dict):
            continue
        codes = [item.get("code") for key in ("services", "monitors")
                 for item in (data.get(key) or []) if isinstance(item, dict)]
        if any(isinstance(c, str) and repr(c) in problem.message for c in codes):
            return True
        settings = {"monitor_periods": "monitor_periods", "priority": "tier",
                    "opportunities": "opportunities"}
        if any(key in data and word in problem.message for key, word in settings.items()):
            return True
        items = data.get("services")
        unreadable = not isinstance(items, list) or any(
            not isinstance(item, dict) or not isinstance(item.get("code"), str) for item in items)
        if "services" in data and unreadable and "unknown service" in problem.message:
            return True  # its services are not all readable: any code may be among them
    return False


def _summary(problems: list[Problem]) -> str:
    n = len(problems)
    head = f"{n} problem{'s' if n != 1 else ''} in the rules:"
    return "\n".join([head, *(f"  {p}" for p in problems)])


def _merge(parsed: list[tuple[Path, Any, RuleFile]], property_override: str | None,
           complete: bool = True) -> tuple[RuleSet | None, list[Problem]]:
    """Merge the files that parsed; ``complete`` is False when some did not (then "no
    services defined" is left to the caller, and so are references a broken file may answer:
    ``load_rules`` drops those)."""
    problems: list[Problem] = []
    settings: dict[str, tuple[Any, Path]] = {}
    classes: dict[str, tuple[str, Path]] = {}
    services: list[Service] = []
    seen_codes: dict[str, Path] = {}
    monitors: list[Monitor] = []
    seen_monitors: dict[str, Path] = {}
    for path, data, rf in parsed:
        for i, mon in enumerate(rf.monitors):
            if mon.code in seen_monitors:
                line, col = position(data, ("monitors", i, "code"))
                problems.append(Problem(path, line, col, f"monitors[{i}].code",
                                        f"duplicate monitor code {mon.code!r} "
                                        f"(first defined in {seen_monitors[mon.code]})"))
            seen_monitors[mon.code] = path
            monitors.append(mon)
        for key in ("property", "level", "separator", "value", "industry", "opportunities",
                    "monitor_periods", "priority"):
            val = getattr(rf, key)
            if val is None:
                continue
            if key in settings and settings[key][0] != val:
                line, col = position(data, (key,))
                problems.append(Problem(path, line, col, key,
                                        f"already set differently in {settings[key][1]}"))
            settings[key] = (val, path)
        for glob, cls in rf.model_classes.items():
            if glob in classes and classes[glob][0] != cls:
                line, col = position(data, ("model_classes", glob))
                problems.append(Problem(path, line, col, f"model_classes.{glob}",
                                        f"mapped to {classes[glob][0]} in {classes[glob][1]}"))
            classes[glob] = (cls, path)
        for i, svc in enumerate(rf.services):
            if svc.code in seen_codes:
                line, col = position(data, ("services", i, "code"))
                problems.append(Problem(path, line, col, f"services[{i}].code",
                                        f"duplicate service code {svc.code!r} "
                                        f"(first defined in {seen_codes[svc.code]})"))
            seen_codes[svc.code] = path
            services.append(svc)
    if settings.get("opportunities", (None, None))[0] is not None:
        for path, data, rf in parsed:  # a monitor's hits are calls, kept per customer and code
            for i, mon in enumerate(rf.monitors):
                if mon.code in seen_codes:
                    line, col = position(data, ("monitors", i, "code"))
                    problems.append(Problem(
                        path, line, col, f"monitors[{i}].code",
                        f"monitor code {mon.code!r} is also a service's code (in "
                        f"{seen_codes[mon.code]}); the call list keeps one call per customer "
                        "and code, so the monitor's calls and the service's would be one. Give "
                        "the monitor a code of its own (and use it in the priority rules' "
                        "'monitors:' lists)"))
    if not services and not problems:
        path0, data0, _ = parsed[0]
        line, col = position(data0, ("services",))
        problems.append(Problem(path0, line, col, "services", "no services defined"))
    sep = settings.get("separator", (";", None))[0]
    mapped_classes = {c.upper() for c, _ in classes.values()}
    for path, data, rf in parsed:
        for i, svc in enumerate(rf.services):
            if sep in svc.code:
                line, col = position(data, ("services", i, "code"))
                problems.append(Problem(path, line, col, f"services[{i}].code",
                                        f"contains the separator {sep!r}"))
            for prefix, holder in (((), svc), (("exclude",), svc.exclude)):
                for section in ("equipment", "items_sold"):
                    sec = getattr(holder, section) if holder is not None else None
                    for cls in sec.model_classes if sec else ():
                        if cls.upper() in mapped_classes:
                            continue
                        loc = ("services", i, *prefix, section, "model_classes")
                        line, col = position(data, loc)
                        key = f"services[{i}]." + ".".join(map(str, loc[2:]))
                        problems.append(Problem(
                            path, line, col, key,
                            f"model class {cls!r} is mapped from no category; add it under "
                            f"model_classes (known: {', '.join(sorted(mapped_classes)) or 'none'})"))
    periods = tuple(settings.get("monitor_periods", ((30, 60, 90), None))[0])
    problems += _monitor_problems(parsed, periods)
    # checked even when a file failed (``complete`` False): load_rules drops the problems that
    # name what a broken file may define, so the rest is reported now, not on the next run
    by_code = {s.code: s for s in services}
    problems += _reference_problems(parsed, by_code, set(seen_monitors))
    problems += _cross_sell_problems(parsed, by_code, settings, mapped_classes)
    ruleset = RuleSet(
        property=property_override or settings.get("property", ("ZCJKeyServices", None))[0],
        level=settings.get("level", ("parent", None))[0],
        separator=sep,
        value=settings.get("value", ("codes", None))[0],
        industry_source=settings.get("industry", (Industry(), None))[0].source,
        opportunities=settings.get("opportunities", (None, None))[0],
        model_classes=tuple((g, c) for g, (c, _) in classes.items()),
        services=tuple(services),
        files=tuple(p for p, _, _ in parsed),
        monitor_periods=periods,
        monitors=tuple(monitors),
        priority=settings.get("priority", (None, None))[0],
        cross_sell=tuple(rule for _, _, rf in parsed for rule in rf.cross_sell),
    )
    everything = ruleset.render_value({s.code for s in services})
    first_path, first_data, _ = parsed[0]
    if len(everything) > PROPERTY_MAX_LENGTH:
        line, col = position(first_data, ("services",))
        problems.append(Problem(first_path, line, col, "services",
                                f"with every service the value is {len(everything)} characters; "
                                f"the attribute holds {PROPERTY_MAX_LENGTH}"))
    for path, data, rf in parsed:
        for i, svc in enumerate(rf.services):
            field = "name" if ruleset.value == "names" else "code"
            try:
                getattr(svc, field).encode("cp1252")
            except UnicodeEncodeError:
                line, col = position(data, ("services", i, field))
                problems.append(Problem(path, line, col, f"services[{i}].{field}",
                                        "has characters a varchar column cannot hold (keep to "
                                        "Windows-1252)"))
    return (None, problems) if problems else (ruleset, [])


def _monitor_problems(parsed: list[tuple[Path, Any, RuleFile]],
                      periods: tuple[int, ...] | None) -> list[Problem]:
    """Periods the monitors' criteria count over (None: unknown, a file did not parse), and
    their text templates."""
    if not any(rf.monitors for _, _, rf in parsed):
        return []
    from .texts import template_problem  # jinja2 only when monitors are used

    problems: list[Problem] = []
    for path, data, rf in parsed:
        for i, mon in enumerate(rf.monitors):
            for j, crit in enumerate(mon.criteria):
                if periods is not None and crit.period not in periods:
                    loc = ("monitors", i, mon.match, j, "period")
                    line, col = position(data, loc)
                    problems.append(Problem(
                        path, line, col, f"monitors[{i}].{mon.match}[{j}].period",
                        f"{crit.period} is not one of monitor_periods "
                        f"({', '.join(map(str, periods))})"))
            message = template_problem(mon.text, len(mon.criteria))
            if message:
                line, col = position(data, ("monitors", i, "text"))
                problems.append(Problem(path, line, col, f"monitors[{i}].text",
                                        f"monitor {mon.code}: {message}"))
    return problems


def _reference_problems(parsed: list[tuple[Path, Any, RuleFile]], services: dict[str, Service],
                        monitors: set[str]) -> list[Problem]:
    """Service codes, monitor codes and tiers that monitors and priority rules refer to."""
    problems: list[Problem] = []
    known = ", ".join(services) or "none"

    def service_problem(code: str | None, need: str) -> str | None:
        if code is None:
            return None
        svc = services.get(code)
        if svc is None:
            close = difflib.get_close_matches(code, list(services), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {known}"
            return f"unknown service {code!r} ({hint})"
        if need == "gl" and svc.gl is None:
            return f"service {code} has no gl section; name accounts instead"
        if need == "contracts" and (svc.contracts is None or not svc.contracts.contract_codes):
            return f"service {code} has no contracts section with contract codes; name " \
                   "contract_codes instead"
        return None

    def add(path: Path, data: Any, loc: tuple[int | str, ...], message: str | None) -> None:
        if message:
            line, col = position(data, loc)
            problems.append(Problem(path, line, col, dotted(loc), message))

    for path, data, rf in parsed:
        for i, mon in enumerate(rf.monitors):
            for j, crit in enumerate(mon.criteria):
                need = "gl" if crit.counter == "revenue" else "contracts"
                add(path, data, ("monitors", i, mon.match, j, "service"),
                    service_problem(crit.service, need))
        if rf.priority is None:
            continue
        tier_names = [t for t, _ in rf.priority.tiers.ordered()] if rf.priority.tiers else []
        for k, rule in enumerate(rf.priority.rules):
            if rule.when is None:
                continue
            base = ("priority", "rules", k, "when")
            for n, code in enumerate(rule.when.services):
                add(path, data, (*base, "services", n), service_problem(code, ""))
            for n, tier in enumerate(rule.when.tiers):
                if tier not in tier_names:
                    add(path, data, (*base, "tiers", n),
                        f"unknown tier {tier!r} (tiers: {', '.join(tier_names)})" if tier_names
                        else f"tier {tier!r} needs priority.tiers (thresholds or quantiles)")
            if rule.when.renewal is not None:
                add(path, data, (*base, "renewal", "service"),
                    service_problem(rule.when.renewal.service, "contracts"))
            if rule.when.monitors == "any" and not monitors:
                add(path, data, (*base, "monitors"), "no status monitors are defined")
            elif isinstance(rule.when.monitors, list):
                for n, code in enumerate(rule.when.monitors):
                    if code not in monitors:
                        add(path, data, (*base, "monitors", n),
                            f"unknown monitor {code!r} (known: "
                            f"{', '.join(sorted(monitors)) or 'none'})")
    return problems


def _cross_sell_problems(parsed: list[tuple[Path, Any, RuleFile]], services: dict[str, Service],
                         settings: dict[str, tuple[Any, Path]], mapped_classes: set[str],
                         ) -> list[Problem]:
    """Cross-sell rules and the ``peers`` setting: the services, tiers and model classes they
    name, unique rule names, and the ``opportunities:`` block they need."""
    problems: list[Problem] = []
    priority = settings.get("priority", (None, None))[0]
    tiers = [t for t, _ in priority.tiers.ordered()] if priority and priority.tiers else []
    opportunities = settings.get("opportunities", (None, None))[0]
    known = ", ".join(services) or "none"
    names: dict[str, Path] = {}

    def add(path: Path, data: Any, loc: tuple[int | str, ...], message: str) -> None:
        line, col = position(data, loc)
        problems.append(Problem(path, line, col, dotted(loc), message))

    for path, data, rf in parsed:
        if rf.opportunities is not None and rf.opportunities.peers == "industry_and_tier" \
                and not tiers:
            add(path, data, ("opportunities", "peers"), "industry_and_tier needs size tiers: "
                "add priority.tiers (thresholds or quantiles), or use peers: industry")
        for i, rule in enumerate(rf.cross_sell):
            if opportunities is None and i == 0:
                add(path, data, ("cross_sell",), "cross-sell rules need an opportunities: block "
                    "(grace period, exclusions, how many the digest lists); add one, e.g. "
                    "'opportunities: {top: 25}'")
            if rule.name in names:
                add(path, data, ("cross_sell", i, "name"), f"duplicate cross-sell rule name "
                    f"{rule.name!r} (first in {names[rule.name]})")
            names.setdefault(rule.name, path)
            for key in ("has", "lacks", "offer"):
                for n, code in enumerate(getattr(rule, key)):
                    if code not in services:
                        close = difflib.get_close_matches(code, list(services), n=1, cutoff=0.5)
                        hint = f"did you mean '{close[0]}'?" if close else f"known: {known}"
                        add(path, data, ("cross_sell", i, key, n),
                            f"unknown service {code!r} ({hint})")
            for n, tier in enumerate(rule.tiers):
                if tier not in tiers:
                    add(path, data, ("cross_sell", i, "tiers", n),
                        f"unknown tier {tier!r} (tiers: {', '.join(tiers)})" if tiers
                        else f"tier {tier!r} needs priority.tiers (thresholds or quantiles)")
            for n, cls in enumerate(rule.equipment.model_classes if rule.equipment else ()):
                if cls.upper() not in mapped_classes:
                    add(path, data, ("cross_sell", i, "equipment", "model_classes", n),
                        f"model class {cls!r} is mapped from no category; add it under "
                        f"model_classes (known: {', '.join(sorted(mapped_classes)) or 'none'})")
    return problems


def reference_markdown() -> str:
    """The rule-file reference tables, generated from the models (``docs/rules.md`` embeds them,
    and a test keeps the two in step)."""
    models: list[tuple[str, type[BaseModel]]] = [
        ("Top level of a rule file", RuleFile), ("industry", Industry), ("services[]", Service),
        ("equipment", EquipmentSection), ("items_sold", ItemsSoldSection),
        ("contracts", ContractsSection), ("gl", GlSection), ("exclude", Exclude),
        ("opportunities", Opportunities), ("monitors[]", Monitor),
        ("monitors[].all[] / any[]", Criterion), ("priority", Priority), ("priority.tiers", Tiers),
        ("priority.rules[]", PriorityRule), ("priority.rules[].when", When),
        ("when.renewal", Renewal), ("cross_sell[]", CrossSell),
        ("cross_sell[].equipment", Units)]
    out: list[str] = []
    for title, model in models:
        out += [f"### `{title}`", "", (model.__doc__ or "").strip().splitlines()[0], "",
                "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name, info in model.model_fields.items():
            annotation = info.annotation
            text = (annotation.__name__ if isinstance(annotation, type) else str(annotation))
            text = (text.replace("typing.", "").replace("keyservices.rules.language.", "")
                    .replace("keyservices.rules.", "")
                    .replace("Annotated[str, FieldInfo(annotation=NoneType, required=True, "
                             "metadata=[MinLen(min_length=1), MaxLen(max_length=64)])]", "glob")
                    .replace("Annotated[int, FieldInfo(annotation=NoneType, required=True, "
                             "metadata=[Ge(ge=1), Le(le=3660)])]", "days")
                    .replace(" | ", " or "))
            default = "required" if info.is_required() else repr(info.default)
            out.append(f"| `{name}` | `{text}` | `{default}` | "
                       f"{(info.description or '').replace('|', '/')} |")
        out.append("")
    return "\n".join(out)
