"""Credentials: the local CA issues identities named role:name, keeps them private on disk,
renews them before they expire, and a folder of your own PKI is used as it is."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest

from mca.tls import Authority, CredentialError, Identity, Principal, identity_in, server_name

NOW = datetime.datetime(2026, 11, 28, tzinfo=datetime.UTC)


def test_principals_parse_and_refuse_what_is_not_one() -> None:
    assert Principal.parse("agent:npa-1") == Principal("agent", "npa-1")
    assert Principal.parse("operator:local").operator
    for bad in ("npa-1", "king:x", "client:", "client:\x00", "client:" + "x" * 129):
        with pytest.raises(CredentialError):
            Principal.parse(bad)


def test_an_issued_identity_names_its_principal_and_saves_privately(tmp_path: Path) -> None:
    authority = Authority.open(tmp_path / "ca", NOW)
    identity = authority.issue(Principal("agent", "npa-1"), NOW)
    identity.save(tmp_path / "npa")
    loaded = Identity.load(tmp_path / "npa")
    assert loaded.principal == Principal("agent", "npa-1") and loaded.ca == authority.cert
    assert (tmp_path / "npa" / "key.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert "PRIVATE" not in repr(loaded)
    # The same folder opens the same CA again (a restart does not mint a new cluster).
    assert Authority.open(tmp_path / "ca").cert == authority.cert


def test_agents_serve_under_a_name_of_their_own() -> None:
    one, other = (server_name(Principal("agent", a)) for a in ("npa-1", "wpa-1"))
    assert one != other and one.endswith(".agent.mca") and len(one.split(".")[0]) == 32
    assert server_name(Principal("replica", "mca-1")) == server_name(Principal("replica", "mca-2")) == "replica.mca"


def test_a_kept_identity_is_reused_then_renewed_before_it_expires(tmp_path: Path) -> None:
    authority = Authority.open(tmp_path, NOW)
    principal = Principal("replica", "mca-1")
    first = authority.kept(tmp_path / "replica-mca-1", principal, NOW)
    assert authority.kept(tmp_path / "replica-mca-1", principal, NOW + datetime.timedelta(days=300)) == first
    renewed = authority.kept(tmp_path / "replica-mca-1", principal, NOW + datetime.timedelta(days=340))
    assert renewed.cert != first.cert and renewed.expires() > first.expires()


def test_an_odd_name_gets_a_safe_folder(tmp_path: Path) -> None:
    identity = identity_in(tmp_path, Principal("client", "../../etc/passwd"))
    assert identity.principal.name == "../../etc/passwd"
    folders = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(folders) == 1 and folders[0].parent == tmp_path and folders[0].name.startswith("client-")


def test_your_own_pki_is_used_as_it_is(tmp_path: Path) -> None:
    """Only ca.pem in the folder (the CA key kept elsewhere): identities must be there already."""
    pki = Authority.open(tmp_path / "offline-ca", NOW)
    folder = tmp_path / "tls"
    folder.mkdir()
    shutil.copy(tmp_path / "offline-ca" / "ca.pem", folder / "ca.pem")
    pki.issue(Principal("replica", "mca-1"), NOW).save(folder / "replica-mca-1")
    assert identity_in(folder, Principal("replica", "mca-1")).principal == Principal("replica", "mca-1")
    with pytest.raises(CredentialError, match="not a credential folder"):
        identity_in(folder, Principal("agent", "npa-1"))  # nothing issued, and no key to issue it
    pki.issue(Principal("agent", "wpa-1"), NOW).save(folder / "agent-npa-1")
    with pytest.raises(CredentialError, match="agent:wpa-1's, not agent:npa-1's"):
        identity_in(folder, Principal("agent", "npa-1"))
    assert not (folder / "ca.key").exists()
