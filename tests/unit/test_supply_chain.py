"""The supply chain stays pinned: the lock has hashes and setup.sh checks them; every image installs exactly
its part of the lock with --require-hashes and starts from a base image pinned by digest; the Go tools build
with -mod=readonly. Each rule is a checker run on the repository and on a bad example it must catch."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import generate
from generators import GenerateError, requirements

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(p for p in REPO.glob("**/Dockerfile*") if ".git" not in p.parts and ".venv" not in p.parts)
LOCKS = [REPO / requirements.LOCK, *sorted((REPO / requirements.OUT_DIR).glob("*.lock"))]
IMAGE_LOCK_NAMES = {f"{image.name}.lock" for image in requirements.IMAGES}
# A FROM whose image cannot be pinned is allowed only when the line above says so, with the reason.
DIGEST_EXCEPTION = "# supply-chain: no digest"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# Options that take a value, so that the value is not read as a requirement.
PIP_VALUE_OPTIONS = {"-r", "--requirement", "-w", "--wheel-dir", "--only-binary", "--no-binary", "--python", "-t"}


# -- checkers ---------------------------------------------------------------------------------------------


def lock_problems(text: str, source: str) -> list[str]:
    """Every entry pinned with == and carrying at least one sha256; none of the project's own distributions."""
    problems: list[str] = []
    try:
        pins = requirements.parse_lock(text, source)
    except GenerateError as exc:
        return [str(exc)]
    if not pins:
        problems.append(f"{source}: no entries")
    for name, pin in sorted(pins.items()):
        if not pin.hashes:
            problems.append(f"{source}: {name}=={pin.version} has no --hash (compile with --generate-hashes)")
        if name in requirements.LOCAL:
            problems.append(f"{source}: {name} is this repository's own distribution; it is installed from source")
    return problems


def _instructions(text: str) -> list[tuple[str, str, str]]:
    """(keyword, arguments, the comment line right above) per instruction; continuation lines joined."""
    out: list[tuple[str, str, str]] = []
    above = ""
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            above = line if line.startswith("#") else ""
            continue
        if current and line.startswith("#"):  # a comment inside a continued RUN
            continue
        current.append(line[:-1].rstrip() if line.endswith("\\") else line)
        if not line.endswith("\\"):
            keyword, _, args = " ".join(current).partition(" ")
            out.append((keyword.upper(), args.strip(), above))
            current, above = [], ""
    return out


def _expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), value)


def _pip_commands(run: str) -> list[list[str]]:
    """The pip invocations of one RUN, each as its arguments after `pip`: the shell line split into simple
    commands at && || ; | ( ) outside quotes."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set("();<>|&"):
            commands.append([])
        else:
            commands[-1].append(token)
    found = []
    for words in commands:
        for i, word in enumerate(words):
            if word in ("pip", "pip3") or word.endswith("/pip"):  # also `python -m pip`, `uv pip`
                found.append(words[i + 1 :])
                break
    return found


def pip_problems(argv: list[str], source: str) -> list[str]:
    """One pip command: locked (--require-hashes -r <image lock>, wheels only), local wheels (--no-index
    --no-deps), or building the project's wheels (--no-deps --no-build-isolation, local paths only)."""
    if not argv:
        return []
    verb, options = argv[0], argv[1:]
    shown = f"{source}: `pip {' '.join(argv)}`"
    flags = set(options)
    files: list[str] = []
    positional: list[str] = []
    i = 0
    while i < len(options):
        opt = options[i]
        if opt in PIP_VALUE_OPTIONS and i + 1 < len(options):
            if opt in ("-r", "--requirement"):
                files.append(options[i + 1])
            i += 2
            continue
        if opt.startswith("--requirement="):
            files.append(opt.partition("=")[2])
        elif not opt.startswith("-"):
            positional.append(opt)
        i += 1
    problems = []
    for risky in ("-c", "--constraint", "-e", "--editable", "--extra-index-url", "--index-url", "-i", "--trusted-host"):
        if risky in flags or any(o.startswith(risky + "=") for o in options):
            problems.append(f"{shown}: {risky} is not allowed (install exactly an image lock)")
    if verb == "check" or verb == "--version":
        return problems
    if verb == "wheel":
        if not {"--no-deps", "--no-build-isolation"} <= flags:
            problems.append(f"{shown}: pip wheel builds only the project's own code: --no-deps --no-build-isolation")
        if files or any(not p.startswith(("./", "/")) for p in positional):
            problems.append(f"{shown}: pip wheel takes local source folders only")
        return problems
    if verb != "install":
        return [*problems, f"{shown}: only `pip install`, `pip wheel` and `pip check` are allowed"]
    if "--require-hashes" in flags:
        if positional:
            problems.append(f"{shown}: {' '.join(positional)} is not from a lock; install `-r` an image lock only")
        if not files:
            problems.append(f"{shown}: --require-hashes without `-r` an image lock")
        for file in files:
            if Path(file).name not in IMAGE_LOCK_NAMES:
                problems.append(f"{shown}: {file} is not one of {requirements.OUT_DIR}/*.lock")
        if "--only-binary" not in flags or ":all:" not in options:
            problems.append(f"{shown}: add --only-binary :all: (an sdist build fetches build tools unchecked)")
        return problems
    wheels_only = bool(positional) and all(p.endswith(".whl") for p in positional)
    if {"--no-index", "--no-deps"} <= flags and not files and wheels_only:
        return problems  # the wheels this image's build stage made from the repository's source
    return [*problems, f"{shown}: installs without --require-hashes (an image lock, or --no-index --no-deps wheels)"]


