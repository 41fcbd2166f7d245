"""The strongSwan gateway: which connections it offers, as a function of `GatewayOptions`.

The gateway picks a connection by the client's identity (IDi):

    identity                  connection      client authenticates with
    psk@cygnet.test           "psk"           pre-shared key (GatewayOptions.psk)
    mschapv2@cygnet.test      "eap-mschapv2"  EAP-MSCHAPv2 (password in GatewayOptions.eap_passwords)
    md5@cygnet.test           "eap-md5"       EAP-MD5
    eaptls@cygnet.test        "eap-tls"       EAP-TLS with the pki's "eaptls" certificate
    any other                 "pubkey"        a certificate chaining to the test root CA
                                              (alice RSA, bob ECDSA, carol Ed25519, dave via
                                              three intermediates)

The gateway always authenticates with a certificate (except for "psk"); which one is
GatewayOptions.certificate: "rsa", "ecdsa" or "chain" (RSA below three RSA-3072
intermediates, so the IKE_AUTH response needs IKE fragmentation).
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .charon import Charon, CharonSettings
from .conffile import merge_settings, swanctl_secret
from .netns import Namespace
from .pki import DOMAIN, GATEWAY_NAME, Pki
from . import topology

PSK_IDENTITY = f"psk@{DOMAIN}"
EAP_IDENTITIES = {
    "eap-mschapv2": f"mschapv2@{DOMAIN}",
    "eap-md5": f"md5@{DOMAIN}",
    "eap-tls": f"eaptls@{DOMAIN}",
}

ALL_KE = "x25519-ecp256-ecp384-modp2048-modp3072"
DEFAULT_IKE_PROPOSALS = (
    f"aes128gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-{ALL_KE}",
    f"aes128-aes256-sha256-sha384-{ALL_KE}",
)
# Without and with PFS: a configured proposal with groups insists on PFS, one without
# refuses it, so both are offered.
DEFAULT_ESP_PROPOSALS = (
    "aes128gcm16-aes256gcm16-chacha20poly1305",
    "aes128-aes256-sha256-sha384",
    f"aes128gcm16-aes256gcm16-chacha20poly1305-{ALL_KE}",
    f"aes128-aes256-sha256-sha384-{ALL_KE}",
)


def _random_secret() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class GatewayOptions:
    """Everything a test may vary about the gateway. Defaults make a permissive gateway."""

    ike_proposals: tuple[str, ...] = DEFAULT_IKE_PROPOSALS
    esp_proposals: tuple[str, ...] = DEFAULT_ESP_PROPOSALS
    certificate: str = "rsa"                    # "rsa" | "ecdsa" | "chain" | a PKI credential
    gateway_id: str = GATEWAY_NAME
    send_cert: str = "always"                   # swanctl send_cert: always / ifasked / never
    psk: str = field(default_factory=_random_secret, repr=False)
    eap_passwords: dict = field(default_factory=lambda: {
        "eap-mschapv2": _random_secret(), "eap-md5": _random_secret()}, repr=False)
    eap_identity_request: bool = True           # eap_id = %any: ask for the EAP identity
    local_ts: tuple[str, ...] = (str(topology.LAN_NET), str(topology.LAN_NET6))
    pool_v4: str | None = str(topology.POOL_NET)
    pool_v6: str | None = str(topology.POOL_NET6)
    dns_v4: tuple[str, ...] = topology.DNS_SERVERS
    dns_v6: tuple[str, ...] = topology.DNS_SERVERS6
    # Lifetimes in strongSwan syntax ("30s", "1h") or seconds; None keeps charon's default.
    ike_rekey_time: str | int | None = None
    ike_reauth_time: str | int | None = None
    ike_over_time: str | int | None = None
    child_rekey_time: str | int | None = None
    child_life_time: str | int | None = None
    rand_time: str | int | None = "0s"          # no jitter: tests can predict rekeying
    dpd_delay: str | int | None = None
    dpd_action: str = "clear"
    mobike: bool = True
    fragmentation: str = "yes"
    unique: str = "no"
    charon: CharonSettings = field(default_factory=CharonSettings)
    # Escape hatches, merged last into every connection / every child / the whole file.
    extra_connection: dict = field(default_factory=dict)
    extra_child: dict = field(default_factory=dict)
    extra_config: dict = field(default_factory=dict)

    @property
    def eap_users(self) -> dict:
        """{method: (identity, password)} for the password-based EAP methods."""
        return {method: (EAP_IDENTITIES[method], password)
                for method, password in self.eap_passwords.items()}


def _gateway_credential(options: GatewayOptions, pki: Pki):
    """"rsa", "ecdsa", "chain", or any credential of the PKI by name (an impostor gateway
    may present "gateway-other" or a user certificate such as "alice")."""
    named = {"rsa": pki.gateway_rsa, "ecdsa": pki.gateway_ecdsa, "chain": pki.gateway_chain}
    return named.get(options.certificate) or pki.credentials[options.certificate]


def gateway_config(options: GatewayOptions, pki: Pki) -> dict:
    """The swanctl.conf tree for `options` (paths relative to the swanctl directory)."""
    cert = _gateway_credential(options, pki)
    cert_local = {"auth": "pubkey", "id": options.gateway_id, "certs": cert.cert.name}

    def connection(local: dict, remote: dict, child_name: str) -> dict:
        conn = {
            "version": 2,
            "proposals": list(options.ike_proposals),
            "pools": [p for p, addr in (("v4", options.pool_v4), ("v6", options.pool_v6))
                      if addr] or None,
            "rekey_time": options.ike_rekey_time,
            "reauth_time": options.ike_reauth_time,
            "over_time": options.ike_over_time,
            "rand_time": options.rand_time,
            "dpd_delay": options.dpd_delay,
            "mobike": options.mobike,
            "fragmentation": options.fragmentation,
            "unique": options.unique,
            "send_cert": options.send_cert,
            "local": local,
            "remote": remote,
            "children": {child_name: {
                "local_ts": list(options.local_ts),
                "esp_proposals": list(options.esp_proposals),
                "rekey_time": options.child_rekey_time,
                "life_time": options.child_life_time,
                "rand_time": options.rand_time,
                "dpd_action": options.dpd_action,
                **copy.deepcopy(options.extra_child),
            }},
        }
        merge_settings(conn, copy.deepcopy(options.extra_connection))
        return conn

    eap_id = "%any" if options.eap_identity_request else None
    connections = {
        "psk": connection({"auth": "psk", "id": options.gateway_id},
                          {"auth": "psk", "id": PSK_IDENTITY}, "psk"),
        "pubkey": connection(dict(cert_local), {"auth": "pubkey", "id": "%any"}, "pubkey"),
    }
    for method, identity in EAP_IDENTITIES.items():
        connections[method] = connection(
            dict(cert_local), {"auth": method, "id": identity, "eap_id": eap_id}, method)

    pools = {}
    if options.pool_v4:
        pools["v4"] = {"addrs": options.pool_v4, "dns": list(options.dns_v4) or None}
    if options.pool_v6:
        pools["v6"] = {"addrs": options.pool_v6, "dns": list(options.dns_v6) or None}

    secrets_ = {"ike-psk": {"id": PSK_IDENTITY, "secret": swanctl_secret(options.psk)},
                "private-gateway": {"file": cert.key.name}}
    for method, (identity, password) in options.eap_users.items():
        secrets_[f"eap-{method}"] = {"id": identity, "secret": swanctl_secret(password)}

    config = {"connections": connections, "pools": pools, "secrets": secrets_}
    merge_settings(config, copy.deepcopy(options.extra_config))
    return config




class Gateway:
    """A charon gateway in `namespace`, configured from GatewayOptions."""

    def __init__(self, namespace: Namespace, workdir: Path, pki: Pki,
                 options: GatewayOptions | None = None):
        self.pki = pki
        self.options = options or GatewayOptions()
        self.charon = Charon(namespace, workdir, self.options.charon, name="gateway")

    @property
    def psk(self) -> str:
        return self.options.psk

    @property
    def eap_users(self) -> dict:
        return self.options.eap_users

    @property
    def log_path(self) -> Path:
        return self.charon.log_path

    @property
    def running(self) -> bool:
        return self.charon.running

    def start(self) -> "Gateway":
        self._install_credentials()
        self.charon.start()
        self.charon.load(gateway_config(self.options, self.pki))
        return self

    def reconfigure(self, options: GatewayOptions) -> None:
        """Load new connections/secrets into the running gateway (existing SAs stay).
        Changes to `options.charon` take effect at the next restart()."""
        self.options = options
        self._install_credentials()
        self.charon.load(gateway_config(options, self.pki))

    def _install_credentials(self) -> None:
        p = self.pki
        credentials = [p.gateway_rsa, p.gateway_ecdsa, p.gateway_chain]
        if _gateway_credential(self.options, p) not in credentials:
            credentials.append(_gateway_credential(self.options, p))
        # charon sends the intermediates of its chain only up to the first CA the peer named
        # in a CERTREQ, and its own CERTREQ (in IKE_SA_INIT, before it knows the client)
        # names every CA it holds. So it holds the intermediates only when it needs them to
        # send its "chain" certificate; otherwise clients such as dave must send theirs.
        intermediates = list(p.intermediates) if self.options.certificate == "chain" else []
        self.charon.install_credentials(
            certs=[c.cert for c in credentials], cacerts=[p.root_ca, *intermediates],
            private_keys=[c.key for c in credentials], replace=True)

    def stop(self) -> None:
        self.charon.stop()

    def kill(self) -> None:
        self.charon.kill()

    def restart(self) -> "Gateway":
        self.charon.restart()
        return self

    def list_sas(self, ike: str | None = None) -> list[dict]:
        return self.charon.list_sas(ike)

    def wait_for_sa(self, predicate=None, timeout: float = 10.0) -> dict:
        return self.charon.wait_for_sa(predicate, timeout)

    def swanctl(self, *args: str, **kwargs):
        return self.charon.swanctl(*args, **kwargs)
