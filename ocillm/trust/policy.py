"""The trust policy: for repository globs, whether signatures are off, warned about or enforced.

``$OCILLM_HOME/policy.json`` (or ``--policy FILE``)::

    {"default": "off",
     "keys": ["cosign.pub"],
     "rules": [{"match": "ghcr.io/acme/*", "mode": "enforce", "keys": ["acme.pub"]}]}

Rules are tried in order against ``registry/repository`` (shell globs, ``*`` crosses ``/``); the
first match decides, else ``default``. Key paths are relative to the policy file; a rule without
``keys`` uses the top-level ones. No file means every mode is off; a file that does not parse is
an error, never a silent "off".
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocillm.oci.reference import Reference
from ocillm.trust.errors import TrustError

MODES = ("off", "warn", "enforce")


@dataclass(frozen=True)
class Rule:
    match: str
    mode: str
    keys: tuple[Path, ...]


@dataclass(frozen=True)
class Policy:
    path: Path
    default: Rule
    rules: tuple[Rule, ...] = ()

    def rule_for(self, ref: Reference) -> Rule:
        name = ref.name
        for rule in self.rules:
            if fnmatch.fnmatchcase(name, rule.match):
                return rule
        return self.default


def load_policy(path: Path) -> Policy:
    if not path.exists():
        return Policy(path, Rule("*", "off", ()))
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TrustError(str(path), f"not a readable JSON policy: {e}") from None
    if not isinstance(body, dict):
        raise TrustError(str(path), "a policy is a JSON object")
    base = path.parent
    top_keys = _keys(path, base, body.get("keys", []), "keys")
    default = Rule("*", _mode(path, body.get("default", "off"), "default"), top_keys)
    rules = []
    raw_rules = body.get("rules", [])
    if not isinstance(raw_rules, list):
        raise TrustError(str(path), "rules: expected a list")
    for i, item in enumerate(raw_rules):
        where = f"rules[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("match"), str):
            raise TrustError(str(path), f"{where}: expected an object with a match glob")
        keys = _keys(path, base, item["keys"], f"{where}.keys") if "keys" in item else top_keys
        rules.append(Rule(item["match"], _mode(path, item.get("mode"), f"{where}.mode"), keys))
    for rule in (default, *rules):
        if rule.mode != "off" and not rule.keys:
            raise TrustError(str(path), f"{rule.match}: mode {rule.mode} names no keys")
    return Policy(path, default, tuple(rules))


def _mode(path: Path, value: Any, where: str) -> str:
    if value not in MODES:
        raise TrustError(str(path), f"{where}: {value!r} is not one of {', '.join(MODES)}")
    return str(value)


def _keys(path: Path, base: Path, value: Any, where: str) -> tuple[Path, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrustError(str(path), f"{where}: expected a list of key file paths")
    return tuple((base / v).expanduser() for v in value)
