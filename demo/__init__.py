"""Local demo stack and demo workloads for tripclick-orchestration."""
