// The smoke test workload (stdlib only).
module tripclick.local/cluster/smoke

go 1.25.0