def dockerfile_problems(text: str, source: str) -> list[str]:
    problems: list[str] = []
    args: dict[str, str] = {}
    stages: set[str] = set()
    for keyword, rest, above in _instructions(text):
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args.setdefault(name.strip(), default.strip().strip('"'))
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            image = _expand(words[0], args)
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2])
            if image in stages - {words[2] if len(words) >= 3 else ""}:
                continue
            if not DIGEST.search(image) and not above.startswith(DIGEST_EXCEPTION):
                problems.append(f"{source}: FROM {image} is not pinned by digest (name@sha256:...)")
        elif keyword == "RUN":
            for argv in _pip_commands(_expand(rest, args)):
                problems += pip_problems(argv, source)
    return problems


GO_COMMAND = re.compile(r"\bgo\s+(build|install|list|mod|run|test|get|generate)\b")


def go_problems(text: str, source: str) -> list[str]:
    """No -mod=mod, no GOFLAGS emptied for one command, no `go get`; a script that runs go exports
    GOFLAGS=-mod=readonly (or passes it to each command)."""
    problems = []
    if "-mod=mod" in text:
        problems.append(f"{source}: -mod=mod lets the build rewrite go.mod/go.sum; use -mod=readonly")
    if re.search(r"(?<![\w-])GOFLAGS=(\s|$|\"\"|'')", text):
        problems.append(f"{source}: GOFLAGS emptied for a command drops -mod=readonly")
    if re.search(r"\bgo\s+get\b", text):
        problems.append(f"{source}: `go get` changes go.mod; pin versions in go.mod instead")
    if source.endswith(".sh") and GO_COMMAND.search(text):
        exported = re.search(r"^\s*export\b.*\bGOFLAGS=-mod=readonly\b", text, re.M)
        every = all("-mod=readonly" in line for line in text.splitlines() if GO_COMMAND.search(line.split("#")[0]))
        if not (exported or every):
            problems.append(f"{source}: runs go without GOFLAGS=-mod=readonly")
    return problems


# -- the repository ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_lock_entry_is_pinned_and_hashed_and_none_is_a_local_distribution(lock: Path) -> None:
    assert lock_problems(lock.read_text(), lock.relative_to(REPO).as_posix()) == []


def test_the_lock_is_compiled_with_hashes_from_the_three_pyproject_files() -> None:
    header = (REPO / requirements.LOCK).read_text().splitlines()[1]
    assert "uv pip compile" in header and "--generate-hashes" in header, header
    for folder in requirements.LOCAL.values():
        assert f"{folder}/pyproject.toml" in header, header


def test_image_locks_are_the_current_subsets_of_the_lock() -> None:
    assert generate.main(["--check", "image-locks"]) == 0, "run `python hack/generate.py image-locks`"


def test_image_locks_copy_the_versions_and_hashes_of_the_lock() -> None:
    full = requirements.parse_lock((REPO / requirements.LOCK).read_text())
    for image in requirements.IMAGES:
        path = REPO / requirements.OUT_DIR / f"{image.name}.lock"
        for name, pin in requirements.parse_lock(path.read_text(), path.name).items():
            assert (pin.version, pin.hashes) == (full[name].version, full[name].hashes), f"{path.name}: {name}"


def _names(image: str) -> set[str]:
    return set(requirements.parse_lock((REPO / requirements.OUT_DIR / f"{image}.lock").read_text()))


