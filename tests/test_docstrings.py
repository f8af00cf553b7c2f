"""Every ``>>>`` example in the package's docstrings runs and prints what it shows (doctest).

Examples that need files, a trained model or a dataset are plain code blocks instead; no example
is skipped."""

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mclcr_keras"


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = module_names()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


def test_no_example_is_skipped_and_some_run():
    sources = {name: (PACKAGE.parent / (name.replace(".", "/") + ".py")).read_text()
               if (PACKAGE.parent / (name.replace(".", "/") + ".py")).is_file()
               else (PACKAGE.parent / name.replace(".", "/") / "__init__.py").read_text()
               for name in MODULES}
    skipped = sorted(name for name, text in sources.items() if "doctest: +SKIP" in text)
    assert skipped == []
    attempted = sum(doctest.testmod(importlib.import_module(name), report=False).attempted
                    for name in MODULES if ">>>" in sources[name])
    assert attempted >= 20
