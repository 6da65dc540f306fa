"""The other Hecate instances over signed HTTP: the coordinator's server and the peers' client."""
