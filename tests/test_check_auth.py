"""DKIM: `dkim keygen` writes a usable key pair; the check signs, verifies and names problems."""

from __future__ import annotations

import stat
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.checks.auth import DkimConfig, check_dkim
from newsletter.checks.parsed import Parsed
from newsletter.checks.report import Level

CHECKS = Path(__file__).parent / "fixtures" / "checks"


def test_keygen_writes_a_private_key_and_prints_the_txt_record(run, tmp_path: Path) -> None:
    result = run("dkim", "keygen", "--selector", "brief2026", "--domain", "brief.example.org")
    assert result.exit_code == 0, result.output
    key = tmp_path / "dkim" / "brief2026.private"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "brief2026._domainkey.brief.example.org. IN TXT" in result.output
    assert f"NEWSLETTER_DKIM_KEY_FILE={key}" in result.output
    record = (tmp_path / "dkim" / "brief2026.txt").read_text()
    published = "".join(record.split('"')[1::2])  # the quoted chunks, joined as DNS does
    assert published.startswith("v=DKIM1; k=rsa; p=")
    # a message signed with the private key verifies against exactly that record
    message = (CHECKS / "good.eml").read_bytes()
    signed = dkim.sign(message, b"brief2026", b"brief.example.org", key.read_bytes()) + message
    assert dkim.verify(signed, dnsfunc=lambda _name, timeout=5: published.encode())


def test_keygen_never_overwrites_and_rejects_bad_names(run, tmp_path: Path) -> None:
    assert run("dkim", "keygen", "--selector", "s1", "--domain", "example.org").exit_code == 0
    again = run("dkim", "keygen", "--selector", "s1", "--domain", "example.org")
    assert again.exit_code == 1
    assert "exists: refusing to overwrite a DKIM key" in again.output
    bad = run("dkim", "keygen", "--selector", "s 1", "--domain", "example.org")
    assert bad.exit_code == 1 and "--selector" in bad.output
    assert not (tmp_path / "dkim" / "s 1.private").exists()


def write_key(path: Path, bits: int = 2048) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_configured_dkim_signs_and_verifies_with_list_unsubscribe_post(tmp_path: Path) -> None:
    config = DkimConfig(write_key(tmp_path / "k.pem"), "s1", "brief.example.org")
    found = check_dkim(
        Parsed.from_bytes((CHECKS / "good.eml").read_bytes()), config, "brief.example.org"
    )
    assert [f.level for f in found] == [Level.INFO]
    assert "signs and verifies" in found[0].message
    assert "list-unsubscribe-post" in found[0].message


def test_unsigned_list_unsubscribe_post_misaligned_domain_and_bad_keys_are_named(
    tmp_path: Path,
) -> None:
    config = DkimConfig(write_key(tmp_path / "k.pem"), "s1", "other.org")
    message = Parsed.from_bytes((CHECKS / "no-list-unsubscribe-post.eml").read_bytes())
    found = {
        (f.level, f.message.split(" (")[0])
        for f in check_dkim(message, config, "brief.example.org")
    }
    assert (
        Level.ERROR,
        "List-Unsubscribe-Post is not among the DKIM-signed headers",
    ) in found
    assert (
        Level.WARNING,
        "DKIM domain other.org does not align with the From domain brief.example.org",
    ) in found

    (tmp_path / "junk.pem").write_text("not a key")
    for path, words in [
        (tmp_path / "junk.pem", "not an unencrypted PEM private key"),
        (tmp_path / "absent.pem", "No such file"),
    ]:
        (finding,) = check_dkim(message, DkimConfig(path, "s1", "other.org"), "other.org")
        assert finding.level == Level.ERROR and words in finding.message

    weak = DkimConfig(write_key(tmp_path / "weak.pem", bits=1024), "s1", "brief.example.org")
    levels = [f.level for f in check_dkim(message, weak, "brief.example.org")]
    assert Level.WARNING in levels


def test_unconfigured_dkim_says_how_to_set_it_up() -> None:
    message = Parsed.from_bytes((CHECKS / "good.eml").read_bytes())
    (finding,) = check_dkim(message, None, "brief.example.org")
    assert finding.level == Level.INFO and "newsletter dkim keygen" in finding.fix


def test_api_senders_sign_for_us_so_no_key_is_asked_for() -> None:
    message = Parsed.from_bytes((CHECKS / "good.eml").read_bytes())
    (finding,) = check_dkim(message, None, "brief.example.org", "postmark")
    assert finding.level == Level.INFO and "added by postmark" in finding.message
    assert "keygen" not in finding.fix
