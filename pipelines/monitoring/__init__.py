"""Control plane of monitoring: start monitor jobs, publish their metrics, gate retrains."""
