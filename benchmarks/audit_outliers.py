"""Which audit method finds planted outliers in real speaker folders (and face folders), at what false-positive cost.

For each VCC2016 speaker, the speaker's training folder is copied into a temporary folder and a share
(default 5%) of outliers of each kind is planted beside the clean files:

- ``other_same``: recordings of the other VCC2016 speaker of the same sex (the hard case),
- ``other_cross``: recordings of a speaker of the other sex,
- ``noise``: white or pink noise, 2-5 s,
- ``tones``: music-like tone mixtures (chords of harmonic notes with attack and decay), 2-5 s,
- ``clipped``: one of the speaker's own files amplified by 12-24 dB and clipped,
- ``broken``: a truncated FLAC, a truncated WAV, or bytes that are not audio.

Then each method flags files on its own, and the shipped combination as ``audit_speaker_folder`` runs it:

- ``checks``: the cheap per-file checks (unreadable, too short, clipped, SNR, silence, sample rate, loudness),
- ``embedding``: Resemblyzer distance to a robust centroid of the whole folder (no help from the checks),
- ``likelihood``: a full-covariance Gaussian of the folder's log-mel frames, lowest mean log-likelihood,
- ``spectrogram VAE``: the lecture's way: a small VAE trained (30 s) on the folder's log-mel crops, worst
  reconstructions (here only: it adds nothing, see the table),
- ``shipped: checks+embedding``: ``audit_speaker_folder`` with its default methods (checks, then the
  embedding with the checks' trust), and the combinations with the other methods.

Printed: recall per kind (share of planted files flagged) and the false-positive rate on the clean files.
With ``--faces``, a face folder with planted non-faces and broken images is audited with the face VAE.

    .venv/bin/python benchmarks/audit_outliers.py [--speakers SF1 TM1 SM1 TF2] [--share 0.05] [--faces]
        [--no-spectrogram] [--seed 0]

About 1-2 minutes of CPU per speaker (the embeddings and the spectrogram VAE's 30 s budget).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voiceconv import audit
from voiceconv.audio.io import audio_files, load_audio

SHARED = REPO.parent / "shared" / "data"
VCC = SHARED / "vcc2016" / "train"
SAME_SEX = {"SF1": "TF2", "TF2": "SF1", "SM1": "TM1", "TM1": "SM1"}
OTHER_SEX = {"SF1": "TM1", "TM1": "SF1", "SM1": "TF2", "TF2": "SM1"}
KINDS = ("other_same", "other_cross", "noise", "tones", "clipped", "broken")
RATE = 16000
SINGLE_METHODS = ("embedding", "likelihood", "spectrogram VAE")  # judged alone, without the cheap checks
SHIPPED = "shipped: checks+embedding"


# --- planting ------------------------------------------------------------------------------------------------
def white_or_pink_noise(rng: np.random.Generator, index: int) -> np.ndarray:
    """2-5 s of white (even index) or pink (odd) noise at -35 to -20 dBFS RMS ``[samples]``."""
    samples = int(rng.uniform(2, 5) * RATE)
    noise = rng.standard_normal(samples)
    if index % 2:
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))  # 1/f power
        noise = np.fft.irfft(spectrum, samples)
    level = 10 ** (rng.uniform(-35, -20) / 20)
    return (noise / np.sqrt(np.mean(noise**2)) * level).astype(np.float32)


def music_like_tones(rng: np.random.Generator) -> np.ndarray:
    """2-5 s of chords of harmonic notes (pentatonic, 110-880 Hz) with attack and decay, some rests ``[samples]``."""
    samples = int(rng.uniform(2, 5) * RATE)
    wav = np.zeros(samples)
    scale = 110 * 2 ** (np.array([0, 2, 4, 7, 9]) / 12)
    start = 0
    while start < samples:
        length = int(rng.uniform(0.15, 0.5) * RATE)
        t = np.arange(min(length, samples - start)) / RATE
        envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / rng.uniform(0.1, 0.4))
        if rng.random() > 0.15:  # else a rest
            for _ in range(rng.integers(1, 4)):
                f0 = scale[rng.integers(0, 5)] * 2 ** rng.integers(0, 3)
                wav[start:start + len(t)] += envelope * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 7))
        start += length
    return (0.3 * wav / (np.abs(wav).max() + 1e-9)).astype(np.float32)


def clipped_copy(source: Path, rng: np.random.Generator) -> np.ndarray:
    gain = 10 ** (rng.uniform(12, 24) / 20)
    return np.clip(load_audio(source, RATE) * gain, -1.0, 1.0)


def write_broken(path: Path, source: Path, index: int) -> Path:
    """A truncated FLAC (index % 3 == 0), a truncated WAV (1) or random bytes named .wav (2)."""
    if index % 3 == 0:
        data = source.read_bytes()
        path = path.with_suffix(".flac")
        path.write_bytes(data[: len(data) // 2])
    elif index % 3 == 1:
        path = path.with_suffix(".wav")
        sf.write(path, load_audio(source, RATE), RATE, subtype="PCM_16")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path = path.with_suffix(".wav")
        path.write_bytes(np.random.default_rng(index).bytes(20000))
    return path


def plant_speaker_folder(speaker: str, folder: Path, share: float, seed: int) -> dict[Path, str]:
    """Copy ``speaker``'s training files into ``folder`` and plant outliers; {path: kind, 'clean' for the copies}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    clean = audio_files(VCC / speaker)
    truth = {}
    for path in clean:
        shutil.copy2(path, folder / path.name)
        truth[folder / path.name] = "clean"
    count = max(1, round(share * len(clean)))
    for kind in KINDS:
        for index in range(count):
            target = folder / f"9{KINDS.index(kind)}{index:04d}.flac"
            if kind in ("other_same", "other_cross"):
                other = audio_files(VCC / (SAME_SEX if kind == "other_same" else OTHER_SEX)[speaker])
                shutil.copy2(other[rng.integers(len(other))], target)
            elif kind == "noise":
                sf.write(target, white_or_pink_noise(rng, index), RATE)
            elif kind == "tones":
                sf.write(target, music_like_tones(rng), RATE)
            elif kind == "clipped":
                sf.write(target, clipped_copy(clean[rng.integers(len(clean))], rng), RATE)
            else:
                target = write_broken(target, clean[rng.integers(len(clean))], index)
            truth[target] = kind
    return truth


