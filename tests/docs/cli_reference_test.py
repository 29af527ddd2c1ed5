#!/usr/bin/env python3
"""docs/cli.md against the tools' --help, both ways (the tools are the truth).

For each tool, the options --help prints (iotbridge-db: --help-all, every
verb's options, and the verbs themselves) must all be documented in the flag
tables of docs/cli.md, and every option those tables document must be in
--help. An option is a long `--name` or a short `-x`.

Which tables belong to which tool: the `## ` section of docs/cli.md they are in.
  "## Flags both tools take"   iotbridge-pub and iotbridge-sub
  "## iotbridge-pub"           iotbridge-pub
  "## iotbridge-sub"           iotbridge-sub (with its ### subsections)
  "## iotbridge-db"            iotbridge-db
  "## iotbridge-recorder"      iotbridge-recorder
Only the first cell of a table row documents options (prose may mention other
tools' flags, mosquitto_pub's for one). The section "## Not supported (yet)"
is checked the other way: none of the options it names is in any --help.

Usage: cli_reference_test.py DOCS_CLI_MD CLI_DIR
"""
import re
import subprocess
import sys
from pathlib import Path

OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[A-Za-z0-9])(?![\w-])")
SECTIONS = {
    "Flags both tools take": {"iotbridge-pub", "iotbridge-sub"},
    "iotbridge-pub": {"iotbridge-pub"},
    "iotbridge-sub": {"iotbridge-sub"},
    "iotbridge-db": {"iotbridge-db"},
    "iotbridge-recorder": {"iotbridge-recorder"},
}
UNSUPPORTED = "Not supported (yet)"


def help_text(cli_dir, tool):
    flag = "--help-all" if tool == "iotbridge-db" else "--help"
    run = subprocess.run([str(Path(cli_dir) / tool), flag], capture_output=True, text=True, timeout=30)
    if run.returncode != 0:
        sys.exit(f"FAIL: {tool} {flag} exited with {run.returncode}: {run.stderr}")
    return run.stdout


def help_options(text):
    """Options in CLI11's help layout ("  -h,--host TEXT   Broker host"), and verbs."""
    options, verbs = set(), set()
    in_subcommands = False
    for line in text.splitlines():
        if line.startswith("Subcommands:"):
            in_subcommands = True
            continue
        m = re.match(r"^\s+(-[^\s]+)", line)
        if m:
            options.update(OPTION.findall(m.group(1).replace(",", " ")))
        # --help lists "  find   Print ..." ; --help-all lists "find" alone on a line.
        if in_subcommands:
            v = re.match(r"^\s{0,2}([a-z]+)(\s{2,}|$)", line)
            if v:
                verbs.add(v.group(1))
    return options, verbs


def doc_tables(markdown):
    """{section: (options in the first cells of its tables, verbs)}"""
    result = {}
    section = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            result.setdefault(section, (set(), set()))
            continue
        if section is None or not line.startswith("|"):
            continue
        cells = line.strip().strip("|").split("|")
        first = cells[0].strip()
        if set(first) <= set("-: "):  # the |---|---| row
            continue
        spans = re.findall(r"`([^`]*)`", first) or [first]
        for span in spans:
            result[section][0].update(OPTION.findall(span))
        # iotbridge-db's verb table: "| `find DB COLLECTION [FILTER]` |"
        v = re.match(r"^`([a-z]+)[ `]", first)
        if v and section == "iotbridge-db":
            result[section][1].add(v.group(1))
    return result


def main():
    doc_path, cli_dir = sys.argv[1], sys.argv[2]
    tables = doc_tables(Path(doc_path).read_text())
    problems = []
    all_help = set()
    for tool in ("iotbridge-pub", "iotbridge-sub", "iotbridge-db", "iotbridge-recorder"):
        help_opts, help_verbs = help_options(help_text(cli_dir, tool))
        all_help |= help_opts
        doc_opts, doc_verbs = set(), set()
        sections = [s for s, tools in SECTIONS.items() if tool in tools]
        for s in sections:
            if s not in tables:
                problems.append(f"docs/cli.md has no section '## {s}'")
                continue
            doc_opts |= tables[s][0]
            doc_verbs |= tables[s][1]
        for o in sorted(help_opts - doc_opts):
            problems.append(f"{tool}: {o} is in --help but not in the docs/cli.md tables of {sections}")
        for o in sorted(doc_opts - help_opts):
            problems.append(f"{tool}: docs/cli.md documents {o}, which --help does not list")
        for v in sorted(help_verbs ^ doc_verbs):
            side = "--help" if v in help_verbs else "docs/cli.md"
            problems.append(f"{tool}: verb '{v}' is only in {side}")
        print(f"{tool}: {len(help_opts)} options and {len(help_verbs)} verbs in --help; "
              f"{len(doc_opts)} options and {len(doc_verbs)} verbs in docs/cli.md")
        if not help_opts:
            problems.append(f"{tool}: no option parsed from --help (has its layout changed?)")
    if UNSUPPORTED in tables:
        text = Path(doc_path).read_text()
        body = text.split("## " + UNSUPPORTED, 1)[1].split("\n## ", 1)[0]
        named = set(re.findall(r"`(--[a-z][a-z0-9-]*)`", body))
        for o in sorted(named & all_help):
            problems.append(f"docs/cli.md says {o} is not supported, but a --help lists it")
    for p in problems:
        print("FAIL:", p)
    if problems:
        sys.exit(1)
    print("ok: docs/cli.md and --help agree")


if __name__ == "__main__":
    main()
