"""Local demo stack and demo workloads for tripclick-orchestration (issue 3)."""
