"""Packaging beyond pyproject.toml: static/ and templates/ stay at the top of the repository and
are shipped inside the package, as livetrack/static and livetrack/templates."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["livetrack", "livetrack.*"]), "livetrack.static",
              "livetrack.templates"],  # fmt: skip
    package_dir={"livetrack.static": "static", "livetrack.templates": "templates"},
)
