//! Pod network, bindings (masquerade/bridge), DHCP, Services over nftables, cluster DNS, secondary networks, MAC pool
