"""Settings files: OpenClaw's openclaw.json (JSON5) and LOCKKIT_SETTINGS, strictly checked."""

from __future__ import annotations

import os
import pathlib
import textwrap

import pytest

from lockkit._settings import load_settings, parse_settings, settings_file
from lockkit.cli import main
from lockkit.errors import SettingsError

OPENCLAW = textwrap.dedent(
    """\
    {
      // OpenClaw's own sections, which lockkit must leave alone
      gateway: { port: 18789, auth: { token: "${OPENCLAW_GATEWAY_TOKEN}" } },
      agents: { defaults: { model: 'x', }, },
      session: { writeLock: { acquireTimeoutMs: 10000, staleMs: 1800000, }, },
      plugins: {
        entries: {
          other: { enabled: true, config: { backend: 'not ours' } },
          lockkit: {
            enabled: true,
            config: {
              backend: "redis",       // comment after a value
              url: "${REDIS_URL}",
              ttl: 30,
              routes: {
                "agents/*/sessions/**": "${SESSION_LOCKS}",
                "literal/**": "$${NOT_A_VAR}",
              },
            },
          },
        },
      },
    }
    """
)


def parse(text: str, env: dict[str, str] | None = None) -> object:
    return parse_settings(text, "/etc/openclaw.json", env or {})


def test_openclaw_file_resolves() -> None:
    env = {"REDIS_URL": "redis://:hunter2@cache:6379/2", "SESSION_LOCKS": "excl"}
    settings = parse_settings(OPENCLAW, "/etc/openclaw.json", env)
    assert settings is not None
    assert settings.backend == "redis"
    assert settings.url == "redis://:hunter2@cache:6379/2"
    assert settings.ttl == 30
    assert settings.timeout == 10  # from session.writeLock.acquireTimeoutMs
    assert settings.stale == 1800  # from session.writeLock.staleMs
    assert [(r.pattern, r.backend) for r in settings.routes] == [
        ("agents/*/sessions/**", "excl"),
        ("literal/**", "${NOT_A_VAR}"),
    ]
    assert settings.lines == {"backend": 12, "url": 13, "ttl": 14, "routes": 15}
    assert settings.routes[0].line == 16
    # The gateway token (another section) was not substituted and did not fail.
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("agents/*/sessions/**", "agents/a1/sessions/s.jsonl.lock", True),
        ("agents/*/sessions/**", "agents/a1/sessions/deep/s.lock", True),
        ("agents/*/sessions/**", "agents/a1/other/s.lock", False),
        ("agents/*/sessions/**", "agents/a/b/sessions/s.lock", False),
        ("*.lock", "x.lock", True),
        ("*.lock", "dir/x.lock", False),
        ("**/*.lock", "dir/x.lock", True),
        ("**/*.lock", "x.lock", True),
        ("cache?.lock", "cache1.lock", True),
    ],
)
def test_route_globs(pattern: str, path: str, *, matches: bool) -> None:
    text = f'{{plugins: {{entries: {{lockkit: {{config: {{routes: {{"{pattern}": "excl"}}}}}}}}}}}}'
    settings = parse(text)
    assert settings is not None
    assert settings.routes[0].matches(path) is matches  # type: ignore[attr-defined]


BROKEN = {
    "syntax": ("{plugins: {entries: {lockkit: {config: {ttl: 30,,}}}}}", 1, "not valid JSON5"),
    "unknown key": (
        "{\n plugins: {entries: {lockkit: {config: {\n  tll: 30,\n}}}}}",
        3,
        "plugins.entries.lockkit.config.tll: unknown key; valid keys are: backend, url,",
    ),
    "wrong type": (
        "{\n plugins: {entries: {lockkit: {config: {\n  backend: 'excl',\n  ttl: '30',\n}}}}}",
        4,
        "plugins.entries.lockkit.config.ttl: expected a number of seconds >= 0.1",
    ),
    "negative": (
        "{plugins: {entries: {lockkit: {config: {\n ttl: -1}}}}}",
        2,
        "plugins.entries.lockkit.config.ttl: expected a number of seconds >= 0.1",
    ),
    "missing var": (
        "{plugins: {entries: {lockkit: {config: {\n\n url: '${MISSING_URL}'}}}}}",
        3,
        "refers to ${MISSING_URL}, but the environment variable MISSING_URL is not set",
    ),
    "config not object": (
        "{plugins: {entries: {lockkit: {\n config: 'excl'}}}}",
        2,
        "plugins.entries.lockkit.config: must be an object",
    ),
    "routes not object": (
        "{plugins: {entries: {lockkit: {config: {\n routes: ['a']}}}}}",
        2,
        "expected an object of glob -> backend",
    ),
    "route target": (
        "{plugins: {entries: {lockkit: {config: {routes: {\n 'agents/**': 5}}}}}}",
        2,
        'plugins.entries.lockkit.config.routes["agents/**"]: expected a non-empty string',
    ),
    "writeLock type": (
        "{session: {writeLock: {\n acquireTimeoutMs: 'soon'}}}",
        2,
        "session.writeLock.acquireTimeoutMs: expected milliseconds (timeout: a number of seconds",
    ),
    "top level": ("[1, 2]", 1, "the top level must be an object"),
}


