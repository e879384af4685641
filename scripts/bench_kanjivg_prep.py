"""Wall time of converting the full KanjiVG set (about 11,600 SVGs) to a store.

Runs the real command line, `python -m data_prep kanjivg --include-variants`,
in a fresh process on the SVGs of the installed `kanjivg` package, so the time
covers everything a user waits for: interpreter start, imports, SVG parsing,
curve sampling, RDP, writing and the train statistics. Prints the conversion
summary and the timing, and exits with status 1 if it took longer than the
budget (60 s by default).

Usage (from the repository root):

    .venv/bin/python scripts/bench_kanjivg_prep.py
    .venv/bin/python scripts/bench_kanjivg_prep.py --base-only   # no variant files
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-only", action="store_true",
                        help="leave variant files (-Kaisho, ...) out, as the default command does")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--budget-s", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "data_prep", "kanjivg", "--out", f"{tmp}/kanji.h5",
                   "--epsilon", str(args.epsilon), "--no-progress"]
        if not args.base_only:
            command.append("--include-variants")
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        size = Path(tmp, "kanji.h5").stat().st_size if result.returncode == 0 else 0
    print(result.stdout.strip())
    if result.returncode != 0:
        print(result.stderr.strip(), file=sys.stderr)
        raise SystemExit(f"conversion failed with status {result.returncode}")
    sequences = next(line for line in result.stdout.splitlines() if line.startswith("sequences:"))
    n = int(sequences.split()[1].replace(",", ""))
    print(f"\nwall time {seconds:.1f} s for {n:,} drawings ({n / seconds:.0f} files/s), "
          f"store {size / 1e6:.1f} MB; budget {args.budget_s:g} s")
    if seconds > args.budget_s:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
