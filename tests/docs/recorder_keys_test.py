#!/usr/bin/env python3
"""docs/recorder-config.md against `iotbridge-recorder --keys` (the key table
the parser reads), both ways: every key the recorder knows is documented under
its table, and every documented key exists.

Usage: recorder_keys_test.py DOCS_RECORDER_CONFIG_MD IOTBRIDGE_RECORDER
"""
import re
import subprocess
import sys


def from_tool(tool):
    run = subprocess.run([tool, "--keys"], capture_output=True, text=True, timeout=30)
    if run.returncode != 0:
        sys.exit(f"FAIL: {tool} --keys exited with {run.returncode}: {run.stderr}")
    keys, table = set(), None
    for line in run.stdout.splitlines():
        if line.startswith("["):
            table = line.strip()
        elif line.startswith("  ") and table:
            keys.add((table, line.split()[0]))
    return keys


def from_docs(path):
    keys, table = set(), None
    for line in open(path):
        m = re.match(r"^### `(\[.+\])`", line)
        if m:
            table = m.group(1)
            continue
        m = re.match(r"^\| `([a-z_]+)` \|", line)
        if m and table:
            keys.add((table, m.group(1)))
    return keys


def main():
    docs, tool = sys.argv[1], sys.argv[2]
    known, documented = from_tool(tool), from_docs(docs)
    missing = sorted(known - documented)
    unknown = sorted(documented - known)
    if not known:
        sys.exit("FAIL: --keys printed no key")
    if missing or unknown:
        sys.exit(f"FAIL: keys not documented in {docs}: {missing}; documented but unknown to the recorder: {unknown}")
    print(f"ok: {len(known)} keys in --keys and in {docs}")


if __name__ == "__main__":
    main()
