"""Import the team's escalation file: rules, then routing by severity.

Every rule and route is validated before anything is written, and then all
of it is written in one transaction, so a bad file changes nothing. An
import of an unchanged file reports no change.

How the file's words become data:

- ``condition`` text is parsed by ``conditions.parse_condition``.
- ``action`` names who to alert: ``alert_`` then names joined by ``+``
  (``alert_security_team + ceo``). A trailing ``_immediate`` is accepted and
  changes nothing, because every rule escalates as soon as it matches. Each
  name becomes a receiver: one whose target is that name (``ceo`` is the
  ``sms: ceo`` receiver), else one routed for the rule's severity whose
  target is a word of the name (``tech_leads`` is ``slack: tech``), else, for
  names made of executive titles (``cto_cio``), the ``executive`` receiver,
  else a new Slack receiver of that name (``security_team``).
- A rule named ``<group>_incident`` applies only to watchers of that group,
  unless it lists ``groups`` itself.
- ``routing`` maps a severity to ``- kind: target`` items; ``sms`` and
  ``webhook`` are JSON webhooks, ``slack`` an incoming webhook. A receiver is
  named ``<kind>_<target>``, which names its environment variables.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from escalations.choices import ReceiverKind
from escalations.models import EscalationRule, Receiver, Route
from escalations.services import conditions
from escalations.services.receivers import unconfigured
from watchers.choices import Severity
from watchers.models import Watcher
from watchers.services.catalog.loading import (
    CatalogError,
    Origin,
    did_you_mean,
    key_line,
    load_yaml_file,
)

RULE_KEYS = ("condition", "action", "severity", "groups", "enabled")
REQUIRED_RULE_KEYS = ("condition", "severity")
TOP_KEYS = ("escalation_rules", "routing")
ROUTE_KINDS = {
    "slack": ReceiverKind.SLACK,
    "sms": ReceiverKind.WEBHOOK,
    "webhook": ReceiverKind.WEBHOOK,
}
EXECUTIVE_TITLES = frozenset({"ceo", "cto", "cio", "cfo", "coo", "ciso"})
EXECUTIVE_TARGET = "executive"
ALERT_PREFIX = "alert_"
NAME = re.compile(r"[a-z][a-z0-9_]*")
SLUG = re.compile(r"[-a-zA-Z0-9_]+")


@dataclass(frozen=True)
class ReceiverSpec:
    name: str
    kind: str
    target: str


@dataclass
class RuleSpec:
    name: str
    origin: Origin
    condition_text: str
    condition: dict[str, Any]
    action: str
    severity: str
    groups: list[str]
    # None when the file has no enabled key, so the admin's choice is kept.
    enabled: bool | None
    audiences: list[str] = field(default_factory=list)
    receivers: list[str] = field(default_factory=list)


@dataclass
class EscalationFile:
    """A validated file: its rules, routes by severity, and likely mistakes."""

    rules: list[RuleSpec]
    routes: dict[str, list[ReceiverSpec]]
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """Rules, receivers and routes that an import created, changed or left alone."""

    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    not_in_file: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def has_changes(self) -> bool:
        return bool(self.created or self.updated)


def import_escalations(path: Path | str, *, dry_run: bool = False) -> ImportReport:
    """Validate the file at ``path`` and make rules, receivers and routes match it.

    Raises CatalogError listing every problem; nothing is written then.
    """
    loaded = load_file(path)
    rules, routes = loaded.rules, loaded.routes
    receivers = _receiver_specs(rules, routes)
    report = ImportReport(dry_run=dry_run)
    with transaction.atomic():
        by_name = _apply_receivers(receivers, report)
        _apply_routes(routes, by_name, report)
        _apply_rules(rules, by_name, report)
        report.warnings = [
            *loaded.warnings,
            *_group_warnings(rules),
            *(
                f"{problem}; its deliveries will fail"
                for problem in unconfigured(list(by_name.values()))
            ),
        ]
        if dry_run:
            transaction.set_rollback(True)
    report.notes = [
        f"rule '{rule.name}' applies only to watcher groups: {', '.join(rule.groups)}"
        for rule in rules
        if rule.groups
    ]
    return report


def load_file(path: Path | str) -> EscalationFile:
    """Read and validate the file; return its contents, or raise CatalogError."""
    name = str(path)
    document = load_yaml_file(path)
    if not isinstance(document, dict):
        raise CatalogError(
            [
                f"{name}: the top level must be a mapping with escalation_rules "
                "and routing"
            ]
        )
    errors = [
        f"{Origin(name, key_line(document, key))}: unknown top-level key {key!r}: "
        f"the known keys are {', '.join(TOP_KEYS)}"
        for key in document
        if key not in TOP_KEYS
    ]
    loaded = EscalationFile([], {})
    loaded.routes = _read_routing(name, document, errors, loaded.warnings)
    routed = [spec for specs in loaded.routes.values() for spec in specs]
    targets = sorted({spec.target for spec in routed})
    loaded.rules = _read_rules(name, document, targets, errors)
    for rule in loaded.rules:
        rule.receivers = [
            _resolve(audience, rule, loaded.routes) for audience in rule.audiences
        ]
    if errors:
        raise CatalogError(errors)
    return loaded


def _read_routing(
    name: str, document: dict[Any, Any], errors: list[str], warnings: list[str]
) -> dict[str, list[ReceiverSpec]]:
    routing = document.get("routing")
    origin = Origin(name, key_line(document, "routing"))
    if not isinstance(routing, dict):
        errors.append(f"{origin}: routing must map severities to lists of receivers")
        return {}
    routes: dict[str, list[ReceiverSpec]] = {}
    for severity, items in routing.items():
        where = Origin(name, key_line(routing, severity))
        if severity not in Severity.values:
            errors.append(
                f"{where}: routing severity {severity!r} is not one of "
                + ", ".join(Severity.values)
            )
            continue
        routes[severity] = _read_route(where, severity, items, errors)
        if items == []:
            warnings.append(
                f"{where}: routing for {severity} lists no receiver, so an incident "
                f"escalated to {severity} reaches nobody unless its rule's action "
                "names someone: add a '- kind: target' item or remove the severity"
            )
    return routes


def _read_route(
    where: Origin, severity: str, items: object, errors: list[str]
) -> list[ReceiverSpec]:
    if not isinstance(items, list):
        errors.append(
            f"{where}: routing for {severity} must be a list of '- kind: target'"
        )
        return []
    specs: list[ReceiverSpec] = []
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            errors.append(
                f"{where}: routing for {severity}: {item!r} must be one 'kind: "
                "target' pair, such as 'slack: team'"
            )
            continue
        ((kind, target),) = item.items()
        problem = _route_problem(kind, target)
        if problem:
            errors.append(f"{where}: routing for {severity}: {problem}")
            continue
        spec = ReceiverSpec(f"{kind}_{target}", ROUTE_KINDS[kind], target)
        if spec in specs:
            errors.append(
                f"{where}: routing for {severity}: '{kind}: {target}' is listed "
                "twice: remove one"
            )
            continue
        specs.append(spec)
    return specs


def _route_problem(kind: object, target: object) -> str | None:
    if kind not in ROUTE_KINDS:
        return f"unknown receiver kind {kind!r}: use one of {', '.join(ROUTE_KINDS)}"
    if not isinstance(target, str) or not SLUG.fullmatch(target):
        return (
            f"{kind}: {target!r} is not a receiver name: use letters, digits, '_' "
            "and '-'"
        )
    return None


def _read_rules(
    name: str, document: dict[Any, Any], targets: list[str], errors: list[str]
) -> list[RuleSpec]:
    section = document.get("escalation_rules")
    if not isinstance(section, dict):
        where = Origin(name, key_line(document, "escalation_rules"))
        errors.append(f"{where}: escalation_rules must map rule names to rules")
        return []
    rules = []
    for rule_name, values in section.items():
        where = Origin(name, key_line(section, rule_name))
        rule = _read_rule(where, rule_name, values, targets, errors)
        if rule is not None:
            rules.append(rule)
    return rules


def _read_rule(
    where: Origin, name: object, values: object, targets: list[str], errors: list[str]
) -> RuleSpec | None:
    if not isinstance(name, str) or not SLUG.fullmatch(name):
        errors.append(
            f"{where}: rule name {name!r} may contain only letters, digits, '_' and '-'"
        )
        return None
    if not isinstance(values, dict):
        errors.append(
            f"{where}: rule '{name}' must be a mapping of {', '.join(RULE_KEYS)}"
        )
        return None

    before = len(errors)
    _check_rule_keys(where, name, values, errors)
    condition = _rule_condition(where, name, values.get("condition"), errors)
    severity = values.get("severity")
    if "severity" in values and severity not in Severity.values:
        errors.append(
            f"{where}: rule '{name}', field 'severity': {severity!r} is not one of "
            + ", ".join(Severity.values)
        )
    action = values.get("action", "")
    audiences = _rule_audiences(where, name, values, targets, errors)
    groups = _rule_groups(where, name, values, errors)
    enabled = values.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        errors.append(f"{where}: rule '{name}', field 'enabled': write true or false")
    if len(errors) > before or condition is None:
        return None
    return RuleSpec(
        name=name,
        origin=where,
        condition_text=values["condition"],
        condition=condition,
        action=action,
        severity=str(severity),
        groups=groups,
        enabled=enabled,
        audiences=audiences,
    )


def _check_rule_keys(
    where: Origin, name: str, values: dict[Any, Any], errors: list[str]
) -> None:
    for key in REQUIRED_RULE_KEYS:
        if key not in values:
            errors.append(f"{where}: rule '{name}', field '{key}': missing")
    for key in values:
        if key not in RULE_KEYS:
            guess = did_you_mean(key, RULE_KEYS)
            errors.append(
                f"{where}: rule '{name}', field '{key}': unknown field: {guess}the "
                f"known fields are {', '.join(RULE_KEYS)}"
            )


def _rule_condition(
    where: Origin, name: str, text: object, errors: list[str]
) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, str):
        errors.append(f"{where}: rule '{name}': condition {text!r} must be text")
        return None
    try:
        return conditions.to_json(conditions.parse_condition(text))
    except conditions.ConditionError as error:
        errors.append(
            f"{where}: rule '{name}': cannot read condition {text!r}: {error}"
        )
        return None


def parse_action(action: str, targets: Iterable[str] = ()) -> list[str]:
    """Return the audience names of an action such as ``alert_security_team + ceo``.

    Raises ValueError naming the part at fault; ``targets``, the routed
    receivers' targets, are offered as examples of valid actions.
    """
    names = []
    for position, part in enumerate(action.split("+")):
        text = part.strip()
        word = text.lower()
        if position == 0 and not word.startswith(ALERT_PREFIX):
            raise ValueError(_unknown_action(text, targets))
        word = word.removeprefix(ALERT_PREFIX).removesuffix("_immediate")
        if not NAME.fullmatch(word):
            raise ValueError(
                f"{text!r} is not an audience name: write alert_NAME, "
                "joined with '+' for more, such as 'alert_security_team + ceo'"
            )
        names.append(word)
    return names


def _unknown_action(text: str, targets: Iterable[str]) -> str:
    choices = [ALERT_PREFIX + target for target in targets]
    verb, _, rest = text.partition("_")
    if rest and did_you_mean(verb.lower(), [ALERT_PREFIX.rstrip("_")]):
        choices.append(ALERT_PREFIX + rest.lower())
    routed = f"{', '.join(choices)}, or " if choices else ""
    return (
        f"unknown action {text!r}: {did_you_mean(text.lower(), choices)}the only "
        f"action is alert_ and who to alert: {routed}alert_NAME for a Slack "
        "receiver of that name, joined with '+' for more"
    )


def _rule_audiences(
    where: Origin,
    name: str,
    values: dict[Any, Any],
    targets: list[str],
    errors: list[str],
) -> list[str]:
    if "action" not in values:
        return []
    action = values["action"]
    prefix = f"{where}: rule '{name}', field 'action'"
    if action in ("", None):
        errors.append(
            f"{prefix}: the action is empty: write alert_ and who to alert, such "
            f"as alert_{targets[0] if targets else 'team'}, or remove the line "
            "to notify only the severity's route"
        )
        return []
    if not isinstance(action, str):
        errors.append(f"{prefix}: {action!r} must be text")
        return []
    try:
        return parse_action(action, targets)
    except ValueError as error:
        errors.append(f"{prefix}: {error}")
        return []


def _rule_groups(
    where: Origin, name: str, values: dict[Any, Any], errors: list[str]
) -> list[str]:
    if "groups" not in values:
        prefix, _, suffix = name.rpartition("_")
        return [prefix] if suffix == "incident" and prefix else []
    groups = values["groups"]
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        errors.append(
            f"{where}: rule '{name}', field 'groups': write a list of group names"
        )
        return []
    return list(groups)


def _group_warnings(rules: list[RuleSpec]) -> list[str]:
    """Return a warning for each rule group that no watcher is in.

    Not an error, because the escalation file may be imported first.
    """
    known = sorted(set(Watcher.objects.values_list("group", flat=True)))
    listed = ", ".join(known) if known else "none, as no watcher is imported yet"
    return [
        f"{rule.origin}: rule '{rule.name}': no watcher is in group {group!r}, "
        f"so the rule matches no incident: {did_you_mean(group, known)}the "
        f"known groups are {listed}"
        for rule in rules
        for group in rule.groups
        if group not in known
    ]


def _resolve(
    audience: str, rule: RuleSpec, routes: dict[str, list[ReceiverSpec]]
) -> str:
    everyone = [spec for specs in routes.values() for spec in specs]
    for spec in everyone:
        if spec.target == audience:
            return spec.name
    words = set(audience.split("_"))
    for spec in routes.get(rule.severity, []):
        if spec.target in words:
            return spec.name
    if words <= EXECUTIVE_TITLES:
        for spec in everyone:
            if spec.target == EXECUTIVE_TARGET:
                return spec.name
    return f"slack_{audience}"


def _receiver_specs(
    rules: list[RuleSpec], routes: dict[str, list[ReceiverSpec]]
) -> list[ReceiverSpec]:
    specs = {spec.name: spec for items in routes.values() for spec in items}
    for rule in rules:
        for name in rule.receivers:
            if name not in specs:
                target = name.removeprefix("slack_")
                specs[name] = ReceiverSpec(name, ReceiverKind.SLACK, target)
    return list(specs.values())


def _apply_receivers(
    specs: list[ReceiverSpec], report: ImportReport
) -> dict[str, Receiver]:
    existing = {r.name: r for r in Receiver.objects.select_for_update()}
    by_name = {}
    for spec in specs:
        receiver = existing.get(spec.name)
        label = f"receiver {spec.name}"
        if receiver is None:
            receiver = Receiver.objects.create(
                name=spec.name, kind=spec.kind, target=spec.target
            )
            report.created.append(label)
        else:
            changes = _receiver_changes(receiver, spec)
            if changes:
                receiver.kind, receiver.target = spec.kind, spec.target
                receiver.save(update_fields=["kind", "target"])
                report.updated[label] = changes
            else:
                report.unchanged.append(label)
        by_name[spec.name] = receiver
    return by_name


def _receiver_changes(receiver: Receiver, spec: ReceiverSpec) -> list[str]:
    changes = []
    if receiver.kind != spec.kind:
        changes.append(f"kind: {receiver.kind} -> {spec.kind}")
    if receiver.target != spec.target:
        changes.append(f"target: {receiver.target} -> {spec.target}")
    return changes


def _apply_routes(
    routes: dict[str, list[ReceiverSpec]],
    receivers: dict[str, Receiver],
    report: ImportReport,
) -> None:
    for severity in Severity.values:
        wanted = [spec.name for spec in routes.get(severity, [])]
        current = list(
            Route.objects.filter(severity=severity)
            .order_by("position")
            .values_list("receiver__name", flat=True)
        )
        label = f"routing {severity}"
        if wanted == current:
            if wanted:
                report.unchanged.append(label)
            continue
        Route.objects.filter(severity=severity).delete()
        Route.objects.bulk_create(
            Route(severity=severity, receiver=receivers[name], position=position)
            for position, name in enumerate(wanted, start=1)
        )
        change = f"{', '.join(current) or 'none'} -> {', '.join(wanted) or 'none'}"
        report.updated[label] = [change]


def _apply_rules(
    rules: list[RuleSpec], receivers: dict[str, Receiver], report: ImportReport
) -> None:
    existing = {rule.name: rule for rule in EscalationRule.objects.select_for_update()}
    for spec in rules:
        rule = existing.get(spec.name)
        label = f"rule {spec.name}"
        wanted = sorted(set(spec.receivers))
        if rule is None:
            rule = EscalationRule.objects.create(**_rule_fields(spec), name=spec.name)
            rule.receivers.set([receivers[name] for name in wanted])
            report.created.append(label)
            continue
        changes = [
            f"{key}: {getattr(rule, key)!r} -> {value!r}"
            for key, value in _rule_fields(spec).items()
            if getattr(rule, key) != value
        ]
        current = sorted(rule.receivers.values_list("name", flat=True))
        if current != wanted:
            changes.append(f"receivers: {current} -> {wanted}")
            rule.receivers.set([receivers[name] for name in wanted])
        if not changes:
            report.unchanged.append(label)
            continue
        for key, value in _rule_fields(spec).items():
            setattr(rule, key, value)
        rule.save()
        report.updated[label] = changes
    names = {spec.name for spec in rules}
    report.not_in_file = sorted(name for name in existing if name not in names)


def _rule_fields(spec: RuleSpec) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "condition_text": spec.condition_text,
        "condition": spec.condition,
        "action": spec.action,
        "severity": spec.severity,
        "groups": spec.groups,
    }
    if spec.enabled is not None:
        fields["enabled"] = spec.enabled
    return fields
