"""Finds the TFDS builders kept in the repository's `datasets/` folder.

The folder is imported under the private package name `stew_datasets`, never as the bare name
`datasets`, so that the PyPI package of that name (HuggingFace datasets) can live in the same
environment without shadowing our builders or being shadowed by them.
"""

import importlib
import importlib.util
import pathlib
import sys

DATASETS_DIR = pathlib.Path(__file__).resolve().parent.parent / "datasets"
PACKAGE = "stew_datasets"


def _ensure_package():
  if PACKAGE not in sys.modules:
    # A real package (with a file location) so that TFDS can find builder resources in it.
    spec = importlib.util.spec_from_file_location(
        PACKAGE, DATASETS_DIR / "__init__.py",
        submodule_search_locations=[str(DATASETS_DIR)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
  return sys.modules[PACKAGE]


def available():
  """Names of the builders under datasets/ (folders holding `<name>_dataset_builder.py`)."""
  return sorted(p.parent.name for p in DATASETS_DIR.glob("*/*_dataset_builder.py")
                if p.name == f"{p.parent.name}_dataset_builder.py")


def builder_module(name):
  """Imports `datasets/<name>/<name>_dataset_builder.py` once and returns the module."""
  if name not in available():
    raise ValueError(f"No TFDS builder named {name!r} under {DATASETS_DIR}; "
                     f"expected one of: {', '.join(available())}")
  _ensure_package()
  return importlib.import_module(f"{PACKAGE}.{name}.{name}_dataset_builder")


def builder_class(name):
  """The `Builder` class (a tfds GeneratorBasedBuilder) of dataset `name`."""
  return builder_module(name).Builder
