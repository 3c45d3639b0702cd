"""How close does kNN frame matching come to the target's own frames? A cheap proxy for the pull's quality.

For each evaluation sentence of a dev pair, the parallel target sentence's WORLD envelope is DTW-aligned to the
source's frames (the oracle of ``benchmarks/oracle_components.py``, whose envelope alone lifts similarity to
0.83-0.92). Every voiced frame's envelope is then compared with that oracle, as a mel-cepstral distance in dB
(order 24, c0 left out, no further DTW: the frames already correspond):

- ``formula``: the WORLD voice changer's warped envelope (nothing matched);
- ``blend B``: the kNN voice changer's envelope moved ``B`` of the way to its matched frames' mean.

A matching that lands nearer the oracle gives the pull (and the knn-vc baseline) a better target. Each ``--config``
is a comma-separated list of ``voiceconv.audio.knn.KnnConfig`` fields (``k=4,context=0``; ``default`` for none).
Two other matchers are tried on each config's pool: ``--inca N`` (an affine map of the source's descriptions fitted
by N rounds of matching and least squares, Erro et al. 2010) and ``--content CODE`` (matching on the code of a small
autoencoder of both speakers' descriptions, its decoder told the speaker). ``--render B ...`` also converts the
sentences at those blends (WORLD synthesis) and scores them with ``voiceconv evaluate``::

    .venv/bin/python benchmarks/knn_matching.py kathleen_rms --config default k=4 k=32
    .venv/bin/python benchmarks/knn_matching.py sm1_tf2 --content 16 --render 0.5 0.75 -o runs/eval/knn_sm1
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dev_pairs import PAIRS, evaluate, pair_folders, write_table  # noqa: E402
from oracle_components import matched_frames, save_converted, sentence_pairs, spread_waves  # noqa: E402

from voiceconv.audio import world  # noqa: E402
from voiceconv.audio.io import load_audio  # noqa: E402
from voiceconv.audio.knn import KnnConfig, KnnVoiceChanger, blend_toward, frame_descriptions  # noqa: E402
from voiceconv.audio.phones import load_phone_model  # noqa: E402
from voiceconv.evaluate.mcd import frame_distortion, mel_cepstrum  # noqa: E402

SAMPLE_RATE = 16000
BLENDS = (0.25, 0.5, 0.75, 1.0)


@dataclasses.dataclass(frozen=True)
class Sentence:
    """An evaluation sentence: its file, length, WORLD frames, and the DTW-aligned target's log envelope."""

    path: Path
    samples: int
    frames: world.WorldFrames
    oracle: np.ndarray  # [T, bins]


def parse_config(text: str) -> KnnConfig:
    if text == "default":
        return KnnConfig()
    fields = {f.name: f.type for f in dataclasses.fields(KnnConfig)}
    values = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        values[key] = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true")}[fields[key]](value)
    return KnnConfig(**values)


def distance_db(a: np.ndarray, b: np.ndarray) -> float:
    """Mean mel-cepstral distance in dB between two sets of log envelopes ``[T, bins]`` frame by frame (c0 left
    out)."""
    def cepstra(log_envelope: np.ndarray) -> np.ndarray:
        return mel_cepstrum(np.exp(log_envelope), SAMPLE_RATE)[:, 1:]  # [T, 24]
    return float(np.mean(frame_distortion(cepstra(a), cepstra(b))))


