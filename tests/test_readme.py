"""README.md as a user copies from it: every example must work as written.

A rules.yaml example passes ``position-monitor check``, a rule test example passes
``position-monitor test``, the replay example replays, every ``position-monitor`` command line
is one the real argument parser accepts (parsed, not run), every ``make`` target exists, every
JSON example parses, every Python example runs (the webhook receiver against a request signed by
the real sink), and every relative link and anchor in README.md and docs/ resolves.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from monitor import cli
from monitor.model import Alert
from monitor.notify.webhook.sink import SIGNATURE_HEADER, TIMESTAMP_HEADER, payload, signature

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
SHELL = frozenset({"sh", "bash", "console"})
LANGUAGES = SHELL | {"yaml", "json", "jsonl", "python", "text"}
RULES_SECTIONS = frozenset({"accounts", "rules", "notify"})
# What a fragment that shows only accounts or sinks lacks to be a whole rules.yaml.
MINIMAL_RULES = "\nrules:\n  - {name: readme-example, kind: new_short}\n"
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>.*)$")
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
INLINE_MAKE = re.compile(r"`(make [^`]+)`")
COMMAND_PREFIXES = frozenset({"sudo", "env", "exec", "time"})


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, the line of its opening fence, its text."""

    lang: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.lang} block at line {self.line}"


def code_blocks(markdown: str) -> list[Block]:
    """Every fenced block, with the fence's indentation taken off its lines."""
    blocks: list[Block] = []
    opened: tuple[str, int, str] | None = None
    body: list[str] = []
    for number, line in enumerate(markdown.splitlines(), 1):
        fence = FENCE.match(line)
        if opened is None:
            if fence:
                opened, body = (fence["lang"].strip(), number, fence["indent"]), []
        elif fence and not fence["lang"].strip():
            blocks.append(Block(opened[0], opened[1], "\n".join(body) + "\n"))
            opened = None
        else:
            body.append(line.removeprefix(opened[2]))
    assert opened is None, f"a code block opened at line {opened[1]} is never closed"
    return blocks


def prose(markdown: str) -> str:
    """The text outside code blocks, line numbers kept (block lines become empty)."""
    inside, lines = False, []
    for line in markdown.splitlines():
        if FENCE.match(line):
            inside = not inside
            lines.append("")
        else:
            lines.append("" if inside else line)
    return "\n".join(lines)


def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.MULTILINE))


def shell_lines(block: Block) -> Iterator[tuple[int, str]]:
    """Each command line of a shell block with its line number, ``\\`` continuations joined."""
    pending: list[str] = []
    start = 0
    for offset, line in enumerate(block.text.splitlines(), 1):
        if not pending:
            start = block.line + offset
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        yield start, " ".join([*pending, line])
        pending = []
    if pending:
        yield start, " ".join(pending)


def commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line: split at ``|``, ``&&``, ``;``, redirections dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    result: list[list[str]] = [[]]
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token in {">", ">>", "<", "2>", "&>"}:
            skip_next = True
        elif token and set(token) <= set("|&;()"):
            result.append([])
        else:
            result[-1].append(token)
    return [words for words in result if words]


def command_problem(words: list[str]) -> str | None:
    """Why a command as written would not work, or None."""
    while words and (re.match(r"^\w+=", words[0]) or words[0] in COMMAND_PREFIXES):
        words = words[1:]
    if not words:
        return None
    if words[0].startswith("-"):
        return "starts with an option: a command wrapped across lines without a backslash?"
    if Path(words[0]).name == "position-monitor":
        parser = cli._parser()
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(words[1:])
        except SystemExit as exit_:
            if exit_.code:
                return stderr.getvalue().strip().splitlines()[-1].partition("error: ")[2]
    elif words[0] == "make":
        named = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        unknown = [target for target in named if target not in make_targets()]
        if unknown:
            return f"no make target {', '.join(unknown)} in the Makefile"
    return None


