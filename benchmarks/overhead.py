"""What Pressroom adds to Prefect's own cost: an idle ``pressroom publish`` against a trivial flow.

Both run as fresh processes the way an operator runs them, against the same Prefect API: a local
server this script starts once (the quick loop of ``pressroom prefect-server``), so neither pays for
Prefect's temporary server. The sample content is published once first, so the timed runs find
nothing new. Prints the median of a few runs of each; the last line is the figure.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RUNS = 3
TRIVIAL = """
from prefect import flow

@flow(name="trivial")
def trivial() -> int:
    return 1

trivial()
"""


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> None:
    from pressroom.settings import load_settings

    from flows.server import start_local_server, stop_local_server

    with tempfile.TemporaryDirectory(prefix="pressroom-overhead-") as scratch:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "PRESSROOM_"))}
        env |= {
            "PRESSROOM_PATHS__VAR": f"{scratch}/var",
            "PRESSROOM_PATHS__PUBLIC": f"{scratch}/public",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            # A shared machine may need more than Prefect's default 20 s to start a temporary server.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        }
        settings = load_settings(REPO / "pressroom.toml", environ=env)
        started = time.perf_counter()
        api = start_local_server(settings)
        print(f"local Prefect server up in {time.perf_counter() - started:.1f} s at {api}")
        env["PREFECT_API_URL"] = api
        try:
            publish = [str(Path(sys.executable).parent / "pressroom"), "publish"]
            first = _timed(publish, env)
            print(f"first publish (builds the site, records the sample release): {first:.2f} s")
            idle = statistics.median(_timed(publish, env) for _ in range(RUNS))
            trivial = statistics.median(_timed([sys.executable, "-c", TRIVIAL], env) for _ in range(RUNS))
        finally:
            stop_local_server(settings)
        # For comparison, the same two without a server: each process starts Prefect's temporary one.
        del env["PREFECT_API_URL"]
        env["PREFECT_HOME"] = f"{scratch}/prefect-home"
        _timed([sys.executable, "-c", TRIVIAL], env)  # creates the temporary server's database once
        alone = _timed(publish, env)
        trivial_alone = _timed([sys.executable, "-c", TRIVIAL], env)
        print(f"without a server (Prefect's temporary one per process): publish_idle={alone:.2f} trivial_flow={trivial_alone:.2f}")
    print(f"median of {RUNS} runs each, same server, same interpreter")
    print(f"overhead: publish_idle={idle:.2f} trivial_flow={trivial:.2f} ratio={idle / trivial:.2f}")


if __name__ == "__main__":
    main()