# --- methods -------------------------------------------------------------------------------------------------
class CachedEncoder:
    """The speaker encoder, embedding each waveform once however many methods ask."""

    def __init__(self, encoder):
        self.encoder, self.cache = encoder, {}

    def embed(self, wave: np.ndarray, rate: int) -> np.ndarray:
        key = (hash(wave.tobytes()), len(wave), rate)
        if key not in self.cache:
            try:
                self.cache[key] = self.encoder.embed(wave, rate)
            except ValueError as err:
                self.cache[key] = err
        if isinstance(self.cache[key], ValueError):
            raise self.cache[key]
        return self.cache[key]


def fresh(audits: list[audit.FileAudit]) -> list[audit.FileAudit]:
    """Copies without the checks' reasons (unreadable files keep theirs: no method can look at them)."""
    out = []
    for a in audits:
        b = copy.copy(a)
        b.reasons = list(a.reasons) if not a.readable else []
        out.append(b)
    return out


# The lecture's way: a small VAE of the folder's log-mel crops; files whose crops it reconstructs worst.
@dataclass(frozen=True)
class SpectrogramVAEConfig:
    n_mels: int = 64
    crop_frames: int = 32  # 0.5 s at hop 256
    channels: tuple[int, ...] = (16, 32, 64)
    latent: int = 16
    batch_size: int = 32
    max_steps: int = 1500
    max_seconds: float = 30.0
    mad_k: float = 4.0
    seed: int = 0


