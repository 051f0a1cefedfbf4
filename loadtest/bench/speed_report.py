#!/usr/bin/env python3
"""The report of loadtest/bench/speed.sh (stdlib only): prints the tables and
writes the "speed" section of RESULTS.md between its markers (the rest of
the file is kept; the section is appended when the markers are absent).

  speed_report.py RESULTS_TSV LABELS_TSV META_JSON MD_PATH

RESULTS_TSV: case, role, rep, seconds, bytes, bottles, peak RSS KiB, CPU s
(lib.sh's `record`); LABELS_TSV: case, role, label.
"""

import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import fmt, render, replace_section  # noqa: E402

CASES = {
    "big": "{size} bottle into a directory, no rate cap",
    "capped": "{size} bottle, stand-in capped at {rate} MB/s per connection",
    "small": "{bottles} small bottles",
    "s3": "{size} bottle into S3 (moto_server)",
}
# (case, role, baseline role, goal: minimum ratio or None)
RATIOS = [
    ("big", "bottlesync", "curl", 0.9),
    ("big", "baseline", "curl", None),
    ("capped", "bottlesync", "curl", 3.5),
    ("capped", "bottlesync", "aria2c", 1.0),
    ("capped", "baseline", "curl", None),
    ("capped", "baseline", "aria2c", None),
    ("small", "bottlesync", "aria2c", 1.5),
    ("small", "bottlesync", "ceiling", 0.25),
    ("small", "aria2c", "ceiling", None),
    ("big", "bottlesync", "baseline", None),
    ("capped", "bottlesync", "baseline", None),
    ("s3", "bottlesync", "baseline", None),
]
RSS_GOAL_MIB = 96
# Short names of the roles in the ratio rows (the tables have the full ones).
SHORT = {
    "bottlesync": "bottlesync",
    "baseline": "BASELINE_BOTTLESYNC",
    "curl": "curl -o",
    "aria2c": "aria2c",
    "ceiling": "stand-in ceiling",
}


