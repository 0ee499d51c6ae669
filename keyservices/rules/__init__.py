"""The rule language: what makes a customer use a key service.

``language`` holds the models of a rule file and the compiled ``RuleSet``; ``loader`` reads and
validates the YAML files; ``texts`` checks and renders monitor texts. (The admin's rule tests run
the classifier, so they live in ``keyservices.engine.cases``.) Pure: no database, no network.
"""

from __future__ import annotations

from .cross_sell import CrossSell, Units
from .language import (
                       CODE_PATTERN,
                       MONITOR_VARIABLES,
                       PRIORITIES,
                       PROPERTY_MAX_LENGTH,
                       SECTION_NAMES,
                       ContractsSection,
                       Criterion,
                       Days,
                       EquipmentSection,
                       Exclude,
                       Glob,
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
                       glob_match,
)
from .loader import load_rules, reference_markdown, rule_files

__all__ = [
                       'CODE_PATTERN',
                       'MONITOR_VARIABLES',
                       'PRIORITIES',
                       'PROPERTY_MAX_LENGTH',
                       'SECTION_NAMES',
                       'ContractsSection',
                       'Criterion',
                       'CrossSell',
                       'Days',
                       'EquipmentSection',
                       'Exclude',
                       'GlSection',
                       'Glob',
                       'Industry',
                       'ItemsSoldSection',
                       'Monitor',
                       'Opportunities',
                       'Priority',
                       'PriorityRule',
                       'Renewal',
                       'RuleFile',
                       'RuleSet',
                       'Service',
                       'Tiers',
                       'Units',
                       'When',
                       'glob_match',
                       'load_rules',
                       'reference_markdown',
                       'rule_files',
]