def file_crops(waves: dict[Path, np.ndarray], config: SpectrogramVAEConfig) -> dict:
    """{path: non-overlapping log-mel crops ``[K, 1, n_mels, crop_frames]`` (torch)} (a short file: one padded crop)."""
    import torch
    import torch.nn.functional as F

    from voiceconv.audio.features import FeatureConfig, MelImageEncoder

    encoder = MelImageEncoder(FeatureConfig(sample_rate=RATE, n_mels=config.n_mels))
    crops = {}
    for path, wave in waves.items():
        image = encoder(torch.from_numpy(wave))[0]  # [n_mels, T]
        width = config.crop_frames
        if image.shape[-1] < width:
            image = F.pad(image, (0, width - image.shape[-1]), value=-1.0)
        count = image.shape[-1] // width
        crops[path] = image[:, :count * width].reshape(config.n_mels, count, width).permute(1, 0, 2)[:, None]
    return crops


def spectrogram_vae_scores(waves: dict[Path, np.ndarray], config: SpectrogramVAEConfig) -> dict[Path, float]:
    """{path: mean squared reconstruction error of its crops} under a VAE trained on every file's crops."""
    import torch

    from voiceconv.models.vae import VAE, VAEConfig

    crops = file_crops(waves, config)
    pool = torch.cat(list(crops.values()))  # [N, 1, n_mels, crop_frames]
    model = VAE(1, config.n_mels, config.crop_frames, VAEConfig(channels=config.channels, latent=config.latent),
                seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    start = time.monotonic()
    for _ in range(config.max_steps):
        model.train_step({"images": pool[torch.randint(0, len(pool), (config.batch_size,), generator=generator)]})
        if time.monotonic() - start > config.max_seconds:
            break
    model.eval()
    with torch.no_grad():
        return {path: float((model.reconstruct(c) - c).pow(2).mean()) for path, c in crops.items()}


def flag_by_score(audits: list[audit.FileAudit], scores: dict[Path, float], k: float, label: str) -> None:
    """Flag the files whose log score is above the folder's median + k MAD."""
    logs = {p: float(np.log(v + 1e-12)) for p, v in scores.items()}
    cut = audit.robust_threshold(np.array(list(logs.values())), k)
    by_path = {a.path: a for a in audits}
    for path, value in logs.items():
        if value > cut:
            by_path[path].reasons.append(label)


def run_methods(folder: Path, settings: audit.AuditSettings, encoder: CachedEncoder,
                spectrogram: bool) -> dict[str, tuple[list[audit.FileAudit], float]]:
    """{method: (its audits, seconds it took)}."""
    results = {}
    start = time.monotonic()
    measured = [audit.measure_file(p, folder.name, settings) for p in audio_files(folder)]
    checks = [a for a, _ in measured]
    waves = {a.path: w for a, w in measured if w is not None}
    audit.flag_folder_deviations(checks, settings)
    results["checks"] = (checks, time.monotonic() - start)

    start = time.monotonic()
    alone = fresh(checks)
    audit.flag_embedding_outliers(alone, waves, encoder, settings)
    results["embedding"] = (alone, time.monotonic() - start)

    start = time.monotonic()
    alone = fresh(checks)
    audit.flag_likelihood_outliers(alone, waves, settings)
    results["likelihood"] = (alone, time.monotonic() - start)

    if spectrogram:
        start = time.monotonic()
        alone = fresh(checks)
        flag_by_score(alone, spectrogram_vae_scores(waves, SpectrogramVAEConfig()), SpectrogramVAEConfig.mad_k,
                      "spectrogram VAE")
        results["spectrogram VAE"] = (alone, time.monotonic() - start)
        vae_flags = {a.path for a in alone if a.flagged and a.readable}

    start = time.monotonic()
    shipped = audit.audit_speaker_folder(folder, encoder=encoder.encoder, settings=settings)  # uncached: real time
    results["shipped: checks+embedding"] = (shipped.files, time.monotonic() - start)

    start = time.monotonic()
    fallback = audit.audit_speaker_folder(folder, settings=settings, methods=("likelihood",))
    results["shipped without eval extra: checks+likelihood"] = (fallback.files, time.monotonic() - start)

    start = time.monotonic()
    everything = audit.audit_speaker_folder(folder, encoder=encoder, settings=settings,
                                            methods=("embedding", "likelihood"))
    results["checks+embedding+likelihood"] = (everything.files, time.monotonic() - start + results["embedding"][1])
    if spectrogram:
        combined = fresh(shipped.files)
        for a, b in zip(combined, shipped.files):
            a.reasons = list(b.reasons) + (["spectrogram VAE"] if a.path in vae_flags else [])
        results["checks+embedding+spectrogram VAE"] = (
            combined, results["shipped: checks+embedding"][1] + results["spectrogram VAE"][1])
    return results


@dataclass
class Tally:
    flagged: int = 0
    total: int = 0

    def add(self, flagged: bool) -> None:
        self.flagged += int(flagged)
        self.total += 1

    def __str__(self) -> str:
        return f"{self.flagged}/{self.total}" if self.total else "-"


def tally(audits: list[audit.FileAudit], truth: dict[Path, str], method: str) -> dict[str, Tally]:
    tallies = defaultdict(Tally)
    for a in audits:
        kind = truth[a.path]
        single = method in SINGLE_METHODS
        own = any(not r.startswith("unreadable") for r in a.reasons) if single else a.flagged
        if kind == "broken" and single:
            continue  # only reading can judge a file nothing can read
        tallies[kind].add(own)
    return tallies


def print_table(rows: dict[str, dict[str, Tally]], seconds: dict[str, float]) -> None:
    header = ["method", *KINDS, "all planted", "clean flagged (FP)", "s/folder"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for method, tallies in rows.items():
        planted = Tally(sum(tallies[k].flagged for k in KINDS), sum(tallies[k].total for k in KINDS))
        cells = [_percent(tallies[k]) for k in KINDS] + [_percent(planted), _percent(tallies["clean"])]
        print(f"| {method} | " + " | ".join(cells) + f" | {seconds[method]:.0f} |")


def _percent(t: Tally) -> str:
    return f"{100 * t.flagged / t.total:.0f}% ({t})" if t.total else "-"


def benchmark_voices(speakers: list[str], share: float, seed: int, spectrogram: bool,
                     dump: list[str] | None = None) -> None:
    from voiceconv.evaluate.speaker import SpeakerEncoder

    encoder = CachedEncoder(SpeakerEncoder())
    settings = audit.AuditSettings()
    rows: dict[str, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
    seconds: dict[str, float] = defaultdict(float)
    misses = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, speaker in enumerate(speakers):
            folder = Path(tmp) / speaker
            truth = plant_speaker_folder(speaker, folder, share, seed + number)
            for method, (audits, took) in run_methods(folder, settings, encoder, spectrogram).items():
                seconds[method] += took / len(speakers)
                for kind, t in tally(audits, truth, method).items():
                    rows[method][kind].flagged += t.flagged
                    rows[method][kind].total += t.total
                if dump is not None:
                    dump.extend(_measurements(speaker, method, audits, truth))
                if method == SHIPPED:
                    misses += [f"{speaker} {truth[a.path]} {a.path.name}: {a.reason or 'not flagged'}"
                               for a in audits if a.flagged != (truth[a.path] != "clean")]
            print(f"{speaker}: {len(truth)} files, {sum(k != 'clean' for k in truth.values())} planted",
                  file=sys.stderr, flush=True)
    print(f"\nVCC2016 {', '.join(speakers)}; {share:.0%} planted per kind; seed {seed}\n")
    print_table(rows, seconds)
    print("\nshipped method's mistakes:\n" + ("\n".join(misses) or "none"))


def _measurements(speaker: str, method: str, audits: list[audit.FileAudit], truth: dict[Path, str]) -> list[str]:
    fields = ("seconds", "sound_seconds", "loudness_lufs", "clipped_share", "silence_share", "snr_db",
              "embedding_distance", "likelihood_score")
    return [",".join([speaker, method, truth[a.path], a.path.name, *(str(getattr(a, f)) for f in fields),
                      '"' + a.reason.replace('"', "'") + '"']) for a in audits]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speakers", nargs="+", default=["SF1", "TM1", "SM1", "TF2"])
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-spectrogram", action="store_true", help="skip the spectrogram-VAE method")
    parser.add_argument("--faces", action="store_true", help="also audit face folders with planted non-faces")
    parser.add_argument("--no-voices", action="store_true")
    parser.add_argument("--dump", type=Path, help="write every file's measurements per method to this CSV")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if not args.no_voices:
        dump = [] if args.dump else None
        benchmark_voices(args.speakers, args.share, args.seed, not args.no_spectrogram, dump)
        if args.dump:
            args.dump.write_text("speaker,method,kind,file,seconds,sound_seconds,lufs,clipped,silence,snr,"
                                 "embedding_distance,likelihood_score,reason\n" + "\n".join(dump) + "\n")
    if args.faces:
        benchmark_faces(args.share, args.seed)


FACE_MODEL = REPO / "samples" / "models" / "faces_vae.safetensors"


def plant_face_folder(source: Path, folder: Path, share: float, seed: int) -> dict[Path, str]:
    """Copy the images under ``source`` into ``folder``, plant non-faces and broken images; {path: kind}."""
    from voiceconv.faces.data import image_files

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    faces = image_files(source)
    truth = {}
    for index, path in enumerate(faces):
        target = folder / f"{index:04d}{path.suffix}"
        shutil.copy2(path, target)
        truth[target] = "clean"
    count = max(1, round(share * len(faces)))
    nonfaces = image_files(SHARED / "nonfaces")
    for index, pick in enumerate(rng.choice(len(nonfaces), count, replace=False)):
        target = folder / f"9{index:03d}{nonfaces[pick].suffix}"
        shutil.copy2(nonfaces[pick], target)
        truth[target] = "non-face"
    for index in range(count):
        target = folder / f"8{index:03d}.jpg"
        if index % 3 == 0:
            target.write_bytes(faces[rng.integers(len(faces))].read_bytes()[:400])  # truncated
        elif index % 3 == 1:
            target.write_bytes(rng.bytes(5000))  # not an image
        else:
            target.write_bytes(b"")  # empty
        truth[target] = "broken"
    return truth


def benchmark_faces(share: float, seed: int) -> None:
    from voiceconv.faces.audit import audit_face_folder

    print(f"\nFace folders with {share:.0%} non-faces (Caltech-101 objects) and {share:.0%} broken images; "
          f"model {FACE_MODEL.relative_to(REPO)} (trained on these very faces)\n")
    print("| folder | non-faces flagged | broken flagged | faces flagged (FP) | s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in (("caltech101_faces", SHARED / "faces" / "caltech101_faces"),
                             ("orl", SHARED / "faces" / "orl")):
            truth = plant_face_folder(source, Path(tmp) / name, share, seed)
            start = time.monotonic()
            report = audit_face_folder(Path(tmp) / name, FACE_MODEL)
            took = time.monotonic() - start
            tallies = defaultdict(Tally)
            for a in report.files:
                tallies[truth[a.path]].add(a.flagged)
            print(f"| {name} | {_percent(tallies['non-face'])} | {_percent(tallies['broken'])} | "
                  f"{_percent(tallies['clean'])} | {took:.0f} |")


if __name__ == "__main__":
    main()
