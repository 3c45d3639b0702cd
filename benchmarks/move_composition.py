"""Where the learned stage loses its teacher's similarity: the kNN teacher's move, composed as the student's output
is composed, rendered by the product's own renderer.

The kNN teacher (``knn_matching.py --render``) is the aligned input's envelope moved toward the target's nearest
frames, synthesized by WORLD. The trained network does not output that. Its output is the input mapped onto the
target speaker's per-band statistics (the untrained start), plus the teacher's frame-by-frame move less that
move's average (``voiceconv.train.voice.attach_pseudo_targets``: the statistics mapping is meant to make the
average). Each test sentence's images are composed several ways and rendered as a converted image is (the change
applied to the aligned input's STFT, Griffin-Lim from its phase, loudness matched), then scored by
``voiceconv evaluate``:

- ``aligned``: the pitch-aligned input, unchanged;
- ``teacher``: the teacher's own image, ``aligned + move``;
- ``mapped``: the model's statistics mapping of the input (the untrained start);
- ``student target``: ``mapped + move - average``, what the network is trained toward (the average over the test
  sentences' frames, standing in for the training corpus's);
- ``mean shift``: ``aligned + (target mean - input mean) + move - average``, the mapping without its change of
  spread.

    .venv/bin/python benchmarks/knn_matching.py sm1_tf2 --config smooth_frames=7,phone_weight=30 --render 0.75 \\
        -o runs/eval/keep_sm1_tf2
    .venv/bin/python benchmarks/move_composition.py sm1_tf2 \\
        "runs/eval/keep_sm1_tf2/smooth_frames=7,phone_weight=30-blend0.75/audio" MODEL -o runs/eval/compose_sm1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dev_pairs import PAIRS, evaluate, pair_folders, write_table  # noqa: E402
from oracle_components import save_converted, spread_waves  # noqa: E402

from voiceconv.audio import world  # noqa: E402
from voiceconv.audio.features import FeatureConfig, MelImageEncoder  # noqa: E402
from voiceconv.audio.io import audio_files, load_audio  # noqa: E402
from voiceconv.convert.pipeline import matching_gain, vocoder_for  # noqa: E402
from voiceconv.modelfiles.voice import VoiceModel  # noqa: E402

RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pair", choices=sorted(PAIRS))
    parser.add_argument("teacher", type=Path, help="the teacher's converted test sentences (knn_matching --render)")
    parser.add_argument("model", type=Path, help="a model of the pair: its statistics map the input")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    folders = pair_folders(args.pair)
    # the alignment knn_matching.py fits, so that the teacher's F0 is the aligned input's
    alignment = world.fit_alignment(spread_waves(folders["source-ref"]), spread_waves(folders["target-ref"], 60), RATE)
    features = FeatureConfig()
    encoder, vocoder = MelImageEncoder(features), vocoder_for(features, refine=True)
    stats = VoiceModel.from_file(args.model).stats
    stats_in, stats_out = stats["a2b"], stats["b"]

    sentences = []  # (path, source [samples], aligned [samples], aligned image, teacher image) each
    for path in audio_files(folders["source"]):
        wav = load_audio(path, RATE)
        aligned = torch.from_numpy(world.change_voice(wav, RATE, alignment))
        teacher = torch.from_numpy(load_audio(args.teacher / f"{path.stem}.wav", RATE)[: len(aligned)])
        a_img, t_img = encoder(aligned), encoder(teacher)  # [1, n_mels, T] each
        frames = min(a_img.shape[-1], t_img.shape[-1])
        sentences.append((path, wav, aligned, a_img[..., :frames], t_img[..., :frames]))
    average = torch.cat([t - a for *_, a, t in sentences], dim=-1).mean(dim=-1, keepdim=True)  # [1, n_mels, 1]
    shift = (stats_out.mean - stats_in.mean)[None, :, None]  # [1, n_mels, 1]

    def mapped(a: torch.Tensor) -> torch.Tensor:
        return stats_out.denormalize(stats_in.normalize(a))

    compositions = {"aligned": lambda a, t: a, "teacher": lambda a, t: t, "mapped": lambda a, t: mapped(a),
                    "student target": lambda a, t: mapped(a) + (t - a) - average,
                    "mean shift": lambda a, t: a + shift + (t - a) - average}
    rows = {}
    for name, compose in compositions.items():
        folder = args.out / name.replace(" ", "_") / "audio"
        for path, wav, aligned, a_img, t_img in sentences:
            rendered = vocoder.refine(compose(a_img, t_img)[None], a_img[None], aligned[None])[0].numpy()
            rendered = np.pad(rendered, (0, len(wav) - len(rendered)))[: len(wav)]
            save_converted(folder / f"{path.stem}.wav", rendered * matching_gain(wav, rendered, RATE))
        rows[name] = evaluate(args.pair, ["--converted", str(folder)], folder.parent)["converted"]
    write_table(rows, args.out / "table.md", "composition")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
