"""Lazy package exports (PEP 562): ``from package import name`` imports its submodule on first use.

The packages whose submodules import TensorFlow (`mclcr_keras.data`, `mclcr_keras.models`,
`mclcr_keras.inference`) export through this, so importing one of their TensorFlow-free submodules
(``mclcr_keras.data.faces``, ``mclcr_keras.models.config``) never loads TensorFlow.

Example (a package's ``__init__.py``):

```python
__getattr__, __dir__, __all__ = lazy_exports(__name__, {"make_dataset": "pipeline"})
```
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable, Callable, list]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``{name: submodule}``."""
    names = sorted(exports)

    def getattr_(name: str):
        submodule = exports.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def dir_() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return getattr_, dir_, names
