"""Studio speed: pen-up to first model point in the browser, streaming rate, 8 concurrent clients.

Starts `mdnrnn serve --model MODEL --port 0` (a separate process, as a person would run it),
then measures, with the first strokes of real KanjiVG characters as the person's drawing:

1. Browser (headless Debian chromium via Playwright): the drawing page, one stroke drawn with
   synthetic pointer events per trial; on pen-up the page asks for a continuation and records
   `performance.now()` from pen-up to the first model point drawn (`studioState.firstPointLatency`).
2. One scripted WebSocket client: `generate` requests with `until: "end"` and no pacing;
   points per second = points streamed / time from the first to the last `points` frame, pooled
   over the requests; time to first point (TTFP) = send -> first `points` frame.
3. `--clients` (8) scripted WebSocket clients at once, each sending requests back to back for
   `--seconds`: per client points/s (pooled as in 2) and the p50 / p99 TTFP over all requests.

Usage (from the repository root):

    .venv/bin/python scripts/bench_studio.py [--model kanji] [--trials 30] [--clients 8] [--seconds 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def kanji_prefixes(count: int, seed: int = 0):
    """The first half of the strokes (at least one) of `count` random KanjiVG characters."""
    from data_prep import kanjivg as prep

    files, _ = prep.list_files(prep.package_dir())
    files = [path for path in files if path.stem.startswith(("04", "05", "06", "07", "08", "09"))]  # CJK
    random.Random(seed).shuffle(files)
    prefixes = []
    for path in files:
        strokes = prep.read_strokes(path)
        if len(strokes) >= 2:
            prefixes.append([s.tolist() for s in strokes[: max(1, len(strokes) // 2)]])
        if len(prefixes) == count:
            return prefixes
    return prefixes


def start_server(model: str):
    process = subprocess.Popen([sys.executable, "-m", "mdnrnn.cli", "serve", "--model", model, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = process.stdout.readline()
    if not line.startswith("mdnrnn studio: "):
        process.kill()
        raise SystemExit(f"the server did not start: {line}{process.stderr.read()}")
    return process, line.split()[2]


def cpu_seconds(pid=None):
    """CPU time (user + system) of process `pid` (this process if None), in seconds."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# ------------------------------------------------------------------ browser
def browser_latency(url: str, model: str, prefixes, trials: int):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(f"{url}draw?model={model}")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Ready')")
        box = page.locator("canvas.board").bounding_box()
        units = page.evaluate("window.studioState.units")
        for trial in range(trials):
            page.click("#clear")
            strokes = prefixes[trial % len(prefixes)]
            for stroke in strokes:
                xy = [(box["x"] + x / units * box["width"], box["y"] + y / units * box["height"]) for x, y in stroke]
                page.mouse.move(*xy[0])
                page.mouse.down()
                for x, y in xy[1:]:
                    page.mouse.move(x, y, steps=2)
                page.mouse.up()
                page.wait_for_function("window.studioState.request === null", timeout=20000)
        latencies = page.evaluate("window.studioState.firstPointLatency")
        browser.close()
    return latencies


# ------------------------------------------------------------------ scripted clients
async def client(url: str, model: str, prefixes, until_time: float, max_requests=None, seed=0):
    import websockets

    ttfp, points, stream_seconds = [], 0, 0.0
    rng = random.Random(seed)
    async with websockets.connect(url.replace("http", "ws") + "ws", max_size=None) as ws:
        json.loads(await ws.recv())  # ready
        request = 0
        while time.perf_counter() < until_time and (max_requests is None or request < max_requests):
            request += 1
            message = {"type": "generate", "id": request, "model": model, "until": "end", "max_points": 400,
                       "temperature": 0.5, "prime": {"strokes": rng.choice(prefixes)}}
            sent = time.perf_counter()
            await ws.send(json.dumps(message))
            first = last = None
            count = 0
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("id") != request:
                    continue
                if frame["type"] == "points":
                    last = time.perf_counter()
                    if first is None:
                        first = last
                        ttfp.append(first - sent)
                    count += sum(row is not None for row in frame["rows"])
                elif frame["type"] in ("done", "error"):
                    break
            if first is not None and last > first and count > 1:
                points += count - 1  # points after the first, over the time after the first
                stream_seconds += last - first
    return {"ttfp": ttfp, "points": points, "seconds": stream_seconds, "requests": request}


