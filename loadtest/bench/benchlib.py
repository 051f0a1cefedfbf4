#!/usr/bin/env python3
"""Small JSON / statistics helpers for loadtest/bench/run.sh (stdlib only).

Subcommands:
  first-url BOTTLES_JSON              url and sha256 of the first stand-in bottle
  plan-count PLAN_JSON                bottles and bytes in a --dry-run report
  baseline-list BOTTLES_JSON PLAN_JSON OUT
                                      writes "url sha256 file_name" lines to OUT:
                                      the stand-in bottles the plan selected (the
                                      same bottles for the curl baseline and
                                      bottlesync); prints their count and bytes
  stats-summary STATS_JSON            one line of the stand-in's request counters
  report RESULTS_TSV META_JSON MD_OUT prints the final table, writes markdown
"""

import json
import re
import statistics
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def first_url(bottles_path):
    bottles = load(bottles_path)
    print(bottles[0]["url"], bottles[0]["sha256"], bottles[0]["size"])


def plan_count(plan_path):
    plan = load(plan_path)
    bottles = plan["bottles"]
    print(len(bottles), sum(b.get("size", 0) for b in bottles))


def baseline_list(bottles_path, plan_path, out_path):
    bottles = load(bottles_path)
    plan = load(plan_path)
    wanted = {(b["sha256"], b["url"]) for b in plan["bottles"]}
    seen = set()
    out = []
    total = 0
    for b in bottles:
        key = (b["sha256"], b["url"])
        if key in wanted and key not in seen:
            seen.add(key)
            out.append(f'{b["url"]} {b["sha256"]} {b["mirror_file_name"]}')
            total += b["size"]
    missing = wanted - seen
    if missing:
        sys.exit(f"{len(missing)} planned bottles are not in /__standin/bottles")
    names = [line.split()[2] for line in out]
    if len(set(names)) != len(names):
        sys.exit("mirror file names are not unique")
    with open(out_path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(len(out), total)


def stats_summary(stats_path):
    s = load(stats_path)
    keys = [
        "index_requests",
        "manifest_requests",
        "head_requests",
        "blob_requests",
        "storage_gets",
        "range_requests",
        "bytes_served",
        "storage_auth_rejections",
        "faults_injected",
    ]
    print(" ".join(f"{k}={s.get(k, 0)}" for k in keys))


# ---------------------------------------------------------------- report


def fmt(x, digits=2):
    return f"{x:.{digits}f}"


def replace_section(md_path, name, writer, text):
    """Puts TEXT between `<!-- NAME: begin (written by WRITER) -->` and
    `<!-- NAME: end -->` in MD_PATH, keeping the rest of the file; appends
    the section when the markers are absent (or the file is)."""
    begin = f"<!-- {name}: begin (written by {writer}) -->"
    end = f"<!-- {name}: end -->"
    section = f"{begin}\n{text.rstrip()}\n{end}\n"
    try:
        with open(md_path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    pattern = re.compile(rf"<!-- {re.escape(name)}: begin.*?<!-- {re.escape(name)}: end -->\n?", re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: section, old, count=1)
    else:
        new = old.rstrip("\n") + ("\n\n" if old.strip() else "") + section
    with open(md_path, "w") as f:
        f.write(new)


def render(rows, headers):
    """Plain-text and markdown renderings of one table."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    text = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    text.append("  ".join("-" * w for w in widths))
    text += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    md = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(text), "\n".join(md)


def report(results_path, meta_path, md_path):
    meta = load(meta_path)
    # results.tsv: case  tool  rep  seconds  bytes  bottles  rss_kb  cpu_s
    runs = {}
    order = []
    with open(results_path) as f:
        for line in f:
            if not line.strip():
                continue
            case, tool, _rep, secs, nbytes, nbottles, rss, cpu = line.rstrip("\n").split("\t")
            key = (case, tool)
            if key not in runs:
                runs[key] = []
                order.append(key)
            runs[key].append(
                {
                    "secs": float(secs),
                    "bytes": int(nbytes),
                    "bottles": int(nbottles),
                    "rss": int(rss) if rss not in ("", "-") else None,
                    "cpu": float(cpu) if cpu not in ("", "-") else None,
                }
            )

    def med(key, field):
        values = [r[field] for r in runs[key] if r[field] is not None]
        return statistics.median(values) if values else None

    def opt(x, digits):
        return fmt(x, digits) if x is not None else "-"

    big_rows, small_rows = [], []
    for key in order:
        case, tool = key
        secs = med(key, "secs")
        nbytes, nbottles = runs[key][0]["bytes"], runs[key][0]["bottles"]
        all_secs = ", ".join(fmt(r["secs"]) for r in runs[key])
        mbps = nbytes / secs / 1e6
        rss = med(key, "rss")
        rss_s = opt(rss / 1024 if rss is not None else None, 1)
        cpu_s = opt(med(key, "cpu"), 2)
        if case == "big":
            big_rows.append([tool, fmt(secs), fmt(mbps, 0), all_secs, cpu_s, rss_s])
        else:
            small_rows.append(
                [tool, str(nbottles), fmt(secs), fmt(nbottles / secs, 0), fmt(mbps, 1), all_secs, cpu_s, rss_s]
            )

    def rate(case, tool):
        key = (case, tool)
        if key not in runs:
            return None
        secs = med(key, "secs")
        return (runs[key][0]["bytes"] if case == "big" else runs[key][0]["bottles"]) / secs

    ratio_rows = []
    bs = rate("big", BIG_BOTTLESYNC)
    for tool in BIG_BASELINES:
        base = rate("big", tool)
        if bs and base:
            ratio_rows.append([f"2 GiB, MB/s: bottlesync / {tool}", fmt(bs / base) + "x"])
    ss = rate("small", SMALL_BOTTLESYNC)
    sb = rate("small", SMALL_BASELINE)
    if ss and sb:
        ratio_rows.append([f"small, bottles/s: bottlesync / {SMALL_BASELINE}", fmt(ss / sb) + "x"])
    py_tool = next((t for c, t in order if c == "small" and t.startswith(SMALL_PY_PREFIX)), None)
    sp = rate("small", py_tool) if py_tool else None
    if ss and sp:
        goal = "goal >= 3x: " + ("met" if ss / sp >= 3 else "not met")
        ratio_rows.append([f"small, bottles/s: bottlesync / {py_tool}", f"{fmt(ss / sp)}x ({goal})"])
    sc = rate("small", SMALL_CEILING)
    if sc:
        for label, r in (("bottlesync", ss), (SMALL_BASELINE, sb), (py_tool, sp)):
            if r:
                ratio_rows.append(
                    [f"small, bottles/s: {label} / stand-in ceiling", f"{fmt(r / sc)}x ({r / sc:.0%} of the ceiling)"]
                )
    big_rss = med(("big", BIG_BOTTLESYNC), "rss") if ("big", BIG_BOTTLESYNC) in runs else None

    big_h = ["2 GiB bottle", "median s", "MB/s", "runs (s)", "CPU s", "peak RSS MiB"]
    small_h = ["small bottles", "bottles", "median s", "bottles/s", "MB/s", "runs (s)", "CPU s", "peak RSS MiB"]
    ratio_h = ["ratio (throughput; >1 = the first one faster)", "value"]
    tables = [render(big_rows, big_h), render(small_rows, small_h), render(ratio_rows, ratio_h)]
    rss_line = (
        f"bottlesync peak RSS syncing the 2 GiB bottle: {fmt(big_rss / 1024, 1)} MiB"
        if big_rss is not None
        else None
    )
    legend = (
        f"Median of {meta['reps']} interleaved runs; MB = 10^6 bytes; wall-clock seconds; "
        "CPU s = user+sys of the measured command and its children (not the stand-in)."
    )

    print()
    print("\n\n".join(t[0] for t in tables))
    print()
    if rss_line:
        print(rss_line)
    print(legend)

    md = [
        "# bottlesync benchmark results",
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
        "Baselines are measured in the same run against the same stand-in (`bottlesync-fixture`).",
        "",
        "## One 2 GiB bottle (`bottlesync-fixture --preset single --size 2GiB --name bigbottle`)",
        "",
        tables[0][1],
        "",
        "- `curl | sha256sum`: `curl -s SIGNED_URL | sha256sum` (the signed URL is fetched beforehand, untimed).",
        "- `curl -o file`: `curl -s -o FILE SIGNED_URL` on the work dir's filesystem: download + page-cache write, no hashing, no fsync.",
        "- `curl -o file + fsync`: the same followed by `sync --data FILE` (extra, informational: bottlesync fsyncs before its rename).",
        "- `bottlesync sync`: the whole process (index, plan, download, SHA-256, fsync, rename, ledger), "
        "`--tags arm64_tahoe --progress log`, fresh dest each run.",
        "",
        f"## ~2,000 small bottles (`bottlesync-fixture --preset generated --formulae {meta['formulae']} "
        f"--seed {meta['seed']} --median-size 64KiB --max-size 1MiB`)",
        "",
        tables[1][1],
        "",
        f"- plan (`--dry-run --report`): {meta['plan_bottles']} bottles, {meta['plan_bytes']} bytes; tags `{meta['tags']}`.",
        "- baseline: `xargs -P 8` over those bottles from `/__standin/bottles`, each `fetch_one.sh`: "
        "signed URL via curl, curl to a temp file, `sha256sum -c`, `mv` into place.",
        "- bottlesync: `--concurrency 8`, the whole process including the index fetch, manifest/HEAD size lookups and the plan.",
        f"- sequential Python loop: `python3 loadtest/bench/py_loop.py` over the same list, one bottle at a time "
        f"(http client: {meta.get('py_client', '?')}, one Session with keep-alive): 307 from the registry with the token, "
        "streamed GET of the signed URL to a temp file with `hashlib.sha256` updated per 64 KiB chunk, digest check, `os.replace` into place.",
        "- stand-in ceiling: one `curl -sS -f -L -Z --parallel-max 8 -H 'Authorization: Bearer QQ==' -K CONFIG` process, CONFIG "
        "listing `url = BLOB_URL` / `output = \"/dev/null\"` for the same bottles: each transfer is the registry's 307 and the "
        "storage GET (curl drops the token on the redirect to the other port), no hashing, no disk writes; run.sh checks the "
        "stand-in's counters afterwards (all storage GETs served, all bytes, no auth rejections). It runs on the same 2 CPUs "
        "as the stand-in, so it is the ceiling of stand-in + one lean client on this machine, not of the stand-in alone.",
        "",
        "## Ratios",
        "",
        tables[2][1],
        "",
    ]
    if rss_line:
        md += [rss_line, ""]
    notes = [n for n in meta.get("notes", "").splitlines() if n.strip()]
    if notes:
        md += ["## Stand-in counters (last run of each)", ""]
        md += [f"- {n}" for n in notes]
        md.append("")
    # The other scripts' sections (speed.sh, serve.sh) stay; plan.sh
    # appends its own afresh after this.
    md += kept_sections(md_path, drop=("planning",))
    with open(md_path, "w") as f:
        f.write("\n".join(md))


def kept_sections(md_path, drop=()):
    """The `<!-- NAME: begin ... NAME: end -->` sections of MD_PATH (if it
    exists), except those named in DROP, each followed by a blank line."""
    try:
        with open(md_path) as f:
            old = f.read()
    except FileNotFoundError:
        return []
    sections = re.finditer(r"<!-- ([\w-]+): begin.*?<!-- \1: end -->", old, re.S)
    return [m.group(0) + "\n" for m in sections if m.group(1) not in drop]


BIG_BOTTLESYNC = "bottlesync sync"
BIG_BASELINES = ["curl | sha256sum", "curl -o file", "curl -o file + fsync"]
SMALL_BOTTLESYNC = "bottlesync sync --concurrency 8"
SMALL_BASELINE = "xargs -P 8 curl + sha256sum -c + mv"
SMALL_PY_PREFIX = "sequential Python"
SMALL_CEILING = "stand-in ceiling: curl -Z --parallel-max 8 -L, to /dev/null"


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "first-url": first_url,
        "plan-count": plan_count,
        "baseline-list": baseline_list,
        "stats-summary": stats_summary,
        "report": report,
    }[cmd](*args)


if __name__ == "__main__":
    main()
