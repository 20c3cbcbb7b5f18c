#!/usr/bin/env python3
"""Checks docs/reliability.md against the test suite and the checklist.

Fails (exit 1, one line per problem) when:
  - a test the table names does not exist: `crate/path.rs::name` needs a
    `fn name` in that file; `sock-lua/tests/lua/test_x.lua: "name"` needs a
    `t.test('name'` or `t.test("name"` there, the name matching exactly; a
    file named alone (`scripts/scale.sh`) must exist;
  - a row's id is not in the document's id list, or appears twice, or an id
    of the list has no row;
  - a row's status is not one of covered / partly / not covered, a covered or
    partly covered row names no test, or a not covered row names one;
  - the checklist (RELIABILITY.md in ../shared or /work/shared) is there and
    its ids differ from the document's list.

Standard library only; run from anywhere: python3 scripts/check-reliability.py
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "reliability.md")
CHECKLISTS = [
    os.path.join(os.path.dirname(ROOT), "shared", "RELIABILITY.md"),
    "/work/shared/RELIABILITY.md",
]
STATUSES = ("covered", "partly", "not covered")

# The id list: a line "Ids: A1-A7 B1-B7 ..." (ranges of one letter).
IDS_LINE = re.compile(r"^Ids:\s*(.+)$", re.M)
RANGE = re.compile(r"^([A-Z])(\d+)(?:[-\u2013]\1?(\d+))?$")
# A table row: | **A1** | what | status | tests and notes |
ROW = re.compile(r"^\|\s*\*\*([A-Z]\d+)\*\*\s*\|(.*)$")
# References, in backticks.
RUST_REF = re.compile(r"`([\w./-]+\.rs)::(\w+)`")
LUA_REF = re.compile(r'`([\w./-]+\.lua): "(.*?)"`')
# Other files named in a row (a script, a test program): `scripts/scale.sh`.
FILE_REF = re.compile(r"`((?:scripts|sock[\w-]*|bench|examples)/[\w./-]+\.(?:sh|lua|rs|py|md))`")
# Checklist items: * **A1. ...
CHECKLIST_ID = re.compile(r"^\*\s+\*\*([A-Z]\d+)\.", re.M)
# A Lua test: t.test(<string literal>
LUA_TEST = re.compile(r"""\bt\.test\(\s*(?:'((?:[^'\\\n]|\\.)*)'|"((?:[^"\\\n]|\\.)*)")""")
LUA_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


def expand(spec, errors):
    ids = []
    for part in spec.split():
        m = RANGE.match(part)
        if not m:
            errors.append(f"docs/reliability.md: bad entry {part!r} in the Ids line")
            continue
        letter, lo, hi = m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))
        ids.extend(f"{letter}{i}" for i in range(lo, hi + 1))
    return ids


def lua_unescape(s):
    return re.sub(r"\\(.)", lambda m: LUA_ESCAPES.get(m.group(1), m.group(0)), s)


_files = {}


def read(rel):
    if rel not in _files:
        path = os.path.join(ROOT, rel)
        try:
            with open(path, encoding="utf-8") as f:
                _files[rel] = f.read()
        except OSError:
            _files[rel] = None
    return _files[rel]


_lua_names = {}


def lua_names(rel):
    if rel not in _lua_names:
        text = read(rel)
        _lua_names[rel] = (
            None
            if text is None
            else {
                lua_unescape(m.group(1) if m.group(1) is not None else m.group(2))
                for m in LUA_TEST.finditer(text)
            }
        )
    return _lua_names[rel]


def main():
    errors = []
    try:
        with open(DOC, encoding="utf-8") as f:
            doc = f.read()
    except OSError as e:
        print(f"check-reliability: cannot read docs/reliability.md: {e}")
        return 1

    m = IDS_LINE.search(doc)
    if not m:
        print("check-reliability: docs/reliability.md has no 'Ids: ...' line")
        return 1
    ids = expand(m.group(1), errors)
    known = set(ids)

    seen = {}
    refs = 0
    for lineno, line in enumerate(doc.splitlines(), 1):
        r = ROW.match(line)
        if not r:
            continue
        where = f"docs/reliability.md:{lineno}"
        item, rest = r.group(1), r.group(2)
        cells = [c.strip() for c in rest.rstrip().rstrip("|").split("|")]
        if item not in known:
            errors.append(f"{where}: {item} is not an id of the checklist (the Ids line)")
        if item in seen:
            errors.append(f"{where}: {item} has a row already (line {seen[item]})")
        seen.setdefault(item, lineno)
        if len(cells) < 3:
            errors.append(f"{where}: {item}: a row needs id, behaviour, status, tests")
            continue
        status = cells[1].strip("* ").lower()
        if status not in STATUSES:
            errors.append(f"{where}: {item}: status {cells[1]!r} is not one of {', '.join(STATUSES)}")
        named = 0
        for path, name in RUST_REF.findall(line):
            named += 1
            text = read(path)
            if text is None:
                errors.append(f"{where}: {item}: no file {path} (for {path}::{name})")
            elif not re.search(r"\bfn\s+" + re.escape(name) + r"\b", text):
                errors.append(f"{where}: {item}: no fn {name} in {path}")
        for path, name in LUA_REF.findall(line):
            name = name.replace("\\|", "|")  # a pipe escaped for the table
            named += 1
            names = lua_names(path)
            if names is None:
                errors.append(f"{where}: {item}: no file {path} (for the test \"{name}\")")
            elif name not in names:
                errors.append(f"{where}: {item}: no t.test named \"{name}\" in {path}")
        for path in FILE_REF.findall(line):
            if read(path) is None:
                errors.append(f"{where}: {item}: no file {path}")
        refs += named
        if status in ("covered", "partly") and named == 0:
            errors.append(f"{where}: {item} is '{status}' but names no test")
        if status == "not covered" and named:
            errors.append(f"{where}: {item} is 'not covered' but names {named} test(s)")

    for item in ids:
        if item not in seen:
            errors.append(f"docs/reliability.md: {item} (in the Ids line) has no row in the table")

    checklist = next((p for p in CHECKLISTS if os.path.isfile(p)), None)
    if checklist:
        with open(checklist, encoding="utf-8") as f:
            theirs = CHECKLIST_ID.findall(f.read())
        if set(theirs) != known or len(theirs) != len(ids):
            missing = [i for i in theirs if i not in known]
            extra = [i for i in ids if i not in set(theirs)]
            errors.append(
                f"docs/reliability.md: the Ids line differs from {checklist}:"
                f" not in the Ids line {missing or '-'}, not in the checklist {extra or '-'}"
            )

    if errors:
        for e in errors:
            print(e)
        print(f"check-reliability: {len(errors)} problem(s) in docs/reliability.md")
        return 1
    print(
        f"check-reliability: {len(seen)} items, {refs} test references found"
        + (f", ids as in {checklist}" if checklist else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
