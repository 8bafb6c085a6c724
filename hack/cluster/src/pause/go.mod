module mlkube.local/hack/cluster/src/pause

go 1.25.0
