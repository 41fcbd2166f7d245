"""Cygnet's NetworkManager VPN plugin (vpn-type "cygnet").

    cygnet nm install                     # .name file + D-Bus policy (+ auth dialog launcher)
    nmcli connection add type vpn con-name office ifname -- vpn-type cygnet \
        vpn.data "address=vpn.example.org, method=eap, user=carol, virtual=yes, certificate=/etc/ssl/ca.pem"
    nmcli --ask connection up office      # the auth dialog has nmcli prompt for the password

service.py      the D-Bus service NetworkManager starts per activation (cygnet-nm-service)
vpn_data.py     vpn.data/vpn.secrets (NetworkManager-strongswan's keys) -> client.profile.Profile
auth_dialog.py  the agent-side password dialog (NetworkManager's external UI protocol)
install.py      `cygnet nm install|uninstall`
data/           the .name template and the D-Bus policy
"""
