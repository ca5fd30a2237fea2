"""The chapters open in Jupyter: `make lab` starts a JupyterLab server whose
kernel is this environment.

The test starts the same server on 127.0.0.1 with a token, checks that it
answers, that it refuses requests without the token, that it lists the book's
chapters and serves the JupyterLab page, and that a kernel started through it
runs this Python and imports lab; then it stops the server.
"""
import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url, token=None, method="GET", body=None, timeout=10):
    req = urllib.request.Request(url, method=method, data=body)
    if token:
        req.add_header("Authorization", f"token {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jupyter")
    token = secrets.token_hex(16)
    port = _free_port()
    env = dict(os.environ,
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTER_DATA_DIR=str(tmp / "data"),
               IPYTHONDIR=str(tmp / "ipython"))
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}"]
        # containers and CI machines often run as root, which Jupyter refuses by default
        + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError("the Jupyter server exited early:\n"
                                     + (tmp / "server.log").read_text(errors="replace"))
            try:
                status, _ = _request(f"{base}/api/status", token, timeout=2)
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the Jupyter server did not answer within 120 s:\n"
                                     + (tmp / "server.log").read_text(errors="replace"))
            time.sleep(0.5)
        yield base, token, tmp / "runtime"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode is not None


def test_server_needs_its_token(server):
    base, _, _ = server
    with pytest.raises(urllib.error.HTTPError) as info:
        _request(f"{base}/api/contents/book")
    assert info.value.code == 403


def test_server_lists_the_chapters(server):
    base, token, _ = server
    status, body = _request(f"{base}/api/contents/book", token)
    assert status == 200
    names = {item["name"] for item in json.loads(body)["content"]}
    assert {"intro.md", "autoencoder", "convnets"} <= names
    status, body = _request(f"{base}/api/contents/book/autoencoder", token)
    chapters = {item["name"] for item in json.loads(body)["content"]}
    assert "patches.ipynb" in chapters


def test_server_serves_jupyterlab(server):
    base, token, _ = server
    status, body = _request(f"{base}/lab", token)
    assert status == 200 and b"JupyterLab" in body


def _run_in_kernel(connection_file, code, timeout=60):
    """Execute ``code`` in a running kernel and return what it printed."""
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=str(connection_file))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=timeout)
        out = []
        reply = client.execute_interactive(
            code, timeout=timeout,
            output_hook=lambda msg: out.append(msg["content"].get("text", ""))
            if msg["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)
    finally:
        client.stop_channels()


def test_kernel_runs_this_environment(server):
    """A kernel started through the server is this Python and imports lab."""
    base, token, runtime = server
    _, body = _request(f"{base}/api/kernelspecs", token)
    default = json.loads(body)["default"]
    status, body = _request(f"{base}/api/kernels", token, method="POST",
                            body=json.dumps({"name": default}).encode())
    kernel = json.loads(body)
    assert status == 201 and kernel["id"]
    try:
        printed = _run_in_kernel(runtime / f"kernel-{kernel['id']}.json",
                                 "import sys, lab; print(sys.executable); print(lab.__version__)")
        executable, version = printed.split()
        assert pathlib.Path(executable) == pathlib.Path(sys.executable)
        import lab

        assert version == lab.__version__
    finally:
        status, _ = _request(f"{base}/api/kernels/{kernel['id']}", token, method="DELETE")
    assert status == 204