def main(results_path, labels_path, meta_path, md_path):
    meta = json.load(open(meta_path))
    labels = {}
    for line in open(labels_path):
        case, role, label = line.rstrip("\n").split("\t")
        labels[(case, role)] = label
    runs, order = {}, []
    for line in open(results_path):
        if not line.strip():
            continue
        case, role, _rep, secs, nbytes, nbottles, rss, cpu = line.rstrip("\n").split("\t")
        if (case, role) not in runs:
            runs[(case, role)] = []
            order.append((case, role))
        runs[(case, role)].append(
            {
                "secs": float(secs),
                "bytes": int(nbytes),
                "bottles": int(nbottles),
                "rss": int(rss) if rss not in ("", "-") else None,
                "cpu": float(cpu) if cpu not in ("", "-") else None,
            }
        )

    def med(key, field):
        values = [r[field] for r in runs.get(key, []) if r[field] is not None]
        return statistics.median(values) if values else None

    def rate(key):
        """Bottles/s for small bottles, MB/s otherwise."""
        if key not in runs:
            return None
        first = runs[key][0]
        secs = med(key, "secs")
        return first["bottles"] / secs if key[0] == "small" else first["bytes"] / secs / 1e6

    def opt(x, digits):
        return fmt(x, digits) if x is not None else "-"

    size = meta.get("big_size", "?")
    titles = {
        case: title.format(size=size, rate=meta.get("conn_rate", "?"), bottles=meta.get("plan_bottles") or "~2,000")
        for case, title in CASES.items()
    }
    rows = []
    for key in order:
        case, role = key
        unit = "bottles/s" if case == "small" else "MB/s"
        rss = med(key, "rss")
        rows.append(
            [
                titles[case],
                labels.get(key, role),
                fmt(med(key, "secs")),
                f"{fmt(rate(key), 1)} {unit}",
                ", ".join(fmt(r["secs"]) for r in runs[key]),
                opt(med(key, "cpu"), 2),
                opt(rss / 1024 if rss is not None else None, 1),
            ]
        )

    ratio_rows = []
    for case, role, base, goal in RATIOS:
        a, b = rate((case, role)), rate((case, base))
        if not a or not b:
            continue
        verdict = f" (goal >= {goal}x: {'met' if a / b >= goal else 'NOT met'})" if goal else ""
        unit = "bottles/s" if case == "small" else "MB/s"
        ratio_rows.append(
            [
                f"{titles[case]}, {unit}: {SHORT[role]} / {SHORT[base]}",
                f"{fmt(a / b)}x{verdict}",
            ]
        )
    rss_values = [
        (case, med((case, "bottlesync"), "rss")) for case in ("big", "capped") if (case, "bottlesync") in runs
    ]
    rss_values = [(c, v) for c, v in rss_values if v is not None]
    rss_line = None
    if rss_values:
        case, worst = max(rss_values, key=lambda cv: cv[1])
        mib = worst / 1024
        rss_line = (
            f"peak RSS of bottlesync on the {size} bottle, the larger median of sections big and capped "
            f"({case}; flags: {meta.get('seg_note', '')}): {fmt(mib, 1)} MiB "
            f"(goal < {RSS_GOAL_MIB} MiB: {'met' if mib < RSS_GOAL_MIB else 'NOT met'})"
        )
    s3_rss = med(("s3", "bottlesync"), "rss")
    s3_line = (
        f"S3 on moto: bottlesync {fmt(rate(('s3', 'bottlesync')), 1)} MB/s, peak RSS {fmt(s3_rss / 1024, 1)} MiB "
        "(moto_server runs on the same CPUs and keeps the object in memory: a floor, not S3's speed)"
        if ("s3", "bottlesync") in runs and s3_rss is not None
        else None
    )

    notes = [n for n in meta.get("notes", "").splitlines() if n.strip()]
    aria_line = None
    aria_big = [n for n in notes if n.startswith("capped, aria2c:")]
    if aria_big:
        counters = dict(kv.split("=", 1) for kv in aria_big[-1].split(": ", 1)[1].split())
        gets, ranged = int(counters.get("storage_gets", 0)), int(counters.get("range_requests", 0))
        aria_line = (
            f"aria2c -x4 -s4 (last run): {gets} storage GETs, {ranged} with a Range header, "
            + ("so it used 4 connections at once." if gets >= 4 else "FEWER than 4: it did not split the download.")
        )

    headers = ["workload", "tool", "median s", "rate", "runs (s)", "CPU s", "peak RSS MiB"]
    runs_table = render(rows, headers)
    ratio_table = render(ratio_rows, ["ratio (throughput; >1 = the first one faster)", "value"])
    legend = (
        f"Median of {meta['reps']} interleaved runs; MB = 10^6 bytes; wall-clock seconds; "
        "CPU s = user+sys of the measured command and its children (not the stand-in)."
    )
    print()
    print(runs_table[0])
    print()
    print(ratio_table[0])
    print()
    for line in (rss_line, s3_line, aria_line, legend):
        if line:
            print(line)

    md = [
        "## Speed (issue 13)",
        "",
        f"- date: {meta['date']}",
        f"- machine: nproc={meta['nproc']}, CPU: {meta['cpu']}, RAM: {meta['mem']}, kernel {meta['kernel']}",
        f"- work dir filesystem: {meta['fs']}",
        f"- load average before / after: {meta['load_before']} / {meta['load_after']}",
        f"- git: {meta['git']}; binaries: {meta.get('build_note', '?')}",
        f"- command: `{meta['command']}`",
        f"- benchmark time (excluding the cargo build): {meta['elapsed']} s",
        "",
        legend,
        "",
        runs_table[1],
        "",
        ratio_table[1],
        "",
    ]
    md += [f"- {line}" for line in (rss_line, s3_line, aria_line) if line]
    md += [
        f"- bottlesync: `sync --dest DIR --tags arm64_tahoe --progress log {meta.get('seg_note', '')}` for the big "
        f"bottle (the whole process: index, plan, download, SHA-256, fsync, rename), "
        f"`--concurrency {meta.get('small_concurrency', '?')}` for the small ones; a fresh destination each run.",
        "- `curl -o file`: `curl -s -o FILE SIGNED_URL` (the signed URL fetched beforehand, untimed): one stream, "
        "no hashing, no fsync.",
        "- `aria2c -x4 -s4`: `aria2c -x4 -s4 --checksum=sha-256=HEX -d DIR -o NAME SIGNED_URL` (it checks the digest "
        "after the download); aria2c cannot carry the registry's Bearer token across its 307, so it gets the "
        "signed storage URL, resolved beforehand and untimed.",
    ]
    if meta.get("plan_bottles"):
        md += [
            f"- small bottles: `bottlesync-fixture --preset generated --formulae {meta['small_formulae']} "
            f"--seed {meta['small_seed']} --median-size 64KiB --max-size 1MiB`, the {meta['plan_bottles']} "
            f"bottles ({meta['plan_bytes']} bytes) of `--tags` as run.sh; aria2c: `aria2c "
            f"-j{meta['small_concurrency']} -i LIST -d DIR`, each entry `out=NAME` and `checksum=sha-256=HEX`, the "
            f"signed URLs resolved beforehand by one `curl -Z` (median {meta.get('resolve_secs') or '?'} s, not "
            "counted); ceiling: one `curl -Z -L` with the token to /dev/null, no hashing, no disk (as run.sh).",
        ]
    md += [
        "- S3: a fresh `moto_server` per run, bucket `bench`, `--dest s3://bench/mirror`, "
        "AWS_ENDPOINT_URL and dummy credentials.",
        "",
    ]
    if notes:
        md += ["Stand-in counters (last run of each):", ""]
        md += [f"- {n}" for n in notes]
        md.append("")
    replace_section(md_path, "speed", "loadtest/bench/speed.sh", "\n".join(md))


if __name__ == "__main__":
    main(*sys.argv[1:])
