"""A single-node Kubernetes built from pinned Go modules and run as host processes under .state/cluster."""
