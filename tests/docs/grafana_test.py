#!/usr/bin/env python3
"""packaging/grafana/iotbridge-recorder.json: valid JSON, and every iotbridge_
metric its queries (and docs/operating.md's PromQL) name is a row of the
metrics table (include/iotbridge/record/metrics.hpp), so that a renamed metric
cannot leave a dashboard or an alert silently empty.

Usage: grafana_test.py SOURCE_DIR
"""
import json
import re
import sys
from pathlib import Path


def main():
    root = Path(sys.argv[1])
    table = set(re.findall(r'"(iotbridge_[a-z_]+)"', (root / "include/iotbridge/record/metrics.hpp").read_text()))
    dashboard = json.loads((root / "packaging/grafana/iotbridge-recorder.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    operating = (root / "docs/operating.md").read_text()
    named = set(re.findall(r"iotbridge_[a-z_]+", " ".join(exprs) + operating))
    base = {re.sub(r"_(bucket|sum|count)$", "", n) if n not in table else n for n in named}
    unknown = sorted(n for n in base if n not in table)
    if not exprs or not table:
        sys.exit("FAIL: no query in the dashboard, or no metric in metrics.hpp")
    if unknown:
        sys.exit(f"FAIL: metrics named in the dashboard or docs/operating.md but not in metrics.hpp: {unknown}")
    print(f"ok: {len(exprs)} dashboard queries and docs/operating.md name {len(base)} metrics, all in the table")


if __name__ == "__main__":
    main()
