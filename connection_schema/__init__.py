"""The connection schema: what a Cygnet VPN connection is, in every form it is stored.

One neutral package (no Qt, no D-Bus; only the standard library, `ike` for proposal and
identity parsing, and cryptography for key material) owns:

- `profile`     the checked `Profile` and the authentication methods;
- `limits`      the one set of numeric limits (port, dpd, mtu, retransmissions, ...);
- `naming`      keyring service and user names, NetworkManager profile names;
- `errors`      typed errors that name the key at fault (`FieldError` and its kinds);
- `fields`      the per-value checks every form shares (hosts, networks, proposals, ranges);
- `toml_profile`  TOML table <-> Profile (``cygnet up`` profiles);
- `vpn_data`    NetworkManager's vpn.data <-> Profile, and the editor's field checks;
- `sswan`       strongSwan Android .sswan <-> Profile (`sswan_material`: its key material);
- `certificates`  certificate subjects as identities, CA detection, unencrypted-key check.

vpn.data <-> .sswan goes through Profile. client/, nm_plugin/ and gui/ call this package;
it imports none of them. Imports of `ike` and cryptography stay inside functions so that
`cygnet --help` does not pay for them.
"""
