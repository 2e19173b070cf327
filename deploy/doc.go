// Package deploy holds what runs rivet-gateway in production: the container
// image (Dockerfile), the Kubernetes manifests (kubernetes/, two kustomize
// patterns: sidecar and standalone) and the Helm chart (helm/rivet-gateway,
// either pattern). It has no code; its tests decode every manifest, and the
// chart rendered by Helm's engine with several sets of values, strictly into
// the Kubernetes API types and check them against the gateway itself: the
// ConfigMap's config loads and validates with the env and files the pod
// provides, ports, probes, metrics, mounts and shutdown timing agree with that
// config, and the Dockerfile's build produces a static binary that runs. See
// README.md.
package deploy
