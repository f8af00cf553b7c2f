"""The scoring service (`mclcr_keras.serve`, docs/serve.md), in three ways:

- in-process (FastAPI's TestClient, scorings in threads with the shared tiny model): the report
  is predict's own for the same file, every refusal (400, 401, 408, 413, 415, 422, 503, 504) is
  JSON, uploads are deleted;
- a real ``python -m mclcr_keras.serve`` (uvicorn, worker processes) on a free loopback port:
  concurrent requests, the queue's 503, an upload refused while it is still arriving, shutdown;
- the page in headless Chromium (Debian's ``chromium``; skipped when absent): a file chosen,
  the verdict read back from the page.

Plus the worker processes' time limit: a timed-out scoring's process is ended and replaced.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")

with warnings.catch_warnings():  # Starlette's notice that its TestClient will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mclcr_keras.inference.predict import PredictOptions, load, predict  # noqa: E402
from mclcr_keras.serve.app import create_app  # noqa: E402
from mclcr_keras.serve.settings import ServeSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FRAMES = 4


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def media(tmp_path_factory, astronaut, grace) -> dict[str, Path]:
    """Two face photos, a short video of one, and files that are not images or videos."""
    root = tmp_path_factory.mktemp("serve_media")
    paths = {"astronaut": root / "astronaut.png", "grace": root / "grace.jpg",
             "video": root / "clip.mp4", "long": root / "long.mp4", "blank": root / "blank.png",
             "text": root / "notes.txt", "fake_png": root / "notes.png"}
    cv2.imwrite(str(paths["astronaut"]), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(paths["grace"]), cv2.cvtColor(grace, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(paths["blank"]), np.full((96, 96, 3), 128, np.uint8))
    face = cv2.cvtColor(grace, cv2.COLOR_RGB2BGR)[::2, ::2]
    height, width = face.shape[:2]
    for name, count in (("video", 24), ("long", 60)):  # Grace Hopper drifting down and right
        writer = cv2.VideoWriter(str(paths[name]), cv2.VideoWriter_fourcc(*"mp4v"), 10.0,
                                 (width + 64, height + 64))
        assert writer.isOpened()
        for step in range(count):
            canvas = np.full((height + 64, width + 64, 3), 128, np.uint8)
            shift = step % 60
            canvas[shift:shift + height, shift:shift + width] = face
            writer.write(canvas)
        writer.release()
    paths["text"].write_text("not a picture\n")
    paths["fake_png"].write_text("not a picture either\n")
    return paths


@pytest.fixture(scope="module")
def scorer(tiny_model_path):
    return load(str(tiny_model_path))


def settings_for(model, upload_dir, **changes) -> ServeSettings:
    values = dict(model=str(model), frames=FRAMES, upload_dir=str(upload_dir),
                  max_upload_mb=1.0, max_concurrent=1, queue=1, timeout=120.0)
    values.update(changes)
    return ServeSettings(**values)


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve_uploads")


@pytest.fixture(scope="module")
def client(tiny_model_path, scorer, uploads):
    app = create_app(settings_for(tiny_model_path, uploads), scorer)
    with TestClient(app) as test_client:
        yield test_client


def post(client, path: Path, name=None, **kwargs):
    with open(path, "rb") as handle:
        return client.post("/v1/score", files={"file": (name or path.name, handle)}, **kwargs)


def predict_report(model, path: Path, tmp_path, scorer=None, frames: int = FRAMES) -> dict:
    """What ``predict --json`` writes for this one file (the service's reference)."""
    out = tmp_path / f"{path.stem}.{frames}.report.json"
    with open(os.devnull, "w") as table:
        predict(PredictOptions(inputs=[str(path)], model=str(model), frames=frames,
                               json=str(out)), scorer, stream=table)
    report = json.loads(out.read_text())
    report["model"] = Path(model).name
    report["files"][0]["path"] = path.name
    return report


def assert_same_report(served: dict, expected: dict) -> None:
    """Equal, probabilities to float precision (the same model on the same crops)."""
    assert json.dumps(served, sort_keys=True) == json.dumps(expected, sort_keys=True) or (
        _rounded(served) == _rounded(expected)), (served, expected)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


# ------------------------------------------------------------------------------ in-process


@pytest.mark.parametrize("name", ["astronaut", "video"])
def test_score_answers_predicts_report_for_the_file(client, media, name, tiny_model_path,
                                                    scorer, tmp_path, uploads):
    response = post(client, media[name])
    assert response.status_code == 200, response.text
    served = response.json()
    assert_same_report(served, predict_report(tiny_model_path, media[name], tmp_path, scorer))
    entry = served["files"][0]
    assert entry["status"] == "ok" and entry["label"] in ("REAL", "FAKE")
    assert entry["kind"] == ("video" if name == "video" else "image")
    assert entry["frame_scores"] and served["threshold"] == 0.5
    assert str(uploads) not in response.text  # no server path in the answer
    assert list(uploads.iterdir()) == []


def test_explain_returns_predicts_figure_as_a_data_url(client, media, uploads):
    assert client.get("/v1/model").json()["explain"] is True  # a .keras model
    response = post(client, media["astronaut"], params={"explain": "1"})
    assert response.status_code == 200, response.text
    body = response.json()
    (figure,) = body["explanations"]
    assert figure["png"].startswith("data:image/png;base64,")
    png = base64.b64decode(figure["png"].split(",", 1)[1])
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert body["files"][0]["explanation"] == figure["name"]  # a base name, no server folder
    assert str(uploads) not in response.text and "mclcr-serve-" not in response.text
    assert list(uploads.iterdir()) == []


def test_health_and_model(client, tiny_model_path):
    health = client.get("/v1/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["busy"] == 0
    model = client.get("/v1/model").json()
    assert model["model"] == "tiny.keras" and model["format"] == "keras"
    assert model["variant"] == "mclcr" and model["image_size"] == 64
    assert model["threshold"] == 0.5 and model["threshold_source"] == {"from": "default"}
    assert model["model_card"] is None and model["auth"] is False
    assert model["limits"]["max_upload_bytes"] == 2 ** 20


def test_a_file_without_a_face_is_422_with_predicts_reason(client, media):
    response = post(client, media["blank"])
    assert response.status_code == 422
    body = response.json()
    assert body["files"][0]["status"] == "failed" and body["files"][0]["label"] is None
    assert "no face" in body["error"] and body["error"] == body["files"][0]["error"]


def test_predicts_input_limits_apply(tiny_model_path, scorer, media, uploads):
    app = create_app(settings_for(tiny_model_path, uploads, max_pixels=10_000), scorer)
    with TestClient(app) as client:
        assert client.get("/v1/model").json()["limits"]["max_pixels"] == 10_000
        response = post(client, media["astronaut"])  # 512 x 512 = 262 144 pixels
    assert response.status_code == 422 and "pixels" in response.json()["error"]
    assert list(uploads.iterdir()) == []


@pytest.mark.parametrize("case", ["text", "fake_png", "not_multipart"])
def test_what_is_not_an_image_or_a_video_is_415(client, media, case, uploads):
    if case == "not_multipart":
        response = client.post("/v1/score", content=media["astronaut"].read_bytes(),
                               headers={"content-type": "image/png"})
    else:
        response = post(client, media[case])
    assert response.status_code == 415
    assert set(response.json()) == {"error"}
    assert list(uploads.iterdir()) == []


def test_bad_forms_are_400(client, media):
    no_file = client.post("/v1/score", files={"other": ("a.png", b"\x89PNG")})
    assert no_file.status_code == 400 and "no file" in no_file.json()["error"]
    empty = client.post("/v1/score", files={"file": ("e.png", b"")})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    data = media["astronaut"].read_bytes()
    two = client.post("/v1/score", files=[("file", ("a.png", data)), ("file", ("b.png", data))])
    assert two.status_code == 400 and "one file" in two.json()["error"]


def test_uploads_over_the_limit_are_413_declared_or_streamed(client, uploads):
    big = b"\x89PNG\r\n\x1a\n" + bytes(2 ** 20)  # 1 MiB + 8 bytes: over the 1 MiB limit
    declared = client.post("/v1/score", files={"file": ("big.png", big)})
    assert declared.status_code == 413 and "limit of 1 MB" in declared.json()["error"]
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"'
            f"\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()

    def chunks():  # no Content-Length: the limit must be enforced while reading
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    streamed = client.post("/v1/score", content=chunks(),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert streamed.status_code == 413
    assert list(uploads.iterdir()) == []


def test_unknown_routes_and_static_files(client):
    assert client.get("/nothing").json() == {"error": "Not Found"}
    assert client.get("/static/app.py").status_code == 404
    page = client.get("/")
    assert page.status_code == 200 and '<input id="file" type="file"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    assert client.post("/v1/score?explain=maybe", files={"file": ("a.png", b"x")}).json()[
        "error"].startswith("query.explain")


def test_the_token_guards_the_api_but_not_the_page(tiny_model_path, scorer, media, uploads):
    app = create_app(settings_for(tiny_model_path, uploads, token="s3cret"), scorer)
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        assert client.get("/v1/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            refused = post(client, media["astronaut"], headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert client.get("/v1/model", headers=headers).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert client.get("/v1/model", headers=good).json()["auth"] is True
        assert post(client, media["astronaut"], headers=good).status_code == 200


def wait_for(condition, timeout=120.0, step=0.02):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(step)


def test_a_full_server_answers_503_with_retry_after(tiny_model_path, scorer, media, uploads):
    app = create_app(settings_for(tiny_model_path, uploads, queue=0, frames=12), scorer)
    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, client, media["video"])
        wait_for(lambda: client.get("/v1/health").json()["busy"] == 1 or first.done())
        assert not first.done(), "the video was scored before the second request was sent"
        refused = post(client, media["astronaut"])
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1 and "busy" in refused.json()["error"]
        assert first.result().status_code == 200
        assert post(client, media["astronaut"]).status_code == 200  # the slot is free again
    assert list(uploads.iterdir()) == []


def test_a_timed_out_thread_scoring_answers_504_and_keeps_its_slot_until_it_ends(
        tiny_model_path, scorer, media, uploads):
    app = create_app(settings_for(tiny_model_path, uploads, timeout=0.3, frames=60), scorer)
    with TestClient(app) as client:
        response = post(client, media["long"])
        assert response.status_code == 504 and "time limit of 0.3 s" in response.json()["error"]
        # A thread cannot be stopped: its slot and folder stay until the scoring ends.
        wait_for(lambda: client.get("/v1/health").json()["busy"] == 0)
        wait_for(lambda: list(uploads.iterdir()) == [], timeout=10)


@pytest.mark.slow
def test_a_timed_out_worker_process_is_ended_and_replaced(tiny_model_path, media, uploads):
    settings = settings_for(tiny_model_path, uploads, timeout=0.5, frames=60)
    with TestClient(create_app(settings)) as client:
        before = client.get("/v1/health").json()
        assert before["runner"] == "process" and before["workers_ready"] == 1
        response = post(client, media["long"])
        assert response.status_code == 504 and "replaced" in response.json()["error"]
        assert list(uploads.iterdir()) == []  # deleted at once: its process is gone
        (old,) = before["worker_pids"]
        assert not _alive(old)
        wait_for(lambda: client.get("/v1/health").json()["workers_ready"] == 1, timeout=300,
                 step=0.5)
        after = client.get("/v1/health").json()
        assert after["worker_pids"] != [old] and after["busy"] == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is not alive
        return handle.read().split(") ")[-1][0] != "Z"


# ------------------------------------------------------------------------------ the CLI


def run_cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mclcr_keras.serve", *map(str, args)],
                          capture_output=True, text=True, timeout=240, cwd=REPO,
                          env={**os.environ, **(env or {})})


def test_help_imports_neither_tensorflow_nor_fastapi():
    script = ("import sys, contextlib, io\n"
              "from mclcr_keras.serve.__main__ import main\n"
              "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
              "    code = main(['--help'])\n"
              "print(code, 'Exit status:' in ' '.join(out.getvalue().split()),"
              " 'tensorflow' in sys.modules,"
              " 'fastapi' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.stdout.split() == ["0", "True", "False", "False"], done.stderr


@pytest.mark.parametrize("args, message", [
    (["--queue", "-1"], "--queue must be >= 0"),
    (["--max-upload-mb", "0"], "--max-upload-mb must be > 0"),
    (["--model-card", "missing.json"], "--model-card missing.json not found"),
    (["--port", "many"], "argument --port: invalid int value"),
])
def test_bad_options_are_one_line_and_exit_2(tiny_model_path, args, message):
    done = run_cli("--model", tiny_model_path, *args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("serve: error: ") and message in lines[0]


def test_the_token_comes_from_the_flag_or_the_environment(tiny_model_path, monkeypatch):
    from mclcr_keras.serve.__main__ import build_parser, settings_from_args

    def token(*args):
        return settings_from_args(build_parser().parse_args(
            ["--model", str(tiny_model_path), *args])).token

    monkeypatch.delenv("MCLCR_SERVE_TOKEN", raising=False)
    assert token() is None
    monkeypatch.setenv("MCLCR_SERVE_TOKEN", "from-env")
    assert token() == "from-env" and token("--token", "flag") == "flag"


def test_the_bound_socket_gets_tcp_nodelay_connections():
    """asyncio sets TCP_NODELAY only on the connections of an IPPROTO_TCP socket; without it every
    answer on a kept-alive connection waited 40 ms for the client's delayed ACK (measured)."""
    from mclcr_keras.serve.server import bind

    with bind("127.0.0.1", 0) as listening, socket.create_connection(
            listening.getsockname()):
        connection, _ = listening.accept()
        with connection:
            assert listening.proto == connection.proto == socket.IPPROTO_TCP


def test_a_port_in_use_is_one_line_and_exit_2_before_any_model_loads(tiny_model_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_cli("--model", tiny_model_path, "--port", port, env={"MCLCR_SERVE_TOKEN": "t"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"serve: error: cannot listen on 127.0.0.1:{port}: "
                                   "Address already in use")


# ------------------------------------------------------------------------------ a real server


@pytest.fixture(scope="module")
def server(tiny_model_path, tmp_path_factory):
    """``python -m mclcr_keras.serve`` on a free loopback port: 2 workers, a queue of 1."""
    folder = tmp_path_factory.mktemp("served_uploads")
    log = tmp_path_factory.mktemp("server_log") / "stderr.txt"
    command = [sys.executable, "-m", "mclcr_keras.serve", "--model", str(tiny_model_path),
               "--port", "0", "--max-concurrent", "2", "--queue", "1", "--frames", "12",
               "--max-upload-mb", "1", "--upload-dir", str(folder)]
    with open(log, "w") as errors:
        # SIGINT as a terminal leaves it, even when the tests run in a background job (which
        # inherits SIGINT ignored).
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=errors,
                                   text=True, env={**os.environ, "MCLCR_SERVE_TOKEN": ""},
                                   preexec_fn=_default_sigint)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 400
        while not lines and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lines, f"no server (exit {process.poll()}): {log.read_text()[-2000:]}"
        assert lines[0].startswith("serve: listening on http://127.0.0.1:"), lines
        url = lines[0].split()[3].rstrip("/")
        yield {"url": url, "process": process, "uploads": folder, "log": log}
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_concurrent_requests_to_a_real_server(server, media, tiny_model_path, scorer, tmp_path):
    import httpx

    url = server["url"]
    health = httpx.get(f"{url}/v1/health").json()
    assert health["runner"] == "process" and health["workers_ready"] == 2

    def score(path: Path) -> httpx.Response:
        with open(path, "rb") as handle:
            return httpx.post(f"{url}/v1/score", files={"file": (path.name, handle)},
                              timeout=300)

    # Three requests at once fill the two workers and the queue of one; a fourth is refused.
    files = [media["long"], media["long"], media["video"]]
    with ThreadPoolExecutor(len(files)) as pool:
        running = [pool.submit(score, path) for path in files]
        wait_for(lambda: httpx.get(f"{url}/v1/health").json()["waiting"] == 1
                 or any(f.done() for f in running))
        state = httpx.get(f"{url}/v1/health").json()
        assert not any(f.done() for f in running), "a scoring ended before the queue was full"
        assert state["busy"] == 2 and state["waiting"] == 1
        refused = score(media["astronaut"])
        answers = [f.result() for f in running]
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert [a.status_code for a in answers] == [200, 200, 200]
    expected = {path: predict_report(tiny_model_path, path, tmp_path, scorer, frames=12)
                for path in set(files)}
    for path, answer in zip(files, answers):
        assert_same_report(answer.json(), expected[path])

    # Two clients at once, each with its own images: every answer is the file's own report.
    names = ["astronaut", "grace", "astronaut", "grace"]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda n: score(media[n]), names))
    for name, answer in zip(names, answers):
        assert answer.status_code == 200
        assert_same_report(answer.json(), predict_report(tiny_model_path, media[name],
                                                         tmp_path, scorer, frames=12))
    assert list(server["uploads"].iterdir()) == []


def test_an_upload_is_refused_while_it_still_arrives(server):
    """413 after the first MiB of a chunked body whose end was never sent."""
    host, port = server["url"].removeprefix("http://").split(":")
    boundary = "b0undary"
    head = (f"POST /v1/score HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode()
    part = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"'
            "\r\n\r\n").encode() + b"\x89PNG\r\n\x1a\n"
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
        block = bytes(65536)
        for _ in range(20):  # 1.25 MiB of a body that goes on
            connection.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        answer = b""
        while b"}" not in answer:  # the head and the JSON body may come in two segments
            chunk = connection.recv(65536)
            assert chunk, f"connection closed after {answer!r}"
            answer += chunk
    answer = answer.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert '{"error":"upload larger than the limit of 1 MB"}' in answer
    wait_for(lambda: list(server["uploads"].iterdir()) == [], timeout=10)


def test_the_page_in_headless_chromium(server, media, tmp_path):
    """The page served by the real server: choose a file, read the verdict back from the page."""
    import httpx
    from chromium import Browser, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    with open(media["video"], "rb") as handle:
        api = httpx.post(f"{server['url']}/v1/score", files={"file": ("clip.mp4", handle)},
                         timeout=300).json()["files"][0]
    browser = Browser(executable)
    try:
        browser.open(server["url"] + "/")
        browser.wait_for("document.getElementById('model').textContent.startsWith('Model')")
        browser.set_file("#file", str(media["video"]))
        verdict = browser.wait_for("document.getElementById('verdict').textContent", 300)
        shown = browser.evaluate("[document.getElementById('filename').textContent, "
                                 "document.querySelectorAll('#timeline circle.frame').length, "
                                 "document.getElementById('status').textContent, "
                                 "document.getElementById('facts').textContent]")
        screenshot = os.environ.get("MCLCR_SERVE_SCREENSHOT") or str(tmp_path / "page.png")
        browser.screenshot(screenshot)
    finally:
        browser.close()
    assert verdict == api["label"]
    assert shown[0] == "clip.mp4" and shown[1] == len(api["frame_scores"]) > 1
    assert shown[2].startswith("Scored in") and f"{api['probability']:.4f}" in shown[3]
    assert Path(screenshot).stat().st_size > 10_000


def test_the_server_stops_on_ctrl_c_with_its_workers(server):
    """Runs last in this file: the module's server is stopped here."""
    import httpx

    pids = httpx.get(f"{server['url']}/v1/health").json()["worker_pids"]
    process = server["process"]
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 130
    wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=30)
    assert "serve: interrupted" in server["log"].read_text()
    assert list(server["uploads"].iterdir()) == []
