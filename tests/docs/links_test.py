#!/usr/bin/env python3
"""Every relative link in README.md and docs/**/*.md points at a file that exists
(and, with a #fragment into a Markdown file, at a heading that exists there).

Usage: links_test.py SOURCE_DIR
"""
import re
import sys
from pathlib import Path

# Written by other engineers in parallel with these docs; allowed to be missing
# until they land. Remove an entry once its file is on main.
PENDING: set[str] = set()  # pages another change is writing; empty when all have landed

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces -> '-'."""
    result = set()
    for line in path.read_text().splitlines():
        m = re.match(r"^#{1,6}\s+(.*)", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            result.add(text.replace(" ", "-"))
    return result


def main():
    root = Path(sys.argv[1]).resolve()
    files = [root / "README.md"] + sorted((root / "docs").rglob("*.md"))
    problems, checked, pending = [], 0, 0
    for md in files:
        in_code = False
        for number, line in enumerate(md.read_text().splitlines(), 1):
            if line.startswith("```"):
                in_code = not in_code
            if in_code:
                continue
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target) or target.startswith("#") and not target[1:]:
                    continue  # http:, mailto:
                path_part, _, fragment = target.partition("#")
                dest = (md.parent / path_part).resolve() if path_part else md
                where = f"{md.relative_to(root)}:{number}"
                checked += 1
                if not dest.exists():
                    rel = dest.relative_to(root).as_posix() if dest.is_relative_to(root) else str(dest)
                    if rel in PENDING:
                        pending += 1
                        continue
                    problems.append(f"{where}: {target} does not exist")
                elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                    problems.append(f"{where}: {target}: no heading #{fragment} in {dest.name}")
    for p in problems:
        print("FAIL:", p)
    print(f"{checked} links in {len(files)} files checked ({pending} to files other engineers are writing)")
    if problems or checked == 0:
        sys.exit(1)
    print("ok: every relative link resolves")


if __name__ == "__main__":
    main()
