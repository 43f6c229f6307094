"""How fast a segment build loads: seconds per 1,000 segments, read and deserialised.

  python bench/segments_load.py DIR [--repeats 3]

Acceptance (issue: data sources and segments): under 1 s per 1,000 segments for the dwm build.
Prints the figure per split and the ratio to that budget, all measured in this one run.
"""

from __future__ import annotations

import argparse
import time

from data_pipeline.segments import SegmentStore, read_manifest


def time_split(directory: str, split: str, repeats: int) -> tuple[int, float]:
    """(segments, best seconds over `repeats` full passes) for one split."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        store = SegmentStore(directory, split)
        records = store.__getitems__(range(len(store)))
        best = min(best, time.perf_counter() - start)
    return len(records), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    counts = read_manifest(args.directory)["counts"]["segments"]
    total_n, total_s = 0, 0.0
    for split, n in counts.items():
        if n:
            loaded, seconds = time_split(args.directory, split, args.repeats)
            total_n, total_s = total_n + loaded, total_s + seconds
            print(f"{split:5s}: {loaded:6d} segments in {seconds:.3f} s "
                  f"= {1000 * seconds / loaded:.3f} s per 1,000")
    per_1000 = 1000 * total_s / total_n
    print(f"all  : {total_n:6d} segments, {per_1000:.3f} s per 1,000 "
          f"({per_1000:.2f}x the 1 s budget)")


if __name__ == "__main__":
    main()
