"""Just enough of CloudFormation and EventBridge to check deploy/cloudformation offline: `Fn::Sub`
rendering for the template's ARNs, and EventBridge pattern matching for the rule's pattern.

Both refuse what they do not implement (raise), so a template that grows a construct they do
not know fails the tests instead of being checked against a wrong model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cfnlint.decode.decode import decode_str

PSEUDO_PARAMETERS = {"AWS::Partition": "aws", "AWS::Region": "eu-west-2"}
ACCOUNT = "111122223333"
INSTANCE_ID = "8f3c2a1e-5b7d-4c9e-a0f1-23456789abcd"


def load_template(path: Path) -> dict[str, Any]:
    """The template as plain data; short-form tags (`!Sub`) become `{"Fn::Sub": ...}`."""
    template, errors = decode_str(path.read_text())
    assert not errors, errors
    assert template is not None
    return template


def render_sub(value: Any, parameters: dict[str, str]) -> str:
    """The string an `{"Fn::Sub": "..."}` (no variable map) renders to with these values."""
    assert isinstance(value, dict) and set(value) == {"Fn::Sub"}, value
    text = value["Fn::Sub"]
    assert isinstance(text, str), "Fn::Sub with a variable map is not implemented here"
    known = {**PSEUDO_PARAMETERS, "AWS::AccountId": ACCOUNT, **parameters}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in known:
            raise KeyError(f"no value for ${{{name}}} in {text!r}")
        return known[name]

    return re.sub(r"\$\{([^}!]+)\}", substitute, text)


def render_pattern(pattern: Any, parameters: dict[str, str]) -> Any:
    """The event pattern with every `Fn::Sub` rendered."""
    if isinstance(pattern, dict):
        if set(pattern) == {"Fn::Sub"}:
            return render_sub(pattern, parameters)
        return {key: render_pattern(value, parameters) for key, value in pattern.items()}
    if isinstance(pattern, list):
        return [render_pattern(value, parameters) for value in pattern]
    return pattern


def pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge matching for exact values: every key of the pattern must be in the event, a
    list of values matches a field equal to one of them, an object recurses into the field."""
    for key, wanted in pattern.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(wanted, dict):
            if not isinstance(actual, dict) or not pattern_matches(wanted, actual):
                return False
        elif isinstance(wanted, list):
            if any(not isinstance(value, str | int | float | bool) for value in wanted):
                raise NotImplementedError(f"content filters are not implemented: {wanted}")
            if actual not in wanted:
                return False
        else:
            raise ValueError(f"an event pattern value must be a list or an object: {wanted!r}")
    return True
