"""Every "SPEC §x.y", "DESIGN §n", "STACK §n" cited in the repository resolves to a heading of
docs/spec.md, docs/design.md or docs/stack.md, and nothing points outside the checkout.

Why: comments cite the method's sections instead of repeating formulas; a citation that leads
nowhere (a renumbered or missing section, a document outside the repository) is a broken
reference a reader cannot follow.

Rules for a section reference ``§N`` (N = 7, 7.1, 6.1.2; ranges 7.1-7.3 / 7.9–7.11 expand):
* right after SPEC / DESIGN / STACK (optionally ``.md``, across a line break too): that document;
* after another reference with only a separator between (``, / ; +`` and/or): the same document;
* otherwise, in docs/spec.md, docs/design.md, docs/stack.md: that file itself; elsewhere: the
  document named last before it in the same file (SPEC when none is).
``SPEC 7.1`` (no §) counts as a citation too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = {"SPEC": REPO / "docs/spec.md", "DESIGN": REPO / "docs/design.md", "STACK": REPO / "docs/stack.md"}
OWN_DOC = {path.resolve(): name for name, path in DOCS.items()}
SELF = Path(__file__).resolve()
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml"}
#: directories never scanned: tooling, environments, DVC/Zarr outputs
PRUNE = {".git", ".venv", "venv", ".dvc", "__pycache__", ".pytest_cache", "node_modules"}
TOP_LEVEL_PRUNE = {"cache"}

NUM = r"\d+(?:\.\d+)*"
TOKEN = re.compile(
    rf"(?P<key>\b(?:SPEC|DESIGN|STACK)\b)(?:\.md)?"
    rf"|§\s*(?P<sec>{NUM})(?:\s*[-–]\s*(?P<end>{NUM}))?"
)
#: "SPEC 7.1" without the section sign
BARE_NUMBER = re.compile(rf"\s+(?P<sec>{NUM})(?:\s*[-–]\s*(?P<end>{NUM}))?(?=[\s),.;:]|$)")
#: what may stand between a document name and its first "§" (spaces, a line break with a
#: comment marker, an opening parenthesis)
AFTER_KEY = re.compile(r"(?:\.md)?[\s#(*]*")
#: what may stand between two references of one list
LIST_SEP = re.compile(r"\s*(?:[,/;+&]|\band\b|\bor\b)?\s*(?:\band\b\s*)?")
HEADING = re.compile(rf"^#{{1,6}}\s+(?:§\s*)?(?P<num>{NUM})\.?(?:\s|$)", re.M)
#: a path outside the checkout (built from pieces so this file does not match itself)
OUTSIDE = re.compile(re.escape("../" + "shared/") + "|" + re.escape("/work/" + "shared"))


def scanned_files() -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(REPO):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if d not in PRUNE and not d.endswith((".egg-info", ".zarr")) and not (here == REPO and d in TOP_LEVEL_PRUNE)
        )
        out += [here / f for f in sorted(filenames) if Path(f).suffix in SUFFIXES]
    return [p for p in out if p.resolve() != SELF]  # this file's examples are not citations


def headings(path: Path) -> set[str]:
    return {m.group("num") for m in HEADING.finditer(path.read_text(encoding="utf-8"))}


def expand(start: str, end: str | None) -> list[str]:
    """§7.1-7.3 → 7.1, 7.2, 7.3 (same parent); other ranges → both ends."""
    if end is None:
        return [start]
    a, b = start.split("."), end.split(".")
    if len(a) == len(b) and a[:-1] == b[:-1] and int(a[-1]) <= int(b[-1]):
        return [".".join([*a[:-1], str(i)]) for i in range(int(a[-1]), int(b[-1]) + 1)]
    return [start, end]


def citations(text: str, own_doc: str | None) -> list[tuple[int, str, str]]:
    """(line, document, section) of every section reference in ``text``."""
    found: list[tuple[int, str, str]] = []
    last_key: str | None = None  # document named last (default for unattached references)
    prev: tuple[str, int, str | None] | None = None  # ("key"|"sec", end offset, document)

    def add(pos: int, doc: str, start: str, end: str | None) -> None:
        line = text.count("\n", 0, pos) + 1
        found.extend((line, doc, s) for s in expand(start, end))

    for m in TOKEN.finditer(text):
        if m.group("key"):
            key = m.group("key")
            last_key = key
            prev = ("key", m.end(), key)
            bare = BARE_NUMBER.match(text, m.end())
            if bare and not text[m.end() : bare.start("sec")].strip():
                add(bare.start("sec"), key, bare.group("sec"), bare.group("end"))
                prev = ("sec", bare.end(), key)
            continue
        gap = text[prev[1] : m.start()] if prev else None
        if prev and prev[0] == "key" and AFTER_KEY.fullmatch(gap):
            doc = prev[2]
        elif prev and prev[0] == "sec" and LIST_SEP.fullmatch(gap):
            doc = prev[2]
        else:
            doc = own_doc or last_key or "SPEC"
        add(m.start(), doc, m.group("sec"), m.group("end"))
        prev = ("sec", m.end(), doc)
    return found


def test_docs_exist_and_say_what_cites_them():
    for name, path in DOCS.items():
        assert path.is_file(), f"{path.relative_to(REPO)} is missing"
        head = path.read_text(encoding="utf-8")[:600]
        assert f"{name} §n" in head, f"{path.relative_to(REPO)} must say at the top that {name} §n refers to it"


def test_every_cited_section_has_a_heading():
    sections = {name: headings(path) for name, path in DOCS.items()}
    broken = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        if "§" not in text and not re.search(r"\b(?:SPEC|DESIGN|STACK)\b", text):
            continue
        for line, doc, sec in citations(text, OWN_DOC.get(path.resolve())):
            if sec not in sections[doc]:
                broken.append(f"{path.relative_to(REPO)}:{line}: {doc} §{sec} has no heading in {DOCS[doc].relative_to(REPO)}")
    assert not broken, "citations that lead nowhere:\n" + "\n".join(broken)


def test_nothing_refers_outside_the_checkout():
    bad = []
    for path in scanned_files():
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                bad.append(f"{path.relative_to(REPO)}:{i}: {line.strip()[:120]}")
    assert not bad, "references to files outside the repository:\n" + "\n".join(bad)


# ------------------------------------------------------------------ the scanner itself


@pytest.mark.parametrize(
    "text, own, expected",
    [
        ("see SPEC §7.1 and §7.2", None, [(1, "SPEC", "7.1"), (1, "SPEC", "7.2")]),
        ("(SPEC §6.1, §7.1-7.3)", None, [(1, "SPEC", s) for s in ("6.1", "7.1", "7.2", "7.3")]),
        ("SPEC §7.9–7.11", None, [(1, "SPEC", s) for s in ("7.9", "7.10", "7.11")]),
        ("SPEC §6.1/§7.1: 1e-6", None, [(1, "SPEC", "6.1"), (1, "SPEC", "7.1")]),
        ("STACK §11 pitfall 8", None, [(1, "STACK", "11")]),
        ("see STACK.md §8 for", None, [(1, "STACK", "8")]),
        ("whole cloud (SPEC\n   §11.19 crashes)", None, [(2, "SPEC", "11.19")]),
        ("# the rule of SPEC\n# §5.6 applies", None, [(2, "SPEC", "5.6")]),
        ("SPEC 7.1 says", None, [(1, "SPEC", "7.1")]),
        ("DESIGN §4) and later §7.2", None, [(1, "DESIGN", "4"), (1, "DESIGN", "7.2")]),
        ("STACK §6; SPEC §9", None, [(1, "STACK", "6"), (1, "SPEC", "9")]),
        ("no name: §8.1", None, [(1, "SPEC", "8.1")]),
        ("DESIGN §3. Then §6.2", "SPEC", [(1, "DESIGN", "3"), (1, "SPEC", "6.2")]),
        ("DESIGN §4. SPEC_CENTRES = 1; SPECIAL §2", None, [(1, "DESIGN", "4"), (1, "DESIGN", "2")]),
        ("SPEC §6.1.2).", None, [(1, "SPEC", "6.1.2")]),
    ],
)
def test_scanner_reads_citation_forms(text, own, expected):
    assert citations(text, own) == expected


def test_scanner_reports_a_missing_section():
    """A made-up citation is caught: the check is not vacuous."""
    sections = headings(DOCS["SPEC"])
    assert "7.1" in sections and "99.9" not in sections
    cited = citations("docstring (SPEC §99.9)", None)
    assert cited == [(1, "SPEC", "99.9")] and cited[0][2] not in sections
