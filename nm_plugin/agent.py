"""NetworkManager-strongswan's `agent` method for Cygnet's plugin: `method=agent`, or a
certificate method with `cert-source=agent`. `usercert` names the key; the ssh-agent socket
is the `agent` secret (the auth dialog passes its SSH_AUTH_SOCK, as strongSwan's does);
client/ssh_agent_key.py signs through it."""

from __future__ import annotations


def is_agent(data: dict) -> bool:
    return data.get("method") == "agent" or (
        data.get("method") in ("cert", "key") and data.get("cert-source") == "agent")


def profile_keys(data: dict, secrets: dict, error) -> dict:
    if not data.get("usercert"):
        raise error(f"vpn.data 'usercert': needed with method={data.get('method')} (it names "
                    "the key in ssh-agent)")
    if not secrets.get("agent"):
        raise error("vpn.secrets 'agent': the ssh-agent socket is missing (SSH_AUTH_SOCK of the "
                    "user, passed by the auth dialog)")
    return {"auth": "pubkey", "ssh_agent": True, "cert": data["usercert"]}
