"""A new user's path through the Train tab on real speech, driven through the page's own endpoints.

Starts ``python app.py`` with a fresh runs folder, uploads zips of two VCC2016
training speakers, audits them, trains with the chosen recipe for a time
budget, follows the job until it finishes, downloads the model and its card,
and converts a held-out dev sentence with the new model. It prints what the
page shows at each stage, and how long each took.

    .venv/bin/python benchmarks/train_tab_trial.py [--speakers SF1 TM1] [--recipe vcc2016_sf1_tm1] [--minutes 3]

Needs ../shared/data/vcc2016 and the app and eval extras; takes the budget plus a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VCC = REPO.parent / "shared" / "data" / "vcc2016"


def zipped(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.iterdir()):
            out.write(path, f"{folder.name}/{path.name}")
    return archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speakers", nargs=2, default=["SF1", "TM1"])
    parser.add_argument("--recipe", default="vcc2016_sf1_tm1")
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from gradio_client import handle_file
    from helpers import free_port

    a, b = args.speakers
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        uploads = {name: [handle_file(str(zipped(VCC / "train" / name, work / f"{name}.zip")))] for name in (a, b)}
        port = free_port()
        with open(work / "app.log", "wb") as log:
            app = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), "--runs-dir",
                                    str(work / "runs")], stdout=log, stderr=subprocess.STDOUT, cwd=work)
        try:
            client = _connect(f"http://127.0.0.1:{port}/", work)
            started = time.monotonic()
            audit = client.predict(uploads[a], a, uploads[b], b, args.recipe, api_name="/audit_training_data")
            print(f"audit: {time.monotonic() - started:.0f} s\n" + audit.split("\n## Every file")[0])
            started = time.monotonic()
            job, summary, _ = client.predict(uploads[a], a, uploads[b], b, args.recipe, 0, args.minutes,
                                             api_name="/start_training")
            print(f"started in {time.monotonic() - started:.0f} s: {summary}")
            while True:
                status = client.predict(job, api_name="/training_status")
                print(f"{time.monotonic() - started:5.0f} s  {status[0].splitlines()[0]}", flush=True)
                if "**finished**" in status[0] or "**failed**" in status[0]:
                    break
                time.sleep(30)
            summary, _, validation, snapshot, _, downloads, _ = status
            print(f"validation: {validation['data']}\nsnapshot clip: {snapshot}\ndownloads: {downloads}")
            dev = VCC / "dev" / a / "200001.flac"
            converted = client.predict(handle_file(str(dev)), f"{a}_{b}_{job}", "a2b", "auto", api_name="/convert")[0]
            print(f"converted {dev.name} with the new model: {converted}")
        finally:
            app.terminate()
            app.wait(timeout=60)


def _connect(url: str, work: Path):
    from gradio_client import Client

    deadline = time.monotonic() + 120
    while True:
        try:
            return Client(url, verbose=False, download_files=str(work / "downloads"))
        except Exception:  # noqa: BLE001 - not serving yet
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


if __name__ == "__main__":
    main()
