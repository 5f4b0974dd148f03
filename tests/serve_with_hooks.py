"""`kreis serve` with the test hooks (tests/server_hooks.py), for the test harness only.

`tests/kreis_server.py` starts this instead of `python -m app serve` when a test asks
for `hooks=True`. It builds the product's app with `app.server.create_app` and adds
the hooks itself: the product has no switch that turns them on.

    python tests/serve_with_hooks.py --config kreis.toml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from server_hooks import add_test_hooks

from app import server
from app.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    config = load_config(args.config)

    def build(config: server.Config) -> server.web.Application:
        return add_test_hooks(server.create_app(config))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve(config, args.config, build=build))


if __name__ == "__main__":
    main()
