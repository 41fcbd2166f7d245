"""Parse `swanctl --pretty` output (vici messages printed one item per line) into dicts.

    list-sa event {
      home {
        state = ESTABLISHED
        local-vips = [
          10.3.0.1
        ]
        child-sas {
          home-1 {
            ...
Every `<name> event {` / `<name> reply {` block becomes one dict; sections become dicts,
lists become lists of strings, values stay strings (vici sends them as text).
"""

from __future__ import annotations


def parse_pretty(text: str, kind: str = "event") -> list[dict]:
    """Return the bodies of the top-level messages of `kind` ("event" or "reply")."""
    messages: list[dict] = []
    stack: list = []          # open containers, innermost last
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line:
            continue
        if not stack:
            if line.endswith("{"):
                body: dict = {}
                stack.append(body)
                if line[:-1].strip().endswith(kind):
                    messages.append(body)
            continue
        top = stack[-1]
        if line == "}" or line == "]":
            stack.pop()
        elif isinstance(top, list):
            top.append(line)
        elif line.endswith("{"):
            section: dict = {}
            top[line[:-1].strip()] = section
            stack.append(section)
        elif line.endswith("= ["):
            items: list = []
            top[line[:-3].strip()] = items
            stack.append(items)
        elif " = " in line:
            key, value = line.split(" = ", 1)
            top[key.strip()] = value
        elif line.endswith(" ="):
            top[line[:-2].strip()] = ""
        else:
            raise ValueError(f"unexpected line in swanctl output: {raw_line!r}")
    return messages
