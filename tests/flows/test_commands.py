"""Printed hints name commands the way they can be pasted: bare only when the shell finds
this environment's copy."""

import sys
from pathlib import Path

from paretolab.flows.commands import command


def test_a_command_on_path_is_named_bare(monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert command("paretolab") == "paretolab"


def test_a_command_off_path_is_named_by_its_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    named = command("paretolab")
    assert named == str(Path(sys.executable).with_name("paretolab")) and Path(named).is_file()


def test_a_command_this_environment_lacks_stays_bare(monkeypatch):
    assert command("no-such-tool") == "no-such-tool"
