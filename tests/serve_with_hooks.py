"""`kreis serve` with the test hooks (tests/server_hooks.py), for the test harness only.

`tests/kreis_server.py` starts this instead of `python -m app serve` when a test asks
for `hooks=True`. It builds the product's app with `app.server.create_app` and adds
the hooks itself, and has SFU worker processes started through
tests/sfu_worker_hooks.py: the product has no switch that turns them on.

    python tests/serve_with_hooks.py --config kreis.toml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

if TYPE_CHECKING:
    from aiohttp import web

    from app.config import Config

# The rest is imported in main(): SFU worker processes are spawned, and a spawned child
# runs this module's top level again (as __mp_main__); it need not load the server.


def main() -> None:
    from server_hooks import add_test_hooks
    from sfu_worker_hooks import worker_main_with_hooks

    import sfu.pool
    from app import server
    from app.config import load_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    # SFU workers (`[media] workers > 1`) are spawned with the memory search hook.
    sfu.pool.worker_main = worker_main_with_hooks

    def build(config: Config) -> web.Application:
        return add_test_hooks(server.create_app(config))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve(config, args.config, build=build))


if __name__ == "__main__":
    main()
