"""The shell every entry point runs in (mclcr_keras.cli, docs/cli.md): --help, bad flags, missing
files, runtime failures, Ctrl-C, logging, and a console free of TensorFlow's native noise."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mclcr_keras import cli
from mclcr_keras.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("build_records", "train", "evaluate", "export", "predict", "demo", "demo_data", "viz")
NATIVE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|InitializeLog|cuInit|cudart_stub", re.M)


def entry_point(tool: str):
    import importlib

    module = {"demo": "mclcr_keras.demo.__main__", "viz": "mclcr_keras.viz.__main__"}.get(
        tool, f"mclcr_keras.{tool}")
    return importlib.import_module(module).main


def run_tool(*args: str, env_extra=None, timeout=240) -> subprocess.CompletedProcess:
    """``python -m mclcr_keras.<tool> ...`` in a fresh interpreter, TensorFlow's log level unset."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def one_error_line(err: str, tool: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith(f"{tool}: error: "), lines[0]
    return lines[0]


# ------------------------------------------------------------------------------ every tool


def test_help_of_every_tool_exits_0_without_importing_tensorflow():
    script = (
        "import sys, contextlib, io\n"
        "from mclcr_keras.build_records import main as b\n"
        "from mclcr_keras.train import main as t\n"
        "from mclcr_keras.evaluate import main as e\n"
        "from mclcr_keras.export import main as x\n"
        "from mclcr_keras.predict import main as p\n"
        "from mclcr_keras.demo.__main__ import main as d\n"
        "from mclcr_keras.demo_data import main as dd\n"
        "from mclcr_keras.viz.__main__ import main as v\n"
        "codes = []\n"
        "for main in (b, t, e, x, p, d, dd, v):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        codes.append(main(['--help']))\n"
        "    assert 'Exit status:' in ' '.join(out.getvalue().split()), out.getvalue()\n"
        "print(codes, 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "[0, 0, 0, 0, 0, 0, 0, 0] False"


@pytest.mark.parametrize("tool", TOOLS)
def test_a_bad_flag_is_one_line_and_exit_2(tool, capsys):
    required = {"build_records": ["folder", "--out", "x"],
                "train": ["--records", "r", "--out", "o"],
                "evaluate": ["--model", "m", "--records", "r", "--out", "o"],
                "export": ["--model", "m", "--out", "o"], "predict": ["--model", "m", "f.png"],
                "demo": [], "demo_data": ["out"], "viz": ["spectra", "--real", "r", "--fake",
                                                          "f", "--out", "o.png"]}[tool]
    status = entry_point(tool)([*required, "--no-such-flag"])
    captured = capsys.readouterr()
    assert status == cli.EXIT_USAGE == 2
    line = one_error_line(captured.err, tool)  # argparse's top-level parser reports it
    assert "unrecognized arguments: --no-such-flag" in line and line.endswith("(see --help)")
    assert "usage:" not in captured.out + captured.err


def test_a_bad_value_is_one_line_and_exit_2(capsys):
    assert entry_point("train")(["--records", "r", "--out", "o", "--epochs", "zero"]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert "--epochs" in line and "'zero'" in line


@pytest.mark.parametrize("tool", TOOLS)
def test_a_missing_input_is_one_line_exit_2_and_writes_nothing(tool, tmp_path, capsys):
    missing = tmp_path / "missing"
    out = tmp_path / "out"
    argv = {
        "build_records": ["folder", "--root", missing, "--out", out],
        "train": ["--records", missing, "--out", out, "--weights", "none"],
        "evaluate": ["--model", tmp_path / "missing.keras", "--records", missing, "--out", out],
        "export": ["--model", tmp_path / "missing.keras", "--out", out],
        "predict": ["--model", tmp_path / "missing.keras", tmp_path / "face.png"],
        "demo": ["--out", tmp_path / "file.txt"],
        "demo_data": [tmp_path / "file.txt"],
        "viz": ["spectra", "--real", missing / "real.png", "--fake", missing / "fake.png",
                "--out", out / "fig.png"],
    }[tool]
    (tmp_path / "file.txt").write_text("in the way")
    status = entry_point(tool)([str(a) for a in argv])
    name = "viz spectra" if tool == "viz" else tool
    line = one_error_line(capsys.readouterr().err, name)
    assert status == cli.EXIT_USAGE, line
    named = {"demo": "file.txt", "demo_data": "file.txt", "export": "missing.keras",
             "predict": "missing.keras", "evaluate": "missing"}.get(tool, "missing")
    assert named in line
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


# ------------------------------------------------------------------------------ the shell


def test_failures_keep_their_code_and_bugs_are_one_line_exit_1(capsys):
    parser = cli.make_parser("tool", "A tool.")

    def fails(args):
        raise cli.Failure("the loss became NaN\nsecond line", cli.EXIT_DIVERGED)

    def usage(args):
        raise UsageError("--records x is not a directory")

    def bug(args):
        raise KeyError("oops")

    assert cli.run(parser, fails, [], tensorflow=False) == 4
    assert capsys.readouterr().err == "tool: error: the loss became NaN\n"
    assert cli.run(parser, usage, [], tensorflow=False) == 2
    assert capsys.readouterr().err == "tool: error: --records x is not a directory\n"
    assert cli.run(parser, bug, [], tensorflow=False) == 1
    err = capsys.readouterr().err
    assert err == "tool: error: KeyError: 'oops' (rerun with --verbose for the traceback)\n"
    assert cli.run(parser, bug, ["--verbose"], tensorflow=False) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.endswith("tool: error: KeyError: 'oops'\n")


def test_ctrl_c_in_any_command_is_exit_130_without_traceback(capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli.make_parser("tool", "A tool.")
    assert cli.run(parser, interrupted, [], tensorflow=False, interrupted="rerun it") == 130
    assert capsys.readouterr().err == "tool: interrupted; rerun it\n"


def test_exit_codes_in_docs_match_the_shell():
    text = (REPO / "docs" / "cli.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| `(EXIT_[A-Z]+)` \|", text, re.M))
    assert {int(code): name for code, name in table.items()} == {
        value: name for name, value in vars(cli).items() if name.startswith("EXIT_")
        and isinstance(value, int)}
    assert set(cli.EXIT_CODES) == {int(code) for code in table}


def test_logging_is_package_info_and_others_warning():
    import logging

    script = ("import logging, sys\nfrom mclcr_keras import cli\ncli.configure_logging(False)\n"
              "logging.getLogger('mclcr_keras.x').info('mine')\n"
              "logging.getLogger('other').info('theirs-info')\n"
              "logging.getLogger('other').warning('theirs-warning')\n"
              "logging.getLogger('absl').warning('absl-warning')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.stderr.splitlines() == ["INFO mclcr_keras.x: mine",
                                        "WARNING other: theirs-warning"]
    assert logging.getLogger("mclcr_keras").level in (logging.INFO, logging.NOTSET, logging.DEBUG)


# ------------------------------------------------------------------------ real processes


@pytest.mark.slow
def test_tensorflow_native_lines_are_silenced_and_verbose_brings_them_back(tmp_path):
    # A model file that exists but is no model: the cheap checks pass, TensorFlow loads, and
    # only then does the export fail (one line).
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    args = ("mclcr_keras.export", "--model", str(notes), "--out", str(tmp_path / "serving"))
    quiet = run_tool(*args)
    assert quiet.returncode == 2
    assert not NATIVE.search(quiet.stderr), quiet.stderr
    assert quiet.stderr.strip().splitlines() == [
        f"export: error: expected a Keras model file (.keras), got {notes}"]
    loud = run_tool(*args, "--verbose")
    assert loud.returncode == 2
    assert NATIVE.search(loud.stderr), loud.stderr  # TensorFlow's own start-up lines


@pytest.mark.slow
def test_sigint_during_a_conversion_exits_130_with_one_line(tmp_path):
    """A real Ctrl-C (SIGINT, to the whole process group as a terminal sends it) in the middle of a
    two-worker build_records: status 130, a hint, no traceback from the tool or its workers."""
    import cv2
    import numpy as np

    yy, xx = np.mgrid[0:480, 0:640]
    # Eight faceless inputs of distinct content (duplicates are converted once), 120 frames
    # each: conversion by two worker processes lasts well past the interrupt.
    for number in range(8):
        shade = np.stack([(yy + 7 * number) % 256, xx % 256, (yy + xx) % 256], -1)
        frames = tmp_path / "faces" / "real" / f"clip{number}"
        frames.mkdir(parents=True)
        for index in range(120):
            cv2.imwrite(str(frames / f"{index:04d}.png"), shade.astype(np.uint8))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mclcr_keras.build_records", "folder", "--root",
         str(tmp_path / "faces"), "--out", str(tmp_path / "records"), "--workers", "2",
         "--frames", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=REPO, start_new_session=True,
        # SIGINT as a terminal leaves it, even under a background job (which ignores it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (tmp_path / "records" / ".work").is_dir() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == cli.EXIT_INTERRUPTED, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "build_records:" in line
             and "%|" not in line]
    assert lines[-1] == "build_records: interrupted; rerun with --resume to finish"
