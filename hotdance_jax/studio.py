"""The studio: a web page that makes dances with a trained run (python -m hotdance_jax.studio).

  pip install -e .[studio]      # once: Gradio
  python -m hotdance_jax.studio --workdir runs/dwm [--host 127.0.0.1] [--port 7860]

Loads the run's model once (sample.DanceGenerator) and serves a Gradio page on http://HOST:PORT
(127.0.0.1 by default: this machine only; `--host 0.0.0.0` shows it to the network). On the page:
upload a song or pick a bundled one (librosa's example 'choice' where this machine has it, a
synthesised drum track); choose where in it to start and how long to dance (seconds), the seed,
how many samples, the guidance and the sampling steps; optionally upload the dancer's starting
pose (OpenPose JSON) and keyframes (a JSON list of {"time": seconds from the dance's start,
"pose": ...}, as `python -m hotdance_jax.sample --keyframes` reads them); generate. The
samples appear side by side, each with its skeleton video with the music, its keypoint speed
against the music's beats, and its downloads: the dance as npz, its OpenPose JSON folder as a
zip, the mp4. Requests queue and run one at a time, with a progress bar; a bad upload (not
audio, too short, silent, a malformed pose or keyframe) shows its one-line message and the
page keeps serving. Each request writes into a folder of its own, swapped in whole when complete,
under a temporary folder that lasts as long as the server.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

from absl import flags

from hotdance_jax import cli, demo, render, sample
from hotdance_jax.choreography import read_keyframes
from hotdance_jax.errors import InputError
from hotdance_jax.io import run_path, staged_directory
from hotdance_jax.pose import pipeline_skeleton

try:
    import gradio as gr
except ModuleNotFoundError:  # the optional extra: main says how to install it
    gr = None

FLAGS = flags.FLAGS
MAX_SAMPLES = 4  # sample columns on the page
EXAMPLE_SECONDS = 30.0  # length of the synthesised example song
FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # the system's: the page loads no web fonts


class Studio:
    """A loaded run (`name`: its folder as the command line gave it) and the folder its requests
    write into (one subfolder each)."""

    def __init__(self, generator: sample.DanceGenerator, name: str, root: Path):
        self.generator, self.name, self.root = generator, name, root
        self.width, self.height = generator.info["mean_dancer"]["frame"]
        self.takes_reference = bool(generator.config.model.reference)

    def dances(self, song: Path, start: float, seconds: float | None, pose: Path | None,
               keyframes: Path | None = None, **settings) -> list[sample.Dance]:
        """The dances to `seconds` of `song` from `start` (None: to its end), the dancer's shape
        from the `pose` file or the training data's mean dancer, through the poses of the
        `keyframes` file (times from the dance's start); `settings`: num_samples, seed, steps,
        guidance of DanceGenerator.generate. InputError for a bad song, pose or keyframe."""
        config = self.generator.config
        fps = config.pose.fps
        shape = (sample.read_dancer(pose, config) if pose is not None
                 else self.generator.mean_dancer(self.width, self.height))
        music = sample.load_song(song, config, fps, start, seconds)
        keys = (read_keyframes(keyframes, music.frames / fps, fps,
                               pipeline_skeleton(config.pose.skeleton)) if keyframes else ())
        return self.generator.generate([music], shape, width=self.width, height=self.height,
                                       keyframes=keys, **settings)

    def write(self, dances: list[sample.Dance], progress) -> list[dict[str, str]]:
        """Each dance's files in a new request folder, per dance the paths of its `npz`, `video`
        (mp4 with the music), `openpose` (zip of one OpenPose JSON per frame) and `plot` (speed
        and beats PNG); `progress` (gr.Progress) follows the videos."""
        out = self.root / f"request-{uuid.uuid4().hex[:12]}"
        names = [sample.dance_name(dance, len(dances)) for dance in dances]
        with staged_directory(out) as staging:
            for dance, name in progress.tqdm(list(zip(dances, names, strict=True)),
                                             desc="writing the videos"):
                _write_dance(staging, dance, name)
        return [{"npz": f"{out}/{name}.npz", "video": f"{out}/{name}.mp4",
                 "openpose": f"{out}/{name}_openpose.zip", "plot": f"{out}/{name}_speed.png"}
                for name in names]


def _write_dance(folder: Path, dance: sample.Dance, name: str) -> None:
    """NAME.npz, NAME.mp4, NAME_openpose.zip and NAME_speed.png of one dance into `folder`."""
    song = dance.song
    sample.save_dance(folder / f"{name}.npz", dance)
    sample.save_dance_video(folder / f"{name}.mp4", dance)
    render.save_speed_plot(folder / f"{name}_speed.png", dance.keypoints, dance.confidence,
                           dance.fps, song.beats,
                           title=f"{name}: keypoint speed and music beats")
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        sample.save_openpose(Path(scratch) / name, dance, name)
        shutil.make_archive(str(folder / f"{name}_openpose"), "zip", Path(scratch) / name)


def bundled_songs(config, folder: Path) -> dict[str, Path]:
    """The page's example songs by label: librosa's 'choice' where this machine has it, and a
    synthesised drum track written into `folder`."""
    songs = {}
    choice = demo.find_example_song()
    if choice is not None:
        songs["librosa's 'choice' (drum and bass)"] = choice
    folder.mkdir(parents=True, exist_ok=True)
    songs[f"synthesised drums ({EXAMPLE_SECONDS:.0f} s)"] = demo.synthesised_song(
        folder / "synthesised_drums.wav", config, EXAMPLE_SECONDS)
    return songs


def _message(error: InputError, uploads: list[str | None]) -> str:
    """The error's one line, each uploaded file named by its own name (not Gradio's cache path)."""
    message = str(error)
    for path in filter(None, uploads):
        message = message.replace(str(path), Path(path).name)
    return message


def _caption(dances: list[sample.Dance], seconds: float) -> str:
    """One line about a request's dances: how many, how long, to what, how fast it went."""
    song, frames, fps = dances[0].song, len(dances[0].keypoints), dances[0].fps
    return (f"{len(dances)} dance(s) of {frames / fps:.1f} s ({frames} frames at {fps:g} fps) to "
            f"`{song.path.name}` from {song.start:g} s, {song.bpm:.0f} BPM, in {seconds:.0f} s")


