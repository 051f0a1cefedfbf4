"""Draws a load run's timeline.csv as a PNG: queue depth and in-flight
messages (left axis) and bottles stored per second (right axis).

    python chart.py timeline.csv timeline.png

Needs matplotlib (`.venv/bin/pip install matplotlib`)."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source: str, target: str) -> None:
    with open(source, newline="") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if not rows:
        sys.exit(f"{source}: no samples")
    t = [r["seconds"] for r in rows]
    rate = [0.0]
    for prev, cur in zip(rows, rows[1:]):
        dt = cur["seconds"] - prev["seconds"]
        rate.append((cur["stored"] - prev["stored"]) / dt if dt > 0 else 0.0)

    fig, depth_axis = plt.subplots(figsize=(10, 4.5), dpi=110)
    depth_axis.plot(t, [r["visible"] for r in rows], label="queue: visible", color="tab:blue")
    depth_axis.plot(t, [r["in_flight"] for r in rows], label="queue: in flight", color="tab:orange")
    depth_axis.plot(t, [r["dlq"] for r in rows], label="DLQ", color="tab:red", linestyle="--")
    depth_axis.set_xlabel("seconds since the workers started")
    depth_axis.set_ylabel("messages")
    rate_axis = depth_axis.twinx()
    rate_axis.plot(t, rate, label="stored per second", color="tab:green", alpha=0.7)
    rate_axis.set_ylabel("bottles stored per second")
    lines = depth_axis.get_legend_handles_labels()
    more = rate_axis.get_legend_handles_labels()
    depth_axis.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right")
    depth_axis.set_title("bottlesync fleet run: queue depth, in flight, stored/s")
    fig.tight_layout()
    fig.savefig(target)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
