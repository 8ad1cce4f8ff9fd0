"""Templating of runbook commands and texts: `{name}` from variables, `{{`/`}}` literal braces.

An argv element that is exactly one `{name}` whose value is a list expands to several elements, so a
configured command prefix (e.g. `{openstack}`) stays a list of arguments. Only in display texts is a
list shown shell-quoted; argv is never joined into a string a shell would run.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Mapping, Sequence

from opsctl.errors import UsageError

_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")  # {{ and }} are literal braces


def render_argv(template: Sequence[str], variables: Mapping[str, Any]) -> list[str]:
    """Substitute {var} inside argv elements; an element that is exactly {var} of a list splices it in."""
    argv: list[str] = []
    for element in template:
        whole = _VAR.fullmatch(element)
        if whole and isinstance(variables.get(whole.group(1)), (list, tuple)):
            argv.extend(str(v) for v in variables[whole.group(1)])
            continue
        argv.append(render_text(element, variables))
    return argv


def render_text(text: str, variables: Mapping[str, Any]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name is None:
            return m.group(0)[0]
        if name not in variables or variables[name] is None:
            raise UsageError(f"runbook variable {{{name}}} has no value", hint=f"give it with --set {name}=VALUE")
        value = variables[name]
        if isinstance(value, (list, tuple)):
            return shlex.join(str(v) for v in value)
        return str(value)

    return _TOKEN.sub(sub, text)


def template_vars(template: Sequence[str] | str) -> set[str]:
    items = [template] if isinstance(template, str) else template
    return {m.group(1) for t in items for m in _TOKEN.finditer(t) if m.group(1)}
