"""The adapters: thin, typed ports to the outside world (NUT, Kubernetes, Ansible, the peers'
HTTP, the state directory, metrics, systemd, probes). They never import the flows, the daemon
or the CLI."""
