"""An operator starts `kreis serve` while the port is taken: the error names the setting
to change (`port` under [server] in the config file, or --port), in English and German,
instead of the bind call's own words."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kreis_server import ROOT, free_port, write_config


@pytest.mark.parametrize(
    ("lang", "wanted"),
    [
        ("en", "Change `port` under [server] in"),
        ("de", "Ändere `port` unter [server] in"),
    ],
)
def test_a_taken_port_names_the_setting(tmp_path: Path, lang: str, wanted: str) -> None:
    port = free_port()
    config = tmp_path / "kreis.toml"
    write_config(config, port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {**os.environ, "KREIS_LANG": lang, "XDG_STATE_HOME": str(tmp_path / "state")}
        done = subprocess.run(
            [sys.executable, "-m", "app", "serve", "--config", str(config), "--lang", lang],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert wanted in done.stderr and str(config) in done.stderr, done.stderr
    assert f"{port}" in done.stderr and "--port" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
