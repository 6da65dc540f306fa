"""The power port (issue 25): each node's power state, on and off, out of band (IPMI, Redfish,
Wake-on-LAN). `port.open_power` is the way in; one module per method."""