def command_problems(markdown: str, source: str) -> list[str]:
    """Every shell line of a document that would not run as written, one line each."""
    problems = []
    for block in code_blocks(markdown):
        if block.lang not in SHELL:
            continue
        for number, line in shell_lines(block):
            if re.match(r"^\s*[$>] ", line):
                problems.append(f"{source}:{number}: a prompt character in {line!r}")
                continue
            try:
                parsed = commands(line)
            except ValueError as err:
                problems.append(f"{source}:{number}: {line!r}: {err}")
                continue
            for words in parsed:
                if reason := command_problem(words):
                    problems.append(f"{source}:{number}: {line!r}: {reason}")
    for number, line in enumerate(prose(markdown).splitlines(), 1):
        for match in INLINE_MAKE.finditer(line):
            if reason := command_problem(shlex.split(match[1])):
                problems.append(f"{source}:{number}: `{match[1]}`: {reason}")
    return problems


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose(markdown).splitlines():
        if heading := re.match(r"^#{1,6}\s+(.*?)\s*$", line):
            slug = re.sub(r"[^\w\- ]", "", heading[1].lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def link_problems(path: Path, root: Path = ROOT) -> list[str]:
    """Every relative link of a document that leads to no file of ``root`` or no heading."""
    problems = []
    for number, line in enumerate(prose(path.read_text()).splitlines(), 1):
        for match in LINK.finditer(line):
            target = match["target"]
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(root)}:{number}: {target}"
            if not linked.exists() or root not in linked.parents:
                problems.append(f"{where}: no such file in the repository")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
                problems.append(f"{where}: no heading #{anchor} in {linked.name}")
    return problems


def readme_blocks(*langs: str) -> list[Block]:
    return [b for b in code_blocks(README.read_text()) if b.lang in langs]


def yaml_documents() -> list[tuple[Block, object]]:
    return [(block, yaml.safe_load(block.text)) for block in readme_blocks("yaml")]


def rules_examples() -> list[Block]:
    return [
        block
        for block, document in yaml_documents()
        if isinstance(document, dict) and RULES_SECTIONS & document.keys()
        and "tests" not in document
    ]  # fmt: skip


def rule_test_examples() -> list[Block]:
    return [
        block
        for block, document in yaml_documents()
        if isinstance(document, dict) and "tests" in document
    ]


def params(blocks: list[Block]) -> list[object]:
    return [pytest.param(block, id=block.where) for block in blocks]


def test_every_code_block_names_its_language() -> None:
    unnamed = [b.where for b in code_blocks(README.read_text()) if b.lang not in LANGUAGES]
    assert not unnamed, f"blocks without one of {sorted(LANGUAGES)}: {unnamed}"


