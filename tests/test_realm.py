"""HashLoginService: realm files, credential forms, reload, cache, timing."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

import securityhandler.realm as realm
from securityhandler.errors import ConfigError, SecurityWarning
from securityhandler.login import LoginService
from securityhandler.realm import CACHE_TTL, HashLoginService, deobfuscate
from tests._jetty import obfuscate

# Jetty's Password tool prints these for the password "password".
JETTY_OBF_PASSWORD = "OBF:1v2j1uum1xtv1zej1zer1xtn1uvk1v1v"
JETTY_MD5_PASSWORD = "MD5:5f4dcc3b5aa765d61d8327deb882cf99"

# Cheap parameters: the tests check behaviour, not the work factor.
SCRYPT = "scrypt:1024:8:1"
PBKDF2 = "pbkdf2:sha256:1000"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def md5(password: str) -> str:
    """Jetty's ``MD5:`` credential: the digest of the ISO-8859-1 bytes."""
    return "MD5:" + hashlib.md5(password.encode("latin-1")).hexdigest()  # noqa: S324


class RealmFile:
    """A realm file the test rewrites atomically, with distinct mtimes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mtime_ns = 1_700_000_000_000_000_000

    def write(self, text: str | bytes) -> Path:
        data = text.encode("utf-8") if isinstance(text, str) else text
        temporary = self.path.with_name(self.path.name + ".new")
        temporary.write_bytes(data)
        self.mtime_ns += 1_000_000_000
        os.utime(temporary, ns=(self.mtime_ns, self.mtime_ns))
        os.replace(temporary, self.path)
        return self.path


@pytest.fixture
def realm_file(tmp_path: Path) -> RealmFile:
    """Return a realm file helper in a fresh directory."""
    return RealmFile(tmp_path / "realm.properties")


@pytest.fixture
def clock() -> Clock:
    """Return a hand-moved clock."""
    return Clock()


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the hashes Werkzeug checks; the real check still runs."""
    calls: list[str] = []
    real = realm.check_password_hash

    def spy(pwhash: str, password: str) -> bool:
        calls.append(pwhash)
        return real(pwhash, password)

    monkeypatch.setattr(realm, "check_password_hash", spy)
    return calls


def service(path: Path, clock: Clock, **kwargs: Any) -> HashLoginService:
    return HashLoginService("staff", path, clock=clock, **kwargs)


# -- credential forms -------------------------------------------------------

CREDENTIALS = [
    pytest.param(JETTY_OBF_PASSWORD, "password", id="obf-jetty-vector"),
    pytest.param(obfuscate("pässwörd €"), "pässwörd €", id="obf-non-ascii"),
    pytest.param(JETTY_MD5_PASSWORD, "password", id="md5-jetty-vector"),
    pytest.param(md5("pässwörd"), "pässwörd", id="md5-latin-1"),
    pytest.param(generate_password_hash("s3cret", SCRYPT), "s3cret", id="scrypt"),
    pytest.param(generate_password_hash("s3cret", PBKDF2), "s3cret", id="pbkdf2"),
]


@pytest.mark.parametrize(("credential", "password"), CREDENTIALS)
def test_credential_forms_accept_right_password(
    realm_file: RealmFile, clock: Clock, credential: str, password: str
) -> None:
    path = realm_file.write(f"alice: {credential}, admin, writer\n")
    identity = service(path, clock).login("alice", password)
    assert identity is not None
    assert identity.roles == {"admin", "writer"}


@pytest.mark.parametrize(("credential", "password"), CREDENTIALS)
def test_credential_forms_refuse_wrong_password(
    realm_file: RealmFile, clock: Clock, credential: str, password: str
) -> None:
    path = realm_file.write(f"alice: {credential}\n")
    users = service(path, clock)
    assert users.login("alice", password + "x") is None
    assert users.login("alice", "") is None


def test_plain_password_warns_naming_file_and_user(
    realm_file: RealmFile, clock: Clock
) -> None:
    path = realm_file.write("bob: hunter2, reader\n")
    with pytest.warns(SecurityWarning) as warned:
        users = service(path, clock)
    message = str(warned[0].message)
    assert str(path) in message
    assert "bob" in message
    assert "hunter2" not in message
    assert users.login("bob", "hunter2") is not None