async def one_client(url, model, prefixes, seconds):
    return await client(url, model, prefixes, time.perf_counter() + seconds)


async def many_clients(url, model, prefixes, n, seconds):
    until = time.perf_counter() + seconds
    return await asyncio.gather(*(client(url, model, prefixes, until, seed=i) for i in range(n)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="kanji", help="a drawing model: pretrained name or .keras (kanji)")
    p.add_argument("--trials", type=int, default=30, help="pen-ups measured in the browser (30)")
    p.add_argument("--clients", type=int, default=8, help="concurrent scripted clients (8)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each WebSocket run (20)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    prefixes = kanji_prefixes(60)
    load_before = os.getloadavg()
    process, url = start_server(args.model)
    name = args.model if "/" not in args.model else Path(args.model).stem
    try:
        asyncio.run(client(url, name, prefixes, time.perf_counter() + 60, max_requests=5))  # warm-up
        latencies = browser_latency(url, name, prefixes, args.trials)
        cpu = [(cpu_seconds(process.pid), cpu_seconds(), time.perf_counter())]
        single = asyncio.run(one_client(url, name, prefixes, args.seconds))
        cpu.append((cpu_seconds(process.pid), cpu_seconds(), time.perf_counter()))
        several = asyncio.run(many_clients(url, name, prefixes, args.clients, args.seconds))
        cpu.append((cpu_seconds(process.pid), cpu_seconds(), time.perf_counter()))
    finally:
        process.terminate()
        process.wait(30)
    load_after = os.getloadavg()
    all_ttfp = [t for c in several for t in c["ttfp"]]
    results = {
        "model": args.model, "load_average_before": load_before[0], "load_average_after": load_after[0],
        "browser": {"pen_ups": len(latencies), "median_ms": percentile(latencies, 50),
                    "p90_ms": percentile(latencies, 90), "max_ms": max(latencies) if latencies else None},
        "one_client": {"points_per_s": single["points"] / single["seconds"], "requests": single["requests"],
                       "ttfp_median_ms": 1000 * percentile(single["ttfp"], 50),
                       "ttfp_p99_ms": 1000 * percentile(single["ttfp"], 99)},
        "clients": {"n": args.clients, "requests": sum(c["requests"] for c in several),
                    "points_per_s_each": [c["points"] / c["seconds"] for c in several],
                    "ttfp_median_ms": 1000 * percentile(all_ttfp, 50),
                    "ttfp_p99_ms": 1000 * percentile(all_ttfp, 99)},
    }
    for key, (before, after) in (("one_client", cpu[0:2]), ("clients", cpu[1:3])):
        wall = after[2] - before[2]
        results[key]["server_cpu_share"] = (after[0] - before[0]) / wall  # 1.0 = one core
        results[key]["client_cpu_share"] = (after[1] - before[1]) / wall
    b, o, c = results["browser"], results["one_client"], results["clients"]
    print(f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"browser, pen-up -> first model point ({b['pen_ups']} pen-ups): median {b['median_ms']:.1f} ms, "
          f"p90 {b['p90_ms']:.1f} ms, max {b['max_ms']:.1f} ms")
    print(f"one client: {o['points_per_s']:,.0f} points/s ({o['requests']} requests), "
          f"TTFP median {o['ttfp_median_ms']:.1f} ms, p99 {o['ttfp_p99_ms']:.1f} ms; CPU (cores) server "
          f"{o['server_cpu_share']:.2f}, clients {o['client_cpu_share']:.2f}")
    each = c["points_per_s_each"]
    print(f"{c['n']} clients: points/s each min {min(each):,.0f}, median {statistics.median(each):,.0f} "
          f"({c['requests']} requests); TTFP median {c['ttfp_median_ms']:.1f} ms, p99 {c['ttfp_p99_ms']:.1f} ms; "
          f"CPU (cores) server {c['server_cpu_share']:.2f}, clients {c['client_cpu_share']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
