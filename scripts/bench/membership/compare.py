#!/usr/bin/env python3
"""Prints meshd's membership figures next to memberlist's, with ratios.

Usage: compare.py MESHD_TSV MEMBERLIST_TSV

MESHD_TSV holds sim_bench lines (N, detect p50 ms, detect max ms, update-all ms,
msgs/member/s, bytes/member/s, false deaths at 0/5/10/20% loss, status);
MEMBERLIST_TSV holds memberlist-bench lines: the same columns, then wire bytes
per member per second, the time scale and the scheduling lag p99 (wall ms).
Both are in protocol time of the lan profile (probe interval 1 s), so times are
printed in probe intervals (PI) and rates per member per probe interval.
"""
import sys

FIGURES = [
    # (label, column, divisor to protocol units, loss)
    ("crash detection p50 (PI)", 1, 1000.0, "0%"),
    ("crash detection max (PI)", 2, 1000.0, "0%"),
    ("update reaches all (PI)", 3, 1000.0, "0%"),
    ("messages/member/PI", 4, 1.0, "0%"),
    ("bytes/member/PI", 5, 1.0, "0%"),
    ("false deaths in 120 PI", 6, 1.0, "0%"),
    ("false deaths in 120 PI", 7, 1.0, "5%"),
    ("false deaths in 120 PI", 8, 1.0, "10%"),
    ("false deaths in 120 PI", 9, 1.0, "20%"),
]


def read(path):
    rows = {}
    with open(path) as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 11 or not cols[0].isdigit():
                continue
            rows[int(cols[0])] = cols
    return rows


def fmt(v):
    if float(v).is_integer():
        return "%d" % v
    return "%.2f" % v if abs(v) < 100 else "%.0f" % v


def ratio(a, b):
    if b == 0:
        return "=" if a == 0 else "inf"
    return "%.2f" % (a / b)


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    meshd, ml = read(sys.argv[1]), read(sys.argv[2])
    print("# lan profile on both sides: 1 PI = one probe interval (1 s unscaled). Ratio is"
          " meshd/memberlist;\n# detection, update spread and load are measured without loss,"
          " false deaths are (observer, member) pairs\n# wrongly declared dead in 120 PI at each loss rate.")
    print("%-6s %-5s %-26s %10s %11s %7s" % ("N", "loss", "figure", "meshd", "memberlist", "ratio"))
    notes = []
    for n in sorted(set(meshd) | set(ml)):
        a, b = meshd.get(n), ml.get(n)
        for label, col, div, loss in FIGURES:
            va = float(a[col]) / div if a else None
            vb = float(b[col]) / div if b else None
            print("%-6d %-5s %-26s %10s %11s %7s" % (
                n, loss, label,
                fmt(va) if va is not None else "-",
                fmt(vb) if vb is not None else "-",
                ratio(va, vb) if va is not None and vb is not None else "-"))
        if a and a[10] != "ok":
            notes.append("N=%d: meshd run %s" % (n, a[10]))
        if b:
            if b[10] != "ok":
                notes.append("N=%d: memberlist run %s" % (n, b[10]))
            if len(b) >= 14:
                scale, lag = float(b[12]), float(b[13])
                timeout = 500 * scale
                notes.append("N=%d: memberlist wire bytes/member/PI with encryption %s; "
                             "scale %g (probe timeout %.0f ms wall), scheduling lag p99 %.1f ms%s" % (
                                 n, b[11], scale, timeout, lag,
                                 " -- CPU-starved, its figures are pessimistic" if lag > 0.2 * timeout else ""))
    for line in notes:
        print("# " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
