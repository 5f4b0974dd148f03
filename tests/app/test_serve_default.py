"""The README's first command: `kreis serve` on a fresh machine, with no config at all.

It must write a first config into the user config dir, print the generated leader
password once, serve on 127.0.0.1:8080, and let a leader log in with that password.
On SIGTERM, connected clients are told the server is restarting.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from app.client import KreisClient

ROOT = Path(__file__).resolve().parents[2]


def wait_healthy(url: str, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited early"
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not come up")


@pytest.fixture
def fresh_home(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        env[var] = str(tmp_path / var.lower())
    env["PYTHONUNBUFFERED"] = "1"
    env["KREIS_LANG"] = "en"
    env["PYTHONPATH"] = str(ROOT)  # the checkout under test, even from another cwd
    return env


async def test_embedded_default_first_start(fresh_home: dict[str, str], tmp_path: Path) -> None:
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=1):
            pytest.skip("something already serves 127.0.0.1:8080 here")
    except OSError:
        pass
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        cwd=tmp_path,
        env=fresh_home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_healthy("http://127.0.0.1:8080", proc)
        config = Path(fresh_home["XDG_CONFIG_HOME"]) / "kreis" / "kreis.toml"
        assert config.is_file()
        assert config.stat().st_mode & 0o077 == 0, "the config holds hashes: owner only"
        async with KreisClient("http://127.0.0.1:8080", kind="console") as leader:
            text = config.read_text()
            group = re.search(r"\[groups\.([a-z0-9-]+)\]", text)
            assert group is not None
            # The password is printed, never stored: only its scrypt hash is in the file.
            assert "scrypt$" in text
            await leader.send({"type": "login", "group": group.group(1), "password": "wrong"})
            assert (await leader.expect("error"))["code"] == "bad_credentials"
            proc.send_signal(signal.SIGTERM)
            restart = await leader.expect("server_restart", timeout=10)
            assert restart["retry_after"] > 0
        proc.wait(timeout=15)
        out = proc.stdout.read() if proc.stdout else ""
        printed = [ln for ln in out.splitlines() if group.group(1) in ln or "assword" in ln]
        assert printed, out
        password = re.search(r"([a-z0-9]{5}(?:-[a-z0-9]{5}){3})", out)
        assert password is not None, out
        from app.passwords import verify_password

        stored = re.search(r'password_hash = "([^"]+)"', text)
        assert stored is not None and verify_password(password.group(1), stored.group(1))
        assert password.group(1) not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_refuses_public_bind_without_tls(tmp_path: Path, fresh_home: dict[str, Any]) -> None:
    from app.passwords import hash_password

    config = tmp_path / "public.toml"
    config.write_text(
        '[server]\nhost = "0.0.0.0"\nport = 8443\n'
        f'[groups.test]\npassword_hash = "{hash_password("long-enough-pw")}"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--config", str(config)],
        env=fresh_home,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "tls" in proc.stderr.lower() and "behind_proxy" in proc.stderr


def test_port_and_host_from_the_command_line(tmp_path: Path, fresh_home: dict[str, str]) -> None:
    """`kreis serve --port 9000` serves on 9000 (and room links say so)."""
    from app.passwords import hash_password

    config = tmp_path / "kreis.toml"
    config.write_text(f'[groups.test]\npassword_hash = "{hash_password("long-enough-pw")}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--config", str(config), "--port", "9000"],
        cwd=tmp_path,
        env=fresh_home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_healthy("http://127.0.0.1:9000", proc)
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_host_from_the_command_line_is_checked_like_the_config(
    tmp_path: Path, fresh_home: dict[str, str]
) -> None:
    from app.passwords import hash_password

    config = tmp_path / "kreis.toml"
    config.write_text(f'[groups.test]\npassword_hash = "{hash_password("long-enough-pw")}"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--config", str(config), "--host", "0.0.0.0"],
        env=fresh_home,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "server.host" in proc.stderr and "behind_proxy" in proc.stderr
