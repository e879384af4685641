"""Live timing of `mdnrnn play` over OSC on 127.0.0.1, and LiteRT against `Generator.step()`.

1. Step latency at batch size 1 for the full-size `kanji` and `touch` presets (2 x 256 LSTMs,
   random normal weights: speed does not depend on the values): `Generator.step()` (NumPy
   kernels) and `LiteGenerator.step()` (the LiteRT flatbuffer from `export_litert`, one
   interpreter thread), `--steps` timed steps after a warm-up, alternating over `--repeats`
   repeats; median, 90th and 99th percentile of the best repeat. Plus the LiteRT file sizes.

2. Live timing: `mdnrnn play` runs in a subprocess (the touch model, as a LiteRT file and as
   a `.keras` model) in call-and-response mode, listening for OSC on a free port of
   127.0.0.1. A scripted performer in this process plays `--rounds` phrases of 12 touches
   40 ms apart, each followed by a wait for the answer; a receiver thread timestamps every
   answer as it arrives. `play --log` writes each event's scheduled and send times (the same
   `time.monotonic()` clock, system-wide on Linux), so the script reports, per event,
   - send lateness: when the loop handed the datagram to the socket minus its scheduled time;
   - arrival lateness: when the datagram reached the receiving socket (the kernel's
     SO_TIMESTAMPNS stamp, CLOCK_REALTIME moved onto the monotonic clock) minus its
     scheduled time: the send lateness plus loopback delivery.
   Each model runs twice: `--no-realtime` (normal priority) and `--realtime` (the loop's
   thread on SCHED_FIFO; play's default is to try that quietly).

Run from the repository root (about 3 minutes; `--realtime` needs root or CAP_SYS_NICE,
else that run prints a warning and goes on at normal priority):

    .venv/bin/python scripts/bench_live.py

Results are in docs/benchmarks.md ("Live and LiteRT").
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HOST = "127.0.0.1"
# Linux's SO_TIMESTAMPNS (not in Python's socket module): the kernel stamps each datagram
# with its arrival time, so the receiver's own wake-up delay does not count.
SO_TIMESTAMPNS = 35
SILENCE = 0.3
PHRASE, GAP = 12, 0.04


def random_model(name, seed=0, scale=0.1, **overrides):
    from mdnrnn import build_model, preset

    model = build_model(preset(name, **overrides))
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, scale, weight.shape).astype("float32"))
    return model


def percentiles(values_ms):
    p50, p90, p95, p99 = np.percentile(values_ms, [50, 90, 95, 99])
    return p50, p90, p95, p99, float(np.max(values_ms))


def step_times(generator, steps, warmup=200):
    for _ in range(warmup):
        generator.step()
    times = np.empty(steps)
    for i in range(steps):
        start = time.perf_counter()
        generator.step()
        times[i] = time.perf_counter() - start
    return times * 1e6  # us


def bench_latency(work: Path, steps: int, repeats: int):
    from mdnrnn import Generator, lite

    print("\n## Step latency at batch size 1 (us)\n")
    print("| preset | implementation | median | p90 | p99 | LiteRT file |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    paths = {}
    for name in ("kanji", "touch"):
        overrides = {"mean": (0.5, 0.5, 0.06), "std": (0.25, 0.3, 0.05)} if name == "touch" else {}
        model = random_model(name, **overrides)
        path = work / f"{name}.tflite"
        size = lite.export_litert(model, path)["size"]
        model.save(work / f"{name}.keras")
        paths[name] = path
        generators = {"`Generator.step()`": Generator(model, seed=0),
                      "`LiteGenerator.step()`": lite.LiteGenerator(path, seed=0)}
        best = {}
        for _ in range(repeats):  # alternate, so that the machine's load falls on both alike
            for label, generator in generators.items():
                times = step_times(generator, steps)
                if label not in best or np.median(times) < np.median(best[label]):
                    best[label] = times
        for label, times in best.items():
            p50, p90, _, p99, _ = percentiles(times)
            file = f"{size:,} B" if "Lite" in label else ""
            print(f"| {name} | {label} | {p50:.1f} | {p90:.1f} | {p99:.1f} | {file} |")
    return paths


def free_port():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def live_run(model_path: Path, rounds: int, work: Path, label: str, extra=()):
    from pythonosc.osc_message_builder import OscMessageBuilder

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((HOST, 0))
    receiver.settimeout(0.05)
    receiver.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    arrivals = []
    stop = threading.Event()
    offset = time.time() - time.monotonic()  # CLOCK_REALTIME - CLOCK_MONOTONIC

    def receive():
        while not stop.is_set():
            try:
                _, ancillary, _, _ = receiver.recvmsg(65536, 64)
            except socket.timeout:
                continue
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("qq", data[:16])
                    arrivals.append(seconds + nanoseconds * 1e-9 - offset)

    port = free_port()
    log = work / f"events-{label}.csv"
    command = [sys.executable, "-m", "mdnrnn.cli", "play", "--model", str(model_path), *extra,
               "--osc-in", f"{HOST}:{port}", "--osc-out", f"{HOST}:{receiver.getsockname()[1]}",
               "--mode", "callresponse", "--silence", str(SILENCE), "--seed", "0", "--log", str(log)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "playing" in process.stdout.readline(), process.stderr.read()
    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rng = np.random.default_rng(1)
    for _ in range(rounds):
        for _ in range(PHRASE):
            builder = OscMessageBuilder("/interface")
            for value in rng.uniform(0, 1, 2):
                builder.add_arg(float(value), "f")
            sender.sendto(builder.build().dgram, (HOST, port))
            time.sleep(GAP)
        time.sleep(SILENCE + PHRASE * GAP + 0.4)  # the answer lasts about as long as the phrase
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    if process.returncode != 0 or not out.strip():
        raise SystemExit(f"play failed ({process.returncode}): {err.strip()[-2000:]}")
    stop.set()
    thread.join()
    rows = [line.split(",") for line in log.read_text().splitlines()[1:]]
    scheduled = np.array([float(r[1]) for r in rows if r[0] == "out"])
    sent = np.array([float(r[2]) for r in rows if r[0] == "out"])
    n = min(len(scheduled), len(arrivals))
    send_late = (sent - scheduled) * 1e3
    arrive_late = (np.array(arrivals[:n]) - scheduled[:n]) * 1e3
    return {"events": len(scheduled), "received": len(arrivals), "send": percentiles(send_late),
            "arrive": percentiles(arrive_late), "summary": out.strip().splitlines()[-1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per repeat (2000)")
    parser.add_argument("--repeats", type=int, default=3, help="latency repeats (3)")
    parser.add_argument("--rounds", type=int, default=8, help="call-and-response rounds per live run (8)")
    args = parser.parse_args()
    from importlib.metadata import version

    print(f"Python {platform.python_version()}, NumPy {np.__version__}, TensorFlow {version('tensorflow')}, "
          f"ai-edge-litert {version('ai-edge-litert')}, python-osc {version('python-osc')}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        paths = bench_latency(work, args.steps, args.repeats)
        print(f"\n## Live timing: `mdnrnn play` call-and-response over OSC, {args.rounds} rounds (ms)\n")
        print("| model | events sent / received | send lateness p50 / p95 / p99 / max | "
              "arrival lateness p50 / p95 / p99 / max |")
        print("| --- | ---: | ---: | ---: |")
        runs = [(label, paths["touch"].with_suffix(suffix), (flag,))
                for label, suffix in (("LiteRT", ".tflite"), (".keras (Generator)", ".keras"))
                for flag in ("--no-realtime", "--realtime")]
        for index, (label, path, extra) in enumerate(runs):
            result = live_run(path, args.rounds, work, str(index), extra)
            send, arrive = result["send"], result["arrive"]
            print(f"| touch, {label}, `{extra[0]}` | {result['events']} / {result['received']} | "
                  f"{send[0]:.2f} / {send[2]:.2f} / {send[3]:.2f} / {send[4]:.2f} | "
                  f"{arrive[0]:.2f} / {arrive[2]:.2f} / {arrive[3]:.2f} / {arrive[4]:.2f} |")
            print(f"<!-- {result['summary']}; load average {os.getloadavg()[0]:.1f} -->", flush=True)
        print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
