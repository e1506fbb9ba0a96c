"""requirements/lock.txt and pyproject.toml must agree, and the suite must run on the lock.

The lock is what a fresh machine installs (`make demo`, `make test`, .ci/run); pyproject keeps
the honest ranges. When someone widens a range or bumps the lock by hand, these tests say so.
"""

import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import REPO

LOCK = REPO / "requirements" / "lock.txt"


def project_requirements() -> list[Requirement]:
    """Core dependencies plus every extra, with the self-references (`autokose[...]`) expanded."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [r for r in map(Requirement, extra) if canonicalize_name(r.name) != "autokose"]
    return reqs


def parse_lock(text: str) -> dict[str, Version]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one `==` pin per line
        assert spec.operator == "==", f"lock line is not an exact pin: {line}"
        pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


@pytest.fixture(scope="module")
def pins() -> dict[str, Version]:
    return parse_lock(LOCK.read_text(encoding="utf-8"))


def test_every_project_requirement_is_pinned_inside_its_range(pins):
    problems = []
    for req in project_requirements():
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req.name} is in pyproject.toml but not in the lock")
        elif not req.specifier.contains(pin, prereleases=True):
            problems.append(f"lock pins {req.name}=={pin}, outside pyproject's {req.specifier}")
    assert not problems, "; ".join(problems) + " (run `make lock`)"


def test_known_bad_combination_is_excluded(pins):
    """transformers 5.24 needs peft >= 0.22 for text-encoder LoRAs: the lock must not pair them."""
    assert not (pins["transformers"] >= Version("5.24") and pins["peft"] < Version("0.22"))
    transformers = next(r for r in project_requirements() if r.name == "transformers")
    assert not transformers.specifier.contains("5.24.0"), "pyproject must cap transformers below 5.24"


def test_suite_runs_on_the_locked_versions(pins):
    """The installed project dependencies are the locked ones (the tests ran on what users get)."""
    drift = []
    for req in project_requirements():
        name = canonicalize_name(req.name)
        try:
            installed = Version(metadata.version(req.name))
        except metadata.PackageNotFoundError:
            continue
        if Version(installed.base_version) != pins[name] and installed != pins[name]:
            drift.append(f"{req.name} {installed} installed, lock says {pins[name]}")
    assert not drift, "; ".join(drift) + " (install with `pip install -c requirements/lock.txt ...`)"


def test_parse_lock_rejects_ranges():
    with pytest.raises(AssertionError):
        parse_lock("numpy>=1.26\n")
    assert parse_lock("# comment\nNumPy==2.4.6\n") == {"numpy": Version("2.4.6")}
