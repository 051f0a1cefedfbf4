"""The report of loadtest/bench/serve.sh: prints the figures and writes the
"Serving" section of RESULTS.md between its markers (the rest of the file
is kept; the section is appended when the markers are absent).

    python3 serve_report.py RESULTS_TSV RESULTS_MD   (metadata in the environment)
"""

import os
import re
import statistics
import sys

BEGIN = "<!-- serve: begin (written by loadtest/bench/serve.sh) -->"
END = "<!-- serve: end -->"


def env(name, default="?"):
    return os.environ.get(name, default)


def fmt(x, digits=2):
    return f"{x:,.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def goal(met):
    return "met" if met else "NOT met"


def main():
    tsv, md_path = sys.argv[1], sys.argv[2]
    big, small = {}, {}
    for line in open(tsv):
        f = line.rstrip("\n").split("\t")
        if f[0] == "big":
            big.setdefault(f[1], []).append((float(f[3]), int(f[4])))
        elif f[0] == "small":
            small.setdefault(f[1], []).append((float(f[3]), int(f[4]), int(f[5])))

    count = int(env("SMALL_COUNT"))
    big_mbps = {s: statistics.median(b / t / 1e6 for t, b in runs) for s, runs in big.items()}
    small_rps = {s: statistics.median(count / t for t, _, _ in runs) for s, runs in small.items()}
    big_ratio = big_mbps["serve"] / big_mbps["nginx"]
    small_ratio = small_rps["serve"] / small_rps["nginx"]
    hwm_mib = int(env("RSS_HWM")) / 1024
    rss_bytes = int(env("RSS_BYTES"))
    rss_clients = int(env("RSS_CLIENTS"))
    many = {s: rss_clients * rss_bytes / float(env(k)) / 1e6 for s, k in
            (("serve", "RSS_SERVE_SECS"), ("nginx", "RSS_NGINX_SECS"))}
    replay = dict(kv.split("=", 1) for kv in env("REPLAY_LINE", "").split() if "=" in kv)
    replay_ok = env("REPLAY_RC") == "0" and replay.get("failed") == "0"

    big_rows = [
        [s, fmt(big_mbps[s], 0), ", ".join(fmt(b / t / 1e6, 0) for t, b in big[s])] for s in ("serve", "nginx")
    ]
    small_rows = [
        [
            s,
            fmt(small_rps[s], 0),
            ", ".join(fmt(count / t, 0) for t, _, _ in small[s]),
            ", ".join(str(c) for _, _, c in small[s]),
        ]
        for s in ("serve", "serve-quiet", "nginx")
        if s in small
    ]
    summary = [
        [f"(a) one {env('BIG_SIZE')} bottle, MB/s", fmt(big_mbps["serve"], 0), fmt(big_mbps["nginx"], 0),
         f"{fmt(big_ratio)}x (goal >= 0.8x: {goal(big_ratio >= 0.8)})"],
        [f"(b) {count:,} x {int(env('SMALL_SIZE')) / 1000:g} KB bottles, {env('CLIENTS')} keep-alive clients, requests/s",
         fmt(small_rps["serve"], 0), fmt(small_rps["nginx"], 0),
         f"{fmt(small_ratio)}x (goal >= 0.8x: {goal(small_ratio >= 0.8)})"],
        *(
            [[
                "(b) same, serve with `BOTTLESYNC_LOG=warn` (no access log; informational)",
                fmt(small_rps["serve-quiet"], 0),
                fmt(small_rps["nginx"], 0),
                f"{fmt(small_rps['serve-quiet'] / small_rps['nginx'])}x",
            ]]
            if "serve-quiet" in small_rps
            else []
        ),
        [f"(c) {rss_clients} downloads at once of a {env('RSS_SIZE')} bottle: peak RSS of serve",
         f"{fmt(hwm_mib, 1)} MiB", "-", f"goal < 64 MiB: {goal(hwm_mib < 64)}"],
        ["(c) same, aggregate MB/s", fmt(many["serve"], 0), fmt(many["nginx"], 0),
         f"{fmt(many['serve'] / many['nginx'])}x"],
        [f"(d) {env('REPLAY_CLIENTS')} brew installs at once (serve over a synced mirror)",
         f"{replay.get('failed', '?')} failed of {replay.get('clients', '?')}, {replay.get('requests', '?')} requests, "
         f"{replay.get('seconds', '?')} s", "-", f"no error: {goal(replay_ok)}"],
    ]

    legend = (
        f"Median of {env('REPS')} interleaved rounds (the order of the two servers alternates); MB = 10^6 bytes; "
        "client and servers share the machine's CPUs."
    )
    tables = [
        table(["(a) one big bottle", "median MB/s", "runs (MB/s)"], big_rows),
        table(["(b) small bottles", "median requests/s", "runs (requests/s)", "connections opened per run"], small_rows),
        table(["figure", "bottlesync serve", "nginx", "ratio / goal"], summary),
    ]
    print()
    print("\n\n".join(tables))
    print()
    print(legend)

    problems = env("REPLAY_PROBLEMS", "")
    md = [
        BEGIN,
        "## Serving (issue 12, benchmark 3): `bottlesync serve` against nginx",
        "",
        f"- date: {env('META_DATE')}; machine: nproc={env('META_NPROC')}, CPU: {env('META_CPU')}, RAM: {env('META_MEM')}, "
        f"kernel {env('META_KERNEL')}; mirror on {env('META_FS')}",
        f"- load average before / after: {env('META_LOAD_BEFORE')} / {env('META_LOAD_AFTER')} "
        "(shared machine: absolute figures are noisy, the ratios are the result)",
        f"- git: {env('META_GIT')}; binaries: {env('BUILD_NOTE')}",
        f"- command: `{env('COMMAND_LINE')}`; benchmark time (excluding the build): {env('ELAPSED')} s",
        f"- servers: `bottlesync serve --root MIRROR` (access log on, to a file) and {env('NGINX_VERSION')} "
        f"(`worker_processes auto` = {env('NGINX_WORKERS')} workers, access log on, `root MIRROR` and "
        "`include contrib/nginx/bottlesync-mirror.conf`: README's config, `sendfile on`, `tcp_nopush on`, "
        "`disable_symlinks on`), both on 127.0.0.1; client: " + env("CURL_VERSION"),
        f"- mirror: `bottlesync sync --tags {env('REPLAY_TAGS')}` from `bottlesync-fixture --preset brew-mirror` "
        f"({env('SYNCED_BOTTLES')} bottles), plus the benchmark's bottles written into its `bottles/`: one of "
        f"{env('BIG_SIZE')} and one of {env('RSS_SIZE')} (random bytes), {count:,} of {env('SMALL_SIZE')} bytes",
        "",
        legend,
        "",
        tables[2],
        "",
        tables[0],
        "",
        tables[1],
        "",
        f"- (a): `curl -sS -f -o /dev/null URL`, rate = bytes / curl's `time_total`.",
        f"- (b): one `curl -sS -Z --parallel-max {env('CLIENTS')} --parallel-immediate -K LIST` process, LIST the "
        f"{count:,} URLs with `output = \"/dev/null\"`; every answer checked (200, {env('SMALL_SIZE')} bytes); "
        "requests/s = count / wall-clock time; `num_connects` summed shows the connections were reused.",
        f"- (c): a fresh `bottlesync serve` process (VmHWM {fmt(int(env('HWM_BEFORE')) / 1024, 1)} MiB after start), "
        f"{rss_clients} `curl -o /dev/null` processes started at once; VmHWM read from /proc/PID/status afterwards. "
        f"nginx's workers' VmHWM summed under the same load: {fmt(int(env('NGINX_HWM')) / 1024, 1)} MiB. "
        f"(The serve process of (a) and (b) peaked at {fmt(int(env('SERVE_HWM_AB')) / 1024, 1)} MiB.)",
        f"- (d): `bottlesync-brew-replay --clients {env('REPLAY_CLIENTS')} --tags {env('REPLAY_TAGS')}` "
        "(loadtest/src/bin): one tokio task and one HTTP client per install, each `brew_client::replay_install` "
        "of every formula of the catalog on its tag: the per-tag API file, then per bottle HEAD, an abandoned GET, "
        "the full GET checked against its sha256, and the manifest GET with `Authorization: Bearer QQ==`; "
        f"output `{env('REPLAY_LINE')}`, exit {env('REPLAY_RC')}; the serve process's peak RSS after (c) and (d): "
        f"{fmt(int(env('SERVE_HWM_CD')) / 1024, 1)} MiB; WARN/ERROR lines in its log: {env('SERVE_ERRORS')}.",
    ]
    if problems.strip():
        md += ["", "Replay problems (count, first 5 kinds):", "", "```", problems, "```"]
    md.append(END)
    section = "\n".join(md) + "\n"

    text = open(md_path).read() if os.path.exists(md_path) else ""
    pattern = re.compile(re.escape(BEGIN.split(" (")[0]) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(md_path, "w") as f:
        f.write(text)
    print(f"serve benchmark: section written to {md_path}")


if __name__ == "__main__":
    main()