def generate_handler(studio: Studio):
    """The Generate button's function: the page's inputs in; the caption, then per sample column
    its visibility, video, plot and downloads out."""
    tracker = gr.Progress(track_tqdm=True)  # Gradio finds it as a default: follows the sampler

    def generate(song, start, seconds, seed, num_samples, guidance, steps, pose, keyframes,
                 progress=tracker):
        if not song:
            raise gr.Error("Upload a song or pick one of the bundled songs first.",
                           print_exception=False)
        begin = time.perf_counter()
        progress(0, desc="reading the song")
        try:
            dances = studio.dances(Path(song), float(start or 0), float(seconds or 0) or None,
                                   Path(pose) if pose else None,
                                   Path(keyframes) if keyframes else None,
                                   num_samples=int(num_samples), seed=int(seed or 0),
                                   steps=int(steps), guidance=float(guidance))
        except InputError as e:
            raise gr.Error(_message(e, [song, pose, keyframes]), print_exception=False) from None
        files = studio.write(dances, progress)
        outputs = [_caption(dances, time.perf_counter() - begin)]
        for i in range(MAX_SAMPLES):
            shown = files[i] if i < len(files) else None
            outputs += [gr.Column(visible=shown is not None),
                        shown and shown["video"], shown and shown["plot"],
                        shown and [shown["npz"], shown["openpose"], shown["video"]]]
        return outputs

    return generate


def _sample_column(i: int) -> list:
    """Sample i's column: [the column, its video, its speed plot, its downloads]. The first is
    shown from the start: the progress bar of a request runs over it."""
    with gr.Column(visible=i == 0, min_width=240) as column:
        video = gr.Video(label=f"Sample {i + 1}", elem_id=f"video-{i}", interactive=False)
        plot = gr.Image(label="Keypoint speed and music beats", show_label=False,
                        elem_id=f"plot-{i}", interactive=False, type="filepath")
        downloads = gr.File(label="Downloads: npz, OpenPose JSON (zip), mp4",
                            elem_id=f"files-{i}", file_count="multiple", interactive=False)
    return [column, video, plot, downloads]


