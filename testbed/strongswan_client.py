"""A strongSwan initiator (a second charon in the client namespace): the reference client.

The self-tests use it to prove the gateway works; bench/ compares Cygnet against it. It has
one connection per authentication method, named after the method (see METHODS), all aimed
at the testbed gateway and asking for an IPv4 and an IPv6 virtual IP.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from .charon import Charon, CharonSettings
from .conffile import merge_settings, swanctl_secret
from .gateway import EAP_IDENTITIES, PSK_IDENTITY, GatewayOptions
from .netns import Namespace
from .pki import GATEWAY_NAME, Pki

# method -> pki credential name for certificate methods
CERT_METHODS = {"rsa": "alice", "ecdsa": "bob", "ed25519": "carol", "chain": "dave",
                "rogue": "mallory"}
METHODS = ("psk", *CERT_METHODS, "eap-mschapv2", "eap-md5", "eap-tls")


@dataclass
class ClientOptions:
    ike_proposals: tuple[str, ...] = ("default",)
    esp_proposals: tuple[str, ...] = ("default",)
    virtual_ips: tuple[str, ...] = ("0.0.0.0", "::")
    remote_ts: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    gateway_id: str = GATEWAY_NAME
    gateway_address: str | None = None      # default: the testbed's IPv4 gateway address
    fragmentation: str = "yes"
    mobike: bool = True
    charon: CharonSettings = field(default_factory=CharonSettings)
    extra_connection: dict = field(default_factory=dict)
    # Only these methods' connections, keys and secrets (None: every method). A benchmark
    # baseline loads what a user's charon would for that one measurement, nothing more.
    methods: tuple[str, ...] | None = None
    # How often start() polls charon's vici socket; user tooling polls in ~ms.
    vici_poll_interval: float = 0.02

    def wanted(self, method: str) -> bool:
        return self.methods is None or method in self.methods


def client_config(gateway_address: str, pki: Pki, gateway: GatewayOptions,
                  options: ClientOptions) -> dict:
    """swanctl.conf for the reference client; secrets taken from the gateway's options."""
    def connection(local: dict, remote_auth: str = "pubkey") -> dict:
        conn = {
            "version": 2,
            "remote_addrs": gateway_address,
            "vips": list(options.virtual_ips) or None,
            "proposals": list(options.ike_proposals),
            "fragmentation": options.fragmentation,
            "mobike": options.mobike,
            "local": local,
            # CERTREQ only for the root, as a client configured with just the root CA
            # would: the gateway then sends its intermediates (see Gateway._install_credentials).
            "remote": {"auth": remote_auth, "id": options.gateway_id,
                       "cacerts": pki.root_ca.name if remote_auth == "pubkey" else None},
            "children": {"tunnel": {"remote_ts": list(options.remote_ts),
                                    "esp_proposals": list(options.esp_proposals)}},
        }
        merge_settings(conn, copy.deepcopy(options.extra_connection))
        return conn

    connections, secrets_ = {}, {}
    if options.wanted("psk"):
        connections["psk"] = connection({"auth": "psk", "id": PSK_IDENTITY}, remote_auth="psk")
        secrets_["ike-psk"] = {"id": PSK_IDENTITY, "secret": swanctl_secret(gateway.psk)}
    for method, name in CERT_METHODS.items():
        if options.wanted(method):
            credential = pki.credentials[name]
            connections[method] = connection({"auth": "pubkey", "id": credential.identity,
                                              "certs": credential.cert.name})
    for method in ("eap-mschapv2", "eap-md5"):
        if options.wanted(method):
            identity = EAP_IDENTITIES[method]
            connections[method] = connection({"auth": method, "id": identity, "eap_id": identity})
    if options.wanted("eap-tls"):
        connections["eap-tls"] = connection({"auth": "eap-tls", "id": pki.eaptls.identity,
                                             "certs": pki.eaptls.cert.name})
    for method, (identity, password) in gateway.eap_users.items():
        if options.wanted(method):
            secrets_[f"eap-{method}"] = {"id": identity, "secret": swanctl_secret(password)}
    return {"connections": connections, "secrets": secrets_}


class StrongswanClient:
    """charon as an initiator. `connect(method)` brings a tunnel up and returns its IKE_SA."""

    def __init__(self, namespace: Namespace, workdir: Path, pki: Pki, gateway_address: str,
                 gateway_options: GatewayOptions, options: ClientOptions | None = None):
        self.pki = pki
        self.options = options or ClientOptions()
        self.gateway_address = self.options.gateway_address or gateway_address
        self.gateway_options = gateway_options
        self.charon = Charon(namespace, workdir, self.options.charon, name="strongswan-client")

    @property
    def log_path(self) -> Path:
        return self.charon.log_path

    @property
    def resolv_conf(self) -> Path:
        """Where this client's charon writes the DNS servers it received."""
        return self.charon.resolv_conf_path

    def start(self) -> "StrongswanClient":
        p, wanted = self.pki, self.options.wanted
        names = [name for method, name in (*CERT_METHODS.items(), ("eap-tls", "eaptls"))
                 if wanted(method)]
        clients = [p.credentials[name] for name in names]
        # the CA only where the gateway authenticates with its certificate (not PSK)
        gateway_cert = any(wanted(method) for method in METHODS if method != "psk")
        cacerts = [p.root_ca, *p.intermediates] if gateway_cert else []
        self.charon.install_credentials(certs=[c.cert for c in clients], cacerts=cacerts,
                                        private_keys=[c.key for c in clients])
        self.charon.start(poll_interval=self.options.vici_poll_interval)
        self.charon.load(client_config(self.gateway_address, self.pki, self.gateway_options,
                                       self.options))
        return self

    def stop(self) -> None:
        self.charon.stop()

    def kill(self) -> None:
        self.charon.kill()

    def connect(self, method: str, timeout: float = 30.0) -> dict:
        """Initiate the connection for `method` and return the established IKE_SA (a dict)."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
        self.charon.initiate("tunnel", ike=method, timeout=timeout)
        return self.charon.wait_for_sa(lambda sa: sa["name"] == method, timeout=5)

    def disconnect(self, method: str, force: bool = False) -> None:
        """Close the tunnel; force=True when the gateway no longer knows the SA."""
        self.charon.terminate(method, force=force)

    def list_sas(self) -> list[dict]:
        return self.charon.list_sas()

    def virtual_ips(self, method: str) -> list[str]:
        for sa in self.charon.list_sas(method):
            return list(sa.get("local-vips", []))
        return []