def test_every_command_runs_as_written() -> None:
    problems = [
        problem
        for path in DOCUMENTS
        for problem in command_problems(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not problems, "\n".join(problems)


def test_the_readme_names_commands_and_targets() -> None:
    """The premise of the test above: the README's shell blocks are there and were read."""
    lines = [line for block in readme_blocks(*SHELL) for _, line in shell_lines(block)]
    assert any(line.startswith("position-monitor replay") for line in lines)
    assert any(line.startswith("make run") for line in lines)


def test_a_command_wrapped_across_lines_is_caught() -> None:
    wrapped = (
        "Replay:\n\n```sh\nposition-monitor replay polls.jsonl --rules\nrules.yaml\n"
        "position-monitor run --config rules.yaml\n  --record polls.jsonl\n```\n"
    )
    assert command_problems(wrapped, "example.md") == [
        "example.md:4: 'position-monitor replay polls.jsonl --rules': argument --rules:"
        " expected one argument",
        "example.md:7: '  --record polls.jsonl': starts with an option: a command wrapped"
        " across lines without a backslash?",
    ]
    joined = wrapped.replace("--rules\n", "--rules \\\n").replace(".yaml\n  --", ".yaml \\\n --")
    assert command_problems(joined, "example.md") == []


def test_prompts_unknown_options_and_targets_are_caught() -> None:
    text = (
        "```sh\n$ make run\nposition-monitor check --strictest rules.yaml\nmake deploy\n```\n"
        "Run `make bench-all`.\n"
    )
    problems = command_problems(text, "x.md")
    assert [p.split(": ", 1)[0] for p in problems] == ["x.md:2", "x.md:3", "x.md:4", "x.md:6"]
    assert "unrecognized arguments: --strictest" in problems[1]
    assert problems[2].endswith("no make target deploy in the Makefile")


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_resolves(path: Path) -> None:
    assert not link_problems(path), "\n".join(link_problems(path))


def test_a_broken_link_or_anchor_is_caught(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Quick start\n")
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "guide.md"
    doc.write_text(
        "[a](missing.md) [b](#nowhere) [c](../README.md#quick-start) [d](https://x.y/z)\n"
        "[e](../README.md#install) [f](../../outside.md)\n"
    )
    (tmp_path.parent / "outside.md").touch()
    assert link_problems(doc, tmp_path.resolve()) == [
        "docs/guide.md:1: missing.md: no such file in the repository",
        "docs/guide.md:1: #nowhere: no heading #nowhere in guide.md",
        "docs/guide.md:2: ../README.md#install: no heading #install in README.md",
        "docs/guide.md:2: ../../outside.md: no such file in the repository",
    ]


def test_every_yaml_block_parses() -> None:
    assert len(yaml_documents()) >= 10


@pytest.mark.parametrize("block", params(rules_examples()))
def test_rules_examples_pass_check(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = block.text
    if "rules" not in yaml.safe_load(text):
        text += MINIMAL_RULES
    # As a reader holding none of the secrets would check it.
    for name in re.findall(r"\$\{(\w+)\}", text):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    status = cli.main(["check", str(path)])
    assert status == 0, capsys.readouterr().err


def test_every_sink_and_broker_has_a_checked_example() -> None:
    documents = [yaml.safe_load(block.text) for block in rules_examples()]
    brokers = {a["broker"] for d in documents for a in d.get("accounts") or []}
    sinks = {s["kind"] for d in documents for s in d.get("notify") or []}
    assert brokers >= {"kotak_neo", "portfolio", "samco", "alphapoint", "torus"}
    assert sinks >= {"console", "telegram", "alertmanager", "webhook"}


@pytest.mark.parametrize("block", params(rule_test_examples()))
def test_rule_test_examples_pass(
    block: Block, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "rules.yaml", tmp_path / "rules.yaml")
    path = tmp_path / "my_test.yaml"
    path.write_text(block.text)
    status = cli.main(["test", str(path)])
    out = capsys.readouterr()
    assert status == 0, out.out + out.err
    assert "0 failed" in out.out


def test_json_examples_parse() -> None:
    for block in readme_blocks("json"):
        json.loads(block.text)
    lines = [line for block in readme_blocks("jsonl") for line in block.text.splitlines()]
    assert lines
    for line in lines:
        json.loads(line)


def test_the_replay_example_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = readme_blocks("jsonl")
    path = tmp_path / "polls.jsonl"
    path.write_text(block.text)
    status = cli.main(["replay", str(path), "--rules", str(ROOT / "rules.yaml")])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "timeout" in err  # the example's failed poll is reported and the replay goes on


def test_the_alert_example_is_the_alert_contract() -> None:
    example = json.loads(readme_blocks("json")[0].text)
    assert Alert.from_json(example).to_json() == example


@pytest.mark.parametrize("block", params(readme_blocks("python")))
def test_python_examples_run(block: Block) -> None:
    exec(compile(block.text, f"README.md:{block.line}", "exec"), {})  # noqa: S102


def test_the_webhook_receiver_accepts_what_the_sink_signs() -> None:
    (receiver,) = [b for b in readme_blocks("python") if "def accept(" in b.text]
    namespace: dict[str, object] = {}
    exec(compile(receiver.text, "README.md", "exec"), namespace)  # noqa: S102
    accept = namespace["accept"]
    assert callable(accept)
    alert = Alert.from_json(json.loads(readme_blocks("json")[0].text))
    body = payload([alert])
    now = str(int(time.time()))
    headers = {TIMESTAMP_HEADER: now, SIGNATURE_HEADER: signature("s3cret", now, body)}

    (accepted,) = accept(b"s3cret", headers, body)
    assert accepted["rule"] == alert.rule
    assert accept(b"s3cret", headers, body) == []  # a redelivery: same id, dropped
    with pytest.raises(ValueError, match="bad signature"):
        accept(b"s3cret", headers, body.replace(b"-25", b"-26"))
    stale = str(int(time.time()) - 3600)
    old = {TIMESTAMP_HEADER: stale, SIGNATURE_HEADER: signature("s3cret", stale, body)}
    with pytest.raises(ValueError, match="stale"):
        accept(b"s3cret", old, body)
