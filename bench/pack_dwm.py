"""A compact copy of the Dance-with-Melody folders, for a machine that gets only the repository.

  python bench/pack_dwm.py --root ../shared/data/dwm --out .device/dwm [--margin 1.5]

Each DANCE_* folder of --root becomes a folder of the same name under --out that the dwm source
(data_pipeline/sources/dwm.py) reads unchanged, with the same frames, split and music:
  - skeletons.json.gz: the same keys, `center` and `skeletons` rounded to 0.1 cm;
  - audio.ogg: the danced part of the song (start_position to the skeleton's last frame or
    end_position, whichever is later) with --margin seconds either side where the song has
    them, mono Vorbis at the pipeline's 22050 Hz;
  - config.json: start_position and end_position less the whole frames cut from the song's
    start, so every frame meets the music at the same song time.
bench/device_recipe.sh trains on the copy (the 33 performances: 19.1 MiB, 2026-12-03).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import soundfile

from data_pipeline.sources import dwm
from hotdance_jax.audio import load_audio

SAMPLE_RATE = 22050  # Hz, config.audio.sample_rate; a multiple of dwm.FPS (882 samples a frame)


def pack_performance(folder: Path, out: Path, margin: float = 1.5) -> int:
    """Writes the compact copy of performance `folder` into `out`; returns its size in bytes."""
    config = dwm._read_json(folder / "config.json")
    data = dwm._read_json(dwm.skeletons_file(folder))
    start = int(config["start_position"])
    danced = max(len(data["skeletons"]), int(config.get("end_position", 0)) - start)
    audio = load_audio(dwm._audio(folder), SAMPLE_RATE)
    per_frame = SAMPLE_RATE // int(dwm.FPS)
    cut = max(0, start - round(margin * dwm.FPS))
    end = start + danced + round(margin * dwm.FPS)
    out.mkdir(parents=True, exist_ok=True)
    song = audio[cut * per_frame:end * per_frame]
    # In blocks: libvorbis overflows its stack on one long write (libsndfile issue 1095).
    with soundfile.SoundFile(out / "audio.ogg", "w", SAMPLE_RATE, 1, "VORBIS", format="OGG") as f:
        for block in range(0, len(song), SAMPLE_RATE):
            f.write(song[block:block + SAMPLE_RATE])
    config = {**config, "start_position": start - cut}
    if "end_position" in config:
        config["end_position"] -= cut
    (out / "config.json").write_text(json.dumps(config))
    rounded = {**data, **{key: np.round(np.asarray(data[key], np.float64), 1).tolist()
                          for key in ("center", "skeletons")}}
    (out / "skeletons.json.gz").write_bytes(
        gzip.compress(json.dumps(rounded, separators=(",", ":")).encode(), compresslevel=9))
    return sum(f.stat().st_size for f in out.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--margin", type=float, default=1.5,
                        help="Seconds of song kept before and after the dance.")
    args = parser.parse_args()
    total = 0
    for folder in dwm._folders(args.root):
        size = pack_performance(folder, args.out / folder.name, args.margin)
        total += size
        print(f"  {folder.name}: {size / 2**20:.2f} MiB", flush=True)
    print(f"{args.out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
