#!/usr/bin/env python3
"""Markdown tables from a bench/run.py result (for docs/benchmarks.md).

    python bench/report.py [bench/results/latest.json]
"""

import json
import sys
from pathlib import Path


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" /
                "latest.json")
    d = json.loads(path.read_text())
    b, n, g, f = d["bare_pika"], d["nameko_pika"], d["gateway_max"], d["fixed_rate"]
    fc, gb, goals = d["first_call"], d["goodbye"], d["goals"]
    ok = {True: "met", False: "**not met**"}

    def lat(x):
        return f"{x['latency_ms']['p50']} / {x['latency_ms']['p99']}"

    def other(x):
        return x["cpu_ms_per_call"]["other_cores"]

    print(f"Run of {d['started']}, commit `{d['code']['commit'][:12]}` ({d['code']['code']}), "
          f"{d['wall_s']:.0f} s.\n")
    print("| # | what | load | throughput | p50 / p99 ms | CPU ms/call (ours) | "
          "others' cores | goal |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| 1 | raw pika → bare pika echo | {b['inflight']} in flight | "
          f"{b['calls_per_s']:.0f} calls/s | {lat(b)} | {b['cpu_ms_per_call']['total_ours']} | "
          f"{other(b)} | |")
    print(f"| 2 | raw pika (nameko protocol) → nameko echo | {n['inflight']} in flight | "
          f"{n['calls_per_s']:.0f} calls/s | {lat(n)} | {n['cpu_ms_per_call']['total_ours']} | "
          f"{other(n)} | |")
    gv = goals["gateway_vs_nameko"]
    print(f"| 3 | gateway {g['workers']}×{g['threads']} → nameko echo | wrk {g['connections']} "
          f"conns | {g['req_per_s']:.0f} req/s | {lat(g)} | {g['cpu_ms_per_call']['total_ours']} "
          f"| {other(g)} | ≥ 0.5× of 2: {gv['value']}× {ok[gv['met']]} |")
    fv = goals["fixed_rate_p99_ms"]
    print(f"| 4 | gateway at a fixed rate (k6, open loop) | {f['offered_per_s']}/s offered | "
          f"{f['achieved_per_s']:.0f} req/s | {lat(f)} | {f['cpu_ms_per_call']['total_ours']} | "
          f"{other(f)} | p99 ≤ 25 ms: {ok[fv['met']]} |")
    c, w = fc["cold"], fc["warm_median"]
    sv = goals["first_call_s"]
    print(f"| 5 | spawn → first 200 through the gateway | poll every 20 ms | cold "
          f"{c['spawn_to_first_200_s']} s, warm {w['spawn_to_first_200_s']} s (median of "
          f"{len(fc['warm'])}) | announce on the bus at {c['spawn_to_announce_on_bus_s']} / "
          f"{w['spawn_to_announce_on_bus_s']} s | | | ≤ 1 s: {ok[sv['met']]} |")
    bv = goals["goodbye_503_ms"]
    s = gb["sequential"]
    a = gb["at_fixed_rate"]
    print(f"| 6 | 503 after goodbye | sequential, {s['requests']} requests | | "
          f"{s['latency_ms']['p50']} / {s['latency_ms']['p99']} (at {a['offered_per_s']}/s: "
          f"{a['latency_ms']['p50']} / {a['latency_ms']['p99']}) "
          f"| | | ≤ 50 ms: {ok[bv['met']]} |")

    print("\nCPU milliseconds per call, by process (same run):\n")
    keys = ["client", "server", "loadgen", "gateway", "service", "broker", "total_ours",
            "other_on_machine"]
    print("| phase | " + " | ".join(keys) + " | cores busy |")
    print("|---" * (len(keys) + 2) + "|")
    rows = [("1 bare pika", b), ("2 nameko", n), ("3 gateway max", g), ("4 fixed rate", f)]
    rows += [(f"fixed {c['fraction_of_max']}× max ({c['offered_per_s']}/s)", c)
             for c in d.get("latency_vs_rate", [])]
    for name, x in rows:
        c = x["cpu_ms_per_call"]
        print(f"| {name} | " + " | ".join(str(c.get(k, "")) for k in keys)
              + f" | {c['machine_cores_busy']} |")

    print("\nLatency against offered rate (gateway "
          f"{g['workers']}×{g['threads']}, k6 constant-arrival-rate):\n")
    print("| offered/s | achieved/s | dropped | p50 | p90 | p99 | max | others' cores |")
    print("|---|---|---|---|---|---|---|---|")
    curve = sorted(d.get("latency_vs_rate", []) + [{**f, "fraction_of_max": 0.5}],
                   key=lambda x: x["offered_per_s"])
    for x in curve:
        m = x["latency_ms"]
        print(f"| {x['offered_per_s']} | {x['achieved_per_s']:.0f} | "
              f"{x['dropped_iterations']} | {m['p50']} | {m['p90']} | {m['p99']} | {m['max']} | "
              f"{x['cpu_ms_per_call']['other_cores']} |")

    print(f"\ngunicorn workers × threads (wrk {g['connections']} connections; fixed rate "
          f"{f['offered_per_s']}/s for {d['settings']['sweep_fixed']:.0f} s):\n")
    print("| workers × threads | req/s | p99 ms (wrk) | fixed-rate p50 / p99 ms | "
          "CPU ms/call | others' cores (wrk / fixed) | |")
    print("|---|---|---|---|---|---|---|")
    for s in d["gunicorn_sweep"]:
        fr = s.get("fixed_rate")
        mark = []
        if s["default"]:
            mark.append("default")
        if (s["workers"], s["threads"]) == (d["gunicorn_best"]["workers"],
                                            d["gunicorn_best"]["threads"]):
            mark.append("best req/s")
        fixed = f"{fr['latency_ms']['p50']} / {fr['latency_ms']['p99']}" if fr else ""
        noise = (f"{s.get('cpu_ms_per_call', {}).get('other_cores', '')} / "
                 f"{(fr or {}).get('cpu_ms_per_call', {}).get('other_cores', '')}")
        print(f"| {s['workers']} × {s['threads']} | {s['req_per_s']:.0f} | "
              f"{s['latency_ms']['p99']} | {fixed}"
              f" | {s.get('cpu_ms_per_call', {}).get('total_ours', '')} | {noise} | "
              f"{', '.join(mark)} |")

    print("\nRatios (same run): " + ", ".join(f"{k} {v}" for k, v in d["ratios"].items()))
    if "thread_cores_per_worker" in g:
        print("\nGateway cores by thread, per worker, under wrk: "
              + "; ".join(", ".join(f"{k} {v}" for k, v in w.items())
                          for w in g["thread_cores_per_worker"]))
    for name in ("profile_service", "profile_gateway"):
        p = d.get(name)
        if not p:
            continue
        print(f"\n{name} ({p['samples']} GIL-holding samples; by thread: {p['by_thread_pct']}):")
        for fn, pct in p["self_top"][:10]:
            print(f"  self {pct:5.1f}%  {fn}")
        print("  inclusive:")
        for fn, pct in list(p["inclusive_by_function_pct"].items())[:40]:
            print(f"    {pct:5.1f}%  {fn}")
    print("\nshutdown:", json.dumps({k: v for k, v in gb.items() if k != "sequential"}))
    print("imports:", json.dumps(fc.get("import_s")))


if __name__ == "__main__":
    main()