def page(studio: Studio, songs: dict[str, Path]) -> gr.Blocks:
    """The studio's Gradio page: inputs on the left, the samples side by side on the right."""
    generator = studio.generator
    # Gradio's copies of uploads and outputs: removed a day old, and all at the next start
    with gr.Blocks(title="HotDance studio", analytics_enabled=False,
                   delete_cache=(3600, 24 * 3600)) as blocks:
        gr.Markdown(f"# HotDance studio\nMusic in, a 2D dance out: step {generator.step} of "
                    f"`{studio.name}`, {studio.width} x {studio.height} px at "
                    f"{generator.config.pose.fps:g} fps.")
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                song = gr.Audio(label="Song", sources=["upload"], type="filepath", elem_id="song")
                gr.Examples([[str(path)] for path in songs.values()], [song],
                            label="Bundled songs", example_labels=list(songs))
                with gr.Row():
                    start = gr.Number(0, label="Start (s)", minimum=0, elem_id="start")
                    seconds = gr.Number(10, label="Length (s), 0: to the end", minimum=0,
                                        elem_id="seconds")
                with gr.Row():
                    seed = gr.Number(0, label="Seed", precision=0, elem_id="seed")
                    num_samples = gr.Slider(1, MAX_SAMPLES, value=2, step=1, label="Samples",
                                            elem_id="samples")
                guidance = gr.Slider(1, 5, value=2, step=0.5, label="Guidance on the music "
                                     "(1: off)", elem_id="guidance")
                steps = gr.Slider(1, 100, value=30, step=1, label="Sampling steps",
                                  elem_id="steps")
                pose = gr.File(label="Starting pose (OpenPose JSON, optional)", type="filepath",
                               file_types=[".json"], elem_id="pose",
                               visible=studio.takes_reference)
                keyframes = gr.File(label='Keyframes (optional): JSON list of {"time": s from '
                                    'the start, "pose": ...}', type="filepath",
                                    file_types=[".json"], elem_id="keyframes",
                                    visible=studio.takes_reference)
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=3):
                caption = gr.Markdown("Choose a song and generate: the samples appear here, "
                                      "side by side.", elem_id="caption")
                with gr.Row(equal_height=False):
                    columns = [_sample_column(i) for i in range(MAX_SAMPLES)]
        button.click(generate_handler(studio),
                     [song, start, seconds, seed, num_samples, guidance, steps, pose, keyframes],
                     [caption, *(part for column in columns for part in column)])
    return blocks


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    flags.DEFINE_string("workdir", None, "Training run folder (python -m hotdance_jax.train), "
                        "local or gs://bucket/path.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to serve on (0.0.0.0: every interface, "
                        "the page is then open to the network).")
    flags.DEFINE_integer("port", 7860, "Port to serve on.", lower_bound=1, upper_bound=65535)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise InputError(f"unexpected arguments: {argv[1:]}")
    if gr is None:
        raise InputError("the studio needs Gradio: pip install -e .[studio]")
    cli.require_flags("workdir")
    workdir = run_path(FLAGS.workdir)
    generator = sample.DanceGenerator.load(workdir)
    with tempfile.TemporaryDirectory(prefix="hotdance-studio-") as root:
        studio = Studio(generator, FLAGS.workdir, Path(root))
        songs = bundled_songs(generator.config, Path(root) / "songs")
        print(f"studio: step {generator.step} of {workdir} on http://{FLAGS.host}:{FLAGS.port} "
              "(Ctrl-C stops it)", flush=True)
        page(studio, songs).queue(default_concurrency_limit=1).launch(
            server_name=FLAGS.host, server_port=FLAGS.port, theme=gr.themes.Soft(font=FONTS),
            allowed_paths=[root, *(str(path.parent) for path in songs.values())])


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
