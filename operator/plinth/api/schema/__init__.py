"""Schema machinery that no API version owns: base models, rules, list types, value types.

An API version (`plinth.api.v1alpha1`, a later `v1beta1`) builds its typed specs from these
pieces and imports nothing from another version. `crds` turns a version's kinds into
CustomResourceDefinitions; it is not re-exported here (only `plinth crds` needs it).
"""

from plinth.api.schema.errors import InvalidSpecError, InvalidStatusError, describe_errors
from plinth.api.schema.kinds import AGE_COLUMN, KindInfo, PrinterColumn
from plinth.api.schema.lists import ListMap, ListSet
from plinth.api.schema.model import ApiModel, StatusModel, object_default
from plinth.api.schema.rules import RULE_ERROR_TYPE, Rule, immutable, name_rule
from plinth.api.schema.values import (
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    LABEL_VALUE_PATTERN,
    QUANTITY_PATTERN,
    CommandArg,
    DnsLabel,
    DnsSubdomain,
    ImageRef,
    LabelValue,
    Quantity,
    Timestamp,
)

__all__ = [
    "AGE_COLUMN",
    "DNS_LABEL_PATTERN",
    "DNS_SUBDOMAIN_PATTERN",
    "LABEL_VALUE_PATTERN",
    "QUANTITY_PATTERN",
    "RULE_ERROR_TYPE",
    "ApiModel",
    "CommandArg",
    "DnsLabel",
    "DnsSubdomain",
    "ImageRef",
    "InvalidSpecError",
    "InvalidStatusError",
    "KindInfo",
    "LabelValue",
    "ListMap",
    "ListSet",
    "PrinterColumn",
    "Quantity",
    "Rule",
    "StatusModel",
    "Timestamp",
    "describe_errors",
    "immutable",
    "name_rule",
    "object_default",
]
