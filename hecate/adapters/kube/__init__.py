"""The Kubernetes adapter: the few API calls the flows make, through lightkube, typed and bounded.

- `hecate.adapters.kube.types`: the plain values it returns and its errors (pure);
- `hecate.adapters.kube.client`: `Kube`, the port (lightkube; every failure a KubeError);
- `hecate.adapters.kube.unavailable`: `UnavailableKube`, the port when no client could be made;
- `hecate.adapters.kube.manifests`: `clean_manifest` (pure).

Both ports say whether the API can be called at all: `kube.available` (False only for
`UnavailableKube`, whose `reason` says why).
Each name is imported from its own module (this package re-exports nothing).
"""