def test_plain_password_colon_accepted(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write("bob: pa:ss:word\n")
    with pytest.warns(SecurityWarning):
        users = service(path, clock)
    assert users.login("bob", "pa:ss:word") is not None
    assert users.login("bob", "pa") is None


def test_inline_users_same_credential_forms(clock: Clock) -> None:
    users = HashLoginService(
        "staff",
        users={
            "alice": {"password": JETTY_MD5_PASSWORD, "roles": ["admin"]},
            "bob": {"password": generate_password_hash("s3cret", SCRYPT)},
        },
        clock=clock,
    )
    assert users.login("alice", "password") is not None
    assert users.login("bob", "s3cret") is not None
    assert users.roles() == {"admin"}


def test_inline_plain_password_warns(clock: Clock) -> None:
    with pytest.warns(SecurityWarning, match="inline users.*carol"):
        HashLoginService("staff", users={"carol": {"password": "hunter2"}})


def test_login_identity_names_service(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write(f"alice: {JETTY_MD5_PASSWORD}, admin\n")
    identity = service(path, clock).login("alice", "password")
    assert identity is not None
    assert (identity.name, identity.auth_type, identity.issuer) == (
        "alice",
        "BASIC",
        "staff",
    )


def test_file_and_inline_users_combined(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write(f"alice: {JETTY_MD5_PASSWORD}, admin\n")
    users = service(
        path, clock, users={"bob": {"password": JETTY_OBF_PASSWORD, "roles": ["ops"]}}
    )
    assert isinstance(users, LoginService)
    assert users.usernames() == {"alice", "bob"}
    assert users.roles() == {"admin", "ops"}


def test_realm_file_whitespace_comments_blank_lines(
    realm_file: RealmFile, clock: Clock
) -> None:
    text = (
        "\ufeff# Jetty realm\r\n"
        "\r\n"
        f"   alice  :   {JETTY_MD5_PASSWORD}  ,  admin ,writer  \r\n"
        "  # bob: OBF:1v2j1uum1xtv1zej1zer1xtn1uvk1v1v\n"
        "\t\n"
        f"carol:{JETTY_OBF_PASSWORD}\n"
    )
    users = service(realm_file.write(text), clock)
    assert users.usernames() == {"alice", "carol"}
    alice = users.login("alice", "password")
    assert alice is not None
    assert alice.roles == {"admin", "writer"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(JETTY_OBF_PASSWORD, "password", id="jetty-vector"),
        pytest.param("1v2j1uum1xtv1zej1zer1xtn1uvk1v1v", "password", id="no-prefix"),
        pytest.param(obfuscate("ünïcødé 🙂"), "ünïcødé 🙂", id="non-ascii"),
    ],
)
def test_deobfuscate_reverses_jetty(text: str, expected: str) -> None:
    assert deobfuscate(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("OBF:1v2j1uu", id="short-group"),
        pytest.param("OBF:1V2J", id="upper-case-digits"),
        pytest.param("OBF:zzzz", id="out-of-range"),
        pytest.param("OBF:Uzzzz", id="u-group-out-of-range"),
        pytest.param("OBF: 1v2", id="space"),
    ],
)
def test_deobfuscate_malformed_raises(text: str) -> None:
    with pytest.raises(ValueError, match="OBF"):
        deobfuscate(text)


# -- configuration errors ---------------------------------------------------

GOOD = f"alice: {JETTY_MD5_PASSWORD}, admin\n"


@pytest.mark.parametrize(
    ("line", "key", "match"),
    [
        pytest.param(f"alice: {JETTY_OBF_PASSWORD}", "alice", "Duplicate", id="dup"),
        pytest.param(": s3cret-x", None, "Empty user name", id="empty-user"),
        pytest.param("bob s3cret-x", None, "Expected 'user:", id="no-colon"),
        pytest.param("b ob: s3cret-x", "b ob", "spaces", id="space-in-user"),
        pytest.param("bob:   , admin", "bob", "Empty credential", id="no-credential"),
        pytest.param("bob: OBF:1v2j1uum, ,admin", "bob", "Empty role", id="empty-role"),
        pytest.param("bob: SHA:s3cret-x", "bob", "unknown scheme", id="unknown-scheme"),
        pytest.param(
            "bob: md5:5f4dcc3b5aa765d61d8327deb882cf99",
            "bob",
            "unknown scheme",
            id="lower-case-md5",
        ),
        pytest.param(
            "bob: argon2$s3cret$abcdef", "bob", "unknown scheme", id="other-hash"
        ),
        pytest.param("bob: CRYPT:usjRS48E8ZADM", "bob", "CRYPT", id="crypt"),
        pytest.param("bob: OBF:1v2j1uu", "bob", "OBF", id="bad-obf"),
        pytest.param("bob: MD5:5f4dcc3b", "bob", "MD5", id="bad-md5"),
        pytest.param(
            "bob: scrypt:1000:8:1$s3cret$abcd", "bob", "scrypt", id="scrypt-n"
        ),
        pytest.param("bob: scrypt:1024$s3cret$abcd", "bob", "scrypt", id="scrypt-args"),
        pytest.param(
            "bob: pbkdf2:nope:1000$s3cret$abcd", "bob", "digest", id="pbkdf2-digest"
        ),
        pytest.param("bob: scrypt$s3cret", "bob", "Werkzeug", id="hash-no-digest"),
    ],
)
def test_realm_file_error_names_file_line_key(
    realm_file: RealmFile, clock: Clock, line: str, key: str | None, match: str
) -> None:
    path = realm_file.write(GOOD + "# comment\n" + line + "\n")
    with pytest.raises(ConfigError, match=match) as raised:
        service(path, clock)
    error = raised.value
    assert (error.file, error.line, error.key) == (str(path), 3, key)
    assert str(error).startswith(f"{path}:3")
    assert "s3cret" not in str(error)


def test_realm_file_not_utf8_names_line(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write(GOOD.encode() + b"bob: p\xe4ss\n")
    with pytest.raises(ConfigError, match="UTF-8") as raised:
        service(path, clock)
    assert (raised.value.file, raised.value.line) == (str(path), 2)


def test_realm_file_without_users_rejected(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write("# nobody yet\n")
    with pytest.raises(ConfigError, match="no users") as raised:
        service(path, clock)
    assert raised.value.file == str(path)


def test_realm_file_missing_rejected(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "absent.properties"
    with pytest.raises(ConfigError, match="Cannot read") as raised:
        service(path, clock)
    assert raised.value.file == str(path)


def test_user_in_file_and_inline_rejected(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write("# staff\n" + GOOD)
    inline = {"alice": {"password": JETTY_OBF_PASSWORD}}
    with pytest.raises(ConfigError, match="both in the file and inline") as raised:
        service(path, clock, users=inline)
    error = raised.value
    assert (error.file, error.line, error.key) == (str(path), 2, "alice")


@pytest.mark.parametrize(
    ("users", "key"),
    [
        pytest.param({"": {"password": JETTY_MD5_PASSWORD}}, "users.", id="empty"),
        pytest.param(
            {"a:b": {"password": JETTY_MD5_PASSWORD}}, "users.a:b", id="colon"
        ),
        pytest.param({"bob": "s3cret"}, "users.bob", id="not-mapping"),
        pytest.param({"bob": {"roles": []}}, "users.bob.password", id="no-password"),
        pytest.param({"bob": {"password": 7}}, "users.bob.password", id="number"),
        pytest.param(
            {"bob": {"password": "CRYPT:s3cret"}}, "users.bob.password", id="crypt"
        ),
        pytest.param(
            {"bob": {"password": JETTY_MD5_PASSWORD, "roles": "admin"}},
            "users.bob.roles",
            id="roles-string",
        ),
        pytest.param(
            {"bob": {"password": JETTY_MD5_PASSWORD, "roles": [""]}},
            "users.bob.roles",
            id="empty-role",
        ),
        pytest.param(
            {"bob": {"password": JETTY_MD5_PASSWORD, "role": ["a"]}},
            "users.bob.role",
            id="unknown-key",
        ),
    ],
)
def test_inline_user_error_names_key(users: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        HashLoginService("staff", users=users)
    assert raised.value.key == key
    assert "s3cret" not in str(raised.value)


def test_service_without_users_rejected() -> None:
    with pytest.raises(ConfigError, match="file or users"):
        HashLoginService("staff")


# -- reload -----------------------------------------------------------------


def test_reload_after_interval_not_before(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write(f"alice: {JETTY_MD5_PASSWORD}\n")
    users = service(path, clock, reload_interval=5)
    realm_file.write(f"alice: {md5('changed')}\n")
    clock.now += 4
    assert users.login("alice", "password") is not None
    clock.now += 1
    assert users.login("alice", "changed") is not None
    assert users.login("alice", "password") is None


def test_reload_checks_file_once_per_interval(
    realm_file: RealmFile, clock: Clock
) -> None:
    path = realm_file.write(f"alice: {JETTY_MD5_PASSWORD}\n")
    users = service(path, clock, reload_interval=5)
    clock.now += 5
    assert users.login("alice", "password") is not None
    realm_file.write(f"alice: {md5('changed')}\n")
    clock.now += 4
    assert users.login("alice", "changed") is None
    clock.now += 1
    assert users.login("alice", "changed") is not None


def test_reload_role_change_takes_effect(realm_file: RealmFile, clock: Clock) -> None:
    line = f"alice: {generate_password_hash('s3cret', SCRYPT)}"
    path = realm_file.write(f"{line}, admin\n")
    users = service(path, clock)
    before = users.login("alice", "s3cret")
    realm_file.write(f"{line}, reader\n")
    clock.now += 1
    after = users.login("alice", "s3cret")
    assert before is not None
    assert before.roles == {"admin"}
    assert after is not None
    assert after.roles == {"reader"}
    assert users.roles() == {"reader"}


def test_reload_adds_and_removes_users(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write(f"alice: {JETTY_MD5_PASSWORD}\n")
    users = service(path, clock)
    realm_file.write(f"bob: {JETTY_OBF_PASSWORD}\n")
    clock.now += 1
    assert users.usernames() == {"bob"}
    assert users.login("alice", "password") is None


def test_reload_broken_file_keeps_users(
    realm_file: RealmFile, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    path = realm_file.write(GOOD)
    users = service(path, clock)
    realm_file.write(f"carol: {md5('n3w-secret')}\ndave: CRYPT:n3w-secret\n")
    clock.now += 1
    with caplog.at_level(logging.INFO, logger="securityhandler.realm"):
        assert users.login("alice", "password") is not None
        clock.now += 1
        assert users.login("carol", "n3w-secret") is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"{path}:2" in errors[0].getMessage()
    assert "n3w-secret" not in caplog.text


def test_reload_empty_file_keeps_users(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write(GOOD)
    users = service(path, clock)
    realm_file.write("")
    clock.now += 1
    assert users.login("alice", "password") is not None


def test_reload_deleted_file_keeps_users(
    realm_file: RealmFile, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    path = realm_file.write(GOOD)
    users = service(path, clock)
    path.unlink()
    clock.now += 1
    with caplog.at_level(logging.WARNING, logger="securityhandler.realm"):
        assert users.login("alice", "password") is not None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert str(path) in caplog.records[0].getMessage()


def test_reload_recreated_file_loaded(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write(GOOD)
    users = service(path, clock)
    path.unlink()
    clock.now += 1
    users.login("alice", "password")
    realm_file.write(f"alice: {md5('changed')}\n")
    clock.now += 1
    assert users.login("alice", "changed") is not None


def test_reload_plain_password_warns(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write(GOOD)
    users = service(path, clock)
    realm_file.write(GOOD + "bob: hunter2\n")
    clock.now += 1
    with pytest.warns(SecurityWarning, match="bob"):
        assert users.login("bob", "hunter2") is not None


def test_reload_drops_cache(realm_file: RealmFile, clock: Clock) -> None:
    path = realm_file.write(f"alice: {generate_password_hash('old-pw', SCRYPT)}\n")
    users = service(path, clock)
    assert users.login("alice", "old-pw") is not None
    realm_file.write(f"alice: {generate_password_hash('new-pw', SCRYPT)}\n")
    clock.now += 1
    assert users.login("alice", "old-pw") is None
    assert users.login("alice", "new-pw") is not None


def test_reload_concurrent_logins_never_refused(
    realm_file: RealmFile, clock: Clock
) -> None:
    scrypt = generate_password_hash("c-pw", SCRYPT)
    stable = f"alice: {JETTY_MD5_PASSWORD}, admin\ncarol: {scrypt}\n"
    path = realm_file.write(stable)
    users = service(path, clock, reload_interval=0)
    refused: list[str] = []
    logins = [0]
    stop = threading.Event()

    def worker(name: str, password: str) -> None:
        while not stop.is_set():
            if users.login(name, password) is None:
                refused.append(name)
            logins[0] += 1

    threads = [
        threading.Thread(target=worker, args=("alice", "password")),
        threading.Thread(target=worker, args=("carol", "c-pw")),
    ]
    for thread in threads:
        thread.start()
    for version in range(200):
        extra = f"user{version}: {md5(str(version))}, role{version}\n" * (version % 2)
        realm_file.write(stable + extra)
        users.login("alice", "password")
    stop.set()
    for thread in threads:
        thread.join()
    assert refused == []
    assert logins[0] > 0
    assert users.usernames() == {"alice", "carol", "user199"}


# -- cache and timing -------------------------------------------------------


def test_cache_skips_second_hash(clock: Clock, hash_calls: list[str]) -> None:
    users = HashLoginService(
        "staff",
        users={"alice": {"password": generate_password_hash("s3cret", SCRYPT)}},
        clock=clock,
    )
    hash_calls.clear()
    assert users.login("alice", "s3cret") is not None
    assert users.login("alice", "s3cret") is not None
    assert len(hash_calls) == 1


def test_cache_expires_after_ttl(clock: Clock, hash_calls: list[str]) -> None:
    users = HashLoginService(
        "staff",
        users={"alice": {"password": generate_password_hash("s3cret", SCRYPT)}},
        clock=clock,
    )
    hash_calls.clear()
    users.login("alice", "s3cret")
    clock.now += CACHE_TTL - 1
    users.login("alice", "s3cret")
    clock.now += 1
    assert users.login("alice", "s3cret") is not None
    assert len(hash_calls) == 2


def test_cache_failures_not_cached(clock: Clock, hash_calls: list[str]) -> None:
    users = HashLoginService(
        "staff",
        users={"alice": {"password": generate_password_hash("s3cret", SCRYPT)}},
        clock=clock,
    )
    hash_calls.clear()
    assert users.login("alice", "wrong") is None
    assert users.login("alice", "wrong") is None
    assert len(hash_calls) == 2


def test_cache_bounded(
    clock: Clock, hash_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realm, "CACHE_SIZE", 2)
    pwhash = generate_password_hash("s3cret", SCRYPT)
    users = HashLoginService(
        "staff",
        users={name: {"password": pwhash} for name in ("a", "b", "c")},
        clock=clock,
    )
    for name in ("a", "b", "c"):
        users.login(name, "s3cret")
    hash_calls.clear()
    users.login("c", "s3cret")
    users.login("a", "s3cret")
    assert hash_calls == [pwhash]


def test_cache_holds_no_password_or_plain_hash(clock: Clock) -> None:
    users = HashLoginService(
        "staff",
        users={"alice": {"password": generate_password_hash("s3cret", SCRYPT)}},
        clock=clock,
    )
    users.login("alice", "s3cret")
    keys = list(users._current().cache._expiry)
    plain_hashes = {
        hashlib.new(name, data).digest()
        for name in ("md5", "sha1", "sha256", "sha512")
        for data in (b"s3cret", b"alice:s3cret", b"\x00\x00\x00\x05alices3cret")
    }
    assert len(keys) == 1
    assert b"s3cret" not in keys[0]
    assert keys[0] not in plain_hashes


def test_unknown_user_checks_dummy_hash(clock: Clock, hash_calls: list[str]) -> None:
    users = HashLoginService(
        "staff",
        users={
            "alice": {"password": generate_password_hash("s3cret", SCRYPT)},
            "bob": {"password": JETTY_MD5_PASSWORD},
        },
        clock=clock,
    )
    hash_calls.clear()
    assert users.login("mallory", "s3cret") is None
    assert len(hash_calls) == 1
    assert hash_calls[0].startswith(SCRYPT + "$")


def test_unknown_user_dummy_follows_strongest_kind(
    clock: Clock, hash_calls: list[str]
) -> None:
    users = HashLoginService(
        "staff",
        users={
            "alice": {"password": generate_password_hash("s3cret", PBKDF2)},
            "bob": {"password": generate_password_hash("s3cret", SCRYPT)},
            "carol": {"password": generate_password_hash("s3cret", SCRYPT)},
        },
        clock=clock,
    )
    hash_calls.clear()
    assert users.login("mallory", "s3cret") is None
    assert len(hash_calls) == 1
    assert hash_calls[0].startswith(SCRYPT + "$")
