"""Our private key held by ssh-agent (charon-nm's `agent` method): the certificate names the
key, the agent signs (draft-ietf-sshm-ssh-agent: SSH_AGENTC_SIGN_REQUEST); the key never
reaches Cygnet. Like client/pkcs11_key.py, the objects stand in for cryptography's private
keys so ike/auth.py's Signer is unchanged:

    RSA      ssh-rsa (SHA-1, RFC 7296 method 1), rsa-sha2-256 / rsa-sha2-512 (PKCS#1 v1.5;
             the agent has no PSS, no SHA-384)
    Ed25519  ssh-ed25519 (pure EdDSA over the message, as RFC 8420 needs)
    ECDSA    ecdsa-sha2-nistp256/384/521 (the curve's own hash, as RFC 4754 and RFC 7427 use)
"""

from __future__ import annotations

import socket
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from .held_key import HeldEcKey, HeldKey

REQUEST_IDENTITIES, IDENTITIES_ANSWER = 11, 12
SIGN_REQUEST, SIGN_RESPONSE, FAILURE = 13, 14, 5
RSA_SHA2_256, RSA_SHA2_512 = 2, 4
MAX_MESSAGE = 256 * 1024
TIMEOUT = 30.0  # the agent may ask the user to confirm (ssh-add -c)


class AgentError(Exception):
    """One line for the user."""


def _string(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data


def _read_string(data: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(data):
        raise AgentError("ssh-agent sent a malformed answer")
    (length,) = struct.unpack_from("!I", data, offset)
    end = offset + 4 + length
    if end > len(data):
        raise AgentError("ssh-agent sent a malformed answer")
    return data[offset + 4:end], end


class Agent:
    def __init__(self, socket_path: str):
        self.path = socket_path

    def _call(self, message: bytes) -> bytes:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(TIMEOUT)
                s.connect(self.path)
                s.sendall(_string(message))
                header = self._exactly(s, 4)
                (length,) = struct.unpack("!I", header)
                if not 0 < length <= MAX_MESSAGE:
                    raise AgentError("ssh-agent sent a malformed answer")
                return self._exactly(s, length)
        except OSError as error:
            raise AgentError(f"cannot talk to ssh-agent at {self.path}: "
                             f"{error.strerror or error}") from None

    @staticmethod
    def _exactly(s: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise AgentError("ssh-agent closed the connection")
            data += chunk
        return data

    def key_blobs(self) -> list[bytes]:
        answer = self._call(bytes([REQUEST_IDENTITIES]))
        if not answer or answer[0] != IDENTITIES_ANSWER or len(answer) < 5:
            raise AgentError("ssh-agent refused to list its keys")
        (count,) = struct.unpack_from("!I", answer, 1)
        offset, blobs = 5, []
        for _ in range(min(count, 1000)):
            blob, offset = _read_string(answer, offset)
            _comment, offset = _read_string(answer, offset)
            blobs.append(blob)
        return blobs

    def sign(self, blob: bytes, data: bytes, flags: int = 0) -> tuple[bytes, bytes]:
        """(signature format, signature bytes)."""
        answer = self._call(bytes([SIGN_REQUEST]) + _string(blob) + _string(data)
                            + struct.pack("!I", flags))
        if not answer or answer[0] != SIGN_RESPONSE:
            raise AgentError("ssh-agent refused to sign (key removed, or confirmation denied?)")
        signature, _ = _read_string(answer, 1)
        kind, offset = _read_string(signature, 0)
        value, _ = _read_string(signature, offset)
        return kind, value


def public_key_blob(public_key) -> bytes:
    import base64

    line = public_key.public_bytes(serialization.Encoding.OpenSSH,
                                   serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


class AgentRsaKey(HeldKey, rsa.RSAPrivateKey):
    _holder = "in ssh-agent"

    def __init__(self, agent: Agent, blob: bytes, public: rsa.RSAPublicKey):
        self._agent, self._blob, self._public = agent, blob, public

    def sign(self, data, pad, algorithm):
        flags = {"sha1": 0, "sha256": RSA_SHA2_256, "sha512": RSA_SHA2_512}.get(algorithm.name)
        if not isinstance(pad, padding.PKCS1v15) or flags is None:
            raise TypeError(f"ssh-agent cannot sign RSA with {algorithm.name}"
                            f"{'' if isinstance(pad, padding.PKCS1v15) else ' and PSS'}")
        kind, value = self._agent.sign(self._blob, data, flags)
        if kind != {0: b"ssh-rsa", RSA_SHA2_256: b"rsa-sha2-256", RSA_SHA2_512: b"rsa-sha2-512"}[flags]:
            raise AgentError("ssh-agent signed with another algorithm than asked")
        return value


class AgentEcKey(HeldEcKey, ec.EllipticCurvePrivateKey):
    _holder = "in ssh-agent"

    _HASH = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}

    def __init__(self, agent: Agent, blob: bytes, public: ec.EllipticCurvePublicKey):
        self._agent, self._blob, self._public = agent, blob, public

    def sign(self, data, signature_algorithm):
        algorithm = signature_algorithm.algorithm
        if isinstance(algorithm, utils.Prehashed) or algorithm.name != self._HASH.get(self.curve.name):
            raise TypeError(f"ssh-agent signs {self.curve.name} only with its own hash")
        _kind, value = self._agent.sign(self._blob, data)
        r, offset = _read_string(value, 0)
        s, _ = _read_string(value, offset)
        return utils.encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))


class AgentEd25519Key(HeldKey, ed25519.Ed25519PrivateKey):
    _holder = "in ssh-agent"

    def __init__(self, agent: Agent, blob: bytes, public: ed25519.Ed25519PublicKey):
        self._agent, self._blob, self._public = agent, blob, public

    def sign(self, data):
        kind, value = self._agent.sign(self._blob, data)
        if kind != b"ssh-ed25519" or len(value) != 64:
            raise AgentError("ssh-agent sent no Ed25519 signature")
        return value


def agent_key(socket_path: str, certificate: x509.Certificate):
    """The agent's key for `certificate`, as a stand-in private key. Raises AgentError."""
    public = certificate.public_key()
    if not isinstance(public, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey,
                               ed25519.Ed25519PublicKey)):
        raise AgentError(f"Cygnet signs through ssh-agent with RSA, ECDSA or Ed25519 keys, not "
                         f"{type(public).__name__.replace('PublicKey', '')}")
    agent = Agent(socket_path)
    blob = public_key_blob(public)
    if blob not in agent.key_blobs():
        raise AgentError(f"ssh-agent at {socket_path} holds no key for our certificate "
                         "(ssh-add the private key of 'cert')")
    if isinstance(public, rsa.RSAPublicKey):
        return AgentRsaKey(agent, blob, public)
    if isinstance(public, ed25519.Ed25519PublicKey):
        return AgentEd25519Key(agent, blob, public)
    return AgentEcKey(agent, blob, public)
