#!/usr/bin/env python3
"""issue 15: whole-process cost of hoist commands as history grows, each beside its baseline.

Usage: scripts/history_bench.py HOIST_BIN RUNS LABEL=GLOBAL_ARGS... -- COMMAND...

Runs `HOIST_BIN GLOBAL_ARGS COMMAND` RUNS times for each labelled backend (one warm-up run
first), alternating between them so load drifts hit both alike, and prints per label the median
wall time (ms) and the peak RSS (MB, largest of the runs). `{n}` in COMMAND is replaced by the run
number as 64 hex digits (so `deploy` can deploy a new image every time), `{app}` by the text after
`;` in the label's argument (each store names its apps). Example:

    scripts/history_bench.py target/release/hoist 40 \\
        1k="--store /tmp/h1k;app-1" 20k="--store /tmp/h20k;app-2" -- status {app}
"""
import os
import shlex
import statistics
import sys
import time


def run(argv):
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execv(argv[0], argv)
    _, status, usage = os.wait4(pid, 0)
    took = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {shlex.join(argv)}")
    return took * 1000, usage.ru_maxrss / 1024


def main():
    args = sys.argv[1:]
    binary, runs = args[0], int(args[1])
    split = args.index("--")
    backends = [b.split("=", 1) for b in args[2:split]]
    backends = [(label, *(spec.split(";", 1) + [""])[:2]) for label, spec in backends]
    command = args[split + 1:]
    results = {label: ([], []) for label, _, _ in backends}
    for n in range(runs + 1):
        for label, global_args, app in backends:
            argv = [binary, *shlex.split(global_args)]
            argv += [c.replace("{n}", f"{n:064x}").replace("{app}", app) for c in command]
            ms, rss = run(argv)
            if n > 0:
                results[label][0].append(ms)
                results[label][1].append(rss)
    base = None
    for label, (times, rss) in results.items():
        median = statistics.median(times)
        base = base or median
        print(f"{shlex.join(command)}  {label}: median {median:.1f} ms  peak RSS {max(rss):.1f} MB  ratio {median / base:.2f}")


main()