TRAINER_ONLY = {"torch", "transformers", "peft", "trl", "datasets", "accelerate", "triton", "tokenizers"}
OPERATOR_ONLY = {"lightkube", "lightkube-models", "pydantic-settings", "prometheus-client", "kubernetes"}


def test_the_operator_image_gets_no_trainer_packages_and_the_trainer_none_of_the_operator() -> None:
    assert {"lightkube", "pydantic-settings", "boto3"} <= _names("operator")
    assert not _names("operator") & TRAINER_ONLY
    assert {"torch", "trl", "boto3"} <= _names("trainer-hf")
    assert not _names("trainer-hf") & OPERATOR_ONLY
    assert {"pydantic", "httpx", "boto3"} <= _names("fetcher")
    assert not _names("fetcher") & (TRAINER_ONLY | OPERATOR_ONLY)
    assert not (REPO / requirements.OUT_DIR / "trainer-nemo.lock").exists()  # the NeMo container's own stack
    assert _names("build") == {"setuptools"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_dockerfile_pins_its_base_by_digest_and_installs_only_hashed_locks(dockerfile: Path) -> None:
    assert dockerfile_problems(dockerfile.read_text(), dockerfile.relative_to(REPO).as_posix()) == []


def test_every_image_installs_its_own_lock() -> None:
    # The NeMo image adds no lock of its own: the container's packages, adapterops-common's (fetcher) if missing.
    locked = {i.dockerfile for i in requirements.IMAGES if i.name != "build"} | {"training-jobs/Dockerfile.nemo"}
    assert {d.relative_to(REPO).as_posix() for d in DOCKERFILES} == locked, (
        "a Dockerfile without an image lock (add it to hack/generators/requirements.py IMAGES)"
    )
    assert "hack/requirements/fetcher.lock" in (REPO / "training-jobs/Dockerfile.nemo").read_text()
    for image in requirements.IMAGES:
        if image.name == "build":
            continue
        text = (REPO / image.dockerfile).read_text()
        assert f"hack/requirements/{image.name}.lock" in text, image.dockerfile
        assert "hack/requirements/build.lock" in text, image.dockerfile


GO_SOURCES = sorted(
    [*REPO.glob("hack/**/*.sh"), *REPO.glob("hack/**/*.py"), *REPO.glob("tests/**/*.py")], key=lambda p: p.as_posix()
)


def test_go_builds_are_readonly_everywhere() -> None:
    problems = []
    for path in GO_SOURCES:
        if path == Path(__file__).resolve() or ".venv" in path.parts:
            continue
        problems += go_problems(path.read_text(), path.relative_to(REPO).as_posix())
    assert problems == []


def test_every_go_module_under_hack_has_a_go_sum() -> None:
    for go_mod in REPO.glob("hack/**/go.mod"):
        assert (go_mod.parent / "go.sum").stat().st_size > 0, go_mod


def test_setup_installs_the_lock_with_hash_checking_and_the_local_packages_without_dependencies() -> None:
    lines = [line.strip() for line in (REPO / "hack/setup.sh").read_text().splitlines()]
    sync = [line for line in lines if line.startswith("uv pip sync")]
    assert sync and all("--require-hashes" in line and "hack/requirements.lock" in line for line in sync), sync
    installs = [line for line in lines if line.startswith("uv pip install")]
    assert installs and all("--no-deps" in line for line in installs), installs


# -- the checkers catch what they are for ---------------------------------------------------------------


def test_a_lock_entry_without_a_hash_or_pin_is_caught() -> None:
    assert lock_problems("boto3==1.44.8\n    # via x\n", "l") == [
        "l: boto3==1.44.8 has no --hash (compile with --generate-hashes)"
    ]
    assert "not a `name==version` pin" in lock_problems("boto3>=1.34\n", "l")[0]
    hashed = "adapterops-common==0.1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    assert "own distribution" in lock_problems(hashed, "l")[0]


def test_the_old_dockerfiles_are_caught() -> None:
    old = """FROM python:3.11-slim AS build
COPY hack/requirements.lock hack/requirements.lock
RUN pip wheel --no-cache-dir --wheel-dir /wheels --constraint hack/requirements.lock ./training-jobs/common ./operator
FROM python:3.11-slim
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
RUN pip install --no-deps ./training-jobs/common \\
 && pip install --no-deps "$(grep '^trl==' hack/requirements.lock)" \\
 && (python -c "import pydantic" || pip install --constraint hack/requirements.lock pydantic httpx boto3)
"""
    problems = "\n".join(dockerfile_problems(old, "D"))
    assert problems.count("is not pinned by digest") == 2
    assert "--constraint is not allowed" in problems
    assert "pip wheel builds only the project's own code: --no-deps --no-build-isolation" in problems
    assert "`pip install --no-cache-dir --no-index /wheels/*.whl`: installs without --require-hashes" in problems
    assert "`pip install --no-deps ./training-jobs/common`: installs without --require-hashes" in problems
    assert "$(grep '^trl==' hack/requirements.lock)`: installs without --require-hashes" in problems


def test_a_locked_install_must_read_an_image_lock_wheels_only() -> None:
    good = "RUN pip install --require-hashes --only-binary :all: -r /tmp/install/operator.lock"
    assert dockerfile_problems(good, "D") == []
    assert "not one of hack/requirements/*.lock" in dockerfile_problems(good.replace("operator.lock", "x.txt"), "D")[0]
    assert "--only-binary :all:" in dockerfile_problems(good.replace("--only-binary :all: ", ""), "D")[0]
    ranged = dockerfile_problems(good + " 'torch>=2.4'", "D")
    assert ranged == [
        "D: `pip install --require-hashes --only-binary :all: -r /tmp/install/operator.lock torch>=2.4`: "
        "torch>=2.4 is not from a lock; install `-r` an image lock only"
    ]


def test_a_base_image_needs_a_digest_unless_marked_as_the_exception() -> None:
    digest = "@sha256:" + "a" * 64
    assert dockerfile_problems(f"ARG BASE=python:3.11-slim{digest}\nFROM ${{BASE}} AS build\nFROM build\n", "D") == []
    assert dockerfile_problems("ARG BASE=python:3.11-slim\nFROM ${BASE}\n", "D") == [
        "D: FROM python:3.11-slim is not pinned by digest (name@sha256:...)"
    ]
    marked = f"{DIGEST_EXCEPTION}: a local image that is never pushed\nFROM adapterops-dev:local\n"
    assert dockerfile_problems(marked, "D") == []


def test_mod_mod_and_go_without_readonly_are_caught() -> None:
    assert go_problems("export GOTOOLCHAIN=local GOFLAGS=-mod=mod\ngo build .\n", "b.sh") == [
        "b.sh: -mod=mod lets the build rewrite go.mod/go.sum; use -mod=readonly",
        "b.sh: runs go without GOFLAGS=-mod=readonly",
    ]
    assert go_problems("export GOFLAGS=-mod=readonly\nGOBIN=x GOFLAGS= go install a@v1\n", "b.sh") == [
        "b.sh: GOFLAGS emptied for a command drops -mod=readonly"
    ]
    assert go_problems("go build -mod=readonly -o x .\n", "b.sh") == []
    assert go_problems('env={"GOFLAGS": "-mod=mod"}\n', "t.py") == [
        "t.py: -mod=mod lets the build rewrite go.mod/go.sum; use -mod=readonly"
    ]


def test_the_image_closure_follows_extras_and_markers_for_linux_and_names_what_is_missing() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import NormalizedName, canonicalize_name

    def pin(name: str, version: str = "1.0") -> requirements.Pin:
        return requirements.Pin(canonicalize_name(name), version, ["sha256:" + "0" * 64])

    metadata = {
        "lib": ['dep>=1; sys_platform == "linux"', 'mac-only; sys_platform == "darwin"', 'extra-dep; extra == "x"'],
        "dep": [],
        "extra-dep": [],
        "mac-only": [],
    }
    pins = {canonicalize_name(n): pin(n) for n in metadata}
    no_extras: dict[str, list[Requirement]] = {}
    local = {canonicalize_name("mine"): ([Requirement("lib[x]>=0.5")], no_extras)}

    def requires(name: NormalizedName, p: requirements.Pin) -> list[Requirement]:
        return [Requirement(r) for r in metadata[name]]

    assert requirements.closure(["mine"], pins, local, requires) == {
        "lib": {"mine"},
        "dep": {"lib"},
        "extra-dep": {"lib"},
    }
    assert requirements.closure(["lib"], pins, local, requires) == {"lib": set(), "dep": {"lib"}}
    with pytest.raises(GenerateError, match=r"dep \(needed by lib\) is not in hack/requirements.lock"):
        requirements.closure(["lib"], {k: v for k, v in pins.items() if k != "dep"}, local, requires)
    with pytest.raises(GenerateError, match=r"mine requires lib\[x\]>=2, but hack/requirements.lock pins lib==1.0"):
        requirements.closure(
            ["mine"], pins, {canonicalize_name("mine"): ([Requirement("lib[x]>=2")], no_extras)}, requires
        )