@pytest.mark.parametrize(("text", "line", "message"), BROKEN.values(), ids=BROKEN.keys())
def test_malformed_settings_name_file_line_and_key(text: str, line: int, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse(text)
    assert str(caught.value).startswith(f"/etc/openclaw.json:{line}: ")
    assert message in str(caught.value)
    assert caught.value.line == line


@pytest.mark.parametrize(("text", "line", "message"), BROKEN.values(), ids=BROKEN.keys())
def test_cli_reports_malformed_settings_without_traceback(  # noqa: PLR0917 - fixtures
    text: str,
    line: int,
    message: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "openclaw.json"
    config.write_text(text)
    monkeypatch.setenv("OPENCLAW_CONFIG_PATH", str(config))
    assert main(["doctor", str(tmp_path), "--increments", "1", "--processes", "1"]) == 2
    captured = capsys.readouterr()
    assert f"{config}:{line}: " in captured.err
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_disabled_plugin_entry_is_ignored() -> None:
    text = "{plugins: {entries: {lockkit: {enabled: false, config: {backend: 'nonsense'}}}}}"
    assert parse(text) is None


def test_file_without_our_section_has_no_settings() -> None:
    assert parse("{gateway: {port: 1}}") is None


def test_bare_lockkit_settings_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "lockkit.json5"
    path.write_text("{backend: 'excl', timeout: 3, /* bare file */}")
    settings = load_settings({"LOCKKIT_SETTINGS": str(path)})
    assert settings is not None
    assert settings.backend == "excl"
    assert settings.timeout == 3


def test_missing_lockkit_settings_file_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(SettingsError, match="LOCKKIT_SETTINGS does not exist"):
        settings_file({"LOCKKIT_SETTINGS": str(tmp_path / "nope.json")})


def test_openclaw_lookup_order(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "home"
    (home / ".openclaw").mkdir(parents=True)
    (home / ".openclaw" / "openclaw.json").write_text("{}")
    state = tmp_path / "state"
    state.mkdir()
    (state / "openclaw.json").write_text("{}")
    explicit = tmp_path / "explicit.json"
    explicit.write_text("{}")
    env = {"HOME": "/nowhere", "OPENCLAW_HOME": str(home)}
    assert settings_file(env) == (str(home / ".openclaw" / "openclaw.json"), "OpenClaw state dir")
    env["OPENCLAW_STATE_DIR"] = str(state)
    assert settings_file(env) == (str(state / "openclaw.json"), "OpenClaw state dir")
    env["OPENCLAW_CONFIG_PATH"] = str(explicit)
    assert settings_file(env) == (str(explicit), "OPENCLAW_CONFIG_PATH")
    env["LOCKKIT_SETTINGS"] = str(explicit)
    assert settings_file(env) == (str(explicit), "LOCKKIT_SETTINGS")


def test_settings_are_cached_per_file_version(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{backend: 'excl'}")
    env = {"LOCKKIT_SETTINGS": str(path)}
    first = load_settings(env)
    assert load_settings(env) is first
    path.write_text("{backend: 'filelock'}")
    os.utime(path, ns=(1, 1))
    second = load_settings(env)
    assert second is not None
    assert second.backend == "filelock"


def test_cache_follows_the_variables_the_file_consulted(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{url: '${LOCK_URL}'}")
    env = {"LOCKKIT_SETTINGS": str(path), "LOCK_URL": "redis://a", "UNRELATED": "1"}
    first = load_settings(env)
    env["UNRELATED"] = "2"  # not consulted: the cached settings still hold
    assert load_settings(env) is first
    env["LOCK_URL"] = "redis://b"
    second = load_settings(env)
    assert second is not None
    assert second.url == "redis://b"


def test_relative_root_is_relative_to_the_settings_file(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "s.json"
    path.write_text("{root: '../state'}")
    monkeypatch.chdir("/")
    settings = load_settings({"LOCKKIT_SETTINGS": str(path)})
    assert settings is not None
    assert settings.root == str(tmp_path / "state")
