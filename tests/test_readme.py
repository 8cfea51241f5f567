"""The README's worked example of a custom search space runs as written."""

from __future__ import annotations

import re
from pathlib import Path

from neurosym.interp.registry import PRIMITIVES

README = Path(__file__).parents[1] / "README.md"


def _blocks(section: str) -> dict[str, str]:
    """The fenced blocks of a README section, keyed by the file name on their first line."""
    text = README.read_text(encoding="utf-8").split(f"## {section}\n", 1)[1].split("\n## ")[0]
    return {m.group(2): m.group(1) for m in re.finditer(r"```\w+\n(# (\S+)\n.*?)```", text,
                                                         re.S)}


def test_custom_search_space_example(tmp_path, monkeypatch):
    blocks = _blocks("Your own search space")
    assert set(blocks) == {"my_series.toml", "my_task.toml", "search_with_energy.py"}
    for name in ("my_series.toml", "my_task.toml"):
        (tmp_path / name).write_text(blocks[name], encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the set is found next to the task file, not the cwd
    script = blocks["search_with_energy.py"].replace('"my_task.toml"',
                                                     repr(str(tmp_path / "my_task.toml")))
    try:
        exec(compile(script, "search_with_energy.py", "exec"), {"__name__": "__main__"})
    finally:
        PRIMITIVES.pop("energy", None)
