"""NetworkManager secret agent for Cygnet connections, backed by the user's keyring.

NetworkManager asks registered agents for secrets it does not hold (Cygnet connections made
by the editor mark their password "agent-owned", password-flags=1):

    AgentManager.RegisterWithCapabilities("org.cygnet.tray", 0)     (once, at start)
    SecretAgent.GetSecrets(connection, path, "vpn", hints, flags)   → {"vpn": {"secrets": {"password": …}}}
    SecretAgent.SaveSecrets / DeleteSecrets                          (NM passes them on to us)

GetSecrets reads the password from the keyring (Secret Service; service "cygnet", user
"nm-<uuid>"), or — when there is none, or NetworkManager says the last one was wrong
(REQUEST_NEW) — asks the user through `prompt`, storing it if they tick "remember".

Secrets are never logged, never written anywhere but the keyring, and not kept: each is read,
handed to NetworkManager and dropped.
"""

# No `from __future__ import annotations` here: dbus-fast reads the D-Bus signatures from the
# method annotations ("a{sa{sv}}", "o", …).
import asyncio
import logging
from typing import Awaitable, Callable, Optional

from dbus_fast import DBusError, Variant
from dbus_fast.service import ServiceInterface, method

from connection_schema.naming import KEYRING_SERVICE
from gui.connection import VpnConnection, is_cygnet

log = logging.getLogger("cygnet.tray.agent")

AGENT_PATH = "/org/freedesktop/NetworkManager/SecretAgent"
AGENT_IFACE = "org.freedesktop.NetworkManager.SecretAgent"
AGENT_MANAGER_PATH = "/org/freedesktop/NetworkManager/AgentManager"
AGENT_MANAGER_IFACE = "org.freedesktop.NetworkManager.AgentManager"
AGENT_ID = "org.cygnet.tray"

# NMSecretAgentGetSecretsFlags
ALLOW_INTERACTION, REQUEST_NEW, USER_REQUESTED = 0x1, 0x2, 0x4

ERR_NO_SECRETS = "org.freedesktop.NetworkManager.SecretAgent.NoSecrets"
ERR_CANCELED = "org.freedesktop.NetworkManager.SecretAgent.UserCanceled"

# prompt(connection, retry) -> (password, remember) or None when the user cancels
Prompt = Callable[[VpnConnection, bool], Awaitable[Optional[tuple[str, bool]]]]


class KeyringStore:
    """The keyring calls (blocking: Secret Service over D-Bus) run in a worker thread."""

    def __init__(self, service: str = KEYRING_SERVICE):
        self.service = service

    async def get(self, user: str) -> Optional[str]:
        import keyring
        from keyring.errors import KeyringError

        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, keyring.get_password, self.service, user)
        except KeyringError as error:
            log.warning("keyring unavailable: %s", type(error).__name__)
            return None

    async def set(self, user: str, password: str) -> bool:
        import keyring
        from keyring.errors import KeyringError

        try:
            await asyncio.get_running_loop().run_in_executor(
                None, keyring.set_password, self.service, user, password)
            return True
        except KeyringError as error:
            log.warning("could not store the password in the keyring: %s", type(error).__name__)
            return False

    async def delete(self, user: str) -> None:
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError

        try:
            await asyncio.get_running_loop().run_in_executor(
                None, keyring.delete_password, self.service, user)
        except (PasswordDeleteError, KeyringError):
            pass


class SecretAgent(ServiceInterface):
    def __init__(self, prompt: Optional[Prompt] = None, store: Optional[KeyringStore] = None):
        super().__init__(AGENT_IFACE)
        self.prompt = prompt
        self.store = store or KeyringStore()
        self.requests = 0            # GetSecrets calls answered (tests and the status window)
        self._pending: dict[tuple[str, str], asyncio.Task] = {}

    async def register(self, bus) -> None:
        from dbus_fast import Message, MessageType

        bus.export(AGENT_PATH, self)
        reply = await bus.call(Message(destination="org.freedesktop.NetworkManager",
                                       path=AGENT_MANAGER_PATH, interface=AGENT_MANAGER_IFACE,
                                       member="RegisterWithCapabilities", signature="su",
                                       body=[AGENT_ID, 0]))
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"NetworkManager refused our secret agent: {reply.error_name}: "
                               f"{reply.body[0] if reply.body else ''}")
        log.info("secret agent registered")

    async def unregister(self, bus) -> None:
        from dbus_fast import Message

        await bus.call(Message(destination="org.freedesktop.NetworkManager", path=AGENT_MANAGER_PATH,
                               interface=AGENT_MANAGER_IFACE, member="Unregister"))

    # ------------------------------------------------------------------ D-Bus methods

    @method()
    async def GetSecrets(self, connection: "a{sa{sv}}", connection_path: "o", setting_name: "s",
                         hints: "as", flags: "u") -> "a{sa{sv}}":
        if setting_name != "vpn" or not is_cygnet(connection):
            raise DBusError(ERR_NO_SECRETS, "not a Cygnet VPN connection")
        vpn = VpnConnection.from_settings(connection, connection_path)
        if vpn.uses_ssh_agent:  # NetworkManager-strongswan: the socket is the `agent` secret
            import os

            sock = os.environ.get("SSH_AUTH_SOCK")
            if not sock:
                raise DBusError(ERR_NO_SECRETS, "no ssh-agent (SSH_AUTH_SOCK) in this session")
            self.requests += 1
            return {"vpn": {"secrets": Variant("a{ss}", {"agent": sock})}}
        if not vpn.needs_password:
            raise DBusError(ERR_NO_SECRETS, "this connection needs no password")
        key = (connection_path, setting_name)
        task = asyncio.ensure_future(self._password_for(vpn, flags))
        self._pending[key] = task
        try:
            password = await task
        except asyncio.CancelledError:
            raise DBusError(ERR_CANCELED, "the request was canceled") from None
        finally:
            self._pending.pop(key, None)
        if password is None:
            raise DBusError(ERR_CANCELED if flags & ALLOW_INTERACTION else ERR_NO_SECRETS,
                            "no password for this connection")
        self.requests += 1
        log.info("password for '%s' handed to NetworkManager", vpn.id)
        return {"vpn": {"secrets": Variant("a{ss}", {"password": password})}}

    @method()
    def CancelGetSecrets(self, connection_path: "o", setting_name: "s"):
        task = self._pending.get((connection_path, setting_name))
        if task is not None:
            task.cancel()

    @method()
    async def SaveSecrets(self, connection: "a{sa{sv}}", connection_path: "o"):
        if not is_cygnet(connection):
            return
        secrets = dict(getattr(connection.get("vpn", {}).get("secrets"), "value", None) or {})
        password = secrets.get("password")
        if password:
            await self.store.set(VpnConnection.from_settings(connection).keyring_user, password)

    @method()
    async def DeleteSecrets(self, connection: "a{sa{sv}}", connection_path: "o"):
        if is_cygnet(connection):
            await self.store.delete(VpnConnection.from_settings(connection).keyring_user)

    # ------------------------------------------------------------------ the decision

    async def _password_for(self, vpn: VpnConnection, flags: int) -> Optional[str]:
        retry = bool(flags & REQUEST_NEW)
        if not retry:
            stored = await self.store.get(vpn.keyring_user)
            if stored:
                return stored
        if not (flags & ALLOW_INTERACTION) or self.prompt is None:
            return None
        answer = await self.prompt(vpn, retry)
        if answer is None:
            return None
        password, remember = answer
        if remember:
            await self.store.set(vpn.keyring_user, password)
        elif retry:
            await self.store.delete(vpn.keyring_user)  # the stored one was wrong
        return password