def reference_frames(changer: KnnVoiceChanger, source_refs: list[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each of the source speaker's reference recordings analysed as the changer analyses a source: its voicing
    ``[T]`` and warped log envelope ``[bins, T]``."""
    return [changer._log_envelope(wav, changer.alignment.warp) for wav in source_refs]


def reference_descriptions(changer: KnnVoiceChanger, frames: list[tuple[torch.Tensor, torch.Tensor]], flag: bool
                           ) -> torch.Tensor:
    """The descriptions ``[M, D]`` of the reference ``frames`` (:func:`reference_frames`) voiced ``flag``, as the
    changer describes frames: normalized, context within each recording."""
    return torch.cat([frame_descriptions(changer.source_stats.normalize(e), changer.config)[v == flag]
                      for v, e in frames])


def voiced_descriptions(changer: KnnVoiceChanger, log_envelope: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """The descriptions ``[T_v, D]`` of an utterance's voiced frames, as :meth:`KnnVoiceChanger.match` makes them."""
    return frame_descriptions(changer.source_stats.normalize(log_envelope)[:, voiced], changer.config)


class IncaMatching:
    """INCA (Erro et al. 2010) on the kNN descriptions: an affine map of the source's frame descriptions, fitted by
    alternating nearest-neighbour matching and least squares on the source's reference frames, is applied before
    matching. ``iterations`` 0 is plain kNN."""

    def __init__(self, changer: KnnVoiceChanger, source_refs: list[np.ndarray], iterations: int, ridge: float = 1.0):
        self.changer, self.maps = changer, {}
        frames = reference_frames(changer, source_refs)
        for flag, (pool, _) in changer.pools.items():
            described = reference_descriptions(changer, frames, flag)  # [N, D]
            inputs = torch.cat([described, torch.ones(len(described), 1)], dim=1).double()  # [N, D + 1]
            weights = torch.eye(inputs.shape[1], described.shape[1], dtype=torch.float64)  # identity start
            for _ in range(iterations):
                nearest = pool.nearest_described((inputs @ weights).float())  # [N, k]
                wanted = pool.descriptions[nearest].mean(dim=1).double()  # [N, D]
                gram = inputs.T @ inputs + ridge * torch.eye(inputs.shape[1], dtype=torch.float64)
                weights = torch.linalg.solve(gram, inputs.T @ wanted)
            self.maps[flag] = weights.float()

    def match(self, frames: world.WorldFrames) -> tuple[torch.Tensor, torch.Tensor]:
        changer = self.changer
        voiced, log_envelope = changer._log_envelope(None, changer.alignment.warp, frames)
        described = frame_descriptions(changer.source_stats.normalize(log_envelope), changer.config)  # [T, D]
        matched = log_envelope.clone()
        for flag, (pool, pool_frames) in changer.pools.items():
            chosen = voiced == flag
            if chosen.any():
                mapped = torch.cat([described[chosen], torch.ones(int(chosen.sum()), 1)], dim=1) @ self.maps[flag]
                matched[:, chosen] = pool_frames[pool.nearest_described(mapped)].mean(dim=1).T
        return log_envelope, matched


class ContentMatching:
    """Matching on a learned, speaker-free code: an autoencoder of both speakers' frame descriptions whose decoder is
    told the speaker (so its small code need not carry who speaks), with a speaker classifier on the code trained
    against it (gradient reversal). Voiced frames are matched on the code; unvoiced ones as the changer does."""

    def __init__(self, changer: KnnVoiceChanger, source_refs: list[np.ndarray], code: int = 8, steps: int = 3000,
                 adversary: float = 0.3, ramp: bool = False, contrast: float = 0.0, seed: int = 0):
        torch.manual_seed(seed)
        self.changer = changer
        source = reference_descriptions(changer, reference_frames(changer, source_refs), True)  # [M, D]
        pool, _ = changer.pools[True]
        target = pool.descriptions  # [N, D]
        scale = torch.cat([source, target]).std(dim=0).clamp_min(1e-3)  # [D]
        self.scale = scale
        width = source.shape[1]
        self.encoder = torch.nn.Sequential(torch.nn.Linear(width, 256), torch.nn.GELU(), torch.nn.Linear(256, 256),
                                           torch.nn.GELU(), torch.nn.Linear(256, code))
        decoder = torch.nn.Sequential(torch.nn.Linear(code + 2, 256), torch.nn.GELU(), torch.nn.Linear(256, 256),
                                      torch.nn.GELU(), torch.nn.Linear(256, width))
        critic = torch.nn.Sequential(torch.nn.Linear(code, 128), torch.nn.GELU(), torch.nn.Linear(128, 2))
        optimizer = torch.optim.Adam([*self.encoder.parameters(), *decoder.parameters(), *critic.parameters()], 1e-3)
        sides = (source / scale, target / scale)
        for step in range(steps):
            batch = [side[torch.randint(len(side), (256,))] for side in sides]
            x = torch.cat(batch)  # [512, D]
            who = torch.cat([torch.zeros(256, dtype=torch.long), torch.ones(256, dtype=torch.long)])
            z = self.encoder(x)
            rebuilt = decoder(torch.cat([z, torch.nn.functional.one_hot(who, 2).float()], dim=1))
            weight = adversary * min(1.0, 2.0 * step / steps) if ramp else adversary  # ramp: over the first half
            reversed_z = z.detach() + (z - z.detach()) * -weight  # gradient reversal into the encoder
            critic_loss = torch.nn.functional.cross_entropy(critic(reversed_z), who)
            loss = (rebuilt - x).pow(2).mean() + critic_loss
            if contrast > 0:  # neighbouring frames (the same sound, mostly) close, the batch's other frames apart
                loss = loss + contrast * sum(neighbour_contrast(self.encoder, side) for side in sides)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 1000 == 0 or step == steps - 1:
                with torch.no_grad():
                    accuracy = (critic(z).argmax(dim=1) == who).float().mean()
                print(f"  content encoder step {step}: reconstruction {(rebuilt - x).pow(2).mean():.3f}, "
                      f"speaker told from the code {accuracy:.0%}", flush=True)
        with torch.no_grad():
            self.pool_codes = self.encoder(target / scale)  # [N, code]

    def match(self, frames: world.WorldFrames) -> tuple[torch.Tensor, torch.Tensor]:
        changer = self.changer
        log_envelope, matched = changer.match(frames)
        voiced = torch.from_numpy(frames.f0 > 0)
        if voiced.any():
            described = voiced_descriptions(changer, log_envelope, voiced)  # [T_v, D]
            with torch.no_grad():
                codes = self.encoder(described / self.scale)  # [T_v, code]
            distances = torch.cdist(codes, self.pool_codes)  # [T_v, N]
            nearest = distances.topk(changer.config.k, dim=1, largest=False).indices
            matched[:, voiced] = changer.pools[True][1][nearest].mean(dim=1).T
        return log_envelope, matched


class ClassShift:
    """Class-wise amplitude scaling (after Godoy et al. 2012, with the alignment's one warp for all classes): both
    speakers' frames, each described as the changer describes them (normalized by its own speaker), are clustered
    together by k-means into ``classes``; a source frame moves by its class's mean log envelope on the target side
    less its mean on the source side. The frame keeps its own detail, so only what differs between the speakers
    for that kind of sound changes."""

    def __init__(self, changer: KnnVoiceChanger, source_refs: list[np.ndarray], classes: int, iterations: int = 30,
                 seed: int = 0):
        self.changer, self.centres, self.shifts = changer, {}, {}
        frames = reference_frames(changer, source_refs)
        for flag, (pool, pool_frames) in changer.pools.items():
            source = reference_descriptions(changer, frames, flag)  # [M, D]
            source_frames = torch.cat([e[:, v == flag] for v, e in frames], dim=1).T  # [M, bins]
            centres = kmeans(torch.cat([source, pool.descriptions]), classes, iterations, seed)  # [C, D]
            source_class, target_class = nearest_centre(source, centres), nearest_centre(pool.descriptions, centres)
            overall = pool_frames.mean(dim=0) - source_frames.mean(dim=0)  # [bins]
            shifts = overall.repeat(classes, 1)  # [C, bins]: a class one side lacks moves as the whole speaker does
            for c in range(classes):
                on_source, on_target = source_class == c, target_class == c
                if int(on_source.sum()) >= 10 and int(on_target.sum()) >= 10:
                    shifts[c] = pool_frames[on_target].mean(dim=0) - source_frames[on_source].mean(dim=0)
            self.centres[flag], self.shifts[flag] = centres, shifts

    def match(self, frames: world.WorldFrames) -> tuple[torch.Tensor, torch.Tensor]:
        changer = self.changer
        voiced, log_envelope = changer._log_envelope(None, changer.alignment.warp, frames)
        described = frame_descriptions(changer.source_stats.normalize(log_envelope), changer.config)  # [T, D]
        matched = log_envelope.clone()
        for flag, centres in self.centres.items():
            chosen = voiced == flag
            if chosen.any():
                matched[:, chosen] += self.shifts[flag][nearest_centre(described[chosen], centres)].T
        return log_envelope, matched


def kmeans(points: torch.Tensor, classes: int, iterations: int, seed: int) -> torch.Tensor:
    """Lloyd's k-means of ``points`` ``[N, D]`` from ``classes`` random points: the centres ``[C, D]``."""
    generator = torch.Generator().manual_seed(seed)
    centres = points[torch.randperm(len(points), generator=generator)[:classes]].clone()
    for _ in range(iterations):
        members = nearest_centre(points, centres)
        for c in range(len(centres)):
            if (members == c).any():
                centres[c] = points[members == c].mean(dim=0)
    return centres


def nearest_centre(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """The nearest of ``centres`` ``[C, D]`` to each of ``points`` ``[N, D]``: ``[N]``."""
    return torch.cdist(points, centres).argmin(dim=1)


def neighbour_contrast(encoder: torch.nn.Module, frames: torch.Tensor, batch: int = 256, tau: float = 0.1
                       ) -> torch.Tensor:
    """InfoNCE over a speaker's frames ``[N, D]`` in time order: each sampled frame's code must pick out the next
    frame's code among the batch's."""
    anchors = torch.randint(len(frames) - 1, (batch,))
    a = torch.nn.functional.normalize(encoder(frames[anchors]), dim=1)  # [B, code]
    b = torch.nn.functional.normalize(encoder(frames[anchors + 1]), dim=1)
    return torch.nn.functional.cross_entropy(a @ b.T / tau, torch.arange(batch))


class UnitSelection:
    """Matching with a concatenation cost, as in unit-selection synthesis: each voiced source frame takes one of its
    ``candidates`` nearest target frames, chosen by Viterbi so that the path follows the target's own recordings
    (frame i+1 after frame i) unless a jump pays: a jump costs ``penalty`` times the median match distance."""

    def __init__(self, changer: KnnVoiceChanger, penalty: float, candidates: int = 16):
        self.changer, self.penalty, self.candidates = changer, penalty, candidates

    def match(self, frames: world.WorldFrames) -> tuple[torch.Tensor, torch.Tensor]:
        changer = self.changer
        log_envelope, matched = changer.match(frames)
        voiced = torch.from_numpy(frames.f0 > 0)
        if int(voiced.sum()) >= 2:
            pool, pool_frames = changer.pools[True]
            described = voiced_descriptions(changer, log_envelope, voiced)  # [T_v, D]
            distances = torch.cdist(described, pool.descriptions).pow(2)  # [T_v, N]
            cost, index = distances.topk(self.candidates, dim=1, largest=False)  # [T_v, K] each
            path = viterbi(cost / cost[:, 0].median().clamp_min(1e-6), index, self.penalty)  # [T_v] pool indices
            matched[:, voiced] = pool_frames[path].T
        return log_envelope, matched


def viterbi(cost: torch.Tensor, index: torch.Tensor, penalty: float) -> torch.Tensor:
    """The pool frame per step ``[T]`` among candidates ``index`` ``[T, K]`` (match costs ``cost`` ``[T, K]``) that
    minimizes the summed match costs plus ``penalty`` for every step that is not the next frame of the last one."""
    steps, _ = cost.shape
    total = cost[0].clone()  # [K]
    back = torch.zeros_like(index)
    for t in range(1, steps):
        follows = index[t][None, :] == index[t - 1][:, None] + 1  # [K_prev, K]
        step_cost = total[:, None] + torch.where(follows, 0.0, penalty)  # [K_prev, K]
        best, back[t] = step_cost.min(dim=0)
        total = best + cost[t]
    path = [int(total.argmin())]
    for t in range(steps - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    choice = torch.tensor(path[::-1])  # [T] candidate numbers
    return index[torch.arange(steps), choice]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pair", choices=sorted(PAIRS))
    parser.add_argument("--config", nargs="+", default=["default"])
    parser.add_argument("--target-files", type=int, default=60, help="target recordings matched against")
    parser.add_argument("--inca", type=int, nargs="+", default=[], help="also INCA with these iteration counts")
    parser.add_argument("--content", type=int, nargs="+", default=[], metavar="CODE",
                        help="also match on a learned speaker-free code of this size")
    parser.add_argument("--adversary", type=float, default=0.3,
                        help="weight of the speaker classifier's reversed gradient in the code (--content)")
    parser.add_argument("--contrast", type=float, default=0.0,
                        help="weight of a neighbouring-frames InfoNCE loss on the code (--content)")
    parser.add_argument("--ramp", action="store_true", help="raise that weight from 0 over the first half of training")
    parser.add_argument("--viterbi", type=float, nargs="+", default=[], metavar="PENALTY",
                        help="also unit selection: one target frame per source frame, jumps cost PENALTY")
    parser.add_argument("--classes", type=int, nargs="+", default=[], metavar="N",
                        help="also class-wise amplitude scaling: both speakers' frames clustered into N classes")
    parser.add_argument("--phones", type=Path, help="the phone model of configs with phone_weight (default: shipped)")
    parser.add_argument("--render", type=float, nargs="+", default=[], metavar="BLEND",
                        help="also convert the sentences at these blends and score them with voiceconv evaluate")
    parser.add_argument("-o", "--out", type=Path, help="where --render writes (required with it)")
    args = parser.parse_args()
    pair = pair_folders(args.pair)

    source_refs, target_refs = spread_waves(pair["source-ref"]), spread_waves(pair["target-ref"], args.target_files)
    alignment = world.fit_alignment(source_refs, target_refs, SAMPLE_RATE)
    settings = alignment.settings
    sentences = []
    for path, target_path in sentence_pairs(pair):
        wav = load_audio(path, SAMPLE_RATE)
        source = world.analyse(wav, SAMPLE_RATE, settings)
        target = world.analyse(load_audio(target_path, SAMPLE_RATE), SAMPLE_RATE, settings)
        sentences.append(Sentence(path, len(wav), source,
                                  np.log(target.envelope[matched_frames(source, target)] + 1e-12)))
    print(f"{args.pair}: warp {alignment.warp:.3f}, {len(sentences)} sentences, {len(target_refs)} target files\n")
    print("| config | formula | " + " | ".join(f"blend {b:g}" for b in BLENDS) + " |")
    print("|---" * (len(BLENDS) + 2) + "|")
    rows = {}
    phone_model = load_phone_model(args.phones) if args.phones else None
    for text in args.config:
        config = parse_config(text)
        changer = KnnVoiceChanger(source_refs, target_refs, SAMPLE_RATE, alignment, config, phone_model)
        matchers = [(text, lambda: changer)]
        matchers += [(f"{text}, INCA x{n}", partial(IncaMatching, changer, source_refs, n)) for n in args.inca]
        matchers += [(f"{text}, code {n}", partial(ContentMatching, changer, source_refs, n, adversary=args.adversary,
                                                                 ramp=args.ramp, contrast=args.contrast))
                     for n in args.content]
        matchers += [(f"{text}, unit selection {p:g}", partial(UnitSelection, changer, p)) for p in args.viterbi]
        matchers += [(f"{text}, {n} classes", partial(ClassShift, changer, source_refs, n)) for n in args.classes]
        for name, make in matchers:
            matcher = make()
            report(name, matcher, sentences, config)
            for blend in args.render:
                label = f"{name.replace(', ', '-').replace(' ', '')}-blend{blend:g}"
                render(matcher, sentences, alignment, blend, config.smooth_frames, args.out / label)
                rows[label] = evaluate(args.pair, ["--converted", str(args.out / label / "audio")],
                                       args.out / label)["converted"]
    if rows:
        write_table(rows, args.out / "table.md", "kNN conversion")


def render(matcher, sentences: list[Sentence], alignment: world.Alignment, blend: float, smooth_frames: int,
           out: Path) -> None:
    """Each sentence converted by the kNN voice changer with ``matcher``'s matches (moved ``blend`` of the way, the
    move averaged over ``smooth_frames``), into ``out/audio``: what :class:`KnnVoiceChanger` itself computes."""
    for sentence in sentences:
        log_envelope, matched = matcher.match(sentence.frames)  # [bins, T] each
        moved = blend_toward(log_envelope, matched, blend, smooth_frames).T.double().numpy()  # [T, bins]
        changed = world.WorldFrames(world.transform_f0(sentence.frames.f0, alignment), np.exp(moved).copy(order="C"),
                                    sentence.frames.aperiodicity)
        converted = world.synthesize(changed, SAMPLE_RATE, sentence.samples, alignment.settings)
        converted = np.nan_to_num(converted, nan=0.0, posinf=0.0, neginf=0.0)
        save_converted(out / "audio" / f"{sentence.path.stem}.wav", converted)


def report(name: str, matcher, sentences: list[Sentence], config: KnnConfig) -> None:
    """One row of the proxy table: the mean distance to the oracle of each blend's voiced frames."""
    totals = np.zeros(len(BLENDS) + 1)
    for sentence in sentences:
        log_envelope, matched = matcher.match(sentence.frames)  # [bins, T] each
        voiced = sentence.frames.f0 > 0
        for index, blend in enumerate((0.0, *BLENDS)):
            moved = blend_toward(log_envelope, matched, blend, config.smooth_frames).T.double().numpy()  # [T, bins]
            totals[index] += distance_db(moved[voiced], sentence.oracle[voiced])
    cells = " | ".join(f"{value / len(sentences):.2f}" for value in totals)
    print(f"| {name} | {cells} |", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
